//! The scenario format: JSON files under `fixtures/`, with a JSON Schema
//! (`bitsim schema`). A scenario names its flavors, the server plan, the users,
//! callback policies and a list of steps.

use bitsim_model::{
    ErrorContext, Flavor, Hresult, JobPriority, JobState, JobType, NotificationKind, NotifyFlags, Span,
};
use bitsim_server::Plan;
use schemars::JsonSchema;
use serde::{de, ser, Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// One scenario file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Optional `$schema` pointer for editors; ignored.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// What the scenario shows, in a sentence.
    pub description: String,
    /// The reference rows or real-client ids it covers (e.g. "bits-spec §1.3", "MOZ-05").
    #[serde(default)]
    pub covers: Vec<String>,
    /// Flavors to run under; default `["bits"]`.
    #[serde(default = "default_flavors")]
    pub flavors: Vec<FlavorName>,
    /// Seed for the model and the server; `--seed` overrides it. Default 1.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Users; the first is the default owner. Default `["alice"]`.
    #[serde(default = "default_users")]
    pub users: Vec<String>,
    /// The server's fault plan, inline. Default: the built-in routes only.
    #[serde(default)]
    pub plan: Option<Plan>,
    /// The server's fault plan as a path relative to this file.
    #[serde(default)]
    pub plan_file: Option<String>,
    /// Callback objects by name, and how they answer.
    #[serde(default)]
    pub callbacks: BTreeMap<String, CallbackPolicy>,
    /// Only on the simulator (a real run would take too long, or the step needs
    /// something only the simulator can do).
    #[serde(default)]
    pub sim_only: bool,
    /// What happens, in order.
    pub steps: Vec<StepEntry>,
}

fn default_flavors() -> Vec<FlavorName> {
    vec![FlavorName(Flavor::Bits)]
}

fn default_users() -> Vec<String> {
    vec!["alice".into()]
}

/// `"bits"` or `"do"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(with = "FlavorSchema")]
pub struct FlavorName(pub Flavor);

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum FlavorSchema {
    Bits,
    Do,
}

impl<'de> Deserialize<'de> for FlavorName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Flavor::parse(&s)
            .map(FlavorName)
            .ok_or_else(|| de::Error::custom(format!("unknown flavor `{s}` (bits, do)")))
    }
}

/// How a callback object answers each delivery.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackPolicy {
    /// Return codes for successive deliveries; the last one repeats. Default `["S_OK"]`.
    #[serde(default)]
    pub returns: Vec<Hr>,
    /// Per callback method, overriding `returns` (e.g. `{"JobModification": ["S_OK"]}`).
    #[serde(default)]
    pub returns_by_kind: BTreeMap<KindName, Vec<Hr>>,
    /// Block each call this long (virtual time) before returning.
    #[serde(default)]
    pub block: Option<Dur>,
    /// Block each call until a `release_callback` step.
    #[serde(default)]
    pub block_until_release: bool,
    /// The callback's process is gone: every call fails with RPC_E_DISCONNECTED.
    #[serde(default)]
    pub disconnected: bool,
    /// Implements IBackgroundCopyCallback2 (FileTransferred). Default true.
    #[serde(default = "yes")]
    pub callback2: bool,
}

fn yes() -> bool {
    true
}

/// Internally tagged enums lose serde's field path; find the field an error is about
/// from the message (it quotes the field name or the offending value).
fn guess_field(fields: &serde_json::Map<String, serde_json::Value>, message: &str) -> Option<String> {
    for (marker, end) in [("unknown field `", '`'), ("missing field `", '`')] {
        if let Some(rest) = message.split(marker).nth(1) {
            return rest.split(end).next().map(str::to_string);
        }
    }
    fields
        .iter()
        .filter(|(k, _)| k.as_str() != "op")
        .find(|(_, v)| {
            let shown = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            !shown.is_empty() && message.contains(&shown)
        })
        .map(|(k, _)| k.clone())
}

/// Separates a field path from a message inside a step's deserialization error.
pub(crate) const FIELD_SEP: char = '\u{1}';

