//! [`WindowsBackend`]: `bitsim_scenario::Backend` over the real BITS service
//! (or Wine's qmgr), so the runner replays a scenario against it.
//!
//! The backend only forwards calls and records what the service says: every
//! API call returns the service's raw HRESULT (success codes included),
//! states and errors are read back with the real getters, and notifications
//! are whatever the service delivers to a [`CallbackRecorder`]. Time is real
//! (`now()` is the elapsed wall time since the run started); `advance_until`
//! sleeps in small steps and returns early on any observable change.
//!
//! Safety: every job gets the `bitsim-` display-name prefix and lives in a
//! [`JobGuard`], so it is cancelled when the backend drops (end of run,
//! panic, watchdog); local files only ever live in the run's own directory
//! (Wine turns an upload job into a download that overwrites its "source").
//!
//! What a real machine cannot do is reported as not applicable (never as a
//! pass): a second user, logoff/logon, network loss, a service restart, and
//! a scripted notify command line (it would start a real program).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use bitsim_model::{
    ApiCall, ApiReply, ApiValue, Callback, EnvEvent, Flavor, Hresult, JobId, NotificationKind, Time, UserId,
};
use bitsim_scenario::{Backend, CommandRun, Delivery, NotApplicable};
use bitsim_server::{MockServer, Plan, RequestLogEntry};

use crate::bits::{BitsJob, BitsManager, DISPLAY_NAME_PREFIX};
use crate::callback::{CallbackPolicy, CallbackRecorder, DeliveryKind};
use crate::guard::JobGuard;
use crate::hr::{Hr, Outcome};
use crate::types::{ErrorContext, JobGuid, JobPriority, JobState, JobTimes, JobType};

/// How often `advance_until` looks at the service.
const POLL: Duration = Duration::from_millis(50);
/// How long cleanup lets a transfer finish where it cannot suspend it.
const QUIESCE: Duration = Duration::from_secs(20);
/// BITS' display-name limit (bits-spec §1.2): the prefix must not change
/// whether a name is accepted.
const DISPLAY_NAME_MAX: usize = 256;

/// How the backend reaches the mock server's control side (plan, log).
#[derive(Clone)]
pub enum ServerControl {
    /// The server runs in this process (`bitsim conform`).
    InProcess(MockServer),
    /// Only its URL is known: `PUT /_bitsim/plan`, `GET /_bitsim/log`
    /// (loopback only; fails while the plan refuses connections).
    Http,
}

impl ServerControl {
    /// Replaces the mock server's plan; returns the trace line to record.
    pub(crate) fn set_plan(&self, base_url: &str, plan: Plan) -> Result<String, NotApplicable> {
        match self {
            ServerControl::InProcess(server) => {
                server.set_plan(plan);
                Ok("server plan replaced".into())
            }
            ServerControl::Http => {
                let fail = |e: String| NotApplicable(format!("cannot switch the server's plan: {e}"));
                let body = serde_json::to_string(&plan).map_err(|e| fail(e.to_string()))?;
                let (status, text) = http_request(base_url, "PUT", "/_bitsim/plan", &body).map_err(fail)?;
                if status != 200 {
                    return Err(fail(format!("PUT /_bitsim/plan: {status} {}", text.trim())));
                }
                Ok("server plan replaced (PUT /_bitsim/plan)".into())
            }
        }
    }

    /// The mock server's request log.
    pub(crate) fn log(&self, base_url: &str) -> Result<Vec<RequestLogEntry>, NotApplicable> {
        match self {
            ServerControl::InProcess(server) => Ok(server.log()),
            ServerControl::Http => {
                let (status, body) = http_request(base_url, "GET", "/_bitsim/log", "")
                    .map_err(|e| NotApplicable(format!("cannot read the server's log: {e}")))?;
                if status != 200 {
                    return Err(NotApplicable(format!("GET /_bitsim/log: {status}")));
                }
                serde_json::from_str(&body).map_err(|e| NotApplicable(format!("GET /_bitsim/log: {e}")))
            }
        }
    }
}

/// A control-endpoint path of the facade for one service
/// (`/_bitsim/jump?flavor=do`; docs/com-facade.md).
fn facade_path(route: &str, flavor: Flavor) -> String {
    format!("/_bitsim/{route}?flavor={}", flavor.as_str())
}

/// `BG_AUTH_TARGET` of the model's target (same numbering as bits.h).
fn auth_target(t: bitsim_model::AuthTarget) -> u32 {
    match t {
        bitsim_model::AuthTarget::Server => 1,
        bitsim_model::AuthTarget::Proxy => 2,
    }
}

/// `BG_AUTH_SCHEME` of the model's scheme (same numbering as bits.h).
fn auth_scheme(s: bitsim_model::AuthScheme) -> u32 {
    match s {
        bitsim_model::AuthScheme::Basic => 1,
        bitsim_model::AuthScheme::Digest => 2,
        bitsim_model::AuthScheme::Ntlm => 3,
        bitsim_model::AuthScheme::Negotiate => 4,
        bitsim_model::AuthScheme::Passport => 5,
    }
}

