//! Transfer tasks: one tokio task per `StartTransfer` effect. A task moves bytes and
//! reports what it saw as `TransferEvent`s; it never decides BITS semantics.
//!
//! Downloads follow bits-http §1: HEAD for size and Last-Modified, restart from 0 when
//! they change (§1.3), GET with a single Range when resuming, 200 to a ranged GET is
//! "no Range support". Uploads follow [MC-BUP] (bits-http §3): Create-Session (Ping on
//! resume), Fragments with Content-Range and `BITS-Received-Content-Range` resync,
//! Close-Session; upload-reply jobs fetch the reply from `BITS-Reply-URL`.

use crate::wire::{self, Conn, Connector};
use bitsim_model::{
    AuthScheme, AuthTarget, Classified, Disposition, ErrorContext, Hresult, JobId, JobType, ProtocolFailure,
    RequestPhase, SourceFailure, TransferEvent, TransferFailure, TransferId, TransferStart, TransferWhat,
};
use bitsim_server::BITS_PROTOCOL_GUID;
use bytes::Bytes;
use http::{Method, StatusCode, Uri};
use http_body_util::Full;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use tokio::sync::mpsc::UnboundedSender;

/// What a task tells the simulator.
#[derive(Debug)]
pub(crate) enum Input {
    Transfer(TransferId, TransferEvent),
    /// A trace line about the wire (`http GET /f -> 206`).
    Line(String),
    NotifyReturned(bitsim_model::NotificationId, Hresult),
    /// An external host's notify command line exited with this code.
    CommandExited(bitsim_model::NotificationId, i32),
    LastModified(JobId, usize, Option<String>),
    Session(JobId, Option<String>),
    ReplyUrl(JobId, String),
    ReplyBody(JobId, Bytes),
    /// A Cancel-Session try ended; `true` when the server answered.
    CancelSessionDone(JobId, bool),
    /// The job opened this mock-server connection (the report files its requests under the job).
    Connection(u64, JobId),
}

/// Everything a task needs, cloned out of the simulator.
pub(crate) struct Task {
    pub start: TransferStart,
    pub connector: Connector,
    /// Permits for open connections; a task holds one while it runs.
    pub connections: std::sync::Arc<tokio::sync::Semaphore>,
    pub tx: UnboundedSender<Input>,
    /// Download: the temporary file.
    pub temp: PathBuf,
    /// The run's directory: every local file must stay inside it.
    pub files: crate::confine::LocalFiles,
    pub last_modified: Option<String>,
    pub session: Option<String>,
    pub reply_url: Option<String>,
    /// Authorization headers earned by answering a challenge, sent on every later
    /// request of this transfer.
    pub auth: std::sync::Mutex<Vec<(&'static str, String)>>,
}

/// UNC names the simulator maps onto the run's directory: `\\bitsim.test\run\NAME`.
pub const UNC_PREFIX: &str = "\\\\bitsim.test\\run\\";

/// Fragment size for uploads: within the Windows client's 5 KB … 13 MB (bits-http §3.6).
const FRAGMENT: usize = 64 * 1024;
const MIN_FRAGMENT: usize = 5 * 1024;
const MAX_REDIRECTS: usize = 10;

impl Task {
    fn event(&self, e: TransferEvent) {
        let _ = self.tx.send(Input::Transfer(self.start.transfer, e));
    }

    fn line(&self, s: String) {
        tracing::debug!(target: "bitsim::wire", "{s}");
        let _ = self.tx.send(Input::Line(s));
    }

    /// Opens a connection and tells the simulator whose it is.
    async fn connect(&self, uri: &Uri) -> Result<Conn, TransferFailure> {
        let conn = self.connector.connect(uri).await?;
        if let Some(id) = conn.id() {
            let _ = self.tx.send(Input::Connection(id, self.start.job));
        }
        Ok(conn)
    }

    /// Adds the Authorization headers a challenge made necessary.
    fn authorize(&self, mut req: http::request::Builder) -> http::request::Builder {
        if let Ok(auth) = self.auth.lock() {
            for (name, value) in auth.iter() {
                req = req.header(*name, value.as_str());
            }
        }
        req
    }