/// A step, optionally limited to one flavor with `"only": "bits"`. Parsed by
/// [`crate::load`] (which records its line); its schema is [`Step`]'s plus `only`.
#[derive(Debug, Clone)]
pub struct StepEntry {
    /// 1-based line of the step in its file.
    pub line: usize,
    pub step: Step,
    /// Run this step only under this flavor.
    pub only: Option<Flavor>,
}

impl JsonSchema for StepEntry {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StepEntry".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Step>()
    }
}

/// Written back as the step's own object plus `"only"` (the line is not written).
impl Serialize for StepEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::SerializeMap;
        let value = serde_json::to_value(&self.step).map_err(ser::Error::custom)?;
        let fields = value.as_object().cloned().unwrap_or_default();
        // `op` first, as people write steps.
        let mut map = s.serialize_map(None)?;
        if let Some(op) = fields.get("op") {
            map.serialize_entry("op", op)?;
        }
        for (k, v) in fields.iter().filter(|(k, _)| k.as_str() != "op") {
            map.serialize_entry(k, v)?;
        }
        if let Some(flavor) = self.only {
            map.serialize_entry("only", flavor.as_str())?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for StepEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut value = serde_json::Value::deserialize(d)?;
        let only = match value.as_object_mut().and_then(|o| o.remove("only")) {
            None => None,
            Some(v) => Some(FlavorName::deserialize(v).map_err(de::Error::custom)?.0),
        };
        // Keep the field path inside the step: load.rs splits it back out of the message.
        let fields = value.as_object().cloned().unwrap_or_default();
        let step: Step = serde_path_to_error::deserialize(value).map_err(|e| {
            let mut path = e.path().to_string();
            let message = e.into_inner().to_string();
            if path == "." {
                path = guess_field(&fields, &message).unwrap_or(path);
            }
            de::Error::custom(format!("{path}{FIELD_SEP}{message}"))
        })?;
        Ok(StepEntry { line: 0, step, only })
    }
}

