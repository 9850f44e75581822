//! Every scenario under fixtures/scenarios runs on the simulator under each of its
//! flavors; its trace is an insta snapshot (one per fixture, all flavors in it, named
//! after the fixture's path), so `cargo insta review` shows behaviour changes. Every
//! run is repeated with the same seed and must give a byte-identical trace.

use std::path::{Path, PathBuf};

fn scratch() -> PathBuf {
    std::env::temp_dir().join("bitsim-corpus-tests")
}

#[test]
fn every_fixture_passes_is_deterministic_and_matches_its_snapshot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios");
    let files = bitsim_scenario::discover(std::slice::from_ref(&root)).expect("fixtures/scenarios");
    assert!(!files.is_empty(), "no fixtures found");
    for (path, root) in files {
        let loaded = bitsim_scenario::load_file(&path, &root).unwrap_or_else(|e| panic!("{e}"));
        let seed = loaded.scenario.seed.unwrap_or(1);
        let mut snapshot = String::new();
        for flavor in bitsim_scenario::flavors_for(&loaded.scenario, None) {
            let first = bitsim_engine::run_scenario(&loaded, flavor, seed, &scratch()).expect("run");
            let second = bitsim_engine::run_scenario(&loaded, flavor, seed, &scratch()).expect("run");
            let rerun = format!("rerun: bitsim run {} --flavor {flavor} --seed {seed}", path.display());
            assert_eq!(
                first.trace_text(),
                second.trace_text(),
                "{}: same seed, different trace; {rerun}",
                loaded.name
            );
            assert!(
                first.passed(),
                "{} [{flavor}] failed: {:?}\n{rerun}\n{}",
                loaded.name,
                first.verdict,
                first.trace_text()
            );
            // The invariants `bitsim explore` checks hold for every fixture (this is what
            // makes a found scenario a regression test).
            let mut sim = bitsim_explore::Sim::new(&scratch(), bitsim_explore::Overrides::default()).expect("sim");
            let (_, violations) = bitsim_explore::run_and_check(&mut sim, &loaded, flavor, seed);
            assert!(
                violations.is_empty(),
                "{} [{flavor}]: {violations:?}\n{rerun}",
                loaded.name
            );
            snapshot.push_str(&format!("## {} [{flavor}] seed={seed}\n", loaded.name));
            snapshot.push_str(&first.trace_text());
            snapshot.push('\n');
        }
        let name = loaded.name.replace('/', "__");
        insta::with_settings!({ input_file => &path, prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, snapshot);
        });
    }
}
