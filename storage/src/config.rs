//! Per-log settings: the typed values a log runs with. Each field is a Kafka topic config (named
//! in its doc); the broker builds a `LogConfig` from its settings table
//! (`broker/src/settings/table.rs`), which holds every config's default, bounds and meaning. The
//! defaults here serve this crate's tests and tools, and a broker test checks them equal to the
//! table's.

/// When a partition's writes are made durable with `fdatasync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Sync whenever an appender awaits durability (acks=all), covering every batch written so far.
    /// The safe default.
    SyncBeforeAck,
    /// Sync every `flush.ms` milliseconds; `durable()` resolves at the next periodic sync.
    IntervalMs(u64),
}

/// `message.timestamp.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The settings of one partition log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms`: measured from the active segment's first batch.
    pub segment_ms: u64,
    /// `index.interval.bytes`: of the sparse offset index.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: a batch's whole size, its offset and length fields included.
    pub max_message_bytes: u32,
    /// `retention.ms`: against a closed segment's newest record; -1 = keep.
    pub retention_ms: i64,
    /// `retention.bytes`: -1 = unlimited.
    pub retention_bytes: i64,
    /// `cleanup.policy` includes `delete`: `retention.ms` and `retention.bytes` apply. Without it
    /// (`compact` alone) no segment goes by age or size, as in Kafka; compaction, which would
    /// bound such a log, is not built yet.
    pub cleanup_delete: bool,
    /// `flush.ms` / the sync policy.
    pub flush: FlushPolicy,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms` / `after.max.ms` (KIP-937); `i64::MAX` = no bound.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` includes `compact`: every record needs a key (INVALID_RECORD otherwise).
    pub keys_required: bool,
    /// `compression.type`: the codec id (0 none … 4 zstd) batches are stored with; `None`
    /// (`producer`) keeps the producer's. The broker recompresses before it appends: the log
    /// stores what it is given.
    pub compression: Option<u8>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            max_message_bytes: (1 << 20) + 12,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_delete: true,
            flush: FlushPolicy::SyncBeforeAck,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            keys_required: false,
            compression: None,
        }
    }
}

/// Memory bounds shared by every log of one shard (`tail_cache_bytes` is the broker's
/// `odradek.tail.cache.bytes`; a broker test checks the default equal to the settings table's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardStorageConfig {
    /// Bytes of not-yet-written batches a shard holds before appends get
    /// `AppendError::Backpressure`.
    pub write_buffer_bytes: usize,
    /// Bytes of recently written batches kept in memory for tail reads (evicted oldest first).
    pub tail_cache_bytes: usize,
}

impl Default for ShardStorageConfig {
    fn default() -> Self {
        ShardStorageConfig {
            write_buffer_bytes: 64 << 20,
            tail_cache_bytes: 256 << 20,
        }
    }
}
