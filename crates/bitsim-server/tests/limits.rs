//! Server-wide limits that no plan can lift (issue 13, item 4): header and
//! keep-alive timeouts, a connection cap, an upload-memory cap, and a control
//! API that a plan cannot lock out. Each test is built from the issue's
//! reproducer.

mod common;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitsim_server::{MockServer, Plan, ServerLimits};
use common::{bits, GUID};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn tcp_server(limits: ServerLimits) -> (MockServer, SocketAddr) {
    let server = MockServer::with_limits(Plan::default(), common::SEED, limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = server.clone();
    tokio::spawn(async move { s.serve_tcp(listener, std::future::pending()).await });
    (server, addr)
}

/// Reads until EOF or a reset; how long that took (capped at 10 s).
async fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    started.elapsed()
}

async fn get_status(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn short_timeouts() -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let (_server, addr) = tcp_server(short_timeouts()).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let took = closed_after(&mut idle).await;
    assert!(took < Duration::from_secs(5), "an idle socket was kept {took:?}");
}

#[tokio::test]
async fn a_slow_header_is_cut_off() {
    let (_server, addr) = tcp_server(short_timeouts()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /bytes/1 HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // ...and the rest of the head never comes.
    let took = closed_after(&mut s).await;
    assert!(
        took < Duration::from_secs(5),
        "a half-sent head kept the socket {took:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (_server, addr) = tcp_server(short_timeouts()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /bytes/4 HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let took = closed_after(&mut s).await;
    assert!(
        took < Duration::from_secs(5),
        "an idle keep-alive socket was kept {took:?}"
    );
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_and_the_server_keeps_answering() {
    let limits = ServerLimits {
        max_connections: 8,
        ..ServerLimits::default()
    };
    let (_server, addr) = tcp_server(limits).await;
    // The issue's reproducer, scaled down: more idle sockets than the cap.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let took = closed_after(&mut extra).await;
    assert!(
        took < Duration::from_secs(2),
        "a connection over the cap was kept {took:?}"
    );
    // Free one slot: the server answers again.
    idle.pop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get_status(addr, "GET", "/bytes/1", "").await, Some(200));
}

#[tokio::test(start_paused = true)]
async fn upload_memory_is_capped_across_sessions() {
    let limits = ServerLimits {
        max_upload_memory: 1 << 20,
        ..ServerLimits::default()
    };
    let t = common::T::Mem(MockServer::with_limits(Plan::default(), common::SEED, limits));
    let mut c = t.client().await;
    let chunk = vec![7u8; 600 * 1024];
    let total = (chunk.len() * 2).to_string();
    let frag = |path: &str, sid: &str| {
        let cr = format!("bytes 0-{}/{total}", chunk.len() - 1);
        bits(
            path,
            "Fragment",
            Some(sid),
            &[("Content-Range", &cr), ("Content-Name", "a.bin")],
            &chunk,
        )
    };
    let mut sessions = Vec::new();
    for path in ["/upload/a.bin", "/upload/b.bin"] {
        let r = c
            .send(bits(
                path,
                "Create-Session",
                None,
                &[("BITS-Supported-Protocols", GUID)],
                b"",
            ))
            .await
            .unwrap();
        sessions.push(r.h("bits-session-id").unwrap().to_string());
    }
    let first = c.send(frag("/upload/a.bin", &sessions[0])).await.unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    // 600 KiB more would hold 1.2 MiB: refused with the BITS disk-full error.
    let second = c.send(frag("/upload/b.bin", &sessions[1])).await.unwrap();
    assert_eq!(second.status, 500, "{second:?}");
    assert_eq!(second.h("bits-error-code"), Some("0x80070070"), "{second:?}");
}

#[test]
fn a_plan_that_would_answer_431_to_everything_is_refused_with_its_line() {
    let e = Plan::from_json_str("{\n  \"limits\": {\"max_headers\": 0}\n}", "p.json").unwrap_err();
    assert_eq!((e.line, e.path.as_str()), (2, "limits.max_headers"), "{e}");
    assert!(e.message.contains("from 16 to 10000"), "{e}");
}

#[tokio::test]
async fn the_control_api_survives_a_tiny_body_limit() {
    let (server, addr) = tcp_server(ServerLimits::default()).await;
    server.set_plan(Plan::from_json_str(r#"{"limits":{"max_body_bytes":0}}"#, "t").unwrap());
    let plan = r#"{"limits":{"max_body_bytes":1000}}"#;
    assert_eq!(get_status(addr, "PUT", "/_bitsim/plan", plan).await, Some(200));
    assert_eq!(server.plan().limits.max_body_bytes, 1000);
}

#[tokio::test]
async fn the_control_api_survives_refuse_connections() {
    let (server, addr) = tcp_server(ServerLimits::default()).await;
    server.set_plan(Plan::from_json_str(r#"{"refuse_connections":true}"#, "t").unwrap());
    assert_eq!(
        get_status(addr, "GET", "/bytes/1", "").await,
        None,
        "a download was served"
    );
    assert_eq!(get_status(addr, "GET", "/_bitsim/plan", "").await, Some(200));
    assert_eq!(get_status(addr, "PUT", "/_bitsim/plan", "{}").await, Some(200));
    assert_eq!(get_status(addr, "GET", "/bytes/1", "").await, Some(200));
}

#[tokio::test]
async fn a_trickled_body_is_cut_off() {
    let limits = ServerLimits {
        body_idle_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let (_server, addr) = tcp_server(limits).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PUT /_bitsim/plan HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let took = closed_after(&mut s).await;
    assert!(took < Duration::from_secs(5), "a stalled body kept the socket {took:?}");
}

#[tokio::test(start_paused = true)]
async fn generated_bodies_are_capped_at_256_mib() {
    // The issue's reproducer: `/bytes/2000000000` in a scenario wrote 2 GB to disk.
    let t = common::T::mem();
    assert_eq!(t.get("/bytes/2000000000").await.status, 400);
    assert_eq!(t.get("/bytes/268435457").await.status, 400);
    let head = t
        .client()
        .await
        .send(common::req("HEAD", "/bytes/268435456", &[], b""))
        .await
        .unwrap();
    assert_eq!((head.status, head.h("content-length")), (200, Some("268435456")));
}
