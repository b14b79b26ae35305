//! Topic-level configs (Kafka names), their broker-wide defaults, and how they make a
//! [`LogConfig`]. CreateTopics, IncrementalAlterConfigs and DescribeConfigs use this table.

use std::collections::BTreeMap;

use odradek_storage::{FlushPolicy, LogConfig};

use crate::config::BrokerConfig;
use crate::settings::{self, cleanup_policy, int_in, timestamp_type, SETTINGS};

/// One topic config.
pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker setting that gives its default.
    pub broker_name: &'static str,
    pub doc: &'static str,
    /// Checks a value; returns it normalized.
    pub validate: fn(&str) -> Result<String, String>,
    /// Applies a validated value to a log config.
    pub apply: fn(&mut LogConfig, &str),
}

fn int_check<T>(min: T, max: T) -> impl Fn(&str) -> Result<String, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    move |v| int_in(v, min, max).map(|n| n.to_string())
}

/// Parses a value `validate` accepted (so a failure here is a bug).
fn parsed<T: std::str::FromStr>(value: &str) -> T {
    match value.parse() {
        Ok(v) => v,
        Err(_) => panic!("topic config value `{value}` was validated but does not parse"),
    }
}

/// Every topic config this broker knows.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "retention.ms",
        broker_name: "log.retention.ms",
        doc: "Delete closed segments older than this; -1 keeps them.",
        validate: |v| int_check(-1i64, i64::MAX)(v),
        apply: |c, v| c.retention_ms = parsed(v),
    },
    TopicConfigDef {
        name: "retention.bytes",
        broker_name: "log.retention.bytes",
        doc: "Delete closed segments while the partition is larger; -1 = no limit.",
        validate: |v| int_check(-1i64, i64::MAX)(v),
        apply: |c, v| c.retention_bytes = parsed(v),
    },
    TopicConfigDef {
        name: "segment.bytes",
        broker_name: "log.segment.bytes",
        doc: "Roll a segment when it would pass this size.",
        validate: |v| int_check(1024u64, i32::MAX as u64)(v),
        apply: |c, v| c.segment_bytes = parsed(v),
    },
    TopicConfigDef {
        name: "segment.ms",
        broker_name: "log.roll.ms",
        doc: "Roll a segment when its first record is this old.",
        validate: |v| int_check(1u64, i64::MAX as u64)(v),
        apply: |c, v| c.segment_ms = parsed(v),
    },
    TopicConfigDef {
        name: "max.message.bytes",
        broker_name: "message.max.bytes",
        doc: "The largest record batch accepted.",
        validate: |v| int_check(0u32, i32::MAX as u32)(v),
        apply: |c, v| c.max_message_bytes = parsed(v),
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        broker_name: "log.message.timestamp.type",
        doc: "CreateTime or LogAppendTime.",
        validate: |v| timestamp_type(v).map(|t| settings::timestamp_type_name(t).to_string()),
        apply: |c, v| c.timestamp_type = timestamp_type(v).unwrap_or(c.timestamp_type),
    },
    TopicConfigDef {
        name: "compression.type",
        broker_name: "compression.type",
        doc: "The codec batches are stored with: producer (as sent), uncompressed, gzip, snappy, lz4 or zstd.",
        validate: settings::compression_type,
        apply: |c, v| c.compression = settings::compression_codec(v),
    },
    TopicConfigDef {
        name: "message.format.version",
        broker_name: "log.message.format.version",
        doc: "Deprecated since Kafka 3.0 and ignored, as there (batches are stored in format v2).",
        validate: settings::message_format_version,
        apply: |_, _| {},
    },
    TopicConfigDef {
        name: "message.downconversion.enable",
        broker_name: "log.message.downconversion.enable",
        doc: "Serve Fetch v0–3 (message formats v0/v1) by converting stored batches down; false answers UNSUPPORTED_VERSION.",
        validate: |v| settings::boolean(v).map(|b| b.to_string()),
        apply: |_, _| {},
    },
    TopicConfigDef {
        name: "message.timestamp.before.max.ms",
        broker_name: "log.message.timestamp.before.max.ms",
        doc: "How far before the broker's clock a CreateTime record may be.",
        validate: |v| int_check(0i64, i64::MAX)(v),
        apply: |c, v| c.timestamp_before_max_ms = parsed(v),
    },
    TopicConfigDef {
        name: "message.timestamp.after.max.ms",
        broker_name: "log.message.timestamp.after.max.ms",
        doc: "How far after the broker's clock a CreateTime record may be.",
        validate: |v| int_check(0i64, i64::MAX)(v),
        apply: |c, v| c.timestamp_after_max_ms = parsed(v),
    },
    TopicConfigDef {
        name: "cleanup.policy",
        broker_name: "log.cleanup.policy",
        doc: "delete, compact or both; compact alone keeps every segment (compaction itself comes later); compacted topics need a key on every record.",
        validate: cleanup_policy,
        apply: |c, v| {
            c.cleanup_delete = settings::cleanup_deletes(v);
            c.keys_required = settings::cleanup_compacts(v);
        },
    },
    // Compaction's settings: validated, stored and described as Kafka does, so tools and clients
    // that set them work, but without effect until compaction is built (their broker defaults
    // are Kafka's; see `PENDING_DEFAULTS`).
    TopicConfigDef {
        name: "delete.retention.ms",
        broker_name: "log.cleaner.delete.retention.ms",
        doc: "Compaction (not built yet; stored without effect): how long delete markers are kept.",
        validate: |v| int_check(0i64, i64::MAX)(v),
        apply: |_, _| {},
    },
    TopicConfigDef {
        name: "min.compaction.lag.ms",
        broker_name: "log.cleaner.min.compaction.lag.ms",
        doc: "Compaction (not built yet; stored without effect): the least time a record stays uncompacted.",
        validate: |v| int_check(0i64, i64::MAX)(v),
        apply: |_, _| {},
    },
    TopicConfigDef {
        name: "max.compaction.lag.ms",
        broker_name: "log.cleaner.max.compaction.lag.ms",
        doc: "Compaction (not built yet; stored without effect): the most time a record stays uncompacted.",
        validate: |v| int_check(1i64, i64::MAX)(v),
        apply: |_, _| {},
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        broker_name: "log.cleaner.min.cleanable.ratio",
        doc: "Compaction (not built yet; stored without effect): the dirty share of a log that makes it eligible.",
        validate: ratio,
        apply: |_, _| {},
    },
    TopicConfigDef {
        name: "flush.ms",
        broker_name: "log.flush.interval.ms",
        doc: "Sync every N ms instead of before each acks=all answer.",
        validate: |v| int_check(0i64, i64::MAX)(v),
        apply: |c, v| {
            let ms: i64 = parsed(v);
            c.flush = if ms == 0 || ms == i64::MAX {
                FlushPolicy::SyncBeforeAck
            } else {
                FlushPolicy::IntervalMs(ms as u64)
            };
        },
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        broker_name: "log.index.interval.bytes",
        doc: "Bytes of log between two offset-index entries.",
        validate: |v| int_check(0u32, i32::MAX as u32)(v),
        apply: |c, v| c.index_interval_bytes = parsed(v),
    },
];

