//! `bitsim conform`: the same scenarios against the real BITS / DO service (or
//! Wine's qmgr, when this Windows build runs under Wine), each compared with the
//! model's run through the projection. Only unexplained differences fail.

use crate::run::load_all;
use bitsim_model::Flavor;
use bitsim_scenario::conformance::{compare, report_markdown, ExpectedDifferences, MatrixRow, Outcome};
use bitsim_scenario::{LoadedScenario, Projection, RunReport};
use bitsim_server::{MockServer, Plan};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The BITS service (qmgr; Wine's under Wine).
    Bits,
    /// Delivery Optimization's IDODownload API (no JobError: notifications are
    /// not compared).
    Do,
    /// Delivery Optimization's BITS-compatible API: `CoCreateInstance(
    /// CLSID_DeliveryOptimization, …, IID_IBackgroundCopyManager)` and the ordinary
    /// BITS interfaces, callbacks included (the DO JobError page's API).
    DoBits,
}

#[derive(Debug, clap::Args)]
pub struct ConformArgs {
    /// Which service to run against.
    #[arg(long, value_enum)]
    pub backend: BackendKind,
    /// Scenario files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The name of the system in reports (default: the backend, e.g. `bits`; the Wine
    /// lane passes `wine-qmgr`).
    #[arg(long)]
    pub label: Option<String>,
    /// Known, explained deviations (e.g. fixtures/conformance/wine-qmgr.json).
    #[arg(long)]
    pub expected: Option<PathBuf>,
    /// Write the conformance matrix (Markdown) here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the conformance matrix as HTML here (index.html, conformance.html and
    /// one side-by-side page of the two projections per scenario).
    #[arg(long, value_name = "DIR")]
    pub report_html: Option<PathBuf>,
    /// Traces and projections of both runs go here.
    #[arg(long, default_value = "target/conformance")]
    pub out: PathBuf,
    /// Scenarios whose model run covers more virtual time than this are not run
    /// for real (a no-progress timeout is 14 days).
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
    /// Seed for the model and the server.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Cancel every job left over from earlier runs (display name `bitsim-*`) first.
    #[arg(long)]
    pub sweep: bool,
    /// BITS (or, with --backend do-bits, DO's BITS-compatible class) is bitsim's
    /// own COM facade (`bitsim com-server`) with this control endpoint
    /// (`http://127.0.0.1:PORT`): each scenario gets a fresh model, waits jump
    /// the facade's clock (no --max-seconds limit), and environment events are
    /// posted to it.
    #[arg(long, value_name = "URL")]
    pub facade: Option<String>,
    /// Run a scenario that differs again, up to N more times, and keep the last
    /// outcome (each retry is printed): for a real system with intermittent
    /// faults. 0 to 5.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=5))]
    pub retries: u32,
}

pub fn run(args: ConformArgs) -> i32 {
    if args.facade.is_some() && args.backend == BackendKind::Do {
        eprintln!(
            "error: the facade serves DO's BITS-compatible API (CLSID_DeliveryOptimization), not IDODownload: use --backend do-bits"
        );
        return 2;
    }
    let loaded = match load_all(&args.paths) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let expected = match &args.expected {
        Some(p) => match ExpectedDifferences::load(p) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        },
        None => ExpectedDifferences::default(),
    };
    let flavor = match args.backend {
        BackendKind::Bits => Flavor::Bits,
        BackendKind::Do | BackendKind::DoBits => Flavor::DeliveryOptimization,
    };
    let label = args.label.clone().unwrap_or_else(|| match args.backend {
        BackendKind::DoBits => "do-bits".to_string(),
        _ => flavor.as_str().to_string(),
    });
    // One multithreaded apartment for the whole run: each scenario's own
    // CoInitializeEx then only counts up, and object ids are never reused
    // across scenarios (under Wine a server that kept a proxy from an ended
    // apartment would otherwise call into a new object with the old ids).
    let _apartment = real::apartment();
    if args.sweep {
        if let Err(e) = real::sweep() {
            eprintln!("warning: sweep failed: {e}");
        }
    }
    let server = match LoopbackServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the mock server on 127.0.0.1: {e}");
            return 2;
        }
    };
    let scratch = std::env::temp_dir().join("bitsim-conform");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut rows = Vec::new();
    let mut cells = Vec::new();
    for l in &loaded {
        let seed = args.seed.or(l.scenario.seed).unwrap_or(1);
        let (outcome, traces, projections) = conform_one(l, flavor, seed, &args, &label, &server, &scratch, &expected);
        match &outcome {
            Outcome::Match | Outcome::KnownDifference { .. } => passed += 1,
            Outcome::Differs { .. } => failed += 1,
            Outcome::NotApplicable { .. } => skipped += 1,
        }
        println!("{:<8} {} [{}]", outcome.label(), l.name, flavor);
        match &outcome {
            Outcome::Differs { diff } => diff.iter().for_each(|d| println!("           {d}")),
            Outcome::KnownDifference { reason, .. } => println!("           known: {reason}"),
            Outcome::NotApplicable { why } => println!("           {why}"),
            Outcome::Match => {}
        }
        let (model, real) = projections.map_or((None, None), |(m, r)| (Some(m), Some(r)));
        cells.push(bitsim_report::ConformanceCell {
            scenario: l.name.clone(),
            flavor: flavor.to_string(),
            backend: label.clone(),
            outcome: outcome.clone(),
            model,
            real,
        });
        rows.push(MatrixRow {
            scenario: l.name.clone(),
            flavor: flavor.to_string(),
            outcome,
            model_trace: traces.as_ref().map(|t| link(&args.out, args.report.as_deref(), &t.0)),
            real_trace: traces.map(|t| link(&args.out, args.report.as_deref(), &t.1)),
        });
    }
    // The backend as it is spelled on the command line (`do-bits`, not the flavor).
    let backend = clap::ValueEnum::to_possible_value(&args.backend)
        .map_or_else(|| flavor.as_str().to_string(), |v| v.get_name().to_string());
    if let Some(path) = &args.report {
        let note = format!(
            "Generated by `bitsim conform --backend {backend} --label {label}`; traces under `{}`.",
            args.out.display()
        );
        let md = report_markdown(&label, &rows, &note);
        if let Err(e) = std::fs::write(path, md) {
            eprintln!("error: cannot write {}: {e}", path.display());
        }
    }
    if let Some(dir) = &args.report_html {
        let note = format!("Generated by `bitsim conform --backend {backend} --label {label}`.");
        if let Err(e) = write_html(dir, &cells, &note) {
            eprintln!("error: cannot write the HTML report to {}: {e}", dir.display());
            return 2;
        }
    }
    println!("{skipped} not applicable");
    println!("{passed} passed, {failed} failed");
    i32::from(failed > 0)
}

