//! Shared helpers of the storage integration tests.
#![allow(dead_code, unused_imports)]

use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use glommio::LocalExecutorBuilder;
use odradek_storage::{
    Chunk, LogConfig, PartitionLog, ReadOutcome, ShardStorage, ShardStorageConfig,
};

pub use odradek_storage::testing::{batch, batch_of_size};

pub use odradek_storage::testing::run;

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("odradek-storage-")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

pub fn shard() -> Rc<ShardStorage> {
    ShardStorage::new(ShardStorageConfig::default())
}

pub async fn open(
    dir: &std::path::Path,
    config: LogConfig,
    shard: &Rc<ShardStorage>,
) -> Rc<PartitionLog> {
    PartitionLog::open(dir.join("topic-0"), config, shard.clone())
        .await
        .expect("open")
}

pub fn partition_dir(dir: &std::path::Path) -> PathBuf {
    dir.join("topic-0")
}

/// All the bytes of a read, in order.
pub async fn bytes_of(outcome: &ReadOutcome) -> Bytes {
    let mut out = BytesMut::new();
    for chunk in &outcome.chunks {
        match chunk {
            Chunk::Memory(b) => out.extend_from_slice(b),
            Chunk::File(region) => {
                out.extend_from_slice(&region.read().await.expect("region read"))
            }
        }
    }
    out.freeze()
}

/// `original` with its base offset set to `offset`, as the log stores it.
pub fn stored(original: &Bytes, offset: i64) -> Bytes {
    let mut b = BytesMut::from(&original[..]);
    odradek_storage::batch::set_base_offset(&mut b, offset);
    b.freeze()
}

/// The epoch a single node appends under.
pub const EPOCH_0: odradek_storage::LeaderEpoch = odradek_storage::LeaderEpoch::SINGLE_NODE;

/// Segments of `segment_bytes`, indexed every 512 bytes.
pub fn small_segments(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

/// A shard without a tail cache: every read of written batches goes through the segment files.
pub fn uncached_shard() -> Rc<ShardStorage> {
    ShardStorage::new(ShardStorageConfig {
        tail_cache_bytes: 0,
        ..ShardStorageConfig::default()
    })
}

/// The names of the partition directory's files ending in `ext`, sorted.
pub fn segment_files(dir: &std::path::Path, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(partition_dir(dir))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    names.sort();
    names
}
