//! The fault plan: a JSON document (serde + JSON Schema) listing resources,
//! upload options, limits and rules that inject faults.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Default `Last-Modified` of every generated entity (unix seconds,
/// 2023-11-14T22:13:20Z). Deterministic on purpose: no wall clock.
pub const DEFAULT_LAST_MODIFIED: u64 = 1_700_000_000;

/// A fault plan. `Plan::default()` serves only the built-in httpbin-style
/// routes (see docs/mock-server.md) with IIS-like upload behaviour and no faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Optional `$schema` pointer for editors; ignored.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Serve the built-in routes (`/bytes/{n}`, `/status/{code}`, `/redirect/..`,
    /// `/delay/..`, `/drip/..`, `/basic-auth/..`, `/proxy-auth/..`, `/upload/{name}`,
    /// `/upload-reply/{name}`). Default: true.
    #[serde(default = "yes")]
    pub builtin_routes: bool,
    /// Refuse every new connection: TCP connections are accepted and reset at
    /// once, in-memory pipes are closed before any byte (bits-http §5.3
    /// "refuse connection"; a real refusal needs no listener at all).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refuse_connections: bool,
    /// Extra downloadable resources, served with HEAD, Range, ETag and Last-Modified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// Fault rules, tried in order; the first that fires applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// BITS upload server behaviour (bits-http §3).
    #[serde(default)]
    pub upload: UploadOptions,
    /// Size limits.
    #[serde(default)]
    pub limits: Limits,
}

fn yes() -> bool {
    true
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            schema: None,
            builtin_routes: true,
            refuse_connections: false,
            resources: Vec::new(),
            rules: Vec::new(),
            upload: UploadOptions::default(),
            limits: Limits::default(),
        }
    }
}

/// A plan that failed to load: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PlanError {
    /// The origin name given to [`Plan::from_json_str`] (usually a file name).
    pub origin: String,
    /// 1-based line of the error (0 when not known).
    pub line: usize,
    /// 1-based column of the error (0 when not known).
    pub column: usize,
    /// Field path in the document, e.g. `rules[1].fault.kind` (`.` for the root).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: at `{}`: {}",
            self.origin, self.line, self.column, self.path, self.message
        )
    }
}

impl Plan {
    /// Parses a plan from JSON. Errors name the origin, line, column and
    /// field path.
    pub fn from_json_str(json: &str, origin_name: &str) -> Result<Plan, PlanError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let plan: Plan = match serde_path_to_error::deserialize(&mut de) {
            Ok(p) => p,
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                return Err(PlanError {
                    origin: origin_name.to_string(),
                    line: inner.line(),
                    column: inner.column(),
                    path,
                    message: strip_position(&inner.to_string()),
                });
            }
        };
        if let Err(e) = de.end() {
            return Err(PlanError {
                origin: origin_name.to_string(),
                line: e.line(),
                column: e.column(),
                path: ".".into(),
                message: strip_position(&e.to_string()),
            });
        }
        plan.validate().map_err(|(path, message)| {
            let (line, column) = crate::position::json_position(json, &path);
            PlanError {
                origin: origin_name.to_string(),
                line,
                column,
                path,
                message,
            }
        })?;
        Ok(plan)
    }

    /// The plan as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// The JSON Schema of the plan format.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Plan)).unwrap_or_default()
    }

    /// Cross-field checks serde cannot express.
    fn validate(&self) -> Result<(), (String, String)> {
        for (i, r) in self.resources.iter().enumerate() {
            if !r.path.starts_with('/') {
                return Err((format!("resources[{i}].path"), "must start with `/`".into()));
            }
        }
        for (i, e) in self.upload.endpoints.iter().enumerate() {
            if !e.path_prefix.starts_with('/') || !e.path_prefix.ends_with('/') {
                return Err((
                    format!("upload.endpoints[{i}].path_prefix"),
                    "must start and end with `/`".into(),
                ));
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            if let (Some(a), Some(b)) = (r.matcher.from, r.matcher.to) {
                if a > b {
                    return Err((format!("rules[{i}].match.to"), "`to` is smaller than `from`".into()));
                }
            }
            if let Some(Fault::Throttle { bytes_per_sec: 0 }) = r.fault {
                return Err((format!("rules[{i}].fault.bytes_per_sec"), "must be at least 1".into()));
            }
            if let Some(Fault::Dribble { chunks: 0, .. }) = r.fault {
                return Err((format!("rules[{i}].fault.chunks"), "must be at least 1".into()));
            }
        }
        self.check_limits()?;
        check_ranges(&serde_json::to_value(self).unwrap_or_default(), "")
    }
}

