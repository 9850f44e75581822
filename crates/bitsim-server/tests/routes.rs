//! Every default route, over TCP and over the in-memory pipe.

mod common;
use common::{expected, req};

dual!(bytes_full_get, |t| {
    let r = t.get("/bytes/5000").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.h("content-length"), Some("5000"));
    assert_eq!(r.h("accept-ranges"), Some("bytes"));
    assert_eq!(r.h("last-modified"), Some("Tue, 14 Nov 2023 22:13:20 GMT"));
    assert!(r.h("etag").unwrap().starts_with('"'));
    assert_eq!(r.body.as_ref(), expected(0, 5000).as_slice());
});

dual!(bytes_large_body_is_consistent, |t| {
    // crosses the pattern period and the chunk size
    let n = 3 * 1024 * 1024 + 17;
    let r = t.get(&format!("/bytes/{n}")).await;
    assert_eq!(r.body.len(), n);
    assert_eq!(&r.body[..], expected(0, n).as_slice());
    let log = t.server().log();
    assert_eq!(log[0].body_bytes_sent, n as u64);
});

dual!(bytes_head, |t| {
    let mut c = t.client().await;
    let r = c.send(req("HEAD", "/bytes/12345", &[], b"")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.h("content-length"), Some("12345"));
    assert!(r.body.is_empty());
    // keep-alive still works after HEAD
    let r = c.send(req("GET", "/bytes/3", &[], b"")).await.unwrap();
    assert_eq!(r.body.len(), 3);
    assert_eq!(t.server().log()[0].body_bytes_sent, 0);
});

