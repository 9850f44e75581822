//! The BITS upload protocol [MC-BUP] (bits-http §3): `BITS_POST` with Ping,
//! Create-Session, Fragment, Close-Session and Cancel-Session, and the
//! in-process server application of upload-reply jobs (§3.8).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::handler::{read_body, Req};
use crate::plan::{ErrorFormat, ErrorHeader, Fault, Plan, ReplySpec, ReplyUrlStyle, UploadOptions};
use crate::reply::{BodySrc, Reply};
use crate::server::{Inner, Session, StoredReply};
use crate::util::{hex, parse_content_range, percent_encode_segment};

/// The only upload protocol: "BITS 1.5 Upload Protocol" (bits-http §3.1).
pub const BITS_PROTOCOL_GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";

pub(crate) const E_INVALIDARG: u32 = 0x8007_0057;
pub(crate) const E_ACCESSDENIED: u32 = 0x8007_0005;
pub(crate) const BG_E_SESSION_NOT_FOUND: u32 = 0x8020_001F;
pub(crate) const BG_E_TOO_LARGE: u32 = 0x8020_0020;
pub(crate) const ERROR_DISK_FULL_HR: u32 = 0x8007_0070;
const E_FAIL: u32 = 0x8000_4005;
const CTX_REMOTE_FILE: u32 = 5;
const CTX_REMOTE_APPLICATION: u32 = 7;
/// Largest reply generated for `{"kind":"size"}` (1 GiB).
const MAX_REPLY: u64 = 1 << 30;
/// Bodies of rejected fragments up to this size are read and dropped so the
/// connection stays usable.
const DRAIN_LIMIT: u64 = 64 << 20;

/// Upload endpoint for a path: `(reply spec, name)`; reply `Some` = upload-reply.
pub(crate) fn endpoint<'a>(plan: &'a Plan, path: &'a str) -> Option<(Option<ReplySpec>, &'a str)> {
    for ep in &plan.upload.endpoints {
        if let Some(name) = path.strip_prefix(ep.path_prefix.as_str()) {
            if !name.contains('/') {
                return Some((ep.reply.clone(), name));
            }
        }
    }
    if plan.builtin_routes {
        if let Some(name) = path.strip_prefix("/upload/") {
            if !name.contains('/') {
                return Some((None, name));
            }
        }
        if let Some(name) = path.strip_prefix("/upload-reply/") {
            if !name.contains('/') {
                return Some((Some(plan.upload.reply.clone()), name));
            }
        }
    }
    None
}

/// An upload name that cannot escape the upload directory: one path
/// segment, no separators, no `..`, no drive letters or control characters,
/// none of the characters Windows forbids (bits-http §3.2 Content-Name rules).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|'))
}

fn fmt_hr(opts: &UploadOptions, code: u32) -> String {
    match opts.error_format {
        ErrorFormat::Hex0x => format!("0x{code:08X}"),
        ErrorFormat::Bare => format!("{code:08X}"),
        ErrorFormat::X => format!("x{code:08X}"),
    }
}

/// An Ack: `BITS-Packet-Type: Ack`, `Content-Length: 0` (bits-http §3.3).
fn ack(status: u16) -> Reply {
    let mut r = Reply::new(status);
    r.header("BITS-Packet-Type", "Ack");
    r
}

/// An error Ack with `BITS-Error-Code` / `BITS-Error` and `BITS-Error-Context`.
/// ref: bits-http §3.5, §3.10 (header name and value format are plan options)
pub(crate) fn error_ack(opts: &UploadOptions, status: u16, code: Option<u32>, context: u32) -> Reply {
    let mut r = ack(status);
    if let Some(code) = code {
        let v = fmt_hr(opts, code);
        match opts.error_header {
            ErrorHeader::BitsErrorCode => {
                r.header("BITS-Error-Code", v);
            }
            ErrorHeader::BitsError => {
                r.header("BITS-Error", v);
            }
            ErrorHeader::Both => {
                r.header("BITS-Error-Code", v.clone());
                r.header("BITS-Error", v);
            }
        }
        r.header("BITS-Error-Context", format!("0x{context:X}"));
    }
    r
}

fn session_not_found(opts: &UploadOptions) -> Reply {
    error_ack(opts, 500, Some(BG_E_SESSION_NOT_FOUND), CTX_REMOTE_FILE)
}

fn invalid_arg(opts: &UploadOptions) -> Reply {
    error_ack(opts, 400, Some(E_INVALIDARG), CTX_REMOTE_FILE)
}

