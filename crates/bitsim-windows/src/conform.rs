//! The entry points `bitsim conform` calls on Windows (and under Wine):
//! `crates/bitsim/src/conform.rs` runs each scenario on the model and here,
//! then compares the projections.
//!
//! A run replays the scenario with [`bitsim_scenario::run`] on a
//! [`WindowsBackend`], on a current-thread tokio runtime with the real clock,
//! in this thread's COM apartment (MTA). Steps a real machine cannot perform
//! make the scenario not applicable (checked before the run where the
//! scenario says so up front, so no real time is spent on it). A watchdog
//! cancels the run's jobs and ends the process if a run hangs far past the
//! time its steps allow; Ctrl-C cancels them too.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bitsim_model::{Flavor, Time};
use bitsim_scenario::{Failure, LoadedScenario, Projection, RunReport, Step, Verdict};
use bitsim_server::MockServer;

use crate::backend::{ServerControl, WindowsBackend};
use crate::bits::BitsManager;
use crate::com::ComApartment;
use crate::delivery_optimization::DoManager;
use crate::do_backend::DoBackend;
use crate::guard::{cancel_live_jobs, sweep};
use crate::hr::Hr;

/// Grace on top of the time a scenario's waits and advances allow.
const WATCHDOG_SLACK: Duration = Duration::from_secs(60);

/// Why the DO flavor is not run where DO does not exist.
pub const DO_UNAVAILABLE: &str = "Delivery Optimization (IDOManager) is not available on this machine \
     (it needs Windows 10 1809+ and is absent under Wine)";

/// Runs `l` under `flavor` against the real service, with the mock server at
/// `base_url` and local files under `scratch`; `label` names the system in
/// the report (e.g. `bits`, `wine-qmgr`). A mid-run plan switch goes through
/// `PUT {base_url}/_bitsim/plan`; prefer [`run_scenario_with_server`] when
/// the server runs in this process.
pub fn run_scenario(
    l: &LoadedScenario,
    flavor: Flavor,
    seed: u64,
    base_url: &str,
    scratch: &Path,
    label: &str,
) -> RunReport {
    run_with(l, flavor, seed, base_url, ServerControl::Http, scratch, label, None)
}

/// [`run_scenario`] with the in-process mock server: plan switches and the
/// request log go to it directly (they also work while its plan refuses
/// connections).
#[allow(clippy::too_many_arguments)]
pub fn run_scenario_with_server(
    l: &LoadedScenario,
    flavor: Flavor,
    seed: u64,
    server: &MockServer,
    base_url: &str,
    scratch: &Path,
    label: &str,
    facade: Option<&str>,
) -> RunReport {
    run_with(
        l,
        flavor,
        seed,
        base_url,
        ServerControl::InProcess(server.clone()),
        scratch,
        label,
        facade,
    )
}

fn report(l: &LoadedScenario, flavor: Flavor, seed: u64, label: &str, verdict: Verdict) -> RunReport {
    RunReport {
        name: l.name.clone(),
        file: l.path.display().to_string(),
        flavor,
        backend: label.to_string(),
        seed,
        verdict,
        trace: Vec::new(),
        projection: Projection::new(&l.name, flavor),
        covered: Time::ZERO,
    }
}

/// A failed run that is not the service's answer (COM or BITS unreachable):
/// reported as a failure so it shows up as a difference, never as a pass.
fn setup_failure(l: &LoadedScenario, flavor: Flavor, seed: u64, label: &str, what: String) -> RunReport {
    let mut r = report(
        l,
        flavor,
        seed,
        label,
        Verdict::Failed(Failure {
            file: l.path.display().to_string(),
            line: 0,
            step: 0,
            what: "setting up the real service".into(),
            expected: "a working BITS service".into(),
            actual: what.clone(),
        }),
    );
    r.trace
        .push(format!("{:>12}  setup failed: {what}", Time::ZERO.to_string()));
    r
}

/// Why the DO flavor over DO's BITS-compatible API is not run where DO is absent.
pub const DO_BITS_UNAVAILABLE: &str = "Delivery Optimization's BITS-compatible API \
     (CLSID_DeliveryOptimization as IBackgroundCopyManager) is not registered on this machine \
     (it needs Windows 10 1709+ and is absent under Wine)";

/// Why a scenario cannot run against a real service, if it says so up front.
pub fn not_applicable_reason(l: &LoadedScenario, flavor: Flavor) -> Option<String> {
    if flavor == Flavor::DeliveryOptimization {
        return crate::do_backend::not_applicable_reason(l);
    }
    not_applicable_over_bits_api(l, flavor)
}

