//! The BITS upload protocol (bits-http §3) packet by packet, as a BITS
//! client drives it, over TCP and the in-memory pipe; the upload-level
//! faults; and the seven reply failures of §3.8.

mod common;
use std::time::Duration;

use common::{bits, req, Client, Resp, GUID};
use sha2::{Digest, Sha256};

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn is_ack(r: &Resp) {
    assert_eq!(r.h("bits-packet-type"), Some("Ack"), "{r:?}");
    assert_eq!(r.h("content-length"), Some("0"), "{r:?}");
    assert!(r.body.is_empty());
}

fn err(r: &Resp) -> (u16, Option<&str>, Option<&str>) {
    (r.status, r.h("bits-error-code"), r.h("bits-error-context"))
}

async fn create(c: &mut Client, path: &str) -> String {
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
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    is_ack(&r);
    r.h("bits-session-id").unwrap().to_string()
}

async fn frag(c: &mut Client, path: &str, sid: &str, data: &[u8], start: usize, total: usize) -> Resp {
    let end = start + data.len() - 1;
    let cr = format!("bytes {start}-{end}/{total}");
    c.send(bits(
        path,
        "Fragment",
        Some(sid),
        &[("Content-Range", &cr), ("Content-Name", "local.bin")],
        data,
    ))
    .await
    .unwrap()
}

/// Uploads `d` in fragments of `n` bytes; returns the last Ack.
async fn upload_all(c: &mut Client, path: &str, sid: &str, d: &[u8], n: usize) -> Resp {
    let mut last = None;
    let mut off = 0;
    while off < d.len() {
        let end = (off + n).min(d.len());
        let r = frag(c, path, sid, &d[off..end], off, d.len()).await;
        assert_eq!(r.status, 200, "{r:?}");
        is_ack(&r);
        assert_eq!(r.h("bits-received-content-range"), Some(end.to_string().as_str()));
        off = end;
        last = Some(r);
    }
    last.unwrap()
}

