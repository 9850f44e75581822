//! The two tables the state machine is built from: state transitions (bits-spec §1.3)
//! and which methods each state allows (bits-spec §1.4). The service looks every state
//! change up here; nothing else moves a job between states.

use crate::types::JobState::{self, *};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a job changes state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Resume on a job with unfinished files.
    Resume,
    /// The scheduler gave the job its turn.
    Scheduled,
    /// The scheduler gave the job its turn, on a flavor that never reports CONNECTING.
    ScheduledConnectingHidden,
    /// The connection to the server is made.
    Connected,
    /// The round-robin time slice ended, or a higher-priority job pre-empted this one.
    SliceEnded,
    /// Every file is done (download), the upload landed (upload), or the reply arrived
    /// (upload-reply).
    AllFilesDone,
    TransientError,
    FatalError,
    NetworkLost,
    NetworkRestored,
    OwnerLoggedOff,
    /// The service restarted; active transfers resume from their offset.
    ServiceRestarted,
    RetryDelayElapsed,
    NoProgressTimeout,
    MaxDownloadTime,
    Suspend,
    Cancel,
    Complete,
    InactivityTimeout,
    /// DO's 30-day retention.
    RetentionExpired,
    /// The network's cost, battery saver or bandwidth policy forbids the transfer.
    BlockedByPolicy,
    /// The condition that blocked the job cleared.
    PolicyAllows,
}

impl fmt::Display for Trigger {
    /// snake_case, as in scenario files and traces: `retry_delay_elapsed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let camel = format!("{self:?}");
        for (i, c) in camel.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    f.write_str("_")?;
                }
                write!(f, "{}", c.to_ascii_lowercase())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One row of the transition table.
#[derive(Debug, Clone, Copy)]
pub struct Transition {
    pub from: &'static [JobState],
    pub trigger: Trigger,
    pub to: JobState,
    /// The reference this row implements.
    pub source: &'static str,
}

const NON_FINAL: &[JobState] = &[
    Queued,
    Connecting,
    Transferring,
    Suspended,
    Error,
    TransientError,
    Transferred,
];
const ACTIVE: &[JobState] = &[Connecting, Transferring];

macro_rules! row {
    ($from:expr, $trigger:ident, $to:ident, $source:literal) => {
        Transition {
            from: $from,
            trigger: Trigger::$trigger,
            to: $to,
            source: $source,
        }
    };
}

/// bits-spec §1.3, one row per documented transition.
pub const TRANSITIONS: &[Transition] = &[
    row!(
        &[Suspended, Error, TransientError, Transferred],
        Resume,
        Queued,
        "bits-spec §1.3 [API-resume][LC]"
    ),
    row!(&[Queued], Scheduled, Connecting, "bits-spec §1.3 [LC]"),
    row!(
        &[Queued],
        ScheduledConnectingHidden,
        Transferring,
        "bits-spec §8.1 (DO: CONNECTING not supported)"
    ),
    row!(
        &[Connecting],
        Connected,
        Transferring,
        "bits-spec §1.3 [API-bg_job_state]"
    ),
    row!(
        ACTIVE,
        SliceEnded,
        Queued,
        "bits-spec §1.3, §5.2 round robin / pre-emption"
    ),
    row!(
        &[Queued, Connecting, Transferring],
        AllFilesDone,
        Transferred,
        "bits-spec §1.3 [LC]"
    ),
    row!(
        ACTIVE,
        TransientError,
        TransientError,
        "bits-spec §1.3; §3.4 error count +1"
    ),
    row!(ACTIVE, FatalError, Error, "bits-spec §1.3 [API-addfile]"),
    row!(
        &[Queued, Connecting, Transferring],
        NetworkLost,
        TransientError,
        "bits-spec §1.3 [UNC]"
    ),
    row!(&[TransientError], NetworkRestored, Queued, "bits-spec §1.3 [UNC]"),
    row!(
        ACTIVE,
        OwnerLoggedOff,
        Queued,
        "bits-spec §1.3 [API-bg_job_state QUEUED][UNC]"
    ),
    row!(
        ACTIVE,
        ServiceRestarted,
        Queued,
        "bits-spec §1.3 (queue survives a restart, PS-03)"
    ),
    row!(&[TransientError], RetryDelayElapsed, Queued, "bits-spec §1.3, §3.1"),
    row!(
        &[Queued, Connecting, Transferring],
        BlockedByPolicy,
        TransientError,
        "BITS_JOB_TRANSFER_POLICY; BG_E_BLOCKED_BY_* (Microsoft Learn)"
    ),
    row!(
        &[TransientError],
        PolicyAllows,
        Queued,
        "Control a BITS download over an expensive connection (Microsoft Learn)"
    ),
    row!(&[TransientError], NoProgressTimeout, Error, "bits-spec §1.3, §3.2"),
    row!(ACTIVE, MaxDownloadTime, Error, "bits-spec §1.3, §3.3"),
    row!(NON_FINAL, Suspend, Suspended, "bits-spec §1.3 [LC]"),
    row!(NON_FINAL, Cancel, Cancelled, "bits-spec §1.3 [LC][CC]"),
    row!(NON_FINAL, Complete, Acknowledged, "bits-spec §1.3 [LC][API-complete]"),
    row!(NON_FINAL, InactivityTimeout, Cancelled, "bits-spec §1.3, §3.5 [GP]"),
    row!(NON_FINAL, RetentionExpired, Cancelled, "bits-spec §8.1 (DO retention)"),
];

