//! Flavors are data: every difference between BITS and Delivery Optimization (and any
//! Windows build's quirk) is a field of [`Profile`], never an `if` in the state machine.
//!
//! ref: bits-spec §8.1 (DO differences), §9 (limits), §2.5 / bits-http §2.2 (classification).

use crate::classify::{ContextPolicy, HttpRule, NoProgressError, BITS_HTTP_RULES, DO_HTTP_RULES};
use crate::rules::Method;
use crate::types::{JobPriority, JobType, Span};
use crate::Hresult;
use serde::{Deserialize, Serialize};

/// Which service the model imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Flavor {
    /// Windows BITS (qmgr).
    #[serde(rename = "bits")]
    Bits,
    /// Delivery Optimization's BITS-compatible API (dosvc).
    #[serde(rename = "do")]
    DeliveryOptimization,
}

impl Flavor {
    pub const ALL: [Flavor; 2] = [Flavor::Bits, Flavor::DeliveryOptimization];

    /// The short name used on the command line and in scenario files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Flavor::Bits => "bits",
            Flavor::DeliveryOptimization => "do",
        }
    }

    pub fn parse(s: &str) -> Option<Flavor> {
        Self::ALL.into_iter().find(|f| f.as_str().eq_ignore_ascii_case(s))
    }

    /// The behaviour profile of this flavor.
    pub fn profile(self) -> Profile {
        match self {
            Flavor::Bits => Profile::bits(),
            Flavor::DeliveryOptimization => Profile::delivery_optimization(),
        }
    }
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HRESULTs a flavor returns for API-contract failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codes {
    pub invalid_state: Hresult,
    pub empty: Hresult,
    pub not_found: Hresult,
    pub error_information_unavailable: Hresult,
    pub file_not_available: Hresult,
    /// Returned by methods this flavor does not implement.
    pub not_implemented: Hresult,
    /// The job error while the network is gone.
    pub network_disconnected: Hresult,
    /// The job error while its cost flags exclude the network (ref: policy.rs).
    pub blocked_by_cost: Hresult,
}

/// How callback return values are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuccessRule {
    /// Only S_OK stops the re-delivery ("any other return", ref: bits-spec §4.3).
    ExactlySOk,
    /// Any SUCCEEDED(hr) stops it ("if negative", FileTransferred, ref: bits-spec §4.3).
    AnySuccess,
}

impl SuccessRule {
    pub fn accepts(self, hr: Hresult) -> bool {
        match self {
            SuccessRule::ExactlySOk => hr == Hresult::S_OK,
            SuccessRule::AnySuccess => hr.is_success(),
        }
    }
}

/// Which callback return values hand a JobTransferred / JobError event to the notify
/// command line instead of a later re-delivery to the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdLineFallback {
    /// Only a failure code (FAILED(hr), e.g. E_FAIL) runs the command line; a success
    /// code other than S_OK (S_FALSE) does not ("Registering to Execute a Program":
    /// "BITS will not execute the program if … the notification method … returns a
    /// success code").
    OnFailureCode,
    /// Every return the re-delivery rule does not accept runs the command line.
    OnAnyNotAccepted,
}

impl CmdLineFallback {
    /// Whether the callback's `hr` (already not accepted) runs the command line.
    pub fn runs_for(self, hr: Hresult) -> bool {
        match self {
            CmdLineFallback::OnFailureCode => hr.is_failure(),
            CmdLineFallback::OnAnyNotAccepted => true,
        }
    }
}

/// How the retry delay after a transient error is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDelay {
    /// The job's MinimumRetryDelay (ref: bits-spec §3.1).
    JobSetting,
    /// A service-internal delay, ignoring the job setting (DO, ref: bits-spec §8.1).
    Fixed(Span),
}

/// Numeric limits (ref: bits-spec §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_jobs_per_user: usize,
    pub max_jobs_per_machine: usize,
    pub max_files_per_job: usize,
    pub display_name_chars: usize,
    pub description_chars: usize,
    pub remote_url_chars: usize,
    /// MAX_PATH, for local names, the reply file name and the command-line program.
    pub max_path: usize,
    pub cmdline_parameter_chars: usize,
    /// GetReplyData's buffer limit: 1 MB.
    pub reply_data_bytes: u64,
    /// MinimumRetryDelay floor: smaller values are raised to it.
    pub min_retry_delay_floor: Span,
}

