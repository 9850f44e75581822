//! The model on a real clock, behind a handle any thread can call.
//!
//! One driver thread owns a [`Simulator`] (the same executor as scenario runs)
//! on a current-thread tokio runtime with a *real* clock scaled by
//! `time_scale`: virtual time = wall time × N + jumps. COM methods arrive on
//! RPC threads and reach the model through [`Handle`]: every request is a
//! message to the driver thread, answered when the model has answered. The
//! driver decides nothing; it forwards `ApiCall`s, environment events and
//! jumps, and writes the model's trace to a file as it goes.

use bitsim_engine::{Connector, ExternalHost, SimConfig, Simulator};
use bitsim_model::{ApiCall, ApiReply, EnvEvent, Flavor, Profile, Service, Time, UserId};
use bitsim_scenario::Backend;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How to start a driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub profile: Profile,
    pub seed: u64,
    /// Virtual seconds per wall-clock second (`--time-scale N`), at least 1.
    pub time_scale: u64,
    /// Where the model's trace goes, line by line (`--trace FILE`).
    pub trace: Option<PathBuf>,
    /// `None`: every URL's own host and port. `Some(addr)`: every request goes to
    /// `addr` (a mock server), whatever host the client's URL names.
    pub route_all_to: Option<std::net::SocketAddr>,
    /// The name of the one user every COM client acts as.
    pub user: String,
}

impl DriverConfig {
    pub fn new(flavor: Flavor) -> DriverConfig {
        DriverConfig {
            profile: flavor.profile(),
            seed: 1,
            time_scale: 1,
            trace: None,
            route_all_to: None,
            user: "user".into(),
        }
    }
}

type Query = Box<dyn FnOnce(&Service) + Send>;

/// "Jump ahead by D": see [`bitsim_engine::Simulator::jump`].
#[derive(Debug, Clone, Copy)]
pub struct Jump {
    pub by: Duration,
    /// Stop after the first timer on the way (a runner that checks every change).
    pub stop_at_timer: bool,
}

/// Wall time a jump gives the transfers a timer started to go quiet.
const SETTLE: Duration = Duration::from_secs(10);

enum Request {
    Call(ApiCall, oneshot::Sender<ApiReply>),
    Query(Query),
    Env(EnvEvent, oneshot::Sender<()>),
    Jump(Jump, oneshot::Sender<Time>),
    Reset(u64, oneshot::Sender<()>),
    Now(oneshot::Sender<Time>),
    Note(String),
    ReplyBody(bitsim_model::JobId, oneshot::Sender<Option<bytes::Bytes>>),
    Shutdown,
}

/// The driver could not answer: it has stopped (shut down, or its thread died).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the bitsim driver has stopped")
    }
}

/// A thread-safe, cloneable way into the driver. Methods block the calling
/// thread (a COM RPC thread) until the driver answered; never call them from
/// inside the driver's own runtime.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Request>,
    user: UserId,
    /// The wall-clock moment of virtual time 0 (set again by a reset).
    epoch: Arc<std::sync::Mutex<std::time::SystemTime>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("user", &self.user).finish()
    }
}

impl Handle {
    /// The user every client of this driver acts as.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The wall-clock moment of virtual time 0: job times (GetTimes) are
    /// this plus the model's virtual time.
    pub fn epoch(&self) -> std::time::SystemTime {
        *self.epoch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One API call, answered by the model.
    pub fn call(&self, call: ApiCall) -> Result<ApiReply, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::Call(call, tx)).map_err(|_| Stopped)?;
        rx.blocking_recv().map_err(|_| Stopped)
    }

    /// Reads the model (getters with no `ApiCall` of their own: names, files).
    pub fn query<T: Send + 'static>(&self, f: impl FnOnce(&Service) -> T + Send + 'static) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        let q: Query = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        self.tx.send(Request::Query(q)).map_err(|_| Stopped)?;
        rx.blocking_recv().map_err(|_| Stopped)
    }

    /// An environment event (network lost, logoff, service restart, …).
    pub fn env(&self, event: EnvEvent) -> Result<(), Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::Env(event, tx)).map_err(|_| Stopped)?;
        rx.blocking_recv().map_err(|_| Stopped)
    }

    /// Moves virtual time ahead by `by`, timer by timer; returns the time reached.
    pub fn jump(&self, by: Duration) -> Result<Time, Stopped> {
        let (tx, rx) = oneshot::channel();
        let jump = Jump {
            by,
            stop_at_timer: false,
        };
        self.tx.send(Request::Jump(jump, tx)).map_err(|_| Stopped)?;
        rx.blocking_recv().map_err(|_| Stopped)
    }

    /// The model's virtual time now.
    pub fn now(&self) -> Result<Time, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::Now(tx)).map_err(|_| Stopped)?;
        rx.blocking_recv().map_err(|_| Stopped)
    }

    /// Writes a line to the trace (a method the model has no rule for).
    pub fn note(&self, text: String) {
        let _ = self.tx.send(Request::Note(text));
    }

    /// The reply body an upload-reply job received so far.
    pub fn reply_body(&self, job: bitsim_model::JobId) -> Result<Option<bytes::Bytes>, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::ReplyBody(job, tx)).map_err(|_| Stopped)?;
        rx.blocking_recv().map_err(|_| Stopped)
    }

    /// Asks the driver to stop; [`Driver::join`] waits for it.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Request::Shutdown);
    }

    /// The async twins, for code already inside a tokio runtime (the control
    /// endpoint).
    pub async fn env_async(&self, event: EnvEvent) -> Result<(), Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::Env(event, tx)).map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    pub async fn jump_async(&self, jump: Jump) -> Result<Time, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::Jump(jump, tx)).map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Starts over with a fresh model (no jobs, time 0, `seed`): one scenario
    /// per model when a conformance run replays a corpus through COM.
    pub async fn reset_async(&self, seed: u64) -> Result<(), Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::Reset(seed, tx)).map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    pub async fn now_async(&self) -> Result<Time, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::Now(tx)).map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    pub async fn jobs_async(&self) -> Result<usize, Stopped> {
        let (tx, rx) = oneshot::channel();
        let q: Query = Box::new(move |s| {
            let _ = tx.send(s.job_count());
        });
        self.tx.send(Request::Query(q)).map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }
}

