//! `bitsim com-server`: bitsim behind BITS's own COM API (bitsim-com). Runs on
//! Windows and under Wine; see docs/conformance/bitsim-com.md and
//! scripts/wine-com.sh.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Arguments of `bitsim com-server`.
#[derive(Debug, clap::Args)]
pub struct ComServerArgs {
    /// Virtual seconds per wall-clock second: at 600 a 600 s retry delay takes
    /// about one second. 1 to 1000000.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    time_scale: u64,
    /// Write the model's trace here, line by line (the format of `bitsim run`'s
    /// traces, for snapshot review and `bitsim diff`).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Write the Delivery Optimization service's trace here (its own model,
    /// behind CLSID_DeliveryOptimization; same format as --trace).
    #[arg(long, value_name = "FILE")]
    trace_do: Option<PathBuf>,
    /// Do not serve CLSID_DeliveryOptimization (BITS's classes only).
    #[arg(long)]
    no_do: bool,
    /// The control endpoint (environment events, jump ahead, quit): loopback
    /// only; port 0 picks a free port, printed on the ready line.
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// Send every HTTP request to this address (a mock server), whatever host the
    /// client's URL names; without it each URL's own host and port are used.
    #[arg(long, value_name = "ADDR")]
    route_all_to: Option<SocketAddr>,
    /// Seed of the model's random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Set a Profile field (see `bitsim flavors`), e.g. cmdline_fallback=...;
    /// applies to both services' profiles (BITS's and DO's).
    #[arg(long = "profile-field", value_name = "NAME=VALUE")]
    profile_field: Vec<String>,
    /// Windows: while the server runs, the current user's BITS activations
    /// reach it (HKCU TreatAs; other users and HKLM untouched). Removed on
    /// exit; after a crash, at the next activation (docs/com-facade.md).
    #[arg(long, conflicts_with = "uninstall")]
    install: bool,
    /// Windows: remove the per-user override left by --install, and exit.
    #[arg(long)]
    uninstall: bool,
    /// Set by the override's LocalServer32 entry: started by COM activation.
    #[arg(long, hide = true)]
    activated: bool,
}

/// COM appends `-Embedding` (or `/Embedding`) when it starts a LocalServer32:
/// not a flag of ours, so it is dropped before parsing.
pub fn strip_embedding(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.filter(|a| {
        let s = a.to_string_lossy();
        !(s.eq_ignore_ascii_case("-Embedding") || s.eq_ignore_ascii_case("/Embedding"))
    })
    .collect()
}

#[cfg(windows)]
pub fn run(args: ComServerArgs) -> anyhow::Result<()> {
    use anyhow::anyhow;
    let overrides =
        bitsim_explore::Overrides::parse(&args.profile_field).map_err(|e| anyhow!("--profile-field: {e}"))?;
    // One driver per service: BITS, and DO (a separate service on Windows:
    // its own jobs, clock and notification slots), each with its flavor's
    // profile and the same overrides.
    let config = |flavor: bitsim_model::Flavor, trace: Option<PathBuf>| {
        let mut driver = bitsim_com::driver::DriverConfig::new(flavor);
        driver.profile = overrides.profile(flavor);
        driver.time_scale = args.time_scale;
        driver.trace = trace;
        driver.route_all_to = args.route_all_to;
        driver.seed = args.seed;
        driver.user = std::env::var("USERNAME").unwrap_or_else(|_| "user".into());
        driver
    };
    let driver = config(bitsim_model::Flavor::Bits, args.trace.clone());
    let delivery_optimization =
        (!args.no_do).then(|| config(bitsim_model::Flavor::DeliveryOptimization, args.trace_do.clone()));
    // Removal covers DO's entries whatever --no-do says (an override written
    // by a server that served DO).
    let clsids = bitsim_com::override_map(true);
    if args.uninstall {
        let n = bitsim_com::install::uninstall(&clsids);
        println!("removed {n} registry key(s) of the per-user override");
        return Ok(());
    }
    if args.activated {
        // Started by COM through the override: the server that installed it
        // registers its classes itself, so this launch only cleans up after a
        // server that is gone.
        match bitsim_com::install::installed_by() {
            Some(pid) if bitsim_com::install::alive(pid) => {}
            _ => {
                bitsim_com::install::uninstall(&clsids);
                eprintln!("bitsim com-server: the server that installed the override is gone; override removed");
            }
        }
        std::process::exit(1);
    }
    let install = match args.install {
        true => {
            let exe = std::env::current_exe()?;
            Some(format!("\"{}\" com-server --activated", exe.display()))
        }
        false => None,
    };
    bitsim_com::run_server(bitsim_com::ServerOptions {
        driver,
        delivery_optimization,
        control: args.control,
        install,
    })
    .map_err(|e| anyhow!("com-server: {e}"))
}

#[cfg(not(windows))]
pub fn run(args: ComServerArgs) -> anyhow::Result<()> {
    let _ = (args.install, args.uninstall, args.activated, args.no_do, args.trace_do);
    anyhow::bail!(
        "com-server registers COM classes: it runs on Windows or under Wine (scripts/wine-com.sh builds bitsim.exe and runs it there)"
    )
}
