//! # bitsim-engine
//!
//! The simulator: a tokio driver that feeds the sans-IO model (`bitsim-model`) and
//! executes its effects — transfers over HTTP to the mock server (`bitsim-server`),
//! temporary files and renames in a real directory, callbacks by the scenario's
//! callback policy, the notify command line as a recorded run. It decides nothing
//! about BITS semantics: every decision is the model's.
//!
//! Run it on a current-thread runtime with a paused clock
//! (`tokio::runtime::Builder::new_current_thread().start_paused(true)`) and the
//! in-memory connector: time is virtual and a run is deterministic for a seed.

mod confine;
mod rundir;
mod transfer;
pub mod wire;

use bitsim_model::{
    ApiCall, ApiReply, Callback, Effect, EnvEvent, Flavor, Hresult, JobId, NotificationId, NotificationKind, Profile,
    Service, Time, TraceEvent, TransferId, TransferWhat, UserId,
};
use bitsim_scenario::{Backend, CallbackPolicy, CommandRun, Delivery, NotApplicable};
use bitsim_server::{MockServer, Plan, RequestLogEntry};
use bytes::Bytes;
pub use confine::LocalFiles;
pub use rundir::{remove_live_run_dirs, RunDir};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use transfer::{Input, Task};
pub use wire::Connector;

/// The authority used for mock-server URLs on the in-memory lane (never resolved).
pub const SIM_HOST: &str = "bitsim.test";

/// How to build a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub profile: Profile,
    pub seed: u64,
    pub plan: Plan,
    /// Where local files, temporaries and replies may be: the run's directory
    /// (`SimConfig::new`), or, said explicitly, anywhere (the COM facade, whose
    /// client names its own local paths).
    pub files: LocalFiles,
    /// `None`: an in-memory mock server with `plan` (deterministic lane).
    pub tcp: Option<std::net::SocketAddr>,
    /// Use this mock server (e.g. the one serving `tcp`) instead of a new one with
    /// `plan`, so `requests()` and `set_plan` reach the server the transfers use.
    pub server: Option<MockServer>,
    /// Open HTTP connections at most (a transport limit, like WinHTTP's per-server
    /// connection cap; jobs beyond it wait in CONNECTING). Bounds memory when
    /// thousands of foreground jobs start at once.
    pub max_connections: usize,
    /// Simulator steps allowed at one virtual instant before the run is stopped
    /// as making no progress (e.g. a server that rewinds every upload fragment
    /// to 0 forever). Far above what any real scenario needs at one instant.
    pub max_steps_per_instant: u64,
    /// Trace lines a run may write before it is stopped: memory stays bounded
    /// even without a wall-clock timeout (a busy 100-year run would otherwise
    /// grow its trace for as long as it runs).
    pub max_trace_lines: u64,
    /// Set by a wall-clock watchdog: the run stops at its next step.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Virtual milliseconds per millisecond of the runtime's clock: 1 for
    /// scenario runs (the paused clock makes every wait instant anyway); N for
    /// the COM facade's `--time-scale N` on a real clock, so a 600 s retry
    /// delay takes 600 / N seconds of wall time.
    pub time_scale: u64,
    /// Who answers notifications and runs the notify command line. `None`: the
    /// scenario's callback policies and exit codes (recorded, virtual);
    /// `Some`: a real host (the COM facade calls the client's callback objects
    /// and starts real processes).
    pub host: Option<std::sync::Arc<dyn ExternalHost>>,
    /// Overrides where requests go (e.g. [`Connector::ByUrl`] for the COM
    /// facade); `None`: from `tcp`.
    pub connector: Option<Connector>,
}

/// Executes notifications and command lines for real, outside the simulator
/// (the COM facade). It decides nothing: it calls what the model said to call
/// and reports the result through [`Completion`].
pub trait ExternalHost: Send + Sync + std::fmt::Debug {
    /// Calls the job's callback object; report its HRESULT with
    /// [`Completion::notification_returned`], from any thread, once it returned.
    fn notify(&self, notification: bitsim_model::Notification, done: Completion);
    /// Starts `program` with `parameters`; report its exit code with
    /// [`Completion::command_line_exited`].
    fn run_command_line(&self, id: NotificationId, job: JobId, program: String, parameters: String, done: Completion);
    /// The model behind it was replaced by a fresh one: forget what the old one
    /// knew by number (the COM facade drops its clients' old callback objects).
    fn reset(&self) {}
}

/// How an [`ExternalHost`] hands a result back to the simulator (any thread).
#[derive(Debug, Clone)]
pub struct Completion {
    tx: mpsc::UnboundedSender<Input>,
}