/// Why a scenario cannot run over the BITS interfaces (BITS itself, or DO's
/// BITS-compatible API), if it says so up front.
pub fn not_applicable_over_bits_api(l: &LoadedScenario, flavor: Flavor) -> Option<String> {
    if l.scenario.users.len() > 1 {
        return Some("a second user needs another interactive logon session on the machine".into());
    }
    for entry in &l.scenario.steps {
        if entry.only.is_some_and(|f| f != flavor) {
            continue;
        }
        let why = match &entry.step {
            Step::NetworkLost {} | Step::NetworkRestored {} => {
                "losing / restoring the network is not scripted on a real machine"
            }
            Step::Logoff { .. } | Step::Logon { .. } => "logging a user off / on is not scripted on a real machine",
            Step::ServiceRestart {} => "restarting the BITS service is not scripted on a real machine",
            Step::TakeOwnership { .. } => "TakeOwnership needs a second user",
            Step::SetNotifyCmdline { program: Some(_), .. } | Step::ExpectCmdline { .. } => {
                "a notify command line would start a real program (exit codes cannot be scripted)"
            }
            _ => continue,
        };
        return Some(why.into());
    }
    None
}

/// Why a scenario cannot run through bitsim's COM facade, if it says so up
/// front: the facade scripts the environment and time, but it has one user
/// and starts real programs for notify command lines. The same for both
/// flavors: the facade serves BITS (`CLSID_BackgroundCopyManager`) and DO's
/// BITS-compatible API (`CLSID_DeliveryOptimization`), each from its own
/// model, through the same objects.
pub fn not_applicable_via_facade(l: &LoadedScenario, flavor: Flavor) -> Option<String> {
    if l.scenario.users.len() > 1 {
        return Some("the facade's clients all act as one user".into());
    }
    use bitsim_server::Fault;
    // Every plan the scenario uses, and whether any of their rules matches.
    let plans: Vec<&bitsim_server::Plan> = std::iter::once(&l.plan)
        .chain(l.scenario.steps.iter().filter_map(|e| match &e.step {
            Step::SetPlan { plan: Some(plan), .. } => Some(plan),
            _ => None,
        }))
        .collect();
    let any_rule = |pred: &dyn Fn(&bitsim_server::Rule) -> bool| plans.iter().any(|p| p.rules.iter().any(pred));
    let fault = |pred: fn(&Fault) -> bool| any_rule(&|r| r.fault.as_ref().is_some_and(pred));
    // Transfers paced by the server (drip routes, dribble, throttle, delays)
    // take their time in real time through the facade: a 60 s drip is a
    // minute per run, and a jump cannot shorten real I/O.
    if any_rule(&|r| r.delay.is_some())
        || fault(|f| matches!(f, Fault::Dribble { .. } | Fault::Throttle { .. } | Fault::Delay { .. }))
        || any_step_string(l, |s| s.contains("/drip/"))
    {
        return Some(
            "the server paces a transfer (drip, dribble, throttle or delay), which takes that long in real time through the facade"
                .into(),
        );
    }
    // Local, UNC and file:// sources live in the run's directory on the
    // simulator; the facade's engine has no run directory of its own.
    if any_step_string(l, |s| ["local:", "unc:", "file:"].iter().any(|p| s.starts_with(p))) {
        return Some(
            "local, UNC and file:// sources are files of the simulator's run directory, which the facade does not have"
                .into(),
        );
    }
    if fault(|f| {
        matches!(
            f,
            Fault::Stall { .. } | Fault::HeadersThenStall { .. } | Fault::AppStall { .. }
        )
    }) {
        return Some(
            "a stalled connection is timed out by the wire's own 5-minute timers, which run on the wall clock in the facade (a jump cannot shorten them)"
                .into(),
        );
    }
    // A flavor whose profile has no command-line notification (DO) refuses
    // SetNotifyCmdLine in the facade's model, so no program can start.
    let cmdlines = flavor.profile().supports_cmdline;
    for entry in &l.scenario.steps {
        if entry.only.is_some_and(|f| f != flavor) {
            continue;
        }
        let why = match &entry.step {
            Step::TakeOwnership { .. } => "TakeOwnership needs a second user",
            Step::SetNotifyCmdline { program: Some(_), .. } if cmdlines => {
                "a notify command line would start a real program (exit codes cannot be scripted)"
            }
            Step::ExpectCmdline { .. } => {
                "a notify command line would start a real program (exit codes cannot be scripted)"
            }
            _ => continue,
        };
        return Some(why.into());
    }
    None
}

