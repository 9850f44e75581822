//! BITS domain types with their Windows names and numeric values.
//!
//! ref: bits-spec §1.1 (BG_JOB_STATE), §2.1 (BG_ERROR_CONTEXT), §4.1 (BG_NOTIFY_*),
//! §5.1 (BG_JOB_PRIORITY), §6.1 (BG_JOB_TYPE), §7.1 (progress/times structures).

use serde::{Deserialize, Serialize};
use std::fmt;

/// `BG_SIZE_UNKNOWN` = (UINT64)-1 (ref: bits-spec §7.1).
pub const BG_SIZE_UNKNOWN: u64 = u64::MAX;

/// Declares a C-like enum with its BITS names, values, `Display` (the BITS name without
/// prefix) and serde names, from one list.
macro_rules! bits_enum {
    ($(#[$m:meta])* $name:ident, $prefix:literal { $( $(#[$vm:meta])* $variant:ident = $value:expr, $text:literal; )* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(u32)]
        pub enum $name { $( $(#[$vm])* #[serde(rename = $text)] $variant = $value, )* }

        impl $name {
            /// Every value, in numeric order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];
            /// The short name used in traces and scenario files (e.g. `TRANSIENT_ERROR`).
            pub const fn as_str(self) -> &'static str { match self { $( $name::$variant => $text, )* } }
            /// The full Windows constant name.
            pub fn windows_name(self) -> String { format!(concat!($prefix, "{}"), self.as_str()) }
            /// The numeric value Windows uses.
            pub const fn value(self) -> u32 { self as u32 }
            /// From the numeric value.
            pub fn from_value(v: u32) -> Option<Self> { Self::ALL.iter().copied().find(|x| x.value() == v) }
            /// From the short name (`QUEUED`) or the full Windows name (`BG_JOB_STATE_QUEUED`).
            pub fn parse(s: &str) -> Option<Self> {
                let s = s.strip_prefix($prefix).unwrap_or(s);
                Self::ALL.iter().copied().find(|x| x.as_str().eq_ignore_ascii_case(s))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

bits_enum! {
    /// `BG_JOB_STATE` (ref: bits-spec §1.1).
    JobState, "BG_JOB_STATE_" {
        Queued = 0, "QUEUED";
        Connecting = 1, "CONNECTING";
        Transferring = 2, "TRANSFERRING";
        Suspended = 3, "SUSPENDED";
        Error = 4, "ERROR";
        TransientError = 5, "TRANSIENT_ERROR";
        Transferred = 6, "TRANSFERRED";
        Acknowledged = 7, "ACKNOWLEDGED";
        Cancelled = 8, "CANCELLED";
    }
}

impl JobState {
    /// ACKNOWLEDGED and CANCELLED: never left, not enumerated (ref: bits-spec §1.1).
    pub const fn is_final(self) -> bool {
        matches!(self, JobState::Acknowledged | JobState::Cancelled)
    }
    /// CONNECTING and TRANSFERRING: the job owns a transfer.
    pub const fn is_active(self) -> bool {
        matches!(self, JobState::Connecting | JobState::Transferring)
    }
}

bits_enum! {
    /// `BG_JOB_TYPE` (ref: bits-spec §6.1).
    JobType, "BG_JOB_TYPE_" {
        Download = 0, "DOWNLOAD";
        Upload = 1, "UPLOAD";
        UploadReply = 2, "UPLOAD_REPLY";
    }
}

impl JobType {
    /// UPLOAD and UPLOAD_REPLY.
    pub const fn is_upload(self) -> bool {
        !matches!(self, JobType::Download)
    }
}

bits_enum! {
    /// `BG_JOB_PRIORITY` (ref: bits-spec §5.1).
    JobPriority, "BG_JOB_PRIORITY_" {
        Foreground = 0, "FOREGROUND";
        High = 1, "HIGH";
        Normal = 2, "NORMAL";
        Low = 3, "LOW";
    }
}

bits_enum! {
    /// `BG_ERROR_CONTEXT` (ref: bits-spec §2.1).
    ErrorContext, "BG_ERROR_CONTEXT_" {
        None = 0, "NONE";
        Unknown = 1, "UNKNOWN";
        GeneralQueueManager = 2, "GENERAL_QUEUE_MANAGER";
        QueueManagerNotification = 3, "QUEUE_MANAGER_NOTIFICATION";
        LocalFile = 4, "LOCAL_FILE";
        RemoteFile = 5, "REMOTE_FILE";
        GeneralTransport = 6, "GENERAL_TRANSPORT";
        RemoteApplication = 7, "REMOTE_APPLICATION";
        ServerCertificateCallback = 8, "SERVER_CERTIFICATE_CALLBACK";
    }
}

/// `BG_NOTIFY_*` flags (ref: bits-spec §4.1). Default after CreateJob is 0x3.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NotifyFlags(pub u32);

impl NotifyFlags {
    pub const JOB_TRANSFERRED: NotifyFlags = NotifyFlags(0x0001);
    pub const JOB_ERROR: NotifyFlags = NotifyFlags(0x0002);
    pub const DISABLE: NotifyFlags = NotifyFlags(0x0004);
    pub const JOB_MODIFICATION: NotifyFlags = NotifyFlags(0x0008);
    pub const FILE_TRANSFERRED: NotifyFlags = NotifyFlags(0x0010);
    pub const FILE_RANGES_TRANSFERRED: NotifyFlags = NotifyFlags(0x0020);
    /// Every defined bit.
    pub const ALL_BITS: u32 = 0x3F;
    /// `BG_NOTIFY_JOB_TRANSFERRED | BG_NOTIFY_JOB_ERROR` (ref: bits-spec §1.2, §4.1).
    pub const DEFAULT: NotifyFlags = NotifyFlags(0x0003);
    const NAMES: [(&'static str, u32); 6] = [
        ("JOB_TRANSFERRED", 0x1),
        ("JOB_ERROR", 0x2),
        ("DISABLE", 0x4),
        ("JOB_MODIFICATION", 0x8),
        ("FILE_TRANSFERRED", 0x10),
        ("FILE_RANGES_TRANSFERRED", 0x20),
    ];

    /// Whether notifications of `kind` are wanted. DISABLE overrides everything.
    pub const fn wants(self, kind: NotifyFlags) -> bool {
        self.0 & NotifyFlags::DISABLE.0 == 0 && self.0 & kind.0 != 0
    }

    /// Parses `JOB_TRANSFERRED|JOB_ERROR`, `BG_NOTIFY_DISABLE`, `0x3` or `3`.
    pub fn parse(text: &str) -> Option<NotifyFlags> {
        let text = text.trim();
        if let Some(hex) = text.strip_prefix("0x") {
            return u32::from_str_radix(hex, 16).ok().map(NotifyFlags);
        }
        if let Ok(v) = text.parse::<u32>() {
            return Some(NotifyFlags(v));
        }
        let mut bits = 0;
        for part in text.split('|') {
            let part = part.trim();
            let part = part.strip_prefix("BG_NOTIFY_").unwrap_or(part);
            bits |= Self::NAMES.iter().find(|(n, _)| *n == part)?.1;
        }
        Some(NotifyFlags(bits))
    }
}

impl fmt::Display for NotifyFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:X}", self.0)
    }
}

impl fmt::Debug for NotifyFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `BG_JOB_PROGRESS` (ref: bits-spec §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobProgress {
    /// Sum over files; `BG_SIZE_UNKNOWN` while any file's size is unknown; 0 for an empty job.
    pub bytes_total: u64,
    pub bytes_transferred: u64,
    pub files_total: u32,
    pub files_transferred: u32,
}

/// `BG_FILE_PROGRESS` (ref: bits-spec §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileProgress {
    pub bytes_total: u64,
    pub bytes_transferred: u64,
    /// Download: TRUE once Complete made the file visible. Upload: TRUE when uploaded.
    pub completed: bool,
}

/// `BG_JOB_REPLY_PROGRESS` (ref: bits-spec §6.3): `bytes_total` is `BG_SIZE_UNKNOWN`
/// until the reply download starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyProgress {
    pub bytes_total: u64,
    pub bytes_transferred: u64,
}

/// `BG_JOB_TIMES` in virtual time (ref: bits-spec §7.1). `transfer_completion` is
/// `None` until the job reaches TRANSFERRED (the Windows value before that is
/// UNVERIFIED, probably zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTimes {
    pub creation: Time,
    pub modification: Time,
    pub transfer_completion: Option<Time>,
}

/// A point in virtual time, in milliseconds since the run started. The model never
/// reads a clock: every input carries the caller's `Time`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Time(pub u64);

impl Time {
    pub const ZERO: Time = Time(0);
    pub const fn from_secs(s: u64) -> Time {
        Time(s * 1000)
    }
    pub const fn from_millis(ms: u64) -> Time {
        Time(ms)
    }
    pub const fn as_millis(self) -> u64 {
        self.0
    }
    /// `self + d`, saturating.
    pub const fn plus(self, d: Span) -> Time {
        Time(self.0.saturating_add(d.0))
    }
    /// `self - earlier`, saturating at zero.
    pub const fn since(self, earlier: Time) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }
}

impl Time {
    /// The time as trace lines start, right-aligned in 12 columns: what
    /// `format!("{:>12}", t.to_string())` gives, without the intermediate string.
    pub fn padded(self) -> PaddedTime {
        PaddedTime(self)
    }
}

/// [`Time::padded`].
#[derive(Debug, Clone, Copy)]
pub struct PaddedTime(Time);

impl fmt::Display for PaddedTime {
    /// `secs.mmms`, right-aligned in 12 columns. Written by hand into a buffer:
    /// every trace line starts with one (a tenth of a generated run's time went
    /// to `write!` here).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 .0;
        let mut buf = [b' '; 32]; // u64::MAX ms is 17 digits of seconds + `.mmms`
        let mut i = buf.len() - 1;
        buf[i] = b's';
        let mut frac = ms % 1000;
        for _ in 0..3 {
            i -= 1;
            buf[i] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        i -= 1;
        buf[i] = b'.';
        let mut secs = ms / 1000;
        loop {
            i -= 1;
            buf[i] = b'0' + (secs % 10) as u8;
            secs /= 10;
            if secs == 0 {
                break;
            }
        }
        let start = i.min(buf.len() - 12);
        f.write_str(std::str::from_utf8(&buf[start..]).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Display for Time {
    /// Seconds with millisecond precision, as traces print it: `60.004s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A length of virtual time in milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Span(pub u64);

impl Span {
    pub const ZERO: Span = Span(0);
    pub const fn from_secs(s: u64) -> Span {
        Span(s.saturating_mul(1000))
    }
    pub const fn from_millis(ms: u64) -> Span {
        Span(ms)
    }
    pub const fn from_days(d: u64) -> Span {
        Span::from_secs(d * 86_400)
    }
    pub const fn as_millis(self) -> u64 {
        self.0
    }
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Time(self.0), f)
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A job, numbered in creation order (`j1`, `j2`, …) so traces hold no GUIDs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u32);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "j{}", self.0)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A user (job owner / callback context), registered with [`crate::Service::add_user`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub u32);

/// Who a job's owner is, as far as BITS cares (ref: "Users and Network Connections",
/// "Service Accounts and BITS", "Creating a Job" on Microsoft Learn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    /// An ordinary user with an interactive logon.
    #[default]
    InteractiveUser,
    /// An administrator with an interactive logon: exempt from the job and file limits.
    Administrator,
    /// The service accounts: always logged on, exempt from the limits, never a
    /// notify command line.
    LocalSystem,
    LocalService,
    NetworkService,
    /// An ordinary user without an interactive logon (RunAs, a scheduled task, a
    /// WinRM session): BITS does not see them logged on.
    NonInteractiveUser,
}

impl OwnerKind {
    pub const ALL: [OwnerKind; 6] = [
        OwnerKind::InteractiveUser,
        OwnerKind::Administrator,
        OwnerKind::LocalSystem,
        OwnerKind::LocalService,
        OwnerKind::NetworkService,
        OwnerKind::NonInteractiveUser,
    ];

    /// The snake_case name used in scenario files.
    pub const fn as_str(self) -> &'static str {
        match self {
            OwnerKind::InteractiveUser => "interactive_user",
            OwnerKind::Administrator => "administrator",
            OwnerKind::LocalSystem => "local_system",
            OwnerKind::LocalService => "local_service",
            OwnerKind::NetworkService => "network_service",
            OwnerKind::NonInteractiveUser => "non_interactive_user",
        }
    }

    pub fn parse(s: &str) -> Option<OwnerKind> {
        Self::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(s))
    }

    /// LocalSystem, LocalService, NetworkService: "always logged on" (ref: Users and
    /// Network Connections).
    pub const fn is_service_account(self) -> bool {
        matches!(
            self,
            OwnerKind::LocalSystem | OwnerKind::LocalService | OwnerKind::NetworkService
        )
    }
}

/// An application callback object, identified by the driver that implements it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Callback {
    pub id: u32,
    /// Implements `IBackgroundCopyCallback2` (needed for FileTransferred, ref: bits-spec §4.3).
    pub callback2: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_times_are_right_aligned_in_twelve_columns() {
        for ms in [0, 7, 1_000, 60_004, 86_400_000, 1_234_567_890, u64::MAX] {
            let plain = format!("{}.{:03}s", ms / 1000, ms % 1000);
            assert_eq!(Time(ms).padded().to_string(), format!("{plain:>12}"), "{ms} ms");
        }
        assert_eq!(Time(60_004).padded().to_string(), "     60.004s");
    }

    #[test]
    fn windows_values() {
        assert_eq!(JobState::Cancelled.value(), 8);
        assert_eq!(JobState::TransientError.windows_name(), "BG_JOB_STATE_TRANSIENT_ERROR");
        assert_eq!(ErrorContext::RemoteApplication.value(), 7);
        assert_eq!(JobPriority::Low.value(), 3);
        assert_eq!(JobType::UploadReply.value(), 2);
        assert_eq!(JobState::ALL.len(), 9);
        assert_eq!(ErrorContext::ALL.len(), 9);
    }

    #[test]
    fn parse_short_and_long_names() {
        assert_eq!(JobState::parse("BG_JOB_STATE_ERROR"), Some(JobState::Error));
        assert_eq!(JobState::parse("transient_error"), Some(JobState::TransientError));
        assert_eq!(JobState::parse("nope"), None);
    }

    #[test]
    fn notify_flags() {
        assert_eq!(
            NotifyFlags::parse("JOB_TRANSFERRED|JOB_ERROR"),
            Some(NotifyFlags::DEFAULT)
        );
        assert_eq!(NotifyFlags::parse("0x1F"), Some(NotifyFlags(0x1F)));
        assert!(!NotifyFlags(0x7).wants(NotifyFlags::JOB_ERROR));
        assert!(NotifyFlags(0x3).wants(NotifyFlags::JOB_ERROR));
    }

    #[test]
    fn time_prints_seconds() {
        assert_eq!(Time(60_004).to_string(), "60.004s");
        assert_eq!(Time(5).to_string(), "0.005s");
    }
}

#[cfg(test)]
mod padded_tests {
    use super::Time;

    #[test]
    fn padded_time_is_the_right_aligned_display() {
        for t in [
            0u64,
            1,
            999,
            1_000,
            60_004,
            9_999_999,
            10_000_000,
            99_999_999_999,
            123_456_789_012_345,
            u64::MAX,
        ] {
            assert_eq!(
                Time(t).padded().to_string(),
                format!("{:>12}", Time(t).to_string()),
                "{t}"
            );
        }
    }
}
