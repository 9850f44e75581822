//! The notification side: an `#[implement]` IBackgroundCopyCallback (and
//! IBackgroundCopyCallback2 unless the policy says otherwise) that records
//! every delivery the service makes and answers per a scenario's callback
//! policy.
//!
//! Real BITS calls a failing callback again later and limits the
//! notifications in flight (bits-spec §4.3); the policy lets a conformance run
//! fail, block or "disconnect" deliberately and observe that. The recorder
//! only records; it never decides BITS behaviour.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use windows::Win32::Networking::BackgroundIntelligentTransferService::{
    IBackgroundCopyCallback, IBackgroundCopyCallback2, IBackgroundCopyCallback2_Impl, IBackgroundCopyCallback_Impl,
    IBackgroundCopyError, IBackgroundCopyFile, IBackgroundCopyJob, BG_JOB_STATE,
};
use windows_core::{implement, Ref, GUID};

use crate::bits::{error_info, file_info};
use crate::com::{guard_panic, vcall};
use crate::hr::Hr;
use crate::types::{ErrorContext, FileInfo, JobGuid, JobState};

/// Which callback method the service called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryKind {
    JobTransferred,
    JobError,
    JobModification,
    /// IBackgroundCopyCallback2 (BITS 3.0+).
    FileTransferred,
}

impl DeliveryKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::JobTransferred => "JobTransferred",
            DeliveryKind::JobError => "JobError",
            DeliveryKind::JobModification => "JobModification",
            DeliveryKind::FileTransferred => "FileTransferred",
        }
    }
}

/// One call the service made into the recorder. Recorded on entry, so a
/// blocked call is visible (with `returned == None`) while it blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// 0-based index among all deliveries to this recorder.
    pub seq: usize,
    pub kind: DeliveryKind,
    /// The job's id (`None` if the service passed NULL or GetId failed).
    pub job: Option<JobGuid>,
    /// 1 for the first delivery of an event; n+1 when the previous delivery
    /// of the same kind for the same job failed (the service calling again).
    pub attempt: u32,
    /// Time since the recorder's start instant, taken on entry.
    pub at: Duration,
    /// The job's state read on entry (`GetState` from inside the callback).
    pub state: Option<JobState>,
    /// JobError: context and code from the IBackgroundCopyError passed in.
    pub error: Option<(ErrorContext, Hr)>,
    /// JobError: the failing file; FileTransferred: the file.
    pub file: Option<FileInfo>,
    /// JobModification: the reserved DWORD as passed.
    pub reserved: Option<u32>,
    /// What the recorder returned; `None` while the call is still blocked.
    pub returned: Option<Hr>,
    /// How long the call blocked before returning (policy).
    pub blocked: Duration,
}

/// How the recorder answers; mirrors the scenario format's callback policy
/// (`bitsim_scenario::format::CallbackPolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPolicy {
    /// Return codes for successive deliveries; the last one repeats; empty
    /// means S_OK. Indexed by the number of deliveries answered from this
    /// list (kinds listed in `returns_by_kind` do not count).
    pub returns: Vec<Hr>,
    /// Per callback method, overriding `returns`, with a counter per kind.
    pub returns_by_kind: BTreeMap<DeliveryKind, Vec<Hr>>,
    /// Block each call this long before returning.
    pub block: Option<Duration>,
    /// Block each call until [`CallbackRecorder::release`].
    pub block_until_release: bool,
    /// Behave like a callback whose process is gone: every call returns
    /// RPC_E_DISCONNECTED at once (no blocking).
    pub disconnected: bool,
    /// Implement IBackgroundCopyCallback2 (FileTransferred). Fixed when the
    /// recorder is created.
    pub callback2: bool,
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        CallbackPolicy {
            returns: Vec::new(),
            returns_by_kind: BTreeMap::new(),
            block: None,
            block_until_release: false,
            disconnected: false,
            callback2: true,
        }
    }
}

impl CallbackPolicy {
    /// Always S_OK, never block, Callback2.
    pub fn accept_all() -> Self {
        CallbackPolicy::default()
    }
}

fn pick(list: &[Hr], n: usize) -> Hr {
    list.get(n).or(list.last()).copied().unwrap_or(Hr::S_OK)
}

