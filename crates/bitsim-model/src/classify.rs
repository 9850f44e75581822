//! Error classification: what a transfer failure means for the job, as a table per flavor.
//!
//! The driver reports *what happened* (an HTTP status in some request, a network
//! failure, a protocol violation); the model decides the HRESULT, the error context and
//! whether the job goes to TRANSIENT_ERROR or ERROR.
//!
//! ref: bits-spec §2.4–§2.6, bits-http §2.1–§2.4.

use crate::types::ErrorContext;
use crate::Hresult;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a failure leaves the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// TRANSIENT_ERROR, retried after the retry delay, counted in the error count.
    Transient,
    /// ERROR: no retry; the app must fix the cause and Resume.
    Fatal,
    /// TRANSIENT_ERROR that waits for a condition to clear (network back, policy window
    /// over) instead of a timed retry; not counted (ref: bits-spec §2.5 rule 2, §3.4).
    WaitForCondition,
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Disposition::Transient => "transient",
            Disposition::Fatal => "fatal",
            Disposition::WaitForCondition => "wait",
        })
    }
}

/// Which request an HTTP status came back on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestPhase {
    /// HEAD or GET of a download file.
    Download,
    /// An upload protocol packet (Create-Session, Fragment, Close-Session).
    Upload,
    /// The server application behind an upload-reply endpoint answered with this status
    /// (context REMOTE_APPLICATION, ref: bits-spec §2.5 rule 6).
    ServerApplication,
    /// The download of the reply of an upload-reply job.
    Reply,
}

/// A connection-level failure (ref: bits-http §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkFailure {
    NameNotResolved,
    ConnectionRefused,
    /// Reset or closed mid-transfer, truncated body.
    ConnectionReset,
    Timeout,
    /// Garbage, malformed framing.
    InvalidResponse,
    RedirectFailed,
    TlsFailure,
}

/// A violation of what BITS requires of the server (ref: bits-http §1.2–§1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolFailure {
    /// HEAD without Content-Length.
    MissingFileSize,
    /// 200 with the whole body for a ranged GET, or a wrong Content-Range.
    InsufficientRangeSupport,
    InvalidServerResponse,
    /// The upload session is unknown to the server; the client starts a new one.
    SessionNotFound,
    /// The upload is bigger than the server accepts.
    UploadTooLarge,
    /// The upload source changed during the transfer.
    LocalFileChanged,
    ProtocolMismatch,
}

/// A failure reading a remote name that is a local, UNC or `file://` path (an SMB
/// source, ref: BG_FILE_INFO "RemoteName": HTTP, HTTPS or SMB; bits-spec §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFailure {
    /// The file does not exist: ERROR_FILE_NOT_FOUND.
    NotFound,
    /// Its directory does not exist: ERROR_PATH_NOT_FOUND.
    PathNotFound,
    /// Another process holds it without sharing: ERROR_SHARING_VIOLATION.
    Busy,
    /// No read access (the simulator also answers this for any path outside the run's
    /// directory, which it never reads): E_ACCESSDENIED.
    AccessDenied,
}

/// What went wrong in a transfer, as the driver observed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferFailure {
    Http {
        status: u16,
        phase: RequestPhase,
    },
    Network(NetworkFailure),
    Protocol(ProtocolFailure),
    /// Reading a local / UNC / file:// source failed.
    Source(SourceFailure),
    /// A pre-classified error (for drivers that observe the real service).
    Classified(Classified),
}

/// The model's verdict on a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Classified {
    pub hresult: Hresult,
    pub context: ErrorContext,
    pub disposition: Disposition,
}

/// One row of an HTTP status table: statuses `lo..=hi` get `disposition`. First match wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRule {
    pub lo: u16,
    pub hi: u16,
    pub disposition: Disposition,
}

const fn rule(lo: u16, hi: u16, disposition: Disposition) -> HttpRule {
    HttpRule { lo, hi, disposition }
}

use Disposition::{Fatal, Transient};

/// BITS: the server-application rule set (the only one Microsoft documents) applied to
/// every request, with 403 fatal anywhere.
/// ref: bits-spec §2.5 rules 5–6; bits-http §2.1–§2.2. Download statuses other than
/// 403 are UNVERIFIED (bits-spec §11 q1).
pub const BITS_HTTP_RULES: &[HttpRule] = &[
    rule(403, 403, Fatal),        // KB-FAIL: 403 in any request → ERROR
    rule(300, 305, Fatal),        // SAE: 3xx transient except 300–305, 307
    rule(307, 307, Fatal),        //
    rule(300, 399, Transient),    //
    rule(408, 409, Transient),    // SAE: 4xx fatal except 408, 409
    rule(400, 499, Fatal),        //
    rule(501, 501, Fatal),        // SAE: 5xx transient except 501, 505
    rule(505, 505, Fatal),        //
    rule(500, 599, Transient),    //
    rule(0, u16::MAX, Transient), // SAE: any other status transient
];

