//! [`DoBackend`]: `bitsim_scenario::Backend` over Delivery Optimization's
//! `IDOManager` / `IDODownload` (bits-spec §8.2), for `bitsim conform
//! --backend do`. One scenario job is one IDODownload.
//!
//! Mapping: CreateJob(DOWNLOAD) → CreateDownload (DisplayName `bitsim-…`);
//! AddFile → Uri + LocalPath; Resume → Start(NULL); Suspend → Pause; Cancel
//! → Abort; Complete → Finalize; SetPriority → ForegroundPriority (true only
//! for FOREGROUND); SetNoProgressTimeout / GetNoProgressTimeout →
//! NoProgressTimeoutSeconds; GetState / GetProgress / GetFileProgress /
//! GetError → GetStatus through [`crate::do_map`].
//!
//! Everything IDODownload cannot express (a second file, other job types,
//! callbacks, command lines, replies, display name / description changes,
//! retry delays, error counts, GetJob / EnumJobs, users, environment events)
//! makes the scenario not applicable: [`not_applicable_reason`] decides it
//! before the run, so no real time is spent; a step that slips through is
//! marked during the run and the report is not applicable as well.
//!
//! Safety: every download is a [`DoDownload`], which aborts on drop unless
//! final (end of run, panic, watchdog), and is named `bitsim-…` so
//! [`DoManager::sweep`] finds leftovers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitsim_model::{
    ApiCall, ApiReply, ApiValue, Callback, EnvEvent, Flavor, Hresult, JobId, JobProgress, JobState, Time, UserId,
};
use bitsim_scenario::{Backend, CommandRun, Delivery, LoadedScenario, NotApplicable, Step};
use bitsim_server::{Plan, RequestLogEntry};

use crate::backend::{confined_path, env_not_scripted, file_bytes, ServerControl};
use crate::delivery_optimization::{DODownloadProperty_NoProgressTimeoutSeconds, DoDownload, DoManager, PropValue};
use crate::do_map;
use crate::hr::Hr;

/// How often `advance_until` looks at the service.
const POLL: Duration = Duration::from_millis(50);

/// Why a scenario cannot run on IDODownload, decided from the scenario alone
/// (before any real call). Steps restricted to another flavor are ignored.
pub fn not_applicable_reason(l: &LoadedScenario) -> Option<String> {
    let flavor = Flavor::DeliveryOptimization;
    if l.scenario.users.len() > 1 {
        return Some("a second user needs another interactive logon session on the machine".into());
    }
    let mut files: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in &l.scenario.steps {
        if entry.only.is_some_and(|f| f != flavor) {
            continue;
        }
        let why: String = match &entry.step {
            Step::CreateJob { job_type: Some(t), .. } if t.0 != bitsim_model::JobType::Download => {
                format!("IDODownload only downloads (job type {})", t.0)
            }
            Step::AddFile { job, .. } | Step::AddFiles { job, .. } => {
                let n = match &entry.step {
                    Step::AddFiles { files: f, .. } => f.len(),
                    _ => 1,
                };
                let total = files.entry(job.as_str()).or_default();
                *total += n;
                if *total > 1 {
                    "an IDODownload has one file (the scenario adds a second)".into()
                } else {
                    continue;
                }
            }
            Step::SetPriority { value, .. } if do_map::foreground(value.0).is_none() => {
                format!("priority {} has no ForegroundPriority equivalent", value.0)
            }
            Step::GetJob { .. } | Step::EnumJobs { .. } => "IDOManager has no GetJob / EnumJobs by job".into(),
            Step::SetDisplayName { .. } | Step::SetDescription { .. } => {
                "display name / description changes are not expressed on IDODownload".into()
            }
            Step::SetNotifyFlags { .. } | Step::SetNotifyInterface { .. } | Step::ReleaseCallback { .. } => {
                "IDODownload has no BITS notify interface / flags".into()
            }
            Step::ExpectNotifications { .. } | Step::ExpectInFlight { .. } => {
                "IDODownload delivers no BITS notifications".into()
            }
            Step::SetNotifyCmdline { .. } | Step::ExpectCmdline { .. } => {
                "IDODownload has no notify command line".into()
            }
            Step::SetMinimumRetryDelay { .. } => "IDODownload has no minimum retry delay".into(),
            Step::SetMaximumDownloadTime { .. } => "IDODownload has no maximum download time".into(),
            Step::SetReplyFileName { .. } => "IDODownload has no reply (upload-reply jobs)".into(),
            Step::TakeOwnership { .. } => "TakeOwnership needs a second user".into(),
            Step::NetworkLost {} | Step::NetworkRestored {} => {
                "losing / restoring the network is not scripted on a real machine".into()
            }
            Step::Logoff { .. } | Step::Logon { .. } => {
                "logging a user off / on is not scripted on a real machine".into()
            }
            Step::ServiceRestart {} => "restarting the DO service is not scripted on a real machine".into(),
            Step::Expect(e) => {
                let unsupported = [
                    (e.error_count.is_some(), "error count"),
                    (e.priority.is_some(), "priority read-back"),
                    (e.notify_flags.is_some(), "notify flags"),
                    (e.minimum_retry_delay.is_some(), "minimum retry delay"),
                    (e.reply_progress.is_some(), "reply progress"),
                    (e.reply_data.is_some(), "reply data"),
                ];
                match unsupported.iter().find(|(used, _)| *used) {
                    Some((_, what)) => format!("IDODownload has no {what}"),
                    None => continue,
                }
            }
            _ => continue,
        };
        return Some(why);
    }
    None
}

