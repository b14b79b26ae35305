//! Errors of the log. A rejected batch is an [`AppendError`] (the broker maps it to a Kafka error
//! code); an operating failure is a [`StorageError`] with the operation and path it concerns.

use std::path::PathBuf;

use crate::batch::BatchError;
use crate::types::Offset;

/// An operating failure: I/O on a named file, or a corrupt metadata file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{op} {path}: {source}")]
    Glommio {
        op: &'static str,
        path: PathBuf,
        source: Box<glommio::GlommioError<()>>,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("the log is closed")]
    Closed,
}

/// Why an append was refused. Nothing of a refused append reaches the log.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("invalid batch: {0}")]
    Invalid(#[from] BatchError),
    #[error("the shard's write buffer is full")]
    Backpressure,
    #[error("transactional batches need transactions, which are not supported yet")]
    Transactional,
    #[error(transparent)]
    Sequence(#[from] crate::producers::SequenceError),
    /// The appender leads at an epoch older than one that already wrote into the log: another
    /// broker has led the partition since.
    #[error("leader epoch {asked} is older than epoch {newest}, which already wrote into the log")]
    StaleLeaderEpoch { asked: i32, newest: i32 },
    /// A follower's batches do not continue its log: it must truncate or fetch from its end.
    #[error("batches at offset {got} do not continue the log, which ends at {expected}")]
    NotContiguous { expected: i64, got: i64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a read returned nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset {requested} is outside [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}
