//! Model-based property test (proptest + proptest-state-machine).
//!
//! Random sequences of API calls, transfer events, callback returns (S_OK, S_FALSE,
//! E_FAIL, RPC_E_DISCONNECTED, or none: the call blocks), command-line exits,
//! environment events and time jumps (small and huge) are fed to the model. After every
//! step the trace is checked against [`spec_allows`], an encoding of the bits-spec §1.3
//! allowed-successor relation written from the spec (it does not call `next_state`),
//! and these invariants hold:
//! - no exit from a final state, and every state change is an allowed successor;
//! - GetState agrees with the trace;
//! - never more than four notifications in flight per user;
//! - no JobError for a job whose error is transient; no JobTransferred outside TRANSFERRED;
//! - every JobTransferred / JobError stays owed until S_OK, the command line exits 0, or
//!   the job moves on; while owed and deliverable it is always under way (waiting for a
//!   slot, in flight, backing off, or running the command line);
//! - job progress never decreases except on RemoteChanged / an upload session restart;
//! - the same op sequence with the same seed gives an identical trace.
//!
//! `PROPTEST_CASES` overrides the number of cases (default 10,000).

use bitsim_model::*;
use proptest::prelude::*;
use proptest::test_runner::Config;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use std::collections::HashMap;

// ----- the reference: bits-spec §1.3 ------------------------------------------------

/// Whether bits-spec allows `from —trigger→ to` for a job of `job_type` under `flavor`.
/// Written from the §1.3 table (plus §5.2 scheduling and §8.1 for DO); rows the spec
/// marks UNVERIFIED are allowed as the model resolves them and say so.
fn spec_allows(flavor: Flavor, job_type: JobType, from: JobState, trigger: Trigger, to: JobState) -> bool {
    use JobState::*;
    use Trigger as T;
    if from.is_final() {
        return false; // "a job in a final state never leaves it" (§1.1)
    }
    let active = matches!(from, Connecting | Transferring);
    let bits = flavor == Flavor::Bits;
    match (trigger, to) {
        // SUSPENDED/ERROR/TRANSIENT_ERROR —Resume→ QUEUED; TRANSFERRED after AddFile (UNVERIFIED).
        (T::Resume, Queued) => matches!(from, Suspended | Error | TransientError | Transferred),
        (T::Scheduled, Connecting) => from == Queued && bits,
        // §8.1: DO never reports CONNECTING; Resume leads to TRANSFERRING.
        (T::ScheduledConnectingHidden, Transferring) => from == Queued && !bits,
        (T::Connected, Transferring) => from == Connecting,
        // Time slice ends / pre-emption by a higher priority (§5.2). CONNECTING is the
        // start of the transfer, so it counts as "transferring" here.
        (T::SliceEnded, Queued) => active,
        // Last file done. From QUEUED: a job suspended in TRANSFERRED and resumed with
        // nothing left to move (Suspend in TRANSFERRED is UNVERIFIED, §11 q5).
        (T::AllFilesDone, Transferred) => from == Transferring || from == Queued,
        (T::TransientError, TransientError) => active,
        (T::FatalError, Error) => active,
        (T::NetworkLost, TransientError) => matches!(from, Queued | Connecting | Transferring),
        (T::NetworkRestored, Queued) => from == TransientError,
        (T::OwnerLoggedOff, Queued) => active,
        // The queue survives a service restart; transfers resume from their offset.
        (T::ServiceRestarted, Queued) => active,
        (T::RetryDelayElapsed, Queued) => from == TransientError,
        (T::NoProgressTimeout, Error) => from == TransientError,
        (T::MaxDownloadTime, Error) => active,
        // "already-SUSPENDED stays SUSPENDED": no state change is recorded for it.
        (T::Suspend, Suspended) => from != Suspended,
        (T::Cancel, Cancelled) => true,
        // Downloads: any non-final state; uploads: TRANSFERRED only.
        (T::Complete, Acknowledged) => job_type == JobType::Download || from == Transferred,
        (T::InactivityTimeout, Cancelled) => bits,
        (T::RetentionExpired, Cancelled) => !bits,
        _ => false,
    }
}

