//! The HTTP side of a transfer, as BITS does it (bits-http §1, §3): HEAD, ranged
//! GETs, redirects, and the [MC-BUP] upload packets. It observes and reports; the
//! model decides what every observation means.

use bitsim_model::{NetworkFailure, ProtocolFailure, RequestPhase, TransferFailure};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

/// Where requests go.
#[derive(Clone, Debug)]
pub enum Connector {
    /// The in-memory mock server (deterministic lane, paused clock).
    InMemory(bitsim_server::MockServer),
    /// A TCP address (wall-clock lane, or an external server): every request
    /// goes there, whatever host its URL names.
    Tcp(SocketAddr),
    /// The host and port each URL names, over TCP (the COM facade: a client's
    /// own URLs, as real BITS would fetch them).
    ByUrl,
}

/// Per-request timeouts (ref: bits-http §4: MC-BUP request and response timers of
/// 5 minutes).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A live HTTP/1.1 connection.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// The connection's number in the mock server's request log (in-memory lane).
    id: Option<u64>,
}

impl Connector {
    pub async fn connect(&self, uri: &Uri) -> Result<Conn, TransferFailure> {
        let refused = TransferFailure::Network(NetworkFailure::ConnectionRefused);
        let mut id = None;
        let sender = match self {
            Connector::InMemory(server) => {
                // ref: bits-http §2.4: a refused connection fails the connect itself
                // (ERROR_WINHTTP_CANNOT_CONNECT), before any request is sent.
                if server.plan().refuse_connections {
                    return Err(refused);
                }
                let (io, number) = server.connect_in_memory_numbered();
                id = Some(number);
                let io = TokioIo::new(io);
                let (sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|_| refused)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
            Connector::Tcp(_) | Connector::ByUrl => {
                let stream = match self {
                    Connector::Tcp(addr) => tokio::net::TcpStream::connect(addr).await,
                    _ => {
                        let host = uri.host().ok_or(refused)?;
                        let host = host.trim_start_matches('[').trim_end_matches(']');
                        let port = uri.port_u16().unwrap_or(80);
                        tokio::net::TcpStream::connect((host, port)).await
                    }
                }
                .map_err(|_| refused)?;
                let _ = stream.set_nodelay(true);
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|_| refused)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
        };
        Ok(Conn { sender, id })
    }
}

/// A response head, with its body still to read.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Incoming,
}

impl Conn {
    /// The connection's number in the mock server's request log, when known.
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// Sends one request; a dead connection or a timeout is a network failure.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Response, TransferFailure> {
        let reset = TransferFailure::Network(NetworkFailure::ConnectionReset);
        let timeout = TransferFailure::Network(NetworkFailure::Timeout);
        if self.sender.ready().await.is_err() {
            return Err(reset);
        }
        let resp = match tokio::time::timeout(REQUEST_TIMEOUT, self.sender.send_request(req)).await {
            Err(_) => return Err(timeout),
            Ok(Err(e)) if e.is_parse() => return Err(TransferFailure::Network(NetworkFailure::InvalidResponse)),
            Ok(Err(_)) => return Err(reset),
            Ok(Ok(r)) => r,
        };
        let (parts, body) = resp.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// Reads the next body chunk with the response timeout; `Ok(None)` at the end.
pub async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, TransferFailure> {
    loop {
        match tokio::time::timeout(REQUEST_TIMEOUT, body.frame()).await {
            Err(_) => return Err(TransferFailure::Network(NetworkFailure::Timeout)),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) if e.is_parse() => return Err(TransferFailure::Network(NetworkFailure::InvalidResponse)),
            Ok(Some(Err(_))) => return Err(TransferFailure::Network(NetworkFailure::ConnectionReset)),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// Drains a body we do not need.
pub async fn discard(mut body: Incoming) {
    while let Ok(Some(_)) = next_chunk(&mut body).await {}
}

/// A request with the headers BITS sends (ref: bits-http §1.1 wire example).
pub fn request(method: Method, uri: &Uri) -> http::request::Builder {
    let host = uri.authority().map_or("localhost".to_string(), |a| a.to_string());
    let target = uri.path_and_query().map_or("/".to_string(), |p| p.to_string());
    Request::builder()
        .method(method)
        .uri(target)
        .header("Host", host)
        .header("Accept", "*/*")
        .header("Accept-Encoding", "identity")
        .header("User-Agent", "Microsoft BITS/7.8 (bitsim)")
        .header("Connection", "Keep-Alive")
}

/// Resolves a Location header (absolute, absolute-path or a BITS-Reply-URL with
/// backslashes) against the current URL.
pub fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    let location = location.replace('\\', "/");
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.parse().ok();
    }
    let authority = base.authority()?.clone();
    let scheme = base.scheme_str().unwrap_or("http");
    let path = if location.starts_with('/') {
        location
    } else {
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{location}")
    };
    format!("{scheme}://{authority}{path}").parse().ok()
}

/// Standard base64 (RFC 4648) with padding, for Basic credentials.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    header(headers, "content-length").and_then(|v| v.trim().parse().ok())
}

