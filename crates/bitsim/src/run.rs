//! `bitsim run`: every scenario under the given paths, on the simulator, in
//! virtual time.

use bitsim_model::Flavor;
use bitsim_scenario::{discover, flavors_for, load_file, LoadedScenario, RunReport, Verdict};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario files or directories (searched recursively for *.json).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Only this flavor (scenarios that do not list it are skipped).
    #[arg(long, value_parser = parse_flavor)]
    pub flavor: Option<Flavor>,
    /// Seed for the model and the server (default: the scenario's, else 1).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write each run's trace (`NAME.FLAVOR.trace`) and projection
    /// (`NAME.FLAVOR.projection.json`) here. It must be empty (or new) unless
    /// `--force`, and one run at a time may use it.
    #[arg(long)]
    pub trace_dir: Option<PathBuf>,
    /// Write into a non-empty `--trace-dir` (files of the same name are replaced).
    #[arg(long)]
    pub force: bool,
    /// Wall-clock seconds each scenario run may take (0: no limit), up to 86400.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub timeout: u64,
    /// Keep each run's directory (under $TMPDIR/bitsim-runs) for debugging.
    #[arg(long)]
    pub keep_run_dir: bool,
    /// One JSON object per scenario run instead of text lines.
    #[arg(long)]
    pub json: bool,
    /// Write an HTML report here: index.html and one page per run (timeline,
    /// trace, steps). Static files; open index.html in a browser.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Change a Profile field for these runs, NAME=VALUE (repeatable; `bitsim flavors`
    /// lists them): reruns a `bitsim explore` finding made with other Profile choices.
    #[arg(long = "profile-field", value_name = "NAME=VALUE")]
    pub profile_field: Vec<String>,
}

pub fn parse_flavor(s: &str) -> Result<Flavor, String> {
    Flavor::parse(s).ok_or_else(|| format!("unknown flavor `{s}` (bits, do)"))
}

