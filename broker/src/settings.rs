//! The table of broker settings: Kafka's names, documentation, bounds, and how each one reads and
//! writes [`BrokerConfig`]. `--help`, DescribeConfigs (BROKER) and config parsing all use it.

use std::path::PathBuf;

use odradek_storage::TimestampType;

use crate::config::BrokerConfig;

/// One broker setting.
pub struct Setting {
    pub name: &'static str,
    /// Other Kafka names for the same setting (e.g. `log.retention.hours`, in their own unit).
    pub aliases: &'static [&'static str],
    pub doc: &'static str,
    pub get: fn(&BrokerConfig) -> String,
    pub set: fn(&mut BrokerConfig, &str) -> Result<(), String>,
}

/// Kafka settings an operator's `server.properties` may hold that have no meaning here.
pub const IGNORED: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
];

const HOUR_MS: i64 = 3600 * 1000;

/// Parses an integer within `[min, max]`.
pub fn int_in<T>(value: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let parsed: T = value
        .parse()
        .map_err(|_| format!("not an integer in [{min}, {max}]"))?;
    if parsed < min || parsed > max {
        return Err(format!("out of range [{min}, {max}]"));
    }
    Ok(parsed)
}

pub fn boolean(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

pub fn timestamp_type(value: &str) -> Result<TimestampType, String> {
    match value {
        "CreateTime" => Ok(TimestampType::CreateTime),
        "LogAppendTime" => Ok(TimestampType::LogAppendTime),
        _ => Err("expected CreateTime or LogAppendTime".into()),
    }
}

pub fn timestamp_type_name(value: TimestampType) -> &'static str {
    match value {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

pub fn cleanup_policy(value: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
    parts.sort_unstable();
    parts.dedup();
    if parts.is_empty() || parts.iter().any(|p| *p != "delete" && *p != "compact") {
        return Err("expected delete, compact or compact,delete".into());
    }
    Ok(parts.join(","))
}

/// Whether a (validated) `cleanup.policy` deletes old segments by `retention.ms` and
/// `retention.bytes`.
pub fn cleanup_deletes(policy: &str) -> bool {
    policy.split(',').any(|p| p.trim() == "delete")
}

/// `compression.type`'s values and the codec id each stores with (`producer`: none forced).
const COMPRESSION_TYPES: &[(&str, Option<u8>)] = &[
    ("producer", None),
    ("uncompressed", Some(0)),
    ("gzip", Some(1)),
    ("snappy", Some(2)),
    ("lz4", Some(3)),
    ("zstd", Some(4)),
];

/// Checks a `compression.type`; returns it normalized.
pub fn compression_type(value: &str) -> Result<String, String> {
    let value = value.trim().to_ascii_lowercase();
    match COMPRESSION_TYPES.iter().find(|(name, _)| *name == value) {
        Some((name, _)) => Ok(name.to_string()),
        None => Err("expected producer, uncompressed, gzip, snappy, lz4 or zstd".into()),
    }
}

/// The codec id a validated `compression.type` stores with.
pub fn compression_codec(value: &str) -> Option<u8> {
    COMPRESSION_TYPES
        .iter()
        .find(|(name, _)| *name == value)
        .and_then(|(_, codec)| *codec)
}

/// Checks a (deprecated, ignored) `message.format.version`: a Kafka version such as `0.10.2`,
/// `2.8-IV1` or `3.0`.
pub fn message_format_version(value: &str) -> Result<String, String> {
    let value = value.trim();
    let version = value.split('-').next().unwrap_or_default();
    let parts: Vec<&str> = version.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if (2..=4).contains(&parts.len()) && numeric {
        Ok(value.to_string())
    } else {
        Err("expected a Kafka version such as 2.8 or 3.0-IV1".into())
    }
}

/// Whether a validated `cleanup.policy` compacts (records then need keys).
pub fn cleanup_compacts(policy: &str) -> bool {
    policy.split(',').any(|p| p.trim() == "compact")
}

/// `PLAINTEXT://host:port[,...]` or `host:port`: the first address.
pub fn listener(value: &str) -> Result<(String, u16), String> {
    let first = value.split(',').next().unwrap_or_default().trim();
    let address = first.split_once("://").map_or(first, |(_, rest)| rest);
    let (host, port) = address.rsplit_once(':').ok_or("expected HOST:PORT")?;
    let port = port.parse::<u16>().map_err(|_| "bad port".to_string())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.to_string(), port))
}

fn flush_interval(value: &str) -> Result<Option<u64>, String> {
    let ms = int_in::<i64>(value, 1, i64::MAX)?;
    // Kafka's default, Long.MAX_VALUE, means "no time-based flush": here, sync before ack.
    Ok(if ms == i64::MAX {
        None
    } else {
        Some(ms as u64)
    })
}

fn retention(value: &str, unit_ms: i64) -> Result<i64, String> {
    let v = int_in::<i64>(value, -1, i64::MAX / unit_ms)?;
    Ok(if v < 0 { -1 } else { v * unit_ms })
}

