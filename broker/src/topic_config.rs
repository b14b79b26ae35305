//! Topic-level configs: the settings of [`crate::settings`] that have a topic name, seen from a
//! topic. An override is validated and normalized when it is set and stored as text (the
//! metadata log's); a topic's [`LogConfig`] is its broker's values with its overrides applied.
//! CreateTopics, the AlterConfigs APIs and DescribeConfigs use this module.

use std::collections::BTreeMap;

use odradek_storage::LogConfig;

use crate::config::BrokerConfig;
use crate::settings::{self, Setting, ValueError, SETTINGS};

/// Why a topic config cannot be set.
#[derive(Debug, thiserror::Error)]
pub enum TopicConfigError {
    #[error("unknown topic config `{0}`")]
    Unknown(String),
    #[error("bad value `{value}` for `{name}`: {reason}")]
    BadValue {
        name: String,
        value: String,
        reason: ValueError,
    },
}

/// Every setting that is also a topic config.
fn topic_settings() -> impl Iterator<Item = (&'static str, &'static Setting)> {
    SETTINGS
        .iter()
        .filter_map(|s| s.topic_name.map(|topic_name| (topic_name, s)))
}

/// Validates one override; returns it normalized.
pub fn validate(name: &str, value: &str) -> Result<String, TopicConfigError> {
    let setting =
        settings::find_topic(name).ok_or_else(|| TopicConfigError::Unknown(name.into()))?;
    setting
        .normalize(value.trim())
        .map_err(|reason| TopicConfigError::BadValue {
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
    log_config_over(LogConfig::default(), broker, overrides)
}

/// `base` with every field the table maps set from `broker` and `overrides` (every field of a
/// `LogConfig` is mapped: a test starts from a scrambled base to prove it).
fn log_config_over(
    mut base: LogConfig,
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> LogConfig {
    for (topic_name, setting) in topic_settings() {
        let override_text = overrides.get(topic_name).map(String::as_str);
        setting.to_log(&mut base, broker, override_text);
    }
    base
}

/// The effective value of topic config `name` for a topic with `overrides`: its override, or
/// the broker's default. `None` for a name this broker does not know.
pub fn effective(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
    name: &str,
) -> Option<String> {
    let setting = settings::find_topic(name)?;
    Some(
        overrides
            .get(name)
            .cloned()
            .unwrap_or_else(|| setting.value(broker)),
    )
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
    /// The topic config's name.
    pub name: &'static str,
    /// The setting behind it (its `name` is the broker synonym).
    pub setting: &'static Setting,
    pub value: String,
    pub source: ConfigSource,
}

/// Every topic config's effective value for a topic with `overrides`.
pub fn describe(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<DescribedConfig> {
    topic_settings()
        .map(|(name, setting)| match overrides.get(name) {
            Some(value) => DescribedConfig {
                name,
                setting,
                value: value.clone(),
                source: ConfigSource::Topic,
            },
            None => DescribedConfig {
                name,
                setting,
                value: setting.value(broker),
                source: broker_source(broker, setting.name),
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
    fn every_topic_config_has_a_valid_broker_default() {
        let broker = BrokerConfig::default();
        for (name, _) in topic_settings() {
            let default = effective(&broker, &BTreeMap::new(), name).expect("known");
            assert_eq!(
                validate(name, &default).ok(),
                Some(default.clone()),
                "{name}"
            );
        }
    }

    #[test]
    fn storage_log_defaults_are_the_tables() {
        use odradek_storage::{FlushPolicy, TimestampType};
        // Every field differs from both the table's value and storage's default: one the table
        // does not map stays scrambled and fails the comparison.
        let scrambled = LogConfig {
            segment_bytes: 1,
            segment_ms: 1,
            index_interval_bytes: 1,
            max_message_bytes: 1,
            retention_ms: 1,
            retention_bytes: 1,
            cleanup_delete: false,
            flush: FlushPolicy::IntervalMs(1),
            timestamp_type: TimestampType::LogAppendTime,
            timestamp_before_max_ms: 1,
            timestamp_after_max_ms: 1,
            keys_required: true,
            compression: Some(1),
        };
        let broker = BrokerConfig::default();
        let from_table = log_config_over(scrambled, &broker, &BTreeMap::new());
        assert_eq!(from_table, LogConfig::default());
        assert_eq!(
            odradek_storage::ShardStorageConfig::default().tail_cache_bytes,
            broker.tail_cache_bytes
        );
    }

    #[test]
    fn overrides_are_stored_normalized() {
        assert_eq!(
            validate("cleanup.policy", "delete, compact")
                .ok()
                .as_deref(),
            Some("compact,delete")
        );
        assert_eq!(
            validate("compression.type", "GZIP").ok().as_deref(),
            Some("gzip")
        );
        assert_eq!(
            validate("retention.ms", " 0100 ").ok().as_deref(),
            Some("100")
        );
        assert_eq!(validate("flush.ms", "0").ok().as_deref(), Some("0"));
    }
}
