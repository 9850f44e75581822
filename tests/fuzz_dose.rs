//! A bounded, deterministic fuzz dose that runs with `cargo test` (issue 13):
//! every fixture scenario is mutated many times, byte-wise and field-wise with
//! hostile values (huge and fractional numbers, absolute and `..` paths, NUL,
//! duplicate keys, truncation), and each mutant goes through the loader, and
//! the short ones through the simulator and `diff_lines`. The loader must
//! answer with a scenario or a `file:line:col: field` error; a loaded scenario
//! names only files inside its run's directory; nothing panics; a run is
//! repeatable. The long dose is `cargo fuzz` (fuzz/, docs/untrusted-input.md).
//!
//! `BITSIM_FUZZ_DOSE=N` changes the number of mutants per fixture (default 40),
//! `BITSIM_FUZZ_DOSE_RUNS=N` how many of them run on the simulator (default 60).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// xorshift64*: a fixed seed, so a failure names a mutant that reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const HOSTILE_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1.5",
    "1e308",
    "-0",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "268435457",
    "3153600000001",
    "null",
    "\"x\"",
];

const HOSTILE_STRINGS: &[&str] = &[
    "/etc/passwd",
    "../outside.bin",
    "a/../../x",
    "C:\\\\Windows\\\\x",
    "\\\\\\\\server\\\\share",
    "",
    "a\\u0000b",
    "/",
    ".",
    "18446744073709551615d",
    "1e308s",
    "0.5ms",
    "/bytes/18446744073709551615",
    "/bytes/2000000000",
];

