//! [`DiskStorage`]: raft-rs's [`Storage`] over the files of the metadata log directory (see the
//! module doc of [`super`] for the files and when a caller may block on them).
//!
//! The entries after the snapshot are also held in memory, so the trait's reads never touch the
//! disk: the metadata log is small, and the controller keeps it so by taking snapshots (see
//! [`DiskStorage::log_bytes`]).

use std::cmp;
use std::fs;
use std::path::{Path, PathBuf};

use protobuf::Message;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use super::frame;
use super::log_file::{LogFile, RECORD_BYTES_MAX};
use super::QuorumStoreError;
use crate::durable_file;

const LOG_FILE: &str = "log";
const STATE_FILE: &str = "state";
const SNAPSHOT_FILE: &str = "snapshot";
/// The largest snapshot: the whole metadata image (topics, partitions, brokers, configs).
pub const SNAPSHOT_BYTES_MAX: usize = 1 << 30;

/// The metadata log's Raft storage, in one directory.
pub struct DiskStorage {
    dir: PathBuf,
    state: RaftState,
    /// The last snapshot taken or applied; index 0 when there is none.
    snapshot: Snapshot,
    /// The entries after the snapshot's index, consecutive.
    entries: Vec<Entry>,
    /// The offset in `log` of each entry's frame.
    offsets: Vec<u64>,
    log: LogFile,
}

impl DiskStorage {
    /// Opens the storage in `dir` (created if missing): reads the state and the snapshot,
    /// recovers the log (cutting a torn tail), and drops entries the snapshot covers.
    pub fn open(dir: &Path) -> Result<DiskStorage, QuorumStoreError> {
        fs::create_dir_all(dir).map_err(QuorumStoreError::io("create dir", dir))?;
        let mut state = read_state(dir)?;
        let snapshot = read_snapshot(dir)?;
        let log_path = dir.join(LOG_FILE);
        let (log, recovered) = LogFile::open(&log_path)?;
        let mut storage = DiskStorage {
            dir: dir.to_path_buf(),
            state: RaftState::default(),
            snapshot,
            entries: recovered.entries,
            offsets: recovered.offsets,
            log,
        };
        let meta = storage.snapshot.get_metadata().clone();
        // A crash in apply_snapshot after the snapshot was written leaves the state behind it
        // (a leader's snapshot is always past the commit): catch it up as apply_snapshot would.
        if state.hard_state.commit < meta.index {
            state.hard_state.commit = meta.index;
            state.hard_state.term = cmp::max(state.hard_state.term, meta.term);
            state.conf_state = meta.get_conf_state().clone();
        }
        storage.state = state;
        storage.drop_covered_entries()?;
        let last = storage.last_index_now();
        if storage.state.hard_state.commit > last {
            return Err(QuorumStoreError::Corrupt {
                path: log_path,
                reason: format!(
                    "the hard state commits index {} but the log ends at {last}: fsynced \
                     entries are missing",
                    storage.state.hard_state.commit
                ),
            });
        }
        Ok(storage)
    }

    /// Sets the conf state of a new node, before its first start (raft-rs starts with no
    /// voters otherwise). Every voter of a new cluster must be given the same one.
    pub fn initialize_with_conf_state(&mut self, conf: ConfState) -> Result<(), QuorumStoreError> {
        assert!(
            !self.state.initialized() && self.entries.is_empty() && self.snapshot_index() == 0,
            "initialize_with_conf_state on a storage that already holds a log"
        );
        self.set_conf_state(conf)
    }