/// Whether any string in the scenario's steps (URLs, names) satisfies `pred`.
fn any_step_string(l: &LoadedScenario, pred: impl Fn(&str) -> bool) -> bool {
    fn walk(v: &serde_json::Value, pred: &dyn Fn(&str) -> bool) -> bool {
        match v {
            serde_json::Value::String(s) => pred(s),
            serde_json::Value::Array(a) => a.iter().any(|v| walk(v, pred)),
            serde_json::Value::Object(o) => o.values().any(|v| walk(v, pred)),
            _ => false,
        }
    }
    l.scenario
        .steps
        .iter()
        .any(|e| serde_json::to_value(&e.step).is_ok_and(|v| walk(&v, &pred)))
}

/// The real time a scenario's steps allow (waits and advances), plus slack.
fn time_budget(l: &LoadedScenario) -> Duration {
    let ms: u64 = l
        .scenario
        .steps
        .iter()
        .map(|e| match &e.step {
            Step::Wait { within, .. } => within.0 .0,
            Step::Advance { by } => by.0 .0,
            _ => 0,
        })
        .sum();
    Duration::from_millis(ms) + WATCHDOG_SLACK
}

/// RPC_S_SERVER_UNAVAILABLE: the service's process is gone.
const RPC_S_SERVER_UNAVAILABLE: Hr = Hr(0x8007_06BA);

/// Connects to BITS. If the service's process has died (Wine's qmgr can, see
/// [`WindowsBackend::finish`]), starts it again with `net start BITS` (Wine
/// does not restart a crashed service on activation) and retries, so one
/// crash does not fail every scenario after it.
fn connect_bits() -> Result<BitsManager, String> {
    let mut last = Hr::S_OK;
    for attempt in 0..3 {
        match BitsManager::connect() {
            Ok(m) => return Ok(m),
            Err(hr) if hr == RPC_S_SERVER_UNAVAILABLE && attempt < 2 => {
                last = hr;
                eprintln!("warning: the BITS service is not answering ({hr}); starting it again (net start BITS)");
                let _ = std::process::Command::new("net")
                    .args(["start", "BITS"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(hr) => return Err(format!("connecting to BITS failed: {hr}")),
        }
    }
    Err(format!("connecting to BITS failed: {last}"))
}

/// How long one activation of the service's class may take before the run
/// counts as a setup failure (BITS starting on demand takes seconds).
const ACTIVATION_LIMIT: Duration = Duration::from_secs(60);

/// `connect` on a thread of its own in this process's MTA, bounded by
/// [`ACTIVATION_LIMIT`]. Activation happens before a run's watchdog starts;
/// under Wine an activation of the facade's DO class was once seen never to
/// return (one run of the DO lane in four, the conform process blocked with
/// no request to the facade), which held the lane until its timeout. Bounded,
/// it is a setup failure: a difference, run again with `--retries`. The
/// blocked thread is left behind.
fn activate<T: Send + 'static>(connect: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("bitsim-activate".into())
        .spawn(move || {
            // The process's MTA is kept alive by the caller's apartment; this
            // thread joins it (an MTA proxy may be used from any of its threads).
            let _apartment = ComApartment::init_mta();
            let _ = tx.send(connect());
        })
        .map_err(|e| format!("cannot start the activation thread: {e}"))?;
    rx.recv_timeout(ACTIVATION_LIMIT).unwrap_or_else(|_| {
        Err(format!(
            "activating the service's class did not return within {} s",
            ACTIVATION_LIMIT.as_secs()
        ))
    })
}

/// Cancels this process's guarded jobs from another thread.
fn cancel_everything() -> usize {
    let Ok(_apartment) = ComApartment::init_mta() else {
        return 0;
    };
    let bits = match BitsManager::connect() {
        Ok(m) => cancel_live_jobs(&m).len(),
        Err(_) => 0,
    };
    let dosvc = DoManager::connect()
        .ok()
        .and_then(|m| m.sweep().ok())
        .map_or(0, |v| v.len());
    bits + dosvc
}

/// Ends the process if the run is still going `budget` after it started
/// (after cancelling its jobs). Dropping the sender stops it.
fn watchdog(name: String, budget: Duration) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let _ = std::thread::Builder::new()
        .name("bitsim-watchdog".into())
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(budget) {
                let n = cancel_everything();
                eprintln!(
                    "error: {name}: the real run is still going after {} s (hung COM call?); cancelled {n} job(s)",
                    budget.as_secs()
                );
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(30)) {
                    eprintln!("error: {name}: still hung 30 s after cancelling; exiting");
                    std::process::exit(3);
                }
            }
        });
    tx
}