/// The conformance matrix as a static site (`index.html` links to it).
fn write_html(dir: &Path, cells: &[bitsim_report::ConformanceCell], note: &str) -> std::io::Result<()> {
    let mut site = bitsim_report::Site::create(dir, "bitsim conform")?;
    site.add_conformance(cells, note)?;
    site.finish().map(|_| ())
}

/// The outcome, the two traces' paths, and the two projections compared.
type Conformed = (Outcome, Option<(String, String)>, Option<(Projection, Projection)>);

#[allow(clippy::too_many_arguments)]
fn conform_one(
    l: &LoadedScenario,
    flavor: Flavor,
    seed: u64,
    args: &ConformArgs,
    label: &str,
    server: &LoopbackServer,
    scratch: &Path,
    expected: &ExpectedDifferences,
) -> Conformed {
    if !l.scenario.flavors.iter().any(|f| f.0 == flavor) {
        return (
            Outcome::NotApplicable {
                why: format!("the scenario does not run under {flavor}"),
            },
            None,
            None,
        );
    }
    // Through the facade the model itself answers, so a scenario kept to the
    // simulator (what a real machine cannot script) runs too; steps the
    // adapter cannot send still make it not applicable.
    if l.scenario.sim_only && args.facade.is_none() {
        return (
            Outcome::NotApplicable {
                why: "simulator-only scenario".into(),
            },
            None,
            None,
        );
    }
    if let Some(why) = real::unavailable() {
        return (Outcome::NotApplicable { why }, None, None);
    }
    let model = match bitsim_engine::run_scenario(l, flavor, seed, scratch) {
        Ok(r) => r,
        Err(e) => {
            return (
                Outcome::NotApplicable {
                    why: format!("model run failed to start: {e}"),
                },
                None,
                None,
            )
        }
    };
    if !model.passed() {
        let why = format!("the scenario fails on the model: {:?}", model.verdict);
        return (Outcome::Differs { diff: vec![why] }, None, None);
    }
    if args.facade.is_none() && model.covered.as_millis() > args.max_seconds * 1000 {
        let why = format!("needs {} of real time (limit {} s)", model.covered, args.max_seconds);
        return (Outcome::NotApplicable { why }, None, None);
    }
    let run_real = || {
        server.server.set_plan(l.plan.clone());
        server.server.clear_log();
        server.server.clear_uploads();
        real::run(
            l,
            flavor,
            args.backend,
            seed,
            server,
            scratch,
            label,
            args.facade.as_deref(),
        )
    };
    let mut real = run_real();
    let mut outcome = compare(&model, &real, expected);
    // A difference may be the real system's intermittent fault: run again, and
    // say so, so a flaky scenario is visible rather than a red run.
    for attempt in 1..=args.retries {
        if !matches!(outcome, Outcome::Differs { .. }) {
            break;
        }
        println!("retry    {} [{flavor}] (run {attempt} differed)", l.name);
        real = run_real();
        outcome = compare(&model, &real, expected);
    }
    let traces = write_traces(&args.out, &model, &real, label).ok();
    (outcome, traces, Some((model.projection, real.projection)))
}

