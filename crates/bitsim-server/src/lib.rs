//! `bitsim-server`: a hyper 1.x mock of a BITS download server and a BITS
//! upload server (IIS BITS Server Extensions, [MC-BUP]) that injects the
//! faults real BITS clients meet.
//!
//! The same connection driver serves TCP streams ([`MockServer::serve_tcp`])
//! and in-memory pipes ([`MockServer::connect_in_memory`]). Every delay,
//! stall and dribble uses `tokio::time`, so under a paused clock a simulator
//! run is deterministic and a ten-minute stall takes no wall time.
//!
//! Spec: `shared/reference/bits-http.md`; the section a behaviour implements
//! is cited next to it as `ref: bits-http §x`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use bitsim_server::{MockServer, Plan};
//! let server = MockServer::new(Plan::default(), 42);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! server.serve_tcp(listener, std::future::pending()).await
//! # }
//! ```

mod control;
mod handler;
mod plan;
mod position;
mod reply;
mod server;
mod upload;
mod util;

pub use plan::{
    BodySpec, Delay, ErrorFormat, ErrorHeader, Fault, Framing, Hresult, Limits, Match, MultipartFault, Plan, PlanError,
    Probability, ReplySpec, ReplyUrlStyle, ResetPoint, Resource, Rule, ScenarioStep, UploadEndpoint, UploadOptions,
    DEFAULT_LAST_MODIFIED,
};
pub use position::{json_position, line_col};
pub use server::{MockServer, RequestLogEntry, ServerLimits};
pub use upload::BITS_PROTOCOL_GUID;

/// The deterministic content of generated bodies: byte `offset` of any
/// `/bytes/{n}` body (and of pattern resources without their own seed) for a
/// server built with `seed`. Lets clients verify what they downloaded.
pub fn pattern_byte(seed: u64, offset: u64) -> u8 {
    thread_local! {
        static CACHE: std::cell::RefCell<Option<(u64, bytes::Bytes)>> = const { std::cell::RefCell::new(None) };
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(s, _)| *s != seed) {
            *c = Some((seed, util::make_pattern(seed)));
        }
        let p = &c.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
        p.get((offset % util::PATTERN_LEN as u64) as usize)
            .copied()
            .unwrap_or(0)
    })
}

/// `len` bytes of the deterministic content starting at `offset` (see [`pattern_byte`]).
pub fn pattern_bytes(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let p = util::make_pattern(seed);
    (0..len as u64)
        .map(|i| p[((offset + i) % util::PATTERN_LEN as u64) as usize])
        .collect()
}