#[derive(Default)]
struct State {
    deliveries: Vec<Delivery>,
    policy: CallbackPolicy,
    /// Deliveries answered from `policy.returns`.
    answered: usize,
    /// Deliveries answered from `policy.returns_by_kind[kind]`.
    answered_by_kind: BTreeMap<DeliveryKind, usize>,
    /// Bumped by `release`: calls blocked before it return.
    release_generation: u64,
    /// No more blocking (end of run).
    shut_down: bool,
    /// Time the run's clock jumped ahead (bitsim's COM facade): a `block`
    /// lasts its duration on that clock, not on the wall clock alone.
    skipped: Duration,
    /// Calls blocked for a duration now: (wall-clock end, `skipped` at the start).
    blocks: Vec<(Instant, Duration)>,
}

struct Shared {
    t0: Instant,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, st: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout(st, timeout)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }
}

/// Records every notification delivered to it; give it to a job with
/// [`crate::BitsJob::set_notify_interface`]. Cheap to clone (shared record).
#[derive(Clone)]
pub struct CallbackRecorder {
    shared: Arc<Shared>,
    iface: IBackgroundCopyCallback,
}

// SAFETY: the COM object is an `#[implement]` object whose state is behind
// Arc<Mutex>; it is free-threaded (the service calls it from RPC threads).
unsafe impl Send for CallbackRecorder {}
// SAFETY: as above.
unsafe impl Sync for CallbackRecorder {}

