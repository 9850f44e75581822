//! Runs that must end, and end tidily, whatever the scenario says (issue 13,
//! items 1, 2 and 6): the run directory is fresh, private and removed; a loop
//! that never lets virtual time pass is stopped; a wall-clock watchdog stops a
//! run that takes too long.

use bitsim_engine::RunOptions;
use bitsim_model::Flavor;
use bitsim_scenario::{parse_scenario, LoadedScenario, Verdict};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn loaded(text: &str) -> LoadedScenario {
    let scenario = parse_scenario(text, "hostile.json").unwrap_or_else(|e| panic!("{e}"));
    let plan = scenario.plan.clone().unwrap_or_default();
    LoadedScenario {
        path: PathBuf::from("hostile.json"),
        name: "hostile".into(),
        scenario,
        plan,
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// The issue's reproducer: an upload whose every Fragment is answered 416 with
/// BITS-Received-Content-Range 0 looped at virtual time 0, growing ~8 MB/s.
const RESYNC_FOREVER: &str = r#"{
  "description": "every fragment is rewound to 0",
  "plan": {"rules": [{"match": {"packet_type": "Fragment"},
                      "fault": {"kind": "resync", "offset": 0, "status": 416}}]},
  "steps": [
    {"op": "write_file", "name": "data.bin", "size": 200000},
    {"op": "create_job", "job": "up", "type": "UPLOAD"},
    {"op": "add_file", "job": "up", "url": "/upload/data.bin", "local": "data.bin"},
    {"op": "resume", "job": "up"},
    {"op": "wait", "job": "up", "state": "TRANSFERRED", "within": "30s"}
  ]
}"#;

/// A 503 retried every 5 s for 90 years of virtual time: millions of steps,
/// each advancing time.
const BUSY_FOR_90_YEARS: &str = r#"{
      "description": "a long, busy run",
      "plan": {"rules": [{"match": {"path": "/bytes/10"}, "fault": {"kind": "status", "status": 503}}]},
      "steps": [
        {"op": "create_job", "job": "j"},
        {"op": "add_file", "job": "j", "url": "/bytes/10", "local": "f.bin"},
        {"op": "set_minimum_retry_delay", "job": "j", "seconds": 5},
        {"op": "set_no_progress_timeout", "job": "j", "seconds": 4000000000},
        {"op": "resume", "job": "j"},
        {"op": "advance", "by": "32850d"}
      ]
}"#;

#[test]
fn a_loop_that_never_lets_time_pass_is_stopped_with_a_message() {
    let scratch = tempfile::tempdir().unwrap();
    let options = RunOptions {
        max_steps_per_instant: 20_000,
        ..RunOptions::default()
    };
    let started = Instant::now();
    let report =
        bitsim_engine::run_scenario_with(&loaded(RESYNC_FOREVER), Flavor::Bits, 1, scratch.path(), &options).unwrap();
    let Verdict::Failed(f) = &report.verdict else {
        panic!("expected a failure, got {:?}", report.verdict)
    };
    assert!(f.actual.contains("no progress"), "{f}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(entries(scratch.path()).is_empty(), "run directory left behind");
}

#[test]
fn the_watchdog_stops_a_run_that_takes_too_long() {
    // A 404 retried every 5 s for 90 years of virtual time: millions of steps,
    // each advancing time, so only the wall clock can stop it early.
    let text = BUSY_FOR_90_YEARS;
    let scratch = tempfile::tempdir().unwrap();
    let options = RunOptions {
        timeout: Some(Duration::from_millis(500)),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let report = bitsim_engine::run_scenario_with(&loaded(text), Flavor::Bits, 1, scratch.path(), &options).unwrap();
    let Verdict::Failed(f) = &report.verdict else {
        panic!("expected a failure, got {:?}", report.verdict)
    };
    assert!(f.actual.contains("wall-clock timeout"), "{f}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(entries(scratch.path()).is_empty(), "run directory left behind");
}

#[test]
fn a_trace_that_would_grow_without_bound_stops_the_run() {
    // The same busy run without a wall-clock limit: the trace cap stops it.
    let scratch = tempfile::tempdir().unwrap();
    let options = RunOptions {
        timeout: None,
        max_trace_lines: 5_000,
        ..RunOptions::default()
    };
    let report =
        bitsim_engine::run_scenario_with(&loaded(BUSY_FOR_90_YEARS), Flavor::Bits, 1, scratch.path(), &options)
            .unwrap();
    let Verdict::Failed(f) = &report.verdict else {
        panic!("expected a failure, got {:?}", report.verdict)
    };
    assert!(f.actual.contains("trace too long"), "{f}");
    assert!(report.trace.len() < 6_000, "{}", report.trace.len());
}

#[test]
fn run_directories_are_fresh_private_and_removed() {
    let text = r#"{
      "description": "writes a file",
      "steps": [{"op": "write_file", "name": "sub.bin", "size": 10},
                {"op": "expect_files", "present": [{"name": "sub.bin", "size": 10}]}]
    }"#;
    let scratch = tempfile::tempdir().unwrap();
    let l = loaded(text);
    let options = RunOptions {
        keep_run_dir: true,
        ..RunOptions::default()
    };
    let a = bitsim_engine::run_scenario_with(&l, Flavor::Bits, 1, scratch.path(), &options).unwrap();
    let b = bitsim_engine::run_scenario_with(&l, Flavor::Bits, 1, scratch.path(), &options).unwrap();
    assert!(a.passed() && b.passed(), "{:?} {:?}", a.verdict, b.verdict);
    assert_eq!(a.trace_text(), b.trace_text(), "kept directories changed the trace");
    let kept = entries(scratch.path());
    assert_eq!(kept.len(), 2, "{kept:?}");
    for dir in &kept {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        // Not `run-PID-N`: a name nobody can guess and plant a symlink at.
        assert!(
            name.starts_with("run-") && !name.contains(&std::process::id().to_string()),
            "{name}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{name}");
        }
    }
    for dir in kept {
        std::fs::remove_dir_all(dir).unwrap();
    }
    // Without keep_run_dir, nothing is left.
    let c = bitsim_engine::run_scenario(&l, Flavor::Bits, 1, scratch.path()).unwrap();
    assert!(c.passed());
    assert!(entries(scratch.path()).is_empty());
}

#[test]
fn a_panicking_run_still_removes_its_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let outcome = std::panic::catch_unwind(|| {
        let dir = bitsim_engine::RunDir::new(scratch.path()).unwrap();
        std::fs::write(dir.path().join("partial.bin"), vec![0u8; 4096]).unwrap();
        panic!("a bug in the middle of a run");
    });
    assert!(outcome.is_err());
    assert!(entries(scratch.path()).is_empty(), "{:?}", entries(scratch.path()));
}