struct DlSlot {
    dl: DoDownload,
    /// Files set (0 or 1).
    files: usize,
    last_state: Option<JobState>,
}

/// Delivery Optimization (IDODownload) as a `Backend`.
pub struct DoBackend {
    label: String,
    manager: DoManager,
    base_url: String,
    control: ServerControl,
    root: PathBuf,
    t0: Instant,
    users: Vec<String>,
    jobs: BTreeMap<JobId, DlSlot>,
    next_job: u32,
    callbacks: BTreeSet<String>,
    trace: Vec<String>,
    not_applicable: Option<String>,
}

impl DoBackend {
    /// A backend for one run: `root` is the run's own (fresh) directory.
    pub fn new(label: &str, manager: DoManager, base_url: &str, control: ServerControl, root: PathBuf) -> DoBackend {
        DoBackend {
            label: label.to_string(),
            manager,
            base_url: base_url.trim_end_matches('/').to_string(),
            control,
            root,
            t0: Instant::now(),
            users: Vec::new(),
            jobs: BTreeMap::new(),
            next_job: 1,
            callbacks: BTreeSet::new(),
            trace: Vec::new(),
            not_applicable: None,
        }
    }

    /// Why the run cannot count (a step IDODownload cannot express), if so.
    pub fn not_applicable(&self) -> Option<&str> {
        self.not_applicable.as_deref()
    }

    /// End of run: every download that is not final is aborted.
    pub fn finish(&mut self) {
        let jobs = std::mem::take(&mut self.jobs);
        for (id, slot) in jobs {
            let final_already = slot.dl.status().ok().is_ok_and(|s| s.state.is_final());
            if !final_already {
                let hr = slot.dl.abort();
                self.line(format!("cleanup: Abort({id}) -> {}", Hresult::from(hr)));
            }
            // Dropping the DoDownload aborts it again if Abort failed.
        }
    }

    fn time(&self) -> Time {
        Time(self.t0.elapsed().as_millis() as u64)
    }

    fn line(&mut self, text: String) {
        let now = self.time();
        self.trace.push(format!("{:>12}  {text}", now.to_string()));
    }

    fn mark_not_applicable(&mut self, why: String) -> ApiReply {
        self.line(format!("not applicable: {why}"));
        if self.not_applicable.is_none() {
            self.not_applicable = Some(why);
        }
        ApiReply::err(Hresult::E_NOTIMPL)
    }

    fn show(&self, s: &str) -> String {
        let s = s.strip_prefix(&self.base_url).unwrap_or(s);
        let root = self.local_path("");
        s.strip_prefix(&root).unwrap_or(s).to_string()
    }