dual!(full_upload_packet_by_packet, |t| {
    let d = data(100_000);
    let mut c = t.client().await;
    let r = c.send(bits("/upload/a.bin", "Ping", None, &[], b"")).await.unwrap();
    assert_eq!(r.status, 200);
    is_ack(&r);
    let sid = create(&mut c, "/upload/a.bin").await;
    assert_eq!(sid.len(), 38);
    assert!(sid.starts_with('{') && sid.ends_with('}'));
    let last = upload_all(&mut c, "/upload/a.bin", &sid, &d, 30_000).await;
    // IIS 6 omits BITS-Session-Id on Fragment Acks (bits-http §3.3; default)
    assert!(last.h("bits-session-id").is_none());
    // not committed before Close-Session
    assert!(t.server().uploaded("/upload/a.bin").is_none());
    let r = c
        .send(bits("/upload/a.bin", "Close-Session", Some(&sid), &[], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    is_ack(&r);
    assert_eq!(t.server().uploaded("/upload/a.bin").unwrap().as_ref(), d.as_slice());
    // downloadable afterwards
    let g = c.send(req("GET", "/upload/a.bin", &[], b"")).await.unwrap();
    assert_eq!(g.body.as_ref(), d.as_slice());
    // no overwrite by default: 409 + E_ACCESSDENIED (bits-http §3.9, §3.10)
    let r = c
        .send(bits(
            "/upload/a.bin",
            "Create-Session",
            None,
            &[("BITS-Supported-Protocols", GUID)],
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(err(&r), (409, Some("0x80070005"), Some("0x5")));
    let log = t.server().log();
    let types: Vec<_> = log.iter().map(|e| e.packet_type.clone().unwrap_or_default()).collect();
    assert_eq!(
        types,
        [
            "Ping",
            "Create-Session",
            "Fragment",
            "Fragment",
            "Fragment",
            "Fragment",
            "Close-Session",
            "",
            "Create-Session"
        ]
    );
    assert_eq!(log[2].session_id.as_deref(), Some(sid.as_str()));
    assert_eq!(log[2].method, "BITS_POST");
});

dual!(create_session_errors, |t| {
    let mut c = t.client().await;
    let r = c
        .send(bits(
            "/upload/x",
            "Create-Session",
            None,
            &[("BITS-Supported-Protocols", "{00000000-0000-0000-0000-000000000000}")],
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(err(&r), (400, Some("0x80070057"), Some("0x5")));
    is_ack(&r);
    // several GUIDs, comma separated, lower/upper case
    let list = format!("{{11111111-0000-0000-0000-000000000000}}, {}", GUID.to_uppercase());
    let r = c
        .send(bits(
            "/upload/x",
            "create-session",
            None,
            &[("BITS-Supported-Protocols", &list)],
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.h("bits-protocol"), Some(GUID));
    assert_eq!(r.h("accept-encoding"), Some("Identity"));
    // unknown / missing packet type
    let r = c.send(bits("/upload/x", "Bogus", None, &[], b"")).await.unwrap();
    assert_eq!(err(&r), (400, Some("0x80070057"), Some("0x5")));
    let r = c.send(req("BITS_POST", "/upload/x", &[], b"")).await.unwrap();
    assert_eq!(r.status, 400);
    // header value over 4 KB (bits-http §3.1)
    let long = "x".repeat(5000);
    let r = c
        .send(bits("/upload/x", "Ping", None, &[("X-Long", &long)], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
});

dual!(fragment_rules, |t| {
    let mut c = t.client().await;
    let sid = create(&mut c, "/upload/f").await;
    let d = data(1000);
    let r = frag(&mut c, "/upload/f", &sid, &d[..400], 0, 1000).await;
    assert_eq!(r.h("bits-received-content-range"), Some("400"));
    // gap: 416 with the expected offset (bits-http §3.6)
    let r = frag(&mut c, "/upload/f", &sid, &d[500..600], 500, 1000).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.h("bits-received-content-range"), Some("400"));
    is_ack(&r);
    // overlap: only the new tail is written
    let mut other = d[300..700].to_vec();
    other[0] ^= 0xFF; // a byte the server already has: must not be overwritten
    let r = frag(&mut c, "/upload/f", &sid, &other, 300, 1000).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.h("bits-received-content-range"), Some("700"));
    // total length changed between fragments
    let r = frag(&mut c, "/upload/f", &sid, &d[700..800], 700, 999).await;
    assert_eq!(err(&r).0, 400);
    // bad Content-Range
    let r = c
        .send(bits(
            "/upload/f",
            "Fragment",
            Some(&sid),
            &[("Content-Range", "bytes 9-1/10")],
            b"x",
        ))
        .await
        .unwrap();
    assert_eq!(err(&r), (400, Some("0x80070057"), Some("0x5")));
    // length mismatch between Content-Range and body
    let r = c
        .send(bits(
            "/upload/f",
            "Fragment",
            Some(&sid),
            &[("Content-Range", "bytes 700-709/1000")],
            b"abc",
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let r = frag(&mut c, "/upload/f", &sid, &d[700..], 700, 1000).await;
    assert_eq!(r.h("bits-received-content-range"), Some("1000"));
    let r = c
        .send(bits("/upload/f", "Close-Session", Some(&sid), &[], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(t.server().uploaded("/upload/f").unwrap().as_ref(), d.as_slice());
});

dual!(session_not_found_and_cancel, |t| {
    let mut c = t.client().await;
    let bogus = "{00000000-0000-0000-0000-000000000001}";
    let r = frag(&mut c, "/upload/g", bogus, b"abc", 0, 3).await;
    assert_eq!(err(&r), (500, Some("0x8020001F"), Some("0x5")));
    for p in ["Close-Session", "Cancel-Session"] {
        let r = c.send(bits("/upload/g", p, Some(bogus), &[], b"")).await.unwrap();
        assert_eq!(err(&r), (500, Some("0x8020001F"), Some("0x5")));
    }
    let sid = create(&mut c, "/upload/g").await;
    // a session belongs to its URL
    let r = frag(&mut c, "/upload/other", &sid, b"abc", 0, 3).await;
    assert_eq!(r.status, 500);
    frag(&mut c, "/upload/g", &sid, b"ab", 0, 3).await;
    let r = c
        .send(bits("/upload/g", "Cancel-Session", Some(&sid), &[], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    is_ack(&r);
    let r = frag(&mut c, "/upload/g", &sid, b"c", 2, 3).await;
    assert_eq!(err(&r).1, Some("0x8020001F"));
    assert!(t.server().uploaded("/upload/g").is_none());
});

dual!(fragment_too_large_and_upload_too_large, |t| {
    t.plan(r#"{"upload":{"max_fragment_bytes":1000,"max_upload_bytes":5000}}"#);
    let mut c = t.client().await;
    let sid = create(&mut c, "/upload/big").await;
    let d = data(4000);
    let r = frag(&mut c, "/upload/big", &sid, &d[..2000], 0, 4000).await;
    assert_eq!(r.status, 413);
    is_ack(&r);
    // the client shrinks the fragment and goes on (bits-http §3.6)
    upload_all(&mut c, "/upload/big", &sid, &d, 1000).await;
    let sid = create(&mut c, "/upload/huge").await;
    let r = frag(&mut c, "/upload/huge", &sid, &d[..1000], 0, 6000).await;
    assert_eq!(err(&r), (500, Some("0x80200020"), Some("0x5")));
    // fragment_limit fault: 413 until the fragment is small enough
    t.plan(r#"{"rules":[{"match":{"packet_type":"Fragment"},"fault":{"kind":"fragment_limit","max_bytes":100}}]}"#);
    let sid = create(&mut c, "/upload/lim").await;
    assert_eq!(frag(&mut c, "/upload/lim", &sid, &d[..200], 0, 200).await.status, 413);
    assert_eq!(frag(&mut c, "/upload/lim", &sid, &d[..100], 0, 200).await.status, 200);
});

dual!(session_expiry, |t| {
    t.plan(r#"{"upload":{"session_timeout_ms":100}}"#);
    let mut c = t.client().await;
    let sid = create(&mut c, "/upload/e").await;
    assert_eq!(frag(&mut c, "/upload/e", &sid, b"ab", 0, 4).await.status, 200);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let r = frag(&mut c, "/upload/e", &sid, b"cd", 2, 4).await;
    assert_eq!(err(&r), (500, Some("0x8020001F"), Some("0x5")));
});

dual!(spec_vs_iis_options, |t| {
    t.plan(
        r#"{"upload":{"error_header":"both","error_format":"x","create_status":201,
            "session_id_in_acks":true,"exists_status":403,"missing_content_length_status":411,
            "host_id":"farm-node-1","host_id_fallback_timeout":110}}"#,
    );
    let mut c = t.client().await;
    let r = c
        .send(bits(
            "/upload/o",
            "Create-Session",
            None,
            &[("BITS-Supported-Protocols", GUID)],
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.h("bits-host-id"), Some("farm-node-1"));
    assert_eq!(r.h("bits-host-id-fallback-timeout"), Some("110"));
    let sid = r.h("bits-session-id").unwrap().to_string();
    let r = frag(&mut c, "/upload/o", &sid, b"abc", 0, 3).await;
    assert_eq!(r.h("bits-session-id"), Some(sid.as_str()));
    let r = c
        .send(bits("/upload/o", "Close-Session", Some(&sid), &[], b""))
        .await
        .unwrap();
    assert_eq!(r.h("bits-session-id"), Some(sid.as_str()));
    let r = c
        .send(bits(
            "/upload/o",
            "Create-Session",
            None,
            &[("BITS-Supported-Protocols", GUID)],
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.h("bits-error"), Some("x80070005"));
    assert_eq!(r.h("bits-error-code"), Some("x80070005"));
    // a fragment without Content-Length (chunked): 411 per the option
    let sid = create(&mut c, "/upload/o2").await;
    let raw = format!(
        "BITS_POST /upload/o2 HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Fragment\r\nBITS-Session-Id: {sid}\r\nContent-Range: bytes 0-2/3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    );
    let mut io = t.connect().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    io.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = io.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 411"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
});

dual!(upload_level_faults, |t| {
    let mut c = t.client().await;
    let create_req = || {
        bits(
            "/upload/u",
            "Create-Session",
            None,
            &[("BITS-Supported-Protocols", GUID)],
            b"",
        )
    };
    for (fault, check) in [
        (
            r#"{"kind":"protocol","value":"{00000000-0000-0000-0000-000000000000}"}"#,
            "wrong-protocol",
        ),
        (r#"{"kind":"protocol"}"#, "no-protocol"),
        (r#"{"kind":"omit_session_id"}"#, "no-session"),
        (
            r#"{"kind":"host_id","host":"dead.invalid","fallback_timeout":5}"#,
            "host",
        ),
        (r#"{"kind":"bits_error","status":501,"code":"0x80070005"}"#, "501"),
        (r#"{"kind":"bits_error","status":404}"#, "404"),
    ] {
        t.plan(&format!(
            r#"{{"rules":[{{"match":{{"packet_type":"Create-Session"}},"fault":{fault}}}]}}"#
        ));
        let r = c.send(create_req()).await.unwrap();
        match check {
            "wrong-protocol" => assert_eq!(r.h("bits-protocol"), Some("{00000000-0000-0000-0000-000000000000}")),
            "no-protocol" => assert!(r.h("bits-protocol").is_none() && r.h("bits-session-id").is_some()),
            "no-session" => assert!(r.h("bits-session-id").is_none() && r.status == 200),
            "host" => {
                assert_eq!(r.h("bits-host-id"), Some("dead.invalid"));
                assert_eq!(r.h("bits-host-id-fallback-timeout"), Some("5"));
            }
            "501" => assert_eq!(err(&r), (501, Some("0x80070005"), Some("0x5"))),
            _ => assert_eq!(err(&r), (404, None, None)),
        }
        is_ack(&r);
    }
    t.plan("{}");
    let sid = create(&mut c, "/upload/u").await;
    let d = data(300);
    // session not found on the 2nd fragment only
    t.plan(
        r#"{"rules":[{"match":{"packet_type":"Fragment","from":2,"to":2},
        "fault":{"kind":"bits_error","status":500,"code":"0x8020001F"}}]}"#,
    );
    assert_eq!(frag(&mut c, "/upload/u", &sid, &d[..100], 0, 300).await.status, 200);
    let r = frag(&mut c, "/upload/u", &sid, &d[100..200], 100, 300).await;
    assert_eq!(err(&r), (500, Some("0x8020001F"), Some("0x5")));
    // disk full
    t.plan(r#"{"rules":[{"match":{"packet_type":"Fragment"},"fault":{"kind":"bits_error","status":500,"code":"0x80070070"}}]}"#);
    assert_eq!(
        err(&frag(&mut c, "/upload/u", &sid, &d[100..200], 100, 300).await).1,
        Some("0x80070070")
    );
    // resync: rewind to 50
    t.plan(r#"{"rules":[{"match":{"packet_type":"Fragment"},"fault":{"kind":"resync","offset":50}}]}"#);
    let r = frag(&mut c, "/upload/u", &sid, &d[100..200], 100, 300).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.h("bits-received-content-range"), Some("50"));
    // missing BITS-Received-Content-Range
    t.plan(r#"{"rules":[{"match":{"packet_type":"Fragment"},"fault":{"kind":"omit_received_range"}}]}"#);
    let r = frag(&mut c, "/upload/u", &sid, &d[100..200], 100, 300).await;
    assert_eq!(r.status, 200);
    assert!(r.h("bits-received-content-range").is_none());
    // Ack without Content-Length (close-delimited)
    t.plan(r#"{"rules":[{"match":{"packet_type":"Ping"},"fault":{"kind":"ack_without_content_length"}}]}"#);
    let r = t
        .client()
        .await
        .send(bits("/upload/u", "Ping", None, &[], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.h("content-length").is_none());
    assert_eq!(r.h("bits-packet-type"), Some("Ack"));
    // expire the session now
    t.plan(r#"{"rules":[{"match":{"packet_type":"Fragment"},"fault":{"kind":"expire_session"}}]}"#);
    let r = frag(&mut c, "/upload/u", &sid, &d[200..], 200, 300).await;
    assert_eq!(err(&r).1, Some("0x8020001F"));
});

/// Resolves a BITS-Reply-URL against the upload URL (IIS relative form).
fn reply_path(upload_path: &str, url: &str) -> String {
    let dir = &upload_path[..upload_path.rfind('/').unwrap() + 1];
    format!("{dir}{}", url.replace('\\', "/"))
}

dual!(full_upload_reply_session, |t| {
    let d = data(50_000);
    let mut c = t.client().await;
    c.send(bits("/upload-reply/r.bin", "Ping", None, &[], b""))
        .await
        .unwrap();
    let sid = create(&mut c, "/upload-reply/r.bin").await;
    let last = upload_all(&mut c, "/upload-reply/r.bin", &sid, &d, 20_000).await;
    let url = last.h("bits-reply-url").expect("reply url").to_string();
    assert_eq!(url, format!("BITS-Sessions\\Replies\\{sid}\\responsefile.bin"));
    let path = reply_path("/upload-reply/r.bin", &url);
    // the reply is a normal BITS download: HEAD, then ranged GETs
    let h = c.send(req("HEAD", &path, &[], b"")).await.unwrap();
    assert_eq!(h.status, 200);
    let size: usize = h.h("content-length").unwrap().parse().unwrap();
    let g = c.send(req("GET", &path, &[("Range", "bytes=0-9")], b"")).await.unwrap();
    assert_eq!(g.status, 206);
    let full = c.send(req("GET", &path, &[], b"")).await.unwrap();
    assert_eq!(full.body.len(), size);
    assert_eq!(&full.body[..10], &g.body[..]);
    let v: serde_json::Value = serde_json::from_slice(&full.body).unwrap();
    let digest: String = Sha256::digest(&d).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v["sha256"], digest.as_str());
    assert_eq!(v["size"], 50_000);
    assert_eq!(v["name"], "r.bin");
    // percent-encoded braces reach the same reply
    let enc = path.replace('{', "%7B").replace('}', "%7D");
    assert_eq!(c.send(req("GET", &enc, &[], b"")).await.unwrap().status, 200);
    let r = c
        .send(bits("/upload-reply/r.bin", "Close-Session", Some(&sid), &[], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // the reply is gone after Close-Session (bits-http §3.8)
    assert_eq!(c.send(req("GET", &path, &[], b"")).await.unwrap().status, 404);
    // upload-reply does not commit the upload
    assert!(t.server().uploaded("/upload-reply/r.bin").is_none());
    assert_eq!(
        t.server()
            .log()
            .iter()
            .filter(|e| e.note.as_deref() == Some("app notified #1"))
            .count(),
        1
    );
});

dual!(reply_url_styles_and_echo, |t| {
    t.plan(r#"{"upload":{"reply_url":"absolute","reply":{"kind":"echo"}}}"#);
    let mut c = t.client().await;
    let sid = create(&mut c, "/upload-reply/e").await;
    let last = upload_all(&mut c, "/upload-reply/e", &sid, b"hello", 5).await;
    let url = last.h("bits-reply-url").unwrap();
    assert!(
        url.starts_with("http://bitsim.test/upload-reply/BITS-Sessions/Replies/%7B"),
        "{url}"
    );
    let path = url.trim_start_matches("http://bitsim.test");
    assert_eq!(&c.send(req("GET", path, &[], b"")).await.unwrap().body[..], b"hello");
    t.plan(
        r#"{"upload":{"reply_url":"path","reply":{"kind":"fixed","text":"ok"},
        "endpoints":[{"path_prefix":"/app/","reply":{"kind":"fixed","text":"custom"}}]}}"#,
    );
    let sid = create(&mut c, "/app/x").await;
    let last = upload_all(&mut c, "/app/x", &sid, b"abc", 3).await;
    let url = last.h("bits-reply-url").unwrap();
    assert!(url.starts_with("/app/BITS-Sessions/Replies/%7B"), "{url}");
    assert_eq!(&c.send(req("GET", url, &[], b"")).await.unwrap().body[..], b"custom");
});

/// Drives an upload-reply job up to (not including) the final fragment.
async fn reply_job(t: &common::T, name: &str, fault: &str) -> (Client, String, Vec<u8>) {
    reply_job_timeout(t, name, fault, 300_000).await
}

async fn reply_job_timeout(t: &common::T, name: &str, fault: &str, app_timeout_ms: u64) -> (Client, String, Vec<u8>) {
    t.plan(&format!(
        r#"{{"rules":[{{"match":{{"packet_type":"Fragment","final_fragment":true,"to":1}},"fault":{fault}}}],
            "upload":{{"app_timeout_ms":{app_timeout_ms}}}}}"#
    ));
    let mut c = t.client().await;
    let path = format!("/upload-reply/{name}");
    let sid = create(&mut c, &path).await;
    let d = data(3000);
    assert_eq!(frag(&mut c, &path, &sid, &d[..2000], 0, 3000).await.status, 200);
    (c, sid, d)
}

dual!(reply_failure_1_app_error, |t| {
    let (mut c, sid, d) = reply_job(&t, "f1", r#"{"kind":"app_error","status":403}"#).await;
    let r = frag(&mut c, "/upload-reply/f1", &sid, &d[2000..], 2000, 3000).await;
    assert_eq!(err(&r), (403, Some("0x80190193"), Some("0x7")));
    is_ack(&r);
    assert!(r.h("bits-reply-url").is_none());
});

dual!(reply_failure_2_app_too_slow, |t| {
    // past the 5-minute app timeout: error Ack, context REMOTE_APPLICATION
    let (slow, timeout) = if t.is_mem() { (400_000, 300_000) } else { (300, 200) };
    let fault = format!(r#"{{"kind":"app_stall","ms":{slow}}}"#);
    let (mut c, sid, d) = reply_job_timeout(&t, "f2", &fault, timeout).await;
    let s = tokio::time::Instant::now();
    let r = frag(&mut c, "/upload-reply/f2", &sid, &d[2000..], 2000, 3000).await;
    assert_eq!(err(&r), (408, Some("0x80070112"), Some("0x7")));
    if t.is_mem() {
        assert_eq!(s.elapsed(), Duration::from_secs(300));
    }
    // the client retries the final fragment: the app is notified again
    let r = frag(&mut c, "/upload-reply/f2", &sid, &d[2000..], 2000, 3000).await;
    assert_eq!(r.status, 200);
    assert!(r.h("bits-reply-url").is_some());
    let notes: Vec<_> = t.server().log().into_iter().filter_map(|e| e.note).collect();
    assert_eq!(notes, ["app notified #1 (timed out)", "app notified #2"]);
});

dual!(reply_failure_3_no_reply_url, |t| {
    let (mut c, sid, d) = reply_job(&t, "f3", r#"{"kind":"omit_reply_url"}"#).await;
    let r = frag(&mut c, "/upload-reply/f3", &sid, &d[2000..], 2000, 3000).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.h("bits-received-content-range"), Some("3000"));
    assert!(r.h("bits-reply-url").is_none());
});

dual!(reply_failure_4_reply_unreachable, |t| {
    let (mut c, sid, d) = reply_job(&t, "f4", r#"{"kind":"reply_url","url":"http://127.0.0.1:9/dead"}"#).await;
    let r = frag(&mut c, "/upload-reply/f4", &sid, &d[2000..], 2000, 3000).await;
    assert_eq!(r.h("bits-reply-url"), Some("http://127.0.0.1:9/dead"));
    // or the reply URL is right but its download fails (any download fault)
    t.plan(r#"{"rules":[{"match":{"path_prefix":"/upload-reply/BITS-Sessions/"},"fault":{"kind":"status","status":404}}]}"#);
    let sid = create(&mut c, "/upload-reply/f4b").await;
    let last = upload_all(&mut c, "/upload-reply/f4b", &sid, &d, 3000).await;
    let path = reply_path("/upload-reply/f4b", last.h("bits-reply-url").unwrap());
    assert_eq!(c.send(req("GET", &path, &[], b"")).await.unwrap().status, 404);
});

dual!(reply_failure_5_reply_over_1mb, |t| {
    let (mut c, sid, d) = reply_job(&t, "f5", r#"{"kind":"reply","reply":{"kind":"size","bytes":2000000}}"#).await;
    let r = frag(&mut c, "/upload-reply/f5", &sid, &d[2000..], 2000, 3000).await;
    let path = reply_path("/upload-reply/f5", r.h("bits-reply-url").unwrap());
    let h = c.send(req("HEAD", &path, &[], b"")).await.unwrap();
    assert_eq!(h.h("content-length"), Some("2000000"));
    let g = c.send(req("GET", &path, &[], b"")).await.unwrap();
    assert_eq!(g.body.len(), 2_000_000);
});

dual!(reply_failure_6_crash_then_duplicate, |t| {
    let (mut c, sid, d) = reply_job(&t, "f6", r#"{"kind":"app_crash"}"#).await;
    let end = "bytes 2000-2999/3000";
    let r = c
        .send(bits(
            "/upload-reply/f6",
            "Fragment",
            Some(&sid),
            &[("Content-Range", end)],
            &d[2000..],
        ))
        .await;
    assert!(r.is_err(), "no Ack after the crash");
    // the client reconnects and resends the final fragment: duplicate delivery
    let mut c2 = t.client().await;
    let r = frag(&mut c2, "/upload-reply/f6", &sid, &d[2000..], 2000, 3000).await;
    assert_eq!(r.status, 200);
    assert!(r.h("bits-reply-url").is_some());
    let log = t.server().log();
    let notes: Vec<_> = log.iter().filter_map(|e| e.note.clone()).collect();
    assert_eq!(notes, ["app notified #1", "app notified #2"]);
    let crash = log.iter().find(|e| e.fault.as_deref() == Some("app_crash")).unwrap();
    assert_eq!(crash.status, None);
});

dual!(reply_failure_7_bad_app_response, |t| {
    let (mut c, sid, d) = reply_job(&t, "f7", r#"{"kind":"app_bad_response"}"#).await;
    let r = frag(&mut c, "/upload-reply/f7", &sid, &d[2000..], 2000, 3000).await;
    assert_eq!(err(&r), (411, Some("0x80070057"), Some("0x7")));
});

dual!(upload_names_cannot_escape, |t| {
    let dir = std::env::temp_dir().join(format!(
        "bitsim-upload-test-{}-{}",
        std::process::id(),
        if t.is_mem() { "mem" } else { "tcp" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    t.plan(&format!(
        r#"{{"upload":{{"dir":{}}}}}"#,
        serde_json::to_string(&dir).unwrap()
    ));
    let mut c = t.client().await;
    for bad in [
        "/upload/..",
        "/upload/%2e%2e",
        "/upload/a%5Cb",
        "/upload/.hidden",
        "/upload/c:x",
    ] {
        let r = c
            .send(bits(
                bad,
                "Create-Session",
                None,
                &[("BITS-Supported-Protocols", GUID)],
                b"",
            ))
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{bad}");
    }
    // a slash (even encoded) makes it no upload endpoint at all
    let r = c
        .send(bits(
            "/upload/a%2Fb",
            "Create-Session",
            None,
            &[("BITS-Supported-Protocols", GUID)],
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let sid = create(&mut c, "/upload/ok.bin").await;
    upload_all(&mut c, "/upload/ok.bin", &sid, b"on disk", 7).await;
    c.send(bits("/upload/ok.bin", "Close-Session", Some(&sid), &[], b""))
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.join("ok.bin")).unwrap(), b"on disk");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(t.server().uploaded("/upload/ok.bin").unwrap().as_ref(), b"on disk");
    let _ = std::fs::remove_dir_all(&dir);
});

// A server shared by several scenario runs (the real-service lanes) forgets
// sessions and committed uploads between them, as a fresh server would: a
// second Create-Session for the same path then starts over (no 409).
dual!(clear_uploads_forgets_sessions_and_committed_uploads, |t| {
    let d = data(10_000);
    let mut c = t.client().await;
    let sid = create(&mut c, "/upload/shared.bin").await;
    upload_all(&mut c, "/upload/shared.bin", &sid, &d, 4096).await;
    let r = c
        .send(bits("/upload/shared.bin", "Close-Session", Some(&sid), &[], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(t.server().uploaded("/upload/shared.bin").is_some());
    t.server().clear_uploads();
    assert!(t.server().uploaded("/upload/shared.bin").is_none());
    let mut c = t.client().await;
    let sid2 = create(&mut c, "/upload/shared.bin").await;
    assert_ne!(sid, sid2);
});