/// One step. `expect` on an API call is the HRESULT it must return (default: any
/// success).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// IBackgroundCopyManager::CreateJob; `job` is the alias later steps use.
    CreateJob {
        job: String,
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(rename = "type", default)]
        job_type: Option<TypeName>,
        #[serde(default)]
        expect: Option<Hr>,
    },
    /// GetJob by alias, as `user`.
    GetJob {
        job: String,
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        expect: Option<Hr>,
    },
    /// EnumJobs for `user`: the aliases expected, in creation order.
    EnumJobs {
        #[serde(default)]
        user: Option<String>,
        jobs: Vec<String>,
    },
    /// AddFile. `url` is a path on the mock server (`/bytes/1024`) or an absolute URL;
    /// `local` a file name in the run's directory.
    AddFile {
        job: String,
        url: String,
        local: String,
        #[serde(default)]
        expect: Option<Hr>,
    },
    /// AddFileSet.
    AddFiles {
        job: String,
        files: Vec<FileSpec>,
        #[serde(default)]
        expect: Option<Hr>,
    },
    Resume {
        job: String,
        #[serde(default)]
        expect: Option<Hr>,
    },
    Suspend {
        job: String,
        #[serde(default)]
        expect: Option<Hr>,
    },
    Cancel {
        job: String,
        #[serde(default)]
        expect: Option<Hr>,
    },
    Complete {
        job: String,
        #[serde(default)]
        expect: Option<Hr>,
    },
    SetDisplayName {
        job: String,
        value: TextSpec,
        #[serde(default)]
        expect: Option<Hr>,
    },
    SetDescription {
        job: String,
        value: TextSpec,
        #[serde(default)]
        expect: Option<Hr>,
    },
    /// A BG_JOB_PRIORITY name, or a number (invalid ones give E_NOTIMPL).
    SetPriority {
        job: String,
        value: PrioritySpec,
        #[serde(default)]
        expect: Option<Hr>,
    },
    /// `"JOB_TRANSFERRED|JOB_ERROR"` or a number.
    SetNotifyFlags {
        job: String,
        value: FlagsSpec,
        #[serde(default)]
        expect: Option<Hr>,
    },
    /// Register a callback from `callbacks`, or `null` to remove it.
    SetNotifyInterface {
        job: String,
        callback: Option<String>,
        #[serde(default)]
        expect: Option<Hr>,
    },
    /// Register the notify command line; `exit_codes` are its successive exit codes
    /// (the last repeats; default `[0]`).
    SetNotifyCmdline {
        job: String,
        program: Option<TextSpec>,
        #[serde(default)]
        parameters: Option<TextSpec>,
        #[serde(default)]
        exit_codes: Vec<i32>,
        #[serde(default)]
        expect: Option<Hr>,
    },
    SetMinimumRetryDelay {
        job: String,
        seconds: u32,
        #[serde(default)]
        expect: Option<Hr>,
    },
    SetNoProgressTimeout {
        job: String,
        seconds: u32,
        #[serde(default)]
        expect: Option<Hr>,
    },
    SetMaximumDownloadTime {
        job: String,
        seconds: u32,
        #[serde(default)]
        expect: Option<Hr>,
    },
    SetReplyFileName {
        job: String,
        local: Option<String>,
        #[serde(default)]
        expect: Option<Hr>,
    },
    /// IBackgroundCopyJob::TakeOwnership: `user` becomes the owner.
    TakeOwnership {
        job: String,
        user: String,
        #[serde(default)]
        expect: Option<Hr>,
    },
    /// Let time pass until the job is in one of `states`; fail after `within`.
    Wait {
        job: String,
        state: Option<StateName>,
        #[serde(default)]
        states: Vec<StateName>,
        within: Dur,
    },
    /// Let time pass.
    Advance {
        by: Dur,
    },
    /// Create a local file of `size` deterministic bytes (an upload's source).
    WriteFile {
        name: String,
        size: u64,
    },
    NetworkLost {},
    NetworkRestored {},
    Logoff {
        user: String,
    },
    Logon {
        user: String,
    },
    /// Restart the service: callback registrations are dropped, the queue survives.
    ServiceRestart {},
    /// Replace the server's plan.
    SetPlan {
        #[serde(default)]
        plan: Option<Plan>,
        #[serde(default)]
        plan_file: Option<String>,
    },
    /// Let every blocked call of a `block_until_release` callback return.
    ReleaseCallback {
        callback: String,
    },
    /// Observe the job through the API and compare.
    Expect(Box<Expectation>),
    /// Compare the notifications delivered so far.
    ExpectNotifications {
        #[serde(default)]
        job: Option<String>,
        #[serde(default)]
        kind: Option<KindName>,
        /// Exactly this many deliveries (of `kind`, to `job`).
        #[serde(default)]
        count: Option<u32>,
        /// At least this many.
        #[serde(default)]
        at_least: Option<u32>,
        /// These deliveries, in order (matching the filtered list exactly).
        #[serde(default)]
        sequence: Option<Vec<DeliveryExpect>>,
    },
    /// Notifications delivered and not yet returned, for a user (simulator only).
    ExpectInFlight {
        #[serde(default)]
        user: Option<String>,
        count: usize,
    },
    /// Count the notify command line's runs for a job.
    ExpectCmdline {
        job: String,
        runs: u32,
    },
    /// Files in the run's directory.
    ExpectFiles {
        #[serde(default)]
        present: Vec<FileExpect>,
        #[serde(default)]
        absent: Vec<String>,
    },
    /// Requests the mock server saw (simulator only).
    ExpectRequests {
        #[serde(default)]
        method: Option<String>,
        #[serde(default)]
        path: Option<String>,
        /// BITS-Packet-Type for uploads.
        #[serde(default)]
        packet: Option<String>,
        count: usize,
    },
}