pub(crate) async fn bits_post(
    inner: &Arc<Inner>,
    r: &Req,
    body: Incoming,
    plan: &Plan,
    reply_spec: Option<ReplySpec>,
    name: &str,
    fault: Option<&Fault>,
) -> Reply {
    let opts = &plan.upload;
    // ref: bits-http §3.1 — header values up to 4 KB; the server answers 400
    if r.headers.values().any(|v| v.len() > plan.limits.max_bits_header_value) {
        return invalid_arg(opts);
    }
    let Some(pt) = r.header("bits-packet-type") else {
        return invalid_arg(opts);
    };
    if !valid_name(name) {
        return invalid_arg(opts);
    }
    // ref: bits-http §3.1 — packet types match case-insensitively
    let mut rep = match pt.to_ascii_lowercase().as_str() {
        // ref: bits-http §3.3 — Ping: 200, no processing
        "ping" => ack(200),
        "create-session" => create_session(inner, r, opts, reply_spec, name, fault),
        "fragment" => fragment(inner, r, body, plan, fault).await,
        "close-session" => close_session(inner, r, opts, fault),
        "cancel-session" => cancel_session(inner, r, opts, fault),
        // ref: bits-http §3.5 — unknown packet type: 400 + E_INVALIDARG
        _ => invalid_arg(opts),
    };
    if matches!(fault, Some(Fault::OmitSessionId)) {
        rep.remove_header("BITS-Session-Id");
    }
    rep
}

/// ref: bits-http §3.2, §3.3 (Create-Session), §3.9 (no overwrite by default)
fn create_session(
    inner: &Arc<Inner>,
    r: &Req,
    opts: &UploadOptions,
    reply_spec: Option<ReplySpec>,
    name: &str,
    fault: Option<&Fault>,
) -> Reply {
    let supported = r.header("bits-supported-protocols").unwrap_or("");
    if !supported
        .split([' ', ',', '\t'])
        .any(|g| g.trim().eq_ignore_ascii_case(BITS_PROTOCOL_GUID))
    {
        // no common protocol
        return invalid_arg(opts);
    }
    let exists = {
        let st = inner.state();
        st.uploads.contains_key(&r.path)
    } || opts
        .dir
        .as_ref()
        .is_some_and(|d| reply_spec.is_none() && d.join(name).exists());
    if exists && !opts.allow_overwrites && reply_spec.is_none() {
        return error_ack(opts, opts.exists_status, Some(E_ACCESSDENIED), CTX_REMOTE_FILE);
    }
    if memory_full(inner, 0) {
        // ref: bits-http §3.5 — 500 + ERROR_DISK_FULL: the server is out of room
        return error_ack(opts, 500, Some(ERROR_DISK_FULL_HR), CTX_REMOTE_FILE);
    }
    let id = {
        let mut st = inner.state();
        let id = st.rng.guid();
        st.sessions.insert(
            id.clone(),
            Session {
                path: r.path.clone(),
                name: name.to_string(),
                reply: reply_spec,
                total: None,
                data: Vec::new(),
                last_activity: Instant::now(),
                notified: 0,
                reply_path: None,
            },
        );
        id
    };
    let mut rep = ack(opts.create_status);
    match fault {
        Some(Fault::Protocol { value: Some(v) }) => {
            rep.header("BITS-Protocol", v.clone());
        }
        Some(Fault::Protocol { value: None }) => {}
        _ => {
            rep.header("BITS-Protocol", BITS_PROTOCOL_GUID);
        }
    }
    rep.header("BITS-Session-Id", id);
    rep.header("Accept-Encoding", "Identity");
    let host = match fault {
        Some(Fault::HostId { host, fallback_timeout }) => Some((host.clone(), *fallback_timeout)),
        _ => opts.host_id.clone().map(|h| (h, opts.host_id_fallback_timeout)),
    };
    if let Some((h, t)) = host {
        // ref: bits-http §3.4 — BITS-Host-Id and its fallback timeout
        rep.header("BITS-Host-Id", h);
        if let Some(t) = t {
            rep.header("BITS-Host-Id-Fallback-Timeout", t.to_string());
        }
    }
    rep
}

