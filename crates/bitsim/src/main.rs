//! `bitsim`: the command-line front end.
//!
//! Subcommands arrive with the crates that implement them; see the README.

// The allocator: explore's generated runs allocate and free a lot (see docs/explore.md, Speed).
#[cfg(not(windows))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

mod com_server;
mod conform;
mod diff;
mod explore;
mod run;
mod serve;

/// Simulator and conformance harness for Windows BITS and Delivery Optimization.
#[derive(Debug, Parser)]
#[command(name = "bitsim", version, about, long_about = None)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the model's flavors (BITS, DO) and their profile fields.
    Flavors,
    /// Run scenarios on the simulator, in virtual time.
    Run(run::RunArgs),
    /// Print the JSON Schema of scenario files (or of server plans with --plan).
    Schema {
        /// The fault-plan schema instead of the scenario schema.
        #[arg(long)]
        plan: bool,
    },
    /// Run scenarios against the real BITS / DO service (Windows, or Wine) and diff
    /// each against the model.
    Conform(conform::ConformArgs),
    /// Compare two runs (projection files, or traces).
    Diff(diff::DiffArgs),
    /// Run the mock BITS download/upload server (fault plans) on a TCP port.
    Serve(serve::ServeArgs),
    /// Generate scenarios, check the model's invariants (and compare with another
    /// backend), and write each problem, shrunk, as a scenario file.
    Explore(explore::ExploreArgs),
    /// Serve BITS's own COM API from the model (Windows or Wine), so unchanged
    /// client programs run against it in scaled time.
    ComServer(com_server::ComServerArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse_from(com_server::strip_embedding(std::env::args_os()));
    init_logging(cli.verbose);
    match cli.command {
        Some(Command::Run(args)) => std::process::exit(run::run(args)),
        Some(Command::Diff(args)) => std::process::exit(diff::run(args)),
        Some(Command::Conform(args)) => std::process::exit(conform::run(args)),
        Some(Command::Explore(args)) => std::process::exit(explore::run(args)),
        Some(Command::Schema { plan }) => {
            let schema = if plan {
                bitsim_server::Plan::json_schema()
            } else {
                bitsim_scenario::scenario_schema()
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(())
        }
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::ComServer(args)) => com_server::run(args),
        Some(Command::Flavors) => {
            for flavor in bitsim_model::Flavor::ALL {
                println!("{flavor:?}");
            }
            println!();
            println!("Profile fields --profile-field NAME=VALUE can set:");
            for (name, takes) in bitsim_model::Profile::settable_fields() {
                println!("  {name:<42} {takes}");
            }
            Ok(())
        }
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            println!();
            Ok(())
        }
    }
}

/// Logs go to stderr through `tracing`, apart from the trace (the reviewable record).
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
