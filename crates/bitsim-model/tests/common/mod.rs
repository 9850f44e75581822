//! A tiny driver shared by the integration tests: it owns a [`Service`], the virtual
//! clock and the effects the model asked for, and keeps track of each job's live
//! transfer so tests can speak in terms of jobs.
#![allow(dead_code)]

use bitsim_model::*;
use std::collections::HashMap;

pub const T0: Time = Time::ZERO;

pub struct H {
    pub svc: Service,
    pub now: Time,
    pub user: UserId,
    /// Every effect polled so far, in order.
    pub log: Vec<Effect>,
    /// Index into `log` of the first effect not yet looked at by `take_*`.
    pub seen: usize,
    /// The live transfer of each job.
    pub active: HashMap<JobId, TransferId>,
}

impl H {
    pub fn new(flavor: Flavor) -> H {
        H::with_seed(flavor, 7)
    }

    pub fn with_seed(flavor: Flavor, seed: u64) -> H {
        let mut svc = Service::new(flavor, seed);
        let user = svc.add_user("alice");
        H {
            svc,
            now: T0,
            user,
            log: Vec::new(),
            seen: 0,
            active: HashMap::new(),
        }
    }

    pub fn bits() -> H {
        H::new(Flavor::Bits)
    }

    pub fn dos() -> H {
        H::new(Flavor::DeliveryOptimization)
    }

    /// Polls every pending effect into the log.
    pub fn pump(&mut self) {
        while let Some(e) = self.svc.poll_effect() {
            match &e {
                Effect::StartTransfer(t) => {
                    self.active.insert(t.job, t.transfer);
                }
                Effect::AbortTransfer { job, transfer } if self.active.get(job) == Some(transfer) => {
                    self.active.remove(job);
                }
                _ => {}
            }
            self.log.push(e);
        }
    }

    /// Effects polled since the last call.
    pub fn new_effects(&mut self) -> Vec<Effect> {
        self.pump();
        let out = self.log[self.seen..].to_vec();
        self.seen = self.log.len();
        out
    }

