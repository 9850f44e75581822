//! The exploration loop: generate, run, check, compare; on a problem, let proptest
//! shrink the scenario to the smallest one with the same problem and write it out as a
//! scenario file that `bitsim run` reproduces.

use crate::generate;
use crate::invariants::{self, RunFacts};
use crate::sim::{Outcome, Overrides, Sim};
use bitsim_model::{Flavor, Hresult, NotificationKind, TraceKind};
use bitsim_scenario::format::{Dur, ExpectHr, Expectation, KindName, StateName};
use bitsim_scenario::{
    diff, parse_scenario, LoadedScenario, RunOptions, RunReport, Scenario, Step, StepEntry, Verdict,
};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Runs a scenario on another backend: `(scenario, flavor, seed) -> report`.
pub type RunElsewhere = dyn FnMut(&LoadedScenario, Flavor, u64) -> RunReport;

/// A system to compare the model with.
pub enum Against {
    /// Only the invariants, on the model.
    Nothing,
    /// The model with the default profile against the model with these overrides:
    /// which scenarios tell two readings of the docs apart.
    Profile(Overrides),
    /// Another backend (real BITS or DO on Windows, Wine's qmgr): a function that runs
    /// a scenario there, or says why it cannot. Both sides run strictly (stopping at
    /// the first unexpected result), so they stop at the same step when they agree.
    Backend { name: String, run: Box<RunElsewhere> },
}

/// What to explore.
pub struct ExploreConfig {
    pub cases: u64,
    pub seed: u64,
    pub max_steps: usize,
    /// Overrides for the model whose invariants are checked.
    pub model: Overrides,
    pub against: Against,
    /// Where found scenarios are written.
    pub out: PathBuf,
    /// Where run directories are made.
    pub scratch: PathBuf,
    pub time_budget: Option<Duration>,
    /// Repeat one run in this many with the same seed and compare traces (1 = every run).
    pub determinism_every: u64,
    /// Stop after this many findings.
    pub max_findings: usize,
    /// Generate only this flavor (a real backend runs one); default: both.
    pub flavor: Option<Flavor>,
}

impl ExploreConfig {
    pub fn new(out: PathBuf) -> ExploreConfig {
        ExploreConfig {
            cases: 1_000,
            seed: 1,
            max_steps: 30,
            model: Overrides::default(),
            against: Against::Nothing,
            out,
            scratch: default_scratch(),
            time_budget: None,
            determinism_every: 1,
            max_findings: 10,
            flavor: None,
        }
    }
}

/// Run directories go to memory (`/dev/shm`) when there is one: every download
/// creates, writes and renames files, and a disk file system's journal is most of a
/// short run's cost.
fn default_scratch() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() && std::fs::create_dir_all(shm.join("bitsim-explore")).is_ok() {
        shm.join("bitsim-explore")
    } else {
        std::env::temp_dir().join("bitsim-explore")
    }
}

/// One problem, shrunk and written out.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The invariant's name, `difference`, `no-panic`, `deterministic` or `loads`.
    pub kind: String,
    pub message: String,
    pub file: PathBuf,
    /// The command that reproduces it.
    pub rerun: String,
}

/// How an exploration went.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub cases: u64,
    pub findings: Vec<Finding>,
    pub elapsed: Duration,
    /// Runs of the simulator, shrinking included.
    pub runs: u64,
}

impl Summary {
    /// The one-line summary the CLI prints.
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut s = format!(
            "explored {} scenarios in {:.1}s ({:.0}/s), {} finding(s)",
            self.cases,
            secs,
            self.cases as f64 / secs,
            self.findings.len()
        );
        for f in &self.findings {
            s.push_str(&format!("; {}: {}", f.kind, f.file.display()));
        }
        s
    }
}

/// A problem found in one case: its kind (kept while shrinking) and what happened.
#[derive(Debug, Clone)]
struct Problem {
    kind: String,
    message: String,
}

