//! Keeps every file the simulator touches inside the run's directory
//! ([`LocalFiles::Confined`]), unless the caller says so explicitly
//! ([`LocalFiles::Anywhere`], the COM facade). Scenario
//! paths are already relative and free of `..` (checked at load time, see
//! `bitsim_scenario::validate`); at execution time this also refuses to follow
//! a symlink anywhere below the run's directory, so a planted link cannot
//! redirect a write or reveal whether a file outside exists.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Largest local file the simulator reads whole (an upload's source): 256 MiB,
/// the `write_file` cap.
pub const MAX_LOCAL_READ: u64 = 256 << 20;

/// Where the simulator may touch local files. Explicit, so that no caller gets
/// "anywhere" by passing an empty path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalFiles {
    /// Inside this directory only, never through a symlink below it: every
    /// scenario run (bitsim runs other people's files).
    Confined(PathBuf),
    /// Wherever the client's paths say, as real BITS does: the COM facade, which
    /// runs the user's own program on the user's own machine. Names the
    /// simulator makes up (a reply file without a name) resolve against the
    /// working directory.
    Anywhere,
}

impl LocalFiles {
    /// The directory names are resolved against (empty for [`LocalFiles::Anywhere`]).
    pub fn dir(&self) -> &Path {
        match self {
            LocalFiles::Confined(dir) => dir,
            LocalFiles::Anywhere => Path::new(""),
        }
    }

    /// `Ok` when `path` may be touched (see [`check`]).
    pub fn check(&self, path: &Path) -> io::Result<()> {
        match self {
            LocalFiles::Confined(root) => check(root, path),
            LocalFiles::Anywhere => Ok(()),
        }
    }

    /// [`LocalFiles::check`], and the metadata of `path` (`None`: it does not exist).
    pub fn metadata(&self, path: &Path) -> io::Result<Option<std::fs::Metadata>> {
        match self {
            LocalFiles::Confined(root) => metadata(root, path),
            LocalFiles::Anywhere => match std::fs::metadata(path) {
                Ok(m) => Ok(Some(m)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Reads a local file whole, if it may be touched and is a regular file of at
    /// most [`MAX_LOCAL_READ`] bytes.
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.check(path)?;
        read_regular(path)
    }
}

/// `Ok` when `path` is inside `root` and no component below `root` is a symlink.
pub fn check(root: &Path, path: &Path) -> io::Result<()> {
    metadata(root, path).map(|_| ())
}

/// [`check`], and what it learnt on the way: the metadata of `path` itself
/// (`None` when it does not exist), so a caller that wants it asks the file
/// system once, not twice.
pub fn metadata(root: &Path, path: &Path) -> io::Result<Option<std::fs::Metadata>> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| refuse(path, "is outside the run's directory"))?;
    let mut here = root.to_path_buf();
    let mut last = None;
    for c in rel.components() {
        match c {
            Component::Normal(part) => here.push(part),
            Component::CurDir => continue,
            _ => return Err(refuse(path, "leaves the run's directory")),
        }
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => return Err(refuse(path, "goes through a symlink")),
            Ok(m) => last = Some(m),
            // Nothing further down exists yet: nothing to follow.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    match last {
        Some(m) => Ok(Some(m)),
        // `path` is `root` itself.
        None => std::fs::metadata(root).map(Some),
    }
}

/// A regular file of at most [`MAX_LOCAL_READ`] bytes, read whole.
fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() || meta.len() > MAX_LOCAL_READ {
        return Err(refuse(path, "is not a regular file of at most 256 MiB"));
    }
    std::fs::read(path)
}

fn refuse(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("{}: {why}", path.display()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn symlinks_and_outside_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("/tmp", root.join("link")).unwrap();
        assert!(check(root, &root.join("sub/new.bin")).is_ok());
        assert!(check(root, &root.join("link/x")).is_err());
        assert!(check(root, &root.join("link")).is_err());
        assert!(check(root, Path::new("/etc/passwd")).is_err());
        assert!(check(root, &root.join("../x")).is_err());
        // What it learnt on the way: a file, a missing file, a refused link.
        std::fs::write(root.join("sub/f.bin"), b"abc").unwrap();
        assert_eq!(
            metadata(root, &root.join("sub/f.bin")).unwrap().map(|m| m.len()),
            Some(3)
        );
        assert!(metadata(root, &root.join("sub/none.bin")).unwrap().is_none());
        assert!(metadata(root, &root.join("link/x")).is_err());
        // Confinement is a value, never an empty path: only `Anywhere` lets a path
        // outside through.
        let confined = LocalFiles::Confined(root.to_path_buf());
        assert!(confined.check(Path::new("/etc/passwd")).is_err());
        assert!(LocalFiles::Confined(PathBuf::new())
            .check(Path::new("/etc/passwd"))
            .is_err());
        assert!(LocalFiles::Anywhere.check(Path::new("/etc/passwd")).is_ok());
        assert_eq!(confined.read(&root.join("sub/f.bin")).unwrap(), b"abc");
    }
}