/// What `expect` compares; absent fields are not checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub job: String,
    #[serde(default)]
    pub state: Option<StateName>,
    #[serde(default)]
    pub progress: Option<ProgressExpect>,
    /// File progress, by file index.
    #[serde(default)]
    pub file_progress: Option<FileProgressExpect>,
    /// The job error (GetError); `{"hresult": "BG_E_ERROR_INFORMATION_UNAVAILABLE"}`
    /// alone expects GetError to fail with it.
    #[serde(default)]
    pub error: Option<ErrorExpect>,
    #[serde(default)]
    pub error_count: Option<u32>,
    #[serde(default)]
    pub priority: Option<PrioritySpec>,
    #[serde(default)]
    pub notify_flags: Option<FlagsSpec>,
    #[serde(default)]
    pub minimum_retry_delay: Option<u32>,
    #[serde(default)]
    pub no_progress_timeout: Option<u32>,
    /// GetReplyProgress (`bytes_total` may be "unknown").
    #[serde(default)]
    pub reply_progress: Option<ProgressExpect>,
    /// GetReplyData: its length, or the HRESULT it fails with.
    #[serde(default)]
    pub reply_data: Option<ReplyDataExpect>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressExpect {
    #[serde(default)]
    pub bytes_total: Option<SizeSpec>,
    #[serde(default)]
    pub bytes_transferred: Option<u64>,
    #[serde(default)]
    pub files_total: Option<u32>,
    #[serde(default)]
    pub files_transferred: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileProgressExpect {
    pub file: usize,
    #[serde(default)]
    pub bytes_total: Option<SizeSpec>,
    #[serde(default)]
    pub bytes_transferred: Option<u64>,
    #[serde(default)]
    pub completed: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorExpect {
    pub hresult: Hr,
    #[serde(default)]
    pub context: Option<ContextName>,
    /// The file index the error is tied to, or `null` for none.
    #[serde(default, deserialize_with = "some_option")]
    pub file: Option<Option<usize>>,
}

fn some_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    Option::<usize>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ReplyDataExpect {
    Length(u64),
    Fails(Hr),
}

/// One expected delivery.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryExpect {
    pub kind: KindName,
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default)]
    pub attempt: Option<u32>,
    /// What the callback returned.
    #[serde(default)]
    pub returned: Option<Hr>,
    /// For JobError: the error delivered.
    #[serde(default)]
    pub hresult: Option<Hr>,
    #[serde(default)]
    pub context: Option<ContextName>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub url: String,
    pub local: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileExpect {
    pub name: String,
    #[serde(default)]
    pub size: Option<u64>,
}

/// Text, or `{"repeat": "x", "times": 257}` for length-limit tests.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TextSpec {
    Text(String),
    Repeat { repeat: String, times: usize },
}

impl TextSpec {
    pub fn render(&self) -> String {
        match self {
            TextSpec::Text(s) => s.clone(),
            TextSpec::Repeat { repeat, times } => repeat.repeat(*times.min(&100_000)),
        }
    }
}

/// Declares a string newtype parsed by a `parse` function, with a schema of type string.
macro_rules! parsed_string {
    ($(#[$m:meta])* $name:ident($inner:ty), $parse:expr, $show:expr, $what:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $inner);
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let show: fn($inner) -> String = $show;
                s.serialize_str(&show(self.0))
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let parse: fn(&str) -> Option<$inner> = $parse;
                parse(&s).map($name).ok_or_else(|| de::Error::custom(format!(concat!("unknown ", $what, " `{}`"), s)))
            }
        }
        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "description": $what })
            }
        }
    };
}

parsed_string!(
    /// An HRESULT: a name (`BG_E_INVALID_STATE`, `BG_E_HTTP_ERROR_403`) or hex `0x80200002`.
    Hr(Hresult), Hresult::parse, |h| h.name().unwrap_or_else(|| format!("0x{:08X}", h.0)), "HRESULT (name or 0x hex)"
);
parsed_string!(
    /// A BG_JOB_STATE name (`TRANSIENT_ERROR`).
    StateName(JobState), JobState::parse, |s| s.as_str().into(), "job state"
);
parsed_string!(
    /// A BG_JOB_TYPE name (`DOWNLOAD`, `UPLOAD`, `UPLOAD_REPLY`).
    TypeName(JobType), JobType::parse, |t| t.as_str().into(), "job type"
);
parsed_string!(
    /// A BG_ERROR_CONTEXT name (`REMOTE_FILE`).
    ContextName(ErrorContext), ErrorContext::parse, |c| c.as_str().into(), "error context"
);
parsed_string!(
    /// A callback method (`JobTransferred`, `JobError`, `JobModification`, `FileTransferred`).
    KindName(NotificationKind), parse_kind, |k| k.to_string(), "notification kind"
);

