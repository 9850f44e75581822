//! `bitsim`: the command-line front end.
//!
//! Subcommands arrive with the crates that implement them; see the README.

use clap::{Parser, Subcommand};

mod serve;

/// Simulator and conformance harness for Windows BITS and Delivery Optimization.
#[derive(Debug, Parser)]
#[command(name = "bitsim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the model's flavors (BITS, DO) and their profile fields.
    Flavors,
    /// Run the mock BITS download/upload server (fault plans) on a TCP port.
    Serve(serve::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Flavors) => {
            for flavor in bitsim_model::Flavor::ALL {
                println!("{flavor:?}");
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
