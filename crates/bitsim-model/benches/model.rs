//! Model throughput: 10,000 download jobs through create → add files → resume →
//! transfer events (a third of them hit a transient 503 first and are retried) →
//! JobTransferred callbacks (a fifth fail once and are re-delivered) → Complete.
//!
//! An "event" is one model input: an API call, a transfer event, a callback return or a
//! `handle_timeout`. Polling effects and timeouts is not counted.
//!
//! `cargo bench -p bitsim-model --bench model` prints `events/s` for the trace on and
//! off, then criterion's own measurement; `scripts/bench-model.sh` prints just the former
//! (it sets `BITSIM_BENCH_SUMMARY_ONLY`).

use bitsim_model::*;
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};

const JOBS: usize = 10_000;
/// Jobs alive at once: inside the per-user (60) and per-machine (300) limits.
const BATCH: usize = 250;
const USERS: usize = 5;

/// Runs the workload and returns the number of model inputs.
fn workload(trace: bool) -> u64 {
    let mut svc = Service::new(Flavor::Bits, 1);
    svc.set_trace_enabled(trace);
    let users: Vec<UserId> = (0..USERS).map(|i| svc.add_user(&format!("user{i}"))).collect();
    let mut attempts = vec![0u8; JOBS + 1];
    let mut events = 0u64;
    let mut now = Time::ZERO;
    let mut created = 0;
    while created < JOBS {
        for k in 0..BATCH {
            let n = created + k;
            let j = svc
                .create_job(now, users[k % USERS], "bench", JobType::Download)
                .unwrap();
            svc.add_file(now, j, "http://127.0.0.1/a.bin", "C:\\dl\\a.bin").unwrap();
            svc.add_file(now, j, "http://127.0.0.1/b.bin", "C:\\dl\\b.bin").unwrap();
            let callback = Some(Callback {
                id: n as u32,
                callback2: false,
            });
            svc.set_notify_interface(now, j, callback).unwrap();
            svc.set_minimum_retry_delay(now, j, 5).unwrap();
            if n % 4 == 0 {
                svc.set_priority(now, j, JobPriority::Foreground.value()).unwrap();
                events += 1;
            }
            svc.resume(now, j).unwrap();
            events += 6;
        }
        created += BATCH;
        let mut live = BATCH;
        while live > 0 {
            while let Some(effect) = svc.poll_effect() {
                match effect {
                    Effect::StartTransfer(t) => {
                        let a = &mut attempts[t.job.0 as usize];
                        *a += 1;
                        let fail = t.job.0 % 3 == 0 && *a == 1;
                        svc.handle_transfer(
                            now,
                            t.transfer,
                            TransferEvent::Connected {
                                bytes_total: Some(4096),
                            },
                        );
                        svc.handle_transfer(now, t.transfer, TransferEvent::Progress { bytes: 1024 });
                        svc.handle_transfer(now, t.transfer, TransferEvent::Progress { bytes: 1024 });
                        let last = if fail {
                            TransferEvent::Failed(TransferFailure::Http {
                                status: 503,
                                phase: RequestPhase::Download,
                            })
                        } else {
                            svc.handle_transfer(now, t.transfer, TransferEvent::Progress { bytes: 2048 });
                            events += 1;
                            TransferEvent::FileDone
                        };
                        svc.handle_transfer(now, t.transfer, last);
                        events += 4;
                    }
                    Effect::Notify(n) => {
                        let hr = if n.job.0 % 5 == 0 && n.attempt == 1 {
                            Hresult::E_FAIL
                        } else {
                            Hresult::S_OK
                        };
                        svc.notification_returned(now, n.id, hr);
                        events += 1;
                        if hr == Hresult::S_OK && n.kind == NotificationKind::JobTransferred {
                            svc.complete(now, n.job).unwrap();
                            events += 1;
                            live -= 1;
                        }
                    }
                    _ => {}
                }
            }
            if live > 0 {
                now = svc.poll_timeout().expect("live jobs always have a timer");
                svc.handle_timeout(now);
                events += 1;
            }
        }
    }
    black_box(svc.trace().len());
    events
}

/// Best of a few timed runs, printed as events/s.
fn summary(trace: bool) {
    let events = workload(trace);
    let mut best = Duration::MAX;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut runs = 0;
    while runs < 3 || (Instant::now() < deadline && runs < 20) {
        let start = Instant::now();
        black_box(workload(trace));
        best = best.min(start.elapsed());
        runs += 1;
    }
    let rate = events as f64 / best.as_secs_f64();
    println!(
        "model bench: trace={:<3} {JOBS} jobs, {events} events in {:.1} ms (best of {runs}): {:.0} events/s",
        if trace { "on" } else { "off" },
        best.as_secs_f64() * 1e3,
        rate
    );
}

fn main() {
    summary(true);
    summary(false);
    if std::env::var_os("BITSIM_BENCH_SUMMARY_ONLY").is_some() {
        return; // scripts/bench-model.sh: the events/s lines are all it wants
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let events = workload(true);
    let mut group = c.benchmark_group("model");
    group.throughput(Throughput::Elements(events));
    group.bench_function("10k_jobs/trace_on", |b| b.iter(|| workload(true)));
    group.bench_function("10k_jobs/trace_off", |b| b.iter(|| workload(false)));
    group.finish();
    c.final_summary();
}