/// Cases per proptest runner: the time budget is checked between chunks.
const CHUNK: u64 = 200;

/// Explores; `progress` is called with the number of cases done so far.
pub fn explore(config: ExploreConfig, progress: &mut dyn FnMut(u64)) -> Result<Summary, String> {
    let started = Instant::now();
    let model = Sim::new(&config.scratch, config.model.clone()).map_err(|e| format!("run directory: {e}"))?;
    let other = match &config.against {
        Against::Profile(o) => Some(Sim::new(&config.scratch, o.clone()).map_err(|e| format!("run directory: {e}"))?),
        _ => None,
    };
    let (cases, seed, max_steps, determinism_every) =
        (config.cases, config.seed, config.max_steps, config.determinism_every);
    let (time_budget, max_findings, flavor) = (config.time_budget, config.max_findings, config.flavor);
    // proptest's runner takes an `Fn`: the state the checks mutate lives in cells.
    let state = RefCell::new(Harness {
        model,
        other,
        config,
        runs: 0,
    });
    let progress = RefCell::new(progress);
    let mut summary = Summary::default();
    let mut chunk = 0u64;
    while summary.cases < cases && summary.findings.len() < max_findings {
        if time_budget.is_some_and(|b| started.elapsed() >= b) {
            break;
        }
        let n = CHUNK.min(cases - summary.cases);
        let target: RefCell<Option<String>> = RefCell::new(None);
        let done = RefCell::new(0u64);
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: n as u32,
                failure_persistence: None,
                max_shrink_iters: 2_000,
                max_shrink_time: 120_000,
                ..Config::default()
            },
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed, chunk)),
        );
        let before = summary.cases;
        let result = runner.run(&generate::scenario(max_steps, flavor), |scenario| {
            if target.borrow().is_none() {
                *done.borrow_mut() += 1;
                (progress.borrow_mut())(before + *done.borrow());
            }
            let case = *done.borrow();
            let problem = state.borrow_mut().check_case(&scenario, case, determinism_every);
            match problem {
                None => Ok(()),
                Some(p) => {
                    let mut t = target.borrow_mut();
                    match t.as_ref() {
                        // While shrinking, only the same kind of problem counts.
                        Some(kind) if *kind != p.kind => Ok(()),
                        _ => {
                            *t = Some(p.kind.clone());
                            Err(TestCaseError::fail(p.message))
                        }
                    }
                }
            }
        });
        summary.cases += *done.borrow();
        chunk += 1;
        if let Err(TestError::Fail(_, minimal)) = result {
            let kind = target.borrow().clone().unwrap_or_default();
            let mut h = state.borrow_mut();
            // The minimal case's own message (the first failure's is of a larger case).
            let problem = h
                .check_case(&minimal, 1, 1)
                .filter(|p| p.kind == kind)
                .unwrap_or(Problem {
                    kind: kind.clone(),
                    message: "the problem did not reproduce on the shrunk scenario".into(),
                });
            let finding = h.write_finding(&problem, &minimal, chunk - 1)?;
            summary.findings.push(finding);
        }
    }
    summary.runs = state.borrow().runs;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The simulators and settings one exploration uses.
struct Harness {
    model: Sim,
    other: Option<Sim>,
    config: ExploreConfig,
    runs: u64,
}

fn seed_bytes(seed: u64, chunk: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b[8..16].copy_from_slice(&chunk.to_le_bytes());
    b[16..24].copy_from_slice(&0x6269_7473_696d_u64.to_le_bytes());
    b
}

/// Serialises and loads a scenario the way a file is loaded.
pub fn load(scenario: &Scenario, name: &str) -> Result<LoadedScenario, String> {
    let text = generate::to_json(scenario);
    let parsed = parse_scenario(&text, name).map_err(|e| e.to_string())?;
    let plan = parsed.plan.clone().unwrap_or_default();
    Ok(LoadedScenario {
        path: PathBuf::from(format!("{name}.json")),
        name: name.to_string(),
        scenario: parsed,
        plan,
    })
}

