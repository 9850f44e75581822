//! The CLI as a user meets it: exit codes, the closing line, failure and
//! malformed-input reports.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bitsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitsim"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run bitsim")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn version_and_help() {
    let o = bitsim(&["--version"]);
    assert!(o.status.success());
    assert!(text(&o).0.starts_with("bitsim "));
    let o = bitsim(&["--help"]);
    assert!(o.status.success());
    for cmd in ["run", "schema", "diff", "serve"] {
        assert!(text(&o).0.contains(cmd), "help lists {cmd}");
    }
}

#[test]
fn a_passing_run_ends_with_the_count_line() {
    let o = bitsim(&["run", "fixtures/scenarios/errors/http-403-on-head.json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(out.lines().last(), Some("2 passed, 0 failed"));
    assert!(out.contains("pass  http-403-on-head [bits]"), "{out}");
}

#[test]
fn a_failing_scenario_shows_where_what_and_how_to_rerun() {
    let o = bitsim(&["run", "fixtures/invalid/failing.json", "--seed", "7"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL  failing [bits]"), "{out}");
    assert!(
        out.contains("fixtures/invalid/failing.json:8 (step 4: wait for dl)"),
        "{out}"
    );
    assert!(out.contains("expected: TRANSFERRED within 60.000s"), "{out}");
    assert!(out.contains("actual:   ERROR"), "{out}");
    assert!(out.contains("http HEAD /bytes/64 -> 404"), "trace tail: {out}");
    assert!(
        out.contains("rerun: bitsim run fixtures/invalid/failing.json --flavor bits --seed 7"),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some("0 passed, 1 failed"));
}

#[test]
fn a_malformed_scenario_exits_2_naming_file_line_column_and_field() {
    let o = bitsim(&["run", "fixtures/invalid/malformed.json"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("fixtures/invalid/malformed.json:5:23: field `steps[1].by`"),
        "{err}"
    );
    assert!(err.contains("bad duration `10 fortnights`"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_missing_path_exits_2() {
    let o = bitsim(&["run", "fixtures/no-such-dir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no such file or directory"));
}

#[test]
fn the_committed_schema_is_current() {
    let o = bitsim(&["schema"]);
    assert!(o.status.success());
    let committed = std::fs::read_to_string(repo().join("fixtures/scenario.schema.json")).unwrap_or_default();
    assert!(
        text(&o).0 == committed,
        "fixtures/scenario.schema.json is stale: run `cargo run -q -- schema > fixtures/scenario.schema.json`"
    );
}

#[test]
fn diff_of_a_run_with_itself_matches_and_of_two_flavors_differs() {
    let dir = std::env::temp_dir().join(format!("bitsim-cli-diff-{}", std::process::id()));
    let d = dir.to_string_lossy().into_owned();
    let o = bitsim(&[
        "run",
        "fixtures/scenarios/errors/http-403-on-head.json",
        "--trace-dir",
        &d,
    ]);
    assert!(o.status.success());
    let bits = dir.join("http-403-on-head.bits.projection.json");
    let dof = dir.join("http-403-on-head.do.projection.json");
    let o = bitsim(&["diff", &bits.to_string_lossy(), &bits.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o).0.trim(), "match");
    let o = bitsim(&["diff", &bits.to_string_lossy(), &dof.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o).0);
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(not(windows))]
#[test]
fn conform_off_windows_marks_every_scenario_not_applicable_and_writes_the_matrix() {
    let report = std::env::temp_dir().join(format!("bitsim-conform-{}.md", std::process::id()));
    let r = report.to_string_lossy().into_owned();
    let o = bitsim(&[
        "conform",
        "--backend",
        "bits",
        "fixtures/scenarios/errors/http-403-on-head.json",
        "--report",
        &r,
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("n/a      http-403-on-head [bits]"), "{out}");
    assert!(out.contains("needs a Windows build"), "{out}");
    assert_eq!(out.lines().last(), Some("0 passed, 0 failed"));
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("| http-403-on-head | bits | pass | n/a |"), "{md}");
    let _ = std::fs::remove_file(report);
}
