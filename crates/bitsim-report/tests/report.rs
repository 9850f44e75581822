//! The report as a reviewer sees it: pages rendered from real simulator runs of
//! corpus scenarios, checked against the runs' traces (lanes, spans, markers,
//! the in-flight chart), escaping of hostile input, page sizes, determinism, and
//! a conformance matrix built from two simulator flavors.

use bitsim_model::Flavor;
use bitsim_report::{escape::page_file_name, stamp_ms, ConformanceCell, RunInput, Site};
use bitsim_scenario::conformance::{compare, ExpectedDifferences, KnownDifference, Outcome};
use bitsim_scenario::{load_file, LoadedScenario, Observed, RunReport};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch() -> PathBuf {
    std::env::temp_dir().join("bitsim-report-tests")
}

fn load(rel: &str) -> LoadedScenario {
    let root = repo().join("fixtures/scenarios");
    load_file(&root.join(rel), &root).unwrap_or_else(|e| panic!("{e}"))
}

fn run(l: &LoadedScenario, flavor: Flavor) -> (RunReport, Observed) {
    let seed = l.scenario.seed.unwrap_or(1);
    bitsim_engine::run_scenario_observed(l, flavor, seed, &scratch(), &bitsim_engine::RunOptions::default())
        .expect("run")
}

fn page(l: &LoadedScenario, r: &RunReport, o: &Observed) -> String {
    let source = std::fs::read_to_string(&l.path).unwrap_or_default();
    bitsim_report::scenario_page(&RunInput {
        loaded: l,
        source: &source,
        report: r,
        observed: o,
        wall: Duration::ZERO,
    })
}

/// The attributes of every element whose markup starts with `start`
/// (e.g. `<g class="note `), in document order.
fn elements(html: &str, start: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(start) {
        let tag = &rest[i..];
        let end = tag.find('>').expect("unterminated tag");
        let mut attrs = BTreeMap::new();
        let mut s = &tag[..end];
        while let Some(eq) = s.find("=\"") {
            let name = s[..eq].rsplit(' ').next().unwrap_or("").to_string();
            let value_end = s[eq + 2..].find('"').expect("unterminated attribute");
            attrs.insert(name, s[eq + 2..eq + 2 + value_end].to_string());
            s = &s[eq + 2 + value_end + 1..];
        }
        out.push(attrs);
        rest = &tag[end..];
    }
    out
}