/// A fraction in [0, 1], as Kafka's `double` configs with that range.
fn ratio(value: &str) -> Result<String, String> {
    match value.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(value.to_string()),
        _ => Err("expected a number in [0, 1]".into()),
    }
}

/// Broker defaults (Kafka's) of the topic configs that have no broker setting here yet: they
/// are stored without effect until their feature is built (compaction).
const PENDING_DEFAULTS: &[(&str, &str)] = &[
    ("log.cleaner.delete.retention.ms", "86400000"),
    ("log.cleaner.min.compaction.lag.ms", "0"),
    ("log.cleaner.max.compaction.lag.ms", "9223372036854775807"),
    ("log.cleaner.min.cleanable.ratio", "0.5"),
];

/// Why a topic config cannot be set.
#[derive(Debug, thiserror::Error)]
pub enum TopicConfigError {
    #[error("unknown topic config `{0}`")]
    Unknown(String),
    #[error("bad value `{value}` for `{name}`: {reason}")]
    BadValue {
        name: String,
        value: String,
        reason: String,
    },
}

/// Whether a broker setting may change at run time (it is the default of a topic config).
pub fn is_dynamic(broker_name: &str) -> bool {
    TOPIC_CONFIGS.iter().any(|d| d.broker_name == broker_name)
        && SETTINGS.iter().any(|s| s.name == broker_name)
}

pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Validates one override; returns it normalized.
pub fn validate(name: &str, value: &str) -> Result<String, TopicConfigError> {
    let def = find(name).ok_or_else(|| TopicConfigError::Unknown(name.into()))?;
    (def.validate)(value.trim()).map_err(|reason| TopicConfigError::BadValue {
        name: name.into(),
        value: value.into(),
        reason,
    })
}

