//! Load benchmark: N concurrent FOREGROUND download jobs of SIZE bytes each, through
//! the in-memory mock server, in virtual time. Prints wall time and throughput; run
//! under `/usr/bin/time -v` for peak RSS (scripts/bench.sh does).
//!
//! `cargo run --release -p bitsim-engine --example load -- [JOBS] [SIZE]`

use bitsim_engine::{SimConfig, Simulator};
use bitsim_model::{ApiCall, ApiValue, Flavor, JobPriority, JobState, JobType, Time};
use bitsim_scenario::Backend;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let size: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64 * 1024);
    let root = std::env::temp_dir().join(format!("bitsim-load-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let started = Instant::now();
    let (done, covered) = rt.block_on(async {
        let mut config = SimConfig::new(Flavor::Bits, 1, bitsim_server::Plan::default(), root.clone());
        config.profile.limits.max_files_per_job = usize::MAX;
        // Thousands of jobs finish at virtual time 0: not a loop.
        config.max_steps_per_instant = u64::MAX;
        let mut sim = Simulator::new(config);
        sim.set_trace_enabled(false);
        let user = sim.add_admin_user("load");
        let url = sim.url(&format!("/bytes/{size}"));
        let mut ids = Vec::with_capacity(jobs);
        for i in 0..jobs {
            let call = ApiCall::CreateJob {
                user,
                display_name: format!("load-{i}"),
                job_type: JobType::Download,
            };
            let ApiValue::Job(job) = sim.call(call).await.value else {
                panic!("CreateJob failed")
            };
            let local = sim.local_path(&format!("f{i}.bin"));
            sim.call(ApiCall::AddFile {
                job,
                remote_name: url.clone(),
                local_name: local,
            })
            .await;
            sim.call(ApiCall::SetPriority {
                job,
                priority: JobPriority::Foreground.value(),
            })
            .await;
            ids.push(job);
        }
        for &job in &ids {
            sim.call(ApiCall::Resume { job }).await;
        }
        let covered = sim.run_until_idle(Time::from_secs(3600)).await;
        let mut done = 0;
        for &job in &ids {
            if let ApiValue::State(JobState::Transferred) = sim.call(ApiCall::GetState { job }).await.value {
                done += 1;
            }
        }
        (done, covered)
    });
    let wall = started.elapsed();
    let _ = std::fs::remove_dir_all(&root);
    let mib = (jobs as f64 * size as f64) / (1024.0 * 1024.0);
    println!(
        "jobs={jobs} size={size} transferred={done} wall={:.2}s virtual={covered} throughput={:.0} MiB/s jobs/s={:.0}",
        wall.as_secs_f64(),
        mib / wall.as_secs_f64(),
        jobs as f64 / wall.as_secs_f64()
    );
    if done != jobs {
        eprintln!("error: only {done} of {jobs} jobs reached TRANSFERRED");
        std::process::exit(1);
    }
}