/// Environment events cannot be scripted on a real machine.
pub(crate) fn env_not_scripted(event: &EnvEvent, service: &str) -> NotApplicable {
    let what = match event {
        EnvEvent::NetworkLost => "losing the network".to_string(),
        EnvEvent::NetworkRestored => "restoring the network".to_string(),
        EnvEvent::LogOff(_) => "logging a user off".to_string(),
        EnvEvent::LogOn(_) => "logging a user on".to_string(),
        EnvEvent::ServiceRestart => format!("restarting the {service} service"),
        EnvEvent::LocalFileLocked { .. } => "locking a local file".to_string(),
        EnvEvent::NetworkCost(_) => "changing the network's cost".to_string(),
        EnvEvent::BatterySaver(_) => "switching battery saver".to_string(),
        EnvEvent::BackgroundBandwidth(_) => "setting the bandwidth group policy".to_string(),
        EnvEvent::LocalFileReleased { .. } => "releasing a local file".to_string(),
    };
    NotApplicable(format!("{what} is not scripted on a real machine"))
}

struct JobSlot {
    guard: JobGuard,
    /// Local names as added, in order (file index = position).
    locals: Vec<String>,
    /// Last state observed (for the trace and change detection).
    last_state: Option<JobState>,
}

/// The real BITS service as a `Backend`.
pub struct WindowsBackend {
    label: String,
    flavor: Flavor,
    manager: BitsManager,
    base_url: String,
    control: ServerControl,
    root: PathBuf,
    t0: Instant,
    wall0: SystemTime,
    users: Vec<String>,
    jobs: BTreeMap<JobId, JobSlot>,
    next_job: u32,
    callbacks: Vec<(String, CallbackRecorder)>,
    /// The callback last registered per job, to name what GetNotifyInterface returns.
    notify_interfaces: BTreeMap<JobId, Callback>,
    trace: Vec<String>,
    /// (deliveries, returned) last seen, for the trace and change detection.
    seen_deliveries: (usize, usize),
    /// Set when a step could not be performed faithfully; the run is then
    /// reported as not applicable.
    not_applicable: Option<String>,
    /// Set when BITS is bitsim's own COM facade (`bitsim com-server`): its
    /// control endpoint, and the virtual time its jumps added.
    facade: Option<Facade>,
}

/// The COM facade's control side: "jump ahead" instead of waiting in real
/// time, and environment events the model can be told about.
struct Facade {
    control: String,
    jumped: u64,
}

impl WindowsBackend {
    /// A backend for one run: `root` is the run's own (fresh) directory.
    pub fn new(
        label: &str,
        flavor: Flavor,
        manager: BitsManager,
        base_url: &str,
        control: ServerControl,
        root: PathBuf,
    ) -> WindowsBackend {
        WindowsBackend {
            label: label.to_string(),
            flavor,
            manager,
            base_url: base_url.trim_end_matches('/').to_string(),
            control,
            root,
            t0: Instant::now(),
            wall0: SystemTime::now(),
            users: Vec::new(),
            jobs: BTreeMap::new(),
            next_job: 1,
            callbacks: Vec::new(),
            notify_interfaces: BTreeMap::new(),
            trace: Vec::new(),
            seen_deliveries: (0, 0),
            not_applicable: None,
            facade: None,
        }
    }

    /// Runs against bitsim's COM facade, whose control endpoint is `control`
    /// (`http://127.0.0.1:PORT`): the facade starts a fresh model for this run
    /// (`POST /_bitsim/reset` with the run's seed), waits become jumps to the
    /// facade's next timer, and environment events are posted to it. Every
    /// request names the backend's flavor (`?flavor=bits|do`): the facade runs
    /// one model per service, and only this one is the run's.
    pub fn with_facade(mut self, control: &str, seed: u64) -> Result<WindowsBackend, String> {
        let control = control.trim_end_matches('/').to_string();
        let path = facade_path("reset", self.flavor);
        let (status, text) = http_request(&control, "POST", &path, &format!("{{\"seed\":{seed}}}"))?;
        if status != 200 {
            return Err(format!("POST {path}: {status} {}", text.trim()));
        }
        self.t0 = Instant::now();
        self.wall0 = SystemTime::now();
        self.facade = Some(Facade { control, jumped: 0 });
        self.line(format!("facade: fresh model (POST {path})"));
        Ok(self)
    }

    /// The service is bitsim's facade and its model for this flavor has no
    /// command-line notification (DO, ref: bits-spec §8.1: the profile's
    /// `supports_cmdline`): SetNotifyCmdLine is refused there, so no program
    /// can ever start.
    fn model_has_no_cmdline(&self) -> bool {
        self.facade.is_some() && !self.flavor.profile().supports_cmdline
    }

    /// Why the run cannot count (a step the backend could not perform), if so.
    pub fn not_applicable(&self) -> Option<&str> {
        self.not_applicable.as_deref()
    }

    /// The recorders, e.g. for a watchdog to shut them down.
    pub fn recorders(&self) -> Vec<CallbackRecorder> {
        self.callbacks.iter().map(|(_, r)| r.clone()).collect()
    }