impl Completion {
    /// The callback method returned `hr` (RPC_E_DISCONNECTED for a dead client).
    pub fn notification_returned(&self, id: NotificationId, hr: Hresult) {
        let _ = self.tx.send(Input::NotifyReturned(id, hr));
    }

    /// The notify command line's process exited with `code`.
    pub fn command_line_exited(&self, id: NotificationId, code: i32) {
        let _ = self.tx.send(Input::CommandExited(id, code));
    }
}

/// Default of [`SimConfig::max_trace_lines`] (about 100 MB of trace).
pub const MAX_TRACE_LINES: u64 = 1_000_000;

/// Default of [`SimConfig::max_steps_per_instant`].
pub const MAX_STEPS_PER_INSTANT: u64 = 100_000;

impl SimConfig {
    pub fn new(flavor: Flavor, seed: u64, plan: Plan, root: PathBuf) -> SimConfig {
        SimConfig {
            profile: flavor.profile(),
            seed,
            plan,
            files: LocalFiles::Confined(root),
            tcp: None,
            server: None,
            max_connections: 256,
            max_steps_per_instant: MAX_STEPS_PER_INSTANT,
            max_trace_lines: MAX_TRACE_LINES,
            stop: None,
            time_scale: 1,
            host: None,
            connector: None,
        }
    }
}

struct CallbackObject {
    name: String,
    policy: CallbackPolicy,
    /// Deliveries so far, per callback method (drives `returns`).
    calls: HashMap<NotificationKind, usize>,
}

/// The simulator backend.
pub struct Simulator {
    service: Service,
    server: MockServer,
    connector: Connector,
    connections: std::sync::Arc<tokio::sync::Semaphore>,
    host: String,
    files: LocalFiles,
    start: Instant,
    tx: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
    tasks: HashMap<TransferId, JoinHandle<()>>,
    callbacks: Vec<CallbackObject>,
    /// Calls of `block_until_release` callbacks: (callback index, delivery, result).
    held: Vec<(usize, NotificationId, Hresult)>,
    cmd_exit_codes: HashMap<JobId, (Vec<i32>, usize)>,
    deliveries: Vec<Delivery>,
    delivery_index: HashMap<NotificationId, usize>,
    command_runs: Vec<CommandRun>,
    trace: Vec<String>,
    /// The model's events, kept only when [`Simulator::keep_events`] asked for them.
    events: Option<Vec<TraceEvent>>,
    /// Which job opened each mock-server connection.
    connection_jobs: Vec<(u64, JobId)>,
    temp_names: HashMap<(JobId, usize), (PathBuf, PathBuf)>,
    last_modified: HashMap<(JobId, usize), Option<String>>,
    sessions: HashMap<JobId, String>,
    reply_urls: HashMap<JobId, String>,
    replies: HashMap<JobId, Bytes>,
    /// Cancel-Session tries under way.
    cancels_in_flight: usize,
    /// Steps taken at the current virtual instant (the zero-progress guard).
    steps_at: (Time, u64),
    max_steps_per_instant: u64,
    /// Trace lines written so far (the runner takes them away as it goes).
    trace_lines: u64,
    max_trace_lines: u64,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Why the run was stopped, once it was.
    halted: Option<String>,
    /// See [`SimConfig::time_scale`].
    time_scale: u64,
    /// Virtual milliseconds added by [`Simulator::jump`].
    jumped: u64,
    external: Option<std::sync::Arc<dyn ExternalHost>>,
    /// Command lines an external host is running, and their jobs.
    pending_commands: HashMap<NotificationId, JobId>,
    /// Notifications an external host is delivering.
    outstanding: std::collections::HashSet<NotificationId>,
}