/// Loads every scenario; on any error prints them all and returns `Err(2)`.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<LoadedScenario>, i32> {
    let files = match discover(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(2);
        }
    };
    let mut loaded = Vec::new();
    let mut bad = 0;
    for (file, root) in files {
        match load_file(&file, &root) {
            Ok(l) => loaded.push(l),
            Err(e) => {
                eprintln!("error: {e}");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        eprintln!("{bad} scenario file(s) could not be loaded");
        return Err(2);
    }
    Ok(loaded)
}

/// Runs the command; returns the process exit code.
pub fn run(args: RunArgs) -> i32 {
    let loaded = match load_all(&args.paths) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let overrides = match bitsim_explore::Overrides::parse(&args.profile_field) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: --profile-field: {e}");
            return 2;
        }
    };
    let _trace_lock = match &args.trace_dir {
        Some(dir) => match TraceDirLock::take(dir, args.force) {
            Ok(lock) => Some(lock),
            Err(e) => {
                eprintln!("error: --trace-dir {}: {e}", dir.display());
                return 2;
            }
        },
        None => None,
    };
    remove_run_dirs_on_signal();
    let scratch = std::env::temp_dir().join("bitsim-runs");
    let mut site = match &args.report {
        Some(dir) => match bitsim_report::Site::create(dir, "bitsim run") {
            Ok(site) => Some(site),
            Err(e) => {
                eprintln!("error: cannot write the report to {}: {e}", dir.display());
                return 2;
            }
        },
        None => None,
    };
    let options = bitsim_engine::RunOptions {
        timeout: (args.timeout > 0).then(|| Duration::from_secs(args.timeout)),
        keep_run_dir: args.keep_run_dir,
        ..bitsim_engine::RunOptions::default()
    };
    let mut trace_error = false;
    let (mut passed, mut failed) = (0usize, 0usize);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for l in &loaded {
        // The report's steps pane shows the file as written.
        let source = match site {
            Some(_) => std::fs::read_to_string(&l.path).unwrap_or_default(),
            None => String::new(),
        };
        for flavor in flavors_for(&l.scenario, args.flavor) {
            let seed = args.seed.or(l.scenario.seed).unwrap_or(1);
            let started = Instant::now();
            let mut run_options = options.clone();
            if !overrides.is_empty() {
                run_options.profile = Some(overrides.profile(flavor));
            }
            // Always observed: every run is also checked against the invariants of
            // `bitsim explore` (they hold for every scenario), which need the events.
            let run = bitsim_engine::run_scenario_observed(l, flavor, seed, &scratch, &run_options);
            let (mut report, observed) = match run {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {}: cannot run: {e}", l.path.display());
                    failed += 1;
                    continue;
                }
            };
            let profile = overrides.profile(flavor);
            let violations = bitsim_explore::invariants::check(&bitsim_explore::invariants::RunFacts {
                scenario: &l.scenario,
                profile: &profile,
                events: &observed.events,
                files_left: observed.files_left.as_deref(),
                covered: Some(report.covered),
            });
            if let (Verdict::Passed, Some(v)) = (&report.verdict, violations.first()) {
                report.verdict = Verdict::Failed(bitsim_scenario::Failure {
                    file: l.path.display().to_string(),
                    line: 0,
                    step: 0,
                    what: format!("invariant {}", v.invariant),
                    expected: v.source.to_string(),
                    actual: format!("{} at {}", v.detail, v.at),
                });
            }
            let wall = started.elapsed();
            if let Some(site) = &mut site {
                let input = bitsim_report::RunInput {
                    loaded: l,
                    source: &source,
                    report: &report,
                    observed: &observed,
                    wall,
                };
                if let Err(e) = site.add_run(&input) {
                    eprintln!("error: cannot write the report page of {}: {e}", report.name);
                    failed += 1;
                }
            }
            if let (Some(dir), false) = (&args.trace_dir, trace_error) {
                // One clear error, then no more attempts (and a failing exit code).
                if let Err(e) = write_artifacts(dir, &report) {
                    eprintln!("error: cannot write traces to {}: {e}", dir.display());
                    trace_error = true;
                }
            }
            match report.verdict {
                Verdict::Passed => passed += 1,
                _ => failed += 1,
            }
            let _ = if args.json {
                print_json(&mut out, &report, wall)
            } else {
                print_text(&mut out, &report, wall, &overrides.as_flags())
            };
        }
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    if let Some(site) = site {
        match site.finish() {
            Ok(index) => {
                let _ = writeln!(out, "report: {}", index.display());
            }
            Err(e) => {
                eprintln!("error: cannot write the report index: {e}");
                return 2;
            }
        }
    }
    if trace_error {
        return 2;
    }
    i32::from(failed > 0)
}

/// On Ctrl-C or SIGTERM, removes the run directories that exist (no destructor
/// runs when the process is interrupted) and exits with 130.
fn remove_run_dirs_on_signal() {
    let (ready, registered) = std::sync::mpsc::channel::<bool>();
    let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            let _ = ready.send(false);
            return;
        };
        let interrupted = rt.block_on(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                // Creating the streams registers the handlers: only then is the
                // main thread told to go on, so an early Ctrl-C is not missed.
                let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
                else {
                    let _ = ready.send(false);
                    return false;
                };
                let _ = ready.send(true);
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                true
            }
            #[cfg(not(unix))]
            {
                let _ = ready.send(true);
                tokio::signal::ctrl_c().await.is_ok()
            }
        });
        if interrupted {
            bitsim_engine::remove_live_run_dirs();
            TraceDirLock::release_current();
            eprintln!("interrupted: run directories removed");
            std::process::exit(130);
        }
    });
    let ok = spawned.is_ok() && registered.recv_timeout(Duration::from_secs(5)).unwrap_or(false);
    if !ok {
        eprintln!("warning: cannot watch for Ctrl-C; an interrupted run may leave its directory behind");
    }
}

/// `--trace-dir` for one run at a time: a lock file taken with `create_new`, so
/// two runs sharing the directory do not silently mix their files; a
/// non-empty directory is refused without `--force`.
struct TraceDirLock(PathBuf);