/// Every behaviour difference between flavors, as data.
#[derive(Debug, Clone)]
pub struct Profile {
    pub flavor: Flavor,
    /// Job types CreateJob accepts; others get `codes.not_implemented`
    /// (DO: download only; the exact code is UNVERIFIED, ref: bits-spec §8.1).
    pub job_types: &'static [JobType],
    /// Whether CONNECTING is ever reported (DO: "not supported", ref: bits-spec §8.1).
    pub reports_connecting: bool,
    /// Scheduling class per priority, lower runs first. DO treats HIGH/NORMAL/LOW alike.
    pub priority_class: [u8; 4],
    /// How many background (non-FOREGROUND) jobs transfer at once. BITS: one, alongside
    /// every foreground job (ref: bits-spec §5.2). DO: UNVERIFIED, modelled as unbounded.
    pub max_active_background: usize,
    /// Round-robin slice for same-priority background jobs (UNVERIFIED, ref: bits-spec §5.2,
    /// §11 q11). `None`: no slicing.
    pub time_slice: Option<Span>,
    pub http_rules: &'static [HttpRule],
    pub context_policy: ContextPolicy,
    pub codes: Codes,
    pub default_min_retry_delay: Span,
    pub retry_delay: RetryDelay,
    /// Default NoProgressTimeout for FOREGROUND jobs and for background jobs.
    pub default_no_progress_timeout: (Span, Span),
    pub no_progress_error: NoProgressError,
    pub default_max_download_time: Span,
    /// JobInactivityTimeout (BITS 90 days; DO does not support it, ref: bits-spec §3.5, §8.1).
    pub inactivity_timeout: Option<Span>,
    /// DO cancels jobs neither completed nor cancelled after 30 days (ref: bits-spec §8.1).
    pub retention: Option<Span>,
    /// IBackgroundCopyJob2::SetNotifyCmdLine exists (DO: no, ref: bits-spec §8.1).
    pub supports_cmdline: bool,
    /// Upload / reply methods exist (DO: no).
    pub supports_reply: bool,
    /// Whether DISABLE suppresses notifications (DO: conflicting docs, UNVERIFIED).
    pub honours_disable: bool,
    /// JobTransferred / JobError re-delivery stops on this (ref: bits-spec §4.3, §11 q9).
    pub job_callback_success: SuccessRule,
    /// FileTransferred re-delivery stops on this.
    pub file_callback_success: SuccessRule,
    /// Which unaccepted callback returns run the notify command line (ref:
    /// "Registering to Execute a Program": success codes never do; E_FAIL does).
    /// A success code other than S_OK is re-delivered to the callback instead
    /// (ref: IBackgroundCopyCallback::JobError "continues to call … until S_OK").
    pub cmdline_fallback: CmdLineFallback,
    /// The "arbitrary interval" between callback re-deliveries, drawn from this range
    /// with the seeded RNG (UNVERIFIED, ref: bits-spec §4.3, §11 q9).
    pub callback_retry_interval: (Span, Span),
    /// At most this many notifications in flight per user (ref: bits-spec §4.3).
    pub max_notifications_in_flight_per_user: usize,
    /// Whether the NoProgressTimeout clock keeps running while the network is gone
    /// (UNVERIFIED, ref: bits-spec §3.2, §11 q3).
    pub no_progress_runs_while_disconnected: bool,
    pub limits: Limits,
    /// What AddFile returns when the job's owner is an ordinary user without an
    /// interactive logon (RunAs, scheduled task, WinRM): HRESULT_FROM_WIN32(
    /// ERROR_NOT_LOGGED_ON) as widely reported (DFIR-ORC #34: "Failed to add file";
    /// the job itself is created). `None`: AddFile succeeds and the job waits.
    pub not_logged_on_add_file: Option<Hresult>,
    /// Whether a notify command line runs for a job owned by a service account
    /// (ref: SetNotifyCmdLine: "If the BITS job is in a service account context … no
    /// form of command line callback will be executed").
    pub service_accounts_run_cmdline: bool,
    /// BITS_JOB_PROPERTY_ID_COST_FLAGS of a new job (UNVERIFIED: Windows takes it from
    /// the "default download behavior on costed networks" policy; STANDARD assumed).
    pub default_cost_flags: u32,
    /// Battery saver blocks background jobs only (UNVERIFIED).
    pub battery_saver_spares_foreground: bool,
    /// How long Cancel keeps re-sending Cancel-Session to an unreachable server: 24 h,
    /// or the job's NoProgressTimeout when shorter (ref: IBackgroundCopyJob::Cancel).
    pub cancel_session_retry_for: Span,
    /// The interval between Cancel-Session tries ("periodically", UNVERIFIED);
    /// `None`: the job's MinimumRetryDelay.
    pub cancel_session_retry_every: Option<Span>,
    /// Methods this flavor does not implement; they return `codes.not_implemented`
    /// (DO: undocumented members, UNVERIFIED code, ref: bits-spec §8.1).
    pub unsupported: &'static [Method],
}

