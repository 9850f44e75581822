//! `bitsim run` on careless and hostile input (issue 13): every reproducer of
//! the issue that goes through the command line. Runs use their own TMPDIR so
//! what a run leaves behind can be seen.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn bitsim(tmp: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitsim"))
        .args(args)
        .env("TMPDIR", tmp)
        .output()
        .expect("run bitsim")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}

/// What is left in `$TMPDIR/bitsim-runs`.
fn leftovers(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp.join("bitsim-runs"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

const OK: &str = r#"{"description": "ok", "steps": [{"op": "write_file", "name": "a.bin", "size": 3}]}"#;

/// A run that would take a very long wall-clock time: a 503 retried every
/// 5 s of virtual time for 90 years.
const LONG: &str = r#"{
  "description": "long",
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
fn paths_outside_the_run_directory_are_load_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("OUTSIDE");
    for (step, field) in [
        (
            format!(r#"{{"op": "write_file", "name": "{}", "size": 10}}"#, outside.display()),
            "steps[0].name",
        ),
        (
            r#"{"op": "write_file", "name": "../OUTSIDE", "size": 10}"#.to_string(),
            "steps[0].name",
        ),
        (
            r#"{"op": "expect_files", "present": [{"name": "/etc/passwd"}]}"#.to_string(),
            "steps[0].present[0].name",
        ),
    ] {
        let file = write(
            tmp.path(),
            "bad.json",
            &format!("{{\"description\": \"x\",\n \"steps\": [\n  {step}]}}"),
        );
        let o = bitsim(tmp.path(), &["run", &file]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            text(&o).contains("bad.json:3:") && text(&o).contains(field),
            "{}",
            text(&o)
        );
        assert!(!outside.exists(), "wrote outside the run directory");
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_or_device_as_scenario_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo.json");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for path in [fifo.to_string_lossy().into_owned(), "/dev/zero".into()] {
        let started = Instant::now();
        let o = bitsim(tmp.path(), &["run", &path]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("not a regular file"), "{}", text(&o));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn huge_numbers_are_load_errors_not_panics_or_hangs() {
    let tmp = tempfile::tempdir().unwrap();
    for (step, needle) in [
        (r#"{"op": "advance", "by": 18446744073709551615}"#, "100 years"),
        (r#"{"op": "advance", "by": 1.5}"#, "whole number of milliseconds"),
        (r#"{"op": "advance", "by": 1e308}"#, "whole number of milliseconds"),
        (
            r#"{"op": "write_file", "name": "a", "size": 18446744073709551615}"#,
            "256 MiB",
        ),
        (
            r#"{"op": "write_file", "name": "a", "size": 9223372036854775807}"#,
            "256 MiB",
        ),
    ] {
        let file = write(
            tmp.path(),
            "n.json",
            &format!("{{\"description\": \"x\", \"steps\": [{step}]}}"),
        );
        let started = Instant::now();
        let o = bitsim(tmp.path(), &["run", &file]);
        assert_eq!(o.status.code(), Some(2), "{step}: {}", text(&o));
        assert!(text(&o).contains(needle), "{step}: {}", text(&o));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn the_timeout_stops_a_long_run_and_removes_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "long.json", LONG);
    let started = Instant::now();
    let o = bitsim(tmp.path(), &["run", &file, "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("wall-clock timeout"), "{}", text(&o));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(leftovers(tmp.path()).is_empty(), "{:?}", leftovers(tmp.path()));
}

#[cfg(unix)]
#[test]
fn ctrl_c_removes_the_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "long.json", LONG);
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitsim"))
        .args(["run", &file, "--timeout", "0"])
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run directory exists, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(20);
    while leftovers(tmp.path()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!leftovers(tmp.path()).is_empty(), "the run never started");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(leftovers(tmp.path()).is_empty(), "{:?}", leftovers(tmp.path()));
}

#[test]
fn an_unwritable_trace_dir_is_one_error_and_a_failing_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "ok.json", OK);
    let not_a_dir = write(tmp.path(), "plain-file", "x");
    let o = bitsim(
        tmp.path(),
        &["run", &file, "--trace-dir", &format!("{not_a_dir}/traces")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1, "{}", text(&o));
}

#[test]
fn two_runs_do_not_mix_their_files_in_one_trace_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "ok.json", OK);
    let traces = tmp.path().join("traces").to_string_lossy().into_owned();
    assert_eq!(
        bitsim(tmp.path(), &["run", &file, "--trace-dir", &traces])
            .status
            .code(),
        Some(0)
    );
    let again = bitsim(tmp.path(), &["run", &file, "--trace-dir", &traces]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("not empty"), "{}", text(&again));
    let forced = bitsim(tmp.path(), &["run", &file, "--trace-dir", &traces, "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    // A lock left by a run in progress keeps a second run out.
    std::fs::write(Path::new(&traces).join(".bitsim-trace-dir.lock"), "1").unwrap();
    let busy = bitsim(tmp.path(), &["run", &file, "--trace-dir", &traces, "--force"]);
    assert_eq!(busy.status.code(), Some(2), "{}", text(&busy));
    assert!(text(&busy).contains("in use by another bitsim run"), "{}", text(&busy));
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_in_a_scenario_folder_runs_each_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scenarios");
    std::fs::create_dir(&dir).unwrap();
    write(&dir, "ok.json", OK);
    std::os::unix::fs::symlink(&dir, dir.join("loop")).unwrap();
    let o = bitsim(tmp.path(), &["run", &dir.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 passed, 0 failed"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_scratch_dir_failure_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "ok.json", OK);
    // $TMPDIR/bitsim-runs cannot be created: a plain file is in the way.
    write(tmp.path(), "bitsim-runs", "x");
    let o = bitsim(tmp.path(), &["run", &file]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let runs = tmp.path().join("bitsim-runs");
    assert!(text(&o).contains(&runs.display().to_string()), "{}", text(&o));
}