impl Plan {
    /// `limits` in their documented ranges. The lower bounds keep the control
    /// API (`/_bitsim/*`) reachable: hyper applies header limits to a request
    /// before its path is known, so a plan that would answer 431 to every
    /// request (`"max_headers": 0`) is refused rather than locking it out.
    fn check_limits(&self) -> Result<(), (String, String)> {
        let l = &self.limits;
        let ranges: [(&str, u64, u64, u64); 4] = [
            ("max_headers", l.max_headers as u64, 16, 10_000),
            ("max_header_bytes", l.max_header_bytes as u64, 8192, 1 << 20),
            ("max_bits_header_value", l.max_bits_header_value as u64, 1, 1 << 20),
            ("max_log_entries", l.max_log_entries as u64, 0, 1_000_000),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err((
                    format!("limits.{name}"),
                    format!("must be from {min} to {max} (got {value})"),
                ));
            }
        }
        Ok(())
    }
}

/// Largest body a plan may ask for: resource and reply sizes, garbage, changed
/// sizes (256 MiB; the same cap as the `/bytes/{n}` route).
pub const MAX_PLAN_BYTES: u64 = 256 << 20;

/// Longest delay a plan may ask for: 100 years in milliseconds (the scenario
/// format's virtual-time ceiling).
pub const MAX_PLAN_MS: u64 = 100 * 365 * 86_400_000;

/// Every millisecond and byte-count field of a plan, by name, with its range.
const RANGES: &[(&str, u64, &str)] = &[
    ("ms", MAX_PLAN_MS, "ms"),
    ("max_ms", MAX_PLAN_MS, "ms"),
    ("total_ms", MAX_PLAN_MS, "ms"),
    ("fallback_timeout", MAX_PLAN_MS, "ms"),
    ("size", MAX_PLAN_BYTES, "bytes"),
    ("bytes", MAX_PLAN_BYTES, "bytes"),
    ("max_body_bytes", MAX_PLAN_BYTES, "bytes"),
];

/// Walks the plan as JSON so that every field named in [`RANGES`], wherever it
/// appears (rules, resources, upload options), is held to its range.
fn check_ranges(v: &serde_json::Value, path: &str) -> Result<(), (String, String)> {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if let (Some((_, max, unit)), Some(n)) = (RANGES.iter().find(|(name, ..)| name == k), child.as_u64()) {
                    if n > *max {
                        return Err((here, format!("must be at most {max} {unit} (got {n})")));
                    }
                }
                check_ranges(child, &here)?;
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                check_ranges(child, &format!("{path}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// A downloadable resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Absolute URL path, e.g. `/files/a.bin`.
    pub path: String,
    /// The content.
    pub body: BodySpec,
    /// `Last-Modified`, unix seconds (default 1700000000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<u64>,
    /// `ETag` (quoted form is added if missing); default derived from size and date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// `Content-Type`, default `application/octet-stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// A resource body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BodySpec {
    /// `size` deterministic bytes from the seeded pattern (`seed` overrides the server seed).
    Pattern {
        #[schemars(range(max = 268_435_456))]
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
    },
    /// Literal UTF-8 text.
    Text(String),
}

/// One rule: a request matcher, an optional delay, an optional fault and an
/// optional scenario transition.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A label shown in the request log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which requests the rule applies to.
    #[serde(rename = "match", default)]
    pub matcher: Match,
    /// WireMock-style scenario state: the rule only matches in state `when`
    /// (if given) and moves the scenario to `then` (if given) when it fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<ScenarioStep>,
    /// Wait before answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// The fault to inject; none = answer normally (after the delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
}

/// Request conditions; all given conditions must hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// HTTP method (`GET`, `HEAD`, `BITS_POST`, ...), case-insensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Exact (decoded) path, without the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Path prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// `BITS-Packet-Type` (case-insensitive), e.g. `Fragment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_type: Option<String>,
    /// Only Fragments that end at the last byte of the upload (or only others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_fragment: Option<bool>,
    /// Whether a `Range` header is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_range: Option<bool>,
    /// Header equality (name case-insensitive, value exact).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Fire from the n-th matching request on (1-based, counted per rule
    /// over requests that meet the conditions above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// Fire up to and including the n-th matching request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    /// Fire with this probability (seeded; 0..=1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<Probability>,
}