dual!(bytes_ranges, |t| {
    let mut c = t.client().await;
    let r = c
        .send(req("GET", "/bytes/10240", &[("Range", "bytes=0-9976")], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-range"), Some("bytes 0-9976/10240"));
    assert_eq!(r.h("content-length"), Some("9977"));
    assert_eq!(&r.body[..], expected(0, 9977).as_slice());
    let r = c
        .send(req("GET", "/bytes/10240", &[("Range", "bytes=10000-")], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-range"), Some("bytes 10000-10239/10240"));
    assert_eq!(&r.body[..], expected(10000, 240).as_slice());
    let r = c
        .send(req("GET", "/bytes/10240", &[("Range", "bytes=-40")], b""))
        .await
        .unwrap();
    assert_eq!(r.h("content-range"), Some("bytes 10200-10239/10240"));
    let r = c
        .send(req("GET", "/bytes/10240", &[("Range", "bytes=20000-")], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 416);
    assert_eq!(r.h("content-range"), Some("bytes */10240"));
    // Accept-Encoding: identity honoured
    let r = c
        .send(req("GET", "/bytes/100", &[("Accept-Encoding", "identity")], b""))
        .await
        .unwrap();
    assert!(r.h("content-encoding").is_none());
    assert_eq!(r.body.len(), 100);
    let log = t.server().log();
    assert_eq!(log[0].range.as_deref(), Some("bytes=0-9976"));
    assert_eq!(log[0].status, Some(206));
    assert_eq!(log[3].status, Some(416));
});

dual!(status_route, |t| {
    for code in [200u16, 204, 403, 404, 408, 409, 500, 503, 504, 505] {
        let r = t.get(&format!("/status/{code}")).await;
        assert_eq!(r.status, code);
    }
    let r = t.get("/status/503?retry_after=30").await;
    assert_eq!(r.h("retry-after"), Some("30"));
    let r = t.get("/status/301").await;
    assert_eq!(r.h("location"), Some("/bytes/1024"));
    let r = t.get("/status/401").await;
    assert!(r.h("www-authenticate").unwrap().starts_with("Basic"));
    let r = t.get("/status/407").await;
    assert!(r.h("proxy-authenticate").is_some());
    assert_eq!(t.get("/status/99").await.status, 400);
    assert_eq!(t.get("/status/abc").await.status, 400);
});

dual!(redirect_chain, |t| {
    let mut c = t.client().await;
    let mut path = "/redirect/3/bytes/64?status=307".to_string();
    let mut hops = 0;
    loop {
        let r = c.send(req("GET", &path, &[], b"")).await.unwrap();
        if r.status == 200 {
            assert_eq!(r.body.len(), 64);
            break;
        }
        assert_eq!(r.status, 307);
        path = r.h("location").unwrap().to_string();
        hops += 1;
    }
    assert_eq!(hops, 3);
    for code in [301, 302, 303, 308] {
        let r = t.get(&format!("/redirect/1/bytes/1?status={code}")).await;
        assert_eq!(r.status, code);
    }
});

dual!(delay_route, |t| {
    let start = tokio::time::Instant::now();
    let r = t.get("/delay/300/bytes/10").await;
    assert_eq!(r.body.len(), 10);
    assert!(start.elapsed() >= std::time::Duration::from_millis(300));
});

dual!(drip_route, |t| {
    let start = tokio::time::Instant::now();
    let r = t.get("/drip/4/200/bytes/1000").await;
    assert_eq!(&r.body[..], expected(0, 1000).as_slice());
    assert!(start.elapsed() >= std::time::Duration::from_millis(200));
});

dual!(basic_and_proxy_auth, |t| {
    let r = t.get("/basic-auth/u/p/bytes/5").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.h("www-authenticate"), Some("Basic realm=\"bitsim\""));
    let mut c = t.client().await;
    let r = c
        .send(req(
            "GET",
            "/basic-auth/u/p/bytes/5",
            &[("Authorization", "Basic dTpw")],
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 5);
    let r = c
        .send(req(
            "GET",
            "/basic-auth/u/p/bytes/5",
            &[("Authorization", "Basic eDp5")],
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = t.get("/proxy-auth/u/p/bytes/5").await;
    assert_eq!(r.status, 407);
    assert!(r.h("proxy-authenticate").is_some());
    let r = c
        .send(req(
            "GET",
            "/proxy-auth/u/p/bytes/5",
            &[("Proxy-Authorization", "Basic dTpw")],
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
});

dual!(not_found_and_methods, |t| {
    assert_eq!(t.get("/nope").await.status, 404);
    assert_eq!(t.get("/bytes/x").await.status, 400);
    let mut c = t.client().await;
    let r = c.send(req("POST", "/bytes/10", &[], b"abc")).await.unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.h("allow"), Some("GET, HEAD"));
});

dual!(control_log_and_plan, |t| {
    t.get("/bytes/10").await;
    let r = t.get("/_bitsim/log").await;
    assert_eq!(r.status, 200);
    let log: Vec<bitsim_server::RequestLogEntry> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].path, "/bytes/10");
    assert_eq!(log[0].body_bytes_sent, 10);
    let r = t.get("/_bitsim/plan").await;
    let plan = bitsim_server::Plan::from_json_str(std::str::from_utf8(&r.body).unwrap(), "x").unwrap();
    assert_eq!(plan, bitsim_server::Plan::default());
    // PUT a plan that makes /bytes/10 a 403
    let new = r#"{"rules":[{"match":{"path":"/bytes/10"},"fault":{"kind":"status","status":403}}]}"#;
    let mut c = t.client().await;
    let r = c.send(req("PUT", "/_bitsim/plan", &[], new.as_bytes())).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(t.get("/bytes/10").await.status, 403);
    // a bad plan names the line and field
    let r = c
        .send(req("PUT", "/_bitsim/plan", &[], b"{\n\"rules\": 5}"))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let msg = String::from_utf8_lossy(&r.body);
    assert!(msg.contains("PUT /_bitsim/plan:2:"), "{msg}");
    assert!(msg.contains("rules"), "{msg}");
    let r = c.send(req("DELETE", "/_bitsim/log", &[], b"")).await.unwrap();
    assert_eq!(r.status, 204);
    assert!(t.server().log().is_empty());
    let r = t.get("/_bitsim/schema").await;
    assert_eq!(r.status, 200);
});

dual!(plan_resources, |t| {
    t.plan(
        r#"{"resources":[
            {"path":"/f.bin","body":{"pattern":{"size":4096}},"last_modified":1600000000,"etag":"v1"},
            {"path":"/hello.txt","body":{"text":"hello world"},"content_type":"text/plain"}
        ]}"#,
    );
    let r = t.get("/f.bin").await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], expected(0, 4096).as_slice());
    assert_eq!(r.h("etag"), Some("\"v1\""));
    assert_eq!(r.h("last-modified"), Some("Sun, 13 Sep 2020 12:26:40 GMT"));
    let mut c = t.client().await;
    let r = c
        .send(req("GET", "/hello.txt", &[("Range", "bytes=6-")], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(&r.body[..], b"world");
    assert_eq!(r.h("content-type"), Some("text/plain"));
});

dual!(multi_range_multipart, |t| {
    let mut c = t.client().await;
    let r = c
        .send(req("GET", "/bytes/1000", &[("Range", "bytes=500-509,0-4")], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 206);
    let ct = r.h("content-type").unwrap();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let boundary = ct.split("boundary=").nth(1).unwrap();
    let body = String::from_utf8_lossy(&r.body).to_string();
    // parts in request order, each with its Content-Range
    let i = body.find("Content-Range: bytes 500-509/1000").unwrap();
    let j = body.find("Content-Range: bytes 0-4/1000").unwrap();
    assert!(i < j);
    assert!(body.starts_with(&format!("--{boundary}\r\n")));
    assert!(body.ends_with(&format!("--{boundary}--\r\n")));
    let first = &r.body[r.body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..][..10];
    assert_eq!(first, expected(500, 10).as_slice());
});

#[tokio::test]
async fn serve_tcp_shuts_down_cleanly_with_open_connections() {
    let server = bitsim_server::MockServer::new(bitsim_server::Plan::default(), 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s = server.clone();
    let task = tokio::spawn(async move {
        s.serve_tcp(listener, async {
            let _ = rx.await;
        })
        .await
    });
    let t = common::T::Tcp(server.clone(), addr);
    let mut idle = t.client().await; // an open keep-alive connection
    assert_eq!(idle.send(req("GET", "/bytes/1", &[], b"")).await.unwrap().status, 200);
    tx.send(()).unwrap();
    let res = tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("serve_tcp returns after shutdown");
    assert!(res.unwrap().is_ok());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