impl Simulator {
    /// Builds a simulator. Must be called inside a tokio runtime.
    pub fn new(config: SimConfig) -> Simulator {
        let server = config
            .server
            .unwrap_or_else(|| MockServer::new(config.plan, config.seed));
        let (connector, host) = match (config.connector, config.tcp) {
            (Some(c), _) => (c, SIM_HOST.to_string()),
            (None, Some(addr)) => (Connector::Tcp(addr), addr.to_string()),
            (None, None) => (Connector::InMemory(server.clone()), SIM_HOST.to_string()),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        if let LocalFiles::Confined(root) = &config.files {
            // One `mkdir` when it is there already (explore reuses its directory).
            match std::fs::create_dir(root) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    let _ = std::fs::create_dir_all(root);
                }
                _ => {}
            }
        }
        // The request log's times then line up with the trace's.
        server.start_clock();
        Simulator {
            service: Service::with_profile(config.profile, config.seed),
            server,
            connector,
            connections: std::sync::Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1))),
            host,
            files: config.files,
            start: Instant::now(),
            tx,
            rx,
            tasks: HashMap::new(),
            callbacks: Vec::new(),
            held: Vec::new(),
            cmd_exit_codes: HashMap::new(),
            deliveries: Vec::new(),
            delivery_index: HashMap::new(),
            command_runs: Vec::new(),
            trace: Vec::new(),
            events: None,
            connection_jobs: Vec::new(),
            temp_names: HashMap::new(),
            last_modified: HashMap::new(),
            sessions: HashMap::new(),
            reply_urls: HashMap::new(),
            replies: HashMap::new(),
            cancels_in_flight: 0,
            steps_at: (Time(0), 0),
            max_steps_per_instant: config.max_steps_per_instant,
            trace_lines: 0,
            max_trace_lines: config.max_trace_lines,
            stop: config.stop,
            halted: None,
            time_scale: config.time_scale.max(1),
            jumped: 0,
            external: config.host,
            pending_commands: HashMap::new(),
            outstanding: Default::default(),
        }
    }

    /// Why the run was stopped (watchdog or no progress), if it was.
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// Stops the run when the watchdog fired or too many steps happened at
    /// one virtual instant; true when stopped.
    fn check_progress(&mut self) -> bool {
        if self.halted.is_some() {
            return true;
        }
        let now = self.time();
        if self.steps_at.0 == now {
            self.steps_at.1 += 1;
        } else {
            self.steps_at = (now, 1);
        }
        if self.trace_lines > self.max_trace_lines {
            self.halted = Some(format!(
                "trace too long: more than {} lines (the run would grow without bound)",
                self.max_trace_lines
            ));
        } else if self.steps_at.1 > self.max_steps_per_instant {
            self.halted = Some(format!(
                "no progress: more than {} simulator steps at virtual time {now} without time passing (a loop, e.g. a server that rewinds every fragment)",
                self.max_steps_per_instant
            ));
        } else if self
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        {
            self.halted = Some("wall-clock timeout: the run took longer than --timeout".into());
        }
        self.halted.is_some()
    }

    /// Whether `path` may be touched; a refusal is written to the trace.
    fn confined(&mut self, path: &Path) -> bool {
        match self.files.check(path) {
            Ok(()) => true,
            Err(e) => {
                self.line(format!("refused local path: {e}"));
                false
            }
        }
    }

    /// Aborts the transfers still running: the run is over, and a runtime that is
    /// reused for the next run (bitsim explore) should not keep them going.
    pub fn shutdown(&mut self) {
        for (_, task) in self.tasks.drain() {
            task.abort();
        }
    }

    /// The model, for inspection.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Registers an administrator (exempt from the job limits, ref: bits-spec §9).
    pub fn add_admin_user(&mut self, name: &str) -> UserId {
        self.service.add_admin_user(name)
    }

    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// Turns the model's trace off (benchmarks).
    pub fn set_trace_enabled(&mut self, on: bool) {
        self.service.set_trace_enabled(on);
    }

    fn time(&self) -> Time {
        let elapsed = self.start.elapsed();
        let ms = match self.time_scale {
            1 => elapsed.as_millis() as u64,
            n => (elapsed.as_micros() as u64).saturating_mul(n) / 1000,
        };
        Time(self.jumped.saturating_add(ms))
    }

    /// When the runtime's clock reaches virtual time `t` (rounded up, so a
    /// timer never fires early; at most 100 years ahead).
    fn instant(&self, t: Time) -> Instant {
        const MAX_US: u64 = 100 * 365 * 86_400 * 1_000_000;
        let virtual_ms = t.0.saturating_sub(self.jumped);
        let wall_us = virtual_ms.saturating_mul(1000).div_ceil(self.time_scale);
        self.start + std::time::Duration::from_micros(wall_us.min(MAX_US))
    }

    /// Moves virtual time ahead to `t` at once (no-op when `t` is not ahead).
    fn jump_to(&mut self, t: Time) {
        let now = self.time();
        if t > now {
            self.jumped = self.jumped.saturating_add(t.0 - now.0);
        }
    }

    /// "Jump ahead by D" (the COM facade's control endpoint): virtual time moves
    /// forward timer by timer, and before each the transfers under way finish
    /// (they are real I/O: a slow server still takes its time), so events keep
    /// the order they would have in real time. `settle` bounds the wall time
    /// spent per timer. With `stop_at_timer`, stops after the
    /// first timer (a runner that watches every change steps this way).
    /// Returns the virtual time reached.
    pub async fn jump(&mut self, by: std::time::Duration, stop_at_timer: bool, settle: std::time::Duration) -> Time {
        let target = Time(self.time().0.saturating_add(by.as_millis() as u64));
        self.line(format!(
            "clock jump ahead by {}{}",
            Time(by.as_millis() as u64),
            if stop_at_timer { " (to the next timer)" } else { "" }
        ));
        // Bounded: a model that re-arms a timer at the same instant forever
        // cannot hold the endpoint.
        for _ in 0..100_000 {
            let next = self.service.poll_timeout().filter(|t| *t <= target);
            let goal = next.unwrap_or(target);
            self.settle(settle).await;
            self.jump_to(goal);
            let Some(_) = next else {
                break;
            };
            let now = self.time();
            if self.service.poll_timeout().is_some_and(|t| t <= now) {
                self.service.handle_timeout(now);
            }
            self.pump();
            if stop_at_timer {
                self.settle(settle).await;
                return self.time();
            }
        }
        self.time()
    }

    /// Runs inputs and due timers until no transfer or Cancel-Session is under
    /// way, or `limit` of wall time passed. Callbacks under way do not hold a
    /// jump: they are the client's, and return on its clock (a client that
    /// blocks "for 5 s" of the run's time counts the jump in).
    async fn settle(&mut self, limit: std::time::Duration) {
        let until = Instant::now() + limit;
        loop {
            self.pump();
            if let Ok(input) = self.rx.try_recv() {
                self.handle_input(input);
                continue;
            }
            let now = self.time();
            if self.service.poll_timeout().is_some_and(|t| t <= now) {
                self.service.handle_timeout(now);
                continue;
            }
            self.tasks.retain(|_, task| !task.is_finished());
            let transfers = !self.tasks.is_empty() || self.cancels_in_flight > 0;
            if !transfers || Instant::now() >= until {
                return;
            }
            let wake = self
                .service
                .poll_timeout()
                .map_or(until, |t| self.instant(t).min(until));
            let input = tokio::select! {
                Some(input) = self.rx.recv() => Some(input),
                _ = tokio::time::sleep_until(wake) => None,
            };
            if let Some(input) = input {
                self.handle_input(input);
            }
        }
    }

    /// Writes a line of the executor's own to the trace (the COM facade notes a
    /// method it has no rule for).
    pub fn note(&mut self, text: String) {
        self.line(text);
    }

    /// The reply body an upload-reply job received (GetReplyData's bytes; the
    /// model decides whether they may be read and how many there are).
    pub fn reply_body(&self, job: JobId) -> Option<Bytes> {
        self.replies.get(&job).cloned()
    }

    /// A handle for returning results from outside (see [`ExternalHost`]).
    pub fn completion(&self) -> Completion {
        Completion { tx: self.tx.clone() }
    }

    fn line(&mut self, text: String) {
        let now = self.time();
        self.trace.push(format!("{}  {text}", now.padded()));
        self.trace_lines += 1;
    }

    /// Keeps the model's structured events for [`Backend::take_events`] (the HTML
    /// report draws them); off by default, so big runs do not hold them twice.
    pub fn keep_events(&mut self, on: bool) {
        self.events = on.then(Vec::new);
    }

    fn drain_model_trace(&mut self) {
        for e in self.service.take_trace() {
            // Sized for a typical line: formatting then grows it once at most.
            let mut line = String::with_capacity(96);
            let _ = std::fmt::Write::write_fmt(&mut line, format_args!("{e}"));
            self.trace.push(line);
            self.trace_lines += 1;
            if let Some(events) = &mut self.events {
                events.push(e);
            }
        }
    }

    /// Executes every effect the model has queued.
    fn pump(&mut self) {
        while let Some(effect) = self.service.poll_effect() {
            self.drain_model_trace();
            self.execute(effect);
        }
        self.drain_model_trace();
    }

    fn execute(&mut self, effect: Effect) {
        let now = self.time();
        match effect {
            Effect::StartTransfer(start) => {
                let temp = match start.what {
                    TransferWhat::File(n) => self.temp_path(start.job, n, &start.local_name),
                    TransferWhat::Reply => PathBuf::new(),
                };
                let task = Task {
                    files: self.files.clone(),
                    connector: self.connector.clone(),
                    connections: self.connections.clone(),
                    tx: self.tx.clone(),
                    temp,
                    last_modified: match start.what {
                        TransferWhat::File(n) => self.last_modified.get(&(start.job, n)).cloned().flatten(),
                        TransferWhat::Reply => None,
                    },
                    session: self.sessions.get(&start.job).cloned(),
                    reply_url: self.reply_urls.get(&start.job).cloned(),
                    auth: Default::default(),
                    start: start.clone(),
                };
                let span =
                    tracing::debug_span!("transfer", job = %start.job, what = %start.what, offset = start.offset);
                self.tasks.insert(
                    start.transfer,
                    tokio::spawn(tracing::Instrument::instrument(task.run(), span)),
                );
            }
            Effect::AbortTransfer { transfer, .. } => {
                if let Some(h) = self.tasks.remove(&transfer) {
                    h.abort();
                }
            }
            Effect::Notify(n) => {
                if let Some(host) = self.external.clone() {
                    self.record_delivery(&n, now);
                    self.outstanding.insert(n.id);
                    host.notify(n, self.completion());
                    return;
                }
                let idx = n.callback.id as usize;
                let (hr, block, hold) = match self.callbacks.get_mut(idx) {
                    Some(cb) => {
                        let count = cb.calls.entry(n.kind).or_insert(0);
                        let list = cb
                            .policy
                            .returns_by_kind
                            .iter()
                            .find(|(k, _)| k.0 == n.kind)
                            .map(|(_, v)| v);
                        let list = list.unwrap_or(&cb.policy.returns);
                        let hr = if cb.policy.disconnected {
                            Hresult::RPC_E_DISCONNECTED
                        } else {
                            list.get(*count).or(list.last()).map_or(Hresult::S_OK, |h| h.0)
                        };
                        *count += 1;
                        (hr, cb.policy.block.map(|d| d.0), cb.policy.block_until_release)
                    }
                    None => (Hresult::RPC_E_DISCONNECTED, None, false),
                };
                tracing::debug!(job = %n.job, kind = %n.kind, attempt = n.attempt, returns = %hr, "notification");
                self.record_delivery(&n, now);
                if hold {
                    self.held.push((idx, n.id, hr));
                } else if let Some(d) = block.filter(|d| d.0 > 0) {
                    let tx = self.tx.clone();
                    let id = n.id;
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(d.0)).await;
                        let _ = tx.send(Input::NotifyReturned(id, hr));
                    });
                } else {
                    self.returned(n.id, hr);
                }
            }
            Effect::RunCommandLine {
                id,
                job,
                program,
                parameters,
            } if self.external.is_some() => {
                if let Some(host) = self.external.clone() {
                    self.pending_commands.insert(id, job);
                    host.run_command_line(id, job, program, parameters, self.completion());
                }
            }
            Effect::RunCommandLine { id, job, .. } => {
                let (codes, next) = self.cmd_exit_codes.entry(job).or_insert_with(|| (vec![0], 0));
                let code = codes.get(*next).or(codes.last()).copied().unwrap_or(0);
                *next += 1;
                self.command_runs.push(CommandRun {
                    at: now,
                    job,
                    exit_code: code,
                });
                self.service.command_line_exited(now, id, code);
            }
            Effect::RenameFiles { job, files, reply } => {
                for (n, local) in files {
                    let temp = self.temp_path(job, n, &local);
                    if !self.confined(&temp) || !self.confined(Path::new(&local)) {
                        continue;
                    }
                    if std::fs::rename(&temp, &local).is_err() {
                        // A zero-length file never got a temporary.
                        let _ = std::fs::write(&local, b"");
                    }
                }
                if let Some(path) = reply {
                    let path = PathBuf::from(path);
                    let body = self.replies.get(&job).cloned().unwrap_or_default();
                    if self.confined(&path) {
                        let _ = std::fs::write(path, &body);
                    }
                }
            }
            Effect::CancelUploadSession { job, remote_name, .. } => {
                self.cancels_in_flight += 1;
                let session = self.sessions.get(&job).cloned();
                tokio::spawn(transfer::cancel_session(
                    self.connector.clone(),
                    self.tx.clone(),
                    job,
                    remote_name,
                    session,
                ));
            }
            Effect::DeleteTempFiles { job, files } => {
                for n in files {
                    if let Some((temp, _)) = self.temp_names.get(&(job, n)).cloned() {
                        if self.confined(&temp) {
                            let _ = std::fs::remove_file(temp);
                        }
                    }
                }
            }
        }
    }

    /// Notes a delivery for `Backend::deliveries` (its return comes later).
    fn record_delivery(&mut self, n: &bitsim_model::Notification, now: Time) {
        self.delivery_index.insert(n.id, self.deliveries.len());
        self.deliveries.push(Delivery {
            at: now,
            job: n.job,
            kind: n.kind,
            attempt: n.attempt,
            returned: None,
            error: n.error,
            file: n.file,
        });
    }

    fn returned(&mut self, id: NotificationId, hr: Hresult) {
        self.outstanding.remove(&id);
        if let Some(&i) = self.delivery_index.get(&id) {
            self.deliveries[i].returned = Some(hr);
        }
        let now = self.time();
        self.service.notification_returned(now, id, hr);
    }

    /// BITS writes each download to a temporary file in the destination directory
    /// (ref: bits-spec §7.2; the `BIT*.tmp` name is the common observation).
    fn temp_path(&mut self, job: JobId, file: usize, local: &str) -> PathBuf {
        let local = PathBuf::from(local);
        self.temp_names
            .entry((job, file))
            .or_insert_with(|| {
                let dir = local.parent().map(Path::to_path_buf).unwrap_or_default();
                (dir.join(format!("BIT{}_{file}.tmp", job.0)), local.clone())
            })
            .0
            .clone()
    }

    fn handle_input(&mut self, input: Input) {
        let now = self.time();
        match input {
            Input::Transfer(id, event) => {
                let done = matches!(
                    event,
                    bitsim_model::TransferEvent::FileDone | bitsim_model::TransferEvent::Failed(_)
                );
                self.service.handle_transfer(now, id, event);
                if done {
                    self.tasks.remove(&id);
                }
            }
            Input::Line(text) => self.line(text),
            Input::Connection(id, job) => self.connection_jobs.push((id, job)),
            Input::NotifyReturned(id, hr) => self.returned(id, hr),
            Input::CommandExited(id, code) => {
                if let Some(job) = self.pending_commands.remove(&id) {
                    self.command_runs.push(CommandRun {
                        at: now,
                        job,
                        exit_code: code,
                    });
                }
                self.service.command_line_exited(now, id, code);
            }
            Input::LastModified(job, file, lm) => {
                self.last_modified.insert((job, file), lm);
            }
            Input::Session(job, Some(s)) => {
                self.sessions.insert(job, s);
            }
            Input::Session(job, None) => {
                self.sessions.remove(&job);
            }
            Input::ReplyUrl(job, url) => {
                self.reply_urls.insert(job, url);
            }
            Input::ReplyBody(job, body) => {
                self.replies.insert(job, body);
            }
            Input::CancelSessionDone(job, reached) => {
                self.cancels_in_flight = self.cancels_in_flight.saturating_sub(1);
                self.service.cancel_session_result(now, job, reached);
            }
        }
    }

    /// Runs until `deadline`, returning after the first input or timer.
    async fn step(&mut self, deadline: Time) {
        if self.check_progress() {
            return;
        }
        self.pump();
        if let Ok(input) = self.rx.try_recv() {
            self.handle_input(input);
            self.pump();
            return;
        }
        let timer = self.service.poll_timeout();
        let wake = timer.map_or(deadline, |t| t.min(deadline));
        if wake > self.time() {
            let until = self.instant(wake);
            let input = tokio::select! {
                biased;
                Some(input) = self.rx.recv() => Some(input),
                _ = tokio::time::sleep_until(until) => None,
            };
            if let Some(input) = input {
                self.handle_input(input);
                self.pump();
                return;
            }
        }
        let now = self.time();
        if timer.is_some_and(|t| t <= now) {
            self.service.handle_timeout(now);
        }
        self.pump();
    }

    /// Runs until nothing is left to do before `deadline` (no timer, no task).
    pub async fn run_until(&mut self, deadline: Time) {
        while self.time() < deadline && self.halted.is_none() {
            self.step(deadline).await;
        }
        self.pump();
    }

    /// Runs until every transfer task has finished and no timer is due before
    /// `deadline`; returns the time reached.
    pub async fn run_until_idle(&mut self, deadline: Time) -> Time {
        loop {
            self.pump();
            let busy = !self.tasks.is_empty() || !self.held.is_empty() || self.cancels_in_flight > 0;
            let timer = self.service.poll_timeout().filter(|t| *t < deadline);
            if (!busy && timer.is_none() && self.rx.is_empty()) || self.halted.is_some() {
                return self.time();
            }
            self.step(deadline).await;
            if self.time() >= deadline {
                return self.time();
            }
        }
    }
}