// ----- operations ---------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// CreateJob, then (if asked) AddFileSet, SetNotifyInterface and Resume.
    Create {
        user: u8,
        job_type: JobType,
        files: u8,
        callback: bool,
        resume: bool,
    },
    AddFiles {
        job: u8,
        n: u8,
    },
    Resume(u8),
    Suspend(u8),
    Cancel(u8),
    Complete(u8),
    SetPriority {
        job: u8,
        value: u32,
    },
    SetFlags {
        job: u8,
        flags: u32,
    },
    SetCallback {
        job: u8,
        callback2: Option<bool>,
    },
    SetCmdLine {
        job: u8,
        on: bool,
    },
    SetRetryDelay {
        job: u8,
        secs: u32,
    },
    SetNoProgress {
        job: u8,
        secs: u32,
    },
    SetMaxDownload {
        job: u8,
        secs: u32,
    },
    Connected {
        job: u8,
        size: Option<u64>,
    },
    Progress {
        job: u8,
        bytes: u64,
    },
    FileDone(u8),
    /// Connected, all bytes and FileDone for every remaining file (and the reply).
    Finish(u8),
    RemoteChanged(u8),
    Failed {
        job: u8,
        failure: TransferFailure,
    },
    /// Return the `slot`-th notification in flight (mod their number) with `hr`.
    Return {
        slot: u8,
        hr: Hresult,
    },
    CmdExit {
        slot: u8,
        code: i32,
    },
    Env(EnvOp),
    Advance(u64),
}

#[derive(Debug, Clone, Copy)]
enum EnvOp {
    NetworkLost,
    NetworkRestored,
    LogOff(u8),
    LogOn(u8),
    ServiceRestart,
}

#[derive(Debug, Clone)]
struct RefState {
    seed: u64,
    flavor: Flavor,
    /// Jobs created so far (ops address jobs modulo the number that exist).
    jobs: u8,
}

const STATUSES: &[u16] = &[
    200, 301, 304, 307, 308, 400, 401, 403, 404, 407, 408, 409, 410, 416, 429, 500, 501, 502, 503, 504, 505,
];

fn failure() -> impl Strategy<Value = TransferFailure> {
    let phase = prop_oneof![
        4 => Just(RequestPhase::Download),
        1 => Just(RequestPhase::Upload),
        1 => Just(RequestPhase::ServerApplication),
        1 => Just(RequestPhase::Reply),
    ];
    let network = prop_oneof![
        Just(NetworkFailure::NameNotResolved),
        Just(NetworkFailure::ConnectionRefused),
        Just(NetworkFailure::ConnectionReset),
        Just(NetworkFailure::Timeout),
        Just(NetworkFailure::InvalidResponse),
        Just(NetworkFailure::RedirectFailed),
        Just(NetworkFailure::TlsFailure),
    ];
    let protocol = prop_oneof![
        Just(ProtocolFailure::MissingFileSize),
        Just(ProtocolFailure::InsufficientRangeSupport),
        Just(ProtocolFailure::InvalidServerResponse),
        Just(ProtocolFailure::SessionNotFound),
        Just(ProtocolFailure::UploadTooLarge),
        Just(ProtocolFailure::LocalFileChanged),
        Just(ProtocolFailure::ProtocolMismatch),
    ];
    prop_oneof![
        5 => (proptest::sample::select(STATUSES), phase).prop_map(|(status, phase)| TransferFailure::Http { status, phase }),
        3 => network.prop_map(TransferFailure::Network),
        1 => protocol.prop_map(TransferFailure::Protocol),
    ]
}

