//! `MockServer`: shared state, the request log, and the connection driver
//! that serves TCP streams and in-memory pipes with the same code.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::plan::{Plan, ReplySpec};
use crate::reply::{Outcome, RawMode, Reply};
use crate::util::{shared_pattern, Pattern, Rng};

/// Buffer size of each in-memory pipe direction.
const DUPLEX_BUF: usize = 64 * 1024;

/// Server-wide limits that no plan can change: they protect the machine and keep
/// the control API (`/_bitsim/*`) reachable. `bitsim serve` prints them at start.
/// Timeouts use tokio time; they apply to TCP connections only, so the
/// in-memory lane of the simulator (paused clock) is not affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// A request head (request line and headers) must arrive within this long
    /// after the connection opens or the previous response ends; this is also
    /// the keep-alive idle timeout. Default 30 s.
    pub header_read_timeout: Duration,
    /// A request body must keep arriving: at most this long between two chunks.
    /// Default 60 s.
    pub body_idle_timeout: Duration,
    /// Open TCP connections at most; beyond it new connections are closed at
    /// once. Default 512 (below the common 1,024 file-descriptor limit).
    pub max_connections: usize,
    /// Upload bytes held in memory at most, over all sessions and committed
    /// uploads; beyond it Create-Session and Fragment get 500 + ERROR_DISK_FULL.
    /// Default 512 MiB.
    pub max_upload_memory: u64,
    /// Open upload sessions at most (same refusal). Default 10,000.
    pub max_upload_sessions: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_upload_memory: 512 << 20,
            max_upload_sessions: 10_000,
        }
    }
}

impl std::fmt::Display for ServerLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "header timeout {} s, body idle timeout {} s, max connections {}, upload memory {} MiB, upload sessions {}",
            self.header_read_timeout.as_secs_f64(),
            self.body_idle_timeout.as_secs_f64(),
            self.max_connections,
            self.max_upload_memory >> 20,
            self.max_upload_sessions
        )
    }
}