/// Scenarios whose model run covers more virtual time are not run on a real service
/// (as `bitsim conform --max-seconds`'s default).
const REAL_RUN_LIMIT_MS: u64 = 120_000;

const LENIENT: RunOptions = RunOptions { lenient: true };

/// Runs `loaded` and catches a panic as a problem.
fn run_guarded(
    sim: &mut Sim,
    loaded: &LoadedScenario,
    flavor: Flavor,
    seed: u64,
    options: RunOptions,
) -> Result<Outcome, Problem> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run(loaded, flavor, seed, options))).map_err(|e| {
        let what = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into());
        Problem {
            kind: "no-panic".into(),
            message: format!("the simulator panicked: {what}"),
        }
    })
}

impl Harness {
    /// Every check on one generated scenario; the first problem found.
    fn check_case(&mut self, scenario: &Scenario, case: u64, determinism_every: u64) -> Option<Problem> {
        let Harness {
            model,
            other,
            config,
            runs,
        } = self;
        let against = &mut config.against;
        let loaded = match load(scenario, "generated") {
            Ok(l) => l,
            Err(e) => {
                return Some(Problem {
                    kind: "loads".into(),
                    message: format!("a generated scenario does not load: {e}"),
                })
            }
        };
        let flavor = scenario.flavors.first().map_or(Flavor::Bits, |f| f.0);
        let seed = scenario.seed.unwrap_or(1);
        let strict = matches!(against, Against::Backend { .. });
        let options = RunOptions { lenient: !strict };
        *runs += 1;
        let first = match run_guarded(model, &loaded, flavor, seed, options) {
            Ok(o) => o,
            Err(p) => return Some(p),
        };
        if let Some(p) = invariant_problem(scenario, model, flavor, &first) {
            return Some(p);
        }
        if determinism_every > 0 && case.is_multiple_of(determinism_every) {
            *runs += 1;
            let second = match run_guarded(model, &loaded, flavor, seed, options) {
                Ok(o) => o,
                Err(p) => return Some(p),
            };
            if let Some(line) = first_difference(&first.report.trace, &second.report.trace) {
                return Some(Problem {
                    kind: "deterministic".into(),
                    message: format!("the same seed gave a different trace: {line}"),
                });
            }
        }
        let theirs = match (&mut *against, other) {
            (Against::Profile(_), Some(sim)) => {
                *runs += 1;
                match run_guarded(sim, &loaded, flavor, seed, options) {
                    Ok(o) => o.report,
                    Err(p) => return Some(p),
                }
            }
            // Days of virtual time cannot be replayed on a real service.
            (Against::Backend { .. }, _) if first.report.covered.0 > REAL_RUN_LIMIT_MS => return None,
            (Against::Backend { run, .. }, _) => run(&loaded, flavor, seed),
            _ => return None,
        };
        if let Verdict::NotApplicable(_) = theirs.verdict {
            return None;
        }
        let lines = diff(&first.report.projection, &theirs.projection);
        let theirs_name = match against {
            Against::Profile(o) => format!("the model with{}", o.as_flags().replace(" --profile-field", "")),
            _ => theirs.backend.clone(),
        };
        (!lines.is_empty()).then(|| Problem {
            kind: "difference".into(),
            message: format!(
                "the model and {} disagree (- model, + other): {}",
                theirs_name,
                lines.iter().take(4).cloned().collect::<Vec<_>>().join("; ")
            ),
        })
    }

    fn write_finding(&mut self, problem: &Problem, minimal: &Scenario, chunk: u64) -> Result<Finding, String> {
        write_finding(&self.config, &mut self.model, problem, minimal, chunk)
    }
}

fn invariant_problem(scenario: &Scenario, sim: &Sim, flavor: Flavor, outcome: &Outcome) -> Option<Problem> {
    let profile = sim.profile(flavor);
    let facts = RunFacts {
        scenario,
        profile: &profile,
        events: &outcome.events,
        files_left: outcome.files_left.as_deref(),
    };
    invariants::check(&facts).into_iter().next().map(|v| Problem {
        kind: v.invariant.to_string(),
        message: v.to_string(),
    })
}