    /// Notifications delivered since the last `new_effects` / `notifications` call.
    pub fn notifications(&mut self) -> Vec<Notification> {
        self.new_effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Notify(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    /// Every notification ever delivered.
    pub fn all_notifications(&mut self) -> Vec<Notification> {
        self.pump();
        self.log
            .iter()
            .filter_map(|e| match e {
                Effect::Notify(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn starts(&mut self, job: JobId) -> Vec<TransferStart> {
        self.pump();
        self.log
            .iter()
            .filter_map(|e| match e {
                Effect::StartTransfer(t) if t.job == job => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    // ----- jobs ------------------------------------------------------------------

    pub fn create(&mut self, ty: JobType) -> JobId {
        let j = self.svc.create_job(self.now, self.user, "test job", ty).unwrap();
        self.pump();
        j
    }

    pub fn add(&mut self, job: JobId, n: usize) {
        let base = self.svc.file_count(job).unwrap();
        for i in base..base + n {
            self.svc
                .add_file(
                    self.now,
                    job,
                    &format!("http://127.0.0.1/f{i}.bin"),
                    &format!("C:\\d\\f{i}.bin"),
                )
                .unwrap();
        }
        self.pump();
    }

    /// A job of `ty` with `files` files, not resumed.
    pub fn job_with(&mut self, ty: JobType, files: usize) -> JobId {
        let j = self.create(ty);
        self.add(j, files);
        j
    }

    pub fn resume(&mut self, job: JobId) -> ApiResult<()> {
        let r = self.svc.resume(self.now, job);
        self.pump();
        r
    }

    pub fn suspend(&mut self, job: JobId) -> ApiResult<()> {
        let r = self.svc.suspend(self.now, job);
        self.pump();
        r
    }

    pub fn cancel(&mut self, job: JobId) -> ApiResult<Hresult> {
        let r = self.svc.cancel(self.now, job);
        self.pump();
        r
    }

    pub fn complete(&mut self, job: JobId) -> ApiResult<Hresult> {
        let r = self.svc.complete(self.now, job);
        self.pump();
        r
    }

    /// A resumed job with `files` files, now CONNECTING.
    pub fn connecting(&mut self, ty: JobType, files: usize) -> JobId {
        let j = self.job_with(ty, files);
        self.resume(j).unwrap();
        j
    }

    /// A resumed job with `files` files, now TRANSFERRING (connected, some bytes in).
    pub fn transferring(&mut self, ty: JobType, files: usize) -> JobId {
        let j = self.connecting(ty, files);
        self.ev(
            j,
            TransferEvent::Connected {
                bytes_total: Some(1000),
            },
        );
        self.ev(j, TransferEvent::Progress { bytes: 100 });
        j
    }

    pub fn cb(&mut self, job: JobId, id: u32) {
        self.svc
            .set_notify_interface(self.now, job, Some(Callback { id, callback2: true }))
            .unwrap();
        self.pump();
    }

    // ----- transfer events ---------------------------------------------------------

    pub fn transfer(&mut self, job: JobId) -> TransferId {
        self.pump();
        *self
            .active
            .get(&job)
            .unwrap_or_else(|| panic!("{job} has no live transfer"))
    }

    pub fn ev(&mut self, job: JobId, event: TransferEvent) {
        let t = self.transfer(job);
        // A transfer that finished or failed is over: the model will not abort it.
        if matches!(event, TransferEvent::FileDone | TransferEvent::Failed(_)) {
            self.active.remove(&job);
        }
        self.svc.handle_transfer(self.now, t, event);
        self.pump();
    }

    pub fn connect(&mut self, job: JobId) {
        self.ev(
            job,
            TransferEvent::Connected {
                bytes_total: Some(1000),
            },
        );
    }

    /// Connected, all bytes, done: one file.
    pub fn finish_file(&mut self, job: JobId) {
        self.ev(
            job,
            TransferEvent::Connected {
                bytes_total: Some(1000),
            },
        );
        self.ev(job, TransferEvent::Progress { bytes: 1000 });
        self.ev(job, TransferEvent::FileDone);
    }

    /// Every remaining file (and the reply) done.
    pub fn finish_all(&mut self, job: JobId) {
        while self.active.contains_key(&job) {
            self.finish_file(job);
        }
    }

    pub fn fail_http(&mut self, job: JobId, status: u16) {
        self.ev(
            job,
            TransferEvent::Failed(TransferFailure::Http {
                status,
                phase: RequestPhase::Download,
            }),
        );
    }

    /// HTTP 503: transient on every flavor.
    pub fn fail_transient(&mut self, job: JobId) {
        self.fail_http(job, 503);
    }

    /// HTTP 403: fatal on every flavor.
    pub fn fail_fatal(&mut self, job: JobId) {
        self.fail_http(job, 403);
    }

    // ----- time ----------------------------------------------------------------------

    /// Advances the clock to `to`, firing every timer on the way at its own time.
    pub fn run_until(&mut self, to: Time) {
        loop {
            self.pump();
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
        self.pump();
    }

    pub fn wait(&mut self, d: Span) {
        let to = self.now.plus(d);
        self.run_until(to);
    }

    pub fn wait_secs(&mut self, s: u64) {
        self.wait(Span::from_secs(s));
    }

    // ----- observation -------------------------------------------------------------

    pub fn state(&self, job: JobId) -> JobState {
        self.svc.state(job).unwrap()
    }

    pub fn trace(&self) -> String {
        render(self.svc.trace())
    }

    #[track_caller]
    pub fn assert_trace(&self, needle: &str) {
        let t = self.trace();
        assert!(t.contains(needle), "trace lacks {needle:?}:\n{t}");
    }

    #[track_caller]
    pub fn assert_no_trace(&self, needle: &str) {
        let t = self.trace();
        assert!(!t.contains(needle), "trace has {needle:?}:\n{t}");
    }

    /// The state changes of `job` as `FROM -> TO (trigger)`.
    pub fn transitions(&self, job: JobId) -> Vec<String> {
        self.svc
            .trace()
            .iter()
            .filter_map(|e| match &e.kind {
                TraceKind::State {
                    job: j,
                    from,
                    to,
                    trigger,
                } if *j == job => Some(format!("{from} -> {to} ({trigger})")),
                _ => None,
            })
            .collect()
    }

    /// Puts `job` into `state` by driving the public API (for "any non-final" rows).
    /// `files` is the number of files the job gets (at least 1 except for SUSPENDED).
    pub fn job_in(&mut self, state: JobState, ty: JobType) -> JobId {
        let j = match state {
            JobState::Suspended => self.job_with(ty, 1),
            JobState::Queued => {
                // Another background job holds the single background slot.
                let blocker = self.connecting(ty, 1);
                let j = self.connecting(ty, 1);
                assert_eq!(self.state(blocker), JobState::Connecting);
                j
            }
            JobState::Connecting => self.connecting(ty, 1),
            JobState::Transferring => self.transferring(ty, 1),
            JobState::TransientError => {
                let j = self.connecting(ty, 1);
                self.fail_transient(j);
                j
            }
            JobState::Error => {
                let j = self.connecting(ty, 1);
                self.fail_fatal(j);
                j
            }
            JobState::Transferred => {
                let j = self.connecting(ty, 1);
                self.finish_all(j);
                j
            }
            JobState::Acknowledged => {
                let j = self.connecting(ty, 1);
                self.finish_all(j);
                self.complete(j).unwrap();
                j
            }
            JobState::Cancelled => {
                let j = self.job_with(ty, 1);
                self.cancel(j).unwrap();
                j
            }
        };
        assert_eq!(self.state(j), state, "setting up {state}:\n{}", self.trace());
        j
    }
}

pub const NON_FINAL: [JobState; 7] = [
    JobState::Queued,
    JobState::Connecting,
    JobState::Transferring,
    JobState::Suspended,
    JobState::Error,
    JobState::TransientError,
    JobState::Transferred,
];

pub const FINAL: [JobState; 2] = [JobState::Acknowledged, JobState::Cancelled];
