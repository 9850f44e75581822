//! Every fault kind of the catalogue (bits-http §5.3), over TCP and the
//! in-memory pipe, seen by a real HTTP client and, where the framing is
//! broken on purpose, as raw bytes.

mod common;
use std::io::Read;
use std::time::Duration;

use common::{expected, req};
use tokio::time::Instant;

const GET10: &[u8] = b"GET /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n";

fn rule(fault: &str) -> String {
    format!(r#"{{"rules":[{{"match":{{"path":"/bytes/1000"}},"fault":{fault}}}]}}"#)
}

fn head_and_body(raw: &[u8]) -> (String, Vec<u8>) {
    let i = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(raw.len());
    (String::from_utf8_lossy(&raw[..i]).to_string(), raw[i..].to_vec())
}

dual!(status_with_headers, |t| {
    t.plan(&rule(
        r#"{"kind":"status","status":503,"headers":{"Retry-After":"120"},"body":"busy"}"#,
    ));
    let r = t.get("/bytes/1000").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.h("retry-after"), Some("120"));
    assert_eq!(&r.body[..], b"busy");
    let log = t.server().log();
    assert_eq!(log[0].status, Some(503));
    assert_eq!(log[0].fault.as_deref(), Some("status"));
    assert_eq!(log[0].rule.as_deref(), Some("#0"));
});