/// DO retries HTTP errors (a 404 fails only "after 30 retry intervals", bits-spec §8.1
/// [MSCODE]) until NoProgressTimeout, except 403, which it reports at once with
/// REMOTE_FILE (ref: bits-spec §2.6). UNVERIFIED beyond 403 and 404.
pub const DO_HTTP_RULES: &[HttpRule] = &[rule(403, 403, Fatal), rule(0, u16::MAX, Transient)];

/// How a flavor reports error contexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextPolicy {
    /// BITS: the context of the failing layer.
    Detailed,
    /// DO: REMOTE_FILE for HTTP 403, NONE for everything else (ref: bits-spec §2.6).
    RemoteFileOnlyFor403,
}

/// The code reported when NoProgressTimeout moves TRANSIENT_ERROR → ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoProgressError {
    /// The last transient error stays the job error (UNVERIFIED, bits-spec §2.3 note, §11 q2).
    KeepLast,
    /// A fixed code, e.g. BG_E_NO_PROGRESS.
    Code(Hresult),
}

/// Looks `status` up in `rules`.
pub fn http_disposition(rules: &[HttpRule], status: u16) -> Disposition {
    rules
        .iter()
        .find(|r| (r.lo..=r.hi).contains(&status))
        .map_or(Transient, |r| r.disposition)
}

/// Classifies a failure under a flavor's tables.
///
/// ```
/// use bitsim_model::{classify, Flavor, ErrorContext, Hresult, Disposition, RequestPhase, TransferFailure};
/// let bits = Flavor::Bits.profile();
/// let c = classify(&bits, TransferFailure::Http { status: 403, phase: RequestPhase::Download });
/// assert_eq!((c.hresult, c.context, c.disposition),
///            (Hresult::http(403), ErrorContext::RemoteFile, Disposition::Fatal));
/// let c = classify(&bits, TransferFailure::Http { status: 503, phase: RequestPhase::Download });
/// assert_eq!(c.disposition, Disposition::Transient);
/// ```
pub fn classify(profile: &crate::Profile, failure: TransferFailure) -> Classified {
    let detailed = match failure {
        TransferFailure::Http { status, phase } => {
            let context = match phase {
                RequestPhase::ServerApplication => ErrorContext::RemoteApplication,
                _ => ErrorContext::RemoteFile, // ref: bits-http §2.3
            };
            Classified {
                hresult: Hresult::http(status),
                context,
                disposition: http_disposition(profile.http_rules, status),
            }
        }
        TransferFailure::Network(n) => {
            // ref: bits-http §2.4; context GENERAL_TRANSPORT is UNVERIFIED.
            let hresult = match n {
                NetworkFailure::NameNotResolved => Hresult::WINHTTP_NAME_NOT_RESOLVED,
                NetworkFailure::ConnectionRefused => Hresult::WINHTTP_CANNOT_CONNECT,
                NetworkFailure::ConnectionReset => Hresult::WINHTTP_CONNECTION_ERROR,
                NetworkFailure::Timeout => Hresult::WINHTTP_TIMEOUT,
                NetworkFailure::InvalidResponse => Hresult::WINHTTP_INVALID_SERVER_RESPONSE,
                NetworkFailure::RedirectFailed => Hresult::WINHTTP_REDIRECT_FAILED,
                NetworkFailure::TlsFailure => Hresult::WINHTTP_SECURE_FAILURE,
            };
            Classified {
                hresult,
                context: ErrorContext::GeneralTransport,
                disposition: Transient,
            }
        }
        // ref: bits-spec §7.3 (SMB sources); Win32 errors as HRESULT_FROM_WIN32 with the
        // remote-file context. Fatal except a sharing violation, which another process
        // ends (UNVERIFIED: a Windows run settles it, docs/decisions.md).
        TransferFailure::Source(s) => {
            let (hresult, disposition) = match s {
                SourceFailure::NotFound => (Hresult::HRESULT_FILE_NOT_FOUND, Fatal),
                SourceFailure::PathNotFound => (Hresult::HRESULT_PATH_NOT_FOUND, Fatal),
                SourceFailure::Busy => (Hresult::HRESULT_SHARING_VIOLATION, Transient),
                SourceFailure::AccessDenied => (Hresult::E_ACCESSDENIED, Fatal),
            };
            Classified {
                hresult,
                context: ErrorContext::RemoteFile,
                disposition,
            }
        }
        TransferFailure::Protocol(p) => {
            let (hresult, context, disposition) = match p {
                // ref: bits-spec §2.5 rule 5 (KB-FAIL)
                ProtocolFailure::MissingFileSize => (Hresult::BG_E_MISSING_FILE_SIZE, ErrorContext::RemoteFile, Fatal),
                ProtocolFailure::InsufficientRangeSupport => (
                    Hresult::BG_E_INSUFFICIENT_RANGE_SUPPORT,
                    ErrorContext::RemoteFile,
                    Fatal,
                ),
                // ref: bits-spec §2.3 (fatal for range jobs; UNVERIFIED otherwise)
                ProtocolFailure::InvalidServerResponse => {
                    (Hresult::BG_E_INVALID_SERVER_RESPONSE, ErrorContext::RemoteFile, Fatal)
                }
                // ref: bits-spec §2.3 (MC-BUP: the client restarts the session)
                ProtocolFailure::SessionNotFound => {
                    (Hresult::BG_E_SESSION_NOT_FOUND, ErrorContext::RemoteFile, Transient)
                }
                // ref: bits-spec §6.2
                ProtocolFailure::UploadTooLarge => (Hresult::BG_E_TOO_LARGE, ErrorContext::RemoteFile, Fatal),
                // ref: bits-spec §2.5 rule 4
                ProtocolFailure::LocalFileChanged => (Hresult::BG_E_LOCAL_FILE_CHANGED, ErrorContext::LocalFile, Fatal),
                // UNVERIFIED (bits-spec §2.3)
                ProtocolFailure::ProtocolMismatch => (
                    Hresult::BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH,
                    ErrorContext::RemoteFile,
                    Fatal,
                ),
            };
            Classified {
                hresult,
                context,
                disposition,
            }
        }
        TransferFailure::Classified(c) => c,
    };
    Classified {
        context: report_context(profile.context_policy, detailed.hresult, detailed.context),
        ..detailed
    }
}

