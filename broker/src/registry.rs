//! The topic registry file of the single-node broker before the metadata log: every topic's
//! name, id, partition count and config overrides. Its topics are imported into the metadata
//! log when the log is new (`quorum::boot`), once; the file still keeps the cluster id, which
//! the start checks against `meta.properties` (another cluster's data is refused), and a fresh
//! data directory gets one holding only that.
//!
//! Format: a first line `crc32c=<8 hex digits>`, then a JSON document; the CRC covers the JSON
//! bytes. Written to a temporary file, synced, renamed over the old one, and the directory synced,
//! so a crash leaves either the old or the new file. Loaded, and written when missing, at start
//! (before any shard runs).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::metadata::TopicMeta;

pub const REGISTRY_FILE: &str = "topics.registry";

/// Why the registry cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is corrupt: {reason}; restore it from a backup or move it away to start empty"
    )]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: String,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct RegistryFile {
    cluster_id: String,
    topics: Vec<TopicRecord>,
    #[serde(default)]
    broker_configs: BTreeMap<String, String>,
}

/// What the registry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Broker settings changed at run time (IncrementalAlterConfigs, BROKER resource).
    pub broker_configs: BTreeMap<String, String>,
}

pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(REGISTRY_FILE)
}

/// Encodes the registry as the file's bytes.
pub fn encode(registry: &Registry) -> Vec<u8> {
    let file = RegistryFile {
        cluster_id: registry.cluster_id.clone(),
        topics: registry
            .topics
            .values()
            .map(|t| TopicRecord {
                name: t.name.clone(),
                id: t.id.to_string(),
                partitions: t.partitions,
                configs: t.configs.clone(),
            })
            .collect(),
        broker_configs: registry.broker_configs.clone(),
    };
    let json = serde_json::to_vec_pretty(&file).unwrap_or_default();
    let mut out = format!("crc32c={:08x}\n", crc32c::crc32c(&json)).into_bytes();
    out.extend_from_slice(&json);
    out
}

/// Decodes the file's bytes, checking the CRC.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Registry, RegistryError> {
    let corrupt = |reason: String| RegistryError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let newline = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| corrupt("no CRC line".into()))?;
    let (first, json) = (&bytes[..newline], &bytes[newline + 1..]);
    let expected = std::str::from_utf8(first)
        .ok()
        .and_then(|l| l.strip_prefix("crc32c="))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| corrupt("bad CRC line".into()))?;
    let actual = crc32c::crc32c(json);
    if actual != expected {
        return Err(corrupt(format!("CRC {actual:08x} != {expected:08x}")));
    }
    let file: RegistryFile = serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?;
    let mut topics = BTreeMap::new();
    for record in file.topics {
        let id = Uuid::parse_str(&record.id)
            .map_err(|e| corrupt(format!("topic {}: {e}", record.name)))?;
        let meta = TopicMeta {
            name: record.name,
            id,
            partitions: record.partitions,
            configs: record.configs,
            partition_states: Vec::new(),
        };
        topics.insert(meta.name.clone(), meta);
    }
    Ok(Registry {
        cluster_id: file.cluster_id,
        topics,
        broker_configs: file.broker_configs,
    })
}

/// Loads the registry at start; a missing file is an empty registry with a new cluster id.
pub fn load(data_dir: &Path) -> Result<Registry, RegistryError> {
    let path = path_in(data_dir);
    match fs::read(&path) {
        Ok(bytes) => decode(&bytes, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry {
            cluster_id: new_cluster_id(),
            topics: BTreeMap::new(),
            broker_configs: BTreeMap::new(),
        }),
        Err(source) => Err(RegistryError::Io {
            op: "read",
            path,
            source,
        }),
    }
}

fn new_cluster_id() -> String {
    // Kafka cluster ids are 22 characters of URL-safe base64 of a UUID; any stable string works.
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .simple()
        .to_string()
}

/// Writes the registry atomically (blocking: call from the blocking pool or at start).
pub fn store_blocking(data_dir: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    crate::durable_file::replace_blocking(data_dir, REGISTRY_FILE, bytes).map_err(|e| {
        RegistryError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    })
}

/// Removes the directories `holds` says no partition of this node is in (`Some(false)`; `None`
/// for names that are not a partition's), at start, before any shard runs.
pub fn remove_orphans_blocking(
    data_dir: &Path,
    holds: impl Fn(&str) -> Option<bool>,
) -> Result<usize, RegistryError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| RegistryError::Io { op, path, source }
    };
    let mut removed = 0;
    for entry in fs::read_dir(data_dir).map_err(io("list", data_dir))? {
        let entry = entry.map_err(io("list", data_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && holds(&name) == Some(false) {
            let path = entry.path();
            tracing::warn!(dir = %path.display(), "removing a partition directory no topic holds");
            fs::remove_dir_all(&path).map_err(io("remove", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Registry {
        let mut topics = BTreeMap::new();
        let configs = [("retention.ms".to_string(), "1000".to_string())]
            .into_iter()
            .collect();
        let meta = TopicMeta {
            name: "orders".into(),
            id: Uuid::from_u128(7),
            partitions: 6,
            configs,
            partition_states: Vec::new(),
        };
        topics.insert(meta.name.clone(), meta);
        Registry {
            cluster_id: "c1".into(),
            topics,
            broker_configs: [("log.retention.ms".to_string(), "5000".to_string())].into(),
        }
    }

    #[test]
    fn round_trip() {
        let registry = sample();
        let bytes = encode(&registry);
        assert_eq!(decode(&bytes, Path::new("x")).expect("decode"), registry);
    }

    #[test]
    fn corruption_is_detected() {
        let mut bytes = encode(&sample());
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        assert!(matches!(
            decode(&bytes, Path::new("x")),
            Err(RegistryError::Corrupt { .. })
        ));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], Path::new("x")).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn store_then_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = sample();
        store_blocking(dir.path(), &encode(&registry)).expect("store");
        assert_eq!(load(dir.path()).expect("load"), registry);
    }
}
