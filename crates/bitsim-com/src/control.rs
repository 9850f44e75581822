//! The control endpoint: what a client cannot say through COM. Loopback only.
//!
//! The server runs one driver per service it serves: BITS
//! (`CLSID_BackgroundCopyManager`) and Delivery Optimization
//! (`CLSID_DeliveryOptimization`), each with its own model, clock, jobs and
//! notification slots, as on Windows where they are two services. A request
//! names one with the query parameter `?flavor=bits` or `?flavor=do`; without
//! it, a request is about the whole machine: an environment event, a jump and
//! a reset reach every service (a lost network is lost for both), and the
//! answer's top-level fields are BITS's, so clients written before DO was
//! served keep working unchanged.
//!
//! | request | body | effect |
//! |---|---|---|
//! | `GET /_bitsim/status` | | `{"now_ms": N, "jobs": N, "bits": {"now_ms": N, "jobs": N}, "do": {…}}` (top level: BITS's); with `?flavor=`: that service's `{"now_ms": N, "jobs": N}` |
//! | `POST /_bitsim/env` | an environment event as JSON: `"network_lost"`, `"network_restored"`, `"service_restart"`, `{"network_cost": 2}`, `{"battery_saver": true}`, `{"log_off": 0}` | the model(s) handle it now |
//! | `POST /_bitsim/jump` | `{"by": "600s"}` (a scenario duration; `"stop_at_timer": true` stops after the first timer) | virtual time moves ahead timer by timer; answers `{"now_ms": N}` (the named service's; without `?flavor=` every service jumps and N is BITS's) |
//! | `POST /_bitsim/reset` | `{"seed": N}` | a fresh model: no jobs, time 0 (one per scenario in conformance runs) |
//! | `POST /_bitsim/quit` | | the server revokes its classes and exits (both services) |
//!
//! `?flavor=` naming a service the server does not run answers 404. Faults are
//! not here: they are the mock server's plan (`PUT /_bitsim/plan` on `bitsim
//! serve`).

use crate::driver::{Handle, Stopped};
use bitsim_model::{EnvEvent, Flavor};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// Largest request body the endpoint reads.
const MAX_BODY: usize = 64 * 1024;
/// Open connections at most; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send a request head (also the keep-alive idle limit).
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The services a control endpoint addresses: one driver per flavor, the
/// first the default of the answers' top-level fields (BITS).
#[derive(Clone, Debug)]
pub struct Services(Vec<(Flavor, Handle)>);

impl Services {
    /// BITS only (a server without the DO flavor, or a test).
    pub fn bits(handle: Handle) -> Services {
        Services(vec![(Flavor::Bits, handle)])
    }

    /// Adds a service; a flavor added twice keeps its first handle.
    pub fn with(mut self, flavor: Flavor, handle: Handle) -> Services {
        if !self.0.iter().any(|(f, _)| *f == flavor) {
            self.0.push((flavor, handle));
        }
        self
    }

    /// The services a request addresses: the one `?flavor=` names, or all.
    fn select(&self, query: Option<&str>) -> Result<Vec<(Flavor, Handle)>, String> {
        let named = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == "flavor")
            .map(|(_, v)| v);
        match named {
            None => Ok(self.0.clone()),
            Some(v) => match Flavor::parse(v) {
                Some(f) => match self.0.iter().find(|(g, _)| *g == f) {
                    Some(s) => Ok(vec![s.clone()]),
                    None => Err(format!("this server does not run the {f} flavor")),
                },
                None => Err(format!("flavor: `{v}` is not bits or do")),
            },
        }
    }
}

impl From<Handle> for Services {
    fn from(handle: Handle) -> Services {
        Services::bits(handle)
    }
}