const BITS_LIMITS: Limits = Limits {
    max_jobs_per_user: 60,
    max_jobs_per_machine: 300,
    max_files_per_job: 200,
    display_name_chars: 256,
    description_chars: 1024,
    remote_url_chars: 2200,
    max_path: 260,
    cmdline_parameter_chars: 4000,
    reply_data_bytes: 1024 * 1024,
    min_retry_delay_floor: Span::from_secs(5),
};

impl Profile {
    /// Windows BITS as documented (ref: bits-spec §1–§5, §9).
    pub fn bits() -> Profile {
        Profile {
            flavor: Flavor::Bits,
            job_types: &[JobType::Download, JobType::Upload, JobType::UploadReply],
            reports_connecting: true,
            priority_class: [0, 1, 2, 3],
            max_active_background: 1,
            time_slice: Some(Span::from_secs(300)),
            http_rules: BITS_HTTP_RULES,
            context_policy: ContextPolicy::Detailed,
            codes: Codes {
                invalid_state: Hresult::BG_E_INVALID_STATE,
                empty: Hresult::BG_E_EMPTY,
                not_found: Hresult::BG_E_NOT_FOUND,
                error_information_unavailable: Hresult::BG_E_ERROR_INFORMATION_UNAVAILABLE,
                file_not_available: Hresult::BG_E_FILE_NOT_AVAILABLE,
                not_implemented: Hresult::E_NOTIMPL,
                network_disconnected: Hresult::BG_E_NETWORK_DISCONNECTED,
                blocked_by_cost: Hresult::BG_E_BLOCKED_BY_COST_TRANSFER_POLICY,
            },
            default_min_retry_delay: Span::from_secs(600),
            retry_delay: RetryDelay::JobSetting,
            default_no_progress_timeout: (Span::from_secs(1_209_600), Span::from_secs(1_209_600)),
            no_progress_error: NoProgressError::KeepLast,
            default_max_download_time: Span::from_secs(7_776_000),
            inactivity_timeout: Some(Span::from_days(90)),
            retention: None,
            supports_cmdline: true,
            supports_reply: true,
            honours_disable: true,
            job_callback_success: SuccessRule::ExactlySOk,
            file_callback_success: SuccessRule::AnySuccess,
            cmdline_fallback: CmdLineFallback::OnFailureCode,
            callback_retry_interval: (Span::from_secs(30), Span::from_secs(90)),
            max_notifications_in_flight_per_user: 4,
            no_progress_runs_while_disconnected: true,
            limits: BITS_LIMITS,
            not_logged_on_add_file: Some(Hresult::HRESULT_NOT_LOGGED_ON),
            default_cost_flags: crate::policy::transfer_policy::STANDARD,
            battery_saver_spares_foreground: true,
            service_accounts_run_cmdline: false,
            cancel_session_retry_for: Span::from_secs(86_400),
            cancel_session_retry_every: None,
            unsupported: &[],
        }
    }