macro_rules! setting {
    ($name:literal, [$($alias:literal),*], $doc:literal, |$c:ident| $get:expr, |$m:ident, $v:ident| $set:expr) => {
        Setting {
            name: $name,
            aliases: &[$($alias),*],
            doc: $doc,
            get: |$c: &BrokerConfig| $get,
            set: |$m: &mut BrokerConfig, $v: &str| {
                $set;
                Ok(())
            },
        }
    };
}

/// Every broker setting.
pub const SETTINGS: &[Setting] = &[
    setting!(
        "node.id",
        ["broker.id"],
        "This broker's id.",
        |c| c.node_id.to_string(),
        |c, v| c.node_id = int_in(v, 0, i32::MAX)?
    ),
    setting!(
        "listeners",
        [],
        "Where every shard accepts Kafka connections (PLAINTEXT://HOST:PORT).",
        |c| format!("PLAINTEXT://{}:{}", c.listen_host, c.listen_port),
        |c, v| (c.listen_host, c.listen_port) = listener(v)?
    ),
    setting!(
        "advertised.listeners",
        [],
        "The address given to clients (default: the listener).",
        |c| c
            .advertise
            .as_ref()
            .map(|(h, p)| format!("PLAINTEXT://{h}:{p}"))
            .unwrap_or_default(),
        |c, v| c.advertise = Some(listener(v)?)
    ),
    setting!(
        "log.dirs",
        ["log.dir"],
        "The data directory (one).",
        |c| c.data_dir.display().to_string(),
        |c, v| c.data_dir = PathBuf::from(v.split(',').next().unwrap_or_default().trim())
    ),
    setting!(
        "num.partitions",
        [],
        "Partitions of auto-created topics.",
        |c| c.num_partitions.to_string(),
        |c, v| c.num_partitions = int_in(v, 1, 100_000)?
    ),
    setting!(
        "default.replication.factor",
        [],
        "Replication factor of new topics (single node: 1).",
        |c| c.default_replication_factor.to_string(),
        |c, v| c.default_replication_factor = int_in(v, 1, 1)?
    ),
    setting!(
        "auto.create.topics.enable",
        [],
        "Create unknown topics asked for in Metadata.",
        |c| c.auto_create_topics_enable.to_string(),
        |c, v| c.auto_create_topics_enable = boolean(v)?
    ),
    setting!(
        "log.segment.bytes",
        [],
        "Roll a segment when it would pass this size.",
        |c| c.log_segment_bytes.to_string(),
        |c, v| c.log_segment_bytes = int_in(v, 1024, i32::MAX as u64)?
    ),
    setting!(
        "log.roll.ms",
        [],
        "Roll a segment when its first record is this old.",
        |c| c.log_roll_ms.to_string(),
        |c, v| c.log_roll_ms = int_in(v, 1, i64::MAX as u64)?
    ),
    setting!(
        "log.roll.hours",
        [],
        "log.roll.ms in hours.",
        |c| (c.log_roll_ms / HOUR_MS as u64).to_string(),
        |c, v| c.log_roll_ms = int_in(v, 1, u64::MAX / HOUR_MS as u64)? * HOUR_MS as u64
    ),
    setting!(
        "log.retention.ms",
        [],
        "Delete closed segments older than this; -1 keeps them.",
        |c| c.log_retention_ms.to_string(),
        |c, v| c.log_retention_ms = retention(v, 1)?
    ),
    setting!(
        "log.retention.minutes",
        [],
        "log.retention.ms in minutes.",
        |c| (c.log_retention_ms / 60_000).to_string(),
        |c, v| c.log_retention_ms = retention(v, 60_000)?
    ),
    setting!(
        "log.retention.hours",
        [],
        "log.retention.ms in hours.",
        |c| (c.log_retention_ms / HOUR_MS).to_string(),
        |c, v| c.log_retention_ms = retention(v, HOUR_MS)?
    ),
    setting!(
        "log.retention.bytes",
        [],
        "Delete closed segments while a partition is larger; -1 = no limit.",
        |c| c.log_retention_bytes.to_string(),
        |c, v| c.log_retention_bytes = int_in(v, -1, i64::MAX)?
    ),
    setting!(
        "log.retention.check.interval.ms",
        [],
        "How often each shard runs retention.",
        |c| c.log_retention_check_interval_ms.to_string(),
        |c, v| c.log_retention_check_interval_ms = int_in(v, 1, i64::MAX as u64)?
    ),
    setting!(
        "producer.id.expiration.ms",
        [],
        "Forget an idempotent producer that has not produced to a partition for this long.",
        |c| c.producer_id_expiration_ms.to_string(),
        |c, v| c.producer_id_expiration_ms = int_in(v, 1, i64::MAX as u64)?
    ),
    setting!(
        "log.index.interval.bytes",
        [],
        "Bytes of log between two offset-index entries.",
        |c| c.log_index_interval_bytes.to_string(),
        |c, v| c.log_index_interval_bytes = int_in(v, 0, i32::MAX as u32)?
    ),
    setting!(
        "message.max.bytes",
        [],
        "The largest record batch accepted.",
        |c| c.message_max_bytes.to_string(),
        |c, v| c.message_max_bytes = int_in(v, 64, i32::MAX as u32)?
    ),
    setting!(
        "log.flush.interval.ms",
        [],
        "Sync every N ms instead of before each acks=all answer.",
        |c| c
            .log_flush_interval_ms
            .map_or(i64::MAX.to_string(), |ms| ms.to_string()),
        |c, v| c.log_flush_interval_ms = flush_interval(v)?
    ),
    setting!(
        "log.message.timestamp.type",
        [],
        "CreateTime or LogAppendTime.",
        |c| timestamp_type_name(c.log_message_timestamp_type).to_string(),
        |c, v| c.log_message_timestamp_type = timestamp_type(v)?
    ),
    setting!(
        "compression.type",
        [],
        "The codec batches are stored with: producer (as sent), uncompressed, gzip, snappy, lz4 or zstd.",
        |c| c.compression_type.clone(),
        |c, v| c.compression_type = compression_type(v)?
    ),
    setting!(
        "log.message.format.version",
        [],
        "Deprecated since Kafka 3.0 and ignored, as there: batches are stored in format v2.",
        |c| c.log_message_format_version.clone(),
        |c, v| c.log_message_format_version = message_format_version(v)?
    ),
    setting!(
        "log.message.downconversion.enable",
        [],
        "Serve Fetch v0–3 (message formats v0/v1) by converting stored batches down; false answers UNSUPPORTED_VERSION.",
        |c| c.log_message_downconversion_enable.to_string(),
        |c, v| c.log_message_downconversion_enable = boolean(v)?
    ),
    setting!(
        "log.message.timestamp.before.max.ms",
        [],
        "How far before the broker's clock a CreateTime record may be (INVALID_TIMESTAMP past it).",
        |c| c.log_message_timestamp_before_max_ms.to_string(),
        |c, v| c.log_message_timestamp_before_max_ms = int_in(v, 0, i64::MAX)?
    ),
    setting!(
        "log.message.timestamp.after.max.ms",
        [],
        "How far after the broker's clock a CreateTime record may be (INVALID_TIMESTAMP past it).",
        |c| c.log_message_timestamp_after_max_ms.to_string(),
        |c, v| c.log_message_timestamp_after_max_ms = int_in(v, 0, i64::MAX)?
    ),
    setting!(
        "log.cleanup.policy",
        [],
        "delete, compact or both; compact alone keeps every segment (compaction: later).",
        |c| c.log_cleanup_policy.clone(),
        |c, v| c.log_cleanup_policy = cleanup_policy(v)?
    ),
    setting!(
        "max.incremental.fetch.session.cache.slots",
        [],
        "Fetch sessions (KIP-227) kept, split over the shards; 0 answers every fetch in full.",
        |c| c.max_incremental_fetch_session_cache_slots.to_string(),
        |c, v| c.max_incremental_fetch_session_cache_slots = int_in(v, 0, 1_000_000)?
    ),
    setting!(
        "socket.request.max.bytes",
        [],
        "The largest request frame.",
        |c| c.socket_request_max_bytes.to_string(),
        |c, v| c.socket_request_max_bytes = int_in(v, 1024, i32::MAX as usize)?
    ),
    setting!(
        "max.connections",
        [],
        "Connections per shard.",
        |c| c.max_connections.to_string(),
        |c, v| c.max_connections = int_in(v, 1, 1_000_000)?
    ),
    setting!(
        "queued.max.requests",
        [],
        "Requests in flight per connection.",
        |c| c.queued_max_requests.to_string(),
        |c, v| c.queued_max_requests = int_in(v, 1, 100_000)?
    ),
    setting!(
        "odradek.tail.cache.bytes",
        [],
        "Recently appended batches each shard keeps in memory for tail reads (0: none).",
        |c| c.tail_cache_bytes.to_string(),
        |c, v| c.tail_cache_bytes = int_in(v, 0, 1 << 40)?
    ),
    setting!(
        "group.initial.rebalance.delay.ms",
        [],
        "Delay of a new group's first rebalance.",
        |c| c.group_initial_rebalance_delay_ms.to_string(),
        |c, v| c.group_initial_rebalance_delay_ms = int_in(v, 0, i32::MAX as u64)?
    ),
    setting!(
        "offsets.topic.num.partitions",
        [],
        "Partitions of __consumer_offsets.",
        |c| c.offsets_topic_num_partitions.to_string(),
        |c, v| c.offsets_topic_num_partitions = int_in(v, 1, 10_000)?
    ),
    setting!(
        "offsets.retention.minutes",
        [],
        "Committed offsets of an empty group expire after this.",
        |c| c.offsets_retention_minutes.to_string(),
        |c, v| c.offsets_retention_minutes = int_in(v, 1, 100 * 365 * 24 * 60)?
    ),
];
