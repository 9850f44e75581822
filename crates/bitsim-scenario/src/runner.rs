//! The runner: executes a scenario's steps against a [`Backend`], checks the
//! expectations, and collects the trace and the projection.

use crate::backend::{Backend, Delivery};
use crate::format::*;
use crate::load::LoadedScenario;
use crate::projection::{ApiResultRecord, Checkpoint, Projection};
use bitsim_model::{
    ApiCall, ApiReply, ApiValue, EnvEvent, Flavor, Hresult, JobId, JobPriority, JobState, JobType, Time, UserId,
    BG_SIZE_UNKNOWN,
};
use std::collections::BTreeMap;
use std::fmt;

/// The first unmet expectation of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub file: String,
    pub line: usize,
    pub step: usize,
    pub what: String,
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: step {} ({}): expected {}, got {}",
            self.file, self.line, self.step, self.what, self.expected, self.actual
        )
    }
}

/// How a scenario run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed(Failure),
    /// The backend cannot run this scenario (e.g. logoff on a real machine).
    NotApplicable(String),
}

/// The result of running one scenario under one flavor.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub name: String,
    pub file: String,
    pub flavor: Flavor,
    pub backend: String,
    pub seed: u64,
    pub verdict: Verdict,
    /// The trace, one event per line.
    pub trace: Vec<String>,
    pub projection: Projection,
    /// Virtual (or real) time the run covered.
    pub covered: Time,
}

