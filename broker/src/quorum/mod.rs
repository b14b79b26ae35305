//! The metadata quorum's durable state: the Raft log, hard state and snapshots of the metadata
//! log that raft-rs (TiKV's `raft` crate) replicates between the controllers (ARCHITECTURE.md,
//! "Cluster"). raft-rs is a pure state machine; [`storage::DiskStorage`] is what it reads
//! through [`raft::Storage`] and what the controller's Ready loop writes before it sends a
//! message: entries, votes and commits are fsynced before [`storage::DiskStorage::append`] or
//! [`storage::DiskStorage::set_hard_state`] returns, as Raft requires.
//!
//! Blocking: every write here is plain `std::fs` plus fsync (milliseconds on a disk). A shard
//! must not block, so the controller task on shard 0 calls the writing methods through glommio's
//! blocking pool (`glommio::executor().spawn_blocking`), handing the storage over and back; the
//! reads of the [`raft::Storage`] trait are served from memory and never touch the disk.
//!
//! Files, in `<data-dir>/__cluster_metadata-0/` (Kafka's name for its metadata log directory):
//! - `log`: the entries after the snapshot, one frame each (see [`frame`]), in index order.
//!   Appends are fsynced; a conflicting append truncates the file to the overwritten entry
//!   first. At open, frames are checked one by one and the file is cut at the first torn or
//!   corrupt one (the tail of a crash mid-append).
//! - `state`: the hard state (term, vote, commit) and the conf state, two frames, replaced whole
//!   and crash-safely ([`crate::durable_file`]).
//! - `snapshot`: the last snapshot (metadata and the application's data), one frame, replaced
//!   whole the same way. Taking one rewrites `log` without the entries it covers (a new file
//!   synced and renamed over the old), so the log stays bounded.
//!
//! Every step leaves files that open consistently after a crash: entries a snapshot covers are
//! dropped at open, and the hard state's commit is raised to the snapshot's index.
//!
//! Layout: [`frame`]: the framing every file uses; [`log_file`]: the entry file (append,
//! truncate, recover, rewrite); [`storage`]: the [`raft::Storage`] type.

pub mod boot;
pub mod frame;
pub mod image;
mod leadership;
pub mod log_file;
pub mod node;
pub mod start;
pub mod storage;
#[cfg(test)]
mod storage_tests;
pub mod transport;

use std::path::PathBuf;

/// The directory of the metadata log in the data directory (Kafka's `__cluster_metadata-0`).
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// An operating error of the quorum's storage, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum QuorumStoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Replace(#[from] crate::durable_file::FileError),
    #[error("{path}: a record of {bytes} bytes is over the bound of {bytes_max}")]
    TooLarge {
        path: PathBuf,
        bytes: usize,
        bytes_max: usize,
    },
    #[error("encode a record for {path}: {source}")]
    Encode {
        path: PathBuf,
        source: protobuf::ProtobufError,
    },
    #[error(
        "{path} is corrupt ({reason}); this node's metadata log cannot be trusted: remove the \
         directory only if a majority of the other voters is healthy, it then catches up from \
         the leader"
    )]
    Corrupt { path: PathBuf, reason: String },
}

impl QuorumStoreError {
    /// A closure for `map_err` that adds the operation and the path to an I/O error.
    pub(crate) fn io(
        op: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { op, path, source }
    }

    /// A closure for `map_err` that says which file a refused record was meant for.
    pub(crate) fn encoding(
        path: &std::path::Path,
        bytes_max: usize,
    ) -> impl FnOnce(frame::EncodeError) -> Self {
        let path = path.to_path_buf();
        move |error| match error {
            frame::EncodeError::TooLarge { bytes } => Self::TooLarge {
                path,
                bytes,
                bytes_max,
            },
            frame::EncodeError::Protobuf(source) => Self::Encode { path, source },
        }
    }
}

/// Where raft-rs needs its own error: a failed store makes the node stop taking part (raft-rs
/// documents that the application must then recover).
impl From<QuorumStoreError> for raft::Error {
    fn from(error: QuorumStoreError) -> Self {
        raft::Error::Store(raft::StorageError::Other(Box::new(error)))
    }
}