/// One request as the server saw it, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLogEntry {
    /// 1-based arrival number across the whole server.
    pub ordinal: u64,
    /// Milliseconds (tokio time, so virtual under a paused clock) since the
    /// server's first connection.
    pub at_ms: u64,
    /// 1-based connection number.
    pub connection: u64,
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Status sent (none for connection-level faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Fault kind applied, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Name (or `#index`) of the rule that fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Response body bytes handed to the connection.
    pub body_bytes_sent: u64,
    /// Extra facts, e.g. `app notified #2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An upload session (bits-http §3).
pub(crate) struct Session {
    pub(crate) path: String,
    pub(crate) name: String,
    pub(crate) reply: Option<ReplySpec>,
    pub(crate) total: Option<u64>,
    pub(crate) data: Vec<u8>,
    pub(crate) last_activity: Instant,
    pub(crate) notified: u32,
    pub(crate) reply_path: Option<String>,
}

/// A stored upload-reply, downloadable until Close-Session.
#[derive(Clone)]
pub(crate) struct StoredReply {
    pub(crate) body: crate::reply::BodySrc,
    pub(crate) size: u64,
    pub(crate) content_type: &'static str,
}

pub(crate) struct State {
    pub(crate) plan: Arc<Plan>,
    pub(crate) rule_hits: Vec<u64>,
    pub(crate) scenarios: HashMap<String, String>,
    pub(crate) rng: Rng,
    pub(crate) log: VecDeque<RequestLogEntry>,
    pub(crate) next_ordinal: u64,
    pub(crate) started: Option<Instant>,
    pub(crate) sessions: HashMap<String, Session>,
    /// Committed uploads kept in memory, by URL path.
    pub(crate) uploads: BTreeMap<String, Bytes>,
    /// Upload-replies by URL path.
    pub(crate) replies: HashMap<String, StoredReply>,
    pub(crate) patterns: HashMap<u64, Pattern>,
}

pub(crate) struct Inner {
    pub(crate) seed: u64,
    pub(crate) limits: ServerLimits,
    pub(crate) pattern: Pattern,
    state: Mutex<State>,
    conns: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Adds body bytes sent to a log entry.
    pub(crate) fn add_sent(&self, ordinal: u64, n: u64) {
        let mut st = self.state();
        if let Some(e) = st.entry_mut(ordinal) {
            e.body_bytes_sent += n;
        }
    }

    /// The pattern for a seed (the server's own, or a cached other one).
    pub(crate) fn pattern_for(&self, seed: Option<u64>) -> Pattern {
        match seed {
            None => self.pattern.clone(),
            Some(s) if s == self.seed => self.pattern.clone(),
            Some(s) => {
                let mut st = self.state();
                if st.patterns.len() > 16 {
                    st.patterns.clear();
                }
                st.patterns.entry(s).or_insert_with(|| shared_pattern(s)).clone()
            }
        }
    }
}

impl State {
    pub(crate) fn entry_mut(&mut self, ordinal: u64) -> Option<&mut RequestLogEntry> {
        let first = self.log.front()?.ordinal;
        let idx = ordinal.checked_sub(first)?;
        self.log.get_mut(usize::try_from(idx).ok()?)
    }

    pub(crate) fn now_ms(&mut self) -> u64 {
        let now = Instant::now();
        let start = *self.started.get_or_insert(now);
        now.saturating_duration_since(start).as_millis() as u64
    }
}

/// The mock server. Cheap to clone; clones share all state.
#[derive(Clone)]
pub struct MockServer {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("seed", &self.inner.seed)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// A server with this plan; `seed` drives body bytes, session ids and
    /// every random choice.
    pub fn new(plan: Plan, seed: u64) -> Self {
        MockServer::with_limits(plan, seed, ServerLimits::default())
    }

    /// [`MockServer::new`] with server-wide limits other than the defaults.
    pub fn with_limits(plan: Plan, seed: u64, limits: ServerLimits) -> Self {
        let rule_hits = vec![0; plan.rules.len()];
        MockServer {
            inner: Arc::new(Inner {
                seed,
                limits,
                pattern: shared_pattern(seed),
                state: Mutex::new(State {
                    plan: Arc::new(plan),
                    rule_hits,
                    scenarios: HashMap::new(),
                    rng: Rng::new(seed),
                    log: VecDeque::new(),
                    next_ordinal: 1,
                    started: None,
                    sessions: HashMap::new(),
                    uploads: BTreeMap::new(),
                    replies: HashMap::new(),
                    patterns: HashMap::new(),
                }),
                conns: AtomicU64::new(0),
            }),
        }
    }

    /// The server-wide limits.
    pub fn limits(&self) -> &ServerLimits {
        &self.inner.limits
    }

    /// The seed given to [`MockServer::new`].
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// Replaces the plan. Rule counters and scenario states restart; the log,
    /// upload sessions and committed uploads are kept.
    pub fn set_plan(&self, plan: Plan) {
        let mut st = self.inner.state();
        st.rule_hits = vec![0; plan.rules.len()];
        st.scenarios.clear();
        st.plan = Arc::new(plan);
    }

    /// The active plan.
    pub fn plan(&self) -> Plan {
        (*self.inner.state().plan).clone()
    }

    /// The request log, in arrival order.
    pub fn log(&self) -> Vec<RequestLogEntry> {
        self.inner.state().log.iter().cloned().collect()
    }

    /// Starts the request log's clock now, if no request has started it yet, so
    /// `at_ms` counts from the caller's own start (the simulator's time zero).
    pub fn start_clock(&self) {
        let _ = self.inner.state().now_ms();
    }

    /// Empties the request log (ordinals keep counting).
    pub fn clear_log(&self) {
        self.inner.state().log.clear();
    }

    /// Forgets every upload session and committed upload held in memory: a
    /// server shared by several scenario runs (the real-service lanes) starts
    /// each with no upload behind it, as the simulator's fresh server does.
    pub fn clear_uploads(&self) {
        let mut st = self.inner.state();
        st.sessions.clear();
        st.uploads.clear();
    }

    /// A committed upload by its URL path (e.g. `/upload/a.bin`), from memory
    /// or from the plan's upload directory.
    pub fn uploaded(&self, path: &str) -> Option<Bytes> {
        let (dir, mem) = {
            let st = self.inner.state();
            (st.plan.upload.dir.clone(), st.uploads.get(path).cloned())
        };
        if mem.is_some() {
            return mem;
        }
        let dir = dir?;
        let name = path.rsplit('/').next()?;
        if !crate::upload::valid_name(name) {
            return None;
        }
        std::fs::read(dir.join(name)).ok().map(Bytes::from)
    }

    /// The SHA-256 of the body a generated route serves (`/bytes/N`,
    /// `/redirect/K/bytes/N`, `/delay/MS/bytes/N`, `/drip/C/MS/bytes/N`), computed
    /// from the pattern without building the body; `None` for other paths or
    /// bodies over 4 GiB.
    pub fn route_digest(&self, path: &str) -> Option<[u8; 32]> {
        use sha2::{Digest, Sha256};
        let path = path.split('?').next()?;
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let n: u64 = match segs.as_slice() {
            ["bytes", n] | ["redirect", _, "bytes", n] | ["delay", _, "bytes", n] | ["drip", _, _, "bytes", n] => {
                n.parse().ok()?
            }
            _ => return None,
        };
        if n > 1 << 32 {
            return None;
        }
        let mut hasher = Sha256::new();
        let mut left = n;
        while left > 0 {
            let part = self
                .inner
                .pattern
                .slice(0, left.min(crate::util::PATTERN_LEN as u64) as usize);
            hasher.update(&part);
            left -= part.len() as u64;
        }
        Some(hasher.finalize().into())
    }

    /// Opens an in-memory connection: returns the client end of a
    /// `tokio::io::duplex` pipe whose server end is served on the current
    /// runtime. Must be called within a tokio runtime.
    pub fn connect_in_memory(&self) -> DuplexStream {
        self.connect_in_memory_numbered().0
    }

    /// [`MockServer::connect_in_memory`], also returning the connection's number
    /// as the request log shows it (so a client can tell its requests apart).
    pub fn connect_in_memory_numbered(&self) -> (DuplexStream, u64) {
        let (client, server) = tokio::io::duplex(DUPLEX_BUF);
        let inner = self.inner.clone();
        let info = self.conn_info(true);
        let id = info.id;
        tokio::spawn(serve_conn(inner, server, info, None, false));
        (client, id)
    }

    /// Serves TCP connections from `listener` until `shutdown` completes, then
    /// lets open connections finish (up to 2 s) and returns.
    pub async fn serve_tcp(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (tx, rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(self.inner.limits.max_connections.max(1)));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                res = listener.accept() => match res {
                    Ok((stream, peer)) => {
                        // Over the connection cap: close at once, keep serving the others.
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            tracing::debug!("connection cap reached: closing a new connection");
                            stream.reset_on_close();
                            drop(stream);
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let loopback = is_loopback(&peer);
                        let info = self.conn_info(loopback);
                        let inner = self.inner.clone();
                        let rx = rx.clone();
                        conns.spawn(async move {
                            let _slot = slot;
                            if inner.state().plan.refuse_connections && !(loopback && control_request(&stream, &inner).await) {
                                // ref: bits-http §5.3 — refuse connection
                                stream.reset_on_close();
                                return;
                            }
                            serve_conn(inner, stream, info, Some(rx), true).await
                        });
                    }
                    Err(e) => {
                        // e.g. EMFILE: back off and keep serving
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        let _ = tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        conns.abort_all();
        Ok(())
    }

    fn conn_info(&self, loopback: bool) -> ConnInfo {
        let id = self.inner.conns.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut st = self.inner.state();
            st.now_ms();
        }
        ConnInfo { id, loopback }
    }
}

fn is_loopback(peer: &SocketAddr) -> bool {
    peer.ip().to_canonical().is_loopback()
}

/// Per-connection facts the handler needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnInfo {
    pub(crate) id: u64,
    pub(crate) loopback: bool,
}

/// A stream the server can serve.
pub(crate) trait ConnIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Make closing this stream send a reset (TCP RST) if the transport can.
    fn reset_on_close(&self) {}
}

