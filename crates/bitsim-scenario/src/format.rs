//! The scenario format: JSON files under `fixtures/`, with a JSON Schema
//! (`bitsim schema`). A scenario names its flavors, the server plan, the users,
//! callback policies and a list of steps.

use bitsim_model::{
    ErrorContext, Flavor, Hresult, JobPriority, JobState, JobType, NotificationKind, NotifyFlags, OwnerKind, Span,
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
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// What the scenario shows, in a sentence.
    pub description: String,
    /// The reference rows or real-client ids it covers (e.g. "bits-spec §1.3", "MOZ-05").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covers: Vec<String>,
    /// Flavors to run under; default `["bits"]`.
    #[serde(default = "default_flavors")]
    pub flavors: Vec<FlavorName>,
    /// Seed for the model and the server; `--seed` overrides it. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Users; the first is the default owner. Default `["alice"]`.
    #[serde(default = "default_users")]
    pub users: Vec<String>,
    /// Kinds of the users above, by name (default `interactive_user`):
    /// `administrator`, `local_system`, `local_service`, `network_service`,
    /// `non_interactive_user` (RunAs, a scheduled task, WinRM).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_kinds: BTreeMap<String, OwnerKindName>,
    /// The server's fault plan, inline. Default: the built-in routes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The server's fault plan as a path relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_file: Option<String>,
    /// Callback objects by name, and how they answer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub callbacks: BTreeMap<String, CallbackPolicy>,
    /// Only on the simulator (a real run would take too long, or the step needs
    /// something only the simulator can do).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub returns: Vec<Hr>,
    /// Per callback method, overriding `returns` (e.g. `{"JobModification": ["S_OK"]}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub returns_by_kind: BTreeMap<KindName, Vec<Hr>>,
    /// Block each call this long (virtual time) before returning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<Dur>,
    /// Block each call until a `release_callback` step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub block_until_release: bool,
    /// The callback's process is gone: every call fails with RPC_E_DISCONNECTED.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disconnected: bool,
    /// Implements IBackgroundCopyCallback2 (FileTransferred). Default true.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub callback2: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Internally tagged enums lose serde's field path, so the field an error is
/// about is found by elimination: the one field without which the step parses
/// (or, for a wrong required field, only misses that field). Serde's own
/// "unknown field" is trusted only when the step has that key itself (a nested
/// struct's unknown field is found by elimination, as its parent); "missing
/// field" names the field only when no present field is to blame. Never guessed
/// from the message text.
fn find_field(fields: &serde_json::Map<String, serde_json::Value>, message: &str) -> Option<String> {
    let named = |marker: &str| message.split(marker).nth(1).and_then(|r| r.split('`').next());
    if let Some(unknown) = named("unknown field `").filter(|k| fields.contains_key(*k)) {
        return Some(unknown.to_string());
    }
    let missing = named("missing field `");
    let culprit = fields.keys().filter(|k| k.as_str() != "op").find(|k| {
        let mut without = fields.clone();
        without.remove(*k);
        match serde_json::from_value::<Step>(serde_json::Value::Object(without)) {
            Ok(_) => true,
            // With a field missing from the start, removing another required
            // field only changes which one serde names first.
            Err(e) => missing.is_none() && e.to_string() == format!("missing field `{k}`"),
        }
    });
    culprit.cloned().or_else(|| missing.map(str::to_string))
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
                path = find_field(&fields, &message).unwrap_or(path);
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        job_type: Option<TypeName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// GetJob by alias, as `user`.
    GetJob {
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// EnumJobs for `user`: the aliases expected, in creation order.
    EnumJobs {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        jobs: Vec<String>,
    },
    /// AddFile. `url` is a path on the mock server (`/bytes/1024`) or an absolute URL;
    /// `local` a file name in the run's directory.
    AddFile {
        job: String,
        url: String,
        local: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// AddFileSet.
    AddFiles {
        job: String,
        files: Vec<FileSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    Resume {
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    Suspend {
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    Cancel {
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    Complete {
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    SetDisplayName {
        job: String,
        value: TextSpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    SetDescription {
        job: String,
        value: TextSpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// A BG_JOB_PRIORITY name, or a number (invalid ones give E_NOTIMPL).
    SetPriority {
        job: String,
        value: PrioritySpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// `"JOB_TRANSFERRED|JOB_ERROR"` or a number.
    SetNotifyFlags {
        job: String,
        value: FlagsSpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// Register a callback from `callbacks`, or `null` to remove it.
    SetNotifyInterface {
        job: String,
        callback: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// Register the notify command line; `exit_codes` are its successive exit codes
    /// (the last repeats; default `[0]`).
    SetNotifyCmdline {
        job: String,
        program: Option<TextSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameters: Option<TextSpec>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exit_codes: Vec<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    SetMinimumRetryDelay {
        job: String,
        seconds: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    SetNoProgressTimeout {
        job: String,
        seconds: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    SetMaximumDownloadTime {
        job: String,
        seconds: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    SetReplyFileName {
        job: String,
        local: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// IBackgroundCopyJob::TakeOwnership: `user` becomes the owner.
    TakeOwnership {
        job: String,
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// Let time pass until the job is in one of `states`; fail after `within`.
    Wait {
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<StateName>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        states: Vec<StateName>,
        within: Dur,
    },
    /// Let time pass.
    Advance {
        by: Dur,
    },
    /// Create a local file of `size` deterministic bytes (an upload's source);
    /// at most 256 MiB.
    WriteFile {
        name: String,
        #[schemars(range(max = 268_435_456))]
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
    /// Another process holds the local file `name` open (`"busy"`) or it is read-only
    /// (`"read_only"`); with `temporary`, the lock is on the temporary copy BITS
    /// downloads `name` into. Complete / Cancel then cannot rename onto or delete it.
    LockFile {
        name: String,
        how: LockHow,
        #[serde(default)]
        temporary: bool,
    },
    /// The current network's cost (a BITS_COST_STATE name: `unrestricted`,
    /// `capped_usage_unknown`, `below_cap`, `near_cap`, `overcap_charged`,
    /// `overcap_throttled`, `usage_based`, `roaming`).
    NetworkCost {
        cost: CostStateName,
    },
    /// Battery saver on or off.
    BatterySaver {
        on: bool,
    },
    /// The Group Policy limit on background transfers' bandwidth in kbps; 0 blocks
    /// them, `null` removes the limit.
    BackgroundBandwidth {
        kbps: Option<u64>,
    },
    /// IBackgroundCopyJob5::SetProperty(BITS_JOB_PROPERTY_ID_COST_FLAGS): a
    /// BITS_JOB_TRANSFER_POLICY name (`STANDARD`, `ALWAYS`, …) or a number.
    SetCostFlags {
        job: String,
        value: CostFlagsSpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// IBackgroundCopyJob2::SetCredentials: `target` `server` / `proxy`, `scheme`
    /// `basic` / `digest` / `ntlm` / `negotiate` / `passport`; `user` and `password`
    /// `null` (or absent) for implicit NTLM / Negotiate credentials.
    SetCredentials {
        job: String,
        target: AuthTarget,
        scheme: AuthScheme,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<TextSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<TextSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// IBackgroundCopyJob2::RemoveCredentials (S_FALSE when none were set).
    RemoveCredentials {
        job: String,
        target: AuthTarget,
        scheme: AuthScheme,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<ExpectHr>,
    },
    /// Releases a `lock_file`.
    UnlockFile {
        name: String,
        #[serde(default)]
        temporary: bool,
    },
    /// Replace the server's plan.
    SetPlan {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<Plan>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<KindName>,
        /// Exactly this many deliveries (of `kind`, to `job`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u32>,
        /// At least this many.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_least: Option<u32>,
        /// These deliveries, in order (matching the filtered list exactly).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence: Option<Vec<DeliveryExpect>>,
    },
    /// Notifications delivered and not yet returned, for a user (simulator only).
    ExpectInFlight {
        #[serde(default, skip_serializing_if = "Option::is_none")]
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
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        present: Vec<FileExpect>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        absent: Vec<String>,
    },
    /// Requests the mock server saw (simulator only).
    ExpectRequests {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// BITS-Packet-Type for uploads.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        packet: Option<String>,
        count: usize,
    },
    /// A file the mock server committed from an upload, by its URL path (simulator
    /// only): present (with `size`) or, with `"present": false`, absent.
    ExpectUploaded {
        path: String,
        #[serde(default = "yes")]
        present: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<ValueSpec>,
    },
}

/// What `expect` compares; absent fields are not checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub job: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressExpect>,
    /// File progress, by file index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_progress: Option<FileProgressExpect>,
    /// The job error (GetError); `{"hresult": "BG_E_ERROR_INFORMATION_UNAVAILABLE"}`
    /// alone expects GetError to fail with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorExpect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_count: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<PrioritySpec>,
    /// GetNotifyFlags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_flags: Option<FlagsSpec>,
    /// GetNotifyInterface: the name of a callback from `callbacks`, or `null` for NULL.
    #[serde(default, deserialize_with = "some_name", skip_serializing_if = "Option::is_none")]
    pub notify_interface: Option<Option<String>>,
    /// GetNotifyCmdLine: `{"program": …, "parameters": …}`, `null` for none, or
    /// `{"fails": HRESULT}` (e.g. DO's E_NOTIMPL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_cmdline: Option<CmdLineExpect>,
    /// GetProperty(BITS_JOB_PROPERTY_ID_COST_FLAGS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_flags: Option<CostFlagsSpec>,
    /// GetOwner: the owning user's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// GetTimes, in whole seconds since the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<TimesExpect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_retry_delay: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_progress_timeout: Option<ValueSpec>,
    /// GetReplyProgress (`bytes_total` may be "unknown").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_progress: Option<ProgressExpect>,
    /// GetReplyData: its length, or the HRESULT it fails with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_data: Option<ReplyDataExpect>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressExpect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_transferred: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_total: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_transferred: Option<ValueSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileProgressExpect {
    pub file: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_transferred: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorExpect {
    pub hresult: Hr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextName>,
    /// The file index the error is tied to, or `null` for none.
    #[serde(default, deserialize_with = "some_option", skip_serializing_if = "Option::is_none")]
    pub file: Option<Option<usize>>,
}

fn some_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// What GetNotifyCmdLine returns.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CmdLineExpect {
    /// The call fails with this code.
    Fails { fails: ExpectHr },
    /// The program and its parameters.
    Set {
        program: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameters: Option<String>,
    },
    /// `null`: no command line.
    Unset(()),
}

/// GetTimes, in whole seconds since the run started (virtual on the simulator).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimesExpect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation: Option<ValueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification: Option<ValueSpec>,
    /// `null`: not TRANSFERRED yet (zero on Windows).
    #[serde(default, deserialize_with = "some_value", skip_serializing_if = "Option::is_none")]
    pub transfer_completion: Option<Option<ValueSpec>>,
}

fn some_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<ValueSpec>>, D::Error> {
    Option::<ValueSpec>::deserialize(d).map(Some)
}

fn some_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    Option::<usize>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ReplyDataExpect {
    Length(u64),
    Fails(ExpectHr),
}

/// One expected delivery.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryExpect {
    pub kind: KindName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// What the callback returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned: Option<Hr>,
    /// For JobError: the error delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hresult: Option<Hr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ValueSpec>,
    /// Its content is byte for byte what the mock server sends for this route
    /// (`/bytes/4096`), compared by SHA-256 digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<String>,
    /// Its content differs from what the mock server sends for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differs_from: Option<String>,
}

/// `BG_AUTH_TARGET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthTarget {
    Server,
    Proxy,
}

/// `BG_AUTH_SCHEME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthScheme {
    Basic,
    Digest,
    Ntlm,
    Negotiate,
    Passport,
}

/// How a local file is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LockHow {
    /// Open in another process without sharing (ERROR_SHARING_VIOLATION).
    Busy,
    /// Read-only (E_ACCESSDENIED).
    ReadOnly,
}

/// Text, or `{"repeat": "x", "times": 257}` for length-limit tests.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TextSpec {
    Text(String),
    Repeat {
        repeat: String,
        #[schemars(range(max = 100_000))]
        times: usize,
    },
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
    /// A job owner's kind (`local_system`, `non_interactive_user`, …).
    OwnerKindName(OwnerKind), OwnerKind::parse, |k| k.as_str().into(), "owner kind (interactive_user, administrator, local_system, local_service, network_service, non_interactive_user)"
);
parsed_string!(
    /// A BITS_COST_STATE name (`roaming`).
    CostStateName(u32), bitsim_model::cost_state::parse,
    |v| bitsim_model::cost_state::NAMES.iter().find(|(_, x)| *x == v).map_or_else(|| format!("0x{v:x}"), |(n, _)| n.to_string()),
    "network cost state (unrestricted, capped_usage_unknown, below_cap, near_cap, overcap_charged, overcap_throttled, usage_based, roaming)"
);
parsed_string!(
    /// A BITS_JOB_TRANSFER_POLICY name (`STANDARD`) or a number (`0x800000ff`).
    CostFlagsSpec(u32), bitsim_model::transfer_policy::parse,
    |v| bitsim_model::transfer_policy::NAMES.iter().find(|(_, x)| *x == v).map_or_else(|| format!("0x{v:08x}"), |(n, _)| n.to_string()),
    "transfer policy (ALWAYS, NOT_ROAMING, NO_SURCHARGE, STANDARD, UNRESTRICTED, or 0x hex)"
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
                .and_then(|v| u32::try_from(v).ok())
                .map(PrioritySpec)
                .ok_or_else(|| {
                    de::Error::custom(format!(
                        "priority {n}: must be a name or a whole number from 0 to {}",
                        u32::MAX
                    ))
                }),
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
                .and_then(|v| u32::try_from(v).ok())
                .map(FlagsSpec)
                .ok_or_else(|| {
                    de::Error::custom(format!(
                        "notify flags {n}: must be a name or a whole number from 0 to {}",
                        u32::MAX
                    ))
                }),
            serde_json::Value::String(s) => NotifyFlags::parse(&s)
                .map(|f| FlagsSpec(f.0))
                .ok_or_else(|| de::Error::custom(format!("unknown notify flags `{s}`"))),
            _ => Err(de::Error::custom("flags must be a string or a number")),
        }
    }
}

/// An expected HRESULT: a code (`BG_E_INVALID_STATE`, `0x80200002`), or
/// `"any_failure"` / `"any_success"` for calls whose exact code is undocumented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub enum ExpectHr {
    Code(Hresult),
    /// FAILED(hr): any failure code.
    AnyFailure,
    /// SUCCEEDED(hr): S_OK, S_FALSE, BG_S_* …
    AnySuccess,
}

impl ExpectHr {
    pub fn matches(self, hr: Hresult) -> bool {
        match self {
            ExpectHr::Code(c) => c == hr,
            ExpectHr::AnyFailure => hr.is_failure(),
            ExpectHr::AnySuccess => hr.is_success(),
        }
    }
}

impl fmt::Display for ExpectHr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectHr::Code(c) => write!(f, "{c}"),
            ExpectHr::AnyFailure => f.write_str("any failure code"),
            ExpectHr::AnySuccess => f.write_str("any success code"),
        }
    }
}

impl Serialize for ExpectHr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExpectHr::Code(c) => Hr(*c).serialize(s),
            ExpectHr::AnyFailure => s.serialize_str("any_failure"),
            ExpectHr::AnySuccess => s.serialize_str("any_success"),
        }
    }
}

impl<'de> Deserialize<'de> for ExpectHr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "any_failure" => Ok(ExpectHr::AnyFailure),
            "any_success" => Ok(ExpectHr::AnySuccess),
            _ => Hresult::parse(&s).map(ExpectHr::Code).ok_or_else(|| {
                de::Error::custom(format!(
                    "unknown HRESULT `{s}` (a name, 0x hex, \"any_failure\" or \"any_success\")"
                ))
            }),
        }
    }
}

/// An expected number: exactly `1024` (or `"unknown"` for BG_SIZE_UNKNOWN),
/// anything but a value (`{"not": "unknown"}`), or an inclusive range
/// (`{"min": 1, "max": 10}`, either bound optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "serde_json::Value")]
pub enum ValueSpec {
    Is(u64),
    Not(u64),
    Range { min: Option<u64>, max: Option<u64> },
}

impl ValueSpec {
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ValueSpec::Is(v) => actual == v,
            ValueSpec::Not(v) => actual != v,
            ValueSpec::Range { min, max } => min.is_none_or(|m| actual >= m) && max.is_none_or(|m| actual <= m),
        }
    }
}

fn show_value(v: u64) -> String {
    if v == bitsim_model::BG_SIZE_UNKNOWN {
        "unknown".into()
    } else {
        v.to_string()
    }
}

impl fmt::Display for ValueSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ValueSpec::Is(v) => f.write_str(&show_value(v)),
            ValueSpec::Not(v) => write!(f, "not {}", show_value(v)),
            ValueSpec::Range { min, max } => write!(
                f,
                "{}..={}",
                min.map_or(String::new(), show_value),
                max.map_or(String::new(), show_value)
            ),
        }
    }
}