fn first_difference(a: &[String], b: &[String]) -> Option<String> {
    let i = a.iter().zip(b).position(|(x, y)| x != y);
    match i {
        Some(i) => Some(format!("line {}: `{}` then `{}`", i + 1, a[i], b[i])),
        None if a.len() != b.len() => Some(format!("{} lines then {} lines", a.len(), b.len())),
        None => None,
    }
}

/// Makes the shrunk scenario a reviewable file that passes the runner's own checks on
/// the model: failing calls get the code they returned as `expect`, waits that timed
/// out become the `advance` they amounted to, and (for a difference) checkpoints
/// state what the model saw, so the other side fails there.
fn finalise(scenario: &Scenario, model: &mut Sim, with_states: bool) -> Scenario {
    let Ok(loaded) = load(scenario, "found") else {
        return scenario.clone();
    };
    let flavor = scenario.flavors.first().map_or(Flavor::Bits, |f| f.0);
    let outcome = model.run(&loaded, flavor, scenario.seed.unwrap_or(1), LENIENT);
    let projection = &outcome.report.projection;
    let mut out = scenario.clone();
    for (entry, loaded_entry) in out.steps.iter_mut().zip(&loaded.scenario.steps) {
        let line = loaded_entry.line;
        let code = projection
            .api_results
            .iter()
            .find(|r| r.line == line)
            .map(|r| r.hresult);
        let checkpoint = projection.checkpoints.iter().find(|c| c.line == line);
        if let Some(code) = code.filter(|c| c.is_failure()) {
            set_expect(&mut entry.step, code);
        }
        match &mut entry.step {
            Step::Wait { within, .. } if checkpoint.is_none() => {
                entry.step = Step::Advance { by: Dur(within.0) };
            }
            Step::Expect(e) if with_states => {
                if let Some(state) = checkpoint.and_then(|c| c.state) {
                    e.state = Some(StateName(state));
                }
            }
            _ => {}
        }
    }
    if with_states {
        // Pin what the model did at the end: each job's state and how many times it was
        // told it transferred or failed, so the other side fails where it differs.
        let names: std::collections::BTreeMap<_, _> = outcome
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                TraceKind::JobCreated { job, .. } => Some(*job),
                _ => None,
            })
            .zip(out.steps.iter().filter_map(|s| match &s.step {
                Step::CreateJob { job, .. } => Some(job.clone()),
                _ => None,
            }))
            .collect();
        for (id, alias) in &names {
            for kind in [NotificationKind::JobTransferred, NotificationKind::JobError] {
                let count = outcome
                    .deliveries
                    .iter()
                    .filter(|d| d.job == *id && d.kind == kind)
                    .count();
                out.steps.push(entry(Step::ExpectNotifications {
                    job: Some(alias.clone()),
                    kind: Some(KindName(kind)),
                    count: Some(count as u32),
                    at_least: None,
                    sequence: None,
                }));
            }
            out.steps.push(entry(Step::Expect(Box::new(Expectation {
                job: alias.clone(),
                ..Expectation::default()
            }))));
        }
        // The final checkpoints get their states from one more run.
        return finalise(&out, model, false).with_final_states(model);
    }
    out
}

fn entry(step: Step) -> StepEntry {
    StepEntry {
        line: 0,
        step,
        only: None,
    }
}

trait FinalStates {
    fn with_final_states(self, model: &mut Sim) -> Scenario;
}

