//! Plain-Rust values read from BITS (no COM types leak out of this crate).
//!
//! Numbering: ../shared/reference/bits-spec.md §1.1 (BG_JOB_STATE), §2.1
//! (BG_ERROR_CONTEXT), §5.1 (BG_JOB_PRIORITY), §6.1 (BG_JOB_TYPE), §7.1
//! (structures); identical to the windows crate's constants.

use std::fmt;

use crate::hr::Hr;

macro_rules! bits_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $value:expr => $text:expr,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A value this crate does not know (newer service, or a bug).
            Other(u32),
        }

        impl $name {
            /// From the raw enum value the service returned.
            pub const fn from_raw(v: u32) -> Self {
                match v {
                    $($value => $name::$variant,)*
                    other => $name::Other(other),
                }
            }

            /// The raw enum value.
            pub const fn raw(self) -> u32 {
                match self {
                    $($name::$variant => $value,)*
                    $name::Other(v) => v,
                }
            }

            /// The SDK name without its prefix, e.g. `TRANSIENT_ERROR`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(_) => "OTHER",
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self {
                    $name::Other(v) => write!(f, "OTHER({v})"),
                    other => f.write_str(other.as_str()),
                }
            }
        }
    };
}
pub(crate) use bits_enum;

bits_enum! {
    /// `BG_JOB_STATE`.
    JobState {
        Queued = 0 => "QUEUED",
        Connecting = 1 => "CONNECTING",
        Transferring = 2 => "TRANSFERRING",
        Suspended = 3 => "SUSPENDED",
        Error = 4 => "ERROR",
        TransientError = 5 => "TRANSIENT_ERROR",
        Transferred = 6 => "TRANSFERRED",
        Acknowledged = 7 => "ACKNOWLEDGED",
        Cancelled = 8 => "CANCELLED",
    }
}

impl JobState {
    /// ACKNOWLEDGED or CANCELLED: the job is gone from the queue.
    pub const fn is_final(self) -> bool {
        matches!(self, JobState::Acknowledged | JobState::Cancelled)
    }
}

bits_enum! {
    /// `BG_JOB_TYPE`.
    JobType {
        Download = 0 => "DOWNLOAD",
        Upload = 1 => "UPLOAD",
        UploadReply = 2 => "UPLOAD_REPLY",
    }
}

bits_enum! {
    /// `BG_JOB_PRIORITY`.
    JobPriority {
        Foreground = 0 => "FOREGROUND",
        High = 1 => "HIGH",
        Normal = 2 => "NORMAL",
        Low = 3 => "LOW",
    }
}

bits_enum! {
    /// `BG_ERROR_CONTEXT`.
    ErrorContext {
        None = 0 => "NONE",
        Unknown = 1 => "UNKNOWN",
        GeneralQueueManager = 2 => "GENERAL_QUEUE_MANAGER",
        QueueManagerNotification = 3 => "QUEUE_MANAGER_NOTIFICATION",
        LocalFile = 4 => "LOCAL_FILE",
        RemoteFile = 5 => "REMOTE_FILE",
        GeneralTransport = 6 => "GENERAL_TRANSPORT",
        RemoteApplication = 7 => "REMOTE_APPLICATION",
        ServerCertificateCallback = 8 => "SERVER_CERTIFICATE_CALLBACK",
    }
}

/// `BG_NOTIFY_*` flags (bits-spec §4.1).
pub mod notify {
    pub const JOB_TRANSFERRED: u32 = 0x0001;
    pub const JOB_ERROR: u32 = 0x0002;
    pub const DISABLE: u32 = 0x0004;
    pub const JOB_MODIFICATION: u32 = 0x0008;
    pub const FILE_TRANSFERRED: u32 = 0x0010;
    pub const FILE_RANGES_TRANSFERRED: u32 = 0x0020;
}

/// `BG_SIZE_UNKNOWN`: BytesTotal before the size is known.
pub const SIZE_UNKNOWN: u64 = u64::MAX;