    /// Appends `entries` (Ready's entries), replacing any suffix from the first one's index,
    /// synced before it returns: only then may the Ready's persisted messages be sent.
    /// Entries a snapshot already covers are skipped.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), QuorumStoreError> {
        let first = self.first_index_now();
        let skip = entries.iter().take_while(|e| e.index < first).count();
        let entries = &entries[skip..];
        let Some(head) = entries.first() else {
            return Ok(());
        };
        assert!(
            head.index <= self.last_index_now() + 1,
            "raft entries must be continuous: the log ends at {}, the append starts at {}",
            self.last_index_now(),
            head.index
        );
        assert!(
            entries.windows(2).all(|w| w[1].index == w[0].index + 1),
            "an append's entries must be consecutive"
        );
        let keep = (head.index - first) as usize;
        let offset = self.offsets.get(keep).copied().unwrap_or(self.log.bytes());
        let offsets = self.log.write_from(offset, entries)?;
        self.entries.truncate(keep);
        self.offsets.truncate(keep);
        self.entries.extend_from_slice(entries);
        self.offsets.extend(offsets);
        Ok(())
    }

    /// Stores the hard state (Ready's `hs`), synced: a vote is never forgotten.
    pub fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), QuorumStoreError> {
        let mut state = self.state.clone();
        state.hard_state = hard_state;
        self.write_state(state)
    }

    /// Stores a new commit index (LightReady's `commit_index`), synced.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), QuorumStoreError> {
        let mut hard_state = self.state.hard_state.clone();
        hard_state.commit = commit;
        self.set_hard_state(hard_state)
    }

    /// Stores the conf state an applied conf change produced, synced.
    pub fn set_conf_state(&mut self, conf: ConfState) -> Result<(), QuorumStoreError> {
        let mut state = self.state.clone();
        state.conf_state = conf;
        self.write_state(state)
    }

    /// Installs a snapshot from the leader (Ready's `snapshot`): its data and metadata are
    /// stored first, then the state, then the log is emptied. Refused when older than what this
    /// node has compacted.
    pub fn apply_snapshot(&mut self, mut snapshot: Snapshot) -> Result<(), raft::Error> {
        let meta = snapshot.get_metadata().clone();
        if meta.index < self.first_index_now() {
            return Err(raft::Error::Store(StorageError::SnapshotOutOfDate));
        }
        self.write_snapshot(&snapshot)?;
        let mut state = self.state.clone();
        state.hard_state.term = cmp::max(state.hard_state.term, meta.term);
        state.hard_state.commit = meta.index;
        state.conf_state = snapshot.mut_metadata().take_conf_state();
        self.snapshot = snapshot;
        self.write_state(state)?;
        self.rewrite_log(Vec::new())?;
        Ok(())
    }

    /// Takes a snapshot at `index` (applied by the caller, so at most the commit index) holding
    /// the state machine's `data` and the stored conf state, then compacts the log: the entries
    /// up to `index` are gone from the file.
    pub fn create_snapshot(&mut self, index: u64, data: Vec<u8>) -> Result<(), raft::Error> {
        let commit = self.state.hard_state.commit;
        assert!(
            index <= commit,
            "snapshot at {index} past the commit index {commit}"
        );
        if index <= self.snapshot_index() {
            return Err(raft::Error::Store(StorageError::SnapshotOutOfDate));
        }
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = self.term(index)?;
        meta.set_conf_state(self.state.conf_state.clone());
        self.write_snapshot(&snapshot)?;
        self.snapshot = snapshot;
        self.drop_covered_entries()?;
        Ok(())
    }

    /// The bytes of the log file.
    #[cfg(test)]
    pub fn log_bytes(&self) -> u64 {
        self.log.bytes()
    }

    pub fn hard_state(&self) -> &HardState {
        &self.state.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.state.conf_state
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn first_index_now(&self) -> u64 {
        self.snapshot_index() + 1
    }

    fn last_index_now(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// Drops the entries up to the snapshot's index from memory and from the file. The entries
    /// after it are kept only if the log holds the snapshot's own entry with its term, or
    /// starts right after it: otherwise they belong to another history.
    fn drop_covered_entries(&mut self) -> Result<(), QuorumStoreError> {
        let meta = self.snapshot.get_metadata();
        let Some(head) = self.entries.first() else {
            return Ok(());
        };
        if head.index > meta.index + 1 {
            return Err(QuorumStoreError::Corrupt {
                path: self.dir.join(LOG_FILE),
                reason: format!(
                    "the log starts at index {} after the snapshot at {}",
                    head.index, meta.index
                ),
            });
        }
        if head.index == meta.index + 1 {
            return Ok(());
        }
        let at = (meta.index - head.index) as usize;
        let kept = match self.entries.get(at) {
            Some(entry) if entry.term == meta.term => self.entries.split_off(at + 1),
            _ => Vec::new(),
        };
        self.rewrite_log(kept)
    }

    fn rewrite_log(&mut self, entries: Vec<Entry>) -> Result<(), QuorumStoreError> {
        let (log, offsets) = LogFile::rewrite(&self.dir.join(LOG_FILE), &entries)?;
        self.log = log;
        self.entries = entries;
        self.offsets = offsets;
        Ok(())
    }

    fn write_state(&mut self, state: RaftState) -> Result<(), QuorumStoreError> {
        let path = self.dir.join(STATE_FILE);
        let mut bytes = Vec::new();
        encode(&state.hard_state, RECORD_BYTES_MAX, &mut bytes, &path)?;
        encode(&state.conf_state, RECORD_BYTES_MAX, &mut bytes, &path)?;
        durable_file::replace_blocking(&self.dir, STATE_FILE, &bytes)?;
        self.state = state;
        Ok(())
    }

    fn write_snapshot(&self, snapshot: &Snapshot) -> Result<(), QuorumStoreError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let mut bytes = Vec::new();
        encode(snapshot, SNAPSHOT_BYTES_MAX, &mut bytes, &path)?;
        durable_file::replace_blocking(&self.dir, SNAPSHOT_FILE, &bytes)?;
        Ok(())
    }
}