/// The state `trigger` leads to from `from`, or `None` when the table has no such row.
///
/// ```
/// use bitsim_model::{next_state, JobState, Trigger};
/// assert_eq!(next_state(JobState::Suspended, Trigger::Resume), Some(JobState::Queued));
/// assert_eq!(next_state(JobState::Cancelled, Trigger::Resume), None);
/// ```
pub fn next_state(from: JobState, trigger: Trigger) -> Option<JobState> {
    TRANSITIONS
        .iter()
        .find(|t| t.trigger == trigger && t.from.contains(&from))
        .map(|t| t.to)
}

/// The API methods whose allowed states the spec lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    Resume,
    Suspend,
    Cancel,
    /// Complete on a download job.
    CompleteDownload,
    /// Complete on an upload or upload-reply job.
    CompleteUpload,
    AddFile,
    SetDisplayName,
    SetDescription,
    SetPriority,
    SetNotifyFlags,
    SetNotifyInterface,
    SetNotifyCmdLine,
    SetMinimumRetryDelay,
    SetNoProgressTimeout,
    SetMaximumDownloadTime,
    SetReplyFileName,
    TakeOwnership,
    GetError,
    GetReplyData,
    GetErrorCount,
    GetReplyProgress,
    GetReplyFileName,
    /// IBackgroundCopyJob5::SetProperty(BITS_JOB_PROPERTY_ID_COST_FLAGS).
    SetCostFlags,
    /// IBackgroundCopyJob2::SetCredentials / RemoveCredentials.
    SetCredentials,
}

/// Which states a method is allowed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    NonFinal,
    Only(&'static [JobState]),
    Any,
}

impl Allowed {
    pub fn permits(self, state: JobState) -> bool {
        match self {
            Allowed::NonFinal => !state.is_final(),
            Allowed::Only(states) => states.contains(&state),
            Allowed::Any => true,
        }
    }
}

/// One row of the method × state table.
#[derive(Debug, Clone, Copy)]
pub struct MethodRule {
    pub method: Method,
    pub allowed: Allowed,
    pub source: &'static str,
}

macro_rules! mrow {
    ($method:ident, $allowed:expr, $source:literal) => {
        MethodRule {
            method: Method::$method,
            allowed: $allowed,
            source: $source,
        }
    };
}