/// Applies the flavor's context reporting policy.
pub fn report_context(policy: ContextPolicy, hresult: Hresult, context: ErrorContext) -> ErrorContext {
    match policy {
        ContextPolicy::Detailed => context,
        ContextPolicy::RemoteFileOnlyFor403 if hresult == Hresult::http(403) => ErrorContext::RemoteFile,
        ContextPolicy::RemoteFileOnlyFor403 => ErrorContext::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Flavor;

    fn http(flavor: Flavor, status: u16, phase: RequestPhase) -> Classified {
        classify(&flavor.profile(), TransferFailure::Http { status, phase })
    }

    #[test]
    fn bits_download_statuses() {
        use Disposition::*;
        let table = [
            (301, Fatal),
            (304, Fatal),
            (306, Transient),
            (307, Fatal),
            (308, Transient),
            (400, Fatal),
            (401, Fatal),
            (403, Fatal),
            (404, Fatal),
            (407, Fatal),
            (408, Transient),
            (409, Transient),
            (410, Fatal),
            (416, Fatal),
            (429, Fatal),
            (500, Transient),
            (501, Fatal),
            (502, Transient),
            (503, Transient),
            (504, Transient),
            (505, Fatal),
            (600, Transient),
        ];
        for (status, want) in table {
            assert_eq!(
                http(Flavor::Bits, status, RequestPhase::Download).disposition,
                want,
                "{status}"
            );
        }
    }

    #[test]
    fn bits_contexts() {
        assert_eq!(
            http(Flavor::Bits, 404, RequestPhase::Download).context,
            ErrorContext::RemoteFile
        );
        assert_eq!(
            http(Flavor::Bits, 500, RequestPhase::ServerApplication).context,
            ErrorContext::RemoteApplication
        );
        let net = classify(
            &Flavor::Bits.profile(),
            TransferFailure::Network(NetworkFailure::ConnectionReset),
        );
        assert_eq!(net.hresult, Hresult(0x8007_2EFE));
        assert_eq!(net.disposition, Disposition::Transient);
    }

    #[test]
    fn do_reports_remote_file_only_for_403() {
        let c = http(Flavor::DeliveryOptimization, 403, RequestPhase::Download);
        assert_eq!(
            (c.context, c.disposition),
            (ErrorContext::RemoteFile, Disposition::Fatal)
        );
        let c = http(Flavor::DeliveryOptimization, 404, RequestPhase::Download);
        assert_eq!(
            (c.hresult, c.context, c.disposition),
            (Hresult::http(404), ErrorContext::None, Disposition::Transient)
        );
        let c = classify(
            &Flavor::DeliveryOptimization.profile(),
            TransferFailure::Protocol(ProtocolFailure::MissingFileSize),
        );
        assert_eq!(c.context, ErrorContext::None);
    }
}
