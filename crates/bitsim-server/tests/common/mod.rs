//! Test harness: a real hyper client over TCP or over the in-memory pipe.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bitsim_server::{MockServer, Plan};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const SEED: u64 = 7;
pub const GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<X: AsyncRead + AsyncWrite + Unpin + Send> Io for X {}

/// A server reachable over one transport.
pub enum T {
    Mem(MockServer),
    Tcp(MockServer, SocketAddr),
}

impl T {
    pub fn mem() -> T {
        T::Mem(MockServer::new(Plan::default(), SEED))
    }

    pub async fn tcp() -> T {
        let server = MockServer::new(Plan::default(), SEED);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = server.clone();
        tokio::spawn(async move { s.serve_tcp(listener, std::future::pending()).await });
        T::Tcp(server, addr)
    }

    pub fn server(&self) -> &MockServer {
        match self {
            T::Mem(s) | T::Tcp(s, _) => s,
        }
    }

    pub fn is_mem(&self) -> bool {
        matches!(self, T::Mem(_))
    }

    pub fn plan(&self, json: &str) {
        self.server().set_plan(Plan::from_json_str(json, "test").unwrap());
    }

    pub async fn connect(&self) -> Box<dyn Io> {
        match self {
            T::Mem(s) => Box::new(s.connect_in_memory()),
            T::Tcp(_, a) => Box::new(tokio::net::TcpStream::connect(a).await.unwrap()),
        }
    }

    pub async fn client(&self) -> Client {
        let io = self.connect().await;
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        // virtual time: generous; real time: short
        let timeout = Duration::from_secs(if self.is_mem() { 3600 } else { 20 });
        Client { tx, timeout }
    }

    /// One request on a fresh connection.
    pub async fn get(&self, path: &str) -> Resp {
        self.client().await.send(req("GET", path, &[], b"")).await.unwrap()
    }

    /// Writes raw bytes, returns everything read until EOF (or 5 s).
    pub async fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut io = self.connect().await;
        let _ = io.write_all(bytes).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut out)).await;
        out
    }
}

pub struct Client {
    pub tx: SendRequest<Full<Bytes>>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    /// Sends a request; `Err` for transport or framing errors (incl. in the body).
    pub async fn send(&mut self, req: http::Request<Full<Bytes>>) -> Result<Resp, String> {
        let fut = async {
            self.tx.ready().await.map_err(|e| e.to_string())?;
            let resp = self.tx.send_request(req).await.map_err(|e| e.to_string())?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
            Ok(Resp {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err("timeout".into()),
        }
    }
}

pub fn req(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Host", "bitsim.test")
        .header("User-Agent", "Microsoft BITS/7.8");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if method == "BITS_POST" || !body.is_empty() {
        b = b.header("Content-Length", body.len().to_string());
    }
    b.body(Full::new(Bytes::copy_from_slice(body))).unwrap()
}

/// A BITS_POST packet.
pub fn bits(
    path: &str,
    packet: &str,
    session: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
) -> http::Request<Full<Bytes>> {
    let mut h: Vec<(&str, &str)> = vec![("BITS-Packet-Type", packet), ("Accept", "*/*")];
    if let Some(s) = session {
        h.push(("BITS-Session-Id", s));
    }
    h.extend_from_slice(extra);
    req("BITS_POST", path, &h, body)
}

pub fn expected(offset: u64, len: usize) -> Vec<u8> {
    bitsim_server::pattern_bytes(SEED, offset, len)
}

/// Runs a test body twice: over TCP (real clock) and over the in-memory
/// pipe (paused clock).
#[macro_export]
macro_rules! dual {
    ($name:ident, |$t:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn tcp() {
                let $t = common::T::tcp().await;
                $body
            }
            #[tokio::test(start_paused = true)]
            async fn mem() {
                let $t = common::T::mem();
                $body
            }
        }
    };
}