fn parse_kind(s: &str) -> Option<NotificationKind> {
    use NotificationKind::*;
    [JobTransferred, JobError, JobModification, FileTransferred]
        .into_iter()
        .find(|k| k.to_string() == s)
}

/// A priority name or a raw number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "serde_json::Value")]
pub struct PrioritySpec(pub u32);

/// Written as the priority's name when it has one, else as the number.
impl Serialize for PrioritySpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match JobPriority::from_value(self.0) {
            Some(p) => s.serialize_str(p.as_str()),
            None => s.serialize_u32(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for PrioritySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(|v| PrioritySpec(v as u32))
                .ok_or_else(|| de::Error::custom("priority must be >= 0")),
            serde_json::Value::String(s) => JobPriority::parse(&s)
                .map(|p| PrioritySpec(p.value()))
                .ok_or_else(|| de::Error::custom(format!("unknown priority `{s}`"))),
            _ => Err(de::Error::custom("priority must be a name or a number")),
        }
    }
}

/// Notify flags: `"JOB_TRANSFERRED|JOB_ERROR"`, `"0x1F"` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "serde_json::Value")]
pub struct FlagsSpec(pub u32);

impl Serialize for FlagsSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for FlagsSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(|v| FlagsSpec(v as u32))
                .ok_or_else(|| de::Error::custom("flags must be >= 0")),
            serde_json::Value::String(s) => NotifyFlags::parse(&s)
                .map(|f| FlagsSpec(f.0))
                .ok_or_else(|| de::Error::custom(format!("unknown notify flags `{s}`"))),
            _ => Err(de::Error::custom("flags must be a string or a number")),
        }
    }
}

/// A size in bytes, or `"unknown"` for BG_SIZE_UNKNOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "serde_json::Value")]
pub struct SizeSpec(pub u64);

impl Serialize for SizeSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == bitsim_model::BG_SIZE_UNKNOWN {
            s.serialize_str("unknown")
        } else {
            s.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for SizeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(SizeSpec)
                .ok_or_else(|| de::Error::custom("size must be >= 0")),
            serde_json::Value::String(s) if s == "unknown" => Ok(SizeSpec(bitsim_model::BG_SIZE_UNKNOWN)),
            _ => Err(de::Error::custom("size must be a number or \"unknown\"")),
        }
    }
}

/// A duration: milliseconds as a number, or a string with a unit:
/// `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"14d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "serde_json::Value")]
pub struct Dur(pub Span);

impl Dur {
    pub fn parse(s: &str) -> Option<Dur> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (num, unit) = s.split_at(split);
        let n: f64 = num.parse().ok()?;
        let ms = match unit.trim() {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return None,
        };
        (n >= 0.0).then(|| Dur(Span((n * ms).round() as u64)))
    }
}

/// Written in the largest unit that divides it exactly (`"30s"`, `"1500ms"`).
impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ms = (self.0).0;
        let unit = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")]
            .into_iter()
            .find(|(n, _)| ms > 0 && ms.is_multiple_of(*n));
        match unit {
            Some((n, u)) => s.serialize_str(&format!("{}{u}", ms / n)),
            None => s.serialize_str(&format!("{ms}ms")),
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(|v| Dur(Span(v)))
                .ok_or_else(|| de::Error::custom("duration must be >= 0 ms")),
            serde_json::Value::String(s) => Dur::parse(&s)
                .ok_or_else(|| de::Error::custom(format!("bad duration `{s}` (e.g. 500ms, 30s, 10m, 2h, 14d)"))),
            _ => Err(de::Error::custom(
                "duration must be a number of ms or a string like \"30s\"",
            )),
        }
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(Dur::parse("500ms"), Some(Dur(Span(500))));
        assert_eq!(Dur::parse("14d"), Some(Dur(Span::from_days(14))));
        assert_eq!(Dur::parse("1.5s"), Some(Dur(Span(1500))));
        assert_eq!(Dur::parse("10 parsecs"), None);
    }
}