dual!(delay_fixed_uniform_lognormal, |t| {
    t.plan(&rule(r#"{"kind":"delay","ms":250}"#));
    let s = Instant::now();
    let r = t.get("/bytes/1000").await;
    assert_eq!(r.status, 200);
    assert!(s.elapsed() >= Duration::from_millis(250));
    t.plan(r#"{"rules":[{"delay":{"ms":10,"max_ms":60}}]}"#);
    let s = Instant::now();
    t.get("/bytes/10").await;
    let e = s.elapsed();
    assert!(e >= Duration::from_millis(10), "{e:?}");
    t.plan(r#"{"rules":[{"delay":{"ms":20,"sigma":0.5,"max_ms":100}}]}"#);
    assert_eq!(t.get("/bytes/10").await.status, 200);
});

dual!(stall_then_close, |t| {
    t.plan(&rule(r#"{"kind":"stall","ms":200}"#));
    let s = Instant::now();
    let mut c = t.client().await;
    let r = c.send(req("GET", "/bytes/1000", &[], b"")).await;
    assert!(r.is_err());
    assert!(s.elapsed() >= Duration::from_millis(200));
    assert_eq!(t.server().log()[0].fault.as_deref(), Some("stall"));
    assert_eq!(t.server().log()[0].status, None);
});

/// A 10-minute stall completes instantly in virtual time, deterministically.
#[tokio::test(start_paused = true)]
async fn stall_ten_minutes_in_virtual_time() {
    let t = common::T::mem();
    t.plan(&rule(r#"{"kind":"stall","ms":600000}"#));
    let wall = std::time::Instant::now();
    let s = Instant::now();
    let mut c = t.client().await;
    assert!(c.send(req("GET", "/bytes/1000", &[], b"")).await.is_err());
    assert_eq!(s.elapsed(), Duration::from_secs(600));
    assert!(wall.elapsed() < Duration::from_secs(5));
}

/// A stall forever: the client's own timeout fires (virtual time).
#[tokio::test(start_paused = true)]
async fn stall_forever() {
    let t = common::T::mem();
    t.plan(&rule(r#"{"kind":"stall"}"#));
    let mut c = t.client().await;
    let r = tokio::time::timeout(Duration::from_secs(300), c.send(req("GET", "/bytes/1000", &[], b""))).await;
    assert!(r.is_err(), "no answer within 5 minutes");
}

dual!(headers_then_stall, |t| {
    t.plan(&rule(r#"{"kind":"headers_then_stall","ms":100}"#));
    let mut io = t.connect().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    io.write_all(GET10).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut buf)).await;
    let (head, body) = head_and_body(&buf);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-length: 1000"));
    assert!(body.is_empty());
});

dual!(dribble, |t| {
    t.plan(&rule(r#"{"kind":"dribble","chunks":5,"total_ms":500}"#));
    let s = Instant::now();
    let r = t.get("/bytes/1000").await;
    assert_eq!(&r.body[..], expected(0, 1000).as_slice());
    assert!(s.elapsed() >= Duration::from_millis(500));
});

dual!(truncate, |t| {
    t.plan(&rule(r#"{"kind":"truncate","after_bytes":300}"#));
    let mut c = t.client().await;
    let e = c.send(req("GET", "/bytes/1000", &[], b"")).await.unwrap_err();
    assert!(e.starts_with("body"), "{e}");
    let raw = t.raw(GET10).await;
    let (head, body) = head_and_body(&raw);
    assert!(head.contains("Content-Length: 1000"), "{head}");
    assert_eq!(body, expected(0, 300));
    let log = t.server().log();
    assert_eq!(log[1].fault.as_deref(), Some("truncate"));
    assert_eq!(log[1].status, Some(200));
    assert_eq!(log[1].body_bytes_sent, 300);
});

dual!(reset_before_response, |t| {
    t.plan(&rule(r#"{"kind":"reset","at":"before_response"}"#));
    let mut c = t.client().await;
    assert!(c.send(req("GET", "/bytes/1000", &[], b"")).await.is_err());
    assert!(t.raw(GET10).await.is_empty());
});

dual!(reset_after_headers, |t| {
    t.plan(&rule(r#"{"kind":"reset","at":"after_headers"}"#));
    let mut c = t.client().await;
    assert!(c.send(req("GET", "/bytes/1000", &[], b"")).await.is_err());
});

dual!(reset_mid_body, |t| {
    t.plan(&rule(r#"{"kind":"reset","at":"mid_body","after_bytes":100}"#));
    let mut c = t.client().await;
    let e = c.send(req("GET", "/bytes/1000", &[], b"")).await.unwrap_err();
    assert!(e.starts_with("body"), "{e}");
});

dual!(empty_response, |t| {
    t.plan(&rule(r#"{"kind":"empty_response"}"#));
    let mut c = t.client().await;
    assert!(c.send(req("GET", "/bytes/1000", &[], b"")).await.is_err());
    assert!(t.raw(GET10).await.is_empty());
    assert_eq!(t.server().log()[0].status, None);
});

dual!(garbage, |t| {
    t.plan(&rule(r#"{"kind":"garbage","bytes":100}"#));
    let mut c = t.client().await;
    assert!(c.send(req("GET", "/bytes/1000", &[], b"")).await.is_err());
    let raw = t.raw(GET10).await;
    assert_eq!(raw.len(), 100);
    assert!(!raw.starts_with(b"HTTP/"));
});

dual!(malformed_chunked, |t| {
    t.plan(&rule(r#"{"kind":"malformed_chunked"}"#));
    let mut c = t.client().await;
    let e = c.send(req("GET", "/bytes/1000", &[], b"")).await.unwrap_err();
    assert!(e.starts_with("body"), "{e}");
    let raw = t.raw(GET10).await;
    let (head, body) = head_and_body(&raw);
    assert!(head.contains("Transfer-Encoding: chunked"));
    assert!(body.starts_with(b"zz"));
});

dual!(ignore_range, |t| {
    t.plan(&rule(r#"{"kind":"ignore_range"}"#));
    let mut c = t.client().await;
    let r = c
        .send(req("GET", "/bytes/1000", &[("Range", "bytes=100-199")], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1000);
    assert!(r.h("content-range").is_none());
});

dual!(omit_content_length, |t| {
    t.plan(&rule(r#"{"kind":"omit_content_length"}"#));
    let r = t.get("/bytes/1000").await;
    assert_eq!(r.status, 200);
    assert!(r.h("content-length").is_none());
    assert_eq!(&r.body[..], expected(0, 1000).as_slice());
    t.plan(&rule(r#"{"kind":"omit_content_length","framing":"chunked"}"#));
    let r = t.get("/bytes/1000").await;
    assert!(r.h("content-length").is_none());
    assert_eq!(r.h("transfer-encoding"), Some("chunked"));
    assert_eq!(&r.body[..], expected(0, 1000).as_slice());
    // HEAD without Content-Length (bits-http §1.3: BG_E_MISSING_FILE_SIZE)
    t.plan(&rule(r#"{"kind":"omit_header","name":"Content-Length"}"#));
    let mut c = t.client().await;
    let r = c.send(req("HEAD", "/bytes/1000", &[], b"")).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.h("content-length").is_none());
});

dual!(wrong_content_range, |t| {
    t.plan(&rule(r#"{"kind":"wrong_content_range","shift":10}"#));
    let mut c = t.client().await;
    let r = c
        .send(req("GET", "/bytes/1000", &[("Range", "bytes=0-99")], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-range"), Some("bytes 10-109/1000"));
    t.plan(&rule(r#"{"kind":"wrong_content_range","value":"bytes 0-99/5000"}"#));
    let r = c
        .send(req("GET", "/bytes/1000", &[("Range", "bytes=0-99")], b""))
        .await
        .unwrap();
    assert_eq!(r.h("content-range"), Some("bytes 0-99/5000"));
    // 206 without Content-Range
    t.plan(&rule(r#"{"kind":"omit_header","name":"content-range"}"#));
    let r = c
        .send(req("GET", "/bytes/1000", &[("Range", "bytes=0-99")], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 206);
    assert!(r.h("content-range").is_none());
});

dual!(content_length_mismatch, |t| {
    t.plan(&rule(r#"{"kind":"content_length_mismatch","delta":50}"#));
    let mut c = t.client().await;
    assert!(c.send(req("GET", "/bytes/1000", &[], b"")).await.is_err());
    let raw = t.raw(GET10).await;
    let (head, body) = head_and_body(&raw);
    assert!(head.contains("Content-Length: 1050"), "{head}");
    assert_eq!(body.len(), 1000);
    t.plan(&rule(r#"{"kind":"content_length_mismatch","delta":-500}"#));
    let raw = t.raw(GET10).await;
    let (head, body) = head_and_body(&raw);
    assert!(head.contains("Content-Length: 500"), "{head}");
    assert_eq!(body.len(), 1000);
});

dual!(change_between_requests, |t| {
    // bits-http §1.3: the second and later GETs see a changed file
    t.plan(
        r#"{"rules":[{"match":{"path":"/bytes/1000","from":2},
             "fault":{"kind":"change","size":1200,"last_modified":1700003600}}]}"#,
    );
    let a = t.get("/bytes/1000").await;
    let b = t.get("/bytes/1000").await;
    assert_eq!(a.h("content-length"), Some("1000"));
    assert_eq!(b.h("content-length"), Some("1200"));
    assert_eq!(b.h("last-modified"), Some("Tue, 14 Nov 2023 23:13:20 GMT"));
    assert_ne!(a.h("etag"), b.h("etag"));
    // Last-Modified only
    t.plan(&rule(r#"{"kind":"change"}"#));
    let c = t.get("/bytes/1000").await;
    assert_eq!(c.h("content-length"), Some("1000"));
    assert_ne!(c.h("last-modified"), a.h("last-modified"));
});

dual!(gzip, |t| {
    t.plan(&rule(r#"{"kind":"gzip"}"#));
    let mut c = t.client().await;
    let r = c
        .send(req("GET", "/bytes/1000", &[("Accept-Encoding", "identity")], b""))
        .await
        .unwrap();
    assert_eq!(r.h("content-encoding"), Some("gzip"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..]).read_to_end(&mut out).unwrap();
    assert_eq!(out, expected(0, 1000));
});

dual!(http10, |t| {
    t.plan(&rule(r#"{"kind":"http10"}"#));
    let r = t.get("/bytes/1000").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1000);
    let raw = t.raw(GET10).await;
    assert!(raw.starts_with(b"HTTP/1.0 200 OK\r\n"));
});

dual!(close_after_response, |t| {
    t.plan(&rule(r#"{"kind":"close_after_response","ms":50}"#));
    let mut c = t.client().await;
    let r = c.send(req("GET", "/bytes/1000", &[], b"")).await.unwrap();
    assert_eq!(r.body.len(), 1000);
    assert!(r.h("connection").is_none());
    // the keep-alive connection is gone
    let r2 = c.send(req("GET", "/bytes/10", &[], b"")).await;
    assert!(r2.is_err());
});

dual!(basic_auth_fault, |t| {
    t.plan(&rule(r#"{"kind":"basic_auth","user":"a","password":"b"}"#));
    assert_eq!(t.get("/bytes/1000").await.status, 401);
    let mut c = t.client().await;
    let r = c
        .send(req("GET", "/bytes/1000", &[("Authorization", "Basic YTpi")], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    t.plan(&rule(r#"{"kind":"basic_auth","user":"a","password":"b","proxy":true}"#));
    assert_eq!(t.get("/bytes/1000").await.status, 407);
});

dual!(raw_fault_after_keepalive_response, |t| {
    // request 1 normal, request 2 (same connection) truncated
    t.plan(r#"{"rules":[{"match":{"path":"/bytes/1000","from":2},"fault":{"kind":"truncate","after_bytes":10}}]}"#);
    let mut two = GET10.to_vec();
    two.extend_from_slice(GET10);
    let raw = t.raw(&two).await;
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert_eq!(raw.len(), head_and_body(&raw).0.len() * 2 + 1010);
});

dual!(first_two_heads_get_403_then_pass, |t| {
    t.plan(
        r#"{"rules":[{"name":"two 403s","match":{"method":"HEAD","path":"/bytes/1000","to":2},
            "fault":{"kind":"status","status":403}}]}"#,
    );
    let mut c = t.client().await;
    let mut got = vec![];
    for _ in 0..3 {
        got.push(c.send(req("HEAD", "/bytes/1000", &[], b"")).await.unwrap().status);
    }
    got.push(c.send(req("GET", "/bytes/1000", &[], b"")).await.unwrap().status);
    assert_eq!(got, vec![403, 403, 200, 200]);
    let log = t.server().log();
    assert_eq!(log[0].rule.as_deref(), Some("two 403s"));
    assert_eq!(log[2].rule, None);
});

dual!(scenario_states, |t| {
    t.plan(
        r#"{"rules":[
          {"match":{"path":"/bytes/1000"},"scenario":{"name":"s","when":"Started","then":"broken"},
           "fault":{"kind":"status","status":500}},
          {"match":{"path":"/bytes/1000"},"scenario":{"name":"s","when":"broken","then":"ok"},
           "fault":{"kind":"status","status":503}}
        ]}"#,
    );
    let mut got = vec![];
    for _ in 0..3 {
        got.push(t.get("/bytes/1000").await.status);
    }
    assert_eq!(got, vec![500, 503, 200]);
});

dual!(seeded_probability_is_deterministic, |t| {
    let plan =
        r#"{"rules":[{"match":{"path":"/bytes/1000","probability":0.5},"fault":{"kind":"status","status":500}}]}"#;
    t.plan(plan);
    let mut a = vec![];
    for _ in 0..20 {
        a.push(t.get("/bytes/1000").await.status);
    }
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
    // a fresh server with the same seed makes the same choices
    let s2 = bitsim_server::MockServer::new(bitsim_server::Plan::from_json_str(plan, "p").unwrap(), common::SEED);
    let t2 = common::T::Mem(s2);
    let mut b = vec![];
    for _ in 0..20 {
        b.push(t2.get("/bytes/1000").await.status);
    }
    assert_eq!(a, b);
});

dual!(plan_supplied_framing_headers_are_written_verbatim, |t| {
    t.plan(&rule(
        r#"{"kind":"status","status":200,"headers":{"Content-Length":"2"},"body":"abcd"}"#,
    ));
    let raw = t.raw(GET10).await;
    let (head, body) = head_and_body(&raw);
    assert_eq!(head.matches("Content-Length").count(), 1, "{head}");
    assert!(head.contains("Content-Length: 2"));
    assert_eq!(body, b"abcd");
    // bodiless statuses on HEAD and GET
    let mut c = t.client().await;
    for code in ["204", "304"] {
        let r = c.send(req("HEAD", &format!("/status/{code}"), &[], b"")).await.unwrap();
        assert_eq!(r.status.to_string(), code);
        let r = c.send(req("GET", &format!("/status/{code}"), &[], b"")).await.unwrap();
        assert!(r.body.is_empty());
    }
    t.plan(&rule(r#"{"kind":"change","last_modified":18446744073709551615}"#));
    assert_eq!(t.get("/bytes/1000").await.status, 200);
    t.plan(
        r#"{"resources":[{"path":"/r","body":{"text":"x"},"last_modified":18446744073709551615}],
        "rules":[{"match":{"path":"/r"},"fault":{"kind":"change"}}]}"#,
    );
    assert_eq!(t.get("/r").await.status, 200);
});

fn multi() -> http::Request<http_body_util::Full<bytes::Bytes>> {
    req("GET", "/bytes/1000", &[("Range", "bytes=0-9,100-109")], b"")
}

dual!(bad_multipart, |t| {
    let mut c = t.client().await;
    t.plan(&rule(r#"{"kind":"bad_multipart","mode":"status_200"}"#));
    let r = c.send(multi()).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.h("content-type").unwrap().starts_with("multipart/byteranges"));
    t.plan(&rule(r#"{"kind":"bad_multipart","mode":"wrong_part_range"}"#));
    let r = c.send(multi()).await.unwrap();
    assert!(String::from_utf8_lossy(&r.body).contains("Content-Range: bytes 1-10/1000"));
    t.plan(&rule(r#"{"kind":"bad_multipart","mode":"extra_crlf"}"#));
    assert!(c.send(multi()).await.unwrap().body.starts_with(b"\r\n\r\n\r\n--"));
    t.plan(&rule(r#"{"kind":"bad_multipart","mode":"long_part_headers"}"#));
    assert!(String::from_utf8_lossy(&c.send(multi()).await.unwrap().body).contains("X-Padding: ppp"));
});

dual!(throttle, |t| {
    t.plan(&rule(r#"{"kind":"throttle","bytes_per_sec":4000}"#));
    let s = Instant::now();
    let r = t.get("/bytes/1000").await;
    assert_eq!(&r.body[..], expected(0, 1000).as_slice());
    assert!(s.elapsed() >= Duration::from_millis(250), "{:?}", s.elapsed());
});

dual!(refuse_connections, |t| {
    t.plan(r#"{"refuse_connections":true}"#);
    let io = t.connect().await;
    let r = hyper::client::conn::http1::handshake::<_, http_body_util::Full<bytes::Bytes>>(
        hyper_util::rt::TokioIo::new(io),
    )
    .await;
    if let Ok((mut tx, conn)) = r {
        tokio::spawn(conn);
        assert!(tx.send_request(req("GET", "/bytes/1", &[], b"")).await.is_err());
    }
    assert!(t.server().log().is_empty());
    t.plan("{}");
    assert_eq!(t.get("/bytes/1").await.status, 200);
});