/// Looks up a live session for this URL; expired sessions are deleted.
/// ref: bits-http §3.9 — expiry deletes the session; next packet gets 500 + SESSION_NOT_FOUND
fn live_session<'a>(
    st: &'a mut crate::server::State,
    r: &Req,
    opts: &UploadOptions,
    expire_now: bool,
) -> Option<(&'a mut Session, String)> {
    let id = r.header("bits-session-id")?.trim().to_string();
    let expired = match st.sessions.get(&id) {
        None => return None,
        Some(s) => {
            if s.path != r.path {
                return None;
            }
            expire_now
                || Instant::now().saturating_duration_since(s.last_activity)
                    > Duration::from_millis(opts.session_timeout_ms)
        }
    };
    if expired {
        if let Some(s) = st.sessions.remove(&id) {
            if let Some(p) = s.reply_path {
                st.replies.remove(&p);
            }
        }
        return None;
    }
    let s = st.sessions.get_mut(&id)?;
    Some((s, id))
}

/// ref: bits-http §3.3, §3.6 (Fragment rules and acks)
async fn fragment(inner: &Arc<Inner>, r: &Req, body: Incoming, plan: &Plan, fault: Option<&Fault>) -> Reply {
    let opts = &plan.upload;
    let expire = matches!(fault, Some(Fault::ExpireSession));
    if r.header("bits-session-id").is_none() {
        return invalid_arg(opts);
    }
    {
        let mut st = inner.state();
        if live_session(&mut st, r, opts, expire).is_none() {
            return session_not_found(opts);
        }
    }
    // ref: bits-http §3.5 — missing Content-Length: 400 (Windows) or 411 (spec)
    let Some(cl) = r.header("content-length").and_then(|v| v.trim().parse::<u64>().ok()) else {
        return error_ack(
            opts,
            opts.missing_content_length_status,
            Some(E_INVALIDARG),
            CTX_REMOTE_FILE,
        );
    };
    let mut max_frag = opts.max_fragment_bytes;
    if let Some(Fault::FragmentLimit { max_bytes }) = fault {
        max_frag = max_frag.min(*max_bytes);
    }
    if cl > max_frag {
        // ref: bits-http §3.6 — 413: the client retries with smaller fragments
        drain(body, cl).await;
        return ack(413);
    }
    let Some((a, b, total)) = r.header("content-range").and_then(parse_content_range) else {
        drain(body, cl).await;
        return invalid_arg(opts);
    };
    if b - a + 1 != cl {
        drain(body, cl).await;
        return invalid_arg(opts);
    }
    if total > opts.max_upload_bytes {
        // ref: bits-http §3.5 — BG_E_TOO_LARGE
        drain(body, cl).await;
        return error_ack(opts, 500, Some(BG_E_TOO_LARGE), CTX_REMOTE_FILE);
    }
    if memory_full(inner, cl) {
        // ref: bits-http §3.5 — 500 + ERROR_DISK_FULL: the server is out of room
        drain_with(inner, body, cl).await;
        return error_ack(opts, 500, Some(ERROR_DISK_FULL_HR), CTX_REMOTE_FILE);
    }
    let data = match read_body(body, cl, inner.limits.body_idle_timeout).await {
        Ok(d) if d.len() as u64 == cl => d,
        _ => return invalid_arg(opts),
    };
    let session_ack_id = |rep: &mut Reply, id: &str| {
        if opts.session_id_in_acks {
            rep.header("BITS-Session-Id", id.to_string());
        }
    };
    let (received, id, notify) = {
        let mut st = inner.state();
        let Some((s, id)) = live_session(&mut st, r, opts, false) else {
            return session_not_found(opts);
        };
        if s.total.is_some_and(|t| t != total) {
            // total length changed between fragments
            return invalid_arg(opts);
        }
        s.total = Some(total);
        let received = s.data.len() as u64;
        if let Some(Fault::Resync { offset, status }) = fault {
            // ref: bits-http §3.6 — an arbitrary offset makes the client rewind or skip
            let mut rep = if *status == 200 {
                ack(200)
            } else {
                error_ack(opts, *status, Some(0), CTX_REMOTE_FILE)
            };
            rep.header("BITS-Received-Content-Range", offset.to_string());
            session_ack_id(&mut rep, &id);
            return rep;
        }
        if a > received {
            // ref: bits-http §3.6 — a gap: 416 with the offset the server wants
            let mut rep = error_ack(opts, 416, Some(0), CTX_REMOTE_FILE);
            rep.header("BITS-Received-Content-Range", received.to_string());
            session_ack_id(&mut rep, &id);
            return rep;
        }
        if b + 1 > received {
            // Only the new tail is written; received bytes are never overwritten.
            let skip = (received - a) as usize;
            s.data.extend_from_slice(&data[skip..]);
        }
        s.last_activity = Instant::now();
        let received = s.data.len() as u64;
        let notify = received == total && b + 1 == total && s.reply.is_some();
        (received, id, notify)
    };
    let mut rep = ack(200);
    if !matches!(fault, Some(Fault::OmitReceivedRange)) {
        rep.header("BITS-Received-Content-Range", received.to_string());
    }
    session_ack_id(&mut rep, &id);
    if notify {
        return server_app(inner, r, opts, &id, rep, fault).await;
    }
    rep
}