/// A scenario condition and transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioStep {
    /// Scenario name; every scenario starts in state `Started`.
    pub name: String,
    /// Required current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// New state after the rule fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<String>,
}

/// A delay: fixed `ms`; uniform in `ms..=max_ms` if `max_ms` is given;
/// lognormal with median `ms` and `sigma` if `sigma` is given (capped by `max_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    #[schemars(range(max = 3_153_600_000_000u64))]
    pub ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
}

/// Where a connection reset happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResetPoint {
    BeforeResponse,
    AfterHeaders,
    MidBody,
}

/// How a multipart/byteranges answer is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MultipartFault {
    LongPartHeaders,
    ExtraCrlf,
    WrongPartRange,
    #[serde(rename = "status_200")]
    Status200,
}

/// Body framing when `Content-Length` is omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// Body delimited by closing the connection.
    #[default]
    Close,
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The fault catalogue (bits-http §5.3). `kind` selects the fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    // ---- HTTP level ----
    /// Answer with any status, extra headers (e.g. `Retry-After`, `Location`,
    /// `WWW-Authenticate`) and an optional text body.
    Status {
        status: u16,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// Answer normally after a delay (same as a rule `delay`).
    Delay {
        #[schemars(range(max = 3_153_600_000_000u64))]
        ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sigma: Option<f64>,
    },
    /// Read the request, never answer; with `ms`, close after that long.
    Stall {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ms: Option<u64>,
    },
    /// Send the headers, then no body; with `ms`, close after that long.
    HeadersThenStall {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ms: Option<u64>,
    },
    /// Send the body in `chunks` pieces spread evenly over `total_ms`.
    Dribble {
        chunks: u32,
        #[schemars(range(max = 3_153_600_000_000u64))]
        total_ms: u64,
    },
    /// Send the body at about `bytes_per_sec` (chunks every 100 ms).
    Throttle { bytes_per_sec: u64 },
    /// Declare the full `Content-Length`, send `after_bytes` of body, then FIN.
    Truncate { after_bytes: u64 },
    /// TCP reset (SO_LINGER 0; a plain close on in-memory pipes).
    Reset {
        at: ResetPoint,
        /// For `mid_body`: body bytes sent first (default: half the body).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_bytes: Option<u64>,
    },
    /// Close the connection without sending anything.
    EmptyResponse,
    /// Send `bytes` random bytes, then close.
    Garbage {
        #[serde(default = "default_garbage")]
        #[schemars(range(max = 268_435_456))]
        bytes: u32,
    },
    /// A 200 with `Transfer-Encoding: chunked` and a broken chunk, then close.
    MalformedChunked,
    /// An invalid multi-range answer (bits-http §1.1, §1.2): `mode` is
    /// `long_part_headers` (> 180 bytes of other part headers), `extra_crlf`
    /// (3 CRLFs before the first boundary), `wrong_part_range` (a part's
    /// Content-Range off by one) or `status_200` (the multipart body with 200).
    BadMultipart { mode: MultipartFault },
    /// Ignore `Range`: 200 with the full body.
    IgnoreRange,
    /// No `Content-Length`; the body is close-delimited or chunked.
    OmitContentLength {
        #[serde(default)]
        framing: Framing,
    },
    /// A wrong `Content-Range` on 206: shifted by `shift` bytes, or the literal `value`.
    WrongContentRange {
        #[serde(default)]
        shift: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// Declared `Content-Length` = real length + `delta`; then close.
    ContentLengthMismatch { delta: i64 },
    /// Serve the entity as if it had changed: new size, `Last-Modified`, ETag.
    Change {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_modified: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        etag: Option<String>,
    },
    /// `Content-Encoding: gzip` (ignores `Accept-Encoding: identity`).
    Gzip,
    /// Answer as HTTP/1.0, then close.
    Http10,
    /// Answer normally (keep-alive headers), then close after `ms` (slow close).
    CloseAfterResponse {
        #[serde(default)]
        #[schemars(range(max = 3_153_600_000_000u64))]
        ms: u64,
    },
    /// Remove a response header (e.g. `Content-Length` on HEAD, `Content-Range` on 206).
    OmitHeader { name: String },
    /// Require Basic credentials: 401 + `WWW-Authenticate` (or 407 +
    /// `Proxy-Authenticate` with `proxy`) unless they match.
    BasicAuth {
        user: String,
        password: String,
        #[serde(default)]
        proxy: bool,
    },
    // ---- BITS upload level (bits-http §3) ----
    /// An error Ack: status + `BITS-Error-Code` + `BITS-Error-Context`
    /// (e.g. 500 + 0x8020001F session not found, 500 + 0x80200020 too large,
    /// 500 + 0x80070070 disk full, 403/404/409/501 on Create-Session).
    BitsError {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<Hresult>,
        /// Default 0x5 (`BG_ERROR_CONTEXT_REMOTE_FILE`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<u32>,
    },
    /// Create-Session Ack with a different `BITS-Protocol`, or none.
    Protocol {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// Omit `BITS-Session-Id` from the Ack.
    OmitSessionId,
    /// Answer a Fragment with `status` (default 416) and an arbitrary
    /// `BITS-Received-Content-Range` (rewind or skip); data is not stored.
    Resync {
        offset: u64,
        #[serde(default = "default_416")]
        status: u16,
    },
    /// 413 for fragments larger than `max_bytes` (bits-http §3.6).
    FragmentLimit { max_bytes: u64 },
    /// Omit `BITS-Received-Content-Range` from a Fragment Ack.
    OmitReceivedRange,
    /// An Ack without `Content-Length` (close-delimited).
    AckWithoutContentLength,
    /// `BITS-Host-Id` (+ fallback timeout) on the Create-Session Ack.
    HostId {
        host: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallback_timeout: Option<u64>,
    },
    /// The session has expired: it is deleted and the packet gets 500 +
    /// `BG_E_SESSION_NOT_FOUND`.
    ExpireSession,
    // ---- upload-reply: the seven reply failures of bits-http §3.8 ----
    /// (1) The server application answers `status`: error Ack with context 0x7.
    AppError {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<Hresult>,
    },
    /// (2) The server application takes `ms` to answer; past
    /// `upload.app_timeout_ms` the Ack is the app-timeout error.
    AppStall {
        #[schemars(range(max = 3_153_600_000_000u64))]
        ms: u64,
    },
    /// (3) The final Ack has no `BITS-Reply-URL`.
    OmitReplyUrl,
    /// (4) `BITS-Reply-URL` is this value (e.g. a dead host or a failing path).
    ReplyUrl { url: String },
    /// (5) The server application's reply is this (e.g. `{"kind":"size","bytes":2000000}`
    /// for a reply larger than `GetReplyData`'s 1 MB).
    Reply { reply: ReplySpec },
    /// (6) The app processes the upload, then the server resets before the
    /// Ack: the client retries and the app is notified again (duplicate).
    AppCrash,
    /// (7) A bad server-application response: error Ack `status` (default 411)
    /// with `code` (default 0x80070057) and context 0x7.
    AppBadResponse {
        #[serde(default = "default_411")]
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<Hresult>,
    },
}

fn default_garbage() -> u32 {
    256
}
fn default_416() -> u16 {
    416
}
fn default_411() -> u16 {
    411
}

impl Fault {
    /// The `kind` name, as written in plans and the log.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Status { .. } => "status",
            Fault::Delay { .. } => "delay",
            Fault::Stall { .. } => "stall",
            Fault::HeadersThenStall { .. } => "headers_then_stall",
            Fault::Dribble { .. } => "dribble",
            Fault::Throttle { .. } => "throttle",
            Fault::BadMultipart { .. } => "bad_multipart",
            Fault::Truncate { .. } => "truncate",
            Fault::Reset { .. } => "reset",
            Fault::EmptyResponse => "empty_response",
            Fault::Garbage { .. } => "garbage",
            Fault::MalformedChunked => "malformed_chunked",
            Fault::IgnoreRange => "ignore_range",
            Fault::OmitContentLength { .. } => "omit_content_length",
            Fault::WrongContentRange { .. } => "wrong_content_range",
            Fault::ContentLengthMismatch { .. } => "content_length_mismatch",
            Fault::Change { .. } => "change",
            Fault::Gzip => "gzip",
            Fault::Http10 => "http10",
            Fault::CloseAfterResponse { .. } => "close_after_response",
            Fault::OmitHeader { .. } => "omit_header",
            Fault::BasicAuth { .. } => "basic_auth",
            Fault::BitsError { .. } => "bits_error",
            Fault::Protocol { .. } => "protocol",
            Fault::OmitSessionId => "omit_session_id",
            Fault::Resync { .. } => "resync",
            Fault::FragmentLimit { .. } => "fragment_limit",
            Fault::OmitReceivedRange => "omit_received_range",
            Fault::AckWithoutContentLength => "ack_without_content_length",
            Fault::HostId { .. } => "host_id",
            Fault::ExpireSession => "expire_session",
            Fault::AppError { .. } => "app_error",
            Fault::AppStall { .. } => "app_stall",
            Fault::OmitReplyUrl => "omit_reply_url",
            Fault::ReplyUrl { .. } => "reply_url",
            Fault::Reply { .. } => "reply",
            Fault::AppCrash => "app_crash",
            Fault::AppBadResponse { .. } => "app_bad_response",
        }
    }
}

