//! The run's directory: created with a random name and owner-only permissions
//! (so nobody can plant a symlink in it beforehand), removed when the run ends,
//! errs or panics (a drop guard), and on Ctrl-C through [`remove_live_run_dirs`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Run directories that exist now, for the CLI's signal handler.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A run's directory; removed on drop unless [`RunDir::keep`] was called.
#[derive(Debug)]
pub struct RunDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl RunDir {
    /// Creates `scratch` if needed and a fresh `run-XXXXXX` directory in it.
    pub fn new(scratch: &Path) -> std::io::Result<RunDir> {
        let named = |e: std::io::Error, what: &Path| {
            std::io::Error::new(
                e.kind(),
                format!("cannot create run directory in {}: {e}", what.display()),
            )
        };
        std::fs::create_dir_all(scratch).map_err(|e| named(e, scratch))?;
        let mut builder = tempfile::Builder::new();
        builder.prefix("run-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o700));
        }
        let dir = builder.tempdir_in(scratch).map_err(|e| named(e, scratch))?;
        let path = dir.path().to_path_buf();
        live().push(path.clone());
        Ok(RunDir { dir: Some(dir), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory on disk and returns its path.
    pub fn keep(mut self) -> PathBuf {
        if let Some(d) = self.dir.take() {
            let _ = d.keep();
        }
        live().retain(|p| *p != self.path);
        self.path.clone()
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
        live().retain(|p| *p != self.path);
    }
}

/// Removes every run directory that still exists (called on Ctrl-C / SIGTERM,
/// where no destructor runs).
pub fn remove_live_run_dirs() {
    for p in live().drain(..) {
        let _ = std::fs::remove_dir_all(p);
    }
}
