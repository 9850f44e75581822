//! `bitsim diff A B`: compares two runs by their projections (what a real system
//! can reproduce), or two traces line by line. Memory is linear in the two
//! files (Myers' diff); each file may be at most [`MAX_DIFF_INPUT`] bytes.

use bitsim_scenario::{diff, diff_lines, Projection};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// A `.projection.json` (or `.trace`) file.
    pub a: PathBuf,
    /// The file to compare it with.
    pub b: PathBuf,
}

/// Largest file `bitsim diff` reads (256 MiB).
pub const MAX_DIFF_INPUT: u64 = 256 << 20;

/// Returns the exit code: 0 when they agree, 1 when they differ, 2 on bad input.
pub fn run(args: DiffArgs) -> i32 {
    let (a, b) = match (read_input(&args.a), read_input(&args.b)) {
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

/// Reads one side: a regular file (not a FIFO or device) of at most
/// [`MAX_DIFF_INPUT`] bytes, as UTF-8.
fn read_input(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let too_big = || {
        Error::new(
            ErrorKind::InvalidInput,
            format!("larger than {MAX_DIFF_INPUT} bytes (256 MiB), the limit of bitsim diff"),
        )
    };
    if meta.len() > MAX_DIFF_INPUT {
        return Err(too_big());
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_DIFF_INPUT + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_DIFF_INPUT {
        return Err(too_big());
    }
    Ok(text)
}

fn fail(path: &std::path::Path, e: std::io::Error) -> i32 {
    eprintln!("error: {}: {e}", path.display());
    2
}
