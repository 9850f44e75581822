//! The service: the sans-IO state machine that owns every job.
//!
//! Inputs are method calls (see `api.rs`), transfer events (`handle_transfer`),
//! notification returns (`notification_returned`, `command_line_exited`), environment
//! events (`handle_env`) and `handle_timeout(now)`. Outputs are polled:
//! [`Service::poll_effect`] and [`Service::poll_timeout`]. Every observable change is
//! appended to the trace. Time is whatever the caller passes in.

use crate::classify::{classify, Classified, Disposition, NoProgressError, ProtocolFailure, TransferFailure};
use crate::effect::{Effect, TransferId, TransferStart, TransferWhat};
use crate::flavor::{Profile, RetryDelay};
use crate::notify::{Channels, NotificationId};
use crate::rng::Rng;
use crate::rules::{next_state, Trigger};
use crate::trace::{TraceEvent, TraceKind};
use crate::types::*;
use crate::{Flavor, Hresult};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

/// A file of a job.
#[derive(Debug, Clone)]
pub(crate) struct FileEntry {
    pub remote_name: String,
    pub local_name: String,
    pub bytes_total: Option<u64>,
    pub bytes_transferred: u64,
    /// All bytes are in the temporary file (or, for uploads, on the server).
    pub transferred: bool,
    /// Download: renamed to its local name by Complete. Upload: uploaded.
    pub completed: bool,
}

/// The error the job is in (ref: bits-spec §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobError {
    pub hresult: Hresult,
    pub context: ErrorContext,
    /// The file the error is tied to; `None` → GetFile gives BG_E_FILE_NOT_AVAILABLE.
    pub file: Option<usize>,
}

/// The reply side of an upload-reply job (ref: bits-spec §6.3).
#[derive(Debug, Clone, Default)]
pub(crate) struct Reply {
    pub upload_done: bool,
    pub bytes_total: Option<u64>,
    pub bytes_transferred: u64,
    pub file_name: Option<String>,
    pub done: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ActiveTransfer {
    pub id: TransferId,
    pub what: TransferWhat,
}

/// Deadlines; each one is also in the timer heap, and a heap entry whose time no
/// longer matches the field is stale and skipped.
#[derive(Debug, Clone, Default)]
pub(crate) struct Deadlines {
    pub retry: Option<Time>,
    pub no_progress: Option<Time>,
    pub max_download: Option<Time>,
    pub inactivity: Option<Time>,
    pub retention: Option<Time>,
    pub slice: Option<Time>,
    /// The next Cancel-Session try of a cancelled upload.
    pub cancel_session: Option<Time>,
}

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: JobId,
    pub owner: UserId,
    pub job_type: JobType,
    pub display_name: String,
    pub description: String,
    pub priority: JobPriority,
    pub state: JobState,
    pub files: Vec<FileEntry>,
    pub notify_flags: NotifyFlags,
    pub callback: Option<Callback>,
    /// The user callbacks run as: who registered them, even after TakeOwnership
    /// (ref: bits-spec §4.2). Their slots count against this user's four.
    pub callback_user: UserId,
    pub cmdline: Option<(String, String)>,
    pub min_retry_delay: Span,
    pub no_progress_timeout: Span,
    /// SetNoProgressTimeout was called (else the default follows the priority, DO §8.1).
    pub no_progress_explicit: bool,
    pub max_download_time: Span,
    pub error: Option<JobError>,
    pub error_count: u32,
    pub creation: Time,
    pub modification: Time,
    pub transfer_completion: Option<Time>,
    pub reply: Reply,
    pub transfer: Option<ActiveTransfer>,
    /// Position in the ready queue while QUEUED and eligible.
    pub ready_key: Option<(u8, u64)>,
    /// The job sits in TRANSIENT_ERROR waiting for the network, not for a retry timer.
    pub waiting_for_network: bool,
    /// Start of the current no-progress period (first transient error, reset by progress).
    pub no_progress_since: Option<Time>,
    pub active_since: Option<Time>,
    pub active_elapsed: Span,
    pub last_activity: Time,
    pub deadlines: Deadlines,
    pub channels: Channels,
    /// SetCredentials, one per (target, scheme) (ref: credentials.rs).
    pub credentials: Vec<crate::credentials::Credential>,
    /// BITS_JOB_PROPERTY_ID_COST_FLAGS: the network cost states the job may use.
    pub cost_flags: u32,
    /// The job waits in TRANSIENT_ERROR for a policy condition (ref: policy.rs).
    pub blocked_by_policy: bool,
    /// An upload transfer has started: the server may hold a session for it.
    pub upload_session_opened: bool,
    /// A Cancel-Session still to be delivered after Cancel.
    pub cancel_session: Option<crate::upload_cancel::PendingCancel>,
}

impl Job {
    pub(crate) fn first_unfinished_file(&self) -> Option<usize> {
        self.files.iter().position(|f| !f.transferred)
    }

    pub(crate) fn progress(&self) -> JobProgress {
        let total = self
            .files
            .iter()
            .try_fold(0u64, |acc, f| f.bytes_total.map(|t| acc.saturating_add(t)))
            .unwrap_or(BG_SIZE_UNKNOWN);
        JobProgress {
            bytes_total: total,
            bytes_transferred: self.files.iter().map(|f| f.bytes_transferred).sum(),
            files_total: self.files.len() as u32,
            files_transferred: self.files.iter().filter(|f| f.transferred).count() as u32,
        }
    }
}

