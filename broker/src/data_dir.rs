//! The data directory, checked before any shard starts: created if missing, made absolute, locked
//! against a second broker, and proven writable the way the logs write (a direct-I/O block
//! written, synced and removed). A directory that fails stops the start with a message that says
//! what to do, instead of a broker that serves and then refuses every append.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The lock file: held (`flock`) for the life of the process.
pub const LOCK_FILE: &str = ".lock";

/// The probe file written and removed at start.
const PROBE_FILE: &str = ".odradek-probe";

/// The block the probe writes: the logs' direct-I/O alignment.
const PROBE_BYTES: usize = 4096;

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{op} {path}: {source}{hint}", hint = hint(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the data directory {path} is in use by another odradek (it holds {LOCK_FILE}): stop it, \
         or give this one another --data-dir"
    )]
    Locked { path: PathBuf },
    #[error(
        "the data directory {path} does not take direct I/O (O_DIRECT: {source}); odradek writes \
         its logs with it: use a directory on ext4 or xfs (tmpfs takes it from Linux 6.6 only; \
         most FUSE and network filesystems never)"
    )]
    NoDirectIo {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What an operator can do about an I/O error.
fn hint(error: &std::io::Error) -> &'static str {
    match error.raw_os_error() {
        Some(nix::libc::EACCES) | Some(nix::libc::EPERM) => {
            ": the user running odradek needs write access to it (or pick another --data-dir)"
        }
        Some(nix::libc::EROFS) => ": the filesystem is read-only",
        Some(nix::libc::ENOSPC) | Some(nix::libc::EDQUOT) => ": the device is full",
        Some(nix::libc::ENOTDIR) | Some(nix::libc::EEXIST) => ": the path is not a directory",
        _ => "",
    }
}

/// The checked data directory; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDir {
    /// Absolute (glommio opens directories by absolute path only; see `storage::fileio`).
    pub path: PathBuf,
    _lock: File,
}

/// Creates, resolves, locks and probes `path`. Blocking: runs before any executor starts.
pub fn prepare(path: &Path) -> Result<DataDir, DataDirError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| DataDirError::Io { op, path, source }
    };
    std::fs::create_dir_all(path).map_err(io("create the data directory", path))?;
    let path = std::fs::canonicalize(path).map_err(io("resolve the data directory", path))?;
    let lock = lock(&path)?;
    probe(&path)?;
    Ok(DataDir { path, _lock: lock })
}

fn lock(dir: &Path) -> Result<File, DataDirError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DataDirError::Io {
            op: "open the lock file",
            path: path.clone(),
            source,
        })?;
    // SAFETY: flock on a descriptor this function owns; it has no memory effects.
    let locked =
        unsafe { nix::libc::flock(file.as_raw_fd(), nix::libc::LOCK_EX | nix::libc::LOCK_NB) };
    if locked == 0 {
        return Ok(file);
    }
    let source = std::io::Error::last_os_error();
    if source.kind() == ErrorKind::WouldBlock {
        return Err(DataDirError::Locked {
            path: dir.to_path_buf(),
        });
    }
    Err(DataDirError::Io {
        op: "lock",
        path,
        source,
    })
}

/// Writes one aligned block with O_DIRECT, syncs it, and removes the file again.
fn probe(dir: &Path) -> Result<(), DataDirError> {
    let path = dir.join(PROBE_FILE);
    let io = |op: &'static str| {
        let path = path.clone();
        move |source| DataDirError::Io { op, path, source }
    };
    let opened = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(nix::libc::O_DIRECT)
        .open(&path);
    let file = match opened {
        Ok(file) => file,
        Err(source) if source.raw_os_error() == Some(nix::libc::EINVAL) => {
            return Err(DataDirError::NoDirectIo {
                path: dir.to_path_buf(),
                source,
            })
        }
        Err(source) => return Err(io("create a probe file")(source)),
    };
    let written = write_aligned_block(&file);
    let synced = written.and_then(|()| file.sync_data());
    drop(file);
    let removed = std::fs::remove_file(&path);
    match synced {
        Err(source) if source.raw_os_error() == Some(nix::libc::EINVAL) => {
            return Err(DataDirError::NoDirectIo {
                path: dir.to_path_buf(),
                source,
            })
        }
        other => other.map_err(io("write and sync a probe block"))?,
    }
    removed.map_err(io("remove the probe file"))
}

fn write_aligned_block(file: &File) -> std::io::Result<()> {
    let layout = std::alloc::Layout::from_size_align(PROBE_BYTES, PROBE_BYTES)
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
    // SAFETY: the layout has a non-zero size; the block is zeroed before it is read, and freed
    // with the same layout below.
    let block = unsafe { std::alloc::alloc_zeroed(layout) };
    if block.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `block` points to PROBE_BYTES initialised bytes that nothing else aliases.
    let bytes = unsafe { std::slice::from_raw_parts(block, PROBE_BYTES) };
    let written = file.write_all_at(bytes, 0);
    // SAFETY: allocated above with this layout, and `bytes` is not used past this point.
    unsafe { std::alloc::dealloc(block, layout) };
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_missing_nested_directory_when_prepared_should_create_it_absolute_and_leave_no_probe()
    {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = prepare(&tmp.path().join("a/b")).expect("prepare");
        assert!(dir.path.is_absolute());
        assert!(dir.path.ends_with("a/b"));
        assert!(!dir.path.join(PROBE_FILE).exists());
        assert!(dir.path.join(LOCK_FILE).exists());
    }

    #[test]
    fn given_a_directory_in_use_when_prepared_again_should_refuse_until_released() {
        let tmp = tempfile::tempdir().expect("tmp");
        let first = prepare(tmp.path()).expect("first");
        let second = prepare(tmp.path());
        assert!(
            matches!(second, Err(DataDirError::Locked { .. })),
            "{second:?}"
        );
        drop(first);
        prepare(tmp.path()).expect("after release");
    }

    #[test]
    fn given_a_file_where_the_directory_should_be_when_prepared_should_say_so() {
        let tmp = tempfile::tempdir().expect("tmp");
        let file = tmp.path().join("plain");
        std::fs::write(&file, b"x").expect("write");
        let error = prepare(&file).expect_err("a file is no data directory");
        assert!(error.to_string().contains("not a directory"), "{error}");
    }
}