/// What the in-process server application answers for an upload-reply job.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReplySpec {
    /// JSON `{"name","size","sha256"}` of the upload.
    #[default]
    Digest,
    /// The upload itself.
    Echo,
    /// Fixed text.
    Fixed { text: String },
    /// `bytes` deterministic pattern bytes.
    Size {
        #[schemars(range(max = 268_435_456))]
        bytes: u64,
    },
}

/// Name of the error header of error Acks (bits-http §3.5, §3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorHeader {
    /// `BITS-Error-Code` (Windows docs, open-source servers).
    #[default]
    BitsErrorCode,
    /// `BITS-Error` ([MC-BUP] text).
    BitsError,
    /// Both.
    Both,
}

/// Formatting of HRESULT values in error Acks (bits-http §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorFormat {
    /// `0x8020001F`.
    #[default]
    Hex0x,
    /// `8020001F`.
    Bare,
    /// `x8020001F` (as printed in [MC-BUP]).
    X,
}

/// Form of the `BITS-Reply-URL` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyUrlStyle {
    /// `BITS-Sessions\Replies\{GUID}\responsefile.bin`, relative to the
    /// upload URL, backslashes (the IIS wire capture, bits-http §3.3).
    #[default]
    IisRelative,
    /// `/upload-reply/BITS-Sessions/Replies/%7BGUID%7D/responsefile.bin`.
    Path,
    /// `http://{Host}/...` built from the request's Host header.
    Absolute,
}

