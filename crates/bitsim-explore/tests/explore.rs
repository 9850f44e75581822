//! Exploration end to end: a model that breaks an invariant is caught, shrunk and
//! written out as a file that reproduces it; the default model passes.

use bitsim_explore::{explore, load, run_and_check, Against, ExploreConfig, Overrides, Sim};
use bitsim_model::Flavor;

fn scratch() -> std::path::PathBuf {
    std::env::temp_dir().join("bitsim-explore-tests")
}

fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = scratch().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_profile_allowing_eight_callbacks_breaks_the_four_slot_rule_and_the_file_shows_it() {
    let out = out_dir("slots");
    let mut config = ExploreConfig::new(out.clone());
    config.cases = 400;
    config.max_findings = 1;
    config.scratch = scratch();
    config.model = Overrides::parse(&["max_notifications_in_flight_per_user=8".into()]).unwrap();
    let summary = explore(config, &mut |_| {}).expect("explore");
    let finding = summary
        .findings
        .first()
        .unwrap_or_else(|| panic!("nothing found: {}", summary.line()));
    assert_eq!(finding.kind, "notification-slots");

    // The file is an ordinary scenario: it loads, names the problem, and shows it again
    // with the same Profile choice, and not with the documented one.
    let text = std::fs::read_to_string(&finding.file).unwrap();
    let scenario = bitsim_scenario::parse_scenario(&text, "found.json").expect("the found file loads");
    assert!(
        scenario.description.contains("notification-slots"),
        "{}",
        scenario.description
    );
    assert!(scenario
        .description
        .contains("--profile-field max_notifications_in_flight_per_user=8"));
    assert!(scenario.steps.len() <= 30, "shrunk to {} steps", scenario.steps.len());
    let loaded = load(&scenario, "found").unwrap();
    let seed = scenario.seed.unwrap_or(1);
    let mut loose = Sim::new(
        &scratch(),
        Overrides::parse(&["max_notifications_in_flight_per_user=8".into()]).unwrap(),
    )
    .unwrap();
    let (report, violations) = run_and_check(&mut loose, &loaded, Flavor::Bits, seed);
    assert!(report.passed(), "{:?}", report.verdict);
    assert_eq!(violations.first().map(|v| v.invariant), Some("notification-slots"));
    let mut documented = Sim::new(&scratch(), Overrides::default()).unwrap();
    let (report, violations) = run_and_check(&mut documented, &loaded, Flavor::Bits, seed);
    assert!(report.passed(), "{:?}", report.verdict);
    assert!(violations.is_empty(), "{violations:?}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_documented_model_keeps_its_invariants_over_generated_scenarios() {
    let out = out_dir("clean");
    let mut config = ExploreConfig::new(out.clone());
    config.cases = 300;
    config.seed = 42;
    config.scratch = scratch();
    let summary = explore(config, &mut |_| {}).expect("explore");
    assert_eq!(summary.cases, 300);
    assert!(
        summary.findings.is_empty(),
        "{}\n{:?}\nrerun: bitsim explore --cases 300 --seed 42",
        summary.line(),
        summary.findings
    );
    assert!(!out.exists(), "nothing written when nothing is found");
}

#[test]
fn two_readings_of_the_docs_are_told_apart_and_the_file_pins_the_model_side() {
    let out = out_dir("diff");
    let mut config = ExploreConfig::new(out.clone());
    config.cases = 400;
    config.max_findings = 1;
    config.scratch = scratch();
    // A background job whose NoProgressTimeout is 0 by default: every error is fatal.
    let other = Overrides::parse(&["default_no_progress_timeout_background=0".into()]).unwrap();
    config.against = Against::Profile(other.clone());
    let summary = explore(config, &mut |_| {}).expect("explore");
    let finding = summary
        .findings
        .first()
        .unwrap_or_else(|| panic!("no difference: {}", summary.line()));
    assert_eq!(finding.kind, "difference");
    let text = std::fs::read_to_string(&finding.file).unwrap();
    let scenario = bitsim_scenario::parse_scenario(&text, "found.json").unwrap();
    let loaded = load(&scenario, "found").unwrap();
    let seed = scenario.seed.unwrap_or(1);
    let flavor = scenario.flavors[0].0;
    let (mine, _) = run_and_check(
        &mut Sim::new(&scratch(), Overrides::default()).unwrap(),
        &loaded,
        flavor,
        seed,
    );
    assert!(
        mine.passed(),
        "the file passes on the documented model: {:?}",
        mine.verdict
    );
    let (theirs, _) = run_and_check(&mut Sim::new(&scratch(), other).unwrap(), &loaded, flavor, seed);
    assert!(!theirs.passed(), "the file fails with the other reading:\n{text}");
    let _ = std::fs::remove_dir_all(&out);
}

/// A retry storm: every HEAD is reset, the job retries every 5 s and never gives up,
/// for 91 days of virtual time (about 1.5 million retries; the trace limit alone would
/// stop it only after seconds of wall-clock time).
const RETRY_STORM: &str = r#"{
  "description": "retry storm",
  "sim_only": true,
  "plan": {"rules": [{"match": {"method": "HEAD"}, "fault": {"kind": "reset", "at": "before_response"}}]},
  "steps": [
    {"op": "create_job", "job": "dl"},
    {"op": "add_file", "job": "dl", "url": "/bytes/20000", "local": "f.bin"},
    {"op": "set_minimum_retry_delay", "job": "dl", "seconds": 5},
    {"op": "set_no_progress_timeout", "job": "dl", "seconds": 4294967295},
    {"op": "resume", "job": "dl"},
    {"op": "advance", "by": "91d"}
  ]
}"#;