/// A user: owner of jobs and the context callbacks run in.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub name: String,
    /// Administrators are exempt from the job and file limits (ref: bits-spec §9).
    pub admin: bool,
    pub kind: OwnerKind,
    pub logged_on: bool,
    /// Notifications delivered and not yet returned (at most the profile's limit).
    pub in_flight: usize,
    /// Jobs of this user not in a final state (the MaxJobsPerUser count, ref: bits-spec §9).
    pub live_jobs: usize,
    /// Notifications waiting for a slot, first come first served.
    pub waiting: VecDeque<(JobId, crate::notify::Channel)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKind {
    Retry,
    NoProgress,
    MaxDownload,
    Inactivity,
    Retention,
    Slice,
    FinalNotify,
    FileNotify,
    CancelSession,
}

/// Environment events (ref: bits-spec §1.3 [UNC], §4.2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvEvent {
    NetworkLost,
    NetworkRestored,
    LogOff(UserId),
    LogOn(UserId),
    /// The service process restarts: callback registrations are dropped, the queue
    /// survives, transfers resume from their byte offset.
    ServiceRestart,
    /// The current network's cost changed (one `BITS_COST_STATE_*` bit).
    NetworkCost(u32),
    /// Battery saver turned on or off.
    BatterySaver(bool),
    /// The bandwidth group policy for background transfers: `Some(0)` blocks them;
    /// other values only throttle (not modelled); `None` removes the limit.
    BackgroundBandwidth(Option<u64>),
    /// Another process holds a local file open (`busy`) or it is read-only: renaming
    /// onto it (`temporary: false`, the destination) or deleting it (`temporary: true`,
    /// the job file's temporary copy) fails until it is released.
    LocalFileLocked {
        path: String,
        temporary: bool,
        lock: FileLock,
    },
    LocalFileReleased {
        path: String,
        temporary: bool,
    },
}

/// Why a local file cannot be replaced or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileLock {
    /// Open in another process without sharing: ERROR_SHARING_VIOLATION.
    Busy,
    /// Read-only (or no write access): E_ACCESSDENIED.
    ReadOnly,
}

impl FileLock {
    /// The error a rename or delete of a file locked this way gives.
    pub fn hresult(self) -> Hresult {
        match self {
            FileLock::Busy => Hresult::HRESULT_SHARING_VIOLATION,
            FileLock::ReadOnly => Hresult::E_ACCESSDENIED,
        }
    }
}

/// What a driver observed about a transfer it runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferEvent {
    /// The server answered; the size if it said (HEAD Content-Length, reply size).
    Connected {
        bytes_total: Option<u64>,
    },
    /// More bytes arrived (downloads, reply) or were acknowledged (uploads).
    Progress {
        bytes: u64,
    },
    /// The file (or the reply) is complete.
    FileDone,
    /// The remote file changed (Last-Modified / size): restart this file at 0
    /// (ref: bits-spec §7.1 [FTC]).
    RemoteChanged {
        bytes_total: Option<u64>,
    },
    Failed(TransferFailure),
}

/// The model of one BITS (or DO) service instance.
///
/// ```
/// use bitsim_model::*;
/// let mut svc = Service::new(Flavor::Bits, 1);
/// let alice = svc.add_user("alice");
/// let t0 = Time::ZERO;
/// let job = svc.create_job(t0, alice, "app", JobType::Download).unwrap();
/// svc.add_file(t0, job, "http://127.0.0.1/f.bin", "C:\\f.bin").unwrap();
/// svc.resume(t0, job).unwrap();
/// let Some(Effect::StartTransfer(start)) = svc.poll_effect() else { panic!() };
/// svc.handle_transfer(Time(4), start.transfer, TransferEvent::Failed(
///     TransferFailure::Http { status: 403, phase: RequestPhase::Download }));
/// assert_eq!(svc.state(job), Ok(JobState::Error));
/// let err = svc.error(job).unwrap();
/// assert_eq!((err.hresult, err.context), (Hresult::http(403), ErrorContext::RemoteFile));
/// ```
#[derive(Debug, Clone)]
pub struct Service {
    pub(crate) profile: Profile,
    pub(crate) rng: Rng,
    pub(crate) now: Time,
    pub(crate) users: Vec<User>,
    pub(crate) jobs: Vec<Job>,
    pub(crate) network_up: bool,
    pub(crate) ready: BTreeSet<(u8, u64, JobId)>,
    pub(crate) active_background: BTreeSet<(u8, JobId)>,
    pub(crate) seq: u64,
    timers: BinaryHeap<Reverse<(Time, u64, JobId, TimerKind)>>,
    pub(crate) effects: VecDeque<Effect>,
    pub(crate) trace: Vec<TraceEvent>,
    pub(crate) trace_enabled: bool,
    /// Calls and command-line runs under way: the job, channel, kind and attempt.
    pub(crate) deliveries:
        HashMap<NotificationId, (JobId, crate::notify::Channel, crate::notify::NotificationKind, u32)>,
    /// The job each live transfer belongs to.
    transfers: HashMap<TransferId, JobId>,
    pub(crate) next_id: u64,
    /// Jobs not in a final state, machine-wide (the MaxJobsPerMachine count).
    pub(crate) live_jobs: usize,
    /// Network cost, battery saver, bandwidth policy (ref: policy.rs).
    pub(crate) conditions: crate::policy::Conditions,
    /// Local files another process holds or that are read-only: (path, temporary).
    pub(crate) locked_files: std::collections::BTreeMap<(String, bool), FileLock>,
}

impl Service {
    /// A service of `flavor`, with `seed` for every random choice.
    pub fn new(flavor: Flavor, seed: u64) -> Service {
        Service::with_profile(flavor.profile(), seed)
    }