/// An extra BITS upload endpoint: `BITS_POST {path_prefix}{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadEndpoint {
    /// Must start and end with `/`; the name is the single segment after it.
    pub path_prefix: String,
    /// Upload-reply endpoint with this server application reply; none = plain upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplySpec>,
}

/// Upload server behaviour. Where [MC-BUP] and IIS differ (bits-http §3.10)
/// the default is the IIS / Windows-docs behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UploadOptions {
    /// Commit finished uploads as files under this directory (created if
    /// missing). Default: keep them in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Allow a new upload to replace an existing one (IIS `BITSAllowOverwrites`, default false).
    pub allow_overwrites: bool,
    /// Status for "destination exists" on Create-Session: 409 (docs) or 403 (spec).
    pub exists_status: u16,
    /// Error header name.
    pub error_header: ErrorHeader,
    /// HRESULT formatting.
    pub error_format: ErrorFormat,
    /// Create-Session success status: 200 (spec, IIS capture) or 201 (docs).
    pub create_status: u16,
    /// Put `BITS-Session-Id` in Fragment / Close-Session Acks (spec MUST);
    /// IIS 6 omits it there (default false).
    pub session_id_in_acks: bool,
    /// Status for a Fragment without Content-Length: 400 (Windows) or 411 (spec).
    pub missing_content_length_status: u16,
    /// Largest fragment accepted; larger gets 413 (default 16 MiB; Windows
    /// clients send at most 13 MB).
    pub max_fragment_bytes: u64,
    /// Largest upload; larger gets 500 + `BG_E_TOO_LARGE` (default 30,000,000,
    /// the IIS 7 default).
    pub max_upload_bytes: u64,
    /// Session expiry after inactivity (default 14 days, `BITSSessionTimeout`).
    pub session_timeout_ms: u64,
    /// Server-application timeout (default 5 minutes).
    pub app_timeout_ms: u64,
    /// Status of the app-timeout error Ack (spec: 408).
    pub app_timeout_status: u16,
    /// HRESULT of the app-timeout error Ack (spec prints x80070112).
    pub app_timeout_code: Hresult,
    /// `BITS-Host-Id` to announce on Create-Session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// `BITS-Host-Id-Fallback-Timeout` seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_id_fallback_timeout: Option<u64>,
    /// The server application's reply on `/upload-reply/{name}`.
    pub reply: ReplySpec,
    /// Form of `BITS-Reply-URL`.
    pub reply_url: ReplyUrlStyle,
    /// Extra upload endpoints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<UploadEndpoint>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            dir: None,
            allow_overwrites: false,
            exists_status: 409,
            error_header: ErrorHeader::default(),
            error_format: ErrorFormat::default(),
            create_status: 200,
            session_id_in_acks: false,
            missing_content_length_status: 400,
            max_fragment_bytes: 16 << 20,
            max_upload_bytes: 30_000_000,
            session_timeout_ms: 1_209_600_000,
            app_timeout_ms: 300_000,
            app_timeout_status: 408,
            app_timeout_code: Hresult(0x8007_0112),
            host_id: None,
            host_id_fallback_timeout: None,
            reply: ReplySpec::Digest,
            reply_url: ReplyUrlStyle::default(),
            endpoints: Vec::new(),
        }
    }
}