    /// End of run: blocked callbacks return, every job that is not final is
    /// cancelled (JobGuard), and the recorders stop blocking.
    ///
    /// A job still moving bytes is suspended first, or, where Suspend is not
    /// implemented (Wine), allowed up to [`QUIESCE`] to finish: Wine 8's qmgr
    /// can die some seconds after a Cancel in the middle of a transfer, which
    /// would break the following scenarios.
    pub fn finish(&mut self) {
        for (_, r) in &self.callbacks {
            r.shut_down();
        }
        let busy = |s: Option<JobState>| matches!(s, Some(JobState::Connecting | JobState::Transferring));
        let jobs = std::mem::take(&mut self.jobs);
        let (moving, idle): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .partition(|(_, slot)| busy(slot.guard.get_state().ok().ok()));
        for (id, slot) in idle.into_iter().chain(moving) {
            if busy(slot.guard.get_state().ok().ok()) {
                let hr = slot.guard.suspend();
                self.line(format!("cleanup: Suspend({id}) -> {}", Hresult::from(hr)));
                if hr.is_failure() {
                    let until = Instant::now() + QUIESCE;
                    while Instant::now() < until && busy(slot.guard.get_state().ok().ok()) {
                        std::thread::sleep(POLL);
                    }
                }
            }
            let hr = slot.guard.cancel_unless_final();
            if let Some(hr) = hr {
                self.line(format!("cleanup: Cancel({id}) -> {}", Hresult::from(hr)));
            }
        }
    }

    fn time(&self) -> Time {
        let jumped = self.facade.as_ref().map_or(0, |f| f.jumped);
        Time(self.t0.elapsed().as_millis() as u64 + jumped)
    }

    /// Asks the facade to move its clock to its next timer (at most to
    /// `deadline`); our clock follows. False when the facade did not answer.
    fn facade_jump(&mut self, deadline: Time) -> bool {
        let now = self.time();
        let Some(f) = &self.facade else {
            return false;
        };
        let body = format!("{{\"by\":{},\"stop_at_timer\":true}}", deadline.0.saturating_sub(now.0));
        let reached = http_request(&f.control, "POST", &facade_path("jump", self.flavor), &body)
            .ok()
            .filter(|(status, _)| *status == 200)
            .and_then(|(_, text)| {
                let n = text.split("\"now_ms\":").nth(1)?.trim_start();
                let digits = n.find(|c: char| !c.is_ascii_digit()).unwrap_or(n.len());
                n[..digits].parse::<u64>().ok()
            });
        let Some(reached) = reached else {
            return false;
        };
        let wall = self.t0.elapsed().as_millis() as u64;
        let mut skipped = 0;
        if let Some(f) = &mut self.facade {
            let jumped = f.jumped.max(reached.saturating_sub(wall));
            skipped = jumped - f.jumped;
            f.jumped = jumped;
        }
        for (_, r) in &self.callbacks {
            r.skip(Duration::from_millis(skipped));
        }
        true
    }

    fn line(&mut self, text: String) {
        let now = self.time();
        self.trace.push(format!("{:>12}  {text}", now.to_string()));
    }

    fn mark_not_applicable(&mut self, why: String) {
        self.line(format!("not applicable: {why}"));
        if self.not_applicable.is_none() {
            self.not_applicable = Some(why);
        }
    }

    /// A URL or local path as the trace shows it (no port, no run directory).
    fn show(&self, s: &str) -> String {
        let s = s.strip_prefix(&self.base_url).unwrap_or(s);
        let root = self.local_path("");
        s.strip_prefix(&root).unwrap_or(s).to_string()
    }

    fn job(&self, id: JobId) -> Option<&BitsJob> {
        self.jobs.get(&id).map(|s| &*s.guard)
    }

    fn id_of(&self, guid: JobGuid) -> Option<JobId> {
        self.jobs.iter().find(|(_, s)| s.guard.id() == guid).map(|(id, _)| *id)
    }

    /// Index of a file of `job` by its local (or remote) name.
    fn file_index(&self, job: JobId, local: Option<&str>, remote: Option<&str>) -> Option<usize> {
        let slot = self.jobs.get(&job)?;
        if let Some(l) = local {
            if let Some(i) = slot.locals.iter().position(|x| x.eq_ignore_ascii_case(l)) {
                return Some(i);
            }
        }
        // Fall back to the service's own list (same order as added).
        let files = slot.guard.get_files().ok().ok()?;
        files.iter().position(|f| {
            (local.is_some() && f.local_name.as_deref() == local)
                || (remote.is_some() && f.remote_name.as_deref() == remote)
        })
    }

    /// Reads every live job's state and the deliveries; writes what changed
    /// to the trace. Returns whether anything changed.
    fn observe(&mut self) -> bool {
        let mut changed = false;
        let mut lines = Vec::new();
        for (id, slot) in self.jobs.iter_mut() {
            if slot.last_state.is_some_and(JobState::is_final) {
                continue;
            }
            let Ok(st) = slot.guard.get_state().ok() else {
                continue;
            };
            if slot.last_state != Some(st) {
                let from = slot.last_state.map_or("-".to_string(), |s| s.to_string());
                lines.push(format!("job {id} {from} -> {st} (observed)"));
                slot.last_state = Some(st);
                changed = true;
            }
        }
        for l in lines {
            self.line(l);
        }
        let all = self.deliveries();
        let returned = all.iter().filter(|d| d.returned.is_some()).count();
        let (seen, seen_returned) = self.seen_deliveries;
        if all.len() != seen || returned != seen_returned {
            for d in all.iter().skip(seen) {
                let ret = d.returned.map_or("(blocked)".to_string(), |r| r.to_string());
                let err = d
                    .error
                    .map_or(String::new(), |(h, c)| format!(" error={h} context={c}"));
                let text = format!(
                    "{:>12}  notify {} {} #{}{err} -> {ret}",
                    d.at.to_string(),
                    d.kind,
                    d.job,
                    d.attempt
                );
                self.trace.push(text);
            }
            self.seen_deliveries = (all.len(), returned);
            changed = true;
        }
        changed
    }

