//! `bitsim diff A B`: compares two runs by their projections (what a real system
//! can reproduce), or two traces line by line.

use bitsim_scenario::{diff, diff_lines, Projection};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// A `.projection.json` (or `.trace`) file.
    pub a: PathBuf,
    /// The file to compare it with.
    pub b: PathBuf,
}

/// Returns the exit code: 0 when they agree, 1 when they differ, 2 on bad input.
pub fn run(args: DiffArgs) -> i32 {
    let (a, b) = match (std::fs::read_to_string(&args.a), std::fs::read_to_string(&args.b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) => return fail(&args.a, e),
        (_, Err(e)) => return fail(&args.b, e),
    };
    let lines = match (
        serde_json::from_str::<Projection>(&a),
        serde_json::from_str::<Projection>(&b),
    ) {
        (Ok(pa), Ok(pb)) => diff(&pa, &pb),
        _ => {
            let la: Vec<String> = a.lines().map(str::to_string).collect();
            let lb: Vec<String> = b.lines().map(str::to_string).collect();
            diff_lines(&la, &lb)
        }
    };
    if lines.is_empty() {
        println!("match");
        0
    } else {
        println!("--- {}\n+++ {}", args.a.display(), args.b.display());
        for l in &lines {
            println!("{l}");
        }
        println!("differs ({} lines)", lines.len());
        1
    }
}

fn fail(path: &std::path::Path, e: std::io::Error) -> i32 {
    eprintln!("error: {}: {e}", path.display());
    2
}