    /// A service with a custom profile (e.g. a Windows build's quirks).
    pub fn with_profile(profile: Profile, seed: u64) -> Service {
        Service {
            profile,
            rng: Rng::new(seed),
            now: Time::ZERO,
            users: Vec::new(),
            jobs: Vec::new(),
            network_up: true,
            ready: BTreeSet::new(),
            active_background: BTreeSet::new(),
            seq: 0,
            timers: BinaryHeap::new(),
            effects: VecDeque::new(),
            trace: Vec::new(),
            trace_enabled: true,
            deliveries: HashMap::new(),
            transfers: HashMap::new(),
            next_id: 1,
            live_jobs: 0,
            locked_files: Default::default(),
            conditions: Default::default(),
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Turns trace recording off (benchmarks); on by default.
    pub fn set_trace_enabled(&mut self, on: bool) {
        self.trace_enabled = on;
    }

    /// Registers a user, logged on.
    pub fn add_user(&mut self, name: &str) -> UserId {
        if let Some(i) = self.users.iter().position(|u| u.name == name) {
            return UserId(i as u32);
        }
        self.users.push(User {
            name: name.to_string(),
            admin: false,
            kind: OwnerKind::InteractiveUser,
            logged_on: true,
            in_flight: 0,
            live_jobs: 0,
            waiting: VecDeque::new(),
        });
        UserId(self.users.len() as u32 - 1)
    }

    /// Registers an administrator, exempt from the job and file limits (ref: bits-spec §9).
    pub fn add_admin_user(&mut self, name: &str) -> UserId {
        let id = self.add_user(name);
        self.users[id.0 as usize].admin = true;
        id
    }

    /// Sets a user's [`OwnerKind`]. Service accounts are always logged on; a
    /// non-interactive user never is until an interactive logon (ref: "Users and
    /// Network Connections": RunAs "is not an interactive logon"; "The LocalSystem,
    /// LocalService, and NetworkService system accounts are always logged on").
    pub fn set_user_kind(&mut self, user: UserId, kind: OwnerKind) {
        let Some(u) = self.users.get_mut(user.0 as usize) else {
            return;
        };
        u.kind = kind;
        u.admin = kind == OwnerKind::Administrator;
        u.logged_on = kind != OwnerKind::NonInteractiveUser;
    }

    /// A user's [`OwnerKind`].
    pub fn user_kind(&self, user: UserId) -> OwnerKind {
        self.users
            .get(user.0 as usize)
            .map_or(OwnerKind::InteractiveUser, |u| u.kind)
    }

    /// Exempt from MaxJobsPerUser / MaxJobsPerMachine / MaxFilesPerJob: administrators
    /// and services (ref: "Creating a Job": "These limits do not apply to
    /// administrators or services"; bits-spec §9).
    pub(crate) fn exempt_from_limits(&self, user: UserId) -> bool {
        self.users
            .get(user.0 as usize)
            .is_some_and(|u| u.admin || u.kind.is_service_account())
    }

    pub fn user_name(&self, user: UserId) -> &str {
        self.users.get(user.0 as usize).map_or("?", |u| u.name.as_str())
    }

    /// The latest time the service has seen.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The trace so far.
    pub fn trace(&self) -> &[TraceEvent] {
        &self.trace
    }

    /// Takes the trace recorded so far.
    pub fn take_trace(&mut self) -> Vec<TraceEvent> {
        std::mem::take(&mut self.trace)
    }

    /// The next thing the driver must do.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When `handle_timeout` must next be called, if ever.
    pub fn poll_timeout(&mut self) -> Option<Time> {
        while let Some(Reverse((at, _, job, kind))) = self.timers.peek().copied() {
            if self.timer_is_live(at, job, kind) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Number of notifications in flight for `user` (the per-user limit is 4).
    pub fn notifications_in_flight(&self, user: UserId) -> usize {
        self.users.get(user.0 as usize).map_or(0, |u| u.in_flight)
    }

    /// Number of jobs ever created (ids are `1..=job_count`).
    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    // ----- time --------------------------------------------------------------

    /// Moves time forward; time never goes back (a stale `now` is clamped).
    pub(crate) fn advance(&mut self, now: Time) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.advance(now);
        while let Some(Reverse((at, _, job, kind))) = self.timers.peek().copied() {
            if at > self.now {
                break;
            }
            self.timers.pop();
            if self.timer_is_live(at, job, kind) {
                self.fire_timer(at, job, kind);
            }
        }
        self.schedule();
    }

    pub(crate) fn arm(&mut self, job: JobId, kind: TimerKind, at: Time) {
        let slot = self.deadline_slot(job, kind);
        *slot = Some(at);
        self.seq += 1;
        self.timers.push(Reverse((at, self.seq, job, kind)));
    }

    pub(crate) fn disarm(&mut self, job: JobId, kind: TimerKind) {
        *self.deadline_slot(job, kind) = None;
    }

    fn deadline_slot(&mut self, job: JobId, kind: TimerKind) -> &mut Option<Time> {
        let j = self.job_mut(job);
        match kind {
            TimerKind::Retry => &mut j.deadlines.retry,
            TimerKind::NoProgress => &mut j.deadlines.no_progress,
            TimerKind::MaxDownload => &mut j.deadlines.max_download,
            TimerKind::Inactivity => &mut j.deadlines.inactivity,
            TimerKind::Retention => &mut j.deadlines.retention,
            TimerKind::Slice => &mut j.deadlines.slice,
            TimerKind::FinalNotify => &mut j.channels.final_.retry_at,
            TimerKind::FileNotify => &mut j.channels.file.retry_at,
            TimerKind::CancelSession => &mut j.deadlines.cancel_session,
        }
    }

    fn timer_is_live(&mut self, at: Time, job: JobId, kind: TimerKind) -> bool {
        *self.deadline_slot(job, kind) == Some(at)
    }

    fn fire_timer(&mut self, at: Time, id: JobId, kind: TimerKind) {
        self.disarm(id, kind);
        if kind == TimerKind::CancelSession {
            // Outlives the job: a cancelled upload keeps telling the server.
            self.send_cancel_session(id);
            return;
        }
        let state = self.job(id).state;
        if state.is_final() {
            return;
        }
        match kind {
            // ref: bits-spec §1.3 "TRANSIENT_ERROR —MinimumRetryDelay→ QUEUED", §3.1
            TimerKind::Retry => {
                if state == JobState::TransientError {
                    self.transition(id, Trigger::RetryDelayElapsed);
                }
            }
            // ref: bits-spec §3.2: no progress for NoProgressTimeout → ERROR
            TimerKind::NoProgress => {
                if state == JobState::TransientError {
                    self.no_progress_expired(id);
                }
            }
            // ref: bits-spec §3.3
            TimerKind::MaxDownload => {
                if state.is_active() {
                    let err = JobError {
                        hresult: Hresult::BG_E_MAXDOWNLOAD_TIMEOUT,
                        context: ErrorContext::GeneralQueueManager,
                        file: None,
                    };
                    // ref: bits-spec §3.4: TRANSFERRING → ERROR counts as a failed attempt
                    self.fail_job(id, err, Disposition::Fatal, Trigger::MaxDownloadTime, true);
                }
            }
            // ref: bits-spec §3.5: the timer restarts on activity, so re-arm lazily.
            TimerKind::Inactivity => {
                let timeout = self.profile.inactivity_timeout.unwrap_or(Span(u64::MAX));
                let due = self.job(id).last_activity.plus(timeout);
                if due > at {
                    self.arm(id, TimerKind::Inactivity, due);
                } else {
                    self.end_job(id, Trigger::InactivityTimeout);
                }
            }
            // ref: bits-spec §8.1 (DO keeps jobs < 30 days)
            TimerKind::Retention => self.end_job(id, Trigger::RetentionExpired),
            // ref: bits-spec §5.2 round robin
            TimerKind::Slice => self.slice_ended(id),
            TimerKind::FinalNotify => self.notify_retry_due(id, crate::notify::Channel::Final),
            TimerKind::FileNotify => self.notify_retry_due(id, crate::notify::Channel::File),
            TimerKind::CancelSession => {} // handled above: it outlives the job
        }
    }

    // ----- lookup -------------------------------------------------------------

    pub(crate) fn job(&self, id: JobId) -> &Job {
        &self.jobs[id.0 as usize - 1]
    }

    pub(crate) fn job_mut(&mut self, id: JobId) -> &mut Job {
        &mut self.jobs[id.0 as usize - 1]
    }

    pub(crate) fn find(&self, id: JobId) -> Result<&Job, Hresult> {
        match id.0 {
            0 => Err(self.profile.codes.not_found),
            n => self.jobs.get(n as usize - 1).ok_or(self.profile.codes.not_found),
        }
    }

    pub(crate) fn record(&mut self, kind: TraceKind) {
        if self.trace_enabled {
            self.trace.push(TraceEvent { at: self.now, kind });
        }
    }

    pub(crate) fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    // ----- state changes -----------------------------------------------------

    /// Applies `trigger` through the transition table; every state change goes here.
    /// Returns false (and changes nothing) when the table has no row.
    pub(crate) fn transition(&mut self, id: JobId, trigger: Trigger) -> bool {
        let from = self.job(id).state;
        let Some(to) = next_state(from, trigger) else {
            return false;
        };
        let now = self.now;
        if from.is_active() && !to.is_active() {
            self.leave_active(id);
        }
        if from == JobState::Queued {
            self.unready(id);
        }
        {
            let job = self.job_mut(id);
            job.state = to;
            job.modification = now;
            job.last_activity = now;
            if to == JobState::Transferred {
                job.transfer_completion = Some(now);
            }
            if to != JobState::TransientError {
                job.waiting_for_network = false;
                job.blocked_by_policy = false;
            }
        }
        if from == JobState::TransientError {
            self.disarm(id, TimerKind::Retry);
            self.disarm(id, TimerKind::NoProgress);
        }
        if to.is_active() && !from.is_active() {
            self.enter_active(id);
        }
        self.record(TraceKind::State {
            job: id,
            from,
            to,
            trigger,
        });
        if to == JobState::Queued {
            self.make_ready(id);
        }
        if to.is_final() {
            self.finalize(id);
        }
        self.on_state_changed(id, from, to);
        true
    }

    /// Bookkeeping when a job starts owning a transfer.
    fn enter_active(&mut self, id: JobId) {
        let now = self.now;
        let job = self.job_mut(id);
        job.active_since = Some(now);
        let remaining = Span(job.max_download_time.0.saturating_sub(job.active_elapsed.0));
        self.arm(id, TimerKind::MaxDownload, now.plus(remaining));
    }

    /// Bookkeeping when a job stops owning a transfer: abort it, stop the clocks.
    fn leave_active(&mut self, id: JobId) {
        let now = self.now;
        let (transfer, class) = {
            let job = self.job_mut(id);
            if let Some(since) = job.active_since.take() {
                job.active_elapsed = Span(job.active_elapsed.0 + now.since(since).0);
            }
            (job.transfer.take(), job.priority)
        };
        self.disarm(id, TimerKind::MaxDownload);
        self.disarm(id, TimerKind::Slice);
        let class = self.profile.class_of(class);
        self.active_background.remove(&(class, id));
        if let Some(t) = transfer {
            self.transfers.remove(&t.id);
            self.effects.push_back(Effect::AbortTransfer {
                job: id,
                transfer: t.id,
            });
            self.record(TraceKind::TransferAbort { job: id });
        }
    }

    /// A job reached ACKNOWLEDGED or CANCELLED: drop timers and pending work.
    fn finalize(&mut self, id: JobId) {
        let owner = self.job(id).owner;
        self.users[owner.0 as usize].live_jobs -= 1;
        self.live_jobs -= 1;
        for kind in [
            TimerKind::Retry,
            TimerKind::NoProgress,
            TimerKind::MaxDownload,
            TimerKind::Inactivity,
            TimerKind::Retention,
            TimerKind::Slice,
            TimerKind::FinalNotify,
            TimerKind::FileNotify,
        ] {
            self.disarm(id, kind);
        }
        self.job_mut(id).channels.clear();
    }

    /// Ends a job by a service timer (inactivity, retention): CANCELLED, temp files gone.
    fn end_job(&mut self, id: JobId, trigger: Trigger) {
        if self.transition(id, trigger) {
            let files: Vec<usize> = (0..self.job(id).files.len()).collect();
            let _ = self.delete_temp_files(id, files);
        }
    }

    /// Deletes the temporary copies of `files`; returns false when some could not be
    /// deleted (locked: they stay, ref: IBackgroundCopyJob::Cancel / ::Complete
    /// BG_S_UNABLE_TO_DELETE_FILES).
    pub(crate) fn delete_temp_files(&mut self, id: JobId, files: Vec<usize>) -> bool {
        let (files, stuck): (Vec<usize>, Vec<usize>) = files.into_iter().partition(|&n| {
            let f = &self.job(id).files[n];
            let has_temp = f.bytes_transferred > 0 || f.transferred;
            !(has_temp && self.locked_files.contains_key(&(f.local_name.clone(), true)))
        });
        if !stuck.is_empty() {
            self.record(TraceKind::FilesNotDeleted {
                job: id,
                files: stuck.clone(),
            });
        }
        if files.is_empty() {
            return stuck.is_empty();
        }
        self.record(TraceKind::FilesDeleted {
            job: id,
            files: files.clone(),
        });
        self.effects.push_back(Effect::DeleteTempFiles { job: id, files });
        stuck.is_empty()
    }

    // ----- scheduling (ref: bits-spec §5.2) ---------------------------------------

    /// Puts a QUEUED job in line, unless its owner is logged off (it waits for logon)
    /// or the network is gone (it goes to TRANSIENT_ERROR at once).
    pub(crate) fn make_ready(&mut self, id: JobId) {
        if !self.network_up {
            self.network_lost_for(id);
            return;
        }
        if let Some(hr) = self.policy_block(id) {
            self.block_for_policy(id, hr);
            return;
        }
        let owner = self.job(id).owner;
        if !self.users[owner.0 as usize].logged_on {
            return; // ref: bits-spec §5.2 [UNC]: jobs run only while the owner is logged on
        }
        self.seq += 1;
        let class = self.profile.class_of(self.job(id).priority);
        let key = (class, self.seq);
        self.job_mut(id).ready_key = Some(key);
        self.ready.insert((key.0, key.1, id));
    }

    pub(crate) fn unready(&mut self, id: JobId) {
        if let Some((class, seq)) = self.job_mut(id).ready_key.take() {
            self.ready.remove(&(class, seq, id));
        }
    }

    /// Starts every job that may run now: all FOREGROUND jobs, and background jobs up to
    /// the flavor's limit, highest priority first; a waiting higher-priority job pre-empts
    /// a running lower-priority one.
    pub(crate) fn schedule(&mut self) {
        while let Some(&(class, seq, id)) = self.ready.iter().next() {
            let foreground = self.job(id).priority == JobPriority::Foreground;
            if !foreground && self.active_background.len() >= self.profile.max_active_background {
                // ref: bits-spec §5.2 "a higher-priority job preempts a lower-priority one"
                let Some(&(worst_class, victim)) = self.active_background.iter().next_back() else {
                    break;
                };
                if worst_class <= class {
                    break;
                }
                self.transition(victim, Trigger::SliceEnded);
                continue;
            }
            self.ready.remove(&(class, seq, id));
            self.job_mut(id).ready_key = None;
            self.start_job(id, foreground, class);
        }
    }

    fn start_job(&mut self, id: JobId, foreground: bool, class: u8) {
        // A job whose files are all done (e.g. resumed after Suspend in TRANSFERRED)
        // goes straight to TRANSFERRED.
        let job = self.job(id);
        let nothing_left = match job.job_type {
            JobType::UploadReply => job.reply.done,
            _ => job.first_unfinished_file().is_none(),
        };
        if nothing_left {
            self.transition(id, Trigger::AllFilesDone);
            return;
        }
        let trigger = if self.profile.reports_connecting {
            Trigger::Scheduled
        } else {
            Trigger::ScheduledConnectingHidden
        };
        self.transition(id, trigger);
        if !foreground {
            self.active_background.insert((class, id));
            if let Some(slice) = self.profile.time_slice {
                let at = self.now.plus(slice);
                self.arm(id, TimerKind::Slice, at);
            }
        }
        self.start_transfer(id);
    }

    /// Emits StartTransfer for the job's next piece of work.
    fn start_transfer(&mut self, id: JobId) {
        let transfer = TransferId(self.fresh_id());
        let job = self.job(id);
        let start = if job.job_type == JobType::UploadReply && job.reply.upload_done {
            TransferStart {
                job: id,
                transfer,
                job_type: job.job_type,
                what: TransferWhat::Reply,
                remote_name: job.files[0].remote_name.clone(),
                local_name: job.reply.file_name.clone().unwrap_or_default(),
                offset: job.reply.bytes_transferred,
                known_size: job.reply.bytes_total,
                credentials: self.transfer_credentials(id),
            }
        } else {
            let Some(n) = job.first_unfinished_file() else { return };
            let f = &job.files[n];
            TransferStart {
                job: id,
                transfer,
                job_type: job.job_type,
                what: TransferWhat::File(n),
                remote_name: f.remote_name.clone(),
                local_name: f.local_name.clone(),
                offset: f.bytes_transferred,
                known_size: f.bytes_total,
                credentials: self.transfer_credentials(id),
            }
        };
        self.record(TraceKind::TransferStart {
            job: id,
            what: start.what.to_string(),
            offset: start.offset,
        });
        // A local / file:// source another process holds: the read fails (ref: policy of
        // lock_file, docs/decisions.md); the model decides without a transfer.
        if let Some(lock) = self.source_lock(&start.remote_name) {
            let failure = match lock {
                FileLock::Busy => crate::classify::SourceFailure::Busy,
                FileLock::ReadOnly => return self.begin_transfer(id, transfer, start),
            };
            self.on_failed(id, start.what, TransferFailure::Source(failure));
            return;
        }
        self.begin_transfer(id, transfer, start);
    }

    /// The lock on a local source named by `remote` (a path or `file://` URL).
    fn source_lock(&self, remote: &str) -> Option<FileLock> {
        if self.locked_files.is_empty() {
            return None;
        }
        let path = remote
            .strip_prefix("file:///")
            .map(|p| {
                let drive = p.as_bytes().get(1) == Some(&b':');
                if drive || p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("/{p}")
                }
            })
            .or_else(|| remote.strip_prefix("file://").map(str::to_string))
            .unwrap_or_else(|| remote.to_string());
        self.locked_files.get(&(path, false)).copied()
    }

    fn begin_transfer(&mut self, id: JobId, transfer: TransferId, start: TransferStart) {
        if job_type_is_upload_file(&start) {
            self.job_mut(id).upload_session_opened = true;
        }
        self.job_mut(id).transfer = Some(ActiveTransfer {
            id: transfer,
            what: start.what,
        });
        self.transfers.insert(transfer, id);
        self.effects.push_back(Effect::StartTransfer(start));
    }

    /// The round-robin slice of a background job ended (ref: bits-spec §5.2).
    fn slice_ended(&mut self, id: JobId) {
        if !self.job(id).state.is_active() {
            return;
        }
        let class = self.profile.class_of(self.job(id).priority);
        let someone_waiting = self.ready.iter().next().is_some_and(|&(c, _, _)| c <= class);
        if someone_waiting {
            self.transition(id, Trigger::SliceEnded);
        } else if let Some(slice) = self.profile.time_slice {
            let at = self.now.plus(slice);
            self.arm(id, TimerKind::Slice, at);
        }
    }

    // ----- transfer events ---------------------------------------------------

    /// Feeds what the driver observed about transfer `transfer`. Events for a transfer
    /// the model has already abandoned are ignored.
    pub fn handle_transfer(&mut self, now: Time, transfer: TransferId, event: TransferEvent) {
        self.advance(now);
        let Some(id) = self.job_of_transfer(transfer) else {
            return;
        };
        let what = self.job(id).transfer.map(|t| t.what).unwrap_or(TransferWhat::Reply);
        match event {
            TransferEvent::Connected { bytes_total } => self.on_connected(id, what, bytes_total),
            TransferEvent::Progress { bytes } => self.on_progress(id, what, bytes),
            TransferEvent::FileDone => self.on_piece_done(id, what),
            TransferEvent::RemoteChanged { bytes_total } => {
                // ref: bits-spec §7.1 [FTC]: progress of that file restarts at 0
                if let TransferWhat::File(n) = what {
                    let f = &mut self.job_mut(id).files[n];
                    f.bytes_transferred = 0;
                    f.bytes_total = bytes_total;
                    self.record(TraceKind::FileRestarted { job: id, file: n });
                }
            }
            TransferEvent::Failed(failure) => {
                // The transfer is over: nothing to abort.
                if let Some(t) = self.job_mut(id).transfer.take() {
                    self.transfers.remove(&t.id);
                }
                self.on_failed(id, what, failure)
            }
        }
        self.schedule();
    }

    fn job_of_transfer(&self, transfer: TransferId) -> Option<JobId> {
        self.transfers.get(&transfer).copied()
    }

    fn on_connected(&mut self, id: JobId, what: TransferWhat, bytes_total: Option<u64>) {
        let job = self.job_mut(id);
        match what {
            TransferWhat::File(n) => {
                if bytes_total.is_some() {
                    job.files[n].bytes_total = bytes_total;
                }
            }
            TransferWhat::Reply => job.reply.bytes_total = bytes_total.or(Some(0)),
        }
        self.record(TraceKind::Connected {
            job: id,
            what: what.to_string(),
            bytes_total,
        });
        if self.job(id).state == JobState::Connecting {
            self.transition(id, Trigger::Connected);
        }
    }

    fn on_progress(&mut self, id: JobId, what: TransferWhat, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let now = self.now;
        let job = self.job_mut(id);
        match what {
            TransferWhat::File(n) => job.files[n].bytes_transferred += bytes,
            TransferWhat::Reply => job.reply.bytes_transferred += bytes,
        }
        job.modification = now;
        job.last_activity = now;
        // ref: bits-spec §3.2: any progress resets the no-progress timer
        job.no_progress_since = None;
        if job.state == JobState::Connecting {
            self.transition(id, Trigger::Connected);
        }
        self.modified(id);
    }

    fn on_piece_done(&mut self, id: JobId, what: TransferWhat) {
        let now = self.now;
        let job_type = self.job(id).job_type;
        if self.job(id).state == JobState::Connecting {
            self.transition(id, Trigger::Connected);
        }
        let job = self.job_mut(id);
        job.last_activity = now;
        job.no_progress_since = None;
        let bytes = match what {
            TransferWhat::File(n) => {
                let f = &mut job.files[n];
                f.transferred = true;
                f.bytes_total = Some(f.bytes_total.unwrap_or(f.bytes_transferred).max(f.bytes_transferred));
                f.bytes_transferred = f.bytes_total.unwrap_or(f.bytes_transferred);
                if job_type.is_upload() {
                    // ref: bits-spec §7.1: upload Completed = TRUE when the upload finished
                    f.completed = true;
                    job.reply.upload_done = true;
                }
                f.bytes_transferred
            }
            TransferWhat::Reply => {
                job.reply.done = true;
                job.reply.bytes_total = Some(job.reply.bytes_transferred);
                job.reply.bytes_transferred
            }
        };
        if let Some(t) = job.transfer.take() {
            self.transfers.remove(&t.id);
        }
        self.record(TraceKind::FileDone {
            job: id,
            what: what.to_string(),
            bytes,
        });
        // ref: bits-spec §4.3: FileTransferred for downloads and for the reply
        let file_event = match (job_type, what) {
            (JobType::Download, TransferWhat::File(n)) => Some(n),
            (JobType::UploadReply, TransferWhat::Reply) => Some(0),
            _ => None,
        };
        if let Some(n) = file_event {
            self.file_transferred(id, n);
        }
        let more = match job_type {
            JobType::Download => self.job(id).first_unfinished_file().is_some(),
            // ref: bits-spec §1.3: upload-reply is TRANSFERRED after the reply download
            JobType::UploadReply => !self.job(id).reply.done,
            JobType::Upload => false,
        };
        if more {
            self.start_transfer(id); // files in a job go one at a time, in order (§1.3)
        } else {
            self.transition(id, Trigger::AllFilesDone);
        }
    }

    fn on_failed(&mut self, id: JobId, what: TransferWhat, failure: TransferFailure) {
        let c: Classified = classify(&self.profile, failure);
        if failure == TransferFailure::Protocol(ProtocolFailure::SessionNotFound) {
            // ref: bits-http §3.7: the client starts a new upload session from byte 0
            if let TransferWhat::File(n) = what {
                self.job_mut(id).files[n].bytes_transferred = 0;
            }
        }
        let file = match what {
            TransferWhat::File(n) => Some(n),
            TransferWhat::Reply => Some(0),
        };
        let err = JobError {
            hresult: c.hresult,
            context: c.context,
            file,
        };
        let trigger = if c.disposition == Disposition::Fatal {
            Trigger::FatalError
        } else {
            Trigger::TransientError
        };
        self.fail_job(id, err, c.disposition, trigger, true);
    }

    /// Puts a job in TRANSIENT_ERROR or ERROR, applying the timer rules.
    pub(crate) fn fail_job(
        &mut self,
        id: JobId,
        err: JobError,
        disposition: Disposition,
        trigger: Trigger,
        counts: bool,
    ) {
        let now = self.now;
        let job = self.job(id);
        let npt = job.no_progress_timeout;
        let retry = self.retry_delay(id);
        let since = job.no_progress_since.unwrap_or(now);
        // ref: bits-spec §3.2 "0 = every error fatal"; §3.1 "delay > NoProgressTimeout →
        // no retry"; §3.2 the no-progress period already ran out during retries.
        let fatal = match disposition {
            Disposition::Fatal => true,
            Disposition::Transient => npt == Span::ZERO || retry > npt || now.since(since) >= npt,
            Disposition::WaitForCondition => npt == Span::ZERO,
        };
        // The no-progress period ran out during the retries: the flavor's no-progress
        // error replaces the last one where it has its own (DO: DO_E_DOWNLOAD_NO_PROGRESS,
        // ref: Delivery Optimization return values).
        let out_of_time =
            disposition == Disposition::Transient && npt > Span::ZERO && retry <= npt && now.since(since) >= npt;
        let err = match (out_of_time, self.profile.no_progress_error) {
            (true, NoProgressError::Code(hresult)) => JobError { hresult, ..err },
            _ => err,
        };
        {
            let job = self.job_mut(id);
            job.error = Some(err);
            if counts && disposition != Disposition::WaitForCondition {
                job.error_count += 1; // ref: bits-spec §3.4
            }
        }
        let (disposition, trigger) = if fatal {
            (
                Disposition::Fatal,
                if trigger == Trigger::TransientError {
                    Trigger::FatalError
                } else {
                    trigger
                },
            )
        } else {
            (disposition, trigger)
        };
        let error_count = self.job(id).error_count;
        self.record(TraceKind::Error {
            job: id,
            hresult: err.hresult,
            context: err.context,
            disposition,
            file: err.file,
            error_count,
        });
        if !self.transition(id, trigger) {
            return;
        }
        if disposition == Disposition::Transient {
            self.job_mut(id).no_progress_since = Some(since);
            self.arm(id, TimerKind::Retry, now.plus(retry));
            self.arm(id, TimerKind::NoProgress, since.plus(npt));
        }
    }

    pub(crate) fn retry_delay(&self, id: JobId) -> Span {
        match self.profile.retry_delay {
            RetryDelay::JobSetting => self.job(id).min_retry_delay,
            RetryDelay::Fixed(d) => d,
        }
    }

    /// TRANSIENT_ERROR ran out of NoProgressTimeout (ref: bits-spec §3.2).
    pub(crate) fn no_progress_expired(&mut self, id: JobId) {
        let last = self.job(id).error;
        let hresult = match (self.profile.no_progress_error, last) {
            (NoProgressError::KeepLast, Some(e)) => e.hresult,
            (NoProgressError::KeepLast, None) => Hresult::BG_E_NO_PROGRESS,
            (NoProgressError::Code(hr), _) => hr,
        };
        let context = last.map_or(ErrorContext::GeneralQueueManager, |e| e.context);
        let err = JobError {
            hresult,
            context,
            file: last.and_then(|e| e.file),
        };
        self.job_mut(id).error = Some(err);
        let error_count = self.job(id).error_count;
        self.record(TraceKind::Error {
            job: id,
            hresult,
            context,
            disposition: Disposition::Fatal,
            file: err.file,
            error_count,
        });
        self.transition(id, Trigger::NoProgressTimeout);
    }

    // ----- environment ---------------------------------------------------------

    /// Feeds an environment event.
    pub fn handle_env(&mut self, now: Time, event: EnvEvent) {
        self.advance(now);
        let what = match &event {
            EnvEvent::NetworkLost => "network lost".to_string(),
            EnvEvent::NetworkRestored => "network restored".to_string(),
            EnvEvent::LogOff(u) => format!("logoff user={}", self.user_name(*u)),
            EnvEvent::LogOn(u) => format!("logon user={}", self.user_name(*u)),
            EnvEvent::ServiceRestart => "service restart".to_string(),
            EnvEvent::NetworkCost(c) => format!("network cost 0x{c:X}"),
            EnvEvent::BatterySaver(on) => format!("battery saver {}", if *on { "on" } else { "off" }),
            EnvEvent::BackgroundBandwidth(kbps) => match kbps {
                Some(k) => format!("background bandwidth limit {k} kbps"),
                None => "background bandwidth unlimited".to_string(),
            },
            EnvEvent::LocalFileLocked { path, temporary, lock } => {
                let which = if *temporary { "temporary of " } else { "" };
                format!("local file {which}{path} locked ({lock:?})")
            }
            EnvEvent::LocalFileReleased { path, temporary } => {
                let which = if *temporary { "temporary of " } else { "" };
                format!("local file {which}{path} released")
            }
        };
        self.record(TraceKind::Env { what });
        match event {
            EnvEvent::NetworkLost => {
                self.network_up = false;
                // ref: bits-spec §1.3 [UNC]: every QUEUED/active job → TRANSIENT_ERROR
                let hit: Vec<JobId> = self
                    .jobs
                    .iter()
                    .filter(|j| {
                        matches!(
                            j.state,
                            JobState::Queued | JobState::Connecting | JobState::Transferring
                        )
                    })
                    .map(|j| j.id)
                    .collect();
                for id in hit {
                    self.network_lost_for(id);
                }
            }
            EnvEvent::NetworkRestored => {
                self.network_up = true;
                // ref: bits-spec §1.3 [UNC]: every TRANSIENT_ERROR job, whatever its error
                let hit: Vec<JobId> = self
                    .jobs
                    .iter()
                    .filter(|j| j.state == JobState::TransientError)
                    .map(|j| j.id)
                    .collect();
                for id in hit {
                    self.transition(id, Trigger::NetworkRestored);
                }
            }
            // ref: "Users and Network Connections": service accounts are always logged on
            EnvEvent::LogOff(user) if self.user_kind(user).is_service_account() => {}
            EnvEvent::LogOff(user) => {
                if let Some(u) = self.users.get_mut(user.0 as usize) {
                    u.logged_on = false;
                }
                // ref: bits-spec §1.3: a transferring job goes back to QUEUED and waits
                let hit: Vec<JobId> = self.jobs.iter().filter(|j| j.owner == user).map(|j| j.id).collect();
                for id in hit {
                    match self.job(id).state {
                        s if s.is_active() => {
                            self.transition(id, Trigger::OwnerLoggedOff);
                        }
                        JobState::Queued => self.unready(id),
                        _ => {}
                    }
                }
            }
            EnvEvent::LogOn(user) => {
                if let Some(u) = self.users.get_mut(user.0 as usize) {
                    u.logged_on = true;
                }
                let hit: Vec<JobId> = self
                    .jobs
                    .iter()
                    .filter(|j| j.owner == user && j.state == JobState::Queued && j.ready_key.is_none())
                    .map(|j| j.id)
                    .collect();
                for id in hit {
                    self.make_ready(id);
                }
            }
            EnvEvent::LocalFileLocked { path, temporary, lock } => {
                self.locked_files.insert((path, temporary), lock);
            }
            EnvEvent::NetworkCost(cost) => {
                self.conditions.network_cost = cost;
                self.reevaluate_policy();
            }
            EnvEvent::BatterySaver(on) => {
                self.conditions.battery_saver = on;
                self.reevaluate_policy();
            }
            EnvEvent::BackgroundBandwidth(kbps) => {
                self.conditions.background_bandwidth_zero = kbps == Some(0);
                self.reevaluate_policy();
            }
            EnvEvent::LocalFileReleased { path, temporary } => {
                self.locked_files.remove(&(path, temporary));
            }
            EnvEvent::ServiceRestart => {
                // ref: bits-spec §4.2: registrations are not persisted; the queue is.
                // Registrations go first, so the re-queueing below notifies no one.
                self.restart_notifications();
                let active: Vec<JobId> = self.jobs.iter().filter(|j| j.state.is_active()).map(|j| j.id).collect();
                for id in active {
                    self.transition(id, Trigger::ServiceRestarted);
                }
            }
        }
        self.schedule();
    }

    /// Network gone: the job waits in TRANSIENT_ERROR for it to come back, without a
    /// retry timer and without counting an error (ref: bits-spec §2.5 rule 2, §3.4).
    fn network_lost_for(&mut self, id: JobId) {
        let now = self.now;
        let hresult = self.profile.codes.network_disconnected;
        let context =
            crate::classify::report_context(self.profile.context_policy, hresult, ErrorContext::GeneralTransport);
        let err = JobError {
            hresult,
            context,
            file: None,
        };
        self.job_mut(id).error = Some(err);
        let error_count = self.job(id).error_count;
        self.record(TraceKind::Error {
            job: id,
            hresult,
            context,
            disposition: Disposition::WaitForCondition,
            file: None,
            error_count,
        });
        if self.transition(id, Trigger::NetworkLost) {
            self.job_mut(id).waiting_for_network = true;
            if self.profile.no_progress_runs_while_disconnected {
                let since = self.job(id).no_progress_since.unwrap_or(now);
                let npt = self.job(id).no_progress_timeout;
                self.job_mut(id).no_progress_since = Some(since);
                self.arm(id, TimerKind::NoProgress, since.plus(npt));
            }
        }
    }
}

/// An upload's own bytes (not its reply) go to a server upload session.
fn job_type_is_upload_file(start: &TransferStart) -> bool {
    start.job_type.is_upload() && matches!(start.what, TransferWhat::File(_))
}
