//! Small glommio file helpers shared by the engine, each turning failures into a
//! [`StorageError`] that names the operation and the path.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{BufferedFile, DmaBuffer, DmaFile, OpenOptions};

use crate::error::StorageError;

/// Device block: every direct write starts and ends on it.
pub(crate) const BLOCK_BYTES: u64 = 4096;

/// Maps a glommio failure on `path` during `op`.
pub(crate) fn glommio_err(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(glommio::GlommioError<()>) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Glommio {
        op,
        path,
        source: Box::new(source),
    }
}

/// Maps a std I/O failure on `path` during `op`.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { op, path, source }
}

/// Opens a segment file for direct I/O, read and write, creating it when missing.
pub(crate) async fn open_dma_rw(path: &Path) -> Result<DmaFile, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .map_err(glommio_err("open segment", path))
}

/// Opens a segment file for direct-I/O writes that are synced before they complete (`O_DSYNC`):
/// the flusher writes through it while appenders wait for durability.
pub(crate) async fn open_dma_dsync(path: &Path) -> Result<DmaFile, StorageError> {
    OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_DSYNC)
        .dma_open(path)
        .await
        .map_err(glommio_err("open segment", path))
}

/// Opens a segment file for direct-I/O reads.
pub(crate) async fn open_dma_read(path: &Path) -> Result<DmaFile, StorageError> {
    OpenOptions::new()
        .read(true)
        .dma_open(path)
        .await
        .map_err(glommio_err("open segment", path))
}

/// Reads `len` bytes at `position` (any alignment) into memory.
pub(crate) async fn read_exact_at(
    file: &DmaFile,
    path: &Path,
    position: u64,
    len: usize,
) -> Result<Vec<u8>, StorageError> {
    let got = file
        .read_at(position, len)
        .await
        .map_err(glommio_err("read segment", path))?;
    if got.len() != len {
        return Err(StorageError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("short read: {} of {len} bytes at {position}", got.len()),
        });
    }
    Ok(got.to_vec())
}

/// Writes all of `buffer` at `at` (both block-aligned) with one direct write; a short write is
/// an error.
pub(crate) async fn write_all_at(
    file: &DmaFile,
    path: &Path,
    buffer: Rc<DmaBuffer>,
    at: u64,
) -> Result<(), StorageError> {
    let len = buffer.len();
    assert!(
        at.is_multiple_of(BLOCK_BYTES) && (len as u64).is_multiple_of(BLOCK_BYTES),
        "direct writes are aligned"
    );
    let written = file
        .write_rc_at(buffer, at)
        .await
        .map_err(glommio_err("write segment", path))?;
    if written != len {
        return Err(StorageError::Io {
            op: "write segment",
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short write: {written} of {len} bytes at {at}"),
            ),
        });
    }
    Ok(())
}

/// Reads the whole of a small file (a checkpoint, an index, a snapshot), `None` when it does not
/// exist.
pub(crate) async fn read_optional(
    op: &'static str,
    path: &Path,
) -> Result<Option<Vec<u8>>, StorageError> {
    let file = match OpenOptions::new().read(true).buffered_open(path).await {
        Ok(file) => file,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(glommio_err(op, path)(e)),
    };
    let read = read_whole(&file, op, path).await;
    let closed = file.close().await.map_err(glommio_err(op, path));
    let bytes = read?;
    closed?;
    Ok(Some(bytes))
}

/// Reads the whole of a small file that must exist.
pub(crate) async fn read_file(op: &'static str, path: &Path) -> Result<Vec<u8>, StorageError> {
    read_optional(op, path)
        .await?
        .ok_or_else(|| StorageError::Io {
            op,
            path: path.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        })
}

async fn read_whole(
    file: &BufferedFile,
    op: &'static str,
    path: &Path,
) -> Result<Vec<u8>, StorageError> {
    let size = file.file_size().await.map_err(glommio_err(op, path))?;
    let len = usize::try_from(size).map_err(|_| StorageError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("{size} bytes do not fit in memory"),
    })?;
    let bytes = file.read_at(0, len).await.map_err(glommio_err(op, path))?;
    if bytes.len() != len {
        return Err(StorageError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("short read: {} of {len} bytes", bytes.len()),
        });
    }
    Ok(bytes.to_vec())
}

/// The size of the file at `path`.
pub(crate) async fn file_size(op: &'static str, path: &Path) -> Result<u64, StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .buffered_open(path)
        .await
        .map_err(glommio_err(op, path))?;
    let size = file.file_size().await.map_err(glommio_err(op, path));
    let closed = file.close().await.map_err(glommio_err(op, path));
    let size = size?;
    closed?;
    Ok(size)
}

/// Creates `dir` (and its parents) when missing and lists it: each entry's path and name (empty
/// when not UTF-8).
///
/// glommio has neither an asynchronous `readdir` nor `mkdir -p`, and this runs on a live shard
/// when CreateTopics opens a log: the blocking calls go to the executor's blocking-thread pool,
/// all in one trip, and the shard awaits them.
pub(crate) async fn create_and_list_dir(
    dir: &Path,
) -> Result<Vec<(PathBuf, String)>, StorageError> {
    let owned = dir.to_path_buf();
    glommio::executor()
        .spawn_blocking(move || -> Result<Vec<(PathBuf, String)>, StorageError> {
            let dir = owned.as_path();
            std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
            let mut found = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(io_err("list directory", dir))? {
                let path = entry.map_err(io_err("list directory", dir))?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                found.push((path, name));
            }
            Ok(found)
        })
        .await
}

