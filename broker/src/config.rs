//! Broker configuration: one typed struct, Kafka's setting names, bounds checked at start.
//!
//! Sources, later ones winning: the embedded defaults, `--config FILE` (Kafka's
//! `server.properties` format: `name=value` lines, `#` and `!` comments), repeated
//! `--set name=value`, then the dedicated flags (`--listen`, `--advertise`, `--data-dir`). An
//! unknown name or a bad value stops the start with a message naming it. The table of settings is
//! in [`crate::settings`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use odradek_storage::{FlushPolicy, LogConfig, ShardStorageConfig, TimestampType};

use crate::settings::{self, SETTINGS};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown setting `{name}` (from {source_name}); `odradek --help` and README list the settings")]
    UnknownSetting { name: String, source_name: String },
    #[error("bad value `{value}` for `{name}` (from {source_name}): {reason}")]
    BadValue {
        name: String,
        value: String,
        reason: String,
        source_name: String,
    },
    #[error("{source_name} line {line}: expected `name=value`, found `{text}`")]
    BadLine {
        source_name: String,
        line: usize,
        text: String,
    },
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Every broker setting, typed, with units in the names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `node.id` (alias `broker.id`).
    pub node_id: i32,
    /// `listeners` / `--listen`: where every shard accepts Kafka connections.
    pub listen_host: String,
    pub listen_port: u16,
    /// `advertised.listeners` / `--advertise`: what Metadata tells clients; `None` = the listen
    /// address with the bound port.
    pub advertise: Option<(String, u16)>,
    /// `log.dirs` / `log.dir` / `--data-dir`.
    pub data_dir: PathBuf,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: u32,
    /// `default.replication.factor` (a single node: only 1).
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `log.segment.bytes`.
    pub log_segment_bytes: u64,
    /// `log.roll.ms` / `log.roll.hours`.
    pub log_roll_ms: u64,
    /// `log.retention.ms` / `.minutes` / `.hours`; -1 = keep forever.
    pub log_retention_ms: i64,
    /// `log.retention.bytes`; -1 = unlimited.
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: u64,
    /// `producer.id.expiration.ms`: a partition forgets an idempotent producer that has not
    /// produced to it for this long (checked with retention).
    pub producer_id_expiration_ms: u64,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: u32,
    /// `message.max.bytes`: the largest record batch accepted.
    pub message_max_bytes: u32,
    /// `log.flush.interval.ms`; `None` = sync before acknowledging acks=all (the safe default).
    pub log_flush_interval_ms: Option<u64>,
    /// `log.message.timestamp.type`.
    pub log_message_timestamp_type: TimestampType,
    /// `compression.type`: `producer` (keep the producer's codec) or the codec to store with.
    pub compression_type: String,
    /// `log.message.format.version`: accepted and ignored, as in Kafka 3.x (always v2).
    pub log_message_format_version: String,
    /// `log.message.downconversion.enable`: whether Fetch v0–3 (legacy message sets) is served
    /// by converting stored batches down (otherwise UNSUPPORTED_VERSION), as in Kafka.
    pub log_message_downconversion_enable: bool,
    /// `log.message.timestamp.before.max.ms` / `after.max.ms` (KIP-937): the furthest a
    /// CreateTime record may be before or after the broker's clock; i64::MAX = unbounded.
    pub log_message_timestamp_before_max_ms: i64,
    pub log_message_timestamp_after_max_ms: i64,
    /// `log.cleanup.policy`: `delete`, `compact` or both; compact alone keeps every segment
    /// (compaction itself comes later).
    pub log_cleanup_policy: String,
    /// `socket.request.max.bytes`: the largest request frame.
    pub socket_request_max_bytes: usize,
    /// `max.connections`: connections per shard.
    pub max_connections: usize,
    /// `max.incremental.fetch.session.cache.slots`: fetch sessions (KIP-227) the broker keeps.
    pub max_incremental_fetch_session_cache_slots: usize,
    /// `queued.max.requests`: requests in flight per connection.
    pub queued_max_requests: usize,
    /// `odradek.tail.cache.bytes`: recently appended batches each shard keeps in memory for
    /// consumers at the tail (Odradek's own setting; Kafka leaves this to the page cache).
    pub tail_cache_bytes: usize,
    /// `group.initial.rebalance.delay.ms`: delay of a new group's first rebalance.
    pub group_initial_rebalance_delay_ms: u64,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`.
    pub offsets_topic_num_partitions: u32,
    /// `offsets.retention.minutes`: committed offsets of an empty group expire after this.
    pub offsets_retention_minutes: u64,
    /// Names set explicitly by a file or `--set` (DescribeConfigs reports them as static).
    pub explicitly_set: BTreeSet<String>,
    /// Names changed at run time (IncrementalAlterConfigs on the BROKER resource).
    pub dynamic_set: BTreeSet<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let log = LogConfig::default();
        BrokerConfig {
            node_id: 0,
            listen_host: "127.0.0.1".into(),
            listen_port: 9092,
            advertise: None,
            data_dir: PathBuf::from("./odradek-data"),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            log_segment_bytes: log.segment_bytes,
            log_roll_ms: log.segment_ms,
            log_retention_ms: log.retention_ms,
            log_retention_bytes: log.retention_bytes,
            log_retention_check_interval_ms: 300_000,
            producer_id_expiration_ms: 86_400_000,
            log_index_interval_bytes: log.index_interval_bytes,
            message_max_bytes: (1 << 20) + 12,
            log_flush_interval_ms: None,
            log_message_timestamp_type: TimestampType::CreateTime,
            compression_type: "producer".into(),
            max_incremental_fetch_session_cache_slots: 1000,
            log_message_format_version: "3.0-IV1".into(),
            log_message_downconversion_enable: true,
            log_message_timestamp_before_max_ms: i64::MAX,
            log_message_timestamp_after_max_ms: i64::MAX,
            log_cleanup_policy: "delete".into(),
            socket_request_max_bytes: 100 << 20,
            max_connections: 10_000,
            queued_max_requests: 500,
            tail_cache_bytes: ShardStorageConfig::default().tail_cache_bytes,
            group_initial_rebalance_delay_ms: 3000,
            offsets_topic_num_partitions: 50,
            offsets_retention_minutes: 7 * 24 * 60,
            explicitly_set: BTreeSet::new(),
            dynamic_set: BTreeSet::new(),
        }
    }
}

impl BrokerConfig {
    /// Applies one `name=value` from `source_name` (a file name or `--set`).
    pub fn apply(&mut self, name: &str, value: &str, source_name: &str) -> Result<(), ConfigError> {
        let name = name.trim();
        let value = value.trim();
        if settings::IGNORED.contains(&name) {
            tracing::warn!(setting = name, "setting has no effect in odradek; ignored");
            return Ok(());
        }
        let Some(setting) = SETTINGS
            .iter()
            .find(|s| s.name == name || s.aliases.contains(&name))
        else {
            return Err(ConfigError::UnknownSetting {
                name: name.into(),
                source_name: source_name.into(),
            });
        };
        (setting.set)(self, value).map_err(|reason| ConfigError::BadValue {
            name: name.into(),
            value: value.into(),
            reason,
            source_name: source_name.into(),
        })?;
        self.explicitly_set.insert(setting.name.to_string());
        Ok(())
    }

    /// Applies a `server.properties` text.
    pub fn apply_properties(&mut self, text: &str, source_name: &str) -> Result<(), ConfigError> {
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((name, value)) = line.split_once(['=', ':']) else {
                return Err(ConfigError::BadLine {
                    source_name: source_name.into(),
                    line: index + 1,
                    text: line.into(),
                });
            };
            self.apply(name, value, source_name)?;
        }
        Ok(())
    }

    /// Reads and applies a properties file (at start, before any shard runs).
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        self.apply_properties(&text, &path.display().to_string())
    }

    /// Applies one `--set name=value`.
    pub fn apply_set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        match assignment.split_once('=') {
            Some((name, value)) => self.apply(name, value, "--set"),
            None => Err(ConfigError::BadLine {
                source_name: "--set".into(),
                line: 1,
                text: assignment.into(),
            }),
        }
    }

    /// This config with run-time overrides applied (Kafka names; the registry stores them).
    pub fn with_dynamic(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut config = self.clone();
        for (name, value) in overrides {
            config.apply(name, value, "a dynamic broker config")?;
            config.explicitly_set.remove(name);
            config.dynamic_set.insert(name.clone());
        }
        Ok(config)
    }

    /// The broker-wide defaults of every topic's log settings.
    pub fn log_defaults(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.log_segment_bytes,
            segment_ms: self.log_roll_ms,
            index_interval_bytes: self.log_index_interval_bytes,
            max_message_bytes: self.message_max_bytes,
            retention_ms: self.log_retention_ms,
            retention_bytes: self.log_retention_bytes,
            cleanup_delete: settings::cleanup_deletes(&self.log_cleanup_policy),
            flush: match self.log_flush_interval_ms {
                None => FlushPolicy::SyncBeforeAck,
                Some(ms) => FlushPolicy::IntervalMs(ms),
            },
            timestamp_type: self.log_message_timestamp_type,
            timestamp_before_max_ms: self.log_message_timestamp_before_max_ms,
            timestamp_after_max_ms: self.log_message_timestamp_after_max_ms,
            keys_required: settings::cleanup_compacts(&self.log_cleanup_policy),
            compression: settings::compression_codec(&self.compression_type),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafka_like() {
        let config = BrokerConfig::default();
        assert_eq!(config.num_partitions, 1);
        assert!(config.auto_create_topics_enable);
        assert_eq!(config.socket_request_max_bytes, 100 << 20);
        assert_eq!(config.log_defaults().flush, FlushPolicy::SyncBeforeAck);
    }

    #[test]
    fn properties_file_applies() {
        let mut config = BrokerConfig::default();
        let text = "# comment\n\nnum.partitions=6\nlog.retention.hours = 2\n! also a comment\n\
                    auto.create.topics.enable=false\nlog.dirs=/tmp/x\nbroker.id=3\n";
        config
            .apply_properties(text, "server.properties")
            .expect("valid file");
        assert_eq!(config.num_partitions, 6);
        assert_eq!(config.log_retention_ms, 2 * 3600 * 1000);
        assert!(!config.auto_create_topics_enable);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.node_id, 3);
        assert!(config.explicitly_set.contains("num.partitions"));
    }

    #[test]
    fn unknown_setting_is_named() {
        let mut config = BrokerConfig::default();
        let err = config.apply_set("num.partition=3").expect_err("typo");
        assert!(err.to_string().contains("num.partition"), "{err}");
        assert!(matches!(err, ConfigError::UnknownSetting { .. }));
    }

    #[test]
    fn bad_values_are_named() {
        for bad in [
            "num.partitions=0",
            "num.partitions=many",
            "auto.create.topics.enable=yes please",
            "log.segment.bytes=100",
            "default.replication.factor=3",
            "log.message.timestamp.type=Sometimes",
        ] {
            let mut config = BrokerConfig::default();
            let err = config.apply_set(bad).expect_err(bad);
            assert!(matches!(err, ConfigError::BadValue { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn a_line_without_equals_is_an_error() {
        let mut config = BrokerConfig::default();
        let err = config
            .apply_properties("num.partitions\n", "f")
            .expect_err("bad line");
        assert!(matches!(err, ConfigError::BadLine { line: 1, .. }));
    }

    #[test]
    fn listeners_take_the_first_address() {
        let mut config = BrokerConfig::default();
        config
            .apply_set("listeners=PLAINTEXT://0.0.0.0:19092")
            .expect("listeners");
        assert_eq!(
            (config.listen_host.as_str(), config.listen_port),
            ("0.0.0.0", 19092)
        );
    }
}
