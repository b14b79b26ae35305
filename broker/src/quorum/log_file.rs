//! The entry file of the metadata log: frames of `eraftpb::Entry` in index order, appended and
//! fsynced, truncated where an append overwrites a suffix, checked frame by frame at open, and
//! rewritten whole (temporary file, sync, rename, sync directory) when a snapshot compacts it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use raft::eraftpb::Entry;

use super::frame;
use super::QuorumStoreError;

/// The largest entry payload: a metadata record batch is far smaller; a bigger frame is a bug
/// or a torn header.
pub const RECORD_BYTES_MAX: usize = 64 << 20;

/// The file of the log's entries, open for appending.
pub struct LogFile {
    file: File,
    path: PathBuf,
    /// The length of the file: where the next frame goes.
    end: u64,
}

/// What [`LogFile::open`] found: the entries of the whole frames, consecutive, each with the
/// offset of its frame.
pub struct Recovered {
    pub entries: Vec<Entry>,
    pub offsets: Vec<u64>,
}

impl LogFile {
    /// Opens (or creates) `path`, keeps its longest prefix of whole frames whose entries are
    /// consecutive, and cuts the rest off, synced.
    pub fn open(path: &Path) -> Result<(LogFile, Recovered), QuorumStoreError> {
        let io = QuorumStoreError::io;
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("read", path)(e)),
        };
        let (entries, offsets, good) = parse(&bytes, path);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io("open", path))?;
        if good < bytes.len() {
            file.set_len(good as u64).map_err(io("truncate", path))?;
            file.sync_all().map_err(io("sync", path))?;
        }
        let log = LogFile {
            file,
            path: path.to_path_buf(),
            end: good as u64,
        };
        Ok((log, Recovered { entries, offsets }))
    }

    /// Writes a new file at `path` holding `entries` only (synced, renamed over the old one,
    /// directory synced) and opens it; returns the frames' offsets.
    pub fn rewrite(
        path: &Path,
        entries: &[Entry],
    ) -> Result<(LogFile, Vec<u64>), QuorumStoreError> {
        let io = QuorumStoreError::io;
        let (bytes, offsets) = encode_all(entries, path)?;
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
        file.write_all(&bytes).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io("rename", path))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync dir", dir))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io("open", path))?;
        let end = bytes.len() as u64;
        let log = LogFile {
            file,
            path: path.to_path_buf(),
            end,
        };
        Ok((log, offsets))
    }

    /// Writes `entries` from `offset` (the end of the file, or the start of the first frame an
    /// append overwrites: the file is cut there first), synced before it returns; returns the
    /// frames' offsets. Nothing is written or cut if one entry is over the bound.
    pub fn write_from(
        &mut self,
        offset: u64,
        entries: &[Entry],
    ) -> Result<Vec<u64>, QuorumStoreError> {
        let io = QuorumStoreError::io;
        assert!(
            offset <= self.end,
            "write at {offset} past the end {}",
            self.end
        );
        let (bytes, mut offsets) = encode_all(entries, &self.path)?;
        for frame_offset in &mut offsets {
            *frame_offset += offset;
        }
        if offset < self.end {
            self.file
                .set_len(offset)
                .map_err(io("truncate", &self.path))?;
            self.end = offset;
        }
        // The file is opened without O_APPEND: write where the log now ends.
        std::os::unix::fs::FileExt::write_all_at(&self.file, &bytes, offset)
            .map_err(io("write", &self.path))?;
        // fdatasync covers the length change too: the entries are durable when it returns.
        self.file.sync_data().map_err(io("sync", &self.path))?;
        self.end = offset + bytes.len() as u64;
        Ok(offsets)
    }

    /// The file's length in bytes: what a snapshot would reclaim.
    pub fn bytes(&self) -> u64 {
        self.end
    }
}

/// The frames of `entries`, and the offset of each in the returned bytes.
fn encode_all(entries: &[Entry], path: &Path) -> Result<(Vec<u8>, Vec<u64>), QuorumStoreError> {
    let mut bytes = Vec::new();
    let mut offsets = Vec::with_capacity(entries.len());
    for entry in entries {
        offsets.push(bytes.len() as u64);
        frame::encode(entry, RECORD_BYTES_MAX, &mut bytes)
            .map_err(QuorumStoreError::encoding(path, RECORD_BYTES_MAX))?;
    }
    Ok((bytes, offsets))
}

/// The entries of the longest prefix of whole, consecutive frames, their offsets, and the
/// length of that prefix. What follows is a torn tail (a crash mid-append) or corruption;
/// either way the entries after it cannot be trusted without the ones before.
fn parse(bytes: &[u8], path: &Path) -> (Vec<Entry>, Vec<u64>, usize) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut offsets = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (entry, len) = match frame::decode::<Entry>(&bytes[at..], RECORD_BYTES_MAX) {
            Ok(found) => found,
            Err(torn) => {
                warn_cut(path, at, bytes.len(), torn.reason());
                break;
            }
        };
        let expected = entries.last().map(|e| e.index + 1);
        if entry.index == 0 || expected.is_some_and(|next| entry.index != next) {
            warn_cut(path, at, bytes.len(), "an entry out of sequence");
            break;
        }
        offsets.push(at as u64);
        entries.push(entry);
        at += len;
    }
    (entries, offsets, at)
}

fn warn_cut(path: &Path, at: usize, len: usize, reason: &str) {
    tracing::warn!(
        "metadata log {}: {reason} at byte {at}: recovery truncated {} bytes",
        path.display(),
        len - at
    );
}