/// A BITS job's GUID, printed the registry way (`{XXXXXXXX-...}`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobGuid(pub u128);

impl From<windows_core::GUID> for JobGuid {
    fn from(g: windows_core::GUID) -> Self {
        JobGuid(g.to_u128())
    }
}

impl From<JobGuid> for windows_core::GUID {
    fn from(g: JobGuid) -> Self {
        windows_core::GUID::from_u128(g.0)
    }
}

impl fmt::Display for JobGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{:?}}}", windows_core::GUID::from_u128(self.0))
    }
}

impl fmt::Debug for JobGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `BG_JOB_PROGRESS`. `bytes_total` is [`SIZE_UNKNOWN`] until known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobProgress {
    pub bytes_total: u64,
    pub bytes_transferred: u64,
    pub files_total: u32,
    pub files_transferred: u32,
}

/// `BG_FILE_PROGRESS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileProgress {
    pub bytes_total: u64,
    pub bytes_transferred: u64,
    pub completed: bool,
}

/// `BG_JOB_REPLY_PROGRESS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplyProgress {
    pub bytes_total: u64,
    pub bytes_transferred: u64,
}

/// `BG_JOB_TIMES` as raw FILETIMEs (100 ns ticks since 1601-01-01 UTC; 0 =
/// not set, e.g. TransferCompletionTime before TRANSFERRED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobTimes {
    pub creation: u64,
    pub modification: u64,
    pub transfer_completion: u64,
}

impl JobTimes {
    /// A FILETIME as a `SystemTime` (`None` for 0).
    pub fn to_system_time(filetime: u64) -> Option<std::time::SystemTime> {
        // 1601-01-01 → 1970-01-01 in 100 ns ticks.
        const UNIX_EPOCH_TICKS: u64 = 116_444_736_000_000_000;
        if filetime == 0 {
            return None;
        }
        let since_unix = filetime.checked_sub(UNIX_EPOCH_TICKS)?;
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(since_unix.saturating_mul(100)))
    }
}

/// One file of a job (IBackgroundCopyFile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub remote_name: Option<String>,
    pub local_name: Option<String>,
    pub progress: Option<FileProgress>,
}

/// What `IBackgroundCopyJob::GetError` + `IBackgroundCopyError` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobErrorInfo {
    /// `IBackgroundCopyError::GetError` context.
    pub context: ErrorContext,
    /// `IBackgroundCopyError::GetError` code: the job's error.
    pub code: Hr,
    /// The file the error is about (`GetFile`; `None` if GetFile failed,
    /// e.g. BG_E_FILE_NOT_AVAILABLE for job-level errors).
    pub file: Option<FileInfo>,
    /// HRESULT of `GetFile` (kept for the trace).
    pub get_file_hr: Hr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_keep_unknown_values() {
        for v in 0..9 {
            assert_eq!(JobState::from_raw(v).raw(), v);
            assert_ne!(JobState::from_raw(v), JobState::Other(v));
        }
        assert_eq!(JobState::from_raw(42), JobState::Other(42));
        assert_eq!(JobState::TransientError.to_string(), "TRANSIENT_ERROR");
        assert_eq!(JobState::Other(42).to_string(), "OTHER(42)");
        assert_eq!(ErrorContext::from_raw(5), ErrorContext::RemoteFile);
        assert!(JobState::Cancelled.is_final() && !JobState::Transferred.is_final());
    }

    #[test]
    fn guid_prints_with_braces() {
        let g = JobGuid(0x4991d34b_80a1_4291_83b6_3328366b9097);
        assert_eq!(g.to_string(), "{4991D34B-80A1-4291-83B6-3328366B9097}");
        assert_eq!(JobGuid::from(windows_core::GUID::from(g)), g);
    }

    #[test]
    fn filetimes_convert() {
        assert_eq!(JobTimes::to_system_time(0), None);
        assert_eq!(
            JobTimes::to_system_time(116_444_736_000_000_000),
            Some(std::time::UNIX_EPOCH)
        );
    }
}