/// The markup of one job's lane (up to the next lane).
fn lane<'a>(html: &'a str, job: &str) -> &'a str {
    let start = html
        .find(&format!(r#"<g class="lane" data-job="{job}">"#))
        .unwrap_or_else(|| panic!("no lane for {job}"));
    let rest = &html[start + 1..];
    &html[start..start + 1 + rest.find(r#"<g class="lane"#).unwrap_or(rest.len())]
}

fn num(attrs: &BTreeMap<String, String>, name: &str) -> f64 {
    attrs[name]
        .parse()
        .unwrap_or_else(|_| panic!("{name} = {:?}", attrs[name]))
}

/// Trace lines containing `needle`, with their virtual times.
fn trace_times(r: &RunReport, needle: &str) -> Vec<u64> {
    r.trace
        .iter()
        .filter(|l| l.contains(needle))
        .map(|l| stamp_ms(l).expect("stamped line"))
        .collect()
}

#[test]
fn a_403_shows_the_error_span_the_request_and_every_job_error_attempt_where_the_trace_has_them() {
    let l = load("errors/http-403-on-head.json");
    let (r, o) = run(&l, Flavor::Bits);
    let html = page(&l, &r, &o);

    let lanes = elements(&html, r#"<g class="lane" data-job"#);
    assert_eq!(lanes.len(), 1);
    assert_eq!(lanes[0]["data-job"], "dl");

    let errors: Vec<_> = elements(&html, r#"<rect class="span""#)
        .into_iter()
        .filter(|s| s["data-state"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["data-error"], "BG_E_HTTP_ERROR_403");
    assert_eq!(errors[0]["data-context"], "REMOTE_FILE");
    assert_eq!(num(&errors[0], "data-t0") as u64, trace_times(&r, "-> ERROR")[0]);

    // The request is filed under its job (the connection it came on), not elsewhere.
    let requests = elements(lane(&html, "dl"), r#"<rect class="req "#);
    assert_eq!(requests.len(), 1, "one HEAD, no GET");
    assert!(!html.contains("requests (no job)"));
    assert_eq!(
        (requests[0]["data-method"].as_str(), requests[0]["data-path"].as_str()),
        ("HEAD", "/bytes/1024")
    );
    assert_eq!(requests[0]["data-status"], "403");

    // One marker per delivery attempt, at the trace's times, in order, left to right.
    let notes = elements(lane(&html, "dl"), r#"<g class="note "#);
    let delivered = trace_times(&r, "delivered");
    assert_eq!(notes.len(), delivered.len());
    assert_eq!(notes.len(), 3);
    let t: Vec<u64> = notes.iter().map(|n| num(n, "data-t") as u64).collect();
    assert_eq!(t, delivered);
    let attempts: Vec<&str> = notes.iter().map(|n| n["data-attempt"].as_str()).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let results: Vec<&str> = notes.iter().map(|n| n["data-result"].as_str()).collect();
    assert_eq!(results, ["E_FAIL", "E_FAIL", "S_OK"]);
    let x: Vec<f64> = notes.iter().map(|n| num(n, "data-x")).collect();
    assert!(x.windows(2).all(|w| w[0] < w[1]), "{x:?}");

    // The idle stretches are compressed and labelled.
    assert!(
        html.contains(r#"<text class="brk-label""#),
        "no break on a 10-minute run"
    );
    assert!(html.contains(">+8 min<"), "the 486 s idle stretch is labelled");

    // Every trace line is on the page, linked to its instant.
    assert_eq!(html.matches("<li id=\"L").count(), r.trace.len());
}

#[test]
fn the_four_slot_chart_reaches_the_limit_for_alice_and_never_exceeds_it() {
    let l = load("notifications/four-in-flight-limit.json");
    let (r, o) = run(&l, Flavor::Bits);
    let html = page(&l, &r, &o);
    let charts = elements(&html, r#"<g class="inflight""#);
    let max: BTreeMap<&str, &str> = charts
        .iter()
        .map(|c| (c["data-user"].as_str(), c["data-max"].as_str()))
        .collect();
    assert_eq!(max, BTreeMap::from([("alice", "4"), ("bob", "1")]));
    let steps = elements(&html, r#"<rect class="if""#);
    assert!(steps.iter().all(|s| num(s, "data-v") <= 4.0));
    // The trace's own counts agree with the chart.
    let trace_max = r
        .trace
        .iter()
        .filter_map(|l| l.split("in_flight=").nth(1))
        .filter_map(|n| n.trim().parse::<usize>().ok())
        .max();
    assert_eq!(trace_max, Some(4));
    assert_eq!(elements(&html, r#"<g class="lane" data-job"#).len(), 6);
    // Each job's lane holds its own HEAD and GET.
    for job in ["j1", "j2", "j3", "j4", "j5", "b1"] {
        let methods: Vec<String> = elements(lane(&html, job), r#"<rect class="req "#)
            .into_iter()
            .map(|r| r["data-method"].clone())
            .collect();
        assert_eq!(methods, ["HEAD", "GET"], "{job}");
    }
}

#[test]
fn a_failed_run_marks_the_line_of_its_first_failed_expectation() {
    let root = repo().join("fixtures/invalid");
    let l = load_file(&root.join("failing.json"), &root).expect("load");
    let (r, o) = run(&l, Flavor::Bits);
    let html = page(&l, &r, &o);
    assert!(html.contains(r#"id="verdict">fail<"#));
    assert!(html.contains(r#"id="failure""#));
    let marked = elements(&html, r#"<span id="src-"#)
        .into_iter()
        .filter(|s| s["class"] == "failed")
        .map(|s| s["id"].clone())
        .collect::<Vec<_>>();
    assert_eq!(marked, ["src-8"], "the wait step is on line 8");
}

#[test]
fn scenario_text_is_escaped_and_page_names_stay_in_the_directory() {
    let dir = scratch().join("hostile");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let evil = r#"{
  "description": "<script>alert('desc')</script>",
  "steps": [
    {"op": "create_job", "job": "<img src=x onerror=alert(1)>", "name": "\"><script>alert(2)</script>"},
    {"op": "add_file", "job": "<img src=x onerror=alert(1)>", "url": "/bytes/64?<b>", "local": "f.bin"},
    {"op": "resume", "job": "<img src=x onerror=alert(1)>"}
  ]
}"#;
    let path = dir.join("evil.json");
    std::fs::write(&path, evil).expect("write");
    let mut l = load_file(&path, &dir).expect("load");
    l.name = "../../outside/<evil>".into();
    let (r, o) = run(&l, Flavor::Bits);
    let site_dir = dir.join("site");
    let mut site = Site::create(&site_dir, "t").expect("site");
    let written = site
        .add_run(&RunInput {
            loaded: &l,
            source: evil,
            report: &r,
            observed: &o,
            wall: Duration::ZERO,
        })
        .expect("page");
    site.finish().expect("index");
    assert_eq!(written.parent(), Some(site_dir.join("runs").as_path()));
    assert!(!dir.join("outside").exists() && !site_dir.join("outside").exists());
    for file in [written, site_dir.join("index.html")] {
        let html = std::fs::read_to_string(&file).expect("read");
        for raw in ["<script>alert", "<img src=x", "<b>", "<evil>"] {
            assert!(!html.contains(raw), "{} contains {raw}", file.display());
        }
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;") || html.contains("&lt;evil&gt;"));
    }
    assert_eq!(
        page_file_name(&["../../outside/<evil>", "bits"]),
        "________outside___evil_.bits.html"
    );
}

#[test]
fn every_corpus_page_is_under_a_megabyte_and_the_same_run_renders_the_same_bytes() {
    let root = repo().join("fixtures/scenarios");
    let files = bitsim_scenario::discover(std::slice::from_ref(&root)).expect("corpus");
    let mut biggest = (0, String::new());
    for (path, root) in files {
        let l = load_file(&path, &root).expect("load");
        for flavor in bitsim_scenario::flavors_for(&l.scenario, None) {
            let (r, o) = run(&l, flavor);
            let html = page(&l, &r, &o);
            if html.len() > biggest.0 {
                biggest = (html.len(), format!("{} [{flavor}]", l.name));
            }
        }
    }
    assert!(biggest.0 < 1_000_000, "{} is {} bytes", biggest.1, biggest.0);
    // The biggest page, rendered from a second run, is byte-identical.
    let l = load("timers/do-no-progress-timeout-expires.json");
    let (a, oa) = run(&l, Flavor::DeliveryOptimization);
    let (b, ob) = run(&l, Flavor::DeliveryOptimization);
    assert_eq!(page(&l, &a, &oa), page(&l, &b, &ob));
}

#[test]
fn the_conformance_matrix_links_each_cell_to_its_projections_with_the_differences_marked() {
    // Simulator against simulator: the DO flavor plays the "real" backend.
    let names = [
        "errors/http-404.json",
        "errors/http-403-on-head.json",
        "do/http-404-context-none-retried.json",
    ];
    let expected = ExpectedDifferences {
        backend: "do".into(),
        differences: vec![KnownDifference {
            scenario: "errors/http-404".into(),
            reason: "DO retries a 404 (<i>known</i>)".into(),
        }],
    };
    let mut cells = Vec::new();
    for name in names {
        let l = load(name);
        let (model, _) = run(&l, Flavor::Bits);
        let (real, _) = run(&l, Flavor::DeliveryOptimization);
        cells.push(ConformanceCell {
            scenario: l.name.clone(),
            flavor: "bits".into(),
            backend: "do".into(),
            outcome: compare(&model, &real, &expected),
            model: Some(model.projection),
            real: Some(real.projection),
        });
    }
    cells.push(ConformanceCell {
        scenario: "environment/logoff-during-transfer".into(),
        flavor: "bits".into(),
        backend: "do".into(),
        outcome: Outcome::NotApplicable {
            why: "cannot log a user off".into(),
        },
        model: None,
        real: None,
    });
    let labels: Vec<&str> = cells.iter().map(|c| c.outcome.label()).collect();
    assert_eq!(labels[0], "known", "{:?}", cells[0].outcome);
    assert_eq!(labels[3], "n/a");

    let dir = scratch().join("conformance");
    let _ = std::fs::remove_dir_all(&dir);
    let mut site = Site::create(&dir, "conform").expect("site");
    site.add_conformance(&cells, "simulator vs simulator").expect("pages");
    site.finish().expect("index");
    let matrix = std::fs::read_to_string(dir.join("conformance.html")).expect("matrix");
    let links = elements(&matrix, r#"<a class="cell "#);
    assert_eq!(links.len(), cells.len());
    for (link, cell) in links.iter().zip(&cells) {
        assert_eq!(link["data-outcome"], cell.outcome.label());
        let detail = std::fs::read_to_string(dir.join(&link["href"])).expect("detail page");
        let diff = match &cell.outcome {
            Outcome::Differs { diff } | Outcome::KnownDifference { diff, .. } => diff.clone(),
            _ => Vec::new(),
        };
        // Every line the diff names is highlighted on its side, and nothing else.
        let left = detail.matches(r#"<span class="only">"#).count();
        let right = detail.matches(r#"<span class="only b">"#).count();
        assert_eq!(
            left,
            diff.iter().filter(|d| d.starts_with("- ")).count(),
            "{}",
            cell.scenario
        );
        assert_eq!(
            right,
            diff.iter().filter(|d| d.starts_with("+ ")).count(),
            "{}",
            cell.scenario
        );
        if let Outcome::KnownDifference { .. } = cell.outcome {
            assert!(detail.contains("Known difference: DO retries a 404 (&lt;i&gt;known&lt;/i&gt;)"));
        }
        if let Outcome::NotApplicable { .. } = cell.outcome {
            assert!(detail.contains("Not applicable: cannot log a user off"));
        }
    }
    let index = std::fs::read_to_string(dir.join("index.html")).expect("index");
    assert!(index.contains(r#"href="conformance.html""#));
}
