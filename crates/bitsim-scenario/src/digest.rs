//! SHA-256 of local files, to compare a download's content with what the server
//! sent without holding either in memory.

use sha2::{Digest, Sha256};
use std::io::Read;

/// The SHA-256 of a file, read in 64 KiB pieces.
pub fn file_sha256(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