    /// A 401 (server) or 407 (proxy) Basic challenge the job has Basic credentials for:
    /// remembers the header and says to send the request again. The model handed the
    /// credentials over (it decides which apply); a second challenge for the same target
    /// is not answered again, so a wrong password ends in the 401 / 407 itself.
    fn answer_challenge(&self, resp: &wire::Response) -> bool {
        let (target, challenge, header) = match resp.status.as_u16() {
            401 => (AuthTarget::Server, "www-authenticate", "Authorization"),
            407 => (AuthTarget::Proxy, "proxy-authenticate", "Proxy-Authorization"),
            _ => return false,
        };
        let basic = wire::header(&resp.headers, challenge)
            .is_some_and(|c| c.trim_start().get(..5).is_some_and(|s| s.eq_ignore_ascii_case("basic")));
        let cred = self
            .start
            .credentials
            .iter()
            .find(|c| c.target == target && c.scheme == AuthScheme::Basic);
        let (Some(cred), true) = (cred, basic) else {
            return false;
        };
        let (Some(user), Some(password)) = (&cred.user, &cred.password) else {
            return false;
        };
        let Ok(mut auth) = self.auth.lock() else {
            return false;
        };
        if auth.iter().any(|(n, _)| *n == header) {
            return false;
        }
        auth.push((
            header,
            format!("Basic {}", wire::base64(format!("{user}:{password}").as_bytes())),
        ));
        self.line(format!(
            "http {} challenge answered with Basic credentials",
            resp.status.as_u16()
        ));
        true
    }

    fn fail(&self, f: TransferFailure) {
        self.event(TransferEvent::Failed(f));
    }

    pub(crate) async fn run(self) {
        let Ok(_permit) = self.connections.clone().acquire_owned().await else {
            return;
        };
        let result = match (self.start.job_type, self.start.what) {
            (JobType::Download, TransferWhat::File(_)) if !is_http(&self.start.remote_name) => self.copy_local().await,
            (JobType::Download, TransferWhat::File(_)) => self.download_file().await,
            (_, TransferWhat::Reply) => self.download_reply().await,
            (_, TransferWhat::File(_)) => self.upload().await,
        };
        if let Err(f) = result {
            tracing::debug!(failure = ?f, "transfer failed");
            self.fail(f);
        }
    }

    // ----- downloads ---------------------------------------------------------

    /// A local, UNC or file:// source (SMB in BITS, ref: bits-spec §7.3): copied from the
    /// byte offset into the temporary file; failures are reported, the model classifies.
    async fn copy_local(&self) -> Result<(), TransferFailure> {
        use std::io::Read;
        let path = local_source(&self.start.remote_name, self.files.dir()).map_err(TransferFailure::Source)?;
        // The run directory's own confinement rules (symlinks, …) apply to sources too.
        self.files
            .check(&path)
            .map_err(|_| TransferFailure::Source(SourceFailure::AccessDenied))?;
        let source_error = |e: std::io::Error| {
            TransferFailure::Source(match e.kind() {
                std::io::ErrorKind::NotFound if path.parent().is_some_and(|d| !d.is_dir()) => {
                    SourceFailure::PathNotFound
                }
                std::io::ErrorKind::NotFound => SourceFailure::NotFound,
                _ => SourceFailure::AccessDenied,
            })
        };
        let mut file = std::fs::File::open(&path).map_err(source_error)?;
        let size = file.metadata().map_err(source_error)?.len();
        if !file.metadata().map_err(source_error)?.is_file() {
            return Err(TransferFailure::Source(SourceFailure::AccessDenied));
        }
        self.line(format!("copy {} ({size} bytes)", self.start.remote_name));
        self.event(TransferEvent::Connected {
            bytes_total: Some(size),
        });
        let offset = self.start.offset.min(size);
        file.seek(SeekFrom::Start(offset)).map_err(source_error)?;
        let mut sink = FileSink::open(&self.files, &self.temp, offset).map_err(local_error)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(source_error)?;
            if n == 0 {
                break;
            }
            sink.write(&buf[..n]).map_err(local_error)?;
            self.event(TransferEvent::Progress { bytes: n as u64 });
        }
        self.event(TransferEvent::FileDone);
        Ok(())
    }