/// How strictly the runner checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunOptions {
    /// Record API calls without `expect` whatever they return, and let a `wait` that
    /// times out just let the time pass, instead of stopping the run. Generated
    /// scenarios (`bitsim explore`) call methods in any order, including ones that
    /// must fail; their files get the observed codes written in before they are saved.
    pub lenient: bool,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Passed
    }

    /// The trace as text.
    pub fn trace_text(&self) -> String {
        let mut s = String::new();
        for l in &self.trace {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// Flavors a scenario runs under, filtered by an optional `--flavor`.
pub fn flavors_for(scenario: &Scenario, only: Option<Flavor>) -> Vec<Flavor> {
    scenario
        .flavors
        .iter()
        .map(|f| f.0)
        .filter(|f| only.is_none_or(|o| o == *f))
        .collect()
}

/// Runs `loaded` on `backend` (already created for `flavor`, with the scenario's plan).
pub async fn run<B: Backend>(loaded: &LoadedScenario, backend: &mut B, seed: u64) -> RunReport {
    run_with(loaded, backend, seed, RunOptions::default()).await
}

/// [`run`] with options.
pub async fn run_with<B: Backend>(
    loaded: &LoadedScenario,
    backend: &mut B,
    seed: u64,
    options: RunOptions,
) -> RunReport {
    run_full(loaded, backend, seed, options, false).await.0
}

/// [`run`], also returning the run's structured events, requests and deliveries
/// (what the HTML report draws).
pub async fn run_observed<B: Backend>(
    loaded: &LoadedScenario,
    backend: &mut B,
    seed: u64,
) -> (RunReport, crate::Observed) {
    run_full(loaded, backend, seed, RunOptions::default(), true).await
}

/// The runner itself. The returned [`crate::Observed`] always carries the model
/// events the backend kept (`bitsim explore` checks invariants on them);
/// `observe` also asks the backend for its request log, connections, deliveries
/// and command runs (a real backend's log is one more HTTP round trip, so plain
/// runs skip it).
pub async fn run_full<B: Backend>(
    loaded: &LoadedScenario,
    backend: &mut B,
    seed: u64,
    options: RunOptions,
    observe: bool,
) -> (RunReport, crate::Observed) {
    let mut r = Runner {
        loaded,
        options,
        flavor: backend.flavor(),
        jobs: BTreeMap::new(),
        users: BTreeMap::new(),
        callbacks: BTreeMap::new(),
        trace: Vec::new(),
        events: Vec::new(),
        projection: Projection::new(&loaded.name, backend.flavor()),
    };
    let verdict = match r.run_steps(backend).await {
        Ok(()) => Verdict::Passed,
        Err(Stop::Failed(f)) => Verdict::Failed(f),
        Err(Stop::NotApplicable(why)) => Verdict::NotApplicable(why),
    };
    r.collect(backend);
    r.projection.notifications = crate::projection::notifications(&backend.deliveries(), &r.job_names());
    let mut files: Vec<(String, u64)> = Vec::new();
    // Each name is looked up once, however many steps name it.
    let mut asked: Vec<String> = Vec::new();
    for entry in &loaded.scenario.steps {
        for name in local_names(&entry.step) {
            if asked.contains(&name) {
                continue;
            }
            if let Some(size) = backend.file_size(&name) {
                files.push((name.clone(), size));
            }
            asked.push(name);
        }
    }
    files.sort();
    r.projection.files = files;
    if let Verdict::Failed(f) = &verdict {
        r.trace.push(format!("{}  FAILED {f}", backend.now().padded()));
    }
    let observed = match observe {
        true => crate::Observed {
            jobs: r.job_names(),
            events: std::mem::take(&mut r.events),
            requests: backend.requests().unwrap_or_default(),
            connections: backend.connection_jobs().into_iter().collect(),
            deliveries: backend.deliveries(),
            command_runs: backend.command_runs(),
            files_left: backend.list_files(),
        },
        false => crate::Observed {
            events: std::mem::take(&mut r.events),
            ..Default::default()
        },
    };
    let report = RunReport {
        name: loaded.name.clone(),
        file: loaded.path.display().to_string(),
        flavor: r.flavor,
        backend: backend.name(),
        seed,
        verdict,
        trace: r.trace,
        projection: r.projection,
        covered: backend.now(),
    };
    (report, observed)
}

enum Stop {
    Failed(Failure),
    NotApplicable(String),
}

struct Runner<'a> {
    loaded: &'a LoadedScenario,
    options: RunOptions,
    flavor: Flavor,
    jobs: BTreeMap<String, JobId>,
    users: BTreeMap<String, UserId>,
    /// Callback objects by scenario name (to name what GetNotifyInterface returns).
    callbacks: BTreeMap<String, bitsim_model::Callback>,
    trace: Vec<String>,
    /// The backend's structured events (see [`crate::Observed`]).
    events: Vec<bitsim_model::TraceEvent>,
    projection: Projection,
}

/// Shorthand for "this step failed".
struct Mismatch {
    what: String,
    expected: String,
    actual: String,
}

fn mismatch(what: impl Into<String>, expected: impl fmt::Display, actual: impl fmt::Display) -> Mismatch {
    Mismatch {
        what: what.into(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

impl Runner<'_> {
    fn job_names(&self) -> BTreeMap<JobId, String> {
        self.jobs.iter().map(|(k, v)| (*v, k.clone())).collect()
    }

    fn collect<B: Backend>(&mut self, backend: &mut B) {
        let lines = backend.take_trace();
        if !lines.is_empty() {
            // Only jobs whose alias is not the trace's own `jN` need renaming; most
            // runs have none, and then no line is scanned for job ids.
            let names: BTreeMap<JobId, String> = self
                .jobs
                .iter()
                .filter(|(alias, id)| !is_trace_name(alias, **id))
                .map(|(k, v)| (*v, k.clone()))
                .collect();
            // The run's directory differs per run: traces name local files relative to it
            // (ref: ARCHITECTURE.md "The trace": stable, byte-identical for a seed).
            let root = backend.local_path("");
            self.trace.reserve(lines.len());
            for line in lines {
                // Most lines name no local file and no renamed job: they are kept as
                // they are, without copying.
                let line = if contains(&line, &root) {
                    line.replace(&root, "")
                } else {
                    line
                };
                let line = match names.is_empty() {
                    true => line,
                    false => rename_jobs_if_needed(&line, &names).unwrap_or(line),
                };
                self.trace.push(line);
            }
        }
        let events = backend.take_events();
        if self.events.is_empty() {
            self.events = events;
        } else {
            self.events.extend(events);
        }
    }

    fn note<B: Backend>(&mut self, backend: &mut B, text: String) {
        self.collect(backend);
        self.trace.push(format!("{}  {text}", backend.now().padded()));
    }

    async fn run_steps<B: Backend>(&mut self, backend: &mut B) -> Result<(), Stop> {
        let scenario = &self.loaded.scenario;
        for name in &scenario.users {
            let id = backend.add_user(name).map_err(|e| Stop::NotApplicable(e.0))?;
            self.users.insert(name.clone(), id);
        }
        for (name, kind) in &scenario.user_kinds {
            let Some(&id) = self.users.get(name) else {
                return Err(Stop::Failed(Failure {
                    file: self.loaded.path.display().to_string(),
                    line: 1,
                    step: 0,
                    what: format!("user_kinds.{name}"),
                    expected: "a user listed in `users`".into(),
                    actual: format!("`{name}`"),
                }));
            };
            if kind.0 != bitsim_model::OwnerKind::InteractiveUser {
                backend
                    .set_user_kind(id, kind.0)
                    .map_err(|e| Stop::NotApplicable(e.0))?;
            }
        }
        let mut callbacks = BTreeMap::new();
        for (name, policy) in &scenario.callbacks {
            callbacks.insert(name.clone(), backend.define_callback(name, policy));
        }
        self.callbacks = callbacks.clone();
        for (i, entry) in scenario.steps.iter().enumerate() {
            if entry.only.is_some_and(|f| f != self.flavor) {
                continue;
            }
            let result = match halted(backend) {
                Ok(()) => self.step(backend, &entry.step, entry.line, &callbacks).await,
                Err(e) => Err(e),
            };
            self.collect(backend);
            match result {
                Ok(()) => {}
                Err(StepError::NotApplicable(why)) => return Err(Stop::NotApplicable(why)),
                Err(StepError::Mismatch(m)) => {
                    return Err(Stop::Failed(Failure {
                        file: self.loaded.path.display().to_string(),
                        line: entry.line,
                        step: i + 1,
                        what: m.what,
                        expected: m.expected,
                        actual: m.actual,
                    }))
                }
            }
        }
        Ok(())
    }

    fn job(&self, alias: &str) -> JobId {
        self.jobs.get(alias).copied().unwrap_or(JobId(0))
    }

    fn user(&self, name: &Option<String>) -> UserId {
        let name = name.as_deref().unwrap_or(&self.loaded.scenario.users[0]);
        self.users.get(name).copied().unwrap_or(UserId(0))
    }

    /// Makes an API call, records its HRESULT in the projection, and checks it.
    async fn api<B: Backend>(
        &mut self,
        backend: &mut B,
        line: usize,
        what: &str,
        call: ApiCall,
        expect: &Option<ExpectHr>,
    ) -> Result<ApiReply, StepError> {
        let reply = backend.call(call).await;
        self.projection.api_results.push(ApiResultRecord {
            line,
            call: what.to_string(),
            hresult: reply.hresult,
        });
        let ok = match expect {
            Some(e) => e.matches(reply.hresult),
            None => self.options.lenient || reply.hresult.is_success(),
        };
        if !ok {
            let expected = expect.map_or_else(|| "a success code".to_string(), |e| e.to_string());
            return Err(mismatch(format!("{what} return code"), expected, reply.hresult).into());
        }
        Ok(reply)
    }

    async fn step<B: Backend>(
        &mut self,
        backend: &mut B,
        step: &Step,
        line: usize,
        callbacks: &BTreeMap<String, bitsim_model::Callback>,
    ) -> Result<(), StepError> {
        use Step::*;
        match step {
            CreateJob {
                job,
                user,
                name,
                job_type,
                expect,
            } => {
                let display_name = name.clone().unwrap_or_else(|| format!("bitsim-{job}"));
                let call = ApiCall::CreateJob {
                    user: self.user(user),
                    display_name,
                    job_type: job_type.map_or(JobType::Download, |t| t.0),
                };
                let reply = self.api(backend, line, "CreateJob", call, expect).await?;
                if let ApiValue::Job(id) = reply.value {
                    self.jobs.insert(job.clone(), id);
                }
            }
            GetJob { job, user, expect } => {
                let call = ApiCall::GetJob {
                    user: self.user(user),
                    job: self.job(job),
                };
                let reply = self.api(backend, line, "GetJob", call, expect).await?;
                let who = user.as_deref().unwrap_or(&self.loaded.scenario.users[0]).to_string();
                self.note(backend, format!("check GetJob({job}) as {who} -> {} ok", reply.hresult));
            }
            EnumJobs { user, jobs } => {
                let reply = backend.call(ApiCall::EnumJobs { user: self.user(user) }).await;
                let names = self.job_names();
                let actual: Vec<String> = match reply.value {
                    ApiValue::Jobs(ids) => ids
                        .iter()
                        .map(|id| names.get(id).cloned().unwrap_or(id.to_string()))
                        .collect(),
                    _ => Vec::new(),
                };
                if actual != *jobs {
                    return Err(mismatch("EnumJobs", format!("{jobs:?}"), format!("{actual:?}")).into());
                }
                let who = user.as_deref().unwrap_or(&self.loaded.scenario.users[0]).to_string();
                self.note(backend, format!("check EnumJobs as {who} = {actual:?} ok"));
            }
            AddFile {
                job,
                url,
                local,
                expect,
            } => {
                let call = ApiCall::AddFile {
                    job: self.job(job),
                    remote_name: backend.url(url),
                    local_name: backend.local_path(local),
                };
                self.api(backend, line, "AddFile", call, expect).await?;
            }
            AddFiles { job, files, expect } => {
                let files = files
                    .iter()
                    .map(|f| (backend.url(&f.url), backend.local_path(&f.local)))
                    .collect();
                self.api(
                    backend,
                    line,
                    "AddFileSet",
                    ApiCall::AddFileSet {
                        job: self.job(job),
                        files,
                    },
                    expect,
                )
                .await?;
            }
            Resume { job, expect } => {
                self.api(backend, line, "Resume", ApiCall::Resume { job: self.job(job) }, expect)
                    .await?;
            }
            Suspend { job, expect } => {
                self.api(
                    backend,
                    line,
                    "Suspend",
                    ApiCall::Suspend { job: self.job(job) },
                    expect,
                )
                .await?;
            }
            Cancel { job, expect } => {
                self.api(backend, line, "Cancel", ApiCall::Cancel { job: self.job(job) }, expect)
                    .await?;
            }
            Complete { job, expect } => {
                self.api(
                    backend,
                    line,
                    "Complete",
                    ApiCall::Complete { job: self.job(job) },
                    expect,
                )
                .await?;
            }
            SetDisplayName { job, value, expect } => {
                let call = ApiCall::SetDisplayName {
                    job: self.job(job),
                    name: value.render(),
                };
                self.api(backend, line, "SetDisplayName", call, expect).await?;
            }
            SetDescription { job, value, expect } => {
                let call = ApiCall::SetDescription {
                    job: self.job(job),
                    text: value.render(),
                };
                self.api(backend, line, "SetDescription", call, expect).await?;
            }
            SetPriority { job, value, expect } => {
                let call = ApiCall::SetPriority {
                    job: self.job(job),
                    priority: value.0,
                };
                self.api(backend, line, "SetPriority", call, expect).await?;
            }
            SetNotifyFlags { job, value, expect } => {
                let call = ApiCall::SetNotifyFlags {
                    job: self.job(job),
                    flags: value.0,
                };
                self.api(backend, line, "SetNotifyFlags", call, expect).await?;
            }
            SetNotifyInterface { job, callback, expect } => {
                let cb = callback.as_ref().and_then(|c| callbacks.get(c)).copied();
                let call = ApiCall::SetNotifyInterface {
                    job: self.job(job),
                    callback: cb,
                };
                self.api(backend, line, "SetNotifyInterface", call, expect).await?;
            }
            SetNotifyCmdline {
                job,
                program,
                parameters,
                exit_codes,
                expect,
            } => {
                let id = self.job(job);
                let codes = if exit_codes.is_empty() {
                    vec![0]
                } else {
                    exit_codes.clone()
                };
                backend.set_cmdline_exit_codes(id, &codes);
                let call = ApiCall::SetNotifyCmdLine {
                    job: id,
                    program: program.as_ref().map(TextSpec::render),
                    parameters: parameters.as_ref().map(TextSpec::render),
                };
                self.api(backend, line, "SetNotifyCmdLine", call, expect).await?;
            }
            SetMinimumRetryDelay { job, seconds, expect } => {
                let call = ApiCall::SetMinimumRetryDelay {
                    job: self.job(job),
                    seconds: *seconds,
                };
                self.api(backend, line, "SetMinimumRetryDelay", call, expect).await?;
            }
            SetNoProgressTimeout { job, seconds, expect } => {
                let call = ApiCall::SetNoProgressTimeout {
                    job: self.job(job),
                    seconds: *seconds,
                };
                self.api(backend, line, "SetNoProgressTimeout", call, expect).await?;
            }
            SetMaximumDownloadTime { job, seconds, expect } => {
                let call = ApiCall::SetMaximumDownloadTime {
                    job: self.job(job),
                    seconds: *seconds,
                };
                self.api(backend, line, "SetMaximumDownloadTime", call, expect).await?;
            }
            SetReplyFileName { job, local, expect } => {
                let path = local.as_ref().map(|l| backend.local_path(l));
                let call = ApiCall::SetReplyFileName {
                    job: self.job(job),
                    path,
                };
                self.api(backend, line, "SetReplyFileName", call, expect).await?;
            }
            TakeOwnership { job, user, expect } => {
                let call = ApiCall::TakeOwnership {
                    job: self.job(job),
                    user: self.user(&Some(user.clone())),
                };
                self.api(backend, line, "TakeOwnership", call, expect).await?;
            }
            Wait {
                job,
                state,
                states,
                within,
            } => {
                let wanted: Vec<JobState> = state.iter().chain(states.iter()).map(|s| s.0).collect();
                let id = self.job(job);
                let deadline = backend.now().plus(within.0);
                loop {
                    let current = get_state(backend, id).await;
                    if current.is_some_and(|s| wanted.contains(&s)) {
                        self.checkpoint(backend, line, job, id).await;
                        self.note(backend, format!("check {job} reached {}", show_states(&wanted)));
                        break;
                    }
                    if backend.now() >= deadline && self.options.lenient {
                        break;
                    }
                    if backend.now() >= deadline {
                        let actual = current.map_or("no state".to_string(), |s| s.to_string());
                        return Err(mismatch(
                            format!("wait for {job}"),
                            format!("{} within {within}", show_states(&wanted)),
                            actual,
                        )
                        .into());
                    }
                    backend.advance_until(deadline).await;
                    halted(backend)?;
                }
            }
            Advance { by } => {
                let target = backend.now().plus(by.0);
                while backend.now() < target {
                    backend.advance_until(target).await;
                    halted(backend)?;
                }
            }
            WriteFile { name, size } => {
                backend
                    .write_file(name, *size)
                    .map_err(|e| StepError::Mismatch(mismatch(format!("write {name}"), "a written file", e)))?;
                self.note(backend, format!("wrote {name} ({size} bytes)"));
            }
            NetworkLost {} => backend.env(EnvEvent::NetworkLost).await?,
            NetworkRestored {} => backend.env(EnvEvent::NetworkRestored).await?,
            Logoff { user } => backend.env(EnvEvent::LogOff(self.user(&Some(user.clone())))).await?,
            Logon { user } => backend.env(EnvEvent::LogOn(self.user(&Some(user.clone())))).await?,
            ServiceRestart {} => backend.env(EnvEvent::ServiceRestart).await?,
            SetCredentials {
                job,
                target,
                scheme,
                user,
                password,
                expect,
            } => {
                let call = ApiCall::SetCredentials {
                    job: self.job(job),
                    credential: bitsim_model::Credential {
                        target: model_target(*target),
                        scheme: model_scheme(*scheme),
                        user: user.as_ref().map(TextSpec::render),
                        password: password.as_ref().map(TextSpec::render),
                    },
                };
                self.api(backend, line, "SetCredentials", call, expect).await?;
            }
            RemoveCredentials {
                job,
                target,
                scheme,
                expect,
            } => {
                let call = ApiCall::RemoveCredentials {
                    job: self.job(job),
                    target: model_target(*target),
                    scheme: model_scheme(*scheme),
                };
                self.api(backend, line, "RemoveCredentials", call, expect).await?;
            }
            NetworkCost { cost } => backend.env(EnvEvent::NetworkCost(cost.0)).await?,
            BatterySaver { on } => backend.env(EnvEvent::BatterySaver(*on)).await?,
            BackgroundBandwidth { kbps } => backend.env(EnvEvent::BackgroundBandwidth(*kbps)).await?,
            SetCostFlags { job, value, expect } => {
                let call = ApiCall::SetCostFlags {
                    job: self.job(job),
                    flags: value.0,
                };
                self.api(backend, line, "SetCostFlags", call, expect).await?;
            }
            LockFile { name, how, temporary } => {
                let lock = match how {
                    LockHow::Busy => bitsim_model::FileLock::Busy,
                    LockHow::ReadOnly => bitsim_model::FileLock::ReadOnly,
                };
                let path = backend.local_path(name);
                backend
                    .env(EnvEvent::LocalFileLocked {
                        path,
                        temporary: *temporary,
                        lock,
                    })
                    .await?
            }
            UnlockFile { name, temporary } => {
                let path = backend.local_path(name);
                backend
                    .env(EnvEvent::LocalFileReleased {
                        path,
                        temporary: *temporary,
                    })
                    .await?
            }
            SetPlan { plan, plan_file } => {
                let plan = match (plan, plan_file) {
                    (Some(p), _) => p.clone(),
                    (None, Some(rel)) => {
                        let base = self.loaded.path.parent().unwrap_or(std::path::Path::new("."));
                        crate::load::load_plan(&base.join(rel))
                            .map_err(|e| StepError::Mismatch(mismatch("set_plan", "a loadable plan", e)))?
                    }
                    (None, None) => bitsim_server::Plan::default(),
                };
                backend.set_plan(plan).await?;
            }
            ReleaseCallback { callback } => backend.release_callback(callback).await,
            Expect(e) => self.expect(backend, line, e).await?,
            ExpectNotifications {
                job,
                kind,
                count,
                at_least,
                sequence,
            } => {
                let names = self.job_names();
                let id = job.as_ref().map(|j| self.job(j));
                let seen: Vec<Delivery> = backend
                    .deliveries()
                    .into_iter()
                    .filter(|d| id.is_none_or(|id| d.job == id) && kind.is_none_or(|k| d.kind == k.0))
                    .collect();
                let what = format!(
                    "notifications{}{}",
                    job.as_ref().map_or(String::new(), |j| format!(" to {j}")),
                    kind.map_or(String::new(), |k| format!(" of {}", k.0))
                );
                if let Some(n) = count {
                    if seen.len() != *n as usize {
                        return Err(
                            mismatch(what, format!("{n} deliveries"), describe_deliveries(&seen, &names)).into(),
                        );
                    }
                }
                if let Some(n) = at_least {
                    if seen.len() < *n as usize {
                        return Err(mismatch(
                            what,
                            format!("at least {n} deliveries"),
                            describe_deliveries(&seen, &names),
                        )
                        .into());
                    }
                }
                if let Some(seq) = sequence {
                    let ok = seq.len() == seen.len()
                        && seq.iter().zip(&seen).all(|(e, d)| delivery_matches(e, d, &self.jobs));
                    if !ok {
                        let expected: Vec<String> = seq.iter().map(describe_expect).collect();
                        return Err(mismatch(
                            what,
                            format!("[{}]", expected.join(", ")),
                            describe_deliveries(&seen, &names),
                        )
                        .into());
                    }
                }
                self.note(backend, format!("check {what}: {} ok", seen.len()));
            }
            ExpectInFlight { user, count } => {
                let actual = backend.in_flight(self.user(user))?;
                if actual != *count {
                    return Err(mismatch("notifications in flight", count, actual).into());
                }
                self.note(backend, format!("check in-flight notifications = {count} ok"));
            }
            ExpectCmdline { job, runs } => {
                let id = self.job(job);
                let actual = backend.command_runs().iter().filter(|r| r.job == id).count();
                if actual != *runs as usize {
                    return Err(mismatch(format!("command-line runs for {job}"), runs, actual).into());
                }
                self.note(backend, format!("check {job} command line ran {runs} times ok"));
            }
            ExpectFiles { present, absent } => {
                for f in present {
                    match (backend.file_size(&f.name), f.size) {
                        (None, _) => return Err(mismatch(format!("file {}", f.name), "present", "absent").into()),
                        (Some(actual), Some(want)) if !want.matches(actual) => {
                            return Err(mismatch(format!("size of {}", f.name), want, actual).into())
                        }
                        _ => {}
                    }
                    self.expect_content(backend, f)?;
                }
                for name in absent {
                    if let Some(size) = backend.file_size(name) {
                        return Err(
                            mismatch(format!("file {name}"), "absent", format!("present ({size} bytes)")).into(),
                        );
                    }
                }
                self.note(
                    backend,
                    format!("check files ok ({} present, {} absent)", present.len(), absent.len()),
                );
            }
            ExpectRequests {
                method,
                path,
                packet,
                count,
            } => {
                let log = backend.requests()?;
                let n = log
                    .iter()
                    .filter(|e| method.as_ref().is_none_or(|m| e.method.eq_ignore_ascii_case(m)))
                    .filter(|e| path.as_ref().is_none_or(|p| e.path == *p))
                    .filter(|e| {
                        packet
                            .as_ref()
                            .is_none_or(|p| e.packet_type.as_ref().is_some_and(|t| t.eq_ignore_ascii_case(p)))
                    })
                    .count();
                let what = format!(
                    "requests{}{}{}",
                    method.as_ref().map_or(String::new(), |m| format!(" {m}")),
                    path.as_ref().map_or(String::new(), |p| format!(" {p}")),
                    packet.as_ref().map_or(String::new(), |p| format!(" packet={p}"))
                );
                if n != *count {
                    return Err(mismatch(what, count, n).into());
                }
                self.note(backend, format!("check {what}: {n} ok"));
            }
            ExpectUploaded { path, present, size } => {
                let actual = backend.uploaded_size(path)?;
                let what = format!("upload {path} on the server");
                match (actual, *present, size) {
                    (None, true, _) => return Err(mismatch(what, "present", "absent").into()),
                    (Some(n), false, _) => return Err(mismatch(what, "absent", format!("present ({n} bytes)")).into()),
                    (Some(n), true, Some(want)) if !want.matches(n) => {
                        return Err(mismatch(what, format!("{want} bytes"), format!("{n} bytes")).into())
                    }
                    _ => {}
                }
                let shown = if *present { "present" } else { "absent" };
                self.note(backend, format!("check {what}: {shown} ok"));
            }
        }
        Ok(())
    }

    async fn checkpoint<B: Backend>(&mut self, backend: &mut B, line: usize, alias: &str, id: JobId) {
        let state = get_state(backend, id).await;
        let err = backend.call(ApiCall::GetError { job: id }).await;
        let error = match err.value {
            ApiValue::Error { hresult, context, .. } => Some((hresult, context)),
            _ => None,
        };
        self.projection.checkpoints.push(Checkpoint {
            line,
            job: alias.to_string(),
            state,
            error,
        });
    }

    async fn expect<B: Backend>(&mut self, backend: &mut B, line: usize, e: &Expectation) -> Result<(), StepError> {
        let job = e.job.as_str();
        let id = self.job(job);
        let mut checked = Vec::new();
        if let Some(want) = e.state {
            let actual = get_state(backend, id).await;
            if actual != Some(want.0) {
                return Err(mismatch(
                    format!("state of {job}"),
                    want.0,
                    actual.map_or("none".into(), |s| s.to_string()),
                )
                .into());
            }
            checked.push(format!("state={}", want.0));
        }
        if let Some(p) = &e.progress {
            let reply = backend.call(ApiCall::GetProgress { job: id }).await;
            let ApiValue::Progress(actual) = reply.value else {
                return Err(mismatch(format!("progress of {job}"), "a progress", reply.hresult).into());
            };
            check_u64(job, "bytes_total", p.bytes_total, actual.bytes_total)?;
            check_u64(job, "bytes_transferred", p.bytes_transferred, actual.bytes_transferred)?;
            check_u64(job, "files_total", p.files_total, actual.files_total as u64)?;
            check_u64(
                job,
                "files_transferred",
                p.files_transferred,
                actual.files_transferred as u64,
            )?;
            checked.push("progress".into());
        }
        if let Some(fp) = &e.file_progress {
            let reply = backend.call(ApiCall::GetFileProgress { job: id, file: fp.file }).await;
            let ApiValue::FileProgress(actual) = reply.value else {
                return Err(mismatch(
                    format!("file {} progress of {job}", fp.file),
                    "a file progress",
                    reply.hresult,
                )
                .into());
            };
            check_u64(job, "file bytes_total", fp.bytes_total, actual.bytes_total)?;
            check_u64(
                job,
                "file bytes_transferred",
                fp.bytes_transferred,
                actual.bytes_transferred,
            )?;
            if let Some(c) = fp.completed {
                if c != actual.completed {
                    return Err(mismatch(format!("file {} Completed of {job}", fp.file), c, actual.completed).into());
                }
            }
            checked.push(format!("file {} progress", fp.file));
        }
        if let Some(want) = &e.error {
            let reply = backend.call(ApiCall::GetError { job: id }).await;
            let actual = match reply.value {
                ApiValue::Error { hresult, context, file } => {
                    format!("{hresult} context={context} file={}", show_file(file))
                }
                _ => format!("GetError fails with {}", reply.hresult),
            };
            let ok = match reply.value {
                ApiValue::Error { hresult, context, file } => {
                    hresult == want.hr()
                        && want.context.is_none_or(|c| c.0 == context)
                        && want.file.is_none_or(|f| f == file)
                }
                _ => want.context.is_none() && want.file.is_none() && reply.hresult == want.hr(),
            };
            if !ok {
                let expected = match (want.context, want.file) {
                    (None, None) => format!("{}", want.hr()),
                    (c, f) => format!(
                        "{}{}{}",
                        want.hr(),
                        c.map_or(String::new(), |c| format!(" context={}", c.0)),
                        f.map_or(String::new(), |f| format!(" file={}", show_file(f)))
                    ),
                };
                return Err(mismatch(format!("error of {job}"), expected, actual).into());
            }
            checked.push(format!("error={}", want.hr()));
        }
        if let Some(want) = e.error_count {
            let reply = backend.call(ApiCall::GetErrorCount { job: id }).await;
            match reply.value {
                ApiValue::Count(n) if want.matches(n.into()) => {}
                ApiValue::Count(n) => return Err(mismatch(format!("error count of {job}"), want, n).into()),
                _ => return Err(mismatch(format!("error count of {job}"), want, reply.hresult).into()),
            }
            checked.push(format!("error_count={want}"));
        }
        if let Some(want) = e.priority {
            let reply = backend.call(ApiCall::GetPriority { job: id }).await;
            let expected = JobPriority::from_value(want.0).map_or(want.0.to_string(), |p| p.to_string());
            match reply.value {
                ApiValue::Priority(p) if p.value() == want.0 => {}
                ApiValue::Priority(p) => return Err(mismatch(format!("priority of {job}"), expected, p).into()),
                _ => return Err(mismatch(format!("priority of {job}"), expected, reply.hresult).into()),
            }
            checked.push(format!("priority={expected}"));
        }
        if let Some(want) = e.notify_flags {
            self.expect_count(
                backend,
                job,
                "notify flags",
                ApiCall::GetNotifyFlags { job: id },
                ValueSpec::Is(want.0.into()),
            )
            .await?;
            checked.push(format!("notify_flags=0x{:X}", want.0));
        }
        if let Some(want) = e.cost_flags {
            self.expect_count(
                backend,
                job,
                "cost flags",
                ApiCall::GetCostFlags { job: id },
                ValueSpec::Is(want.0.into()),
            )
            .await?;
            checked.push(format!("cost_flags=0x{:X}", want.0));
        }
        if let Some(want) = e.minimum_retry_delay {
            self.expect_count(
                backend,
                job,
                "minimum retry delay",
                ApiCall::GetMinimumRetryDelay { job: id },
                want,
            )
            .await?;
            checked.push(format!("minimum_retry_delay={want}"));
        }
        if let Some(want) = e.no_progress_timeout {
            self.expect_count(
                backend,
                job,
                "no-progress timeout",
                ApiCall::GetNoProgressTimeout { job: id },
                want,
            )
            .await?;
            checked.push(format!("no_progress_timeout={want}"));
        }
        if let Some(p) = &e.reply_progress {
            let reply = backend.call(ApiCall::GetReplyProgress { job: id }).await;
            let ApiValue::ReplyProgress(actual) = reply.value else {
                return Err(mismatch(format!("reply progress of {job}"), "a reply progress", reply.hresult).into());
            };
            check_u64(job, "reply bytes_total", p.bytes_total, actual.bytes_total)?;
            check_u64(
                job,
                "reply bytes_transferred",
                p.bytes_transferred,
                actual.bytes_transferred,
            )?;
            checked.push("reply_progress".into());
        }
        if let Some(want) = &e.reply_data {
            let reply = backend.call(ApiCall::GetReplyData { job: id }).await;
            match (want, &reply.value) {
                (ReplyDataExpect::Length(n), ApiValue::Bytes(len)) if n == len => {}
                (ReplyDataExpect::Fails(hr), ApiValue::None) if hr.matches(reply.hresult) => {}
                (ReplyDataExpect::Length(n), _) => {
                    return Err(
                        mismatch(format!("reply data of {job}"), format!("{n} bytes"), show_reply(&reply)).into(),
                    )
                }
                (ReplyDataExpect::Fails(hr), _) => {
                    return Err(mismatch(
                        format!("reply data of {job}"),
                        format!("failure {hr}"),
                        show_reply(&reply),
                    )
                    .into())
                }
            }
            checked.push("reply_data".into());
        }
        self.expect_notify_registration(backend, job, id, e, &mut checked)
            .await?;
        if let Some(t) = &e.times {
            self.expect_times(backend, job, id, t).await?;
            checked.push("times".into());
        }
        self.checkpoint(backend, line, job, id).await;
        self.note(backend, format!("check {job} {} ok", checked.join(" ")));
        Ok(())
    }

    async fn expect_count<B: Backend>(
        &mut self,
        backend: &mut B,
        job: &str,
        what: &str,
        call: ApiCall,
        want: ValueSpec,
    ) -> Result<(), StepError> {
        let reply = backend.call(call).await;
        match reply.value {
            ApiValue::Count(n) if want.matches(n.into()) => Ok(()),
            ApiValue::Count(n) => Err(mismatch(format!("{what} of {job}"), want, n).into()),
            _ => Err(mismatch(format!("{what} of {job}"), want, reply.hresult).into()),
        }
    }
}

impl Runner<'_> {
    /// GetNotifyInterface, GetNotifyCmdLine and GetOwner expectations.
    async fn expect_notify_registration<B: Backend>(
        &mut self,
        backend: &mut B,
        job: &str,
        id: JobId,
        e: &Expectation,
        checked: &mut Vec<String>,
    ) -> Result<(), StepError> {
        if let Some(want) = &e.notify_interface {
            let reply = backend.call(ApiCall::GetNotifyInterface { job: id }).await;
            let ApiValue::Callback(actual) = reply.value else {
                return Err(mismatch(format!("notify interface of {job}"), show_name(want), reply.hresult).into());
            };
            let actual_name = actual.and_then(|c| {
                self.callbacks
                    .iter()
                    .find(|(_, cb)| cb.id == c.id)
                    .map(|(n, _)| n.clone())
            });
            if actual_name != *want || actual.is_some() != want.is_some() {
                return Err(mismatch(
                    format!("notify interface of {job}"),
                    show_name(want),
                    show_name(&actual_name),
                )
                .into());
            }
            checked.push(format!("notify_interface={}", show_name(want)));
        }
        if let Some(want) = &e.notify_cmdline {
            let reply = backend.call(ApiCall::GetNotifyCmdLine { job: id }).await;
            let actual = match &reply.value {
                ApiValue::CmdLine(Some((p, a))) => format!("{p:?} {a:?}"),
                ApiValue::CmdLine(None) => "none".to_string(),
                _ => format!("failure {}", reply.hresult),
            };
            let ok = match (want, &reply.value) {
                (CmdLineExpect::Fails { fails }, ApiValue::None) => fails.matches(reply.hresult),
                (CmdLineExpect::Unset(()), ApiValue::CmdLine(None)) => true,
                (CmdLineExpect::Set { program, parameters }, ApiValue::CmdLine(Some((p, a)))) => {
                    p == program && parameters.as_ref().is_none_or(|want| want == a)
                }
                _ => false,
            };
            let expected = match want {
                CmdLineExpect::Fails { fails } => format!("failure {fails}"),
                CmdLineExpect::Unset(()) => "none".to_string(),
                CmdLineExpect::Set { program, parameters } => {
                    format!("{program:?} {:?}", parameters.clone().unwrap_or_default())
                }
            };
            if !ok {
                return Err(mismatch(format!("notify command line of {job}"), expected, actual).into());
            }
            checked.push("notify_cmdline".into());
        }
        if let Some(want) = &e.owner {
            let reply = backend.call(ApiCall::GetOwner { job: id }).await;
            let actual = match reply.value {
                ApiValue::User(u) => self
                    .users
                    .iter()
                    .find(|(_, id)| **id == u)
                    .map_or(format!("user #{}", u.0), |(n, _)| n.clone()),
                _ => format!("failure {}", reply.hresult),
            };
            if actual != *want {
                return Err(mismatch(format!("owner of {job}"), want, actual).into());
            }
            checked.push(format!("owner={want}"));
        }
        Ok(())
    }

    /// GetTimes, compared in whole seconds since the run started.
    async fn expect_times<B: Backend>(
        &mut self,
        backend: &mut B,
        job: &str,
        id: JobId,
        want: &TimesExpect,
    ) -> Result<(), StepError> {
        let reply = backend.call(ApiCall::GetTimes { job: id }).await;
        let ApiValue::Times(t) = reply.value else {
            return Err(mismatch(format!("times of {job}"), "job times", reply.hresult).into());
        };
        let secs = |t: Time| t.as_millis() / 1000;
        check_u64(job, "creation time (s)", want.creation, secs(t.creation))?;
        check_u64(job, "modification time (s)", want.modification, secs(t.modification))?;
        match (want.transfer_completion, t.transfer_completion) {
            (None, _) => {}
            (Some(None), None) => {}
            (Some(None), Some(at)) => {
                return Err(mismatch(
                    format!("transfer completion time of {job}"),
                    "none",
                    format!("{}s", secs(at)),
                )
                .into())
            }
            (Some(Some(_)), None) => {
                return Err(mismatch(format!("transfer completion time of {job}"), "a time", "none").into())
            }
            (Some(Some(w)), Some(at)) => check_u64(job, "transfer completion time (s)", Some(w), secs(at))?,
        }
        Ok(())
    }

    /// `same_as` / `differs_from`: the local file's SHA-256 against the route's.
    fn expect_content<B: Backend>(&self, backend: &B, f: &FileExpect) -> Result<(), StepError> {
        for (route, same) in [(&f.same_as, true), (&f.differs_from, false)] {
            let Some(route) = route else { continue };
            let Some(want) = backend.route_digest(route)? else {
                return Err(mismatch(format!("content of route {route}"), "a generated route", "none").into());
            };
            let actual = crate::digest::file_sha256(std::path::Path::new(&backend.local_path(&f.name)))
                .map_err(|e| StepError::Mismatch(mismatch(format!("content of {}", f.name), "a readable file", e)))?;
            if (actual == want) != same {
                let relation = if same { "equal to" } else { "different from" };
                return Err(mismatch(
                    format!("content of {}", f.name),
                    format!("{relation} {route} (sha256 {})", crate::digest::hex(&want)),
                    format!("sha256 {}", crate::digest::hex(&actual)),
                )
                .into());
            }
        }
        Ok(())
    }
}

fn model_target(t: AuthTarget) -> bitsim_model::AuthTarget {
    match t {
        AuthTarget::Server => bitsim_model::AuthTarget::Server,
        AuthTarget::Proxy => bitsim_model::AuthTarget::Proxy,
    }
}

fn model_scheme(s: AuthScheme) -> bitsim_model::AuthScheme {
    match s {
        AuthScheme::Basic => bitsim_model::AuthScheme::Basic,
        AuthScheme::Digest => bitsim_model::AuthScheme::Digest,
        AuthScheme::Ntlm => bitsim_model::AuthScheme::Ntlm,
        AuthScheme::Negotiate => bitsim_model::AuthScheme::Negotiate,
        AuthScheme::Passport => bitsim_model::AuthScheme::Passport,
    }
}

fn show_name(n: &Option<String>) -> String {
    n.clone().unwrap_or_else(|| "NULL".into())
}

impl ErrorExpect {
    fn hr(&self) -> Hresult {
        self.hresult.0
    }
}

async fn get_state<B: Backend>(backend: &mut B, id: JobId) -> Option<JobState> {
    match backend.call(ApiCall::GetState { job: id }).await.value {
        ApiValue::State(s) => Some(s),
        _ => None,
    }
}

fn check_u64(job: &str, what: &str, want: Option<ValueSpec>, actual: u64) -> Result<(), StepError> {
    match want {
        Some(w) if !w.matches(actual) => Err(mismatch(format!("{what} of {job}"), w, show_size(actual)).into()),
        _ => Ok(()),
    }
}

fn show_size(v: u64) -> String {
    if v == BG_SIZE_UNKNOWN {
        "unknown".into()
    } else {
        v.to_string()
    }
}

fn show_file(f: Option<usize>) -> String {
    f.map_or("none".into(), |f| f.to_string())
}

fn show_states(states: &[JobState]) -> String {
    states.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("|")
}

fn show_reply(reply: &ApiReply) -> String {
    match reply.value {
        ApiValue::Bytes(n) => format!("{n} bytes"),
        _ => format!("failure {}", reply.hresult),
    }
}

fn delivery_matches(e: &DeliveryExpect, d: &Delivery, jobs: &BTreeMap<String, JobId>) -> bool {
    e.kind.0 == d.kind
        && e.job.as_ref().is_none_or(|j| jobs.get(j) == Some(&d.job))
        && e.attempt.is_none_or(|a| a == d.attempt)
        && e.returned.is_none_or(|r| d.returned == Some(r.0))
        && e.hresult.is_none_or(|h| d.error.is_some_and(|(hr, _)| hr == h.0))
        && e.context.is_none_or(|c| d.error.is_some_and(|(_, ctx)| ctx == c.0))
}

fn describe_expect(e: &DeliveryExpect) -> String {
    let mut s = e.kind.0.to_string();
    if let Some(j) = &e.job {
        s += &format!(" {j}");
    }
    if let Some(a) = e.attempt {
        s += &format!(" #{a}");
    }
    if let Some(r) = e.returned {
        s += &format!(" -> {}", r.0);
    }
    s
}

fn describe_deliveries(seen: &[Delivery], names: &BTreeMap<JobId, String>) -> String {
    let items: Vec<String> = seen
        .iter()
        .map(|d| {
            let job = names.get(&d.job).cloned().unwrap_or_else(|| d.job.to_string());
            let ret = d.returned.map_or("blocked".to_string(), |r| r.to_string());
            format!("{} {job} #{} -> {ret}", d.kind, d.attempt)
        })
        .collect();
    format!("{} deliveries [{}]", seen.len(), items.join(", "))
}

/// Local file names a step mentions.
fn local_names(step: &Step) -> Vec<String> {
    match step {
        Step::AddFile { local, .. } => vec![local.clone()],
        Step::AddFiles { files, .. } => files.iter().map(|f| f.local.clone()).collect(),
        Step::SetReplyFileName { local: Some(l), .. } => vec![l.clone()],
        Step::WriteFile { name, .. } => vec![name.clone()],
        Step::ExpectFiles { present, absent } => present
            .iter()
            .map(|f| f.name.clone())
            .chain(absent.iter().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

/// Replaces model job ids (`j3`) in a trace line by the scenario's aliases.
#[cfg(test)]
fn rename_jobs(line: &str, names: &BTreeMap<JobId, String>) -> String {
    rename_jobs_if_needed(line, names).unwrap_or_else(|| line.to_string())
}

/// `line` with job ids (`j7`) replaced by their scenario aliases, or `None` when that
/// changes nothing (no id, or ids whose alias is the same text).
/// Whether `alias` is how the trace writes `id` (`j7`), so nothing needs renaming.
fn is_trace_name(alias: &str, id: JobId) -> bool {
    let Some(digits) = alias.strip_prefix('j') else {
        return false;
    };
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.len() == 1 || !digits.starts_with('0'))
        && digits.parse::<u32>() == Ok(id.0)
}

fn rename_jobs_if_needed(line: &str, names: &BTreeMap<JobId, String>) -> Option<String> {
    let mut out: Option<String> = None;
    let bytes = line.as_bytes();
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if boundary && bytes[i] == b'j' {
            let mut k = i + 1;
            while k < bytes.len() && bytes[k].is_ascii_digit() {
                k += 1;
            }
            let end_ok = k == bytes.len() || !bytes[k].is_ascii_alphanumeric();
            if let (true, Ok(n)) = (k > i + 1 && end_ok, line[i + 1..k].parse::<u32>()) {
                if let Some(name) = names.get(&JobId(n)).filter(|name| **name != line[i..k]) {
                    let out = out.get_or_insert_with(|| String::with_capacity(line.len() + 16));
                    out.push_str(&line[copied..i]);
                    out.push_str(name);
                    copied = k;
                }
            }
            i = k.max(i + 1);
            continue;
        }
        i += 1;
    }
    out.map(|mut out| {
        out.push_str(&line[copied..]);
        out
    })
}

/// Whether `needle` (non-empty) occurs in `haystack`: a scan for its first byte, so
/// no searcher is set up per line (`str::contains` builds one each call).
fn contains(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else { return false };
    if h.len() < n.len() {
        return false;
    }
    h[..=h.len() - n.len()]
        .iter()
        .enumerate()
        .any(|(i, &b)| b == first && h[i..].starts_with(n))
}

enum StepError {
    Mismatch(Mismatch),
    NotApplicable(String),
}

/// Fails the step when the backend stopped the run (watchdog, no progress).
fn halted<B: Backend>(backend: &B) -> Result<(), StepError> {
    match backend.halted() {
        Some(why) => Err(mismatch("run stopped", "a run that makes progress", why).into()),
        None => Ok(()),
    }
}

impl From<Mismatch> for StepError {
    fn from(m: Mismatch) -> Self {
        StepError::Mismatch(m)
    }
}

impl From<crate::backend::NotApplicable> for StepError {
    fn from(n: crate::backend::NotApplicable) -> Self {
        StepError::NotApplicable(n.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_become_aliases() {
        let names: BTreeMap<JobId, String> = [(JobId(1), "dl".to_string())].into();
        assert_eq!(
            rename_jobs("job j1 QUEUED -> CONNECTING", &names),
            "job dl QUEUED -> CONNECTING"
        );
        assert_eq!(rename_jobs("obj1 j12 j1", &names), "obj1 j12 dl");
        let same: BTreeMap<JobId, String> = [(JobId(1), "j1".to_string())].into();
        assert_eq!(rename_jobs_if_needed("job j1 QUEUED", &same), None);
        assert_eq!(rename_jobs_if_needed("job j2 QUEUED", &names), None);
    }

    #[test]
    fn only_aliases_that_differ_from_the_trace_name_need_renaming() {
        assert!(is_trace_name("j1", JobId(1)));
        assert!(is_trace_name("j12", JobId(12)));
        for alias in ["j01", "j2", "j", "j+1", "dl", "J1", "j1x"] {
            assert!(!is_trace_name(alias, JobId(1)), "{alias}");
        }
    }

    #[test]
    fn contains_finds_the_run_directory() {
        assert!(contains("at /r/x/f.bin", "/r/x/"));
        assert!(contains("/r/x/", "/r/x/"));
        assert!(!contains("at /r/y/f.bin", "/r/x/"));
        assert!(!contains("/r", "/r/x/"));
        assert!(!contains("anything", ""));
    }
}