    /// (state, error, extended error, bytes total, bytes transferred) of a download.
    fn status(&self, job: JobId) -> Result<(u32, u32, u32, u64, u64), Hresult> {
        let slot = self.jobs.get(&job).ok_or(Hresult::DO_E_JOB_NOT_FOUND)?;
        let out = slot.dl.status();
        let hr = out.hr;
        match out.value {
            Some(s) if hr.is_success() => Ok((
                s.state.raw(),
                s.error.0,
                s.extended_error.0,
                s.bytes_total,
                s.bytes_transferred,
            )),
            _ => Err(Hresult::from(hr)),
        }
    }

    fn observe(&mut self) -> bool {
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        let mut changed = false;
        for id in ids {
            if self.jobs[&id].last_state.is_some_and(JobState::is_final) {
                continue;
            }
            let Ok((s, e, x, _, _)) = self.status(id) else {
                continue;
            };
            let Some(st) = do_map::job_state(s, e, x) else {
                continue;
            };
            let slot = self.jobs.get_mut(&id).expect("listed above");
            if slot.last_state != Some(st) {
                let from = slot.last_state.map_or("-".to_string(), |s| s.to_string());
                slot.last_state = Some(st);
                self.line(format!("job {id} {from} -> {st} (observed)"));
                changed = true;
            }
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

    fn on_dl(&mut self, job: JobId, what: &str, f: impl FnOnce(&DoDownload) -> Hr) -> ApiReply {
        let hr = match self.jobs.get(&job) {
            Some(slot) => f(&slot.dl),
            None => Hr(Hresult::DO_E_JOB_NOT_FOUND.0),
        };
        self.reply_hr(format!("{what}({job})"), hr)
    }

    fn create_job(&mut self, display_name: &str, job_type: bitsim_model::JobType) -> ApiReply {
        if job_type != bitsim_model::JobType::Download {
            return self.mark_not_applicable(format!("IDODownload only downloads (job type {job_type})"));
        }
        // create_download adds the `bitsim-` prefix (DisplayName property).
        let out = self.manager.create_download(display_name);
        let hresult = Hresult::from(out.hr);
        match out.value {
            Some(dl) if out.hr.is_success() => {
                let id = JobId(self.next_job);
                self.next_job += 1;
                self.jobs.insert(
                    id,
                    DlSlot {
                        dl,
                        files: 0,
                        last_state: None,
                    },
                );
                self.line(format!("call CreateDownload -> {hresult} = {id}"));
                self.observe();
                ApiReply {
                    hresult,
                    value: ApiValue::Job(id),
                }
            }
            _ => {
                self.line(format!("call CreateDownload -> {hresult}"));
                ApiReply::err(hresult)
            }
        }
    }

    fn add_file(&mut self, job: JobId, remote: &str, local: &str) -> ApiReply {
        let shown = format!("{} -> {}", self.show(remote), self.show(local));
        let Some(slot) = self.jobs.get(&job) else {
            return self.reply_hr(format!("AddFile({job}, [{shown}])"), Hr(Hresult::DO_E_JOB_NOT_FOUND.0));
        };
        if slot.files > 0 {
            return self.mark_not_applicable("an IDODownload has one file (the scenario adds a second)".into());
        }
        let mut hr = slot.dl.set_uri(remote);
        if hr.is_success() {
            hr = slot.dl.set_local_path(local);
        }
        if hr.is_success() {
            if let Some(slot) = self.jobs.get_mut(&job) {
                slot.files = 1;
            }
        }
        self.reply_hr(format!("SetProperty(Uri, LocalPath)({job}, [{shown}])"), hr)
    }

    fn get_error(&self, job: JobId) -> ApiReply {
        match self.status(job) {
            Ok((s, e, x, _, _)) => match do_map::job_error(s, e, x) {
                Ok((hresult, context)) => ApiReply {
                    hresult: Hresult::S_OK,
                    value: ApiValue::Error {
                        hresult,
                        context,
                        file: Some(0),
                    },
                },
                Err(h) => ApiReply::err(h),
            },
            Err(h) => ApiReply::err(h),
        }
    }
}

impl Drop for DoBackend {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether a raw DO state means the file is complete (Transferred, Finalized).
fn transferred(state: u32) -> bool {
    matches!(state, do_map::raw_state::TRANSFERRED | do_map::raw_state::FINALIZED)
}

impl Backend for DoBackend {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn flavor(&self) -> Flavor {
        Flavor::DeliveryOptimization
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
        // Defining one is harmless; registering it (SetNotifyInterface) is n/a.
        self.callbacks.insert(name.to_string());
        Callback {
            id: self.callbacks.len() as u32 - 1,
            callback2: policy.callback2,
        }
    }

    fn set_cmdline_exit_codes(&mut self, _job: JobId, _codes: &[i32]) {
        self.mark_not_applicable("IDODownload has no notify command line".into());
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
        match call {
            ApiCall::CreateJob {
                display_name, job_type, ..
            } => self.create_job(&display_name, job_type),
            ApiCall::AddFile {
                job,
                remote_name,
                local_name,
            } => self.add_file(job, &remote_name, &local_name),
            ApiCall::AddFileSet { job, files } => match files.as_slice() {
                [(r, l)] => self.add_file(job, r, l),
                _ => self.mark_not_applicable("an IDODownload has one file (AddFileSet of several)".into()),
            },
            ApiCall::Resume { job } => self.on_dl(job, "Start(NULL)", DoDownload::start),
            ApiCall::Suspend { job } => self.on_dl(job, "Pause", DoDownload::pause),
            ApiCall::Cancel { job } => self.on_dl(job, "Abort", DoDownload::abort),
            ApiCall::Complete { job } => self.on_dl(job, "Finalize", DoDownload::finalize),
            ApiCall::SetPriority { job, priority } => match do_map::foreground(priority) {
                Some(fg) => self.on_dl(job, &format!("SetProperty(ForegroundPriority={fg})"), |d| {
                    d.set_foreground(fg)
                }),
                None => self.mark_not_applicable(format!("priority {priority} has no ForegroundPriority equivalent")),
            },
            ApiCall::SetNoProgressTimeout { job, seconds } => {
                self.on_dl(job, &format!("SetProperty(NoProgressTimeoutSeconds={seconds})"), |d| {
                    d.set_no_progress_timeout(seconds)
                })
            }
            ApiCall::GetState { job } => match self.status(job) {
                Ok((s, e, x, _, _)) => match do_map::job_state(s, e, x) {
                    Some(st) => ApiReply::ok(ApiValue::State(st)),
                    None => ApiReply::ok(ApiValue::None),
                },
                Err(h) => ApiReply::err(h),
            },
            ApiCall::GetProgress { job } => match self.status(job) {
                Ok((s, _, _, total, done)) => {
                    let files = self.jobs.get(&job).map_or(0, |slot| slot.files) as u32;
                    ApiReply::ok(ApiValue::Progress(JobProgress {
                        bytes_total: total,
                        bytes_transferred: done,
                        files_total: files,
                        files_transferred: if transferred(s) { files } else { 0 },
                    }))
                }
                Err(h) => ApiReply::err(h),
            },
            ApiCall::GetFileProgress { job, file } => match self.status(job) {
                Ok((s, _, _, total, done)) if file == 0 && self.jobs.get(&job).is_some_and(|j| j.files == 1) => {
                    ApiReply::ok(ApiValue::FileProgress(bitsim_model::FileProgress {
                        bytes_total: total,
                        bytes_transferred: done,
                        completed: transferred(s),
                    }))
                }
                Ok(_) => ApiReply::err(Hresult::E_INVALIDARG),
                Err(h) => ApiReply::err(h),
            },
            ApiCall::GetError { job } => self.get_error(job),
            ApiCall::GetNoProgressTimeout { job } => {
                let Some(slot) = self.jobs.get(&job) else {
                    return ApiReply::err(Hresult::DO_E_JOB_NOT_FOUND);
                };
                let out = slot.dl.get_property(DODownloadProperty_NoProgressTimeoutSeconds);
                let hresult = Hresult::from(out.hr);
                match out.value {
                    Some(PropValue::U32(n)) if out.hr.is_success() => ApiReply {
                        hresult,
                        value: ApiValue::Count(n),
                    },
                    Some(other) if out.hr.is_success() => {
                        self.mark_not_applicable(format!("NoProgressTimeoutSeconds read back as {other:?}"))
                    }
                    _ => ApiReply::err(hresult),
                }
            }
            ApiCall::GetJob { .. } | ApiCall::EnumJobs { .. } => {
                self.mark_not_applicable("IDOManager has no GetJob / EnumJobs by job".into())
            }
            ApiCall::SetDisplayName { .. } | ApiCall::SetDescription { .. } => {
                self.mark_not_applicable("display name / description changes are not expressed on IDODownload".into())
            }
            ApiCall::SetNotifyFlags { .. } | ApiCall::SetNotifyInterface { .. } | ApiCall::GetNotifyFlags { .. } => {
                self.mark_not_applicable("IDODownload has no BITS notify interface / flags".into())
            }
            ApiCall::SetNotifyCmdLine { .. } => {
                self.mark_not_applicable("IDODownload has no notify command line".into())
            }
            ApiCall::SetMinimumRetryDelay { .. } | ApiCall::GetMinimumRetryDelay { .. } => {
                self.mark_not_applicable("IDODownload has no minimum retry delay".into())
            }
            ApiCall::SetMaximumDownloadTime { .. } => {
                self.mark_not_applicable("IDODownload has no maximum download time".into())
            }
            ApiCall::SetReplyFileName { .. } | ApiCall::GetReplyProgress { .. } | ApiCall::GetReplyData { .. } => {
                self.mark_not_applicable("IDODownload has no reply (upload-reply jobs)".into())
            }
            ApiCall::TakeOwnership { .. } => self.mark_not_applicable("TakeOwnership needs a second user".into()),
            ApiCall::GetTimes { .. } => self.mark_not_applicable("IDODownload has no job times".into()),
            ApiCall::GetNotifyInterface { .. } => {
                self.mark_not_applicable("IDODownload has no GetNotifyInterface".into())
            }
            ApiCall::GetNotifyCmdLine { .. } => {
                self.mark_not_applicable("IDODownload has no notify command line".into())
            }
            ApiCall::GetOwner { .. } => self.mark_not_applicable("IDODownload has no job owner".into()),
            ApiCall::SetCredentials { .. } | ApiCall::RemoveCredentials { .. } => {
                self.mark_not_applicable("IDODownload has no SetCredentials".into())
            }
            ApiCall::SetCostFlags { .. } | ApiCall::GetCostFlags { .. } => {
                self.mark_not_applicable("IDODownload has no cost flags".into())
            }
            ApiCall::GetErrorCount { .. } => self.mark_not_applicable("IDODownload has no error count".into()),
            ApiCall::GetPriority { .. } => {
                self.mark_not_applicable("IDODownload has no BG_JOB_PRIORITY to read back".into())
            }
        }
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
        }
    }

    async fn env(&mut self, event: EnvEvent) -> Result<(), NotApplicable> {
        Err(env_not_scripted(&event, "DO"))
    }

    async fn set_plan(&mut self, plan: Plan) -> Result<(), NotApplicable> {
        let line = self.control.set_plan(&self.base_url, plan)?;
        self.line(line);
        Ok(())
    }

    async fn release_callback(&mut self, name: &str) {
        self.mark_not_applicable(format!("callback {name}: IDODownload delivers no BITS notifications"));
    }

    fn deliveries(&self) -> Vec<Delivery> {
        Vec::new()
    }

    fn command_runs(&self) -> Vec<CommandRun> {
        Vec::new()
    }

    fn in_flight(&self, _user: UserId) -> Result<usize, NotApplicable> {
        Err(NotApplicable("IDODownload delivers no BITS notifications".into()))
    }

    fn requests(&self) -> Result<Vec<RequestLogEntry>, NotApplicable> {
        self.control.log(&self.base_url)
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
