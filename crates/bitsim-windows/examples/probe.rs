//! Smoke test for the Windows / Wine lane (filled in below).

#[cfg(not(windows))]
fn main() {
    eprintln!(
        "probe: this example talks to the Windows BITS service; build it for a Windows target"
    );
    std::process::exit(2);
}

#[cfg(windows)]
fn main() {}
