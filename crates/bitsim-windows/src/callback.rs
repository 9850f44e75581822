//! The notification side: an `IBackgroundCopyCallback2` implementation that
//! records every delivery the service makes and answers according to a
//! scenario's callback policy.
//!
//! Real BITS retries a notification whose callback fails (and limits the
//! number of outstanding ones, bits-spec §4.3); the policy lets a conformance
//! run fail or block deliberately and observe that. The recorder never calls
//! back into bitsim's model: it only records.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// One call the service made into the recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// 0-based index among all deliveries to this recorder.
    pub seq: usize,
    pub kind: DeliveryKind,
    /// The job's id (`None` if the service passed NULL or GetId failed).
    pub job: Option<JobGuid>,
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
    /// What the recorder returned to the service (from the policy).
    pub returned: Hr,
    /// How long the recorder blocked before returning (policy).
    pub blocked: Duration,
}

/// How the recorder answers deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPolicy {
    /// Return codes for the matching deliveries, in order: the n-th matching
    /// delivery returns `returns[n]`, later ones return `then`.
    pub returns: Vec<Hr>,
    /// Return code once `returns` is used up (normally S_OK).
    pub then: Hr,
    /// Which kinds the policy applies to (`None` = all); other kinds return
    /// S_OK at once.
    pub kinds: Option<Vec<DeliveryKind>>,
    /// Block (sleep) this long in each matching delivery before returning,
    /// e.g. to hold a notification slot.
    pub block: Option<Duration>,
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        CallbackPolicy {
            returns: Vec::new(),
            then: Hr::S_OK,
            kinds: None,
            block: None,
        }
    }
}

impl CallbackPolicy {
    /// Always S_OK, never block.
    pub fn accept_all() -> Self {
        CallbackPolicy::default()
    }

    fn matches(&self, kind: DeliveryKind) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
    }
}

#[derive(Default)]
struct State {
    deliveries: Vec<Delivery>,
    matched: usize,
    policy: CallbackPolicy,
}

struct Shared {
    t0: Instant,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock only leaves a consistent Vec behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
    /// A recorder whose delivery times are measured from `t0`.
    pub fn new(t0: Instant, policy: CallbackPolicy) -> CallbackRecorder {
        let shared = Arc::new(Shared {
            t0,
            state: Mutex::new(State {
                policy,
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        let iface: IBackgroundCopyCallback = Callback { shared: shared.clone() }.into();
        CallbackRecorder { shared, iface }
    }

    pub(crate) fn interface(&self) -> &IBackgroundCopyCallback {
        &self.iface
    }

    /// Replace the policy (the count of matched deliveries restarts at 0).
    pub fn set_policy(&self, policy: CallbackPolicy) {
        let mut st = self.shared.lock();
        st.policy = policy;
        st.matched = 0;
    }

    /// A copy of everything recorded so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
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
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[implement(IBackgroundCopyCallback2, IBackgroundCopyCallback)]
struct Callback {
    shared: Arc<Shared>,
}

/// What a delivery carries besides the job.
enum Payload<'a> {
    None,
    Error(&'a IBackgroundCopyError),
    File(&'a IBackgroundCopyFile),
    Reserved(u32),
}

impl Callback {
    fn deliver(&self, kind: DeliveryKind, job: Option<&IBackgroundCopyJob>, payload: Payload<'_>) -> Hr {
        let at = self.shared.t0.elapsed();
        guard_panic(|| {
            // Read what the service shows on entry, before the policy blocks.
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
            let (returned, block) = {
                let mut st = self.shared.lock();
                if st.policy.matches(kind) {
                    let n = st.matched;
                    st.matched += 1;
                    let ret = st.policy.returns.get(n).copied().unwrap_or(st.policy.then);
                    (ret, st.policy.block)
                } else {
                    (Hr::S_OK, None)
                }
            };
            let blocked = match block {
                Some(d) => {
                    let start = Instant::now();
                    std::thread::sleep(d);
                    start.elapsed()
                }
                None => Duration::ZERO,
            };
            let mut st = self.shared.lock();
            let seq = st.deliveries.len();
            st.deliveries.push(Delivery {
                seq,
                kind,
                job: id,
                at,
                state,
                error,
                file,
                reserved,
                returned,
                blocked,
            });
            drop(st);
            self.shared.changed.notify_all();
            returned
        })
    }
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

impl IBackgroundCopyCallback_Impl for Callback_Impl {
    fn JobTransferred(&self, pjob: Ref<'_, IBackgroundCopyJob>) -> windows_core::Result<()> {
        to_result(self.deliver(DeliveryKind::JobTransferred, pjob.as_ref(), Payload::None))
    }

    fn JobError(
        &self,
        pjob: Ref<'_, IBackgroundCopyJob>,
        perror: Ref<'_, IBackgroundCopyError>,
    ) -> windows_core::Result<()> {
        let payload = perror.as_ref().map_or(Payload::None, Payload::Error);
        to_result(self.deliver(DeliveryKind::JobError, pjob.as_ref(), payload))
    }

    fn JobModification(&self, pjob: Ref<'_, IBackgroundCopyJob>, dwreserved: u32) -> windows_core::Result<()> {
        to_result(self.deliver(
            DeliveryKind::JobModification,
            pjob.as_ref(),
            Payload::Reserved(dwreserved),
        ))
    }
}

impl IBackgroundCopyCallback2_Impl for Callback_Impl {
    fn FileTransferred(
        &self,
        pjob: Ref<'_, IBackgroundCopyJob>,
        pfile: Ref<'_, IBackgroundCopyFile>,
    ) -> windows_core::Result<()> {
        let payload = pfile.as_ref().map_or(Payload::None, Payload::File);
        to_result(self.deliver(DeliveryKind::FileTransferred, pjob.as_ref(), payload))
    }
}