impl CallbackRecorder {
    /// A recorder whose delivery times are measured from `t0`. It exposes
    /// IBackgroundCopyCallback2 iff `policy.callback2`.
    pub fn new(t0: Instant, policy: CallbackPolicy) -> CallbackRecorder {
        let callback2 = policy.callback2;
        let shared = Arc::new(Shared {
            t0,
            state: Mutex::new(State {
                policy,
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        let iface: IBackgroundCopyCallback = if callback2 {
            let i2: IBackgroundCopyCallback2 = Callback2 { shared: shared.clone() }.into();
            i2.into()
        } else {
            Callback1 { shared: shared.clone() }.into()
        };
        CallbackRecorder { shared, iface }
    }

    pub(crate) fn interface(&self) -> &IBackgroundCopyCallback {
        &self.iface
    }

    /// Replace the policy (counters restart at 0; `callback2` cannot change).
    pub fn set_policy(&self, policy: CallbackPolicy) {
        let mut st = self.shared.lock();
        st.policy = policy;
        st.answered = 0;
        st.answered_by_kind.clear();
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Let the calls blocked now (`block_until_release`) return; later calls
    /// block again until the next release.
    pub fn release(&self) {
        self.shared.lock().release_generation += 1;
        self.shared.changed.notify_all();
    }

    /// End of run: every blocked call returns now and none blocks again.
    pub fn shut_down(&self) {
        self.shared.lock().shut_down = true;
        self.shared.changed.notify_all();
    }

    /// How long until the first call blocked for a duration returns, on the
    /// run's clock (`None`: none is).
    pub fn next_return(&self) -> Option<Duration> {
        let st = self.shared.lock();
        let now = Instant::now();
        st.blocks
            .iter()
            .map(|(until, s0)| until.saturating_duration_since(now + (st.skipped - *s0)))
            .min()
    }

    /// The run's clock jumped ahead by `by` (the COM facade's "jump"): blocked
    /// calls count it towards their `block` duration.
    pub fn skip(&self, by: Duration) {
        self.shared.lock().skipped += by;
        self.shared.changed.notify_all();
    }

    /// A copy of everything recorded so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    /// Calls that have not returned yet (blocked by the policy).
    pub fn in_flight(&self) -> usize {
        self.shared
            .lock()
            .deliveries
            .iter()
            .filter(|d| d.returned.is_none())
            .count()
    }

    /// Number of deliveries recorded so far.
    pub fn len(&self) -> usize {
        self.shared.lock().deliveries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wait until `pred` holds for the recorded deliveries, or `timeout`
    /// passes. Returns whether it held.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Delivery]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if pred(&st.deliveries) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self.shared.wait(st, deadline - now);
        }
    }
}

/// What a delivery carries besides the job.
enum Payload<'a> {
    None,
    Error(&'a IBackgroundCopyError),
    File(&'a IBackgroundCopyFile),
    Reserved(u32),
}

impl Shared {
    fn deliver(&self, kind: DeliveryKind, job: Option<&IBackgroundCopyJob>, payload: Payload<'_>) -> Hr {
        let at = self.t0.elapsed();
        guard_panic(|| {
            // What the service shows on entry, before the policy blocks.
            let (id, state) = match job {
                Some(job) => {
                    let mut guid = GUID::zeroed();
                    let mut st = BG_JOB_STATE(-1);
                    // SAFETY: `job` is valid for the duration of the call;
                    // out-parameters of the right types.
                    let (idhr, sthr) = unsafe { (vcall!(job, GetId, &mut guid), vcall!(job, GetState, &mut st)) };
                    (
                        idhr.is_success().then(|| JobGuid::from(guid)),
                        sthr.is_success().then(|| JobState::from_raw(st.0 as u32)),
                    )
                }
                None => (None, None),
            };
            let (error, file, reserved) = match payload {
                Payload::None => (None, None, None),
                Payload::Error(err) => match error_info(err).ok() {
                    Ok(info) => (Some((info.context, info.code)), info.file, None),
                    Err(_) => (None, None, None),
                },
                Payload::File(f) => (None, Some(file_info(f)), None),
                Payload::Reserved(r) => (None, None, Some(r)),
            };

            // Record on entry and decide the answer.
            let mut st = self.lock();
            let attempt = st
                .deliveries
                .iter()
                .rev()
                .find(|d| d.kind == kind && d.job == id)
                .map_or(1, |prev| match prev.returned {
                    // A return the model's BITS reading accepts ended the previous
                    // event; anything else means this call is its next attempt.
                    Some(hr) if accepted(kind, hr) => 1,
                    _ => prev.attempt + 1,
                });
            let returned = if st.policy.disconnected {
                Hr::RPC_E_DISCONNECTED
            } else if let Some(list) = st.policy.returns_by_kind.get(&kind).cloned() {
                let n = st.answered_by_kind.entry(kind).or_insert(0);
                let hr = pick(&list, *n);
                *n += 1;
                hr
            } else {
                let hr = pick(&st.policy.returns, st.answered);
                st.answered += 1;
                hr
            };
            let seq = st.deliveries.len();
            st.deliveries.push(Delivery {
                seq,
                kind,
                job: id,
                attempt,
                at,
                state,
                error,
                file,
                reserved,
                returned: None,
                blocked: Duration::ZERO,
            });
            self.changed.notify_all();

            // Block per policy (interruptible by release / shut_down).
            let start = Instant::now();
            if !st.policy.disconnected {
                if let Some(d) = st.policy.block {
                    let until = start + d;
                    let skipped0 = st.skipped;
                    st.blocks.push((until, skipped0));
                    while !st.shut_down {
                        let now = Instant::now() + (st.skipped - skipped0);
                        if now >= until {
                            break;
                        }
                        st = self.wait(st, until - now);
                    }
                    if let Some(i) = st.blocks.iter().position(|b| *b == (until, skipped0)) {
                        st.blocks.remove(i);
                    }
                }
                if st.policy.block_until_release {
                    let generation = st.release_generation;
                    while !st.shut_down && st.release_generation == generation {
                        st = self.wait(st, Duration::from_secs(3600));
                    }
                }
            }
            let d = &mut st.deliveries[seq];
            d.blocked = start.elapsed();
            d.returned = Some(returned);
            drop(st);
            self.changed.notify_all();
            returned
        })
    }
}

/// Whether BITS takes `hr` as the end of a notification (no re-delivery): the
/// model's reading (Profile `job_callback_success` / `file_callback_success`),
/// so the recorder numbers attempts as the model does.
fn accepted(kind: DeliveryKind, hr: Hr) -> bool {
    let profile = bitsim_model::Profile::bits();
    let rule = match kind {
        DeliveryKind::FileTransferred => profile.file_callback_success,
        _ => profile.job_callback_success,
    };
    rule.accepts(bitsim_model::Hresult(hr.0))
}

/// The policy's code as the `_Impl` return value. S_OK is `Ok(())`; any other
/// code, success codes such as S_FALSE included, travels as an `Error` so the
/// generated glue returns it unchanged (`HRESULT::ok` would fold S_FALSE into
/// S_OK).
fn to_result(hr: Hr) -> windows_core::Result<()> {
    if hr == Hr::S_OK {
        Ok(())
    } else {
        Err(windows_core::Error::from_hresult(hr.into()))
    }
}

fn job_transferred(s: &Shared, pjob: Ref<'_, IBackgroundCopyJob>) -> windows_core::Result<()> {
    to_result(s.deliver(DeliveryKind::JobTransferred, pjob.as_ref(), Payload::None))
}

fn job_error(
    s: &Shared,
    pjob: Ref<'_, IBackgroundCopyJob>,
    perror: Ref<'_, IBackgroundCopyError>,
) -> windows_core::Result<()> {
    let payload = perror.as_ref().map_or(Payload::None, Payload::Error);
    to_result(s.deliver(DeliveryKind::JobError, pjob.as_ref(), payload))
}

fn job_modification(s: &Shared, pjob: Ref<'_, IBackgroundCopyJob>, reserved: u32) -> windows_core::Result<()> {
    to_result(s.deliver(
        DeliveryKind::JobModification,
        pjob.as_ref(),
        Payload::Reserved(reserved),
    ))
}

/// IBackgroundCopyCallback only (policy `callback2: false`).
#[implement(IBackgroundCopyCallback)]
struct Callback1 {
    shared: Arc<Shared>,
}

impl IBackgroundCopyCallback_Impl for Callback1_Impl {
    fn JobTransferred(&self, pjob: Ref<'_, IBackgroundCopyJob>) -> windows_core::Result<()> {
        job_transferred(&self.shared, pjob)
    }

    fn JobError(
        &self,
        pjob: Ref<'_, IBackgroundCopyJob>,
        perror: Ref<'_, IBackgroundCopyError>,
    ) -> windows_core::Result<()> {
        job_error(&self.shared, pjob, perror)
    }

    fn JobModification(&self, pjob: Ref<'_, IBackgroundCopyJob>, dwreserved: u32) -> windows_core::Result<()> {
        job_modification(&self.shared, pjob, dwreserved)
    }
}

/// IBackgroundCopyCallback2 (and through it IBackgroundCopyCallback).
#[implement(IBackgroundCopyCallback2)]
struct Callback2 {
    shared: Arc<Shared>,
}

impl IBackgroundCopyCallback_Impl for Callback2_Impl {
    fn JobTransferred(&self, pjob: Ref<'_, IBackgroundCopyJob>) -> windows_core::Result<()> {
        job_transferred(&self.shared, pjob)
    }

    fn JobError(
        &self,
        pjob: Ref<'_, IBackgroundCopyJob>,
        perror: Ref<'_, IBackgroundCopyError>,
    ) -> windows_core::Result<()> {
        job_error(&self.shared, pjob, perror)
    }

    fn JobModification(&self, pjob: Ref<'_, IBackgroundCopyJob>, dwreserved: u32) -> windows_core::Result<()> {
        job_modification(&self.shared, pjob, dwreserved)
    }
}

impl IBackgroundCopyCallback2_Impl for Callback2_Impl {
    fn FileTransferred(
        &self,
        pjob: Ref<'_, IBackgroundCopyJob>,
        pfile: Ref<'_, IBackgroundCopyFile>,
    ) -> windows_core::Result<()> {
        let payload = pfile.as_ref().map_or(Payload::None, Payload::File);
        to_result(
            self.shared
                .deliver(DeliveryKind::FileTransferred, pjob.as_ref(), payload),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows_core::Interface;

    /// Call the recorder's COM vtable as the service would (NULL job), and
    /// return the raw HRESULT.
    fn call(r: &CallbackRecorder, kind: DeliveryKind) -> Hr {
        let i = r.interface();
        let null = std::ptr::null_mut();
        // SAFETY: the methods accept NULL job / error pointers (recorded as None).
        unsafe {
            match kind {
                DeliveryKind::JobTransferred => vcall!(i, JobTransferred, null),
                DeliveryKind::JobError => vcall!(i, JobError, null, null),
                DeliveryKind::JobModification => vcall!(i, JobModification, null, 7),
                DeliveryKind::FileTransferred => {
                    let i2: IBackgroundCopyCallback2 = i.cast().expect("Callback2");
                    vcall!(&i2, FileTransferred, null, null)
                }
            }
        }
    }

    #[test]
    fn file_transferred_ends_its_event_on_any_success_code() {
        let policy = CallbackPolicy {
            returns: vec![Hr::E_FAIL, Hr::S_FALSE],
            callback2: true,
            ..CallbackPolicy::default()
        };
        let r = CallbackRecorder::new(Instant::now(), policy);
        for _ in 0..3 {
            call(&r, DeliveryKind::FileTransferred);
        }
        let attempts: Vec<u32> = r.deliveries().iter().map(|d| d.attempt).collect();
        assert_eq!(attempts, [1, 2, 1]);
    }

    #[test]
    fn returns_in_order_last_repeats_success_codes_survive() {
        let policy = CallbackPolicy {
            returns: vec![Hr::E_FAIL, Hr::S_FALSE],
            ..CallbackPolicy::default()
        };
        let r = CallbackRecorder::new(Instant::now(), policy);
        let got: Vec<Hr> = (0..3).map(|_| call(&r, DeliveryKind::JobTransferred)).collect();
        assert_eq!(got, [Hr::E_FAIL, Hr::S_FALSE, Hr::S_FALSE]);
        let d = r.deliveries();
        // S_FALSE is a success code but not S_OK: BITS calls JobTransferred
        // again (ref: IBackgroundCopyCallback::JobTransferred), so the third
        // call is the same event's third attempt.
        assert_eq!(d.iter().map(|d| d.attempt).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            d.iter().map(|d| d.returned).collect::<Vec<_>>(),
            got.into_iter().map(Some).collect::<Vec<_>>()
        );
        assert_eq!(d[0].job, None);
        assert_eq!(d[0].state, None);
    }

    #[test]
    fn returns_by_kind_override_with_their_own_counter() {
        let mut policy = CallbackPolicy {
            returns: vec![Hr::E_FAIL],
            ..CallbackPolicy::default()
        };
        policy
            .returns_by_kind
            .insert(DeliveryKind::JobModification, vec![Hr::S_OK, Hr::E_NOTIMPL]);
        let r = CallbackRecorder::new(Instant::now(), policy);
        assert_eq!(call(&r, DeliveryKind::JobModification), Hr::S_OK);
        assert_eq!(call(&r, DeliveryKind::JobError), Hr::E_FAIL);
        assert_eq!(call(&r, DeliveryKind::JobModification), Hr::E_NOTIMPL);
        assert_eq!(call(&r, DeliveryKind::FileTransferred), Hr::E_FAIL);
        assert_eq!(r.deliveries()[0].reserved, Some(7));
    }

    #[test]
    fn disconnected_fails_every_call() {
        let policy = CallbackPolicy {
            disconnected: true,
            block_until_release: true,
            ..CallbackPolicy::default()
        };
        let r = CallbackRecorder::new(Instant::now(), policy);
        assert_eq!(call(&r, DeliveryKind::JobError), Hr::RPC_E_DISCONNECTED);
    }

    #[test]
    fn blocked_calls_are_visible_and_return_on_release() {
        let policy = CallbackPolicy {
            block_until_release: true,
            ..CallbackPolicy::default()
        };
        let r = CallbackRecorder::new(Instant::now(), policy);
        let r2 = r.clone();
        let t = std::thread::spawn(move || call(&r2, DeliveryKind::JobTransferred));
        assert!(r.wait_until(Duration::from_secs(10), |d| d.len() == 1));
        assert_eq!(r.in_flight(), 1);
        assert_eq!(r.deliveries()[0].returned, None);
        r.release();
        assert_eq!(t.join().expect("caller thread"), Hr::S_OK);
        assert_eq!(r.in_flight(), 0);
        assert_eq!(r.deliveries()[0].returned, Some(Hr::S_OK));
    }

    #[test]
    fn timed_block_ends_early_on_shut_down() {
        let policy = CallbackPolicy {
            block: Some(Duration::from_secs(600)),
            ..CallbackPolicy::default()
        };
        let r = CallbackRecorder::new(Instant::now(), policy);
        let r2 = r.clone();
        let t = std::thread::spawn(move || call(&r2, DeliveryKind::JobTransferred));
        assert!(r.wait_until(Duration::from_secs(10), |d| d.len() == 1));
        r.shut_down();
        assert_eq!(t.join().expect("caller thread"), Hr::S_OK);
        assert!(r.deliveries()[0].blocked < Duration::from_secs(600));
    }

    #[test]
    fn callback2_is_offered_only_when_asked() {
        let with = CallbackRecorder::new(Instant::now(), CallbackPolicy::default());
        assert!(with.interface().cast::<IBackgroundCopyCallback2>().is_ok());
        let without = CallbackRecorder::new(
            Instant::now(),
            CallbackPolicy {
                callback2: false,
                ..CallbackPolicy::default()
            },
        );
        assert!(without.interface().cast::<IBackgroundCopyCallback2>().is_err());
    }
}
