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