impl Backend for Simulator {
    fn name(&self) -> String {
        "model".into()
    }

    fn flavor(&self) -> Flavor {
        self.service.profile().flavor
    }

    fn now(&self) -> Time {
        self.time()
    }

    fn add_user(&mut self, name: &str) -> Result<UserId, NotApplicable> {
        Ok(self.service.add_user(name))
    }

    fn set_user_kind(&mut self, user: UserId, kind: bitsim_model::OwnerKind) -> Result<(), NotApplicable> {
        self.service.set_user_kind(user, kind);
        Ok(())
    }

    fn define_callback(&mut self, name: &str, policy: &CallbackPolicy) -> Callback {
        self.callbacks.push(CallbackObject {
            name: name.to_string(),
            policy: policy.clone(),
            calls: HashMap::new(),
        });
        Callback {
            id: self.callbacks.len() as u32 - 1,
            callback2: policy.callback2,
        }
    }

    fn set_cmdline_exit_codes(&mut self, job: JobId, codes: &[i32]) {
        self.cmd_exit_codes.insert(job, (codes.to_vec(), 0));
    }

    fn url(&self, path: &str) -> String {
        // Non-HTTP sources in the run's directory: `local:NAME` (a plain path),
        // `file:NAME` (a file:// URL), `unc:NAME` (\\bitsim.test\run\NAME).
        if let Some(name) = path.strip_prefix("local:") {
            self.files.dir().join(name).to_string_lossy().into_owned()
        } else if let Some(name) = path.strip_prefix("unc:") {
            format!("{}{}", transfer::UNC_PREFIX, name.replace('/', "\\"))
        } else if let Some(name) = path.strip_prefix("file:").filter(|n| !n.starts_with("//")) {
            format!("file://{}", self.files.dir().join(name).to_string_lossy())
        } else if path.starts_with("http://") || path.starts_with("https://") || path.starts_with("file:") {
            path.to_string()
        } else {
            format!("http://{}{path}", self.host)
        }
    }