/// The JSON form of a value (`"unknown"` for BG_SIZE_UNKNOWN).
fn value_json(v: u64) -> serde_json::Value {
    if v == bitsim_model::BG_SIZE_UNKNOWN {
        serde_json::Value::from("unknown")
    } else {
        serde_json::Value::from(v)
    }
}

impl Serialize for ValueSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let json = match *self {
            ValueSpec::Is(v) => value_json(v),
            ValueSpec::Not(v) => serde_json::json!({ "not": value_json(v) }),
            ValueSpec::Range { min, max } => {
                let mut m = serde_json::Map::new();
                if let Some(a) = min {
                    m.insert("min".into(), value_json(a));
                }
                if let Some(b) = max {
                    m.insert("max".into(), value_json(b));
                }
                serde_json::Value::Object(m)
            }
        };
        json.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ValueSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn number<E: de::Error>(v: &serde_json::Value) -> Result<u64, E> {
            match v {
                serde_json::Value::Number(n) => n.as_u64().ok_or_else(|| E::custom("value must be >= 0")),
                serde_json::Value::String(s) if s == "unknown" => Ok(bitsim_model::BG_SIZE_UNKNOWN),
                _ => Err(E::custom("value must be a number or \"unknown\"")),
            }
        }
        let v = serde_json::Value::deserialize(d)?;
        let serde_json::Value::Object(map) = &v else {
            return number(&v).map(ValueSpec::Is);
        };
        if let Some(k) = map.keys().find(|k| !["not", "min", "max"].contains(&k.as_str())) {
            return Err(de::Error::custom(format!("unknown key `{k}` (not, min, max)")));
        }
        match (map.get("not"), map.get("min"), map.get("max")) {
            (Some(n), None, None) => number(n).map(ValueSpec::Not),
            (None, min, max) if min.is_some() || max.is_some() => {
                let min = min.map(number).transpose()?;
                let max = max.map(number).transpose()?;
                if let (Some(a), Some(b)) = (min, max) {
                    if a > b {
                        return Err(de::Error::custom(format!("empty range: min {a} > max {b}")));
                    }
                }
                Ok(ValueSpec::Range { min, max })
            }
            _ => Err(de::Error::custom(
                "a value: a number, \"unknown\", {\"not\": v} or {\"min\": a, \"max\": b}",
            )),
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
/// `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"14d"`; whole milliseconds, at most
/// 100 years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Span);

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Dur".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: whole milliseconds from 0 to 3153600000000 (100 years), or a string with a unit (ms, s, m, min, h, d) such as \"500ms\", \"1.5s\", \"14d\" with the same range.",
            "oneOf": [
                { "type": "integer", "minimum": 0, "maximum": 3_153_600_000_000u64 },
                { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*(ms|s|m|min|h|d)\\s*$" }
            ]
        })
    }
}