/// `bytes a-b/total` → (a, b, total).
pub fn content_range(headers: &HeaderMap) -> Option<(u64, u64, Option<u64>)> {
    let v = header(headers, "content-range")?.trim();
    let rest = v.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok(),
    ))
}

/// The failure an HTTP status stands for in `phase`.
pub fn status_failure(status: StatusCode, phase: RequestPhase) -> TransferFailure {
    TransferFailure::Http {
        status: status.as_u16(),
        phase,
    }
}

/// An error Ack of the upload protocol → what went wrong (ref: bits-http §3.5, §3.7).
pub fn upload_error(status: StatusCode, headers: &HeaderMap) -> TransferFailure {
    let code = header(headers, "bits-error-code")
        .or_else(|| header(headers, "bits-error"))
        .and_then(parse_hex);
    let context = header(headers, "bits-error-context").and_then(parse_hex);
    if code == Some(0x8020_001F) {
        return TransferFailure::Protocol(ProtocolFailure::SessionNotFound);
    }
    if code == Some(0x8020_0020) {
        return TransferFailure::Protocol(ProtocolFailure::UploadTooLarge);
    }
    let phase = if context == Some(0x7) {
        RequestPhase::ServerApplication
    } else {
        RequestPhase::Upload
    };
    status_failure(status, phase)
}

fn parse_hex(v: &str) -> Option<u32> {
    let v = v.trim();
    let v = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .or_else(|| v.strip_prefix('x'))
        .unwrap_or(v);
    u32::from_str_radix(v, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_basic_credentials() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn resolves_reply_urls() {
        let base: Uri = "http://h/upload-reply/a.bin".parse().unwrap();
        assert_eq!(
            resolve(&base, "BITS-Sessions\\Replies\\x.bin").unwrap().to_string(),
            "http://h/upload-reply/BITS-Sessions/Replies/x.bin"
        );
        assert_eq!(resolve(&base, "/r/1").unwrap().to_string(), "http://h/r/1");
        assert_eq!(resolve(&base, "http://o/r").unwrap().to_string(), "http://o/r");
    }

    #[test]
    fn parses_content_range() {
        let mut h = HeaderMap::new();
        h.insert("content-range", "bytes 10-19/100".parse().unwrap());
        assert_eq!(content_range(&h), Some((10, 19, Some(100))));
    }

    #[tokio::test]
    async fn refused_in_memory_connection_is_cannot_connect() {
        let plan = bitsim_server::Plan {
            refuse_connections: true,
            ..Default::default()
        };
        let connector = Connector::InMemory(bitsim_server::MockServer::new(plan, 1));
        assert_eq!(
            connector.connect(&"http://bitsim.test/f".parse().unwrap()).await.err(),
            Some(TransferFailure::Network(NetworkFailure::ConnectionRefused))
        );
    }

    #[test]
    fn session_not_found_is_recognised() {
        let mut h = HeaderMap::new();
        h.insert("bits-error-code", "0x8020001F".parse().unwrap());
        assert_eq!(
            upload_error(StatusCode::INTERNAL_SERVER_ERROR, &h),
            TransferFailure::Protocol(ProtocolFailure::SessionNotFound)
        );
        let mut h = HeaderMap::new();
        h.insert("bits-error-context", "0x7".parse().unwrap());
        assert_eq!(
            upload_error(StatusCode::FORBIDDEN, &h),
            TransferFailure::Http {
                status: 403,
                phase: RequestPhase::ServerApplication
            }
        );
    }
}