    fn reply_hr(&mut self, what: String, hr: Hr) -> ApiReply {
        let hresult = Hresult::from(hr);
        self.line(format!("call {what} -> {hresult}"));
        ApiReply {
            hresult,
            value: ApiValue::None,
        }
    }

    fn on_job(&mut self, job: JobId, what: &str, f: impl FnOnce(&BitsJob) -> Hr) -> ApiReply {
        let hr = match self.job(job) {
            Some(j) => f(j),
            None => Hr::BG_E_NOT_FOUND,
        };
        self.reply_hr(format!("{what}({job})"), hr)
    }

    fn getter<T>(
        &self,
        job: JobId,
        f: impl FnOnce(&BitsJob) -> Outcome<T>,
        value: impl FnOnce(T) -> ApiValue,
    ) -> ApiReply {
        let Some(j) = self.job(job) else {
            return ApiReply::err(Hresult::from(Hr::BG_E_NOT_FOUND));
        };
        let out = f(j);
        let hresult = Hresult::from(out.hr);
        match out.value {
            Some(v) if out.hr.is_success() => ApiReply {
                hresult,
                value: value(v),
            },
            _ => ApiReply::err(hresult),
        }
    }

    fn time_of(&self, filetime: u64) -> Option<Time> {
        let t = JobTimes::to_system_time(filetime)?;
        let d = t.duration_since(self.wall0).unwrap_or_default();
        Some(Time(d.as_millis() as u64))
    }

    fn create_job(&mut self, display_name: &str, job_type: bitsim_model::JobType) -> ApiReply {
        let name = safe_display_name(display_name);
        let out = self.manager.create_job(&name, JobType::from(job_type));
        let hresult = Hresult::from(out.hr);
        match out.value {
            Some(job) if out.hr.is_success() => {
                let id = JobId(self.next_job);
                self.next_job += 1;
                let guard = JobGuard::new(job);
                self.jobs.insert(
                    id,
                    JobSlot {
                        guard,
                        locals: Vec::new(),
                        last_state: None,
                    },
                );
                self.line(format!("call CreateJob({job_type}) -> {hresult} = {id}"));
                self.observe();
                ApiReply {
                    hresult,
                    value: ApiValue::Job(id),
                }
            }
            _ => {
                self.line(format!("call CreateJob({job_type}) -> {hresult}"));
                ApiReply::err(hresult)
            }
        }
    }

    fn add_files(&mut self, job: JobId, files: &[(String, String)], set: bool) -> ApiReply {
        let shown: Vec<String> = files
            .iter()
            .map(|(r, l)| format!("{} -> {}", self.show(r), self.show(l)))
            .collect();
        let hr = match self.job(job) {
            Some(j) if set => {
                let pairs: Vec<(&str, &str)> = files.iter().map(|(r, l)| (r.as_str(), l.as_str())).collect();
                j.add_file_set(&pairs)
            }
            Some(j) => match files.first() {
                Some((r, l)) => j.add_file(r, l),
                None => Hr::E_INVALIDARG,
            },
            None => Hr::BG_E_NOT_FOUND,
        };
        if hr.is_success() {
            if let Some(slot) = self.jobs.get_mut(&job) {
                slot.locals.extend(files.iter().map(|(_, l)| l.clone()));
            }
        }
        let what = if set { "AddFileSet" } else { "AddFile" };
        self.reply_hr(format!("{what}({job}, [{}])", shown.join(", ")), hr)
    }

    fn get_error(&self, job: JobId) -> ApiReply {
        let Some(j) = self.job(job) else {
            return ApiReply::err(Hresult::from(Hr::BG_E_NOT_FOUND));
        };
        let out = j.get_error();
        let hresult = Hresult::from(out.hr);
        match out.value {
            Some(info) if out.hr.is_success() => {
                let file = info
                    .file
                    .as_ref()
                    .and_then(|f| self.file_index(job, f.local_name.as_deref(), f.remote_name.as_deref()));
                ApiReply {
                    hresult,
                    value: ApiValue::Error {
                        hresult: Hresult::from(info.code),
                        context: model_context(info.context),
                        file,
                    },
                }
            }
            _ => ApiReply::err(hresult),
        }
    }
}

impl Drop for WindowsBackend {
    fn drop(&mut self) {
        self.finish();
    }
}

fn model_context(c: ErrorContext) -> bitsim_model::ErrorContext {
    c.to_model().unwrap_or(bitsim_model::ErrorContext::Unknown)
}

fn model_kind(k: DeliveryKind) -> NotificationKind {
    match k {
        DeliveryKind::JobTransferred => NotificationKind::JobTransferred,
        DeliveryKind::JobError => NotificationKind::JobError,
        DeliveryKind::JobModification => NotificationKind::JobModification,
        DeliveryKind::FileTransferred => NotificationKind::FileTransferred,
    }
}

/// The display name a job gets: the scenario's name with the `bitsim-`
/// prefix, without changing its length when that would cross BITS' limit
/// (the prefix then replaces the name's first characters), so the service
/// accepts or refuses exactly what it would for the scenario's name.
pub fn safe_display_name(name: &str) -> String {
    if name.starts_with(DISPLAY_NAME_PREFIX) {
        return name.to_string();
    }
    let len = name.encode_utf16().count();
    let prefix = DISPLAY_NAME_PREFIX.len();
    if len + prefix <= DISPLAY_NAME_MAX || len < prefix {
        format!("{DISPLAY_NAME_PREFIX}{name}")
    } else {
        let rest: String = name.chars().skip(prefix).collect();
        format!("{DISPLAY_NAME_PREFIX}{rest}")
    }
}