/// What a duration may be, for error messages.
const DUR_RANGE: &str = "a whole number of milliseconds from 0 to 3153600000000 (100 years), or a string like \"500ms\", \"30s\", \"10m\", \"2h\", \"14d\"";

impl Dur {
    /// The longest duration: 100 years, the virtual-time ceiling.
    pub const MAX_MS: u64 = crate::validate::MAX_VIRTUAL_MS;

    pub fn parse(s: &str) -> Option<Dur> {
        Dur::parse_checked(s).ok()
    }

    /// Parses `"500ms"`, `"1.5s"`, ...: the result must be whole milliseconds
    /// within 100 years.
    pub fn parse_checked(s: &str) -> Result<Dur, String> {
        let bad = || format!("bad duration `{s}`: must be {DUR_RANGE}");
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?;
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let ms = match unit.trim() {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return Err(bad()),
        };
        Dur::from_ms_f64(n * ms).ok_or_else(bad)
    }

    fn from_ms_f64(ms: f64) -> Option<Dur> {
        let ok = ms.is_finite() && ms >= 0.0 && ms.fract() == 0.0 && ms <= Dur::MAX_MS as f64;
        ok.then_some(Dur(Span(ms as u64)))
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
                .filter(|ms| *ms <= Dur::MAX_MS)
                .map(|v| Dur(Span(v)))
                .ok_or_else(|| de::Error::custom(format!("bad duration {n}: must be {DUR_RANGE}"))),
            serde_json::Value::String(s) => Dur::parse_checked(&s).map_err(de::Error::custom),
            _ => Err(de::Error::custom(format!("a duration must be {DUR_RANGE}"))),
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
    fn values_exact_not_and_ranges() {
        let v = |j: &str| serde_json::from_str::<ValueSpec>(j);
        assert!(v("1024").unwrap().matches(1024));
        assert!(v("\"unknown\"").unwrap().matches(bitsim_model::BG_SIZE_UNKNOWN));
        let not_unknown = v(r#"{"not": "unknown"}"#).unwrap();
        assert!(not_unknown.matches(0) && !not_unknown.matches(bitsim_model::BG_SIZE_UNKNOWN));
        let range = v(r#"{"min": 10, "max": 20}"#).unwrap();
        assert!(range.matches(10) && range.matches(20) && !range.matches(21) && !range.matches(9));
        assert_eq!(range.to_string(), "10..=20");
        assert!(v(r#"{"min": 5, "max": 1}"#)
            .unwrap_err()
            .to_string()
            .contains("empty range"));
        assert!(v(r#"{"between": 1}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown key `between`"));
        assert!(v("-1").is_err());
    }

    #[test]
    fn expected_codes() {
        let e = |j: &str| serde_json::from_str::<ExpectHr>(j);
        assert!(e("\"any_failure\"").unwrap().matches(Hresult::E_FAIL));
        assert!(!e("\"any_failure\"").unwrap().matches(Hresult::S_FALSE));
        assert!(e("\"any_success\"").unwrap().matches(Hresult::BG_S_PARTIAL_COMPLETE));
        assert!(e("\"BG_E_INVALID_STATE\"")
            .unwrap()
            .matches(Hresult::BG_E_INVALID_STATE));
        assert!(e("\"no_such_code\"").unwrap_err().to_string().contains("any_failure"));
    }

    #[test]
    fn durations() {
        assert_eq!(Dur::parse("500ms"), Some(Dur(Span(500))));
        assert_eq!(Dur::parse("14d"), Some(Dur(Span::from_days(14))));
        assert_eq!(Dur::parse("1.5s"), Some(Dur(Span(1500))));
        assert_eq!(Dur::parse("10 parsecs"), None);
        // Fractions of a millisecond and more than 100 years are refused, with the range.
        assert_eq!(Dur::parse("0.5ms"), None);
        assert_eq!(Dur::parse("36501d"), None);
        assert!(Dur::parse_checked("1e308s").unwrap_err().contains("100 years"));
        for bad in ["1.5", "1e308", "18446744073709551615", "-1"] {
            let e = serde_json::from_str::<Dur>(bad).unwrap_err().to_string();
            assert!(
                e.contains("whole number of milliseconds from 0 to 3153600000000"),
                "{bad}: {e}"
            );
        }
    }
}
