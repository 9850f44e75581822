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
    /// Wall-clock limit of one run on the simulator: a run that takes longer is
    /// stopped and reported as a `hang` finding (`None`: no limit).
    pub case_timeout: Option<Duration>,
    /// Threads exploring chunks of cases side by side (each with its own simulator);
    /// 0: one per core. A real backend (`Against::Backend`) always uses one.
    pub workers: usize,
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
            case_timeout: Some(DEFAULT_CASE_TIMEOUT),
            workers: 0,
        }
    }
}

/// Trace lines a generated run may write before it is stopped (and checked as far as
/// it got); `bitsim run` allows ten times more. Only retry and re-delivery storms
/// over days of virtual time (a job retrying every 5 s for two weeks) reach it, about
/// one scenario in 10,000; at a million lines each took seconds, most of the
/// exploration's time, and came close to the case timeout on a busy machine.
pub const MAX_TRACE_LINES: u64 = 100_000;

/// Default of [`ExploreConfig::case_timeout`]: the slowest generated scenarios take
/// about a second.
pub const DEFAULT_CASE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// What every worker needs of the [`ExploreConfig`] (all of it but `against`).
#[derive(Clone)]
struct Settings {
    seed: u64,
    max_steps: usize,
    model: Overrides,
    out: PathBuf,
    scratch: PathBuf,
    determinism_every: u64,
    flavor: Option<Flavor>,
    case_timeout: Option<Duration>,
}

/// What one chunk of cases gave.
struct ChunkResult {
    chunk: u64,
    cases: u64,
    /// The problem and the shrunk scenario (written once the exploration is over,
    /// so that exactly the first `max_findings` in chunk order are written).
    finding: Option<(Problem, Scenario)>,
    runs: u64,
}

/// Which chunks are left: chunk `k` always generates the same scenarios (its proptest
/// runner is seeded with `seed` and `k`); a chunk that stops at a problem gives its
/// unused cases back, so `cases` scenarios are explored in all.
struct Chunks {
    cases: u64,
    max_findings: usize,
    time_budget: Option<Duration>,
    started: Instant,
    state: std::sync::Mutex<(u64, u64)>, // (next chunk, cases handed out)
    done: std::sync::atomic::AtomicU64,
    findings: std::sync::atomic::AtomicUsize,
}