    fn local_path(&self, name: &str) -> String {
        self.files.dir().join(name).to_string_lossy().into_owned()
    }

    async fn call(&mut self, call: ApiCall) -> ApiReply {
        let now = self.time();
        let reply = self.service.call(now, &call);
        self.pump();
        reply
    }

    async fn advance_until(&mut self, deadline: Time) {
        self.step(deadline).await;
    }

    async fn env(&mut self, event: EnvEvent) -> Result<(), NotApplicable> {
        let now = self.time();
        self.service.handle_env(now, event);
        self.pump();
        Ok(())
    }

    async fn set_plan(&mut self, plan: Plan) -> Result<(), NotApplicable> {
        self.server.set_plan(plan);
        self.line("server plan replaced".into());
        Ok(())
    }

    async fn release_callback(&mut self, name: &str) {
        let Some(idx) = self.callbacks.iter().position(|c| c.name == name) else {
            return;
        };
        let (release, keep): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(i, _, _)| *i == idx);
        self.held = keep;
        for (_, id, hr) in release {
            self.returned(id, hr);
        }
        self.pump();
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.clone()
    }

    fn command_runs(&self) -> Vec<CommandRun> {
        self.command_runs.clone()
    }

    fn in_flight(&self, user: UserId) -> Result<usize, NotApplicable> {
        Ok(self.service.notifications_in_flight(user))
    }

    fn requests(&self) -> Result<Vec<RequestLogEntry>, NotApplicable> {
        Ok(self.server.log())
    }

    fn write_file(&mut self, name: &str, size: u64) -> std::io::Result<()> {
        use std::io::Write;
        if size > bitsim_scenario::validate::MAX_WRITE_FILE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "write_file: at most 256 MiB",
            ));
        }
        let path = self.files.dir().join(name);
        self.files.check(&path)?;
        // Written in chunks: memory stays small whatever the size.
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut chunk = Vec::with_capacity(64 * 1024);
        let mut i = 0u64;
        while i < size {
            chunk.clear();
            let end = size.min(i + 64 * 1024);
            chunk.extend((i..end).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8));
            out.write_all(&chunk)?;
            i = end;
        }
        out.flush()
    }

    fn file_size(&self, name: &str) -> Option<u64> {
        let path = self.files.dir().join(name);
        self.files
            .metadata(&path)
            .ok()?
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    fn halted(&self) -> Option<String> {
        self.halted.clone()
    }

    fn route_digest(&self, path: &str) -> Result<Option<[u8; 32]>, NotApplicable> {
        Ok(self.server.route_digest(path))
    }

    fn uploaded_size(&self, path: &str) -> Result<Option<u64>, NotApplicable> {
        Ok(self.server.uploaded(path).map(|b| b.len() as u64))
    }

    fn take_trace(&mut self) -> Vec<String> {
        self.drain_model_trace();
        std::mem::take(&mut self.trace)
    }

    fn connection_jobs(&self) -> Vec<(u64, JobId)> {
        self.connection_jobs.clone()
    }

    fn take_events(&mut self) -> Vec<TraceEvent> {
        self.drain_model_trace();
        self.events.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn list_files(&self) -> Option<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(self.files.dir())
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Some(names)
    }
}

