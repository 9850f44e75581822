//! `bitsim serve` and `bitsim diff` against careless and hostile input
//! (issue 13, items 3 to 5): bounded threads, limits printed at start, diff
//! inputs that are not regular files or are long.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn bitsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitsim"))
        .args(args)
        .output()
        .expect("run bitsim")
}

#[test]
fn serve_refuses_absurd_thread_counts_instead_of_aborting() {
    let o = bitsim(&["serve", "--threads", "100000"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--threads") && err.contains("1..=256"), "{err}");
}

#[test]
fn serve_prints_its_limits_at_start() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitsim"))
        .args([
            "serve",
            "--max-connections",
            "3",
            "--header-timeout",
            "7",
            "--max-upload-memory-mib",
            "64",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bitsim serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.starts_with("listening on http://127.0.0.1:"), "{first}");
    for part in ["header timeout 7 s", "max connections 3", "upload memory 64 MiB"] {
        assert!(second.contains(part), "{part} missing in {second}");
    }
}

#[cfg(unix)]
#[test]
fn diff_refuses_devices_at_once() {
    let started = std::time::Instant::now();
    let o = bitsim(&["diff", "/dev/zero", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a regular file"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn diff_of_two_long_traces_finishes_and_shows_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b): (PathBuf, PathBuf) = (dir.path().join("a.trace"), dir.path().join("b.trace"));
    let lines: Vec<String> = (0..20_000).map(|i| format!("{i:>12}  job j1 event {i}")).collect();
    std::fs::write(&a, lines.join("\n")).unwrap();
    let mut changed = lines.clone();
    changed[10_000] = "different".into();
    std::fs::write(&b, changed.join("\n")).unwrap();
    let o = bitsim(&["diff", &a.to_string_lossy(), &b.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("+ different") && out.contains("differs (2 lines)"),
        "{out}"
    );
}

#[cfg(unix)]
#[test]
fn serve_refuses_a_fifo_or_device_as_plan_at_once() {
    let started = std::time::Instant::now();
    let o = bitsim(&["serve", "--plan", "/dev/zero"]);
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a regular file"),
        "{o:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