/// Ctrl-C / Ctrl-Break / console close: cancel the guarded jobs, then let
/// the default handler end the process.
fn install_ctrl_handler() {
    use std::sync::Once;
    use windows::Win32::System::Console::SetConsoleCtrlHandler;
    use windows_core::BOOL;

    unsafe extern "system" fn handler(_ctrl_type: u32) -> BOOL {
        let n = cancel_everything();
        eprintln!("interrupted: cancelled {n} job(s)");
        BOOL(0)
    }

    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a plain extern "system" function that lives for
        // the whole process.
        let _ = unsafe { SetConsoleCtrlHandler(Some(handler), true) };
    });
}

#[allow(clippy::too_many_arguments)]
fn run_with(
    l: &LoadedScenario,
    flavor: Flavor,
    seed: u64,
    base_url: &str,
    control: ServerControl,
    scratch: &Path,
    label: &str,
    facade: Option<&str>,
) -> RunReport {
    let why = match facade {
        Some(_) => not_applicable_via_facade(l, flavor),
        None => not_applicable_reason(l, flavor),
    };
    if let Some(why) = why {
        return report(l, flavor, seed, label, Verdict::NotApplicable(why));
    }
    install_ctrl_handler();
    let _apartment = match ComApartment::init_mta() {
        Ok(a) => a,
        Err(hr) => return setup_failure(l, flavor, seed, label, format!("CoInitializeEx(MTA) failed: {hr}")),
    };
    if flavor == Flavor::DeliveryOptimization {
        return run_do(l, seed, base_url, control, scratch, label);
    }
    let manager = match activate(connect_bits) {
        Ok(m) => m,
        Err(e) => return setup_failure(l, flavor, seed, label, e),
    };
    let backend = |root| {
        let backend = WindowsBackend::new(label, flavor, manager, base_url, control, root);
        match facade {
            Some(url) => backend.with_facade(url, seed),
            None => Ok(backend),
        }
    };
    drive(l, flavor, seed, scratch, "real-", label, backend)
}

/// Runs `l` under the DO flavor over Delivery Optimization's BITS-compatible
/// API: the BITS adapter ([`WindowsBackend`]) with DO's class, callbacks
/// included. Where DO is not registered (REGDB_E_CLASSNOTREG: under Wine, old
/// Windows) the scenario is not applicable, never a pass; any other connection
/// failure is a setup failure. With `facade` (the control endpoint of `bitsim
/// com-server`), DO's class is the facade's and the run is in facade mode
/// (fresh DO model, jumps, environment events: see [`WindowsBackend::with_facade`]).
pub fn run_scenario_do_bits_with_server(
    l: &LoadedScenario,
    seed: u64,
    server: &MockServer,
    base_url: &str,
    scratch: &Path,
    label: &str,
    facade: Option<&str>,
) -> RunReport {
    let flavor = Flavor::DeliveryOptimization;
    let why = match facade {
        Some(_) => not_applicable_via_facade(l, flavor),
        None => not_applicable_over_bits_api(l, flavor),
    };
    if let Some(why) = why {
        return report(l, flavor, seed, label, Verdict::NotApplicable(why));
    }
    install_ctrl_handler();
    let _apartment = match ComApartment::init_mta() {
        Ok(a) => a,
        Err(hr) => return setup_failure(l, flavor, seed, label, format!("CoInitializeEx(MTA) failed: {hr}")),
    };
    let connected = activate(|| Ok(BitsManager::connect_delivery_optimization()));
    let connected = match connected {
        Ok(c) => c,
        Err(e) => return setup_failure(l, flavor, seed, label, e),
    };
    let manager = match connected {
        Ok(m) => m,
        Err(hr) if hr == Hr::REGDB_E_CLASSNOTREG => {
            return report(
                l,
                flavor,
                seed,
                label,
                Verdict::NotApplicable(format!("{DO_BITS_UNAVAILABLE} ({hr})")),
            )
        }
        Err(hr) => {
            return setup_failure(
                l,
                flavor,
                seed,
                label,
                format!("connecting to Delivery Optimization's BITS-compatible API failed: {hr}"),
            )
        }
    };
    let control = ServerControl::InProcess(server.clone());
    drive(l, flavor, seed, scratch, "real-do-bits-", label, |root| {
        let backend = WindowsBackend::new(label, flavor, manager, base_url, control, root);
        match facade {
            Some(url) => backend.with_facade(url, seed),
            None => Ok(backend),
        }
    })
}

