//! Smoke test for the Windows / Wine lane: download one URL through the COM
//! layer and print the calls, the states and the callbacks.
//!
//! ```text
//! probe URL LOCAL_PATH [--timeout SECS] [--no-callback] [--sweep] [--do]
//!       [--cb-returns HR[,HR...]] [--cb-block-ms MS] [--callback1]
//! ```
//!
//! `--cb-returns` / `--cb-block-ms` / `--callback1` set the callback policy
//! (return codes as hex, e.g. `0x80004005,0`; blocking; no Callback2).
//!
//! The last line is machine-readable, e.g.
//! `RESULT ok=true final=ACKNOWLEDGED complete=0x00000000 callbacks=JobTransferred`;
//! the exit code is 0 when the file was transferred and completed (and, with a
//! callback, JobTransferred was delivered), 1 otherwise, 2 on bad usage.
//! `scripts/wine-conformance.sh` runs it under Wine.

#[cfg(not(windows))]
fn main() {
    eprintln!("probe: this example talks to the Windows BITS service; build it for a Windows target");
    std::process::exit(2);
}

#[cfg(windows)]
fn main() {
    std::process::exit(windows_probe::run());
}

#[cfg(windows)]
mod windows_probe {
    use std::time::{Duration, Instant};

    use bitsim_windows::{
        notify, sweep, BitsManager, CallbackPolicy, CallbackRecorder, ComApartment, DeliveryKind, DoManager, DoState,
        DoStatusRecorder, Hr, JobGuard, JobState, JobType,
    };

    struct Args {
        url: String,
        local: String,
        timeout: Duration,
        callback: bool,
        sweep: bool,
        delivery_optimization: bool,
        policy: CallbackPolicy,
    }

