//! Running scenarios on the simulator cheaply, many times: one tokio runtime and one
//! run directory are reused from run to run (the runtime is rebuilt only if a run left
//! tasks behind, the directory is emptied between runs and removed at the end), and an
//! optional wall-clock limit per run stops a run that would hang.

use bitsim_engine::{SimConfig, Simulator};
use bitsim_model::{Flavor, Profile, TraceEvent};
use bitsim_scenario::{Backend, LoadedScenario, RunOptions, RunReport};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A run with what the invariants need besides the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: RunReport,
    pub events: Vec<TraceEvent>,
    pub files_left: Option<Vec<String>>,
    pub deliveries: Vec<bitsim_scenario::Delivery>,
    /// The run was stopped by the per-case wall-clock limit ([`Sim::set_case_timeout`]).
    pub timed_out: bool,
}

/// `NAME=VALUE` profile overrides, checked against [`Profile::set_field`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides(pub Vec<(String, String)>);

impl Overrides {
    /// Parses `NAME=VALUE` items; every name and value is tried on a profile so a bad
    /// one is reported before anything runs.
    pub fn parse(items: &[String]) -> Result<Overrides, String> {
        let mut out = Vec::new();
        for item in items {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}`: expected NAME=VALUE (e.g. time_slice=none)"))?;
            Profile::bits().set_field(name.trim(), value.trim())?;
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
        Ok(Overrides(out))
    }

    /// The flavor's profile with the overrides applied.
    pub fn profile(&self, flavor: Flavor) -> Profile {
        let mut p = flavor.profile();
        for (name, value) in &self.0 {
            // Checked in `parse`; a field that fails here keeps its documented default.
            let _ = p.set_field(name, value);
        }
        p
    }

    /// `--profile-field NAME=VALUE ...` as a command-line suffix.
    pub fn as_flags(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!(" --profile-field {n}={v}"))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A reusable simulator harness.
pub struct Sim {
    runtime: tokio::runtime::Runtime,
    root: PathBuf,
    overrides: Overrides,
    watchdog: Option<CaseWatchdog>,
    max_trace_lines: u64,
}

/// The per-case wall-clock limit: one thread per [`Sim`] (not one per run) that sets
/// the simulator's `stop` flag when the run under way has taken longer than the limit;
/// the simulator then stops at its next step. A run costs two uncontended lock
/// operations.
struct CaseWatchdog {
    shared: Arc<WatchShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct WatchShared {
    limit: Duration,
    /// Handed to the simulator as [`SimConfig::stop`].
    stop: Arc<AtomicBool>,
    /// When the run under way started (`None`: no run). `stop` is only set while this
    /// lock is held and a run is under way, so it never leaks into the next run.
    current: Mutex<Option<Instant>>,
    quit: AtomicBool,
}

impl CaseWatchdog {
    fn start(limit: Duration) -> std::io::Result<CaseWatchdog> {
        let shared = Arc::new(WatchShared {
            limit,
            stop: Arc::new(AtomicBool::new(false)),
            current: Mutex::new(None),
            quit: AtomicBool::new(false),
        });
        let watched = shared.clone();
        // How late a stop may come: an eighth of the limit, between 1 ms and 100 ms.
        let tick = (limit / 8).clamp(Duration::from_millis(1), Duration::from_millis(100));
        let thread = std::thread::Builder::new()
            .name("explore-watchdog".into())
            .spawn(move || {
                while !watched.quit.load(Ordering::Relaxed) {
                    std::thread::park_timeout(tick);
                    let current = watched.current.lock().unwrap_or_else(|e| e.into_inner());
                    if current.is_some_and(|started| started.elapsed() >= watched.limit) {
                        watched.stop.store(true, Ordering::Relaxed);
                    }
                }
            })?;
        Ok(CaseWatchdog {
            shared,
            thread: Some(thread),
        })
    }

    fn begin(&self) {
        let mut current = self.shared.current.lock().unwrap_or_else(|e| e.into_inner());
        self.shared.stop.store(false, Ordering::Relaxed);
        *current = Some(Instant::now());
    }

    /// Ends the run; true when the watchdog stopped it.
    fn end(&self) -> bool {
        let mut current = self.shared.current.lock().unwrap_or_else(|e| e.into_inner());
        *current = None;
        self.shared.stop.load(Ordering::Relaxed)
    }
}

impl Drop for CaseWatchdog {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Ends a watched run also when the run panics.
struct Watched<'a>(Option<&'a CaseWatchdog>);

impl Watched<'_> {
    fn finish(mut self) -> bool {
        self.0.take().is_some_and(CaseWatchdog::end)
    }
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.end();
        }
    }
}

/// A current-thread runtime with a paused clock and no I/O driver: generated
/// scenarios use the in-memory connector only, and without an I/O driver the runtime
/// parks and wakes without `epoll_wait` and `eventfd` system calls.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
}

impl Sim {
    /// A harness whose run directory is a new directory under `scratch`.
    pub fn new(scratch: &Path, overrides: Overrides) -> std::io::Result<Sim> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = scratch.join(format!("explore-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&root)?;
        Ok(Sim {
            runtime: runtime()?,
            root,
            overrides,
            watchdog: None,
            max_trace_lines: bitsim_engine::MAX_TRACE_LINES,
        })
    }

    /// Stops a run after this many trace lines (default: `bitsim run`'s
    /// [`bitsim_engine::MAX_TRACE_LINES`]); the run is checked as far as it got.
    pub fn set_max_trace_lines(&mut self, lines: u64) {
        self.max_trace_lines = lines;
    }

    /// Stops any run that takes longer than `limit` of wall-clock time (`None`: no
    /// limit, the default); [`Outcome::timed_out`] tells.
    pub fn set_case_timeout(&mut self, limit: Option<Duration>) -> std::io::Result<()> {
        self.watchdog = None;
        if let Some(limit) = limit {
            self.watchdog = Some(CaseWatchdog::start(limit)?);
        }
        Ok(())
    }

    /// The per-case wall-clock limit, if any.
    pub fn case_timeout(&self) -> Option<Duration> {
        self.watchdog.as_ref().map(|w| w.shared.limit)
    }

    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }

    /// The profile runs use for `flavor`.
    pub fn profile(&self, flavor: Flavor) -> Profile {
        self.overrides.profile(flavor)
    }

    /// Runs one scenario under `flavor` with `seed`.
    pub fn run(&mut self, loaded: &LoadedScenario, flavor: Flavor, seed: u64, options: RunOptions) -> Outcome {
        self.empty_root();
        let mut config = SimConfig::new(flavor, seed, loaded.plan.clone(), self.root.clone());
        config.profile = self.profile(flavor);
        config.max_trace_lines = self.max_trace_lines;
        config.stop = self.watchdog.as_ref().map(|w| w.shared.stop.clone());
        let watched = Watched(self.watchdog.as_ref());
        if let Some(w) = &self.watchdog {
            w.begin();
        }
        let mut outcome = self.runtime.block_on(async {
            let mut sim = Simulator::new(config);
            sim.keep_events(true);
            let (report, observed) = bitsim_scenario::run_full(loaded, &mut sim, seed, options, false).await;
            let events = observed.events;
            let files_left = sim.list_files();
            let deliveries = sim.deliveries();
            sim.shutdown();
            drop(sim);
            // Let the aborted tasks and their server ends finish.
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            Outcome {
                report,
                events,
                files_left,
                deliveries,
                timed_out: false,
            }
        });
        outcome.timed_out = watched.finish();
        // Tasks a run left behind (a stalled server connection) would run on in the
        // next one: start that one on a fresh runtime.
        if self.runtime.metrics().num_alive_tasks() > 0 {
            if let Ok(rt) = runtime() {
                self.runtime = rt;
            }
        }
        outcome
    }

    fn empty_root(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let path = e.path();
                // The entry's type comes with it (no `stat` per file); a symlink to a
                // directory is removed as a file.
                let _ = if e.file_type().is_ok_and(|t| t.is_dir()) {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