/// A running control endpoint.
pub struct Control {
    addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Control {
    /// Listens on `addr` (loopback only; port 0 picks one). `quit` is called
    /// (once) when a client posts `/_bitsim/quit`.
    pub fn start(
        addr: SocketAddr,
        services: impl Into<Services>,
        quit: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<Control> {
        let services: Services = services.into();
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the control endpoint listens on loopback only, not {addr}"),
            ));
        }
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let quit = std::sync::Arc::new(quit);
        let thread = std::thread::Builder::new()
            .name("bitsim-control".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
                    loop {
                        let (stream, _) = tokio::select! {
                            _ = &mut stop_rx => return,
                            accepted = listener.accept() => match accepted {
                                Ok(a) => a,
                                Err(_) => continue,
                            },
                        };
                        // Bounded: a local process holding sockets open cannot
                        // starve the endpoint (idle ones time out, see below).
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            continue;
                        };
                        let services = services.clone();
                        let quit = quit.clone();
                        tokio::spawn(async move {
                            let _permit = permit;
                            let service = hyper::service::service_fn(move |req| {
                                let services = services.clone();
                                let quit = quit.clone();
                                async move { Ok::<_, std::convert::Infallible>(route(req, &services, &*quit).await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .timer(hyper_util::rt::TokioTimer::new())
                                .header_read_timeout(HEADER_TIMEOUT)
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
            })?;
        Ok(Control {
            addr,
            thread: Some(thread),
            stop: Some(stop_tx),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body + "\n")));
    *r.status_mut() = status;
    r
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Jump {
    by: serde_json::Value,
    #[serde(default)]
    stop_at_timer: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    #[serde(default)]
    seed: u64,
}

/// A status answer: one service's fields; or, for the whole machine, the
/// first (default) service's fields at the top level, as before DO was
/// served, and every service's under its flavor's name.
fn status_answer(each: &[(Flavor, String)]) -> String {
    let Some((_, first)) = each.first() else {
        return "{}".into();
    };
    if each.len() == 1 {
        return format!("{{{first}}}");
    }
    let mut out = format!("{{{first}");
    for (flavor, fields) in each {
        out.push_str(&format!(",\"{flavor}\":{{{fields}}}"));
    }
    out.push('}');
    out
}

/// Runs `f` on every selected service at once (a jump lets each service's
/// transfers settle; one service's must not wait for the other's) and
/// returns the results in order.
async fn on_each<T, F>(selected: &[(Flavor, Handle)], f: impl Fn(Handle) -> F) -> Vec<Result<T, Stopped>>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, Stopped>> + Send + 'static,
{
    let tasks: Vec<_> = selected.iter().map(|(_, h)| tokio::spawn(f(h.clone()))).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or(Err(Stopped)));
    }
    out
}

async fn route(req: Request<Incoming>, services: &Services, quit: &(dyn Fn() + Send + Sync)) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, format!("body: at most {MAX_BODY} bytes")),
    };
    let stopped = |_| reply(StatusCode::SERVICE_UNAVAILABLE, "the bitsim driver has stopped".into());
    let selected = match services.select(parts.uri.query()) {
        Ok(s) => s,
        Err(e) => return reply(StatusCode::NOT_FOUND, e),
    };
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/_bitsim/status") => {
            let mut each = Vec::new();
            for (flavor, handle) in &selected {
                let now = match handle.now_async().await {
                    Ok(t) => t,
                    Err(e) => return stopped(e),
                };
                let jobs = handle.jobs_async().await.unwrap_or(0);
                each.push((*flavor, format!("\"now_ms\":{},\"jobs\":{jobs}", now.0)));
            }
            reply(StatusCode::OK, status_answer(&each))
        }
        (&Method::POST, "/_bitsim/env") => match serde_json::from_slice::<EnvEvent>(&body) {
            Ok(event) => {
                // Machine-wide unless a flavor is named: every service sees it.
                let all = on_each(&selected, |h| {
                    let event = event.clone();
                    async move { h.env_async(event).await }
                })
                .await;
                match all.into_iter().find_map(Result::err) {
                    None => reply(StatusCode::OK, "ok".into()),
                    Some(e) => stopped(e),
                }
            }
            Err(e) => reply(
                StatusCode::BAD_REQUEST,
                format!("env: {e} (line {}, column {})", e.line(), e.column()),
            ),
        },
        (&Method::POST, "/_bitsim/jump") => {
            let (by, stop_at_timer) = match serde_json::from_slice::<Jump>(&body) {
                Ok(j) => (j.by, j.stop_at_timer),
                Err(e) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "jump: {e} (line {}, column {}); expected {{\"by\": \"600s\"}}",
                            e.line(),
                            e.column()
                        ),
                    )
                }
            };
            let parsed = match &by {
                serde_json::Value::String(s) => bitsim_scenario::Dur::parse_checked(s).map(|d| d.0 .0),
                serde_json::Value::Number(n) => n
                    .as_u64()
                    .filter(|ms| *ms <= bitsim_scenario::Dur::MAX_MS)
                    .ok_or_else(|| format!("jump.by: {n} is not a whole number of milliseconds within 100 years")),
                other => Err(format!("jump.by: expected a duration, got {other}")),
            };
            match parsed {
                Ok(ms) => {
                    let jump = crate::driver::Jump {
                        by: std::time::Duration::from_millis(ms),
                        stop_at_timer,
                    };
                    // The answer is one time: the named service's, or the
                    // default's (BITS's) when the whole machine jumped
                    // (`GET /_bitsim/status` has each service's).
                    let all = on_each(&selected, |h| async move { h.jump_async(jump).await }).await;
                    let mut times = Vec::new();
                    for r in all {
                        match r {
                            Ok(now) => times.push(now),
                            Err(e) => return stopped(e),
                        }
                    }
                    let now = times.first().map_or(0, |t| t.0);
                    reply(StatusCode::OK, format!("{{\"now_ms\":{now}}}"))
                }
                Err(e) => reply(StatusCode::BAD_REQUEST, e),
            }
        }
        (&Method::POST, "/_bitsim/reset") => {
            let seed = match serde_json::from_slice::<Reset>(if body.is_empty() { b"{}" } else { &body }) {
                Ok(r) => r.seed,
                Err(e) => return reply(StatusCode::BAD_REQUEST, format!("reset: {e}; expected {{\"seed\": N}}")),
            };
            let all = on_each(&selected, |h| async move { h.reset_async(seed).await }).await;
            match all.into_iter().find_map(Result::err) {
                None => reply(StatusCode::OK, "ok".into()),
                Some(e) => stopped(e),
            }
        }
        (&Method::POST, "/_bitsim/quit") => {
            quit();
            reply(StatusCode::OK, "bye".into())
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "routes: GET /_bitsim/status, POST /_bitsim/env, POST /_bitsim/jump, POST /_bitsim/reset, POST /_bitsim/quit (each with an optional ?flavor=bits|do)".into(),
        ),
    }
}