/// Writes `bytes` to `path` atomically: a temporary file is written, synced and renamed over it.
pub(crate) async fn write_file_atomic(path: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
    let tmp = tmp_path(path);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(&tmp)
        .await
        .map_err(glommio_err("create", &tmp))?;
    let result = write_all_sync(&file, &tmp, bytes).await;
    let closed = file.close().await.map_err(glommio_err("close", &tmp));
    result?;
    closed?;
    glommio::io::rename(&tmp, path)
        .await
        .map_err(glommio_err("rename", path))
}

async fn write_all_sync(
    file: &BufferedFile,
    path: &Path,
    bytes: Vec<u8>,
) -> Result<(), StorageError> {
    let len = bytes.len();
    if len > 0 {
        let written = file
            .write_at(bytes, 0)
            .await
            .map_err(glommio_err("write", path))?;
        if written != len {
            return Err(StorageError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("short write: {written} of {len} bytes"),
            });
        }
    }
    file.fdatasync().await.map_err(glommio_err("sync", path))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The suffix a segment file takes while it is being deleted; recovery removes such leftovers.
pub(crate) const DELETED_SUFFIX: &str = ".deleted";

/// How much of a file one step of [`remove_gradually`] frees, and the pause after each step.
const SHRINK_STEP_BYTES: u64 = 8 << 20;
const SHRINK_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// Removes a large file a little at a time: renamed aside first (so a crash half-way leaves
/// nothing recovery would read), then cut from the end in steps, then unlinked.
///
/// Freeing a whole segment at once makes one journal commit free (and, on filesystems mounted
/// with `discard`, discard) hundreds of megabytes, and every append's write and sync waits for
/// that commit: tens of milliseconds of stall per deleted 128 MiB on the development VM. Small
/// steps spread that cost thinly.
pub(crate) async fn remove_gradually(path: &Path) -> Result<(), StorageError> {
    let mut doomed = path.as_os_str().to_owned();
    doomed.push(DELETED_SUFFIX);
    let doomed = PathBuf::from(doomed);
    match glommio::io::rename(path, &doomed).await {
        Ok(()) => {}
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(glommio_err("rename for deletion", path)(e)),
    }
    let file = glommio::io::OpenOptions::new()
        .write(true)
        .dma_open(&doomed)
        .await
        .map_err(glommio_err("open for deletion", &doomed))?;
    let mut size = file
        .file_size()
        .await
        .map_err(glommio_err("size for deletion", &doomed))?;
    while size > SHRINK_STEP_BYTES {
        size -= SHRINK_STEP_BYTES;
        file.truncate(size)
            .await
            .map_err(glommio_err("shrink for deletion", &doomed))?;
        glommio::timer::sleep(SHRINK_PAUSE).await;
    }
    file.close()
        .await
        .map_err(glommio_err("close for deletion", &doomed))?;
    remove_file(&doomed).await
}

/// Removes a file, ignoring one that is already gone.
pub(crate) async fn remove_file(path: &Path) -> Result<(), StorageError> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(glommio_err("remove", path)(e)),
    }
}

/// Removes a file; `false` when there was none.
pub(crate) async fn remove_if_present(path: &Path) -> Result<bool, StorageError> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(glommio_err("remove", path)(e)),
    }
}

fn is_not_found(e: &glommio::GlommioError<()>) -> bool {
    match e {
        glommio::GlommioError::IoError(source)
        | glommio::GlommioError::EnhancedIoError { source, .. } => {
            source.kind() == std::io::ErrorKind::NotFound
        }
        _ => false,
    }
}

/// Syncs a directory so that created, renamed or removed names in it survive a crash.
pub(crate) async fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    // glommio 0.9 opens directories with `openat(-1, …)`, not `AT_FDCWD`: a relative path fails
    // with EBADF (files it resolves itself). `absolute` only reads the working directory.
    let dir = &std::path::absolute(dir).map_err(io_err("resolve directory", dir))?;
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(glommio_err("open directory", dir))?;
    d.sync().await.map_err(glommio_err("sync directory", dir))?;
    d.close().await.map_err(glommio_err("close directory", dir))
}

thread_local! {
    static IOPOLL_PROBED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes glommio probe the device's polled-I/O support with a non-empty file, once per thread.
///
/// glommio 0.9 decides whether a device takes polled I/O by reading a block of the first DMA
/// file opened on each thread. When that file is empty (a fresh segment), the read succeeds
/// with 0 bytes whatever the device supports, the device is marked pollable, and every later
/// direct read on it fails with EOPNOTSUPP (seen on virtio disks). A 4 KiB file read first gives
/// the true answer. The probe file is written through a buffered file: opening it with direct
/// I/O would be the probe, on an empty file.
pub(crate) async fn probe_iopoll_once(dir: &Path) -> Result<(), StorageError> {
    if IOPOLL_PROBED.with(|p| p.get()) {
        return Ok(());
    }
    let path = dir.join(".dma-probe");
    write_probe(&path).await?;
    let probed = open_dma_read(&path).await;
    let removed = remove_file(&path).await;
    probed?
        .close()
        .await
        .map_err(glommio_err("close probe file", &path))?;
    removed?;
    IOPOLL_PROBED.with(|p| p.set(true));
    Ok(())
}

async fn write_probe(path: &Path) -> Result<(), StorageError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(path)
        .await
        .map_err(glommio_err("create probe file", path))?;
    let written = file
        .write_at(vec![0u8; BLOCK_BYTES as usize], 0)
        .await
        .map_err(glommio_err("write probe file", path));
    let closed = file
        .close()
        .await
        .map_err(glommio_err("close probe file", path));
    let written = written?;
    if written != BLOCK_BYTES as usize {
        return Err(StorageError::Io {
            op: "write probe file",
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short write: {written} of {BLOCK_BYTES} bytes"),
            ),
        });
    }
    closed
}