    async fn download_file(&self) -> Result<(), TransferFailure> {
        let uri = parse_uri(&self.start.remote_name)?;
        let mut conn = self.connect(&uri).await?;
        let head = self.head(&mut conn, &uri, RequestPhase::Download).await?;
        let TransferWhat::File(file) = self.start.what else {
            return Ok(());
        };
        let mut offset = self.start.offset;
        let changed = (self.last_modified.is_some() && self.last_modified != head.last_modified)
            || self.start.known_size.is_some_and(|s| s != head.size);
        let _ = self
            .tx
            .send(Input::LastModified(self.start.job, file, head.last_modified.clone()));
        if changed && (offset > 0 || self.start.known_size.is_some()) {
            // ref: bits-http §1.3 step 2: a new timestamp or size restarts the file
            self.event(TransferEvent::RemoteChanged {
                bytes_total: Some(head.size),
            });
            offset = 0;
        }
        self.event(TransferEvent::Connected {
            bytes_total: Some(head.size),
        });
        let mut sink = FileSink::open(&self.files, &self.temp, offset).map_err(local_error)?;
        self.get(
            &mut conn,
            &head.uri,
            offset,
            head.size,
            RequestPhase::Download,
            |bytes| sink.write(bytes).map_err(local_error),
        )
        .await?;
        self.event(TransferEvent::FileDone);
        Ok(())
    }

    async fn download_reply(&self) -> Result<(), TransferFailure> {
        let Some(url) = self.reply_url.clone() else {
            return Err(TransferFailure::Protocol(ProtocolFailure::InvalidServerResponse));
        };
        let uri = parse_uri(&url)?;
        let mut conn = self.connect(&uri).await?;
        let head = self.head(&mut conn, &uri, RequestPhase::Reply).await?;
        self.event(TransferEvent::Connected {
            bytes_total: Some(head.size),
        });
        let mut body = Vec::new();
        // The reply restarts from 0: a partial in-memory reply is not kept.
        self.get(&mut conn, &head.uri, 0, head.size, RequestPhase::Reply, |bytes| {
            body.extend_from_slice(bytes);
            Ok(())
        })
        .await?;
        // ref: bits-http §3.8: the reply is fetched before Close-Session
        let upload_uri = parse_uri(&self.start.remote_name)?;
        if let Some(session) = &self.session {
            let req = packet(&upload_uri, "Close-Session").header("BITS-Session-Id", session.as_str());
            let resp = conn.send(req.body(Full::new(Bytes::new())).map_err(|_| bad())?).await?;
            self.line(format!(
                "http BITS_POST Close-Session {} -> {}",
                upload_uri.path(),
                resp.status.as_u16()
            ));
            wire::discard(resp.body).await;
        }
        let _ = self.tx.send(Input::Session(self.start.job, None));
        let _ = self.tx.send(Input::ReplyBody(self.start.job, Bytes::from(body)));
        self.event(TransferEvent::FileDone);
        Ok(())
    }

    /// HEAD, following redirects. Returns the final URL, size and Last-Modified.
    async fn head(&self, conn: &mut Conn, uri: &Uri, phase: RequestPhase) -> Result<Head, TransferFailure> {
        let mut uri = uri.clone();
        for _ in 0..=MAX_REDIRECTS {
            let req = self
                .authorize(wire::request(Method::HEAD, &uri))
                .body(Full::new(Bytes::new()))
                .map_err(|_| bad())?;
            let resp = conn.send(req).await?;
            self.line(format!("http HEAD {} -> {}", uri.path(), resp.status.as_u16()));
            if self.answer_challenge(&resp) {
                wire::discard(resp.body).await;
                continue;
            }
            if let Some(next) = redirect(&uri, resp.status, &resp.headers) {
                uri = next;
                *conn = self.connect(&uri).await?;
                continue;
            }
            if !resp.status.is_success() {
                return Err(wire::status_failure(resp.status, phase));
            }
            // ref: bits-http §1.3: HEAD without Content-Length → BG_E_MISSING_FILE_SIZE
            let size = wire::content_length(&resp.headers)
                .ok_or(TransferFailure::Protocol(ProtocolFailure::MissingFileSize))?;
            let last_modified = wire::header(&resp.headers, "last-modified").map(str::to_string);
            wire::discard(resp.body).await;
            return Ok(Head {
                uri,
                size,
                last_modified,
            });
        }
        Err(TransferFailure::Network(bitsim_model::NetworkFailure::RedirectFailed))
    }