    fn parse_hr(s: &str) -> Option<Hr> {
        let s = s.trim();
        let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => s.parse().ok()?,
        };
        Some(Hr(v))
    }

    fn parse() -> Option<Args> {
        let mut pos = Vec::new();
        let mut a = Args {
            url: String::new(),
            local: String::new(),
            timeout: Duration::from_secs(30),
            callback: true,
            sweep: false,
            delivery_optimization: false,
            policy: CallbackPolicy::accept_all(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--timeout" => a.timeout = Duration::from_secs(it.next()?.parse().ok()?),
                "--no-callback" => a.callback = false,
                "--sweep" => a.sweep = true,
                "--do" => a.delivery_optimization = true,
                "--cb-returns" => {
                    a.policy.returns = it.next()?.split(',').map(parse_hr).collect::<Option<Vec<Hr>>>()?;
                }
                "--cb-block-ms" => a.policy.block = Some(Duration::from_millis(it.next()?.parse().ok()?)),
                "--callback1" => a.policy.callback2 = false,
                s if s.starts_with("--") => return None,
                _ => pos.push(arg),
            }
        }
        let [url, local] = <[String; 2]>::try_from(pos).ok()?;
        a.url = url;
        a.local = local;
        Some(a)
    }

    fn stamp(t0: Instant) -> String {
        format!("+{:.3}s", t0.elapsed().as_secs_f64())
    }

    pub fn run() -> i32 {
        let Some(args) = parse() else {
            eprintln!(
                "usage: probe URL LOCAL_PATH [--timeout SECS] [--no-callback] [--sweep] [--do] \
                 [--cb-returns HR[,HR...]] [--cb-block-ms MS] [--callback1]"
            );
            return 2;
        };
        let t0 = Instant::now();
        let _apartment = match ComApartment::init_mta() {
            Ok(a) => a,
            Err(hr) => {
                println!("CoInitializeEx(MTA) failed: {hr}");
                println!("RESULT ok=false final=none");
                return 1;
            }
        };
        if args.delivery_optimization {
            run_do(&args, t0)
        } else {
            run_bits(&args, t0)
        }
    }

    fn run_bits(args: &Args, t0: Instant) -> i32 {
        let mgr = match BitsManager::connect() {
            Ok(m) => m,
            Err(hr) => {
                println!("{} CoCreateInstance(BackgroundCopyManager) failed: {hr}", stamp(t0));
                println!("RESULT ok=false final=none");
                return 1;
            }
        };
        println!("{} connected to BITS", stamp(t0));
        if args.sweep {
            match sweep(&mgr) {
                Ok(swept) => {
                    for s in &swept {
                        println!(
                            "  swept {} {:?} state={:?} cancel={:?}",
                            s.id, s.display_name, s.state, s.cancel
                        );
                    }
                    println!("{} sweep: {} leftover job(s)", stamp(t0), swept.len());
                }
                Err(hr) => println!("{} sweep: EnumJobs failed: {hr}", stamp(t0)),
            }
        }
        let created = mgr.create_job("probe", JobType::Download);
        println!("{} CreateJob -> {}", stamp(t0), created.hr);
        let job = match created.ok() {
            Ok(j) => JobGuard::new(j),
            Err(_) => {
                println!("RESULT ok=false final=none");
                return 1;
            }
        };
        let (j2, j3, j4) = job.interfaces();
        println!("  id={} Job2={j2} Job3={j3} Job4={j4}", job.id());
        println!("  display name: {:?}", job.get_display_name());
        println!("  type: {:?}", job.get_type());
        println!("  priority: {:?}", job.get_priority());
        println!("  min retry delay: {:?}", job.get_minimum_retry_delay());
        println!("  no-progress timeout: {:?}", job.get_no_progress_timeout());
        println!("  notify flags: {:?}", job.get_notify_flags());

        let recorder = CallbackRecorder::new(t0, args.policy.clone());
        if args.callback {
            println!("  SetNotifyInterface -> {}", job.set_notify_interface(Some(&recorder)));
            let flags = notify::JOB_TRANSFERRED | notify::JOB_ERROR | notify::JOB_MODIFICATION;
            println!("  SetNotifyFlags(0x{flags:x}) -> {}", job.set_notify_flags(flags));
        }
        println!("  AddFile -> {}", job.add_file(&args.url, &args.local));
        println!("  files: {:?}", job.get_files());
        println!("{} Resume -> {}", stamp(t0), job.resume());

        let deadline = Instant::now() + args.timeout;
        let mut last = None;
        let final_state = loop {
            let st = job.get_state();
            if st.value != last {
                let prog = job.get_progress();
                println!(
                    "{} state={} progress={:?} errors={:?}",
                    stamp(t0),
                    st.value.map_or_else(|| st.hr.to_string(), |s| s.to_string()),
                    prog.value,
                    job.get_error_count().value
                );
                if matches!(st.value, Some(JobState::Error | JobState::TransientError)) {
                    let err = job.get_error();
                    println!("  GetError -> {}: {:?}", err.hr, err.value);
                }
                last = st.value;
            }
            match st.value {
                Some(s @ (JobState::Transferred | JobState::Error)) => break Some(s),
                None => break None,
                _ => {}
            }
            if Instant::now() > deadline {
                println!("{} timeout after {:?}", stamp(t0), args.timeout);
                break last;
            }
            std::thread::sleep(Duration::from_millis(20));
        };

        let mut transferred_cb = false;
        if args.callback && final_state == Some(JobState::Transferred) {
            transferred_cb = recorder.wait_until(Duration::from_secs(5), |d| {
                d.iter().any(|d| d.kind == DeliveryKind::JobTransferred)
            });
        }
        println!("  times: {:?}", job.get_times());
        let complete = if final_state == Some(JobState::Transferred) {
            let hr = job.complete();
            println!("{} Complete -> {hr}", stamp(t0));
            Some(hr)
        } else {
            let hr = job.cancel();
            println!("{} Cancel -> {hr}", stamp(t0));
            None
        };
        let after = job.get_state();
        println!("  state now: {:?}", after);
        recorder.shut_down();
        for d in recorder.deliveries() {
            println!(
                "[callback {:.3}s] #{} {} attempt={} job={:?} state={:?} error={:?} returned={:?}",
                d.at.as_secs_f64(),
                d.seq,
                d.kind.as_str(),
                d.attempt,
                d.job.map(|j| j.to_string()),
                d.state,
                d.error,
                d.returned
            );
        }
        let callbacks: Vec<&str> = recorder.deliveries().iter().map(|d| d.kind.as_str()).collect();
        let ok = final_state == Some(JobState::Transferred)
            && complete.is_some_and(|hr| hr == Hr::S_OK)
            && (!args.callback || transferred_cb);
        println!(
            "RESULT ok={ok} final={} complete={} callbacks={}",
            after.value.map_or_else(|| "none".to_owned(), |s| s.to_string()),
            complete.map_or_else(|| "none".to_owned(), |hr| format!("0x{:08X}", hr.0)),
            if callbacks.is_empty() {
                "none".to_owned()
            } else {
                callbacks.join(",")
            }
        );
        // `job` (JobGuard) drops here: a no-op after Complete/Cancel.
        i32::from(!ok)
    }

    fn run_do(args: &Args, t0: Instant) -> i32 {
        let mgr = match DoManager::connect() {
            Ok(m) => m,
            Err(hr) => {
                println!("{} CoCreateInstance(DeliveryOptimization) failed: {hr}", stamp(t0));
                println!("RESULT ok=false final=none");
                return 1;
            }
        };
        println!("{} connected to Delivery Optimization", stamp(t0));
        if args.sweep {
            println!("  sweep: {:?}", mgr.sweep());
        }
        let created = mgr.create_download("probe");
        println!("{} CreateDownload -> {}", stamp(t0), created.hr);
        let Ok(dl) = created.ok() else {
            println!("RESULT ok=false final=none");
            return 1;
        };
        println!("  blanket: {}  id: {:?}", dl.blanket_hr, dl.get_id());
        let recorder = DoStatusRecorder::new(t0);
        println!("  Uri -> {}", dl.set_uri(&args.url));
        println!("  LocalPath -> {}", dl.set_local_path(&args.local));
        println!("  ForegroundPriority -> {}", dl.set_foreground(true));
        if args.callback {
            println!("  CallbackInterface -> {}", dl.set_callback(&recorder));
        }
        println!("{} Start -> {}", stamp(t0), dl.start());
        let deadline = Instant::now() + args.timeout;
        let mut last = None;
        let final_state = loop {
            let st = dl.status();
            let state = st.value.map(|s| s.state);
            if state != last {
                println!("{} status -> {}: {:?}", stamp(t0), st.hr, st.value);
                last = state;
            }
            match st.value {
                Some(s) if s.state == DoState::Transferred || s.error.is_failure() => {
                    break state;
                }
                None => break None,
                _ => {}
            }
            if Instant::now() > deadline {
                println!("{} timeout after {:?}", stamp(t0), args.timeout);
                break last;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let finalize = if final_state == Some(DoState::Transferred) {
            let hr = dl.finalize();
            println!("{} Finalize -> {hr}", stamp(t0));
            Some(hr)
        } else {
            println!("{} Abort -> {}", stamp(t0), dl.abort());
            None
        };
        for e in recorder.events() {
            println!(
                "[callback {:.3}s] #{} OnStatusChange {:?}",
                e.at.as_secs_f64(),
                e.seq,
                e.status
            );
        }
        let after = dl.status();
        let ok = finalize.is_some_and(|hr| hr.is_success());
        println!(
            "RESULT ok={ok} final={} finalize={} callbacks={}",
            after.value.map_or_else(|| "none".to_owned(), |s| s.state.to_string()),
            finalize.map_or_else(|| "none".to_owned(), |hr| format!("0x{:08X}", hr.0)),
            recorder.events().len()
        );
        i32::from(!ok)
    }
}