/// One mutation of `text`.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let b = text.as_bytes();
    let at = rng.below(b.len());
    let choice = rng.below(8);
    let mut out: Vec<u8> = match choice {
        // A number becomes a hostile number.
        0 | 1 => {
            let starts: Vec<usize> = (0..b.len())
                .filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()))
                .collect();
            let Some(&s) = starts.get(rng.below(starts.len())) else {
                return text.to_string();
            };
            let e = (s..b.len()).find(|&i| !b[i].is_ascii_digit()).unwrap_or(b.len());
            let v = HOSTILE_NUMBERS[rng.below(HOSTILE_NUMBERS.len())];
            [&b[..s], v.as_bytes(), &b[e..]].concat()
        }
        // A string value becomes a hostile string.
        2 | 3 => {
            let values: Vec<usize> = text.match_indices(": \"").map(|(i, _)| i + 3).collect();
            let Some(&s) = values.get(rng.below(values.len())) else {
                return text.to_string();
            };
            let e = text[s..].find('"').map_or(b.len(), |k| s + k);
            let v = HOSTILE_STRINGS[rng.below(HOSTILE_STRINGS.len())];
            [&b[..s], v.as_bytes(), &b[e..]].concat()
        }
        // A key/value pair is duplicated in place.
        4 => {
            // Byte searches: `at` may fall inside a multi-byte character (`§`).
            let Some(k) = b[at..].windows(3).position(|w| w == b", \"").map(|k| at + k) else {
                return text.to_string();
            };
            let end = b[k + 2..]
                .iter()
                .position(|&c| c == b',' || c == b'}')
                .map_or(b.len(), |e| k + 2 + e);
            [&b[..end], &b[k..end], &b[end..]].concat()
        }
        // Truncated.
        5 => b[..at].to_vec(),
        // A byte flipped (may make invalid UTF-8: the loader is fed only UTF-8,
        // as read_bounded guarantees, so that is repaired below).
        6 => {
            let mut v = b.to_vec();
            if !v.is_empty() {
                v[at] ^= 1 << rng.below(8);
            }
            v
        }
        // A range deleted or repeated.
        _ => {
            let len = rng.below(64);
            let end = (at + len).min(b.len());
            if rng.below(2) == 0 {
                [&b[..at], &b[end..]].concat()
            } else {
                [&b[..end], &b[at..end], &b[end..]].concat()
            }
        }
    };
    if rng.below(4) == 0 && !out.is_empty() {
        // Sometimes a second mutation on top.
        let again = String::from_utf8_lossy(&out).into_owned();
        out = mutate(&again, rng).into_bytes();
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Local names a loaded step mentions.
fn local_names(step: &bitsim_scenario::Step) -> Vec<String> {
    use bitsim_scenario::Step;
    match step {
        Step::AddFile { local, .. } => vec![local.clone()],
        Step::AddFiles { files, .. } => files.iter().map(|f| f.local.clone()).collect(),
        Step::WriteFile { name, .. } => vec![name.clone()],
        Step::SetReplyFileName { local: Some(l), .. } => vec![l.clone()],
        Step::ExpectFiles { present, absent } => present
            .iter()
            .map(|f| f.name.clone())
            .chain(absent.iter().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `name` could reach outside the run's directory: absolute (either
/// separator, or a drive), `..`, NUL or empty. Independent of the loader's own
/// check, so the dose fails if that check goes.
fn escapes(name: &str) -> bool {
    name.is_empty()
        || name.contains('\0')
        || name.starts_with(['/', '\\'])
        || name.contains(':')
        || name.split(['/', '\\']).any(|part| part == "..")
}

/// Virtual time a scenario asks for (advance + wait), to keep the dose short.
fn asked_ms(s: &bitsim_scenario::Scenario) -> u64 {
    use bitsim_scenario::Step;
    s.steps
        .iter()
        .map(|e| match &e.step {
            Step::Advance { by } => by.0 .0,
            Step::Wait { within, .. } => within.0 .0,
            _ => 0,
        })
        .fold(0u64, u64::saturating_add)
}

#[test]
fn mutated_fixtures_load_or_fail_cleanly_and_run_inside_their_directory() {
    let per_fixture: usize = std::env::var("BITSIM_FUZZ_DOSE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let files = bitsim_scenario::discover(&[root.join("scenarios"), root.join("invalid")]).expect("fixtures");
    let scratch = tempfile_dir();
    let mut rng = Rng(0x00B1_75EE_D13D_05E5);
    // Simulator runs cost far more than loads: a few dozen cover the runner.
    let max_runs: usize = std::env::var("BITSIM_FUZZ_DOSE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let started = std::time::Instant::now();
    let (mut loaded_n, mut rejected_n, mut ran_n) = (0usize, 0usize, 0usize);
    // Mutants refused for a path that leaves the run's directory: proves the
    // dose reaches the confinement check (were it gone, they would load and
    // trip the assertion below).
    let mut escapes_refused = 0usize;
    for (path, _) in &files {
        let text = std::fs::read_to_string(path).expect("fixture");
        for k in 0..per_fixture {
            let mutant = mutate(&text, &mut rng);
            let what = format!("{} mutant {k}", path.display());
            let parsed = catch_unwind(|| bitsim_scenario::parse_scenario(&mutant, "mutant.json"))
                .unwrap_or_else(|_| panic!("{what}: the loader panicked on:\n{mutant}"));
            let scenario = match parsed {
                Err(e) => {
                    rejected_n += 1;
                    assert_eq!(e.file, "mutant.json", "{what}: {e}");
                    assert!(e.line >= 1, "{what}: an error without a line: {e}\n{mutant}");
                    assert!(!e.message.is_empty(), "{what}: {e}");
                    if e.message.contains("run's directory") || e.message.contains("is absolute") {
                        escapes_refused += 1;
                    }
                    continue;
                }
                Ok(s) => s,
            };
            loaded_n += 1;
            for entry in &scenario.steps {
                for name in local_names(&entry.step) {
                    assert!(
                        !escapes(&name),
                        "{what}: loaded a name that leaves the run's directory: {name:?}"
                    );
                }
            }
            // Run the short ones (the corpus's own scale) on the simulator.
            if asked_ms(&scenario) > 30 * 86_400_000 || scenario.plan_file.is_some() || ran_n >= max_runs {
                continue;
            }
            let loaded = bitsim_scenario::LoadedScenario {
                path: path.clone(),
                name: format!("mutant-{k}"),
                plan: scenario.plan.clone().unwrap_or_default(),
                scenario,
            };
            let flavor = bitsim_scenario::flavors_for(&loaded.scenario, None)[0];
            let run = || bitsim_engine::run_scenario(&loaded, flavor, 1, &scratch.0);
            let first = catch_unwind(AssertUnwindSafe(run))
                .unwrap_or_else(|_| panic!("{what}: the run panicked on:\n{mutant}"));
            let first = first.expect("scratch directory");
            if ran_n % 5 == 0 {
                let second = bitsim_engine::run_scenario(&loaded, flavor, 1, &scratch.0).expect("scratch directory");
                assert_eq!(first.trace_text(), second.trace_text(), "{what}: not repeatable");
            }
            let a: Vec<String> = first.trace.clone();
            let b: Vec<String> = mutant.lines().map(str::to_string).collect();
            let d = bitsim_scenario::diff_lines(&a, &b);
            let deleted = d.iter().filter(|l| l.starts_with("- ")).count();
            assert_eq!(
                a.len() - deleted,
                b.len() - (d.len() - deleted),
                "{what}: diff lost lines"
            );
            ran_n += 1;
        }
    }
    // Run directories are gone after every run.
    let left: Vec<_> = std::fs::read_dir(&scratch.0)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "run directories left behind: {left:?}");
    assert!(
        loaded_n > 0 && rejected_n > 0 && ran_n > 0 && escapes_refused > 0,
        "{loaded_n} loaded, {rejected_n} rejected ({escapes_refused} for leaving the run's directory), {ran_n} ran"
    );
    eprintln!(
        "fuzz dose: {loaded_n} mutants loaded, {rejected_n} rejected ({escapes_refused} for leaving the run's \
         directory), {ran_n} run on the simulator in {:.1?}",
        started.elapsed()
    );
}

/// A scratch directory of this test's own, empty at the start and removed
/// when the test ends, passing or not.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> Scratch {
    let d = std::env::temp_dir().join(format!("bitsim-fuzz-dose-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch");
    Scratch(d)
}