/// The lock file of the running process, for the signal handler.
static CURRENT_LOCK: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

impl TraceDirLock {
    const NAME: &'static str = ".bitsim-trace-dir.lock";

    fn take(dir: &Path, force: bool) -> Result<TraceDirLock, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))?;
        let lock = dir.join(Self::NAME);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(mut f) => {
                let _ = writeln!(f, "{}", std::process::id());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(format!(
                    "in use by another bitsim run ({} exists; remove it if no run is using the directory)",
                    lock.display()
                ))
            }
            Err(e) => return Err(format!("cannot write in it: {e}")),
        }
        let taken = TraceDirLock(lock);
        let others = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot list it: {e}"))?
            .filter_map(Result::ok)
            .any(|e| e.file_name() != Self::NAME);
        if others && !force {
            return Err("not empty: use an empty directory, or --force to replace files in it".into());
        }
        *CURRENT_LOCK.lock().unwrap_or_else(|e| e.into_inner()) = Some(taken.0.clone());
        Ok(taken)
    }

    fn release_current() {
        if let Some(p) = CURRENT_LOCK.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for TraceDirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        CURRENT_LOCK.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn print_text(
    out: &mut impl Write,
    r: &RunReport,
    wall: std::time::Duration,
    profile_flags: &str,
) -> std::io::Result<()> {
    let verdict = match &r.verdict {
        Verdict::Passed => "pass",
        Verdict::Failed(_) => "FAIL",
        Verdict::NotApplicable(_) => "n/a ",
    };
    writeln!(
        out,
        "{verdict}  {} [{}]  virtual {}  wall {:.1}ms",
        r.name,
        r.flavor,
        r.covered,
        wall.as_secs_f64() * 1000.0
    )?;
    if let Verdict::Failed(f) = &r.verdict {
        writeln!(out, "      at {}:{} (step {}: {})", f.file, f.line, f.step, f.what)?;
        writeln!(out, "      expected: {}", f.expected)?;
        writeln!(out, "      actual:   {}", f.actual)?;
        writeln!(out, "      trace (last lines):")?;
        let tail = r.trace.len().saturating_sub(15);
        for line in &r.trace[tail..] {
            writeln!(out, "        {line}")?;
        }
        writeln!(
            out,
            "      rerun: bitsim run {} --flavor {} --seed {}{}",
            f.file, r.flavor, r.seed, profile_flags
        )?;
    }
    if let Verdict::NotApplicable(why) = &r.verdict {
        writeln!(out, "      not applicable: {why}")?;
    }
    Ok(())
}

fn print_json(out: &mut impl Write, r: &RunReport, wall: std::time::Duration) -> std::io::Result<()> {
    let (verdict, failure) = match &r.verdict {
        Verdict::Passed => ("pass", serde_json::Value::Null),
        Verdict::Failed(f) => (
            "fail",
            serde_json::json!({"file": f.file, "line": f.line, "step": f.step, "what": f.what, "expected": f.expected, "actual": f.actual}),
        ),
        Verdict::NotApplicable(why) => ("n/a", serde_json::json!({ "reason": why })),
    };
    let v = serde_json::json!({
        "scenario": r.name,
        "file": r.file,
        "flavor": r.flavor.as_str(),
        "seed": r.seed,
        "verdict": verdict,
        "failure": failure,
        "virtual_ms": r.covered.as_millis(),
        "wall_ms": wall.as_secs_f64() * 1000.0,
    });
    writeln!(out, "{v}")
}

fn write_artifacts(dir: &std::path::Path, r: &RunReport) -> std::io::Result<()> {
    let base = dir.join(format!("{}.{}", r.name, r.flavor));
    if let Some(parent) = base.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(base.with_extension(format!("{}.trace", r.flavor)), r.trace_text())?;
    let projection = serde_json::to_string_pretty(&r.projection).unwrap_or_default();
    std::fs::write(
        base.with_extension(format!("{}.projection.json", r.flavor)),
        projection + "\n",
    )
}