/// The in-process server application of an upload-reply job.
/// ref: bits-http §3.8 (notification, reply, BITS-Reply-URL, the seven reply failures)
async fn server_app(
    inner: &Arc<Inner>,
    r: &Req,
    opts: &UploadOptions,
    id: &str,
    mut rep: Reply,
    fault: Option<&Fault>,
) -> Reply {
    let app_err = |status: u16, code: u32| error_ack(opts, status, Some(code), CTX_REMOTE_APPLICATION);
    if let Some(Fault::AppStall { ms }) = fault {
        // (2) the app is slow; past the app timeout the Ack is an error
        let timeout = opts.app_timeout_ms;
        tokio::time::sleep(Duration::from_millis((*ms).min(timeout))).await;
        if *ms >= timeout {
            let n = bump_notified(inner, id);
            let mut e = app_err(opts.app_timeout_status, opts.app_timeout_code.0);
            e.note = Some(format!("app notified #{n} (timed out)"));
            return e;
        }
    }
    let (data, name, spec, n, reply_path) = {
        let mut st = inner.state();
        let Some(s) = st.sessions.get_mut(id) else {
            return session_not_found(opts);
        };
        s.notified += 1;
        let dir = s.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let reply_path = format!("{dir}/BITS-Sessions/Replies/{id}/responsefile.bin");
        s.reply_path = Some(reply_path.clone());
        let spec = match fault {
            Some(Fault::Reply { reply }) => reply.clone(),
            _ => s.reply.clone().unwrap_or_default(),
        };
        (s.data.clone(), s.name.clone(), spec, s.notified, reply_path)
    };
    let note = Some(format!("app notified #{n}"));
    match fault {
        Some(Fault::AppError { status, code }) => {
            // (1) app error status: error Ack, context 0x7
            let mut e = app_err(*status, code.map(|c| c.0).unwrap_or(0x8019_0000 + *status as u32));
            e.note = note;
            return e;
        }
        Some(Fault::AppBadResponse { status, code }) => {
            // (7) bad app response (spec: 411 + E_INVALIDARG)
            let mut e = app_err(*status, code.map(|c| c.0).unwrap_or(E_INVALIDARG));
            e.note = note;
            return e;
        }
        _ => {}
    }
    let (body, size, content_type) = match spec {
        ReplySpec::Digest => {
            let digest = hex(&Sha256::digest(&data));
            let json = serde_json::json!({ "name": name, "size": data.len(), "sha256": digest });
            let b = Bytes::from(json.to_string());
            let n = b.len() as u64;
            (BodySrc::Bytes(b), n, "application/json")
        }
        ReplySpec::Echo => {
            let n = data.len() as u64;
            (BodySrc::Bytes(Bytes::from(data)), n, "application/octet-stream")
        }
        ReplySpec::Fixed { text } => {
            let n = text.len() as u64;
            (BodySrc::Bytes(Bytes::from(text)), n, "text/plain; charset=utf-8")
        }
        ReplySpec::Size { bytes } => (
            BodySrc::Pattern(inner.pattern.clone()),
            bytes.min(MAX_REPLY),
            "application/octet-stream",
        ),
    };
    inner.state().replies.insert(
        reply_path.clone(),
        StoredReply {
            body,
            size,
            content_type,
        },
    );
    let url = match fault {
        Some(Fault::ReplyUrl { url }) => Some(url.clone()), // (4)
        Some(Fault::OmitReplyUrl) => None,                  // (3)
        _ => Some(reply_url(opts, r, id, &reply_path)),
    };
    if let Some(url) = url {
        rep.header("BITS-Reply-URL", url);
    }
    rep.note = note;
    if matches!(fault, Some(Fault::AppCrash)) {
        // (6) processed and notified, then the server dies before the Ack
        let mut crash = Reply::raw_close(true);
        crash.note = rep.note.take();
        return crash;
    }
    rep
}

fn bump_notified(inner: &Arc<Inner>, id: &str) -> u32 {
    let mut st = inner.state();
    match st.sessions.get_mut(id) {
        Some(s) => {
            s.notified += 1;
            s.notified
        }
        None => 0,
    }
}

