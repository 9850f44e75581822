//! `bitsim explore`: generated scenarios on the simulator, checked against the
//! reference's invariants and optionally compared with another backend; every problem
//! is shrunk and written to `--out` as a scenario file `bitsim run` reproduces.

use bitsim_explore::{explore, Against, ExploreConfig, Overrides};
use bitsim_model::Flavor;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ExploreArgs {
    /// How many scenarios to generate.
    #[arg(long, default_value_t = 1_000)]
    pub cases: u64,
    /// Seed of the generator: the same seed explores the same scenarios.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also compare every run with: `profile` (the model with the `--profile-field`
    /// overrides), `bits` or `do` (the real service; a Windows build, or under Wine).
    /// Without it only the invariants are checked.
    #[arg(long, value_parser = ["profile", "bits", "do"])]
    pub against: Option<String>,
    /// A Profile field to change, NAME=VALUE (repeatable; `bitsim flavors` lists them).
    /// With `--against profile` it applies to the second model only; otherwise to the
    /// model under test.
    #[arg(long = "profile-field", value_name = "NAME=VALUE")]
    pub profile_field: Vec<String>,
    /// Where shrunk scenarios are written (created if missing).
    #[arg(long, default_value = "explore-found")]
    pub out: PathBuf,
    /// Stop after this long (e.g. 30s, 10m, 2h), whatever `--cases` says.
    #[arg(long, value_parser = parse_budget)]
    pub time_budget: Option<Duration>,
    /// At most this many steps per scenario (1..=200).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=200))]
    pub max_steps: u64,
    /// Repeat one run in N with the same seed to check the trace is identical
    /// (1 = every run, 0 = never).
    #[arg(long, default_value_t = 1)]
    pub determinism_every: u64,
    /// Stop after this many findings.
    #[arg(long, default_value_t = 5)]
    pub max_findings: usize,
    /// With `--against bits`: BITS is bitsim's COM facade with this control
    /// endpoint (see `bitsim conform --facade`).
    #[arg(long, value_name = "URL")]
    pub facade: Option<String>,
    /// Wall-clock limit of one run (e.g. 10s, 500ms): a generated scenario that runs
    /// longer is stopped and reported (shrunk and written) as a `hang` finding.
    /// `none`: no limit.
    #[arg(long, default_value = "10s", value_parser = parse_case_timeout)]
    pub case_timeout: CaseTimeout,
    /// Threads exploring side by side, each on its own simulator (0 = one per core).
    /// `--against bits|do` always uses one.
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
}

/// `--case-timeout`: a duration, or no limit.
#[derive(Debug, Clone, Copy)]
pub struct CaseTimeout(pub Option<Duration>);

fn parse_case_timeout(s: &str) -> Result<CaseTimeout, String> {
    if s == "none" {
        return Ok(CaseTimeout(None));
    }
    parse_budget(s)
        .map(|d| CaseTimeout(Some(d)))
        .map_err(|_| format!("`{s}` is not a duration (e.g. 10s, 500ms) or `none`"))
}

fn parse_budget(s: &str) -> Result<Duration, String> {
    bitsim_scenario::format::Dur::parse(s)
        .filter(|d| d.0 .0 > 0)
        .map(|d| Duration::from_millis(d.0 .0))
        .ok_or_else(|| format!("`{s}` is not a duration (e.g. 30s, 10m, 2h)"))
}

/// Runs the command; returns the process exit code (1 when anything was found).
pub fn run(args: ExploreArgs) -> i32 {
    let overrides = match Overrides::parse(&args.profile_field) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: --profile-field: {e}");
            return 2;
        }
    };
    let mut config = ExploreConfig::new(args.out.clone());
    config.cases = args.cases;
    config.seed = args.seed;
    config.max_steps = args.max_steps as usize;
    config.time_budget = args.time_budget;
    config.determinism_every = args.determinism_every;
    config.max_findings = args.max_findings.max(1);
    config.case_timeout = args.case_timeout.0;
    config.workers = args.jobs;
    match args.against.as_deref() {
        None => config.model = overrides,
        Some("profile") => {
            if overrides.is_empty() {
                eprintln!("error: --against profile needs at least one --profile-field NAME=VALUE");
                return 2;
            }
            config.against = Against::Profile(overrides);
        }
        Some(backend) => match real_backend(backend, args.facade.clone()) {
            Ok((flavor, against)) => {
                config.model = overrides;
                config.flavor = Some(flavor);
                config.against = against;
            }
            Err(e) => {
                eprintln!("error: --against {backend}: {e}");
                return 2;
            }
        },
    }
    let show_progress = std::io::stderr().is_terminal();
    let total = config.cases;
    let mut last = std::time::Instant::now();
    let mut progress = |done: u64| {
        if show_progress && (done == total || last.elapsed() >= Duration::from_millis(200)) {
            last = std::time::Instant::now();
            let width = 30;
            let filled = (done.min(total) * width / total.max(1)) as usize;
            let bar = format!("{}{}", "#".repeat(filled), "-".repeat(width as usize - filled));
            eprint!("\rexplore [{bar}] {done}/{total}");
            let _ = std::io::stderr().flush();
        }
    };
    let summary = explore(config, &mut progress);
    if show_progress {
        eprintln!();
    }
    match summary {
        Ok(s) => {
            for f in &s.findings {
                println!("found {}: {}", f.kind, f.message);
                println!("  wrote {}", f.file.display());
                println!("  rerun: {}", f.rerun);
            }
            println!("{}", s.line());
            i32::from(!s.findings.is_empty())
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// The real BITS or DO service, through the conformance backends.
fn real_backend(name: &str, facade: Option<String>) -> Result<(Flavor, Against), String> {
    use crate::conform::{real, LoopbackServer};
    if let Some(why) = real::unavailable() {
        return Err(why);
    }
    let (flavor, kind) = match name {
        "bits" => (Flavor::Bits, crate::conform::BackendKind::Bits),
        "do" => (Flavor::DeliveryOptimization, crate::conform::BackendKind::Do),
        "do-bits" => (Flavor::DeliveryOptimization, crate::conform::BackendKind::DoBits),
        _ => return Err(format!("unknown backend `{name}` (profile, bits, do, do-bits)")),
    };
    let server = LoopbackServer::start().map_err(|e| format!("cannot start the loopback server: {e}"))?;
    let scratch = std::env::temp_dir().join("bitsim-explore-real");
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let label = name.to_string();
    Ok((
        flavor,
        Against::Backend {
            name: label.clone(),
            run: Box::new(move |loaded, flavor, seed| {
                real::run(loaded, flavor, kind, seed, &server, &scratch, &label, facade.as_deref())
            }),
        },
    ))
}