/// Size limits for untrusted input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Request head (request line + headers) limit; beyond it 431 (8192..=1 MiB,
    /// default 16384).
    #[schemars(range(min = 8192, max = 1048576))]
    pub max_header_bytes: usize,
    /// Most request headers (16..=10000, default 100; beyond it 431). At least
    /// 16 so the control API stays reachable.
    #[schemars(range(min = 16, max = 10000))]
    pub max_headers: usize,
    /// Largest non-upload request body; beyond it 413 (default 1 MiB, at most
    /// 256 MiB). The control API (`PUT /_bitsim/plan`) always accepts at least
    /// 1 MiB, so a small limit cannot lock out the next plan.
    #[schemars(range(max = 268435456))]
    pub max_body_bytes: u64,
    /// Longest header value in a BITS packet (bits-http §3.1: 4 KB); beyond
    /// it 400 + E_INVALIDARG.
    #[schemars(range(min = 1, max = 1048576))]
    pub max_bits_header_value: usize,
    /// Request log capacity; the oldest entries are dropped (default 100000).
    #[schemars(range(max = 1000000))]
    pub max_log_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 1 << 20,
            max_bits_header_value: 4096,
            max_log_entries: 100_000,
        }
    }
}

/// An HRESULT, written as a number or a hex string (`"0x8020001F"`,
/// `"8020001F"`, `"x8020001F"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hresult(pub u32);

impl Serialize for Hresult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{:08X}", self.0))
    }
}