impl ConnIo for TcpStream {
    fn reset_on_close(&self) {
        let _ = self.set_zero_linger();
    }
}

impl ConnIo for DuplexStream {}

struct TapState<T> {
    io: Option<T>,
    /// Set when a fault took over the raw stream: hyper's IO goes nowhere.
    taken: bool,
}

/// The stream as hyper sees it. A fault can take the stream over (through a
/// shared handle) to write bytes hyper would never produce.
struct Tap<T>(Arc<Mutex<TapState<T>>>);

impl<T: ConnIo> AsyncRead for Tap<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut g = lock(&self.0);
        if g.taken {
            return Poll::Pending;
        }
        match g.io.as_mut() {
            Some(io) => Pin::new(io).poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<T: ConnIo> AsyncWrite for Tap<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut g = lock(&self.0);
        if g.taken {
            return Poll::Ready(Ok(buf.len()));
        }
        match g.io.as_mut() {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut g = lock(&self.0);
        if g.taken {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        match g.io.as_mut() {
            Some(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        lock(&self.0).io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut g = lock(&self.0);
        if g.taken {
            return Poll::Ready(Ok(()));
        }
        match g.io.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut g = lock(&self.0);
        if g.taken {
            return Poll::Ready(Ok(()));
        }
        match g.io.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// The raw stream, borrowed from the tap one poll at a time.
struct RawIo<'a, T>(&'a Arc<Mutex<TapState<T>>>);

impl<T: ConnIo> AsyncRead for RawIo<'_, T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match lock(self.0).io.as_mut() {
            Some(io) => Pin::new(io).poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<T: ConnIo> AsyncWrite for RawIo<'_, T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match lock(self.0).io.as_mut() {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match lock(self.0).io.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match lock(self.0).io.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Returned to hyper after a fault wrote its own bytes: ends the connection.
#[derive(Debug)]
struct TakenOver;

impl std::fmt::Display for TakenOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection taken over by a fault")
    }
}

impl std::error::Error for TakenOver {}

/// Whether a new TCP connection's first request is for a control path
/// (`/_bitsim/...`): those are served even under `refuse_connections`, so a plan
/// can never lock the control API out. Peeks without consuming, and waits at
/// most the header timeout for the request line.
async fn control_request(stream: &TcpStream, inner: &Inner) -> bool {
    let mut buf = [0u8; 64];
    let peek = async {
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    let line = &buf[..n];
                    if let Some(sp) = line.iter().position(|&c| c == b' ') {
                        let rest = &line[sp + 1..];
                        if rest.len() >= 9 || rest.contains(&b' ') {
                            return rest.starts_with(b"/_bitsim/");
                        }
                    }
                    if n == buf.len() {
                        return false;
                    }
                    // Not enough of the request line yet.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    };
    tokio::time::timeout(inner.limits.header_read_timeout, peek)
        .await
        .unwrap_or(false)
}

/// Serves one connection. `tcp`: a real socket, with the header-read and
/// keep-alive timeouts of [`ServerLimits`] (the in-memory lane has none: its
/// only client is the simulator's engine, on a paused clock).
async fn serve_conn<T: ConnIo>(
    inner: Arc<Inner>,
    io: T,
    info: ConnInfo,
    shutdown: Option<watch::Receiver<bool>>,
    tcp: bool,
) {
    if !tcp && inner.state().plan.refuse_connections {
        // ref: bits-http §5.3 — refuse connection
        io.reset_on_close();
        drop(io);
        return;
    }
    let shared = Arc::new(Mutex::new(TapState {
        io: Some(io),
        taken: false,
    }));
    let limits = inner.state().plan.limits.clone();
    let tap = Tap(shared.clone());
    let svc_inner = inner.clone();
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let inner = svc_inner.clone();
        let shared = shared.clone();
        async move {
            let head = req.method() == http::Method::HEAD;
            let reply = crate::handler::handle(&inner, req, info).await;
            match reply.into_outcome(head) {
                Outcome::Hyper(resp) => Ok(resp),
                Outcome::Raw(reply, head) => {
                    lock(&shared).taken = true;
                    write_raw(&shared, reply, head).await;
                    Err(TakenOver)
                }
            }
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .auto_date_header(false)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers.clamp(1, 10_000));
    if tcp {
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(inner.limits.header_read_timeout);
    }
    let conn = builder.serve_connection(TokioIo::new(tap), service);
    tokio::pin!(conn);
    let res = match shutdown {
        None => conn.as_mut().await,
        Some(mut rx) => {
            let stop = async move {
                loop {
                    if *rx.borrow() {
                        break;
                    }
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                r = conn.as_mut() => r,
                _ = stop => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            }
        }
    };
    if let Err(e) = res {
        tracing::debug!(conn = info.id, "connection ended: {e}");
    }
}

/// Writes a reply byte by byte as planned, bypassing hyper, then closes.
/// ref: bits-http §5.3 (connection-level faults), §5.2 (hyper cannot send broken framing)
async fn write_raw<T: ConnIo>(shared: &Arc<Mutex<TapState<T>>>, mut reply: Reply, head: bool) {
    let mut io = RawIo(shared);
    let mode = reply.raw.clone().unwrap_or(RawMode::Close { rst: false });
    let mut rst = false;
    let res: io::Result<()> = async {
        match mode {
            RawMode::Close { rst: r } => rst = r,
            RawMode::Garbage(bytes) => io.write_all(&bytes).await?,
            RawMode::Normal { version10, close_delay } => {
                io.write_all(&reply.raw_head(version10, false)).await?;
                if !head {
                    while let Some(chunk) = next_frame(&mut reply).await? {
                        io.write_all(&chunk).await?;
                    }
                }
                io.flush().await?;
                if !close_delay.is_zero() {
                    tokio::time::sleep(close_delay).await;
                }
            }
            RawMode::Cut { after, rst: r } => {
                rst = r;
                reply.body.limit(after);
                io.write_all(&reply.raw_head(false, false)).await?;
                if !head {
                    while let Some(chunk) = next_frame(&mut reply).await? {
                        io.write_all(&chunk).await?;
                    }
                }
                io.flush().await?;
            }
            RawMode::Chunked { malformed } => {
                io.write_all(&reply.raw_head(false, true)).await?;
                if malformed {
                    // ref: bits-http §5.2 (WireMock MALFORMED_RESPONSE_CHUNK)
                    io.write_all(b"zz; not-hex\r\n").await?;
                    if let Some(chunk) = next_frame(&mut reply).await? {
                        io.write_all(&chunk[..chunk.len().min(64)]).await?;
                    }
                    io.write_all(b"\r\n").await?;
                } else if !head {
                    while let Some(chunk) = next_frame(&mut reply).await? {
                        io.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                        io.write_all(&chunk).await?;
                        io.write_all(b"\r\n").await?;
                    }
                    io.write_all(b"0\r\n\r\n").await?;
                }
                io.flush().await?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        tracing::debug!("raw write ended early: {e}");
    }
    if rst {
        let mut g = lock(shared);
        if let Some(io) = g.io.take() {
            io.reset_on_close();
            drop(io);
        }
        return;
    }
    let _ = io.shutdown().await;
    // Read what the client still sends (briefly) so closing sends FIN, not RST.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut buf = vec![0u8; 8192];
        let mut total = 0usize;
        while let Ok(n) = io.read(&mut buf).await {
            total += n;
            if n == 0 || total > (1 << 20) {
                break;
            }
        }
    })
    .await;
    lock(shared).io.take();
}

async fn next_frame(reply: &mut Reply) -> io::Result<Option<Bytes>> {
    loop {
        match reply.body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(e),
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    return Ok(Some(d));
                }
            }
        }
    }
}
