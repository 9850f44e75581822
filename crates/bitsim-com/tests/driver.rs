//! The driver end to end on Linux: the model on a scaled real clock, real TCP to
//! a mock server, notifications answered by an external host (as the COM layer
//! does with a client's callback object).

use bitsim_com::driver::{Driver, DriverConfig, Handle};
use bitsim_engine::{Completion, ExternalHost};
use bitsim_model::{
    ApiCall, ApiValue, Callback, ErrorContext, Flavor, Hresult, JobId, JobState, JobType, Notification, NotificationId,
    NotificationKind,
};
use bitsim_server::{MockServer, Plan};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A mock server on 127.0.0.1 in a thread of its own; dropped with the test.
struct Server {
    addr: std::net::SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn server(plan: &str) -> Server {
    let plan: Plan = serde_json::from_str(plan).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let mock = MockServer::new(plan, 7);
    rt.spawn(async move { mock.serve_tcp(listener, std::future::pending()).await });
    Server { addr, _rt: rt }
}

/// One callback call: method, attempt, the error it carried.
type Call = (NotificationKind, u32, Option<(Hresult, ErrorContext)>);

/// Answers each notification from a list of return codes (the last repeats),
/// as a client's callback object would, and records what it was called with.
#[derive(Debug, Default)]
struct Host {
    returns: Vec<Hresult>,
    calls: Mutex<Vec<Call>>,
}

impl ExternalHost for Host {
    fn notify(&self, n: Notification, done: Completion) {
        let mut calls = self.calls.lock().unwrap();
        let hr = self
            .returns
            .get(calls.len())
            .or(self.returns.last())
            .copied()
            .unwrap_or(Hresult::S_OK);
        calls.push((n.kind, n.attempt, n.error));
        // From another thread, like an RPC call returning.
        std::thread::spawn(move || done.notification_returned(n.id, hr));
    }
    fn run_command_line(&self, id: NotificationId, _: JobId, _: String, _: String, done: Completion) {
        done.command_line_exited(id, 0);
    }
}

fn start(host: Arc<Host>, scale: u64, trace: Option<std::path::PathBuf>) -> Driver {
    let mut config = DriverConfig::new(Flavor::Bits);
    config.time_scale = scale;
    config.trace = trace;
    Driver::start(config, host).unwrap()
}

fn job(h: &Handle, url: &str, local: &std::path::Path) -> JobId {
    let reply = h
        .call(ApiCall::CreateJob {
            user: h.user(),
            display_name: "client".into(),
            job_type: JobType::Download,
        })
        .unwrap();
    let ApiValue::Job(job) = reply.value else {
        panic!("CreateJob: {reply:?}")
    };
    let r = h
        .call(ApiCall::AddFile {
            job,
            remote_name: url.into(),
            local_name: local.to_string_lossy().into_owned(),
        })
        .unwrap();
    assert_eq!(r.hresult, Hresult::S_OK);
    h.call(ApiCall::SetNotifyInterface {
        job,
        callback: Some(Callback {
            id: 0,
            callback2: false,
        }),
    })
    .unwrap();
    job
}

fn state(h: &Handle, job: JobId) -> JobState {
    match h.call(ApiCall::GetState { job }).unwrap().value {
        ApiValue::State(s) => s,
        v => panic!("GetState: {v:?}"),
    }
}

/// Polls until the job is in `want` (at most 30 s of wall time: a hang guard,
/// not a timing assertion).
fn wait_for(h: &Handle, job: JobId, want: JobState) {
    let t0 = Instant::now();
    while state(h, job) != want {
        assert!(t0.elapsed() < Duration::from_secs(30), "job never reached {want:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_503_retries_after_the_minimum_retry_delay_in_scaled_time() {
    let srv = server(
        r#"{"rules": [{"match": {"method": "HEAD", "path": "/bytes/2048", "to": 1}, "fault": {"kind": "status", "status": 503}}]}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::default());
    // 600 s of retry delay at 600× is about one second of wall time.
    let driver = start(host.clone(), 600, Some(dir.path().join("trace.txt")));
    let h = driver.handle();
    let local = dir.path().join("out.bin");
    let job = job(&h, &format!("http://{}/bytes/2048", srv.addr), &local);
    h.call(ApiCall::Resume { job }).unwrap();
    wait_for(&h, job, JobState::TransientError);
    let before = h.now().unwrap();
    wait_for(&h, job, JobState::Transferred);
    let waited = h.now().unwrap().0 - before.0;
    assert!(waited >= 590_000, "retried after only {waited} virtual ms");
    let r = h.call(ApiCall::Complete { job }).unwrap();
    assert_eq!(r.hresult, Hresult::S_OK);
    assert_eq!(std::fs::metadata(&local).unwrap().len(), 2048);
    driver.join().unwrap();
    let trace = std::fs::read_to_string(dir.path().join("trace.txt")).unwrap();
    assert!(trace.contains("TRANSIENT_ERROR"), "{trace}");
    assert!(trace.contains("-> 503"), "{trace}");
    assert!(trace.contains("ACKNOWLEDGED"), "{trace}");
}

#[test]
fn a_403_is_an_error_and_job_error_is_redelivered_until_s_ok() {
    let srv = server("{}");
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Host {
        returns: vec![Hresult::E_FAIL, Hresult::E_FAIL, Hresult::S_OK],
        ..Default::default()
    });
    let driver = start(host.clone(), 6000, None);
    let h = driver.handle();
    let job = job(&h, &format!("http://{}/status/403", srv.addr), &dir.path().join("x"));
    h.call(ApiCall::Resume { job }).unwrap();
    wait_for(&h, job, JobState::Error);
    match h.call(ApiCall::GetError { job }).unwrap().value {
        ApiValue::Error { hresult, context, .. } => {
            assert_eq!(hresult, Hresult(0x8019_0193));
            assert_eq!(context, ErrorContext::RemoteFile);
        }
        v => panic!("GetError: {v:?}"),
    }
    // Re-delivery waits the minimum retry delay: jump over it twice.
    let t0 = Instant::now();
    while host.calls.lock().unwrap().len() < 3 {
        assert!(t0.elapsed() < Duration::from_secs(30), "JobError was not re-delivered");
        h.jump(Duration::from_secs(600)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.jump(Duration::from_secs(3600)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let calls = host.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "S_OK ends the re-delivery: {calls:?}");
    assert!(calls
        .iter()
        .all(|(k, _, e)| *k == NotificationKind::JobError && e.map(|e| e.0) == Some(Hresult(0x8019_0193))));
    assert_eq!(calls.iter().map(|c| c.1).collect::<Vec<_>>(), [1, 2, 3]);
    driver.join().unwrap();
}

#[test]
fn a_jump_fires_the_retry_and_lets_its_transfer_finish_before_returning() {
    let srv = server(
        r#"{"rules": [{"match": {"method": "HEAD", "path": "/bytes/2048", "to": 1}, "fault": {"kind": "status", "status": 503}}]}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    // Real time (scale 1): without the jump the retry would come in 600 s.
    let driver = start(Arc::new(Host::default()), 1, None);
    let h = driver.handle();
    let job = job(&h, &format!("http://{}/bytes/2048", srv.addr), &dir.path().join("f"));
    h.call(ApiCall::Resume { job }).unwrap();
    wait_for(&h, job, JobState::TransientError);
    let t0 = Instant::now();
    let reached = h.jump(Duration::from_secs(3600)).unwrap();
    assert!(reached.0 >= 3_600_000, "jumped to {reached:?}");
    // The retry at 600 s ran its HEAD and GET inside the jump.
    assert_eq!(state(&h, job), JobState::Transferred);
    assert!(t0.elapsed() < Duration::from_secs(30));
    driver.join().unwrap();
}

/// The control endpoint over real HTTP: answers, and clear errors for bad bodies.
#[test]
fn control_endpoint_jumps_resets_and_rejects_bad_input() {
    let driver = start(Arc::new(Host::default()), 1, None);
    let control = bitsim_com::control::Control::start("127.0.0.1:0".parse().unwrap(), driver.handle(), || {}).unwrap();
    let addr = control.addr();
    let post = |path: &str, body: &str| post(addr, "POST", path, body);
    let r = post("/_bitsim/jump", r#"{"by": "2h"}"#);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let now: u64 = r
        .split("\"now_ms\":")
        .nth(1)
        .and_then(|t| t.trim_end().trim_end_matches('}').parse().ok())
        .unwrap_or_else(|| panic!("{r}"));
    assert!(now >= 7_200_000, "{r}");
    let r = post("/_bitsim/jump", r#"{"by": "2 fortnights"}"#);
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("bad duration"), "{r}");
    let r = post("/_bitsim/env", "\n\"network_gone\"");
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("line 2"), "{r}");
    assert!(post("/_bitsim/env", r#""network_lost""#).starts_with("HTTP/1.1 200"));
    assert!(post("/_bitsim/reset", r#"{"seed": 3}"#).starts_with("HTTP/1.1 200"));
    assert!(
        driver.handle().now().unwrap().0 < 7_200_000,
        "reset starts the clock over"
    );
    assert!(
        bitsim_com::control::Control::start("0.0.0.0:0".parse().unwrap(), driver.handle(), || {}).is_err(),
        "loopback only"
    );
    drop(control);
    driver.join().unwrap();
}

/// A local process holding connections open cannot starve the endpoint: past
/// `MAX_CONNECTIONS`, a connection is closed at once, and once the idle ones go a
/// request is answered again.
#[test]
fn control_endpoint_caps_its_connections() {
    use bitsim_com::control::{Control, MAX_CONNECTIONS};
    use std::io::Read;
    let driver = start(Arc::new(Host::default()), 1, None);
    let control = Control::start("127.0.0.1:0".parse().unwrap(), driver.handle(), || {}).unwrap();
    let idle: Vec<_> = (0..MAX_CONNECTIONS)
        .map(|_| std::net::TcpStream::connect(control.addr()).unwrap())
        .collect();
    let mut over = std::net::TcpStream::connect(control.addr()).unwrap();
    over.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    match over.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!(
            "connection {} past the cap was not closed: {other:?}",
            MAX_CONNECTIONS + 1
        ),
    }
    drop(idle);
    // The freed slots are seen as the idle connections' ends are read; until
    // then a request may still be closed (or reset) unanswered.
    let status = || -> std::io::Result<String> {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(control.addr())?;
        s.write_all(b"GET /_bitsim/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    let mut answered = String::new();
    for _ in 0..50 {
        answered = status().unwrap_or_else(|e| e.to_string());
        if answered.starts_with("HTTP/1.1 200") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    drop(control);
    driver.join().unwrap();
}

/// A POST to the control endpoint: status line and body.
fn post(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The BITS and the DO driver behind one control endpoint, as `bitsim
/// com-server` runs them: `?flavor=` picks one, no flavor means the machine.
#[test]
fn control_endpoint_routes_to_the_named_service_and_env_to_both() {
    use bitsim_com::control::{Control, Services};
    let dir = tempfile::tempdir().unwrap();
    let start_flavor = |flavor: Flavor, trace: &str| {
        let mut config = DriverConfig::new(flavor);
        config.trace = Some(dir.path().join(trace));
        Driver::start(config, Arc::new(Host::default())).unwrap()
    };
    let bits = start_flavor(Flavor::Bits, "bits.txt");
    let dosvc = start_flavor(Flavor::DeliveryOptimization, "do.txt");
    let services = Services::bits(bits.handle()).with(Flavor::DeliveryOptimization, dosvc.handle());
    let control = Control::start("127.0.0.1:0".parse().unwrap(), services, || {}).unwrap();
    let addr = control.addr();
    let now_of = |text: &str, key: &str| -> u64 {
        let at = text.find(key).unwrap_or_else(|| panic!("{key} in {text}"));
        let rest = &text[at + key.len()..];
        let rest = &rest[rest.find("\"now_ms\":").unwrap() + 9..];
        rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap()]
            .parse()
            .unwrap()
    };

    // A jump for DO moves DO's clock only, and answers DO's time alone.
    let r = post(addr, "POST", "/_bitsim/jump?flavor=do", r#"{"by": "2h"}"#);
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("\"now_ms\":72"), "{r}");
    assert!(dosvc.handle().now().unwrap().0 >= 7_200_000);
    assert!(bits.handle().now().unwrap().0 < 7_200_000, "BITS's clock did not move");

    // Status without a flavor: BITS at the top level (as before DO was
    // served), and each service under its name.
    let r = post(addr, "GET", "/_bitsim/status", "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let body = &r[r.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.starts_with("{\"now_ms\":"), "{body}");
    assert!(now_of(body, "\"do\":") >= 7_200_000, "{body}");
    assert!(now_of(body, "\"bits\":") < 7_200_000, "{body}");
    assert_eq!(now_of(body, "{"), now_of(body, "\"bits\":"), "{body}");
    let r = post(addr, "GET", "/_bitsim/status?flavor=bits", "");
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("\"jobs\":0") && !r.contains("\"do\""),
        "{r}"
    );

    // A jump without a flavor moves both (the machine's time).
    let r = post(addr, "POST", "/_bitsim/jump", r#"{"by": "1h"}"#);
    assert!(
        r.starts_with("HTTP/1.1 200") && !r.contains("\"do\""),
        "the answer is BITS's time: {r}"
    );
    assert!(bits.handle().now().unwrap().0 >= 3_600_000);
    assert!(dosvc.handle().now().unwrap().0 >= 10_800_000);

    // A reset for BITS leaves DO's model alone.
    assert!(post(addr, "POST", "/_bitsim/reset?flavor=bits", r#"{"seed": 3}"#).starts_with("HTTP/1.1 200"));
    assert!(bits.handle().now().unwrap().0 < 3_600_000, "BITS starts over");
    assert!(dosvc.handle().now().unwrap().0 >= 10_800_000, "DO keeps its model");

    // Environment events: machine-wide unless a flavor is named.
    assert!(post(addr, "POST", "/_bitsim/env", r#""network_lost""#).starts_with("HTTP/1.1 200"));
    assert!(post(addr, "POST", "/_bitsim/env?flavor=do", r#""service_restart""#).starts_with("HTTP/1.1 200"));

    // A flavor the server does not know, or does not run, is a clear 404.
    let r = post(addr, "POST", "/_bitsim/jump?flavor=qmgr", r#"{"by": "1s"}"#);
    assert!(r.starts_with("HTTP/1.1 404") && r.contains("not bits or do"), "{r}");
    let only_bits = Control::start("127.0.0.1:0".parse().unwrap(), bits.handle(), || {}).unwrap();
    let r = post(only_bits.addr(), "POST", "/_bitsim/reset?flavor=do", "{}");
    assert!(
        r.starts_with("HTTP/1.1 404") && r.contains("does not run the do flavor"),
        "{r}"
    );
    drop(only_bits);

    drop(control);
    bits.join().unwrap();
    dosvc.join().unwrap();
    let bits_trace = std::fs::read_to_string(dir.path().join("bits.txt")).unwrap();
    let do_trace = std::fs::read_to_string(dir.path().join("do.txt")).unwrap();
    assert!(
        bits_trace.contains("[bits]") && do_trace.contains("[do]"),
        "{bits_trace}\n{do_trace}"
    );
    let envs = |t: &str| {
        t.lines()
            .filter(|l| l.contains(" env "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(envs(&bits_trace).len(), 1, "network_lost only: {bits_trace}");
    assert_eq!(envs(&do_trace).len(), 2, "network_lost and the restart: {do_trace}");
    assert!(bits_trace.contains("## reset seed=3") && !do_trace.contains("## reset"));
}
