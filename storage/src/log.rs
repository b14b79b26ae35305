//! The partition log: the public face of the engine. (API contract; the engine fills it in.)

use std::path::PathBuf;
use std::rc::Rc;

use bytes::Bytes;

use crate::config::{LogConfig, ShardStorageConfig};
use crate::error::{AppendError, ReadError, StorageError};
use crate::types::Offset;

/// What an append was given, and the futures for its two milestones.
pub struct AppendReceipt {
    /// Offset assigned to the first record of the first batch.
    pub base_offset: Offset,
    /// Offset of the last record of the last batch.
    pub last_offset: Offset,
    /// The broker time stamped into LogAppendTime batches, or -1 under CreateTime.
    pub log_append_time_ms: i64,
    /// The log start offset at the time of the append.
    pub log_start_offset: Offset,
    end_position: u64,
    log: Rc<PartitionLog>,
}

impl AppendReceipt {
    /// Resolves once every byte of the append is on the device (acks=1).
    pub async fn written(&self) -> Result<(), StorageError> {
        let _ = (self.end_position, &self.log);
        todo!("storage engine")
    }

    /// Resolves once an `fdatasync` covers every byte of the append (acks=all).
    pub async fn durable(&self) -> Result<(), StorageError> {
        todo!("storage engine")
    }
}

/// A byte range of a closed segment file that can be sent without passing through user space.
#[derive(Clone, Debug)]
pub struct FileRegion {
    pub path: PathBuf,
    pub position: u64,
    pub len: u32,
}

impl FileRegion {
    /// Reads the region into memory (the fallback while zero-copy sends are not wired).
    pub async fn read(&self) -> Result<Bytes, StorageError> {
        todo!("storage engine")
    }
}

/// One piece of a read: batches already in memory, or a region of a segment file.
#[derive(Clone, Debug)]
pub enum Chunk {
    Memory(Bytes),
    File(FileRegion),
}

/// Whole batches starting with the one that contains the requested offset.
#[derive(Clone, Debug, Default)]
pub struct ReadOutcome {
    pub chunks: Vec<Chunk>,
    /// Sum of the chunk lengths.
    pub bytes: usize,
}

/// What a retention pass removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: Offset,
}

/// Memory shared by every log of one shard: the write-buffer budget and the tail cache
/// (evicted oldest first). One per shard, created at start.
pub struct ShardStorage {
    pub config: ShardStorageConfig,
}

impl ShardStorage {
    pub fn new(config: ShardStorageConfig) -> Rc<ShardStorage> {
        Rc::new(ShardStorage { config })
    }
}

/// The log of one partition, owned by one shard.
pub struct PartitionLog {
    _private: (),
}

impl PartitionLog {
    /// Opens (creating when missing) the partition directory `dir` and recovers it.
    pub async fn open(
        dir: PathBuf,
        config: LogConfig,
        shard: Rc<ShardStorage>,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        let _ = (dir, config, shard);
        todo!("storage engine")
    }

    /// Validates and appends the batches of one produce partition (back to back in `batches`).
    /// Offsets are assigned at once; nothing of an invalid set is appended.
    pub fn append(self: &Rc<Self>, batches: Bytes, now_ms: i64) -> Result<AppendReceipt, AppendError> {
        let _ = (batches, now_ms);
        todo!("storage engine")
    }

    /// Whole batches from the one containing `offset`, at least one even past `max_bytes`
    /// (KIP-74), never past `upper_bound`.
    pub async fn read(&self, offset: Offset, max_bytes: usize, upper_bound: Offset) -> Result<ReadOutcome, ReadError> {
        let _ = (offset, max_bytes, upper_bound);
        todo!("storage engine")
    }

    /// Resolves when records at or past `offset` are readable (written end > offset), or at once.
    /// Dropping it is safe (long polling cancels it).
    pub async fn wait_for_data(&self, offset: Offset) {
        let _ = offset;
        todo!("storage engine")
    }

    pub fn log_start_offset(&self) -> Offset {
        todo!("storage engine")
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> Offset {
        todo!("storage engine")
    }

    /// The end of the bytes on the device; the single-node high watermark.
    pub fn written_end_offset(&self) -> Offset {
        todo!("storage engine")
    }

    /// The end of the bytes covered by a sync.
    pub fn durable_end_offset(&self) -> Offset {
        todo!("storage engine")
    }

    /// The first batch whose max timestamp is >= `timestamp_ms`, as (its base offset, its bytes),
    /// so the caller can find the exact record; `None` when no record is that new.
    pub async fn batch_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(Offset, Bytes)>, StorageError> {
        let _ = timestamp_ms;
        todo!("storage engine")
    }

    /// The largest timestamp in the log and the offset of the batch's last record holding it.
    pub fn max_timestamp(&self) -> Option<(i64, Offset)> {
        todo!("storage engine")
    }

    /// DeleteRecords: moves the log start offset up to `offset` (deleting whole segments below it).
    pub async fn delete_records_before(&self, offset: Offset) -> Result<Offset, StorageError> {
        let _ = offset;
        todo!("storage engine")
    }

    /// One retention pass by `retention.ms` and `retention.bytes` over closed segments.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome, StorageError> {
        let _ = now_ms;
        todo!("storage engine")
    }

    /// Replaces the settings (IncrementalAlterConfigs); applies from the next append or pass.
    pub fn set_config(&self, config: LogConfig) {
        let _ = config;
        todo!("storage engine")
    }

    pub fn config(&self) -> LogConfig {
        todo!("storage engine")
    }

    /// Bytes of all segments on disk.
    pub fn size_bytes(&self) -> u64 {
        todo!("storage engine")
    }

    /// Flushes, syncs, writes the indexes and the clean-shutdown marker.
    pub async fn close(&self) -> Result<(), StorageError> {
        todo!("storage engine")
    }

    /// Closes the log and removes its directory (DeleteTopics).
    pub async fn delete(&self) -> Result<(), StorageError> {
        todo!("storage engine")
    }
}