fn advance() -> impl Strategy<Value = u64> {
    const DAY: u64 = 86_400_000;
    prop_oneof![
        6 => 0..10_000u64,                       // small
        3 => 10_000..7_200_000u64,               // up to two hours
        1 => prop_oneof![Just(15 * DAY), Just(31 * DAY), Just(91 * DAY)], // huge
    ]
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = RefState;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<RefState> {
        (
            any::<u64>(),
            prop_oneof![3 => Just(Flavor::Bits), 1 => Just(Flavor::DeliveryOptimization)],
        )
            .prop_map(|(seed, flavor)| RefState { seed, flavor, jobs: 0 })
            .boxed()
    }

    fn transitions(state: &RefState) -> BoxedStrategy<Op> {
        let job_type =
            prop_oneof![3 => Just(JobType::Download), 1 => Just(JobType::Upload), 1 => Just(JobType::UploadReply)];
        let create = (
            0..2u8,
            job_type,
            0..4u8,
            proptest::bool::weighted(0.8),
            proptest::bool::weighted(0.7),
        )
            .prop_map(|(user, job_type, files, callback, resume)| Op::Create {
                user,
                job_type,
                files,
                callback,
                resume,
            });
        if state.jobs == 0 {
            return create.boxed();
        }
        let job = 0..state.jobs;
        let hr = prop_oneof![
            4 => Just(Hresult::S_OK),
            3 => Just(Hresult::E_FAIL),
            1 => Just(Hresult::RPC_E_DISCONNECTED),
            1 => Just(Hresult::S_FALSE),
        ];
        let env = prop_oneof![
            Just(EnvOp::NetworkLost),
            Just(EnvOp::NetworkRestored),
            (0..2u8).prop_map(EnvOp::LogOff),
            (0..2u8).prop_map(EnvOp::LogOn),
            Just(EnvOp::ServiceRestart),
        ];
        prop_oneof![
            2 => create,
            3 => (job.clone(), 1..4u8).prop_map(|(job, n)| Op::AddFiles { job, n }),
            4 => job.clone().prop_map(Op::Resume),
            1 => job.clone().prop_map(Op::Suspend),
            1 => job.clone().prop_map(Op::Cancel),
            2 => job.clone().prop_map(Op::Complete),
            1 => (job.clone(), 0..5u32).prop_map(|(job, value)| Op::SetPriority { job, value }),
            2 => (job.clone(), prop_oneof![Just(0x3u32), Just(0x1), Just(0x2), Just(0xB), Just(0x13), Just(0x1F), Just(0x7), Just(0x40)])
                .prop_map(|(job, flags)| Op::SetFlags { job, flags }),
            3 => (job.clone(), proptest::option::weighted(0.85, any::<bool>()))
                .prop_map(|(job, callback2)| Op::SetCallback { job, callback2 }),
            1 => (job.clone(), any::<bool>()).prop_map(|(job, on)| Op::SetCmdLine { job, on }),
            1 => (job.clone(), prop_oneof![Just(0u32), Just(5), Just(60), Just(600), Just(4000)])
                .prop_map(|(job, secs)| Op::SetRetryDelay { job, secs }),
            1 => (job.clone(), prop_oneof![Just(0u32), Just(30), Just(3600), Just(1_209_600)])
                .prop_map(|(job, secs)| Op::SetNoProgress { job, secs }),
            1 => (job.clone(), prop_oneof![Just(10u32), Just(3600), Just(7_776_000)])
                .prop_map(|(job, secs)| Op::SetMaxDownload { job, secs }),
            5 => (job.clone(), proptest::option::weighted(0.8, 1..5000u64)).prop_map(|(job, size)| Op::Connected { job, size }),
            5 => (job.clone(), 0..3000u64).prop_map(|(job, bytes)| Op::Progress { job, bytes }),
            5 => job.clone().prop_map(Op::FileDone),
            4 => job.clone().prop_map(Op::Finish),
            1 => job.clone().prop_map(Op::RemoteChanged),
            4 => (job, failure()).prop_map(|(job, failure)| Op::Failed { job, failure }),
            2 => (any::<u8>(), hr).prop_map(|(slot, hr)| Op::Return { slot, hr }),
            1 => (any::<u8>(), prop_oneof![Just(0), Just(1)]).prop_map(|(slot, code)| Op::CmdExit { slot, code }),
            2 => env.prop_map(Op::Env),
            4 => advance().prop_map(Op::Advance),
        ]
        .boxed()
    }

    fn apply(mut state: RefState, op: &Op) -> RefState {
        if let Op::Create { .. } = op {
            state.jobs = state.jobs.saturating_add(1).min(12);
        }
        state
    }
}