/// `name` as a path inside `root`: only its normal components are kept, so
/// a scenario can never point a job (Wine downloads into an upload job's
/// "source") at a file outside the run's directory.
pub fn confined_path(root: &Path, name: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in Path::new(name).components() {
        if let Component::Normal(part) = c {
            p.push(part);
        }
    }
    p
}

/// The deterministic bytes `write_file` creates (the same as the simulator's).
pub fn file_bytes(size: u64) -> Vec<u8> {
    (0..size).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

/// A minimal HTTP/1.1 request to the loopback mock server's control path.
pub(crate) fn http_request(base_url: &str, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let authority = base_url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {base_url}"))?
        .trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(authority).map_err(|e| format!("connect {authority}: {e}"))?;
    // Long enough for a facade's jump that waits for blocked callbacks.
    let _ = s.set_read_timeout(Some(Duration::from_secs(300)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad response: {}", text.lines().next().unwrap_or("")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    Ok((status, body))
}

impl Backend for WindowsBackend {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn flavor(&self) -> Flavor {
        self.flavor
    }

    fn now(&self) -> Time {
        self.time()
    }

    fn add_user(&mut self, name: &str) -> Result<UserId, NotApplicable> {
        if !self.users.is_empty() {
            return Err(NotApplicable(format!(
                "a second user ({name}) needs another interactive logon session on the machine"
            )));
        }
        self.users.push(name.to_string());
        Ok(UserId(0))
    }

    fn define_callback(&mut self, name: &str, policy: &bitsim_scenario::CallbackPolicy) -> Callback {
        let ours = CallbackPolicy {
            returns: policy.returns.iter().map(|h| Hr(h.0 .0)).collect(),
            returns_by_kind: policy
                .returns_by_kind
                .iter()
                .map(|(k, v)| {
                    let kind = match k.0 {
                        NotificationKind::JobTransferred => DeliveryKind::JobTransferred,
                        NotificationKind::JobError => DeliveryKind::JobError,
                        NotificationKind::JobModification => DeliveryKind::JobModification,
                        NotificationKind::FileTransferred => DeliveryKind::FileTransferred,
                    };
                    (kind, v.iter().map(|h| Hr(h.0 .0)).collect())
                })
                .collect(),
            block: policy.block.map(|d| Duration::from_millis(d.0 .0)),
            block_until_release: policy.block_until_release,
            disconnected: policy.disconnected,
            callback2: policy.callback2,
        };
        self.callbacks
            .push((name.to_string(), CallbackRecorder::new(self.t0, ours)));
        Callback {
            id: self.callbacks.len() as u32 - 1,
            callback2: policy.callback2,
        }
    }

    fn set_cmdline_exit_codes(&mut self, _job: JobId, _codes: &[i32]) {
        if self.model_has_no_cmdline() {
            // No program can start (see SetNotifyCmdLine): nothing to script.
            return;
        }
        // Scripted exit codes need a fake program; a real service would
        // start whatever the scenario names.
        self.mark_not_applicable(
            "a notify command line would start a real program on this machine (exit codes cannot be scripted)".into(),
        );
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") || path.starts_with("file:") {
            path.to_string()
        } else {
            format!("{}{path}", self.base_url)
        }
    }

    fn local_path(&self, name: &str) -> String {
        let p = confined_path(&self.root, name);
        let mut s = p.to_string_lossy().into_owned();
        if name.is_empty() && !s.ends_with(['\\', '/']) {
            s.push(std::path::MAIN_SEPARATOR);
        }
        s
    }

    async fn call(&mut self, call: ApiCall) -> ApiReply {
        let reply = match call {
            ApiCall::CreateJob {
                display_name, job_type, ..
            } => self.create_job(&display_name, job_type),
            ApiCall::GetJob { job, .. } => {
                let out = match self.job(job) {
                    Some(j) => self.manager.get_job(j.id()).map(|_| ()),
                    None => Outcome {
                        hr: Hr::BG_E_NOT_FOUND,
                        value: None,
                    },
                };
                let hresult = Hresult::from(out.hr);
                self.line(format!("call GetJob({job}) -> {hresult}"));
                if out.hr.is_success() {
                    ApiReply {
                        hresult,
                        value: ApiValue::Job(job),
                    }
                } else {
                    ApiReply::err(hresult)
                }
            }
            ApiCall::EnumJobs { .. } => {
                let out = self.manager.enum_jobs(false);
                let hresult = Hresult::from(out.hr);
                match out.value {
                    Some(list) if out.hr.is_success() => {
                        // Only this run's jobs (the user may have others).
                        let ids: Vec<JobId> = list.iter().filter_map(|j| self.id_of(j.id())).collect();
                        let shown: Vec<String> = ids.iter().map(ToString::to_string).collect();
                        self.line(format!("call EnumJobs -> {hresult} [{}]", shown.join(", ")));
                        ApiReply {
                            hresult,
                            value: ApiValue::Jobs(ids),
                        }
                    }
                    _ => {
                        self.line(format!("call EnumJobs -> {hresult}"));
                        ApiReply::err(hresult)
                    }
                }
            }
            ApiCall::AddFile {
                job,
                remote_name,
                local_name,
            } => self.add_files(job, &[(remote_name, local_name)], false),
            ApiCall::AddFileSet { job, files } => self.add_files(job, &files, true),
            ApiCall::Resume { job } => self.on_job(job, "Resume", BitsJob::resume),
            ApiCall::Suspend { job } => self.on_job(job, "Suspend", BitsJob::suspend),
            ApiCall::Cancel { job } => self.on_job(job, "Cancel", BitsJob::cancel),
            ApiCall::Complete { job } => self.on_job(job, "Complete", BitsJob::complete),
            ApiCall::SetDisplayName { job, name } => {
                let name = safe_display_name(&name);
                self.on_job(job, "SetDisplayName", |j| j.set_display_name(&name))
            }
            ApiCall::SetDescription { job, text } => self.on_job(job, "SetDescription", |j| j.set_description(&text)),
            ApiCall::SetPriority { job, priority } => self.on_job(job, &format!("SetPriority[{priority}]"), |j| {
                j.set_priority(JobPriority::from_raw(priority))
            }),
            ApiCall::SetNotifyFlags { job, flags } => self.on_job(job, &format!("SetNotifyFlags[0x{flags:X}]"), |j| {
                j.set_notify_flags(flags)
            }),
            ApiCall::SetNotifyInterface { job, callback } => {
                let recorder = callback.and_then(|c| self.callbacks.get(c.id as usize).map(|(_, r)| r.clone()));
                let reply = self.on_job(job, "SetNotifyInterface", |j| j.set_notify_interface(recorder.as_ref()));
                if reply.hresult.is_success() {
                    match callback {
                        Some(c) => self.notify_interfaces.insert(job, c),
                        None => self.notify_interfaces.remove(&job),
                    };
                }
                reply
            }
            ApiCall::SetNotifyCmdLine {
                job,
                program,
                parameters,
            } => {
                if program.is_some() && self.model_has_no_cmdline() {
                    // The model refuses the call and can never start the
                    // program, so the call is sent and its answer compared.
                    let shown = program.as_deref().map_or(String::new(), |p| self.show(p));
                    self.on_job(job, &format!("SetNotifyCmdLine[{shown}]"), |j| {
                        j.set_notify_cmdline(program.as_deref(), parameters.as_deref())
                    })
                } else if program.is_some() {
                    // Never hand the service a program to run (see
                    // set_cmdline_exit_codes); the run is not applicable.
                    self.mark_not_applicable("SetNotifyCmdLine with a program is not sent to a real service".into());
                    ApiReply::ok(ApiValue::None)
                } else {
                    self.on_job(job, "SetNotifyCmdLine(NULL)", |j| {
                        j.set_notify_cmdline(None, parameters.as_deref())
                    })
                }
            }
            ApiCall::SetMinimumRetryDelay { job, seconds } => {
                self.on_job(job, &format!("SetMinimumRetryDelay[{seconds}]"), |j| {
                    j.set_minimum_retry_delay(seconds)
                })
            }
            ApiCall::SetNoProgressTimeout { job, seconds } => {
                self.on_job(job, &format!("SetNoProgressTimeout[{seconds}]"), |j| {
                    j.set_no_progress_timeout(seconds)
                })
            }
            ApiCall::SetMaximumDownloadTime { job, seconds } => {
                self.on_job(job, &format!("SetMaximumDownloadTime[{seconds}]"), |j| {
                    j.set_maximum_download_time(seconds)
                })
            }
            ApiCall::SetReplyFileName { job, path } => {
                let shown = path.as_deref().map_or("NULL".to_string(), |p| self.show(p));
                self.on_job(job, &format!("SetReplyFileName[{shown}]"), |j| {
                    j.set_reply_file_name_opt(path.as_deref())
                })
            }
            ApiCall::TakeOwnership { job, .. } => {
                self.mark_not_applicable("TakeOwnership needs a second user".into());
                self.line(format!("call TakeOwnership({job}) not sent"));
                ApiReply::err(Hresult::from(Hr::E_NOTIMPL))
            }
            ApiCall::GetState { job } => self.getter(job, BitsJob::get_state, |s| match s.to_model() {
                Some(s) => ApiValue::State(s),
                None => ApiValue::None,
            }),
            ApiCall::GetProgress { job } => self.getter(job, BitsJob::get_progress, |p| ApiValue::Progress(p.into())),
            ApiCall::GetFileProgress { job, file } => {
                let reply = self.getter(job, BitsJob::get_files, |files| {
                    match files.get(file).and_then(|f| f.progress) {
                        Some(p) => ApiValue::FileProgress(bitsim_model::FileProgress {
                            bytes_total: p.bytes_total,
                            bytes_transferred: p.bytes_transferred,
                            completed: p.completed,
                        }),
                        None => ApiValue::None,
                    }
                });
                if reply.hresult.is_success() && reply.value == ApiValue::None {
                    ApiReply::err(Hresult::from(Hr::E_INVALIDARG))
                } else {
                    reply
                }
            }
            ApiCall::GetTimes { job } => {
                let Some(j) = self.job(job) else {
                    return ApiReply::err(Hresult::from(Hr::BG_E_NOT_FOUND));
                };
                let out = j.get_times();
                let hresult = Hresult::from(out.hr);
                match out.value {
                    Some(t) if out.hr.is_success() => ApiReply {
                        hresult,
                        value: ApiValue::Times(bitsim_model::JobTimes {
                            creation: self.time_of(t.creation).unwrap_or(Time::ZERO),
                            modification: self.time_of(t.modification).unwrap_or(Time::ZERO),
                            transfer_completion: self.time_of(t.transfer_completion),
                        }),
                    },
                    _ => ApiReply::err(hresult),
                }
            }
            ApiCall::GetError { job } => self.get_error(job),
            ApiCall::GetErrorCount { job } => self.getter(job, BitsJob::get_error_count, ApiValue::Count),
            ApiCall::GetPriority { job } => self.getter(job, BitsJob::get_priority, |p| match p.to_model() {
                Some(p) => ApiValue::Priority(p),
                None => ApiValue::None,
            }),
            ApiCall::GetNotifyFlags { job } => self.getter(job, BitsJob::get_notify_flags, ApiValue::Count),
            ApiCall::GetMinimumRetryDelay { job } => {
                self.getter(job, BitsJob::get_minimum_retry_delay, ApiValue::Count)
            }
            ApiCall::GetNoProgressTimeout { job } => {
                self.getter(job, BitsJob::get_no_progress_timeout, ApiValue::Count)
            }
            ApiCall::GetReplyProgress { job } => self.getter(job, BitsJob::get_reply_progress, |p| {
                ApiValue::ReplyProgress(bitsim_model::ReplyProgress {
                    bytes_total: p.bytes_total,
                    bytes_transferred: p.bytes_transferred,
                })
            }),
            ApiCall::GetReplyData { job } => {
                self.getter(job, BitsJob::get_reply_data, |d| ApiValue::Bytes(d.len() as u64))
            }
            // Wine 8's combase asserts (stubmanager.c:609, "ifstub") when
            // GetNotifyInterface hands our own callback back through its proxy, and
            // the whole process dies: under Wine the call is not made.
            ApiCall::GetNotifyInterface { job } if crate::com::running_under_wine() => {
                self.mark_not_applicable("GetNotifyInterface kills the process under Wine (combase assertion)".into());
                self.line(format!("call GetNotifyInterface ({job}) not sent under Wine"));
                ApiReply::err(Hresult::from(Hr::E_NOTIMPL))
            }
            ApiCall::GetNotifyInterface { job } => {
                let registered = self.notify_interfaces.get(&job).copied();
                self.getter(job, BitsJob::has_notify_interface, |present| {
                    ApiValue::Callback(registered.filter(|_| present))
                })
            }
            ApiCall::GetNotifyCmdLine { job } => self.getter(job, BitsJob::get_notify_cmdline, ApiValue::CmdLine),
            ApiCall::SetCredentials { job, credential } => {
                let Some(j) = self.job(job) else {
                    return ApiReply::err(Hresult::from(Hr::BG_E_NOT_FOUND));
                };
                let hr = j.set_credentials(
                    auth_target(credential.target),
                    auth_scheme(credential.scheme),
                    credential.user.as_deref(),
                    credential.password.as_deref(),
                );
                self.line(format!("call SetCredentials({job}) -> {}", Hresult::from(hr)));
                ApiReply::err(Hresult::from(hr))
            }
            ApiCall::RemoveCredentials { job, target, scheme } => {
                let Some(j) = self.job(job) else {
                    return ApiReply::err(Hresult::from(Hr::BG_E_NOT_FOUND));
                };
                let hr = j.remove_credentials(auth_target(target), auth_scheme(scheme));
                self.line(format!("call RemoveCredentials({job}) -> {}", Hresult::from(hr)));
                ApiReply::err(Hresult::from(hr))
            }
            ApiCall::SetCostFlags { job, flags } => {
                let Some(j) = self.job(job) else {
                    return ApiReply::err(Hresult::from(Hr::BG_E_NOT_FOUND));
                };
                let hr = j.set_cost_flags(flags);
                if hr == Hr::E_NOINTERFACE {
                    self.mark_not_applicable(
                        "IBackgroundCopyJob5 is not reachable (BITS before 5.0, or Wine: no proxy)".into(),
                    );
                }
                self.line(format!("call SetCostFlags[{flags:#x}]({job}) -> {}", Hresult::from(hr)));
                ApiReply::err(Hresult::from(hr))
            }
            ApiCall::GetCostFlags { job } => {
                let Some(j) = self.job(job) else {
                    return ApiReply::err(Hresult::from(Hr::BG_E_NOT_FOUND));
                };
                let out = j.get_cost_flags();
                if out.hr == Hr::E_NOINTERFACE {
                    self.mark_not_applicable(
                        "IBackgroundCopyJob5 is not reachable (BITS before 5.0, or Wine: no proxy)".into(),
                    );
                }
                match out.value {
                    Some(flags) if out.hr.is_success() => ApiReply {
                        hresult: Hresult::from(out.hr),
                        value: ApiValue::Count(flags),
                    },
                    _ => ApiReply::err(Hresult::from(out.hr)),
                }
            }
            // One user per run: a job's owner is the run's user.
            ApiCall::GetOwner { job } => self.getter(job, BitsJob::get_owner, |_| ApiValue::User(UserId(0))),
        };
        reply
    }

    async fn advance_until(&mut self, deadline: Time) {
        loop {
            let now = self.time();
            if now >= deadline {
                return;
            }
            let left = Duration::from_millis(deadline.0 - now.0);
            tokio::time::sleep(left.min(POLL)).await;
            if self.observe() {
                return;
            }
            // The facade: nothing moved for a poll, so jump to its next timer,
            // but not past the moment a blocked callback of ours returns.
            if self.facade.is_some() && self.time() < deadline {
                let next_return = self.callbacks.iter().filter_map(|(_, r)| r.next_return()).min();
                let goal = match next_return {
                    Some(d) => deadline.min(Time(self.time().0 + d.as_millis() as u64)),
                    None => deadline,
                };
                if goal <= self.time() {
                    continue;
                }
                if !self.facade_jump(goal) {
                    self.mark_not_applicable("the facade's control endpoint did not answer a jump".into());
                    return;
                }
                if self.observe() {
                    return;
                }
            }
        }
    }

    async fn env(&mut self, event: EnvEvent) -> Result<(), NotApplicable> {
        let Some(f) = &self.facade else {
            return Err(env_not_scripted(&event, "BITS"));
        };
        let body = serde_json::to_string(&event).map_err(|e| NotApplicable(e.to_string()))?;
        // Named: the scenario's environment is its own service's (the other
        // service's model is not part of the run).
        let path = facade_path("env", self.flavor);
        let (status, text) = http_request(&f.control, "POST", &path, &body).map_err(NotApplicable)?;
        if status != 200 {
            return Err(NotApplicable(format!("POST {path}: {status} {}", text.trim())));
        }
        self.line(format!("facade: environment event {body}"));
        Ok(())
    }

    async fn set_plan(&mut self, plan: Plan) -> Result<(), NotApplicable> {
        let line = self.control.set_plan(&self.base_url, plan)?;
        self.line(line);
        Ok(())
    }

    async fn release_callback(&mut self, name: &str) {
        if let Some((_, r)) = self.callbacks.iter().find(|(n, _)| n == name) {
            r.release();
        }
        self.line(format!("released callback {name}"));
    }

    fn deliveries(&self) -> Vec<Delivery> {
        let mut all: Vec<Delivery> = Vec::new();
        for (_, r) in &self.callbacks {
            for d in r.deliveries() {
                let job = d.job.and_then(|g| self.id_of(g)).unwrap_or(JobId(0));
                let file = d
                    .file
                    .as_ref()
                    .and_then(|f| self.file_index(job, f.local_name.as_deref(), f.remote_name.as_deref()));
                all.push(Delivery {
                    at: Time(d.at.as_millis() as u64),
                    job,
                    kind: model_kind(d.kind),
                    attempt: d.attempt,
                    returned: d.returned.map(Hresult::from),
                    error: d.error.map(|(c, h)| (Hresult::from(h), model_context(c))),
                    file,
                });
            }
        }
        all.sort_by_key(|d| d.at);
        all
    }

    fn command_runs(&self) -> Vec<CommandRun> {
        Vec::new()
    }

    fn in_flight(&self, _user: UserId) -> Result<usize, NotApplicable> {
        Ok(self.callbacks.iter().map(|(_, r)| r.in_flight()).sum())
    }

    fn requests(&self) -> Result<Vec<RequestLogEntry>, NotApplicable> {
        self.control.log(&self.base_url)
    }

    fn route_digest(&self, path: &str) -> Result<Option<[u8; 32]>, NotApplicable> {
        match &self.control {
            ServerControl::InProcess(server) => Ok(server.route_digest(path)),
            ServerControl::Http => Err(NotApplicable("the mock server's route contents are not visible".into())),
        }
    }

    fn uploaded_size(&self, path: &str) -> Result<Option<u64>, NotApplicable> {
        match &self.control {
            ServerControl::InProcess(server) => Ok(server.uploaded(path).map(|b| b.len() as u64)),
            ServerControl::Http => Err(NotApplicable("the server's committed uploads are not visible".into())),
        }
    }

    fn write_file(&mut self, name: &str, size: u64) -> std::io::Result<()> {
        std::fs::write(confined_path(&self.root, name), file_bytes(size))
    }

    fn file_size(&self, name: &str) -> Option<u64> {
        std::fs::metadata(confined_path(&self.root, name))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    fn take_trace(&mut self) -> Vec<String> {
        self.observe();
        std::mem::take(&mut self.trace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_keep_their_length_near_the_limit() {
        assert_eq!(safe_display_name("short"), "bitsim-short");
        assert_eq!(safe_display_name("bitsim-x"), "bitsim-x");
        let at_limit = "x".repeat(256);
        assert_eq!(safe_display_name(&at_limit).len(), 256);
        assert!(safe_display_name(&at_limit).starts_with(DISPLAY_NAME_PREFIX));
        assert_eq!(safe_display_name(&"x".repeat(257)).len(), 257);
        assert_eq!(safe_display_name(&"x".repeat(249)).len(), 256);
    }

    #[test]
    fn local_paths_stay_in_the_run_directory() {
        let root = Path::new(r"C:\runs\r1");
        assert_eq!(confined_path(root, "f.bin"), root.join("f.bin"));
        assert_eq!(confined_path(root, r"..\..\Windows\x.dll"), root.join(r"Windows\x.dll"));
        assert_eq!(confined_path(root, r"C:\Windows\x.dll"), root.join(r"Windows\x.dll"));
        assert_eq!(confined_path(root, "sub/f.bin"), root.join("sub").join("f.bin"));
    }
}