/// ref: bits-http §3.3 — the IIS capture sends a relative URL with backslashes
fn reply_url(opts: &UploadOptions, r: &Req, id: &str, reply_path: &str) -> String {
    match opts.reply_url {
        ReplyUrlStyle::IisRelative => format!("BITS-Sessions\\Replies\\{id}\\responsefile.bin"),
        ReplyUrlStyle::Path | ReplyUrlStyle::Absolute => {
            let path: String = reply_path
                .split('/')
                .map(percent_encode_segment)
                .collect::<Vec<_>>()
                .join("/");
            match (opts.reply_url, r.header("host")) {
                (ReplyUrlStyle::Absolute, Some(h)) => format!("http://{h}{path}"),
                _ => path,
            }
        }
    }
}

/// ref: bits-http §3.3 (Close-Session): commit the upload, drop the reply
fn close_session(inner: &Arc<Inner>, r: &Req, opts: &UploadOptions, fault: Option<&Fault>) -> Reply {
    let expire = matches!(fault, Some(Fault::ExpireSession));
    let mut st = inner.state();
    let Some((s, id)) = live_session(&mut st, r, opts, expire) else {
        return session_not_found(opts);
    };
    let complete = s.total.is_some_and(|t| t == s.data.len() as u64);
    let plain = s.reply.is_none();
    if plain && !complete {
        // UNVERIFIED: closing an incomplete upload session
        return invalid_arg(opts);
    }
    let Some(s) = st.sessions.remove(&id) else {
        return session_not_found(opts);
    };
    if let Some(p) = &s.reply_path {
        // ref: bits-http §3.8 — the reply is lost after Close-Session
        st.replies.remove(p);
    }
    if plain {
        let exists = st.uploads.contains_key(&s.path) || opts.dir.as_ref().is_some_and(|d| d.join(&s.name).exists());
        if exists && !opts.allow_overwrites {
            return error_ack(opts, opts.exists_status, Some(E_ACCESSDENIED), CTX_REMOTE_FILE);
        }
        match &opts.dir {
            None => {
                st.uploads.insert(s.path.clone(), Bytes::from(s.data));
            }
            Some(dir) => {
                drop(st);
                if let Err(e) = write_upload(dir, &s.name, &s.data) {
                    let code = if e.raw_os_error() == Some(28) {
                        ERROR_DISK_FULL_HR
                    } else {
                        E_FAIL
                    };
                    return error_ack(opts, 500, Some(code), CTX_REMOTE_FILE);
                }
            }
        }
    }
    let mut rep = ack(200);
    if opts.session_id_in_acks {
        rep.header("BITS-Session-Id", id);
    }
    rep
}

fn write_upload(dir: &std::path::Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    if !valid_name(name) {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, dir.join(name))
}

/// ref: bits-http §3.3 (Cancel-Session)
fn cancel_session(inner: &Arc<Inner>, r: &Req, opts: &UploadOptions, fault: Option<&Fault>) -> Reply {
    let expire = matches!(fault, Some(Fault::ExpireSession));
    let mut st = inner.state();
    let Some((_, id)) = live_session(&mut st, r, opts, expire) else {
        return session_not_found(opts);
    };
    if let Some(s) = st.sessions.remove(&id) {
        if let Some(p) = s.reply_path {
            st.replies.remove(&p);
        }
    }
    let mut rep = ack(200);
    rep.header("BITS-Session-Id", id);
    rep
}

/// [`drain`] with the server's body idle timeout.
async fn drain_with(inner: &Arc<Inner>, body: Incoming, cl: u64) {
    if cl <= DRAIN_LIMIT {
        let _ = read_body(body, DRAIN_LIMIT, inner.limits.body_idle_timeout).await;
    }
}

/// Whether `more` upload bytes would go over the server's upload-memory cap
/// (session data plus committed uploads kept in memory), or the session cap is
/// reached (`more == 0` asks about a new session).
fn memory_full(inner: &Arc<Inner>, more: u64) -> bool {
    let st = inner.state();
    let held: u64 = st.sessions.values().map(|s| s.data.len() as u64).sum::<u64>()
        + st.uploads.values().map(|u| u.len() as u64).sum::<u64>();
    let sessions_full = more == 0 && st.sessions.len() >= inner.limits.max_upload_sessions;
    sessions_full || held.saturating_add(more) > inner.limits.max_upload_memory
}

async fn drain(body: Incoming, cl: u64) {
    if cl <= DRAIN_LIMIT {
        let _ = read_body(body, DRAIN_LIMIT, crate::ServerLimits::default().body_idle_timeout).await;
    }
}