// ----- the system under test: the model plus a driver ---------------------------------

struct Sut {
    svc: Service,
    seed: u64,
    flavor: Flavor,
    users: [UserId; 2],
    jobs: Vec<(JobId, JobType)>,
    now: Time,
    active: HashMap<JobId, TransferId>,
    in_flight: Vec<Notification>,
    cmdlines: Vec<(NotificationId, JobId)>,
    ops: Vec<Op>,
    // What the checks have learnt from the trace so far.
    trace_pos: usize,
    states: HashMap<JobId, JobState>,
    last_disposition: HashMap<JobId, Disposition>,
    /// JobTransferred / JobError owed and not yet accepted.
    owed: HashMap<JobId, bool>,
    progress: HashMap<JobId, u64>,
}

impl Sut {
    fn new(seed: u64, flavor: Flavor) -> Sut {
        let mut svc = Service::new(flavor, seed);
        let users = [svc.add_user("alice"), svc.add_user("bob")];
        Sut {
            svc,
            seed,
            flavor,
            users,
            jobs: Vec::new(),
            now: Time::ZERO,
            active: HashMap::new(),
            in_flight: Vec::new(),
            cmdlines: Vec::new(),
            ops: Vec::new(),
            trace_pos: 0,
            states: HashMap::new(),
            last_disposition: HashMap::new(),
            owed: HashMap::new(),
            progress: HashMap::new(),
        }
    }

    fn job(&self, i: u8) -> Option<JobId> {
        (!self.jobs.is_empty()).then(|| self.jobs[i as usize % self.jobs.len()].0)
    }

    fn drain(&mut self) {
        while let Some(e) = self.svc.poll_effect() {
            match e {
                Effect::StartTransfer(t) => {
                    self.active.insert(t.job, t.transfer);
                }
                Effect::AbortTransfer { job, transfer } if self.active.get(&job) == Some(&transfer) => {
                    self.active.remove(&job);
                }
                Effect::Notify(n) => self.in_flight.push(n),
                Effect::RunCommandLine { id, job, .. } => self.cmdlines.push((id, job)),
                _ => {}
            }
        }
    }

    fn transfer_event(&mut self, i: u8, event: TransferEvent) {
        let Some(job) = self.job(i) else { return };
        let Some(&t) = self.active.get(&job) else { return };
        if event == TransferEvent::FileDone {
            self.active.remove(&job);
        }
        self.svc.handle_transfer(self.now, t, event);
    }