    /// Delivery Optimization's BITS-compatible API (ref: bits-spec §8.1).
    pub fn delivery_optimization() -> Profile {
        Profile {
            flavor: Flavor::DeliveryOptimization,
            job_types: &[JobType::Download],
            reports_connecting: false,
            priority_class: [0, 1, 1, 1],
            max_active_background: usize::MAX,
            time_slice: None,
            http_rules: DO_HTTP_RULES,
            context_policy: ContextPolicy::RemoteFileOnlyFor403,
            codes: Codes {
                invalid_state: Hresult::DO_E_INVALID_STATE,
                empty: Hresult::DO_E_JOB_EMPTY,
                not_found: Hresult::DO_E_JOB_NOT_FOUND,
                error_information_unavailable: Hresult::DO_E_ERROR_INFORMATION_UNAVAILABLE,
                file_not_available: Hresult::DO_E_FILE_NOT_AVAILABLE,
                not_implemented: Hresult::E_NOTIMPL,
                network_disconnected: Hresult::DO_E_BLOCKED_BY_NO_NETWORK,
                // ref: Delivery Optimization return values: DO_E_BLOCKED_BY_COST_TRANSFER_POLICY
                blocked_by_cost: Hresult::DO_E_BLOCKED_BY_COST_TRANSFER_POLICY,
            },
            default_min_retry_delay: Span::from_secs(600),
            // "retried per DO's internal policy (no MinimumRetryDelay)": interval UNVERIFIED.
            retry_delay: RetryDelay::Fixed(Span::from_secs(60)),
            default_no_progress_timeout: (Span::from_secs(3_600), Span::from_secs(86_400)),
            // ref: Delivery Optimization return values: DO_E_DOWNLOAD_NO_PROGRESS "Download of a
            // file saw no progress within the defined period" (what Windows Update reports);
            // do-client's tests end a 404 after a bounded number of retry intervals.
            no_progress_error: NoProgressError::Code(Hresult::DO_E_DOWNLOAD_NO_PROGRESS),
            default_max_download_time: Span::from_secs(7_776_000),
            inactivity_timeout: None,
            retention: Some(Span::from_days(30)),
            supports_cmdline: false,
            supports_reply: false,
            honours_disable: true,
            job_callback_success: SuccessRule::ExactlySOk,
            file_callback_success: SuccessRule::AnySuccess,
            cmdline_fallback: CmdLineFallback::OnFailureCode,
            callback_retry_interval: (Span::from_secs(30), Span::from_secs(90)),
            max_notifications_in_flight_per_user: 4,
            no_progress_runs_while_disconnected: true,
            limits: BITS_LIMITS,
            // DO has no uploads (ref: bits-spec §8.1): never used.
            not_logged_on_add_file: Some(Hresult::HRESULT_NOT_LOGGED_ON),
            default_cost_flags: crate::policy::transfer_policy::STANDARD,
            battery_saver_spares_foreground: true,
            service_accounts_run_cmdline: false,
            cancel_session_retry_for: Span::from_secs(86_400),
            cancel_session_retry_every: None,
            unsupported: &[
                Method::SetDisplayName,
                Method::SetDescription,
                Method::SetMinimumRetryDelay,
                Method::SetMaximumDownloadTime,
                Method::SetNotifyCmdLine,
                Method::SetReplyFileName,
                Method::TakeOwnership,
                Method::GetErrorCount,
                Method::GetReplyData,
                Method::GetReplyProgress,
                Method::GetReplyFileName,
            ],
        }
    }

    /// The scheduling class of a priority (lower runs first).
    pub fn class_of(&self, p: JobPriority) -> u8 {
        self.priority_class[p.value() as usize]
    }

    pub fn default_no_progress_timeout_for(&self, p: JobPriority) -> Span {
        if p == JobPriority::Foreground {
            self.default_no_progress_timeout.0
        } else {
            self.default_no_progress_timeout.1
        }
    }
}

/// One settable [`Profile`] field: its name, what it takes, and how to set it.
struct FieldSetter {
    name: &'static str,
    takes: &'static str,
    set: fn(&mut Profile, &str) -> Result<(), String>,
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!("`{v}` is not true or false")),
    }
}

fn parse_count(v: &str) -> Result<usize, String> {
    match v {
        "unbounded" => Ok(usize::MAX),
        _ => v.parse().map_err(|_| format!("`{v}` is not a count")),
    }
}

/// Seconds, or a number with a unit (`500ms`, `30s`, `10m`, `2h`, `14d`).
fn parse_span(v: &str) -> Result<Span, String> {
    let bad = || format!("`{v}` is not a duration (e.g. 30, 30s, 500ms, 10m, 2h, 14d)");
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Span::from_secs(secs));
    }
    let split = v.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: u64 = v[..split].parse().map_err(|_| bad())?;
    let ms = match &v[split..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms).map(Span).ok_or_else(bad)
}