/// Limits of one simulator run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Wall-clock watchdog: stop the run after this long (`None`: no limit).
    pub timeout: Option<std::time::Duration>,
    /// Keep the run's directory afterwards (for debugging); its path is logged.
    pub keep_run_dir: bool,
    /// See [`SimConfig::max_steps_per_instant`].
    pub max_steps_per_instant: u64,
    /// See [`SimConfig::max_trace_lines`].
    pub max_trace_lines: u64,
    /// The model's Profile, when not the flavor's own (`--profile-field`).
    pub profile: Option<bitsim_model::Profile>,
}

/// The CLI's default `--timeout`: 60 s of wall-clock time per scenario run.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            timeout: Some(DEFAULT_TIMEOUT),
            keep_run_dir: false,
            max_steps_per_instant: MAX_STEPS_PER_INSTANT,
            max_trace_lines: MAX_TRACE_LINES,
            profile: None,
        }
    }
}

/// Runs one scenario under one flavor on a fresh simulator: a current-thread tokio
/// runtime with a paused clock, the in-memory mock server, and a fresh run directory
/// under `scratch` (random name, owner-only) that is removed afterwards, also when
/// the run panics. Uses the default [`RunOptions`].
pub fn run_scenario(
    loaded: &bitsim_scenario::LoadedScenario,
    flavor: Flavor,
    seed: u64,
    scratch: &Path,
) -> std::io::Result<bitsim_scenario::RunReport> {
    run_scenario_with(loaded, flavor, seed, scratch, &RunOptions::default())
}