impl FinalStates for Scenario {
    /// Fills the states of `expect` steps that check nothing from a run.
    fn with_final_states(mut self, model: &mut Sim) -> Scenario {
        let Ok(loaded) = load(&self, "found") else { return self };
        let flavor = self.flavors.first().map_or(Flavor::Bits, |f| f.0);
        let outcome = model.run(&loaded, flavor, self.seed.unwrap_or(1), LENIENT);
        for (entry, loaded_entry) in self.steps.iter_mut().zip(&loaded.scenario.steps) {
            let checkpoint = outcome
                .report
                .projection
                .checkpoints
                .iter()
                .find(|c| c.line == loaded_entry.line);
            if let (Step::Expect(e), Some(state)) = (&mut entry.step, checkpoint.and_then(|c| c.state)) {
                if e.state.is_none() {
                    e.state = Some(StateName(state));
                }
            }
        }
        self
    }
}

fn set_expect(step: &mut Step, code: Hresult) {
    use Step::*;
    match step {
        CreateJob { expect, .. }
        | GetJob { expect, .. }
        | AddFile { expect, .. }
        | AddFiles { expect, .. }
        | Resume { expect, .. }
        | Suspend { expect, .. }
        | Cancel { expect, .. }
        | Complete { expect, .. }
        | SetDisplayName { expect, .. }
        | SetDescription { expect, .. }
        | SetPriority { expect, .. }
        | SetNotifyFlags { expect, .. }
        | SetNotifyInterface { expect, .. }
        | SetNotifyCmdline { expect, .. }
        | SetMinimumRetryDelay { expect, .. }
        | SetNoProgressTimeout { expect, .. }
        | SetMaximumDownloadTime { expect, .. }
        | SetReplyFileName { expect, .. }
        | TakeOwnership { expect, .. } => *expect = Some(ExpectHr::Code(code)),
        _ => {}
    }
}

/// A short stable hash for file names (FNV-1a).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn write_finding(
    config: &ExploreConfig,
    model: &mut Sim,
    problem: &Problem,
    minimal: &Scenario,
    chunk: u64,
) -> Result<Finding, String> {
    let mut scenario = finalise(minimal, model, problem.kind == "difference");
    let body = generate::to_json(&scenario);
    let name = format!("{}-{:08x}.json", problem.kind, fnv(&body) as u32);
    let file = config.out.join(&name);
    let seed = scenario.seed.unwrap_or(1);
    let flags = match &config.against {
        Against::Profile(o) => o.as_flags(),
        _ => config.model.as_flags(),
    };
    let rerun = match (&config.against, problem.kind.as_str()) {
        (Against::Profile(_), "difference") => {
            format!("bitsim run FILE passes; bitsim run FILE{flags} fails where they differ")
        }
        (Against::Backend { name, .. }, "difference") => format!("bitsim conform --backend {name} FILE"),
        _ => format!("bitsim run FILE{flags}"),
    };
    scenario.description = format!(
        "Found by bitsim explore (--seed {}, chunk {chunk}, scenario seed {seed}): {}. Rerun: {rerun}.",
        config.seed, problem.message
    );
    scenario.covers = vec![format!("explore: {}", problem.kind)];
    std::fs::create_dir_all(&config.out).map_err(|e| format!("{}: {e}", config.out.display()))?;
    std::fs::write(&file, generate::to_json(&scenario) + "\n").map_err(|e| format!("{}: {e}", file.display()))?;
    let rerun = rerun.replace("FILE", &file.display().to_string());
    Ok(Finding {
        kind: problem.kind.clone(),
        message: problem.message.clone(),
        file,
        rerun,
    })
}

/// Runs a scenario file's scenario on the simulator strictly and checks the invariants:
/// what `bitsim run` does with each file.
pub fn run_and_check(
    sim: &mut Sim,
    loaded: &LoadedScenario,
    flavor: Flavor,
    seed: u64,
) -> (RunReport, Vec<invariants::Violation>) {
    let outcome = sim.run(loaded, flavor, seed, RunOptions::default());
    let profile = sim.profile(flavor);
    let facts = RunFacts {
        scenario: &loaded.scenario,
        profile: &profile,
        events: &outcome.events,
        files_left: outcome.files_left.as_deref(),
    };
    let violations = invariants::check(&facts);
    (outcome.report, violations)
}