fn parse_optional_span(v: &str) -> Result<Option<Span>, String> {
    if v == "none" {
        Ok(None)
    } else {
        parse_span(v).map(Some)
    }
}

fn parse_hresult(v: &str) -> Result<Hresult, String> {
    Hresult::parse(v).ok_or_else(|| format!("`{v}` is not an HRESULT"))
}

fn parse_success_rule(v: &str) -> Result<SuccessRule, String> {
    match v {
        "exactly_s_ok" => Ok(SuccessRule::ExactlySOk),
        "any_success" => Ok(SuccessRule::AnySuccess),
        _ => Err(format!("`{v}` is not exactly_s_ok or any_success")),
    }
}

/// The fields `--profile-field NAME=VALUE` can change: the UNVERIFIED choices and the
/// documented numbers a reader may want to vary (ref: bits-spec §11 open questions).
const FIELD_SETTERS: &[FieldSetter] = &[
    FieldSetter {
        name: "reports_connecting",
        takes: "true|false",
        set: |p, v| {
            p.reports_connecting = parse_bool(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "max_active_background",
        takes: "a count or `unbounded`",
        set: |p, v| {
            p.max_active_background = parse_count(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "time_slice",
        takes: "a duration or `none`",
        set: |p, v| {
            p.time_slice = parse_optional_span(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "context_policy",
        takes: "detailed|remote_file_only_for_403",
        set: |p, v| {
            p.context_policy = match v {
                "detailed" => ContextPolicy::Detailed,
                "remote_file_only_for_403" => ContextPolicy::RemoteFileOnlyFor403,
                _ => return Err(format!("`{v}` is not detailed or remote_file_only_for_403")),
            };
            Ok(())
        },
    },
    FieldSetter {
        name: "default_min_retry_delay",
        takes: "a duration",
        set: |p, v| {
            p.default_min_retry_delay = parse_span(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "retry_delay",
        takes: "`job` (MinimumRetryDelay) or a fixed duration",
        set: |p, v| {
            p.retry_delay = match v {
                "job" => RetryDelay::JobSetting,
                _ => RetryDelay::Fixed(parse_span(v)?),
            };
            Ok(())
        },
    },
    FieldSetter {
        name: "default_no_progress_timeout_foreground",
        takes: "a duration",
        set: |p, v| {
            p.default_no_progress_timeout.0 = parse_span(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "default_no_progress_timeout_background",
        takes: "a duration",
        set: |p, v| {
            p.default_no_progress_timeout.1 = parse_span(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "no_progress_error",
        takes: "`keep_last` or an HRESULT",
        set: |p, v| {
            p.no_progress_error = match v {
                "keep_last" => NoProgressError::KeepLast,
                _ => NoProgressError::Code(Hresult::parse(v).ok_or_else(|| format!("`{v}` is not an HRESULT"))?),
            };
            Ok(())
        },
    },
    FieldSetter {
        name: "default_max_download_time",
        takes: "a duration",
        set: |p, v| {
            p.default_max_download_time = parse_span(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "inactivity_timeout",
        takes: "a duration or `none`",
        set: |p, v| {
            p.inactivity_timeout = parse_optional_span(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "retention",
        takes: "a duration or `none`",
        set: |p, v| {
            p.retention = parse_optional_span(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "supports_cmdline",
        takes: "true|false",
        set: |p, v| {
            p.supports_cmdline = parse_bool(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "supports_reply",
        takes: "true|false",
        set: |p, v| {
            p.supports_reply = parse_bool(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "honours_disable",
        takes: "true|false",
        set: |p, v| {
            p.honours_disable = parse_bool(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "job_callback_success",
        takes: "exactly_s_ok|any_success",
        set: |p, v| {
            p.job_callback_success = parse_success_rule(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "file_callback_success",
        takes: "exactly_s_ok|any_success",
        set: |p, v| {
            p.file_callback_success = parse_success_rule(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "callback_retry_interval_min",
        takes: "a duration",
        set: |p, v| {
            p.callback_retry_interval.0 = parse_span(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "callback_retry_interval_max",
        takes: "a duration",
        set: |p, v| {
            p.callback_retry_interval.1 = parse_span(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "max_notifications_in_flight_per_user",
        takes: "a count",
        set: |p, v| {
            p.max_notifications_in_flight_per_user = parse_count(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "no_progress_runs_while_disconnected",
        takes: "true|false",
        set: |p, v| {
            p.no_progress_runs_while_disconnected = parse_bool(v)?;
            Ok(())
        },
    },
    // The issue-9 choices (docs/decisions.md, "Fidelity choices").
    FieldSetter {
        name: "cmdline_fallback",
        takes: "on_failure_code|on_any_not_accepted",
        set: |p, v| {
            p.cmdline_fallback = match v {
                "on_failure_code" => CmdLineFallback::OnFailureCode,
                "on_any_not_accepted" => CmdLineFallback::OnAnyNotAccepted,
                _ => return Err(format!("`{v}` is not on_failure_code or on_any_not_accepted")),
            };
            Ok(())
        },
    },
    FieldSetter {
        name: "service_accounts_run_cmdline",
        takes: "true|false",
        set: |p, v| {
            p.service_accounts_run_cmdline = parse_bool(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "not_logged_on_add_file",
        takes: "an HRESULT or `none`",
        set: |p, v| {
            p.not_logged_on_add_file = match v {
                "none" => None,
                _ => Some(Hresult::parse(v).ok_or_else(|| format!("`{v}` is not an HRESULT"))?),
            };
            Ok(())
        },
    },
    FieldSetter {
        name: "battery_saver_spares_foreground",
        takes: "true|false",
        set: |p, v| {
            p.battery_saver_spares_foreground = parse_bool(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "cancel_session_retry_for",
        takes: "a duration",
        set: |p, v| {
            p.cancel_session_retry_for = parse_span(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "max_jobs_per_user",
        takes: "a count",
        set: |p, v| {
            p.limits.max_jobs_per_user = parse_count(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "max_files_per_job",
        takes: "a count",
        set: |p, v| {
            p.limits.max_files_per_job = parse_count(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "max_jobs_per_machine",
        takes: "a count",
        set: |p, v| {
            p.limits.max_jobs_per_machine = parse_count(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "default_cost_flags",
        takes: "a BITS_COST_STATE_* bit mask (decimal or 0x hex)",
        set: |p, v| {
            let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => v.parse(),
            };
            p.default_cost_flags = n.map_err(|_| format!("`{v}` is not a 32-bit number"))?;
            Ok(())
        },
    },
    FieldSetter {
        name: "cancel_session_retry_every",
        takes: "a duration, or `min_retry_delay` (the job's MinimumRetryDelay)",
        set: |p, v| {
            p.cancel_session_retry_every = match v {
                "min_retry_delay" => None,
                _ => Some(parse_span(v)?),
            };
            Ok(())
        },
    },
    FieldSetter {
        name: "http_status",
        takes:
            "`CODE:transient|fatal` or `LO-HI:transient|fatal` (takes precedence over the flavor's table; repeatable)",
        set: |p, v| {
            let (range, disposition) = v
                .split_once(':')
                .ok_or_else(|| format!("`{v}` has no `:transient` or `:fatal`"))?;
            let disposition = match disposition {
                "transient" => crate::Disposition::Transient,
                "fatal" => crate::Disposition::Fatal,
                other => return Err(format!("`{other}` is not transient or fatal")),
            };
            let status = |t: &str| {
                t.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|s| (100..=599).contains(s))
                    .ok_or_else(|| format!("`{t}` is not an HTTP status (100-599)"))
            };
            let (lo, hi) = match range.split_once('-') {
                Some((lo, hi)) => (status(lo)?, status(hi)?),
                None => (status(range)?, status(range)?),
            };
            if lo > hi {
                return Err(format!("`{range}`: {lo} is above {hi}"));
            }
            // The flavor's tables are 'static; an override is prepended (the
            // first matching rule wins) and kept for the life of the process
            // (a handful of command-line flags).
            let mut rules = vec![HttpRule { lo, hi, disposition }];
            rules.extend_from_slice(p.http_rules);
            p.http_rules = Box::leak(rules.into_boxed_slice());
            Ok(())
        },
    },
    FieldSetter {
        name: "codes.invalid_state",
        takes: "an HRESULT (hex or a name such as BG_E_NOT_FOUND)",
        set: |p, v| {
            p.codes.invalid_state = parse_hresult(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "codes.empty",
        takes: "an HRESULT (hex or a name such as BG_E_NOT_FOUND)",
        set: |p, v| {
            p.codes.empty = parse_hresult(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "codes.not_found",
        takes: "an HRESULT (hex or a name such as BG_E_NOT_FOUND)",
        set: |p, v| {
            p.codes.not_found = parse_hresult(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "codes.error_information_unavailable",
        takes: "an HRESULT (hex or a name such as BG_E_NOT_FOUND)",
        set: |p, v| {
            p.codes.error_information_unavailable = parse_hresult(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "codes.file_not_available",
        takes: "an HRESULT (hex or a name such as BG_E_NOT_FOUND)",
        set: |p, v| {
            p.codes.file_not_available = parse_hresult(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "codes.not_implemented",
        takes: "an HRESULT (hex or a name such as BG_E_NOT_FOUND)",
        set: |p, v| {
            p.codes.not_implemented = parse_hresult(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "codes.network_disconnected",
        takes: "an HRESULT (hex or a name such as BG_E_NOT_FOUND)",
        set: |p, v| {
            p.codes.network_disconnected = parse_hresult(v)?;
            Ok(())
        },
    },
    FieldSetter {
        name: "codes.blocked_by_cost",
        takes: "an HRESULT (hex or a name such as BG_E_NOT_FOUND)",
        set: |p, v| {
            p.codes.blocked_by_cost = parse_hresult(v)?;
            Ok(())
        },
    },
];

impl Profile {
    /// Sets one field by name from text (`bitsim explore --profile-field NAME=VALUE`),
    /// so two readings of the docs can be compared without a code change.
    ///
    /// ```
    /// let mut p = bitsim_model::Profile::bits();
    /// p.set_field("time_slice", "none").unwrap();
    /// assert_eq!(p.time_slice, None);
    /// assert!(p.set_field("time_slice", "soon").is_err());
    /// ```
    pub fn set_field(&mut self, name: &str, value: &str) -> Result<(), String> {
        let setter = FIELD_SETTERS.iter().find(|f| f.name == name).ok_or_else(|| {
            let known: Vec<&str> = FIELD_SETTERS.iter().map(|f| f.name).collect();
            format!("unknown profile field `{name}` (one of: {})", known.join(", "))
        })?;
        (setter.set)(self, value.trim()).map_err(|e| format!("profile field `{name}` takes {}: {e}", setter.takes))?;
        let (lo, hi) = self.callback_retry_interval;
        if lo > hi {
            return Err(format!(
                "callback_retry_interval_min ({lo}) is larger than callback_retry_interval_max ({hi})"
            ));
        }
        Ok(())
    }

    /// The fields [`Profile::set_field`] accepts, with what each takes.
    pub fn settable_fields() -> impl Iterator<Item = (&'static str, &'static str)> {
        FIELD_SETTERS.iter().map(|f| (f.name, f.takes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_fields_are_settable() {
        use crate::classify::http_disposition;
        use crate::Disposition;
        let mut p = Profile::bits();
        assert_eq!(http_disposition(p.http_rules, 404), Disposition::Fatal);
        p.set_field("http_status", "404:transient").unwrap();
        assert_eq!(http_disposition(p.http_rules, 404), Disposition::Transient);
        assert_eq!(
            http_disposition(p.http_rules, 403),
            Disposition::Fatal,
            "only the given status changes"
        );
        p.set_field("http_status", "500-503:fatal").unwrap();
        assert_eq!(http_disposition(p.http_rules, 502), Disposition::Fatal);
        p.set_field("codes.not_found", "0x80070002").unwrap();
        assert_eq!(p.codes.not_found, Hresult(0x8007_0002));
        p.set_field("default_cost_flags", "0x80000021").unwrap();
        assert_eq!(p.default_cost_flags, 0x8000_0021);
        p.set_field("cancel_session_retry_every", "5m").unwrap();
        assert_eq!(p.cancel_session_retry_every, Some(Span::from_secs(300)));
        p.set_field("cancel_session_retry_every", "min_retry_delay").unwrap();
        assert_eq!(p.cancel_session_retry_every, None);
        p.set_field("max_jobs_per_machine", "7").unwrap();
        assert_eq!(p.limits.max_jobs_per_machine, 7);
        for (name, bad) in [
            ("http_status", "404"),
            ("http_status", "404:maybe"),
            ("http_status", "700:fatal"),
            ("http_status", "503-500:fatal"),
            ("codes.empty", "nope"),
            ("default_cost_flags", "0xzz"),
        ] {
            let e = p.set_field(name, bad).unwrap_err();
            assert!(e.contains(name), "{name}={bad}: {e}");
        }
    }

    #[test]
    fn issue_9_choices_are_settable() {
        let mut p = Profile::bits();
        assert_eq!(p.cmdline_fallback, CmdLineFallback::OnFailureCode);
        p.set_field("cmdline_fallback", "on_any_not_accepted").unwrap();
        assert_eq!(p.cmdline_fallback, CmdLineFallback::OnAnyNotAccepted);
        p.set_field("not_logged_on_add_file", "none").unwrap();
        assert_eq!(p.not_logged_on_add_file, None);
        p.set_field("max_jobs_per_user", "3").unwrap();
        assert_eq!(p.limits.max_jobs_per_user, 3);
        assert!(p.set_field("cmdline_fallback", "sometimes").is_err());
    }

    #[test]
    fn set_field_changes_exactly_that_field() {
        let mut p = Profile::bits();
        p.set_field("max_notifications_in_flight_per_user", "2").unwrap();
        assert_eq!(p.max_notifications_in_flight_per_user, 2);
        p.set_field("retry_delay", "45s").unwrap();
        assert_eq!(p.retry_delay, RetryDelay::Fixed(Span::from_secs(45)));
        p.set_field("retry_delay", "job").unwrap();
        assert_eq!(p.retry_delay, RetryDelay::JobSetting);
        p.set_field("job_callback_success", "any_success").unwrap();
        assert_eq!(p.job_callback_success, SuccessRule::AnySuccess);
        p.set_field("inactivity_timeout", "none").unwrap();
        assert_eq!(p.inactivity_timeout, None);
        p.set_field("default_no_progress_timeout_background", "10m").unwrap();
        assert_eq!(p.default_no_progress_timeout.1, Span::from_secs(600));
        p.set_field("no_progress_error", "0x8020000E").unwrap();
        assert_eq!(p.no_progress_error, NoProgressError::Code(Hresult(0x8020_000E)));
        assert_eq!(p.time_slice, Profile::bits().time_slice, "untouched fields stay");
    }

    #[test]
    fn every_settable_field_has_a_working_setter() {
        for (name, _) in Profile::settable_fields() {
            let mut p = Profile::bits();
            let value = FIELD_SETTERS
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.takes)
                .unwrap_or("");
            // The first accepted example of each kind of value.
            let sample = if value.starts_with("true") {
                "false"
            } else if value.contains("duration") {
                "90s"
            } else if value.contains("count") {
                "3"
            } else if value.starts_with("exactly") {
                "any_success"
            } else if value.starts_with("detailed") {
                "remote_file_only_for_403"
            } else if value.starts_with("on_failure_code") {
                "on_any_not_accepted"
            } else if value.starts_with("an HRESULT or `none`") {
                "none"
            } else if value.starts_with("an HRESULT") {
                "0x80200002"
            } else if value.contains("bit mask") {
                "0x21"
            } else if value.contains("CODE:transient") {
                "404:transient"
            } else {
                "keep_last"
            };
            p.set_field(name, sample)
                .unwrap_or_else(|e| panic!("{name}={sample}: {e}"));
        }
    }

    #[test]
    fn bad_names_and_values_are_clear_errors() {
        let mut p = Profile::bits();
        let e = p.set_field("colour", "blue").unwrap_err();
        assert!(
            e.contains("unknown profile field `colour`") && e.contains("time_slice"),
            "{e}"
        );
        let e = p.set_field("reports_connecting", "maybe").unwrap_err();
        assert!(e.contains("true|false"), "{e}");
        let e = p.set_field("time_slice", "99999999999999999999d").unwrap_err();
        assert!(e.contains("not a duration"), "{e}");
        let e = p.set_field("callback_retry_interval_min", "1h").unwrap_err();
        assert!(e.contains("larger than"), "{e}");
    }
}