impl Chunks {
    /// The next chunk and its size, unless the exploration is over.
    fn claim(&self) -> Option<(u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.findings.load(Relaxed) >= self.max_findings
            || self.time_budget.is_some_and(|b| self.started.elapsed() >= b)
        {
            return None;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (next, handed) = *state;
        let n = CHUNK.min(self.cases.saturating_sub(handed));
        if n == 0 {
            return None;
        }
        *state = (next + 1, handed + n);
        Some((next, n))
    }

    fn finished(&self, claimed: u64, result: &ChunkResult) {
        use std::sync::atomic::Ordering::Relaxed;
        if result.finding.is_some() {
            self.findings.fetch_add(1, Relaxed);
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 -= claimed.saturating_sub(result.cases);
    }
}

/// Explores; `progress` is called with the number of cases done so far.
///
/// Chunks of [`CHUNK`] cases are spread over [`ExploreConfig::workers`] threads, each
/// with its own simulator (and run directory); which scenarios a chunk generates does
/// not depend on the thread, and findings are listed in chunk order.
pub fn explore(config: ExploreConfig, progress: &mut dyn FnMut(u64)) -> Result<Summary, String> {
    let started = Instant::now();
    let ExploreConfig {
        cases,
        seed,
        max_steps,
        model,
        against,
        out,
        scratch,
        time_budget,
        determinism_every,
        max_findings,
        flavor,
        case_timeout,
        workers,
    } = config;
    let settings = Settings {
        seed,
        max_steps,
        model,
        out,
        scratch,
        determinism_every,
        flavor,
        case_timeout,
    };
    let chunks = Chunks {
        cases,
        max_findings,
        time_budget,
        started,
        state: std::sync::Mutex::new((0, 0)),
        done: Default::default(),
        findings: Default::default(),
    };
    let workers = match (&against, workers) {
        (Against::Backend { .. }, _) => 1,
        (_, 0) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        (_, n) => n,
    };
    let mut results: Vec<ChunkResult> = Vec::new();
    let mut writer = None;
    if workers <= 1 {
        let harness = writer.insert(Harness::new(&settings, against)?);
        let mut done = 0u64;
        while let Some((chunk, n)) = chunks.claim() {
            let result = harness.run_chunk(chunk, n, &mut || {
                done += 1;
                progress(done);
            });
            chunks.finished(n, &result);
            results.push(result);
        }
    } else {
        let other = match &against {
            Against::Profile(o) => Some(o.clone()),
            _ => None,
        };
        let (tx, rx) = std::sync::mpsc::channel::<Result<ChunkResult, String>>();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let (tx, settings, other, chunks) = (tx.clone(), &settings, other.clone(), &chunks);
                scope.spawn(move || {
                    let against = other.map_or(Against::Nothing, Against::Profile);
                    let mut harness = match Harness::new(settings, against) {
                        Ok(h) => h,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    while let Some((chunk, n)) = chunks.claim() {
                        let result = harness.run_chunk(chunk, n, &mut || {
                            chunks.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        });
                        chunks.finished(n, &result);
                        if tx.send(Ok(result)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            let mut shown = 0;
            loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(result)) => results.push(result),
                    Ok(Err(e)) => {
                        // Let the other workers stop at their next chunk.
                        chunks.findings.store(usize::MAX, std::sync::atomic::Ordering::Relaxed);
                        results.clear();
                        return Err(e);
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
                let done = chunks.done.load(std::sync::atomic::Ordering::Relaxed);
                if done != shown {
                    shown = done;
                    progress(done);
                }
            }
            Ok(())
        })?;
        if results.iter().any(|r| r.finding.is_some()) {
            writer = Some(Harness::new(&settings, against)?);
        }
    }
    results.sort_by_key(|r| r.chunk);
    let mut summary = Summary {
        cases: results.iter().map(|r| r.cases).sum(),
        runs: results.iter().map(|r| r.runs).sum(),
        ..Summary::default()
    };
    // Several workers may each find something at the end; the first `max_findings`
    // in chunk order are the ones one worker would have found.
    let found = results.into_iter().filter_map(|r| r.finding.map(|f| (r.chunk, f)));
    for (chunk, (problem, minimal)) in found.take(max_findings) {
        if let Some(h) = writer.as_mut() {
            summary.findings.push(h.write_finding(&problem, &minimal, chunk)?);
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The simulators and settings one worker uses.
struct Harness<'a> {
    model: Sim,
    other: Option<Sim>,
    settings: &'a Settings,
    against: Against,
    runs: u64,
}

impl<'a> Harness<'a> {
    fn new(settings: &'a Settings, against: Against) -> Result<Harness<'a>, String> {
        let sim = |overrides: Overrides| -> Result<Sim, String> {
            let mut sim = Sim::new(&settings.scratch, overrides).map_err(|e| format!("run directory: {e}"))?;
            sim.set_case_timeout(settings.case_timeout)
                .map_err(|e| format!("watchdog thread: {e}"))?;
            sim.set_max_trace_lines(MAX_TRACE_LINES);
            Ok(sim)
        };
        let model = sim(settings.model.clone())?;
        let other = match &against {
            Against::Profile(o) => Some(sim(o.clone())?),
            _ => None,
        };
        Ok(Harness {
            model,
            other,
            settings,
            against,
            runs: 0,
        })
    }

    /// Runs chunk `chunk` (`n` cases); on a problem, shrinks it.
    /// `on_case` is called once per case generated (not for shrinking runs).
    fn run_chunk(&mut self, chunk: u64, n: u64, on_case: &mut dyn FnMut()) -> ChunkResult {
        let settings = self.settings;
        let runs_before = self.runs;
        // proptest's runner takes an `Fn`: the state the checks mutate lives in cells.
        let state = RefCell::new(&mut *self);
        let on_case = RefCell::new(on_case);
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
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(settings.seed, chunk)),
        );
        let result = runner.run(&generate::scenario(settings.max_steps, settings.flavor), |scenario| {
            if target.borrow().is_none() {
                *done.borrow_mut() += 1;
                (on_case.borrow_mut())();
            }
            let case = *done.borrow();
            let problem = state
                .borrow_mut()
                .check_case(&scenario, case, settings.determinism_every);
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
        let h = state.into_inner();
        let mut finding = None;
        if let Err(TestError::Fail(reason, minimal)) = result {
            let kind = target.borrow().clone().unwrap_or_default();
            // The minimal case's own message (the first failure's is of a larger case).
            let problem = h
                .check_case(&minimal, 1, 1)
                .filter(|p| p.kind == kind)
                .unwrap_or_else(|| Problem {
                    kind: kind.clone(),
                    // A wall-clock hang near the limit need not happen again.
                    message: format!(
                        "{} (did not happen again on a rerun of the shrunk scenario)",
                        reason.message()
                    ),
                });
            finding = Some((problem, minimal));
        }
        let cases = *done.borrow();
        ChunkResult {
            chunk,
            cases,
            finding,
            runs: h.runs - runs_before,
        }
    }
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
    let text = generate::to_load_json(scenario);
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

/// Runs `loaded`; a panic, and a run the per-case watchdog stopped, are problems.
fn run_guarded(
    sim: &mut Sim,
    loaded: &LoadedScenario,
    flavor: Flavor,
    seed: u64,
    options: RunOptions,
) -> Result<Outcome, Problem> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run(loaded, flavor, seed, options)))
        .map_err(|e| {
            let what = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Problem {
                kind: "no-panic".into(),
                message: format!("the simulator panicked: {what}"),
            }
        })?;
    if outcome.timed_out {
        let limit = sim.case_timeout().unwrap_or_default();
        return Err(Problem {
            kind: "hang".into(),
            message: format!(
                "the run took longer than {} of wall-clock time (--case-timeout) and was stopped at virtual time {}",
                humantime(limit),
                outcome.report.covered
            ),
        });
    }
    Ok(outcome)
}

/// `10s`, `250ms`.
fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl Harness<'_> {
    /// Every check on one generated scenario; the first problem found.
    fn check_case(&mut self, scenario: &Scenario, case: u64, determinism_every: u64) -> Option<Problem> {
        let Harness {
            model,
            other,
            against,
            runs,
            ..
        } = self;
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
        write_finding(self.settings, &self.against, &mut self.model, problem, minimal, chunk)
    }
}

fn invariant_problem(scenario: &Scenario, sim: &Sim, flavor: Flavor, outcome: &Outcome) -> Option<Problem> {
    let profile = sim.profile(flavor);
    let facts = RunFacts {
        scenario,
        profile: &profile,
        events: &outcome.events,
        files_left: outcome.files_left.as_deref(),
        covered: Some(outcome.report.covered),
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
    config: &Settings,
    against: &Against,
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
    let flags = match against {
        Against::Profile(o) => o.as_flags(),
        _ => config.model.as_flags(),
    };
    let rerun = match (against, problem.kind.as_str()) {
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
        covered: Some(outcome.report.covered),
    };
    let violations = invariants::check(&facts);
    (outcome.report, violations)
}
