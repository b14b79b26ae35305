//! Broker configuration: where [`BrokerConfig`] (one typed struct, declared with its defaults by
//! the settings table in [`crate::settings`]) gets its values.
//!
//! Sources, later ones winning: the table's defaults, `--config FILE` (Kafka's
//! `server.properties` format: `name=value` lines, `#` and `!` comments), repeated
//! `--set name=value`, then the dedicated flags (`--listen`, `--advertise`, `--data-dir`), and at
//! run time the dynamic settings the metadata log keeps. An unknown name or a bad value stops the
//! start with a message naming it.
//!
//! Layout: this file applies the sources; [`finish`], once they are all in, decides the
//! listeners and checks the settings that must fit together (a cluster member's among them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::settings::BrokerConfig;
use crate::settings::{self, Listener, NamedListener, ValueError};

mod finish;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "unknown setting `{name}` (from {source_name}); `odradek --help` and README list the \
         settings"
    )]
    UnknownSetting { name: String, source_name: String },
    #[error("bad value `{value}` for `{name}` (from {source_name}): {reason}")]
    BadValue {
        name: String,
        value: String,
        reason: ValueError,
        source_name: String,
    },
    #[error("{flag} {value}: {reason}")]
    BadFlag {
        flag: &'static str,
        value: String,
        reason: ValueError,
    },
    #[error("--cores must be at least 1")]
    NoCores,
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
    /// Settings each valid alone that do not fit together (checked once all are applied).
    #[error("{setting}: {problem}; {fix}")]
    Mismatch {
        setting: &'static str,
        problem: String,
        fix: String,
    },
    #[error(
        "listener {listener} is {protocol} in listener.security.protocol.map, and odradek \
         speaks PLAINTEXT only for now (TLS and SASL are to come): map {listener} to PLAINTEXT \
         or remove it from listeners"
    )]
    NotPlaintext {
        listener: String,
        protocol: &'static str,
    },
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
        let Some(setting) = settings::find(name) else {
            return Err(ConfigError::UnknownSetting {
                name: name.into(),
                source_name: source_name.into(),
            });
        };
        setting
            .set(self, value)
            .map_err(|reason| ConfigError::BadValue {
                name: name.into(),
                value: value.into(),
                reason,
                source_name: source_name.into(),
            })?;
        self.explicitly_set.insert(setting.name().to_string());
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

    /// This config with run-time overrides applied (Kafka names; the metadata log keeps them).
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
}

/// The address of `--listen` or `--advertise`: `HOST:PORT` (a `NAME://` before it is
/// dropped: the flag stands for the client listener, whatever its name).
pub fn listener_flag(flag: &'static str, value: &str) -> Result<Listener, ConfigError> {
    match NamedListener::parse(value) {
        Ok(named) => Ok(named.listener),
        Err(reason) => Err(ConfigError::BadFlag {
            flag,
            value: value.into(),
            reason,
        }),
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
        assert_eq!(config.message_max_bytes, 1_048_588);
        let log = crate::topic_config::log_config(&config, &BTreeMap::new());
        assert_eq!(log.flush, odradek_storage::FlushPolicy::SyncBeforeAck);
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
            "default.replication.factor=0",
            "log.message.timestamp.type=Sometimes",
        ] {
            let mut config = BrokerConfig::default();
            let err = config.apply_set(bad).expect_err(bad);
            assert!(matches!(err, ConfigError::BadValue { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn units_scale_and_are_reported_under_their_own_name() {
        let mut config = BrokerConfig::default();
        config
            .apply_set("log.retention.minutes=3")
            .expect("minutes");
        assert_eq!(config.log_retention_ms, 180_000);
        assert!(config.explicitly_set.contains("log.retention.minutes"));
        config
            .apply_set("log.retention.hours=-1")
            .expect("keep forever");
        assert_eq!(config.log_retention_ms, -1);
        let err = config
            .apply_set("log.roll.hours=0")
            .expect_err("under an hour");
        assert!(
            err.to_string().ends_with("out of range [1, 2562047788015]"),
            "{err}"
        );
    }

    #[test]
    fn topic_only_settings_are_not_broker_settings() {
        let mut config = BrokerConfig::default();
        let err = config
            .apply_set("log.cleaner.delete.retention.ms=1")
            .expect_err("no broker setting yet");
        assert!(matches!(err, ConfigError::UnknownSetting { .. }), "{err}");
    }

    #[test]
    fn a_line_without_equals_is_an_error() {
        let mut config = BrokerConfig::default();
        let err = config
            .apply_properties("num.partitions\n", "f")
            .expect_err("bad line");
        assert!(matches!(err, ConfigError::BadLine { line: 1, .. }));
    }
}
