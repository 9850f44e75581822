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
        create_private(scratch).map_err(|e| named(e, scratch))?;
        let mut builder = tempfile::Builder::new();
        builder.prefix("run-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o700));
        }
        let dir = builder.tempdir_in(scratch).map_err(|e| named(e, scratch))?;
        check_parent(scratch, dir.path()).map_err(|e| named(e, scratch))?;
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

/// Creates `scratch` if needed, owner-only on unix.
fn create_private(scratch: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(scratch)
}

/// The directory holding run directories must be one nobody else can rename
/// entries in: owned by us and writable only by us, or owned by root with the
/// sticky bit (like `/tmp`). Otherwise whoever owns a predictable
/// `$TMPDIR/bitsim-runs` could swap our run directory for a symlink between
/// two writes, and every confined path below it would follow the link.
#[cfg(unix)]
fn check_parent(scratch: &Path, ours: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let parent = std::fs::symlink_metadata(scratch)?;
    let me = std::fs::symlink_metadata(ours)?.uid();
    let mut mode = parent.mode();
    if parent.file_type().is_dir() && parent.uid() == me && mode & 0o022 != 0 {
        // Ours, but made under a umask of 002: tighten it rather than refuse.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(scratch, std::fs::Permissions::from_mode(0o700))?;
        mode = 0o700;
    }
    let safe = parent.file_type().is_dir()
        && ((parent.uid() == me && mode & 0o022 == 0) || (parent.uid() == 0 && mode & 0o1000 != 0));
    if safe {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is a symlink, not ours, or writable by others (mode {:o}, owner {}): \
                 another user could replace the run directory; remove it or use another TMPDIR",
                scratch.display(),
                mode & 0o7777,
                parent.uid()
            ),
        ))
    }
}

#[cfg(not(unix))]
fn check_parent(_: &Path, _: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Removes every run directory that still exists (called on Ctrl-C / SIGTERM,
/// where no destructor runs).
pub fn remove_live_run_dirs() {
    for p in live().drain(..) {
        let _ = std::fs::remove_dir_all(p);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Issue 13: a run directory under a parent someone else controls (here a
    /// symlink to it) is refused, and leaves nothing behind.
    #[test]
    fn a_parent_others_control_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = RunDir::new(&link).unwrap_err().to_string();
        assert!(e.contains("another user could replace the run directory"), "{e}");
        assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
        // Our own parent, group-writable (umask 002), is tightened and used.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o775)).unwrap();
        let run = RunDir::new(&real).unwrap();
        assert!(run.path().starts_with(&real));
        let mode = std::fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    /// A parent owned by another user (root can test this) is refused.
    #[test]
    fn a_parent_owned_by_someone_else_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let theirs = base.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o1777)).unwrap();
        if std::os::unix::fs::chown(&theirs, Some(65534), None).is_err() {
            return; // not root: cannot make a directory someone else owns
        }
        let e = RunDir::new(&theirs).unwrap_err().to_string();
        assert!(e.contains("not ours"), "{e}");
    }
}