/// [`run_with`] for Delivery Optimization: the scenario over [`DoBackend`]
/// (COM is initialised by the caller). Where DO is not registered
/// (REGDB_E_CLASSNOTREG: before Windows 10 1809, under Wine) the scenario
/// is not applicable; any other connection failure is a setup failure.
fn run_do(
    l: &LoadedScenario,
    seed: u64,
    base_url: &str,
    control: ServerControl,
    scratch: &Path,
    label: &str,
) -> RunReport {
    let flavor = Flavor::DeliveryOptimization;
    let manager = match DoManager::connect() {
        Ok(m) => m,
        Err(hr) if hr == Hr::REGDB_E_CLASSNOTREG => {
            return report(
                l,
                flavor,
                seed,
                label,
                Verdict::NotApplicable(format!("{DO_UNAVAILABLE} ({hr})")),
            )
        }
        Err(hr) => {
            return setup_failure(
                l,
                flavor,
                seed,
                label,
                format!("connecting to Delivery Optimization failed: {hr}"),
            )
        }
    };
    drive(
        l,
        Flavor::DeliveryOptimization,
        seed,
        scratch,
        "real-do-",
        label,
        |root| Ok(DoBackend::new(label, manager, base_url, control, root)),
    )
}

/// Cancels the current user's BITS jobs and aborts the DO downloads whose
/// display name starts with `bitsim-` (leftovers of earlier runs). Returns
/// how many were cancelled or aborted. DO is skipped where it does not exist
/// (before Windows 10 1809, under Wine).
pub fn sweep_leftovers() -> Result<usize, String> {
    let _apartment = ComApartment::init_mta().map_err(|hr| format!("CoInitializeEx(MTA) failed: {hr}"))?;
    let bits = BitsManager::connect().map_err(|hr| format!("connecting to BITS failed: {hr}"))?;
    let swept = sweep(&bits).map_err(|hr| format!("enumerating BITS jobs failed: {hr}"))?;
    let mut n = swept.iter().filter(|s| s.cancel.is_some()).count();
    if let Ok(dosvc) = DoManager::connect() {
        if let Ok(aborted) = dosvc.sweep() {
            n += aborted.len();
        }
    }
    Ok(n)
}

/// What `conform` needs of a real backend beyond [`Backend`].
trait RealBackend: bitsim_scenario::Backend {
    /// Why the run turned out not applicable (a step the service cannot do).
    fn not_applicable(&self) -> Option<&str>;
    /// Cancel / abort whatever is not final and stop blocked callbacks.
    fn finish(&mut self);
}

impl RealBackend for WindowsBackend {
    fn not_applicable(&self) -> Option<&str> {
        WindowsBackend::not_applicable(self)
    }
    fn finish(&mut self) {
        WindowsBackend::finish(self)
    }
}

impl RealBackend for DoBackend {
    fn not_applicable(&self) -> Option<&str> {
        DoBackend::not_applicable(self)
    }
    fn finish(&mut self) {
        DoBackend::finish(self)
    }
}

/// Runs the scenario on a backend made for a fresh run directory, under a
/// real-clock runtime and the watchdog, then cleans up (jobs, directory).
fn drive<B: RealBackend>(
    l: &LoadedScenario,
    flavor: Flavor,
    seed: u64,
    scratch: &Path,
    tag: &str,
    label: &str,
    make: impl FnOnce(PathBuf) -> Result<B, String>,
) -> RunReport {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let root: PathBuf = scratch.join(format!("{tag}{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    if let Err(e) = std::fs::create_dir_all(&root) {
        return setup_failure(l, flavor, seed, label, format!("cannot create {}: {e}", root.display()));
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => return setup_failure(l, flavor, seed, label, format!("tokio runtime: {e}")),
    };
    let stop_watchdog = watchdog(l.name.clone(), time_budget(l));
    let mut backend = match make(root.clone()) {
        Ok(b) => b,
        Err(e) => return setup_failure(l, flavor, seed, label, e),
    };
    let mut report = rt.block_on(bitsim_scenario::run(l, &mut backend, seed));
    if let Some(why) = backend.not_applicable() {
        report.verdict = Verdict::NotApplicable(why.to_string());
    }
    backend.finish();
    let mut tail = backend.take_trace();
    report.trace.append(&mut tail);
    drop(backend);
    drop(stop_watchdog);
    drop(rt);
    let _ = std::fs::remove_dir_all(&root);
    report
}