#[test]
fn the_case_watchdog_stops_a_run_that_takes_too_long() {
    let scenario = bitsim_scenario::parse_scenario(RETRY_STORM, "storm.json").expect("loads");
    let loaded = load(&scenario, "storm").unwrap();
    let mut sim = Sim::new(&scratch(), Overrides::default()).unwrap();
    sim.set_case_timeout(Some(std::time::Duration::from_millis(50)))
        .unwrap();
    let started = std::time::Instant::now();
    let outcome = sim.run(&loaded, Flavor::Bits, 1, bitsim_scenario::RunOptions { lenient: true });
    let took = started.elapsed();
    assert!(
        outcome.timed_out,
        "not stopped; ran {took:?} to {}",
        outcome.report.covered
    );
    // Stopped by the watchdog, not by the trace limit (which takes seconds).
    match &outcome.report.verdict {
        bitsim_scenario::Verdict::Failed(f) => assert!(f.actual.contains("wall-clock timeout"), "{f}"),
        v => panic!("the run was not stopped: {v:?}"),
    }
    assert!(took < std::time::Duration::from_secs(2), "stopped only after {took:?}");
    assert!(outcome.report.covered.0 < 91 * 86_400_000, "{}", outcome.report.covered);
    // The flag does not leak into the next run: a short scenario is not stopped.
    let short = bitsim_scenario::parse_scenario(
        r#"{"description": "short", "sim_only": true, "steps": [{"op": "create_job", "job": "a"}]}"#,
        "short.json",
    )
    .unwrap();
    let outcome = sim.run(&load(&short, "short").unwrap(), Flavor::Bits, 1, Default::default());
    assert!(!outcome.timed_out);
    assert!(outcome.report.passed(), "{:?}", outcome.report.verdict);
}

#[test]
fn a_case_over_the_wall_clock_limit_is_a_hang_finding() {
    let out = out_dir("hang");
    let mut config = ExploreConfig::new(out.clone());
    config.cases = 1_000;
    config.max_findings = 1;
    config.scratch = scratch();
    config.workers = 1;
    // About one generated run in a hundred takes longer than a millisecond.
    config.case_timeout = Some(std::time::Duration::from_millis(1));
    let summary = explore(config, &mut |_| {}).expect("explore");
    let finding = summary
        .findings
        .first()
        .unwrap_or_else(|| panic!("no hang reported: {}", summary.line()));
    assert_eq!(finding.kind, "hang", "{}", finding.message);
    let text = std::fs::read_to_string(&finding.file).unwrap();
    let scenario = bitsim_scenario::parse_scenario(&text, "found.json").expect("the found file loads");
    assert!(
        scenario.description.contains("--case-timeout"),
        "{}",
        scenario.description
    );
    assert_eq!(scenario.covers, ["explore: hang"]);
    let _ = std::fs::remove_dir_all(&out);
}

/// Found by the previous generator (`--seed 2`, chunk 65): a 91-day scenario whose
/// refused JobTransferred calls are re-delivered every 30-90 s until the run hits
/// its trace limit. The checker took the run to have gone on to where its steps led
/// (91 days) and reported the last refusal as never re-delivered; a run stopped early
/// ends where it stopped.
#[test]
fn a_run_stopped_by_the_trace_limit_is_not_owed_redeliveries_after_it_stopped() {
    let text = include_str!("data/refused-callback-then-trace-limit.json");
    let scenario = bitsim_scenario::parse_scenario(text, "found.json").expect("loads");
    let loaded = load(&scenario, "found").unwrap();
    let mut sim = Sim::new(&scratch(), Overrides::default()).unwrap();
    sim.set_max_trace_lines(20_000);
    let seed = scenario.seed.unwrap_or(1);
    let (report, violations) = run_and_check(&mut sim, &loaded, Flavor::Bits, seed);
    assert!(!report.passed(), "the run is stopped by the trace limit");
    assert!(report.covered.0 < 91 * 86_400_000, "{}", report.covered);
    assert!(violations.is_empty(), "{violations:?}");
}
