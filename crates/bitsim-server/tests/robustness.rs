//! Malformed input never crashes the server: 4xx, and it keeps serving.

mod common;
use std::time::Duration;

use bitsim_server::{MockServer, Plan};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn valid_request_answers(server: &MockServer) {
    let t = common::T::Mem(server.clone());
    let r = t.get("/bytes/16").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 16);
}

/// Sends bytes on a fresh in-memory connection and reads whatever comes back.
async fn throw(server: &MockServer, bytes: &[u8], close_write: bool) -> Vec<u8> {
    let mut io = server.connect_in_memory();
    let _ = io.write_all(bytes).await;
    if close_write {
        let _ = io.shutdown().await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut out)).await;
    out
}

dual!(malformed_requests_get_4xx, |t| {
    let cases: &[&[u8]] = &[
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /bytes/1 HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /bytes/1 HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"GET /bytes/1 HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ];
    for c in cases {
        let out = t.raw(c).await;
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 4"),
            "{:?} -> {text:?}",
            String::from_utf8_lossy(c)
        );
    }
    // percent-decoding to invalid UTF-8
    let out = t
        .raw(b"GET /bytes/%FF HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert!(out.starts_with(b"HTTP/1.1 400"));
    assert_eq!(t.get("/bytes/16").await.status, 200);
});

dual!(oversized_head_gets_431, |t| {
    let mut big = b"GET /bytes/1 HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..2000 {
        big.extend_from_slice(format!("X-H{i}: {}\r\n", "v".repeat(20)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    let out = t.raw(&big).await;
    assert!(
        out.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&out[..out.len().min(80)])
    );
    assert_eq!(t.get("/bytes/16").await.status, 200);
});

// Control bodies get the larger of the plan's limit and 1 MiB (a small plan
// limit must not lock out the next plan, issue 13): over 1 MiB is 413.
dual!(oversized_control_body_gets_413, |t| {
    t.plan(r#"{"limits":{"max_body_bytes":1000}}"#);
    let mut c = t.client().await;
    let big = vec![b' '; (1 << 20) + 1];
    let r = c.send(common::req("PUT", "/_bitsim/plan", &[], &big)).await.unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(t.get("/bytes/16").await.status, 200);
});

#[tokio::test(start_paused = true)]
async fn client_disconnects_mid_request_and_mid_body() {
    let server = MockServer::new(Plan::default(), 1);
    // half a request head, then close
    throw(&server, b"GET /bytes/1 HTTP/1.1\r\nHo", true).await;
    // a BITS fragment whose body never fully arrives
    throw(
        &server,
        b"BITS_POST /upload/x HTTP/1.1\r\nBITS-Packet-Type: Fragment\r\nBITS-Session-Id: {x}\r\nContent-Range: bytes 0-99/100\r\nContent-Length: 100\r\n\r\nabc",
        true,
    )
    .await;
    // a big download whose reader goes away
    let mut io = server.connect_in_memory();
    io.write_all(b"GET /bytes/100000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1000];
    let _ = io.read(&mut buf).await;
    drop(io);
    valid_request_answers(&server).await;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

fn request_like() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        Just("GET"),
        Just("HEAD"),
        Just("BITS_POST"),
        Just("PUT"),
        Just("G\0T"),
        Just("")
    ];
    let path = prop_oneof![
        Just("/bytes/10"),
        Just("/upload/a"),
        Just("/upload-reply/b"),
        Just("/_bitsim/plan"),
        Just("/status/500"),
        Just("/%"),
        Just("/drip/0/0/bytes/1"),
        Just("/redirect/99999999999999999999/bytes/1")
    ];
    let header = prop_oneof![
        Just("BITS-Packet-Type: Fragment"),
        Just("BITS-Packet-Type: Create-Session"),
        Just("BITS-Supported-Protocols: {7df0354d-249b-430f-820d-3d2a9bef4931}"),
        Just("Content-Range: bytes 0-3/4"),
        Just("Content-Range: bytes 5-1/0"),
        Just("Range: bytes=-0"),
        Just("Range: bytes=5-2"),
        Just("Range: bytes=0-"),
        Just("Content-Length: 4"),
        Just("Content-Length: 99999999999999999999"),
        Just("Transfer-Encoding: chunked"),
        Just("BITS-Session-Id: {x}"),
        Just("Expect: 100-continue")
    ];
    (
        method,
        path,
        proptest::collection::vec(header, 0..5),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(m, p, hs, body)| {
            let mut v = format!("{m} {p} HTTP/1.1\r\nHost: x\r\n").into_bytes();
            for h in hs {
                v.extend_from_slice(h.as_bytes());
                v.extend_from_slice(b"\r\n");
            }
            v.extend_from_slice(b"\r\n");
            v.extend_from_slice(&body);
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Arbitrary bytes: the server never panics and still answers a valid request.
    #[test]
    fn arbitrary_bytes_then_valid_request(bytes in proptest::collection::vec(any::<u8>(), 0..2048), close in any::<bool>()) {
        runtime().block_on(async {
            let server = MockServer::new(Plan::default(), 3);
            throw(&server, &bytes, close).await;
            valid_request_answers(&server).await;
        });
    }

    /// Request-shaped junk (methods, paths, BITS headers, bodies).
    #[test]
    fn request_like_junk_then_valid_request(reqs in proptest::collection::vec(request_like(), 1..4)) {
        runtime().block_on(async {
            let server = MockServer::new(Plan::default(), 4);
            let joined: Vec<u8> = reqs.concat();
            throw(&server, &joined, true).await;
            for r in &reqs {
                throw(&server, r, false).await;
            }
            valid_request_answers(&server).await;
        });
    }
}