/// Validates a whole set of overrides.
pub fn validate_all(
    configs: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, TopicConfigError> {
    configs
        .iter()
        .map(|(name, value)| Ok((name.clone(), validate(name, value)?)))
        .collect()
}

/// The log settings of a topic: broker defaults, then the topic's (validated) overrides.
pub fn log_config(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let mut config = broker.log_defaults();
    for (name, value) in overrides {
        if let Some(def) = find(name) {
            (def.apply)(&mut config, value);
        }
    }
    config
}

/// The effective value of topic config `name` for a topic with `overrides`: its override, or
/// the broker's default. `None` for a name this broker does not know.
pub fn effective(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
    name: &str,
) -> Option<String> {
    let def = find(name)?;
    Some(
        overrides
            .get(name)
            .cloned()
            .unwrap_or_else(|| broker_default(broker, def)),
    )
}

/// The broker-wide default of a topic config, as text.
pub fn broker_default(broker: &BrokerConfig, def: &TopicConfigDef) -> String {
    SETTINGS
        .iter()
        .find(|s| s.name == def.broker_name)
        .map(|s| (s.get)(broker))
        .or_else(|| {
            PENDING_DEFAULTS
                .iter()
                .find(|(name, _)| *name == def.broker_name)
                .map(|(_, value)| value.to_string())
        })
        .unwrap_or_default()
}

/// Where a described value comes from (Kafka's `ConfigSource` numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// TOPIC_CONFIG
    Topic = 1,
    /// DYNAMIC_DEFAULT_BROKER_CONFIG
    DynamicDefaultBroker = 3,
    /// STATIC_BROKER_CONFIG
    StaticBroker = 4,
    /// DEFAULT_CONFIG
    Default = 5,
}

/// One topic config as DescribeConfigs and CreateTopics report it.
pub struct DescribedConfig {
    pub def: &'static TopicConfigDef,
    pub value: String,
    pub source: ConfigSource,
}

/// Every topic config's effective value for a topic with `overrides`.
pub fn describe(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<DescribedConfig> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| match overrides.get(def.name) {
            Some(value) => DescribedConfig {
                def,
                value: value.clone(),
                source: ConfigSource::Topic,
            },
            None => DescribedConfig {
                def,
                value: broker_default(broker, def),
                source: broker_source(broker, def.broker_name),
            },
        })
        .collect()
}

/// Whether a broker setting was set explicitly or is the embedded default.
pub fn broker_source(broker: &BrokerConfig, broker_name: &str) -> ConfigSource {
    if broker.dynamic_set.contains(broker_name) {
        ConfigSource::DynamicDefaultBroker
    } else if broker.explicitly_set.contains(broker_name) {
        ConfigSource::StaticBroker
    } else {
        ConfigSource::Default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_reach_the_log_config() {
        let broker = BrokerConfig::default();
        let overrides: BTreeMap<String, String> = [
            ("retention.ms", "1000"),
            ("segment.bytes", "1048576"),
            ("message.timestamp.type", "LogAppendTime"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let overrides = validate_all(&overrides).expect("valid");
        let config = log_config(&broker, &overrides);
        assert_eq!(config.retention_ms, 1000);
        assert_eq!(config.segment_bytes, 1 << 20);
        assert_eq!(
            config.timestamp_type,
            odradek_storage::TimestampType::LogAppendTime
        );
    }

    #[test]
    fn unknown_and_bad_values_are_rejected() {
        assert!(matches!(
            validate("retention.mss", "1"),
            Err(TopicConfigError::Unknown(_))
        ));
        assert!(matches!(
            validate("retention.ms", "soon"),
            Err(TopicConfigError::BadValue { .. })
        ));
        assert!(matches!(
            validate("cleanup.policy", "shred"),
            Err(TopicConfigError::BadValue { .. })
        ));
    }

    #[test]
    fn every_topic_config_has_a_broker_default() {
        let broker = BrokerConfig::default();
        for def in TOPIC_CONFIGS {
            let setting = SETTINGS.iter().any(|s| s.name == def.broker_name);
            let pending = PENDING_DEFAULTS.iter().any(|(n, _)| *n == def.broker_name);
            assert!(
                setting != pending,
                "{}: a setting or a pending default",
                def.name
            );
            let default = broker_default(&broker, def);
            assert!(
                (def.validate)(&default).is_ok(),
                "{} default {default}",
                def.name
            );
        }
    }
}