impl<'de> Deserialize<'de> for Hresult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Hresult;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an HRESULT as a u32 or a hex string like \"0x8020001F\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Hresult, E> {
                u32::try_from(v)
                    .map(Hresult)
                    .map_err(|_| E::custom("HRESULT out of range"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Hresult, E> {
                i32::try_from(v)
                    .map(|v| Hresult(v as u32))
                    .map_err(|_| E::custom("HRESULT out of range"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Hresult, E> {
                let t = v.trim();
                let t = t
                    .strip_prefix("0x")
                    .or_else(|| t.strip_prefix("0X"))
                    .or_else(|| t.strip_prefix('x'))
                    .unwrap_or(t);
                u32::from_str_radix(t, 16)
                    .map(Hresult)
                    .map_err(|_| E::custom(format!("invalid HRESULT `{v}`")))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Hresult {
    fn schema_name() -> Cow<'static, str> {
        "Hresult".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "HRESULT as an integer or a hex string (0x8020001F, 8020001F, x8020001F)",
            "anyOf": [
                { "type": "integer", "minimum": -2147483648i64, "maximum": 4294967295u64 },
                { "type": "string", "pattern": "^(0[xX]|x)?[0-9a-fA-F]{1,8}$" }
            ]
        })
    }
}

/// A probability in `0..=1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Probability(pub f64);

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if (0.0..=1.0).contains(&v) {
            Ok(Probability(v))
        } else {
            Err(serde::de::Error::custom(format!("probability {v} is not within 0..=1")))
        }
    }
}

impl JsonSchema for Probability {
    fn schema_name() -> Cow<'static, str> {
        "Probability".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "number", "minimum": 0.0, "maximum": 1.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_roundtrip() {
        let p = Plan::default();
        let j = p.to_json_pretty();
        assert_eq!(Plan::from_json_str(&j, "x").unwrap(), p);
        assert_eq!(Plan::from_json_str("{}", "x").unwrap(), p);
    }

    #[test]
    fn error_has_position_and_path() {
        let j = "{\n  \"rules\": [\n    {\"fault\": {\"kind\": \"nope\"}}\n  ]\n}";
        let e = Plan::from_json_str(j, "plan.json").unwrap_err();
        assert_eq!(e.origin, "plan.json");
        assert_eq!(e.line, 3);
        assert!(e.path.starts_with("rules[0].fault"), "{e}");
        assert!(e.to_string().starts_with("plan.json:3:"), "{e}");
        let e = Plan::from_json_str("{\"rules\":[{\"match\":{\"probability\":2}}]}", "p").unwrap_err();
        assert_eq!(e.path, "rules[0].match.probability");
        let e = Plan::from_json_str("{\"limits\":{\"max_headers\":-1}}", "p").unwrap_err();
        assert_eq!(e.path, "limits.max_headers");
    }

    /// Issue 13: numbers out of range and cross-field errors point at the
    /// field's real line and column (they said 0:0).
    #[test]
    fn out_of_range_numbers_name_their_line() {
        let j = "{\n  \"rules\": [\n    {\"fault\": {\"kind\": \"delay\",\n      \"ms\": 99999999999999}}\n  ]\n}";
        let e = Plan::from_json_str(j, "p.json").unwrap_err();
        assert_eq!(e.path, "rules[0].fault.ms");
        assert_eq!((e.line, e.column), (4, 7), "{e}");
        assert!(e.message.contains("at most"), "{e}");
        let j = "{\"resources\": [{\"path\": \"/big\", \"body\": {\"pattern\": {\"size\": 2000000000}}}]}";
        let e = Plan::from_json_str(j, "p.json").unwrap_err();
        assert!(e.path.ends_with("size"), "{e}");
        assert!(e.message.contains("268435456"), "{e}");
    }

    #[test]
    fn hresult_forms() {
        for s in ["\"0x8020001F\"", "\"8020001F\"", "\"x8020001F\"", "2149580831"] {
            let h: Hresult = serde_json::from_str(s).unwrap();
            assert_eq!(h, Hresult(0x8020_001F));
        }
    }

    #[test]
    fn schema_generates() {
        let s = Plan::json_schema();
        assert!(s.get("properties").is_some());
    }
}