    /// GET bytes `offset..size`, ranged unless it is the whole file
    /// (ref: bits-http §1.1, §1.3), handing each chunk to `sink`.
    async fn get(
        &self,
        conn: &mut Conn,
        uri: &Uri,
        offset: u64,
        size: u64,
        phase: RequestPhase,
        mut sink: impl FnMut(&[u8]) -> Result<(), TransferFailure>,
    ) -> Result<(), TransferFailure> {
        if offset >= size {
            return Ok(());
        }
        let mut uri = uri.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.authorize(wire::request(Method::GET, &uri));
            let ranged = offset > 0;
            if ranged {
                req = req.header("Range", format!("bytes={offset}-{}", size - 1));
            }
            let resp = conn.send(req.body(Full::new(Bytes::new())).map_err(|_| bad())?).await?;
            let range = if ranged {
                format!(" range={offset}-{}", size - 1)
            } else {
                String::new()
            };
            self.line(format!("http GET {}{range} -> {}", uri.path(), resp.status.as_u16()));
            if self.answer_challenge(&resp) {
                wire::discard(resp.body).await;
                continue;
            }
            if let Some(next) = redirect(&uri, resp.status, &resp.headers) {
                uri = next;
                *conn = self.connect(&uri).await?;
                continue;
            }
            let expected = size - offset;
            match resp.status {
                StatusCode::PARTIAL_CONTENT => {
                    // ref: bits-http §1.3: the range must be the one asked for
                    if wire::content_range(&resp.headers) != Some((offset, size - 1, Some(size))) {
                        return Err(TransferFailure::Protocol(ProtocolFailure::InvalidServerResponse));
                    }
                }
                // ref: bits-http §1.3 step 5: 200 to a sub-range → no Range support
                StatusCode::OK if ranged => {
                    return Err(TransferFailure::Protocol(ProtocolFailure::InsufficientRangeSupport))
                }
                StatusCode::OK => {}
                s => return Err(wire::status_failure(s, phase)),
            }
            // ref: bits-http §1.6: BITS asks for identity; anything else is unusable
            if wire::header(&resp.headers, "content-encoding").is_some_and(|e| !e.eq_ignore_ascii_case("identity")) {
                return Err(TransferFailure::Protocol(ProtocolFailure::InvalidServerResponse));
            }
            // ref: bits-http §1.3 step 4: a length that does not match is an error
            if wire::content_length(&resp.headers).is_some_and(|l| l != expected) {
                return Err(TransferFailure::Protocol(ProtocolFailure::InvalidServerResponse));
            }
            let mut body = resp.body;
            let mut got = 0u64;
            while let Some(chunk) = wire::next_chunk(&mut body).await? {
                got += chunk.len() as u64;
                if got > expected {
                    return Err(TransferFailure::Protocol(ProtocolFailure::InvalidServerResponse));
                }
                sink(&chunk)?;
                self.event(TransferEvent::Progress {
                    bytes: chunk.len() as u64,
                });
            }
            if got < expected {
                // Truncated: the connection closed early.
                return Err(TransferFailure::Network(bitsim_model::NetworkFailure::ConnectionReset));
            }
            return Ok(());
        }
        Err(TransferFailure::Network(bitsim_model::NetworkFailure::RedirectFailed))
    }

    // ----- uploads ([MC-BUP], bits-http §3) -------------------------------------

    async fn upload(&self) -> Result<(), TransferFailure> {
        let uri = parse_uri(&self.start.remote_name)?;
        let data = self
            .files
            .read(std::path::Path::new(&self.start.local_name))
            .map_err(|_| {
                TransferFailure::Classified(Classified {
                    hresult: Hresult::HRESULT_FILE_NOT_FOUND,
                    context: ErrorContext::LocalFile,
                    disposition: Disposition::Fatal,
                })
            })?;
        let total = data.len() as u64;
        let mut conn = self.connect(&uri).await?;
        let mut offset = self.start.offset;
        let session = match &self.session {
            Some(s) => {
                // ref: bits-http §3.7: a resumed job sends Ping before the next Fragment
                let resp = conn.send(body(packet(&uri, "Ping"), Bytes::new())?).await?;
                self.line(format!(
                    "http BITS_POST Ping {} -> {}",
                    uri.path(),
                    resp.status.as_u16()
                ));
                wire::discard(resp.body).await;
                s.clone()
            }
            None => {
                offset = 0;
                let req = packet(&uri, "Create-Session").header("BITS-Supported-Protocols", BITS_PROTOCOL_GUID);
                let resp = conn.send(body(req, Bytes::new())?).await?;
                self.line(format!(
                    "http BITS_POST Create-Session {} -> {}",
                    uri.path(),
                    resp.status.as_u16()
                ));
                if !resp.status.is_success() {
                    return Err(wire::upload_error(resp.status, &resp.headers));
                }
                let id = wire::header(&resp.headers, "bits-session-id")
                    .ok_or(TransferFailure::Protocol(ProtocolFailure::InvalidServerResponse))?
                    .to_string();
                wire::discard(resp.body).await;
                let _ = self.tx.send(Input::Session(self.start.job, Some(id.clone())));
                id
            }
        };
        self.event(TransferEvent::Connected {
            bytes_total: Some(total),
        });
        let mut fragment = FRAGMENT;
        let mut reply_url = None;
        // Bytes reported as progress so far: a server that rewinds the client (416 or a
        // smaller BITS-Received-Content-Range) makes it resend bytes already counted
        // (ref: bits-http §3.6); progress never exceeds the file size.
        let mut reported = offset;
        let name = std::path::Path::new(&self.start.local_name)
            .file_name()
            .map_or("upload".to_string(), |n| n.to_string_lossy().into_owned());
        while offset < total || total == 0 {
            if total == 0 {
                break;
            }
            let end = (offset + fragment as u64).min(total);
            let req = packet(&uri, "Fragment")
                .header("BITS-Session-Id", session.as_str())
                .header("Content-Name", name.as_str())
                .header("Content-Range", format!("bytes {offset}-{}/{total}", end - 1));
            let chunk = Bytes::copy_from_slice(&data[offset as usize..end as usize]);
            let resp = conn.send(body(req, chunk)?).await?;
            self.line(format!(
                "http BITS_POST Fragment {} {offset}-{} -> {}",
                uri.path(),
                end - 1,
                resp.status.as_u16()
            ));
            let acked =
                wire::header(&resp.headers, "bits-received-content-range").and_then(|v| v.trim().parse::<u64>().ok());
            match resp.status.as_u16() {
                200 | 201 => {}
                // ref: bits-http §3.6: 416 → resync to the server's offset
                416 => {
                    let Some(next) = acked else {
                        return Err(TransferFailure::Protocol(ProtocolFailure::InvalidServerResponse));
                    };
                    wire::discard(resp.body).await;
                    offset = next.min(total);
                    continue;
                }
                // ref: bits-http §3.6: 413 → smaller fragments, never below 5 KB
                413 if fragment > MIN_FRAGMENT => {
                    wire::discard(resp.body).await;
                    fragment = (fragment / 2).max(MIN_FRAGMENT);
                    continue;
                }
                _ => {
                    let err = wire::upload_error(resp.status, &resp.headers);
                    if err == TransferFailure::Protocol(ProtocolFailure::SessionNotFound) {
                        let _ = self.tx.send(Input::Session(self.start.job, None));
                    }
                    return Err(err);
                }
            }
            let next = acked.unwrap_or(end).min(total);
            if end == total {
                reply_url = wire::header(&resp.headers, "bits-reply-url").map(str::to_string);
            }
            wire::discard(resp.body).await;
            if next > reported {
                self.event(TransferEvent::Progress { bytes: next - reported });
                reported = next;
            }
            offset = next;
        }
        if self.start.job_type == JobType::UploadReply {
            // ref: bits-http §3.8: the final Ack of an upload-reply names the reply
            let Some(url) = reply_url.and_then(|u| wire::resolve(&uri, &u)) else {
                return Err(TransferFailure::Protocol(ProtocolFailure::InvalidServerResponse));
            };
            let _ = self.tx.send(Input::ReplyUrl(self.start.job, url.to_string()));
        } else {
            let req = packet(&uri, "Close-Session").header("BITS-Session-Id", session.as_str());
            let resp = conn.send(body(req, Bytes::new())?).await?;
            self.line(format!(
                "http BITS_POST Close-Session {} -> {}",
                uri.path(),
                resp.status.as_u16()
            ));
            if !resp.status.is_success() {
                return Err(wire::upload_error(resp.status, &resp.headers));
            }
            wire::discard(resp.body).await;
            let _ = self.tx.send(Input::Session(self.start.job, None));
        }
        self.event(TransferEvent::FileDone);
        Ok(())
    }
}