/// A trace's link as the report shows it: `rel` (relative to `out`) made
/// relative to the report's directory, with `/` separators, so the Markdown
/// links work wherever the tree is checked out.
fn link(out: &Path, report: Option<&Path>, rel: &str) -> String {
    let target = out.join(rel);
    let from = report.and_then(Path::parent).unwrap_or(Path::new(""));
    let parts = |p: &Path| -> Vec<String> {
        p.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    let (t, f) = (parts(&target), parts(from));
    if target.is_absolute() != from.is_absolute() && !from.as_os_str().is_empty() {
        return target.to_string_lossy().replace('\\', "/");
    }
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut out: Vec<String> = vec!["..".to_string(); f.len() - common];
    out.extend(t[common..].iter().cloned());
    out.join("/")
}

/// Writes both runs' traces and projections; returns the trace paths relative to `out`.
fn write_traces(out: &Path, model: &RunReport, real: &RunReport, label: &str) -> std::io::Result<(String, String)> {
    let write = |who: &str, r: &RunReport| -> std::io::Result<String> {
        let rel = format!("{}.{}.{who}.trace", r.name, r.flavor);
        let path = out.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, r.trace_text())?;
        let projection = serde_json::to_string_pretty(&r.projection).unwrap_or_default();
        std::fs::write(
            out.join(format!("{}.{}.{who}.projection.json", r.name, r.flavor)),
            projection + "\n",
        )?;
        Ok(rel)
    };
    Ok((write("model", model)?, write(label, real)?))
}

/// The mock server on 127.0.0.1 over TCP, on its own runtime thread, for the real
/// service to download from.
pub(crate) struct LoopbackServer {
    server: MockServer,
    /// Read by the Windows build (the real service downloads from it).
    #[cfg_attr(not(windows), allow(dead_code))]
    base_url: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl LoopbackServer {
    pub(crate) fn start() -> std::io::Result<LoopbackServer> {
        let server = MockServer::new(Plan::default(), 1);
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = server.clone();
        std::thread::Builder::new().name("bitsim-serve".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build();
            let Ok(rt) = rt else { return };
            rt.block_on(async move {
                if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                    let _ = s
                        .serve_tcp(listener, async {
                            let _ = rx.await;
                        })
                        .await;
                }
            });
        })?;
        Ok(LoopbackServer {
            server,
            base_url: format!("http://{addr}"),
            _shutdown: tx,
        })
    }
}

/// The real service. On Windows (and under Wine) through bitsim-windows; elsewhere
/// every scenario is not applicable.
#[cfg(windows)]
pub(crate) mod real {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    pub fn run(
        l: &LoadedScenario,
        flavor: Flavor,
        backend: BackendKind,
        seed: u64,
        server: &LoopbackServer,
        scratch: &Path,
        label: &str,
        facade: Option<&str>,
    ) -> RunReport {
        if backend == BackendKind::DoBits {
            return bitsim_windows::conform::run_scenario_do_bits_with_server(
                l,
                seed,
                &server.server,
                &server.base_url,
                scratch,
                label,
                facade,
            );
        }
        bitsim_windows::conform::run_scenario_with_server(
            l,
            flavor,
            seed,
            &server.server,
            &server.base_url,
            scratch,
            label,
            facade,
        )
    }

    pub fn sweep() -> Result<usize, String> {
        bitsim_windows::conform::sweep_leftovers()
    }

    pub fn apartment() -> Option<bitsim_windows::ComApartment> {
        bitsim_windows::ComApartment::init_mta().ok()
    }

    pub fn unavailable() -> Option<String> {
        None
    }
}

#[cfg(not(windows))]
pub(crate) mod real {
    use super::*;
    use bitsim_scenario::Verdict;

    const WHY: &str = "needs a Windows build of bitsim (run it on Windows, or under Wine: scripts/wine-conformance.sh)";

    pub fn unavailable() -> Option<String> {
        Some(WHY.into())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn run(
        l: &LoadedScenario,
        flavor: Flavor,
        _: BackendKind,
        seed: u64,
        _: &LoopbackServer,
        _: &Path,
        label: &str,
        _: Option<&str>,
    ) -> RunReport {
        RunReport {
            name: l.name.clone(),
            file: l.path.display().to_string(),
            flavor,
            backend: label.to_string(),
            seed,
            verdict: Verdict::NotApplicable(WHY.into()),
            trace: Vec::new(),
            projection: bitsim_scenario::Projection::new(&l.name, flavor),
            covered: bitsim_model::Time::ZERO,
        }
    }

    pub fn sweep() -> Result<usize, String> {
        Err("sweeping needs Windows".into())
    }

    pub fn apartment() -> Option<()> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::link;
    use std::path::Path;

    #[test]
    fn trace_links_are_relative_to_the_report() {
        let out = Path::new("target/wine-conformance/traces");
        let report = Path::new("docs/conformance/wine-qmgr.md");
        assert_eq!(
            link(out, Some(report), "api/x.bits.model.trace"),
            "../../target/wine-conformance/traces/api/x.bits.model.trace"
        );
        assert_eq!(link(out, None, "a.trace"), "target/wine-conformance/traces/a.trace");
        assert_eq!(
            link(Path::new("r/t"), Some(Path::new("r/m.md")), "a.trace"),
            "t/a.trace"
        );
    }
}