/// [`run_scenario`] with explicit limits.
pub fn run_scenario_with(
    loaded: &bitsim_scenario::LoadedScenario,
    flavor: Flavor,
    seed: u64,
    scratch: &Path,
    options: &RunOptions,
) -> std::io::Result<bitsim_scenario::RunReport> {
    run_scenario_inner(loaded, flavor, seed, scratch, options, false).map(|(report, _)| report)
}

/// [`run_scenario_with`], also returning the run's structured events, requests
/// and deliveries (what `bitsim run --report` draws).
pub fn run_scenario_observed(
    loaded: &bitsim_scenario::LoadedScenario,
    flavor: Flavor,
    seed: u64,
    scratch: &Path,
    options: &RunOptions,
) -> std::io::Result<(bitsim_scenario::RunReport, bitsim_scenario::Observed)> {
    run_scenario_inner(loaded, flavor, seed, scratch, options, true)
}

fn run_scenario_inner(
    loaded: &bitsim_scenario::LoadedScenario,
    flavor: Flavor,
    seed: u64,
    scratch: &Path,
    options: &RunOptions,
    keep_events: bool,
) -> std::io::Result<(bitsim_scenario::RunReport, bitsim_scenario::Observed)> {
    let run_dir = RunDir::new(scratch)?;
    let root = run_dir.path().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = options.timeout.map(|t| Watchdog::start(t, stop.clone()));
    let mut config = SimConfig::new(flavor, seed, loaded.plan.clone(), root);
    config.max_steps_per_instant = options.max_steps_per_instant;
    config.max_trace_lines = options.max_trace_lines;
    config.stop = Some(stop);
    if let Some(profile) = &options.profile {
        config.profile = profile.clone();
    }
    let span = tracing::info_span!("scenario", name = %loaded.name, flavor = %flavor, seed);
    let report = rt.block_on(tracing::Instrument::instrument(
        async {
            let mut sim = Simulator::new(config);
            sim.keep_events(keep_events);
            let (report, observed) = match keep_events {
                true => bitsim_scenario::run_observed(loaded, &mut sim, seed).await,
                false => (bitsim_scenario::run(loaded, &mut sim, seed).await, Default::default()),
            };
            tracing::info!(verdict = ?report.verdict, covered = %report.covered, "scenario done");
            (report, observed)
        },
        span,
    ));
    drop(watchdog);
    drop(rt);
    if options.keep_run_dir {
        let kept = run_dir.keep();
        tracing::warn!("kept the run directory {}", kept.display());
    }
    Ok(report)
}

/// Sets a flag when a run takes longer than its timeout; dropping it ends the
/// watchdog thread at once.
struct Watchdog {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(timeout: std::time::Duration, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Watchdog {
        let (done, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        Watchdog {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