struct Head {
    uri: Uri,
    size: u64,
    last_modified: Option<String>,
}

/// The temporary file of a download, written from `offset` on.
struct FileSink(std::fs::File);

impl FileSink {
    fn open(files: &crate::confine::LocalFiles, path: &std::path::Path, offset: u64) -> std::io::Result<FileSink> {
        files.check(path)?;
        // From the start: one `open` with O_TRUNC (no `ftruncate`, no `lseek`).
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(offset == 0)
            .open(path)?;
        if offset > 0 {
            f.set_len(offset)?;
            f.seek(SeekFrom::Start(offset))?;
        }
        Ok(FileSink(f))
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }
}

fn local_error(_: std::io::Error) -> TransferFailure {
    TransferFailure::Classified(Classified {
        hresult: Hresult::HRESULT_PATH_NOT_FOUND,
        context: ErrorContext::LocalFile,
        disposition: Disposition::Fatal,
    })
}

fn parse_uri(s: &str) -> Result<Uri, TransferFailure> {
    s.parse()
        .map_err(|_| TransferFailure::Network(bitsim_model::NetworkFailure::NameNotResolved))
}

fn bad() -> TransferFailure {
    TransferFailure::Network(bitsim_model::NetworkFailure::InvalidResponse)
}

fn redirect(uri: &Uri, status: StatusCode, headers: &http::HeaderMap) -> Option<Uri> {
    // ref: bits-http §1.5: WinHTTP follows 301/302/303/307/308 (ALLOW_SILENT default)
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
        .then(|| wire::header(headers, "location"))
        .flatten()
        .and_then(|l| wire::resolve(uri, l))
}