/// The driver thread.
pub struct Driver {
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    handle: Handle,
}

impl Driver {
    /// Starts the driver thread; `host` executes notifications and command lines.
    pub fn start(config: DriverConfig, host: Arc<dyn ExternalHost>) -> std::io::Result<Driver> {
        let mut trace: Box<dyn Write + Send> = match &config.trace {
            Some(path) => Box::new(std::io::LineWriter::new(std::fs::File::create(path)?)),
            None => Box::new(std::io::sink()),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
        let (user_tx, user_rx) = std::sync::mpsc::channel();
        let epoch = Arc::new(std::sync::Mutex::new(std::time::SystemTime::now()));
        let driver_epoch = epoch.clone();
        let thread =
            std::thread::Builder::new()
                .name("bitsim-driver".into())
                .spawn(move || -> std::io::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    rt.block_on(async move {
                        let (mut sim, user) = simulator(&config, &host, config.seed);
                        let _ = user_tx.send(user);
                        writeln!(
                            trace,
                            "## bitsim com-server [{}] seed={} time-scale={}",
                            config.profile.flavor, config.seed, config.time_scale
                        )?;
                        loop {
                            // Run the model until a request arrives: each step returns
                            // after one input or timer, and is safe to drop at its await.
                            let deadline = Time(sim.now().0.saturating_add(86_400_000));
                            let request = {
                                let step = sim.advance_until(deadline);
                                tokio::select! {
                                    biased;
                                    r = rx.recv() => Some(r),
                                    _ = step => None,
                                }
                            };
                            match request {
                                None => {}
                                Some(None) | Some(Some(Request::Shutdown)) => break,
                                Some(Some(Request::Reset(seed, done))) => {
                                    sim.shutdown();
                                    for line in sim.take_trace() {
                                        writeln!(trace, "{line}")?;
                                    }
                                    writeln!(trace, "## reset seed={seed}")?;
                                    host.reset();
                                    sim = simulator(&config, &host, seed).0;
                                    *driver_epoch.lock().unwrap_or_else(|e| e.into_inner()) =
                                        std::time::SystemTime::now();
                                    let _ = done.send(());
                                }
                                Some(Some(r)) => serve(&mut sim, r).await,
                            }
                            for line in sim.take_trace() {
                                writeln!(trace, "{line}")?;
                            }
                        }
                        sim.shutdown();
                        for line in sim.take_trace() {
                            writeln!(trace, "{line}")?;
                        }
                        trace.flush()
                    })
                })?;
        let user = user_rx
            .recv()
            .map_err(|_| std::io::Error::other("the bitsim driver did not start"))?;
        Ok(Driver {
            thread: Some(thread),
            handle: Handle { tx, user, epoch },
        })
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops the driver and waits for its thread (the trace is flushed).
    pub fn join(mut self) -> std::io::Result<()> {
        self.handle.shutdown();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the bitsim driver thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fresh simulator for the driver, and its one user.
fn simulator(config: &DriverConfig, host: &Arc<dyn ExternalHost>, seed: u64) -> (Simulator, UserId) {
    let mut sim_config = SimConfig::new(config.profile.flavor, seed, Default::default(), PathBuf::new());
    // The client names its own local paths, as with real BITS.
    sim_config.files = bitsim_engine::LocalFiles::Anywhere;
    sim_config.profile = config.profile.clone();
    sim_config.time_scale = config.time_scale.max(1);
    sim_config.host = Some(host.clone());
    sim_config.max_trace_lines = u64::MAX;
    sim_config.max_steps_per_instant = u64::MAX;
    sim_config.connector = Some(match config.route_all_to {
        Some(addr) => Connector::Tcp(addr),
        None => Connector::ByUrl,
    });
    let mut sim = Simulator::new(sim_config);
    let user = sim.add_user(&config.user).unwrap_or(UserId(0));
    (sim, user)
}

async fn serve(sim: &mut Simulator, request: Request) {
    match request {
        Request::Call(call, reply) => {
            let r = sim.call(call).await;
            let _ = reply.send(r);
        }
        Request::Query(q) => q(sim.service()),
        Request::Env(event, done) => {
            let _ = sim.env(event).await;
            let _ = done.send(());
        }
        Request::Jump(jump, done) => {
            let now = sim.jump(jump.by, jump.stop_at_timer, SETTLE).await;
            let _ = done.send(now);
        }
        Request::Now(reply) => {
            let _ = reply.send(sim.now());
        }
        Request::Note(text) => sim.note(text),
        Request::ReplyBody(job, reply) => {
            let _ = reply.send(sim.reply_body(job));
        }
        Request::Shutdown | Request::Reset(..) => {}
    }
}
