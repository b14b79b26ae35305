//! `odradek-storage`: the log of one Kafka partition.
//!
//! A partition is a directory `<topic>-<partition>/` of segments. Each segment is a `.log` file of
//! Kafka record batches (magic 2) stored exactly as the producer sent them (only `baseOffset`, the
//! appending leader's `partitionLeaderEpoch`, and `maxTimestamp` under LogAppendTime, rewritten), a
//! sparse `.index` (relative offset → position) and a `.timeindex` (max timestamp → relative
//! offset), in Kafka's own file formats; beside them a `leader-epoch-checkpoint` (`epochs`: where
//! each leader epoch's batches start).
//!
//! A [`PartitionLog`] is owned by exactly one shard (it is `!Send`, used through `Rc`). Appends
//! assign offsets at once and return an [`AppendReceipt`] whose two milestones — *written* (the
//! bytes are on the device, via O_DIRECT) and *durable* (synced) — the caller awaits according to
//! the producer's `acks`. Writes from many appends are coalesced into large aligned writes by one
//! flusher task per partition; while an appender of the partition waits for durability those
//! writes are synced ones (`O_DSYNC`), and one `fdatasync` covers the plain writes before them
//! (group commit).
//!
//! Layout:
//! - `clock`: [`now_ms`], the wall clock every timestamp comparison reads.
//! - [`batch`]: the 61-byte record-batch header view and validation (CRC32C, bounds, magic).
//! - [`config`]: per-log settings ([`LogConfig`]) with Kafka's names and defaults.
//! - [`error`]: operating errors ([`StorageError`]) and append rejections ([`AppendError`]).
//! - [`index`]: the sparse offset index and the time index, in Kafka's file formats.
//! - `producers`: idempotent producers' sequence state and its snapshots.
//! - [`testing`]: builders of valid batches for tests and benchmarks.
//! - `types`: the typed nouns [`Offset`], [`LeaderEpoch`] and [`ProducerId`].
//! - `log` (the public face), `engine` (state, appends, milestones), `flusher` (direct-I/O
//!   writes), `durability` (the flusher's durable-prefix bookkeeping and the `flush.ms` timer),
//!   `preallocate` (segment files extended ahead of the writes), `read`, `readwin` (read windows
//!   of catch-up reads), `recovery`, `retention`, `truncate` (cutting a closed log's end),
//!   `segment`, `epochs`, `cache` (the tail cache), `room` (the line for write-buffer room),
//!   `waiters`, `fileio`: the engine (private).

pub mod batch;
mod cache;
mod clock;
pub mod config;
mod durability;
mod engine;
mod epochs;
pub mod error;
mod fileio;
mod flusher;
pub mod index;
mod log;
mod preallocate;
mod producers;
mod read;
mod readwin;
mod recovery;
mod retention;
mod room;
mod segment;
pub mod testing;
mod truncate;
mod types;
mod waiters;

pub use batch::{BatchError, BatchHeader};
pub use clock::now_ms;
pub use config::{FlushPolicy, LogConfig, ShardStorageConfig, TimestampType};
pub use error::{AppendError, ReadError, StorageError};
pub use log::{
    AppendReceipt, Chunk, FileRegion, PartitionLog, ReadOutcome, RetentionOutcome, ShardStorage,
};
pub use producers::SequenceError;
pub use types::{LeaderEpoch, Offset, ProducerId};