    /// Moves the clock by `ms`: up to 64 timers are fired one at a time at their own
    /// deadline, the rest in one `handle_timeout` (a driver that slept through them).
    fn advance(&mut self, ms: u64) {
        let to = self.now.plus(Span(ms));
        for _ in 0..64 {
            self.drain();
            match self.svc.poll_timeout() {
                Some(at) if at <= to => {
                    self.now = self.now.max(at);
                    self.svc.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = to;
        self.svc.handle_timeout(to);
    }

    fn run(&mut self, op: &Op) {
        self.run_inner(op);
        self.drain();
        self.ops.push(op.clone());
    }

    fn run_inner(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::Create {
                user,
                job_type,
                files,
                callback,
                resume,
            } => {
                let user = self.users[user as usize % 2];
                if let Ok(j) = self.svc.create_job(now, user, "prop", job_type) {
                    self.jobs.push((j, job_type));
                    let i = (self.jobs.len() - 1) as u8;
                    if files > 0 {
                        self.run_inner(&Op::AddFiles { job: i, n: files });
                    }
                    if callback {
                        self.run_inner(&Op::SetCallback {
                            job: i,
                            callback2: Some(true),
                        });
                    }
                    if resume {
                        self.run_inner(&Op::Resume(i));
                    }
                }
            }
            Op::AddFiles { job, n } => {
                if let Some(j) = self.job(job) {
                    let files: Vec<(String, String)> = (0..n)
                        .map(|i| (format!("http://127.0.0.1/{j}/{i}"), format!("C:\\d\\{j}_{i}")))
                        .collect();
                    let refs: Vec<(&str, &str)> = files.iter().map(|(r, l)| (r.as_str(), l.as_str())).collect();
                    let _ = self.svc.add_file_set(now, j, &refs);
                }
            }
            Op::Resume(i) => {
                if let Some(j) = self.job(i) {
                    let _ = self.svc.resume(now, j);
                }
            }
            Op::Suspend(i) => {
                if let Some(j) = self.job(i) {
                    let _ = self.svc.suspend(now, j);
                }
            }
            Op::Cancel(i) => {
                if let Some(j) = self.job(i) {
                    let _ = self.svc.cancel(now, j);
                }
            }
            Op::Complete(i) => {
                if let Some(j) = self.job(i) {
                    let _ = self.svc.complete(now, j);
                }
            }
            Op::SetPriority { job, value } => {
                if let Some(j) = self.job(job) {
                    let _ = self.svc.set_priority(now, j, value);
                }
            }
            Op::SetFlags { job, flags } => {
                if let Some(j) = self.job(job) {
                    let _ = self.svc.set_notify_flags(now, j, flags);
                }
            }
            Op::SetCallback { job, callback2 } => {
                if let Some(j) = self.job(job) {
                    let cb = callback2.map(|callback2| Callback { id: j.0, callback2 });
                    let _ = self.svc.set_notify_interface(now, j, cb);
                }
            }
            Op::SetCmdLine { job, on } => {
                if let Some(j) = self.job(job) {
                    let program = on.then_some("C:\\notify.exe");
                    let _ = self.svc.set_notify_cmdline(now, j, program, None);
                }
            }
            Op::SetRetryDelay { job, secs } => {
                if let Some(j) = self.job(job) {
                    let _ = self.svc.set_minimum_retry_delay(now, j, secs);
                }
            }
            Op::SetNoProgress { job, secs } => {
                if let Some(j) = self.job(job) {
                    let _ = self.svc.set_no_progress_timeout(now, j, secs);
                }
            }
            Op::SetMaxDownload { job, secs } => {
                if let Some(j) = self.job(job) {
                    let _ = self.svc.set_maximum_download_time(now, j, secs);
                }
            }
            Op::Connected { job, size } => self.transfer_event(job, TransferEvent::Connected { bytes_total: size }),
            Op::Progress { job, bytes } => self.transfer_event(job, TransferEvent::Progress { bytes }),
            Op::FileDone(job) => self.transfer_event(job, TransferEvent::FileDone),
            Op::Finish(job) => {
                for _ in 0..8 {
                    let Some(j) = self.job(job) else { break };
                    if !self.active.contains_key(&j) {
                        break;
                    }
                    self.transfer_event(job, TransferEvent::Connected { bytes_total: Some(100) });
                    self.transfer_event(job, TransferEvent::Progress { bytes: 100 });
                    self.transfer_event(job, TransferEvent::FileDone);
                    self.drain();
                }
            }
            Op::RemoteChanged(job) => self.transfer_event(
                job,
                TransferEvent::RemoteChanged {
                    bytes_total: Some(4000),
                },
            ),
            Op::Failed { job, failure } => self.transfer_event(job, TransferEvent::Failed(failure)),
            Op::Return { slot, hr } => {
                if !self.in_flight.is_empty() {
                    let n = self.in_flight.remove(slot as usize % self.in_flight.len());
                    self.svc.notification_returned(now, n.id, hr);
                }
            }
            Op::CmdExit { slot, code } => {
                if !self.cmdlines.is_empty() {
                    let (id, _) = self.cmdlines.remove(slot as usize % self.cmdlines.len());
                    self.svc.command_line_exited(now, id, code);
                }
            }
            Op::Env(e) => {
                let event = match e {
                    EnvOp::NetworkLost => EnvEvent::NetworkLost,
                    EnvOp::NetworkRestored => EnvEvent::NetworkRestored,
                    EnvOp::LogOff(u) => EnvEvent::LogOff(self.users[u as usize % 2]),
                    EnvOp::LogOn(u) => EnvEvent::LogOn(self.users[u as usize % 2]),
                    EnvOp::ServiceRestart => EnvEvent::ServiceRestart,
                };
                if matches!(event, EnvEvent::ServiceRestart) {
                    // Calls in flight and running command lines die with the service.
                    self.in_flight.clear();
                    self.cmdlines.clear();
                }
                self.svc.handle_env(now, event);
            }
            Op::Advance(ms) => self.advance(ms),
        }
    }

    /// Every invariant; panics with the seed and the op that broke it.
    fn check(&mut self, op: &Op) {
        let ctx = || format!("seed={} flavor={} after {op:?}", self.seed, self.flavor);
        let trace = self.svc.trace();
        for e in &trace[self.trace_pos..] {
            match &e.kind {
                TraceKind::JobCreated { job, .. } => {
                    self.states.insert(*job, JobState::Suspended);
                }
                TraceKind::State { job, from, to, trigger } => {
                    let known = self.states[job];
                    assert_eq!(known, *from, "{}: {job} changed from {from} but was {known}", ctx());
                    let ty = self
                        .jobs
                        .iter()
                        .find(|(id, _)| id == job)
                        .map_or(JobType::Download, |(_, t)| *t);
                    assert!(
                        spec_allows(self.flavor, ty, *from, *trigger, *to),
                        "{}: {job} {from} -({trigger})-> {to} is not in bits-spec §1.3",
                        ctx()
                    );
                    self.states.insert(*job, *to);
                    let owes = matches!(to, JobState::Transferred | JobState::Error);
                    self.owed.insert(*job, owes);
                }
                TraceKind::Error { job, disposition, .. } => {
                    self.last_disposition.insert(*job, *disposition);
                }
                TraceKind::NotifySent { job, kind, .. } => match kind {
                    NotificationKind::JobError => {
                        assert_eq!(self.states[job], JobState::Error, "{}: JobError outside ERROR", ctx());
                        assert_eq!(
                            self.last_disposition.get(job),
                            Some(&Disposition::Fatal),
                            "{}: JobError for a transient error of {job}",
                            ctx()
                        );
                    }
                    NotificationKind::JobTransferred => {
                        assert_eq!(self.states[job], JobState::Transferred, "{}", ctx());
                    }
                    _ => {}
                },
                TraceKind::NotifyReturned { job, kind, result, .. }
                    if matches!(kind, NotificationKind::JobTransferred | NotificationKind::JobError)
                        && *result == Hresult::S_OK =>
                {
                    self.owed.insert(*job, false);
                }
                TraceKind::CmdLineExit { job, exit_code: 0 } => {
                    self.owed.insert(*job, false);
                }
                _ => {}
            }
        }
        self.trace_pos = trace.len();

        for u in self.users {
            let n = self.svc.notifications_in_flight(u);
            assert!(n <= 4, "{}: {n} notifications in flight", ctx());
            let mine = self.in_flight.iter().filter(|x| self.svc.owner(x.job) == Ok(u)).count();
            assert_eq!(n, mine, "{}: in-flight count disagrees with the deliveries", ctx());
        }

        // RemoteChanged restarts a file at 0; a lost upload session restarts the upload.
        let progress_may_drop = matches!(
            op,
            Op::RemoteChanged(_)
                | Op::Failed {
                    failure: TransferFailure::Protocol(ProtocolFailure::SessionNotFound),
                    ..
                }
        );
        for &(j, _) in &self.jobs {
            let state = self.svc.state(j).expect("GetState works in every state");
            assert_eq!(
                state,
                self.states[&j],
                "{}: GetState disagrees with the trace for {j}",
                ctx()
            );
            let bytes = self.svc.progress(j).unwrap().bytes_transferred;
            let before = self.progress.insert(j, bytes).unwrap_or(0);
            assert!(
                bytes >= before || progress_may_drop,
                "{}: progress of {j} fell {before} -> {bytes}",
                ctx()
            );
            assert_eq!(
                self.svc.error(j).is_ok(),
                matches!(state, JobState::Error | JobState::TransientError),
                "{}: GetError for {j} in {state}",
                ctx()
            );

            // At-least-once: an owed JobTransferred / JobError is not dropped, and while
            // someone can receive it, it is under way.
            if self.owed.get(&j).copied().unwrap_or(false) {
                let owed = self.svc.owed_final_notification(j);
                let Some((kind, phase)) = owed else {
                    panic!("{}: {j} in {state} owes a notification the model dropped", ctx());
                };
                let want = if state == JobState::Error {
                    NotificationKind::JobError
                } else {
                    NotificationKind::JobTransferred
                };
                assert_eq!(kind, want, "{}", ctx());
                let flags = self.svc.notify_flags(j).unwrap();
                let flag = if want == NotificationKind::JobError {
                    NotifyFlags::JOB_ERROR
                } else {
                    NotifyFlags::JOB_TRANSFERRED
                };
                let callback = self.svc.notify_interface(j).unwrap();
                let cmdline = self.svc.profile().supports_cmdline && self.svc.notify_cmdline(j).unwrap().is_some();
                let receiver = callback.is_some() || cmdline;
                // A delivery under way must be one the driver can still answer.
                match phase {
                    DeliveryPhase::InFlight => assert!(
                        self.in_flight.iter().any(|n| n.job == j && n.kind == want),
                        "{}: {want} for {j} is in flight but was never delivered",
                        ctx()
                    ),
                    DeliveryPhase::CmdLine => assert!(
                        self.cmdlines.iter().any(|&(_, cj)| cj == j),
                        "{}: the command line for {j} is running but was never started",
                        ctx()
                    ),
                    _ => {}
                }
                if flags.wants(flag) && receiver && phase == DeliveryPhase::Idle {
                    let (files, file_phase) = self.svc.owed_file_notifications(j);
                    // FileTransferred go first; one under way (or backing off, after which
                    // the channel is looked at again) holds the final notification up.
                    let files_first =
                        files > 0 && flags.wants(NotifyFlags::FILE_TRANSFERRED) && file_phase != DeliveryPhase::Idle;
                    assert!(
                        files_first,
                        "{}: {want} for {j} is owed and deliverable but nothing is under way \
                         (callback {callback:?}, cmdline {cmdline}, flags {flags})",
                        ctx()
                    );
                }
            }
        }
    }
}

struct ModelTest;

impl StateMachineTest for ModelTest {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(r: &RefState) -> Sut {
        Sut::new(r.seed, r.flavor)
    }

    fn apply(mut sut: Sut, _r: &RefState, op: Op) -> Sut {
        sut.run(&op);
        sut.check(&op);
        sut
    }

    /// Same seed, same ops: the trace must be identical.
    fn teardown(sut: Sut, r: RefState) {
        let mut again = Sut::new(r.seed, r.flavor);
        for op in &sut.ops {
            again.run(op);
        }
        assert!(
            sut.svc.trace() == again.svc.trace(),
            "seed={}: same ops, different trace\n--- first\n{}\n--- second\n{}",
            r.seed,
            render(sut.svc.trace()),
            render(again.svc.trace())
        );
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: cases(),
        max_shrink_iters: 20_000,
        failure_persistence: None,
        .. Config::default()
    })]

    #[test]
    fn model_against_the_spec(sequential 1..60 => ModelTest);
}