impl Storage for DiskStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(self.state.clone())
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first_index_now() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last_index_now() + 1,
            "entries up to {high} asked of a log that ends at {}",
            self.last_index_now()
        );
        let first = self.first_index_now();
        let mut entries = self.entries[(low - first) as usize..(high - first) as usize].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let meta = self.snapshot.get_metadata();
        if index == meta.index {
            return Ok(meta.term);
        }
        if index < self.first_index_now() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self.entries.get((index - self.first_index_now()) as usize) {
            Some(entry) => Ok(entry.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first_index_now())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index_now())
    }

    /// The stored snapshot; when a follower needs a newer one than that, "temporarily
    /// unavailable" until the controller takes one ([`DiskStorage::create_snapshot`]).
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

fn encode<M: Message>(
    message: &M,
    bytes_max: usize,
    out: &mut Vec<u8>,
    path: &Path,
) -> Result<(), QuorumStoreError> {
    frame::encode(message, bytes_max, out).map_err(QuorumStoreError::encoding(path, bytes_max))
}

/// The bytes of `dir/name`, or None when it does not exist yet.
fn read_optional(dir: &Path, name: &str) -> Result<Option<(PathBuf, Vec<u8>)>, QuorumStoreError> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some((path, bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(QuorumStoreError::io("read", &path)(e)),
    }
}

/// Decodes the frame at `bytes[*at..]`; a replaced-whole file is never torn, so a bad frame is
/// corruption.
fn decode_whole<M: Message>(
    bytes: &[u8],
    at: &mut usize,
    bytes_max: usize,
    path: &Path,
) -> Result<M, QuorumStoreError> {
    let (message, len) =
        frame::decode(&bytes[*at..], bytes_max).map_err(|torn| QuorumStoreError::Corrupt {
            path: path.to_path_buf(),
            reason: torn.reason().to_string(),
        })?;
    *at += len;
    Ok(message)
}

fn read_state(dir: &Path) -> Result<RaftState, QuorumStoreError> {
    let Some((path, bytes)) = read_optional(dir, STATE_FILE)? else {
        return Ok(RaftState::default());
    };
    let mut at = 0;
    let hard_state = decode_whole(&bytes, &mut at, RECORD_BYTES_MAX, &path)?;
    let conf_state = decode_whole(&bytes, &mut at, RECORD_BYTES_MAX, &path)?;
    Ok(RaftState::new(hard_state, conf_state))
}

fn read_snapshot(dir: &Path) -> Result<Snapshot, QuorumStoreError> {
    match read_optional(dir, SNAPSHOT_FILE)? {
        Some((path, bytes)) => decode_whole(&bytes, &mut 0, SNAPSHOT_BYTES_MAX, &path),
        None => Ok(Snapshot::default()),
    }
}