/// bits-spec §1.4. Outside `allowed` the method fails with the flavor's
/// `codes.invalid_state` (BG_E_INVALID_STATE / DO_E_INVALID_STATE).
pub const METHOD_RULES: &[MethodRule] = &[
    mrow!(Resume, Allowed::NonFinal, "bits-spec §1.4 [API-resume]"),
    mrow!(Suspend, Allowed::NonFinal, "bits-spec §1.4 [API-suspend]"),
    mrow!(Cancel, Allowed::NonFinal, "bits-spec §1.4 [API-cancel][TEST]"),
    mrow!(CompleteDownload, Allowed::NonFinal, "bits-spec §1.4 [API-complete]"),
    mrow!(
        CompleteUpload,
        Allowed::Only(&[Transferred]),
        "bits-spec §1.4 [API-complete][CC]"
    ),
    // "any time before Complete or Cancel"; the failure code is UNVERIFIED (§11 q4).
    mrow!(AddFile, Allowed::NonFinal, "bits-spec §1.4 [AFJ]"),
    mrow!(SetDisplayName, Allowed::NonFinal, "bits-spec §1.4"),
    mrow!(SetDescription, Allowed::NonFinal, "bits-spec §1.4"),
    mrow!(SetPriority, Allowed::NonFinal, "bits-spec §1.4"),
    mrow!(SetNotifyFlags, Allowed::NonFinal, "bits-spec §1.4"),
    mrow!(
        SetNotifyInterface,
        Allowed::NonFinal,
        "bits-spec §1.4 [TEST SetNotifyInterface]"
    ),
    mrow!(SetNotifyCmdLine, Allowed::NonFinal, "bits-spec §1.4, §4.4"),
    mrow!(SetMinimumRetryDelay, Allowed::NonFinal, "bits-spec §1.4, §3.1"),
    mrow!(SetNoProgressTimeout, Allowed::NonFinal, "bits-spec §1.4, §3.2"),
    mrow!(SetMaximumDownloadTime, Allowed::NonFinal, "bits-spec §3.3"),
    mrow!(SetReplyFileName, Allowed::NonFinal, "bits-spec §1.4, §6.3"),
    mrow!(TakeOwnership, Allowed::NonFinal, "bits-spec §1.4"),
    mrow!(
        SetCredentials,
        Allowed::NonFinal,
        "IBackgroundCopyJob2::SetCredentials (Microsoft Learn): BG_E_INVALID_STATE in a final state"
    ),
    mrow!(
        SetCostFlags,
        Allowed::NonFinal,
        "IBackgroundCopyJob5::SetProperty (Microsoft Learn): BG_E_INVALID_STATE in a final state"
    ),
    // GetError fails with error_information_unavailable, not invalid_state.
    mrow!(
        GetError,
        Allowed::Only(&[Error, TransientError]),
        "bits-spec §1.4, §2.2 [API-geterror]"
    ),
    // "Works before or after Complete" (ref: bits-spec §6.3).
    mrow!(
        GetReplyData,
        Allowed::Only(&[Transferred, Acknowledged]),
        "bits-spec §1.4, §6.3"
    ),
    mrow!(GetErrorCount, Allowed::Any, "bits-spec §3.4"),
    mrow!(GetReplyProgress, Allowed::Any, "bits-spec §6.3"),
    mrow!(GetReplyFileName, Allowed::Any, "bits-spec §6.3"),
];

/// The rule for `method`.
pub fn method_rule(method: Method) -> &'static MethodRule {
    METHOD_RULES
        .iter()
        .find(|r| r.method == method)
        .expect("every Method has a row in METHOD_RULES")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_exactly_one_row() {
        use Method::*;
        for m in [
            Resume,
            Suspend,
            Cancel,
            CompleteDownload,
            CompleteUpload,
            AddFile,
            SetDisplayName,
            SetDescription,
            SetPriority,
            SetNotifyFlags,
            SetNotifyInterface,
            SetNotifyCmdLine,
            SetMinimumRetryDelay,
            SetNoProgressTimeout,
            SetMaximumDownloadTime,
            SetReplyFileName,
            GetError,
            GetReplyData,
            GetErrorCount,
            GetReplyProgress,
            GetReplyFileName,
        ] {
            assert_eq!(METHOD_RULES.iter().filter(|r| r.method == m).count(), 1, "{m:?}");
        }
    }

    #[test]
    fn no_row_leaves_a_final_state() {
        for t in TRANSITIONS {
            assert!(t.from.iter().all(|s| !s.is_final()), "{t:?}");
        }
    }

    #[test]
    fn each_trigger_is_deterministic() {
        for a in TRANSITIONS {
            for b in TRANSITIONS {
                if a.trigger == b.trigger && !std::ptr::eq(a, b) {
                    assert!(a.from.iter().all(|s| !b.from.contains(s)), "{a:?} / {b:?}");
                }
            }
        }
    }
}
