//! Pure mappings from Delivery Optimization's `IDODownload` view to the BITS
//! model the scenarios speak (bits-spec §8.2): state, error and context. No
//! COM types here, so this module (and its tests) compiles on every target.

use bitsim_model::{ErrorContext, Hresult, JobPriority, JobState};

/// `DODownloadState` raw values (bits-spec §8.2).
pub mod raw_state {
    pub const CREATED: u32 = 0;
    pub const TRANSFERRING: u32 = 1;
    pub const TRANSFERRED: u32 = 2;
    pub const FINALIZED: u32 = 3;
    pub const ABORTED: u32 = 4;
    pub const PAUSED: u32 = 5;
}

/// The BITS state a download's `DO_DOWNLOAD_STATUS` stands for:
/// Created → SUSPENDED, Transferring → TRANSFERRING, Transferred →
/// TRANSFERRED, Finalized → ACKNOWLEDGED, Aborted → CANCELLED; Paused with
/// `Error ≠ 0` → ERROR, Paused with `Error = 0 ∧ ExtendedError ≠ 0` →
/// TRANSIENT_ERROR (bits-spec §8.2 [MSCODE]), other Paused → SUSPENDED.
/// `None` for a state value DO does not define.
pub fn job_state(state: u32, error: u32, extended_error: u32) -> Option<JobState> {
    Some(match state {
        raw_state::CREATED => JobState::Suspended,
        raw_state::TRANSFERRING => JobState::Transferring,
        raw_state::TRANSFERRED => JobState::Transferred,
        raw_state::FINALIZED => JobState::Acknowledged,
        raw_state::ABORTED => JobState::Cancelled,
        raw_state::PAUSED if error != 0 => JobState::Error,
        raw_state::PAUSED if extended_error != 0 => JobState::TransientError,
        raw_state::PAUSED => JobState::Suspended,
        _ => return None,
    })
}

/// DO's error context: REMOTE_FILE for HTTP 403, NONE otherwise (bits-spec §8.1).
pub fn error_context(code: u32) -> ErrorContext {
    if code == Hresult::BG_E_HTTP_ERROR_403.0 {
        ErrorContext::RemoteFile
    } else {
        ErrorContext::None
    }
}

/// What GetError reports for a download: in ERROR the fatal `Error`, in
/// TRANSIENT_ERROR the `ExtendedError`, with its context; in any other state
/// `Err(DO_E_ERROR_INFORMATION_UNAVAILABLE)`.
pub fn job_error(state: u32, error: u32, extended_error: u32) -> Result<(Hresult, ErrorContext), Hresult> {
    let code = match job_state(state, error, extended_error) {
        Some(JobState::Error) => error,
        Some(JobState::TransientError) => extended_error,
        _ => return Err(Hresult::DO_E_ERROR_INFORMATION_UNAVAILABLE),
    };
    Ok((Hresult(code), error_context(code)))
}

/// `ForegroundPriority` for a BG_JOB_PRIORITY value: true only for FOREGROUND
/// (DO treats HIGH, NORMAL and LOW alike, bits-spec §8.1). `None` for a value
/// outside BG_JOB_PRIORITY (the model answers E_NOTIMPL).
pub fn foreground(priority: u32) -> Option<bool> {
    JobPriority::from_value(priority).map(|p| p == JobPriority::Foreground)
}

#[cfg(test)]
mod tests {
    use super::raw_state::*;
    use super::*;

    const E403: u32 = 0x8019_0193;
    const E404: u32 = 0x8019_0194;
    const NO_NET: u32 = 0x80D0_3805;

    #[test]
    fn states_map_to_bits_states() {
        assert_eq!(job_state(CREATED, 0, 0), Some(JobState::Suspended));
        assert_eq!(job_state(TRANSFERRING, 0, 0), Some(JobState::Transferring));
        assert_eq!(job_state(TRANSFERRED, 0, 0), Some(JobState::Transferred));
        assert_eq!(job_state(FINALIZED, 0, 0), Some(JobState::Acknowledged));
        assert_eq!(job_state(ABORTED, 0, 0), Some(JobState::Cancelled));
        assert_eq!(job_state(PAUSED, 0, 0), Some(JobState::Suspended));
        assert_eq!(job_state(PAUSED, E404, 0), Some(JobState::Error));
        // Error wins over ExtendedError: transient ⇔ Paused ∧ Error = 0 ∧ ExtendedError ≠ 0.
        assert_eq!(job_state(PAUSED, E404, NO_NET), Some(JobState::Error));
        assert_eq!(job_state(PAUSED, 0, NO_NET), Some(JobState::TransientError));
        // Errors only count while Paused.
        assert_eq!(job_state(TRANSFERRING, 0, NO_NET), Some(JobState::Transferring));
        assert_eq!(job_state(6, 0, 0), None);
    }

    #[test]
    fn errors_and_contexts() {
        assert_eq!(error_context(E403), ErrorContext::RemoteFile);
        assert_eq!(error_context(E404), ErrorContext::None);
        assert_eq!(
            job_error(PAUSED, E403, 0),
            Ok((Hresult(E403), ErrorContext::RemoteFile))
        );
        assert_eq!(job_error(PAUSED, E404, NO_NET), Ok((Hresult(E404), ErrorContext::None)));
        assert_eq!(job_error(PAUSED, 0, NO_NET), Ok((Hresult(NO_NET), ErrorContext::None)));
        for (s, e, x) in [
            (PAUSED, 0, 0),
            (CREATED, 0, 0),
            (TRANSFERRING, 0, NO_NET),
            (FINALIZED, 0, 0),
        ] {
            assert_eq!(job_error(s, e, x), Err(Hresult::DO_E_ERROR_INFORMATION_UNAVAILABLE));
        }
    }

    #[test]
    fn only_foreground_is_foreground() {
        assert_eq!(foreground(0), Some(true));
        assert_eq!(foreground(1), Some(false));
        assert_eq!(foreground(2), Some(false));
        assert_eq!(foreground(3), Some(false));
        assert_eq!(foreground(4), None);
    }
}