/// A BITS_POST packet (ref: bits-http §3.2).
fn packet(uri: &Uri, kind: &str) -> http::request::Builder {
    wire::request(Method::from_bytes(b"BITS_POST").unwrap_or(Method::POST), uri).header("BITS-Packet-Type", kind)
}

fn body(req: http::request::Builder, bytes: Bytes) -> Result<http::Request<Full<Bytes>>, TransferFailure> {
    req.header("Content-Length", bytes.len().to_string())
        .body(Full::new(bytes))
        .map_err(|_| bad())
}

/// Sends one Cancel-Session for a cancelled upload (ref: bits-http §3.3) and reports
/// whether the server answered; the model decides whether to try again.
pub(crate) async fn cancel_session(
    connector: Connector,
    tx: UnboundedSender<Input>,
    job: JobId,
    remote_name: String,
    session: Option<String>,
) {
    let line = |s: String| {
        tracing::debug!(target: "bitsim::wire", "{s}");
        let _ = tx.send(Input::Line(s));
    };
    let reached = match session {
        // Create-Session never got its Ack: the server holds nothing to cancel.
        None => {
            line("http BITS_POST Cancel-Session not sent: no session id".into());
            true
        }
        Some(id) => {
            let sent: Result<(String, u16), TransferFailure> = async {
                let uri = parse_uri(&remote_name)?;
                let mut conn = connector.connect(&uri).await?;
                if let Some(conn_id) = conn.id() {
                    let _ = tx.send(Input::Connection(conn_id, job));
                }
                let req = packet(&uri, "Cancel-Session").header("BITS-Session-Id", id.as_str());
                let resp = conn.send(body(req, Bytes::new())?).await?;
                let status = resp.status.as_u16();
                wire::discard(resp.body).await;
                Ok((uri.path().to_string(), status))
            }
            .await;
            match sent {
                Ok((path, status)) => {
                    line(format!("http BITS_POST Cancel-Session {path} -> {status}"));
                    true
                }
                Err(f) => {
                    line(format!("http BITS_POST Cancel-Session failed: {f:?}"));
                    false
                }
            }
        }
    };
    let _ = tx.send(Input::CancelSessionDone(job, reached));
}

fn is_http(remote: &str) -> bool {
    let lower = remote.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Where a local, UNC or file:// remote name points. Only paths inside the run's
/// directory are read: anything else (another directory, `..`, another UNC server) is
/// refused as access denied, so a scenario can never read outside its run.
pub(crate) fn local_source(remote: &str, root: &std::path::Path) -> Result<PathBuf, SourceFailure> {
    let path = if let Some(rest) = remote.strip_prefix(UNC_PREFIX) {
        root.join(rest.replace('\\', "/"))
    } else if remote.len() > 7 && remote[..7].eq_ignore_ascii_case("file://") {
        PathBuf::from(&remote[7..])
    } else {
        PathBuf::from(remote)
    };
    let escapes = path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir | std::path::Component::CurDir));
    if escapes || !path.is_absolute() || !path.starts_with(root) {
        return Err(SourceFailure::AccessDenied);
    }
    Ok(path)
}
