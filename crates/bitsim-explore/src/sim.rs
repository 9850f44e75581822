//! Running scenarios on the simulator cheaply, many times: one tokio runtime and one
//! run directory are reused from run to run (the runtime is rebuilt only if a run left
//! tasks behind, the directory is emptied between runs and removed at the end).

use bitsim_engine::{SimConfig, Simulator};
use bitsim_model::{Flavor, Profile, TraceEvent};
use bitsim_scenario::{Backend, LoadedScenario, RunOptions, RunReport};
use std::path::{Path, PathBuf};

/// A run with what the invariants need besides the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: RunReport,
    pub events: Vec<TraceEvent>,
    pub files_left: Option<Vec<String>>,
    pub deliveries: Vec<bitsim_scenario::Delivery>,
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
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
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
        })
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
        let outcome = self.runtime.block_on(async {
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
            }
        });
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
                let _ = if path.is_dir() {
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
