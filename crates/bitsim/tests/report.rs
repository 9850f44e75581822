//! `bitsim run --report` and `bitsim conform --report-html` as a user runs them:
//! the site's index lists every run with its verdict and links to pages that
//! exist; a report directory that cannot be written is a clear error.

use std::path::{Path, PathBuf};
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

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bitsim-cli-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `href="…"` targets of `<a>` elements whose markup starts with `start`.
fn links(html: &str, start: &str) -> Vec<String> {
    html.split(start)
        .skip(1)
        .filter_map(|rest| rest.split("href=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn run_report_lists_every_run_with_its_verdict_and_a_page_each() {
    let dir = temp("run");
    let d = dir.to_str().expect("utf-8 temp dir");
    let o = bitsim(&[
        "run",
        "fixtures/scenarios/errors/http-403-on-head.json",
        "fixtures/invalid/failing.json",
        "--report",
        d,
    ]);
    assert_eq!(o.status.code(), Some(1), "one scenario fails");
    assert!(String::from_utf8_lossy(&o.stdout).contains("report: "));
    let index = read(&dir.join("index.html"));
    let rows: Vec<&str> = index.lines().filter(|l| l.starts_with("<tr data-folder")).collect();
    assert_eq!(rows.len(), 3, "403 under bits and do, failing under bits");
    assert_eq!(rows.iter().filter(|r| r.contains(r#"data-verdict="fail""#)).count(), 1);
    let pages = links(&index, "<tr data-folder");
    assert_eq!(
        pages,
        [
            "runs/http-403-on-head.bits.html",
            "runs/http-403-on-head.do.html",
            "runs/failing.bits.html"
        ]
    );
    for p in &pages {
        let html = read(&dir.join(p));
        assert!(html.contains(r#"<svg id="timeline""#), "{p}");
    }
    assert!(read(&dir.join("runs/failing.bits.html")).contains(r#"id="failure""#));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_report_directory_is_a_clear_error() {
    let file = temp("file");
    std::fs::write(&file, "not a directory").expect("write");
    let o = bitsim(&[
        "run",
        "fixtures/scenarios/errors/http-403-on-head.json",
        "--report",
        file.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot write the report to") && err.contains(&*file.to_string_lossy()),
        "{err}"
    );
    let _ = std::fs::remove_file(&file);
}

#[cfg(not(windows))]
#[test]
fn conform_report_html_has_a_cell_per_scenario_linking_to_its_side_by_side_page() {
    let dir = temp("conform");
    let out = temp("conform-traces");
    let o = bitsim(&[
        "conform",
        "--backend",
        "bits",
        "fixtures/scenarios/errors/http-403-on-head.json",
        "fixtures/scenarios/errors/http-404.json",
        "--report-html",
        dir.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let matrix = read(&dir.join("conformance.html"));
    let cells = links(&matrix, "<a class=\"cell ");
    assert_eq!(cells.len(), 2);
    assert_eq!(
        matrix.matches(r#"data-outcome="n/a""#).count(),
        2,
        "no real backend off Windows"
    );
    for c in cells {
        assert!(read(&dir.join(&c)).contains("needs a Windows build of bitsim"), "{c}");
    }
    assert!(read(&dir.join("index.html")).contains(r#"href="conformance.html""#));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&out);
}
