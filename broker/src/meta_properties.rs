//! `meta.properties`: which cluster and which node a data directory belongs to, in Kafka's own
//! file (`version=1`, `cluster.id`, `node.id`, as `kafka-storage.sh format` writes it), so that
//! a broker given another cluster's or another node's data refuses to start instead of serving
//! it.
//!
//! `odradek format --cluster-id ID` writes it before a first start, as Kafka's KRaft nodes need.
//! A single node without cluster settings formats itself at its first start (zero configuration;
//! a data directory from before this file existed gets one from its topic registry's cluster id).
//! Formatting is explicit for a cluster rather than agreed by the voters at their first start:
//! every node gets the id from the operator, so two halves of a cluster started apart can never
//! each invent one.

use std::path::{Path, PathBuf};

use crate::ids::NodeId;

pub const FILE: &str = "meta.properties";

/// The only version written and read (KRaft's; v0 was ZooKeeper mode's `broker.id` file).
const VERSION: &str = "1";

/// The longest cluster id taken: Kafka's are 22 characters (a UUID in URL-safe base64),
/// Odradek's own 32 (a UUID in hex).
const CLUSTER_ID_BYTES_MAX: usize = 64;

/// What a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: NodeId,
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a meta.properties this odradek reads: {why}")]
    Malformed { path: PathBuf, why: String },
    #[error(
        "a cluster id is 1 to {CLUSTER_ID_BYTES_MAX} letters, digits, '-' or '_' (Kafka's are 22 \
         characters of URL-safe base64), not {0:?}"
    )]
    BadClusterId(String),
    #[error(
        "the data directory {dir} belongs to node {formatted} (its {FILE}) but this broker is \
         node {configured}: give it its own data directory, or set node.id={formatted}"
    )]
    OtherNode {
        dir: PathBuf,
        formatted: i32,
        configured: i32,
    },
    #[error(
        "the data directory {dir} belongs to cluster {formatted} (its {FILE}) but holds the \
         topics of cluster {found}: it was copied or mixed up; restore the directory that \
         belongs here"
    )]
    OtherClusterData {
        dir: PathBuf,
        formatted: String,
        found: String,
    },
    #[error(
        "the data directory {dir} is not formatted, and this node is a member of a cluster \
         (controller.quorum.voters names other nodes): format every member's data directory \
         once with the same id, `odradek format --cluster-id ID --data-dir DIR` with the \
         node's settings, then start it"
    )]
    NotFormatted { dir: PathBuf },
    #[error(
        "the data directory {dir} is already formatted so: add --ignore-formatted to accept \
         that"
    )]
    AlreadyFormatted { dir: PathBuf },
    #[error(
        "the data directory {dir} is already formatted for cluster {formatted} (its {FILE}); a \
         data directory belongs to one cluster: use an empty one for cluster {wanted}"
    )]
    FormattedForAnother {
        dir: PathBuf,
        formatted: String,
        wanted: String,
    },
}

/// `id` if it can be a cluster id.
pub fn cluster_id(id: &str) -> Result<String, MetaError> {
    let valid = !id.is_empty()
        && id.len() <= CLUSTER_ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match valid {
        true => Ok(id.to_string()),
        false => Err(MetaError::BadClusterId(id.to_string())),
    }
}

impl MetaProperties {
    /// The file's text, as Kafka writes it (without its timestamp comment).
    pub fn encode(&self) -> String {
        format!(
            "#Written by odradek; the cluster and node this data directory belongs to.\n\
             version={VERSION}\ncluster.id={}\nnode.id={}\n",
            self.cluster_id, self.node_id.0
        )
    }

    /// Parses the file at `path` (Java properties: `key=value` lines, `#` or `!` comments);
    /// keys this broker does not use (Kafka's `directory.id`) are ignored.
    pub fn decode(text: &str, path: &Path) -> Result<MetaProperties, MetaError> {
        let malformed = |why: String| MetaError::Malformed {
            path: path.to_path_buf(),
            why,
        };
        let (mut version, mut cluster, mut node) = (None, None, None);
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| malformed(format!("a line without '=': {line:?}")))?;
            let slot = match key.trim() {
                "version" => &mut version,
                "cluster.id" => &mut cluster,
                "node.id" => &mut node,
                _ => continue,
            };
            *slot = Some(value.trim().to_string());
        }
        match version.as_deref() {
            Some(VERSION) => {}
            other => return Err(malformed(format!("version {other:?}, not {VERSION}"))),
        }
        let cluster = cluster.ok_or_else(|| malformed("no cluster.id".into()))?;
        let cluster_id = cluster_id(&cluster).map_err(|e| malformed(e.to_string()))?;
        let node = node.ok_or_else(|| malformed("no node.id".into()))?;
        let node_id = node
            .parse::<i32>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| malformed(format!("node.id {node:?} is not a node id")))?;
        Ok(MetaProperties {
            cluster_id,
            node_id: NodeId(node_id),
        })
    }
}

/// The data directory's `meta.properties`, if it has one (blocking: at start, or in `format`).
pub fn read(dir: &Path) -> Result<Option<MetaProperties>, MetaError> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => MetaProperties::decode(&text, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MetaError::Io {
            op: "read",
            path,
            source,
        }),
    }
}

/// Writes `meta` into `dir` whole and crash-safely (blocking).
pub fn write(dir: &Path, meta: &MetaProperties) -> Result<(), MetaError> {
    crate::durable_file::replace_blocking(dir, FILE, meta.encode().as_bytes()).map_err(|e| {
        MetaError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    })
}

/// At start: the cluster id this node serves. A formatted directory must be this node's and
/// hold no other cluster's topics (`registry_cluster_id`: the topic registry's, if it exists).
/// An unformatted one is formatted with the registry's id, or `new_id` when it has none, if
/// `formats_itself` (a single node); a cluster member's is refused: its voters must share one
/// id, which only `odradek format` can give them all (a random one each would never agree).
pub fn check_at_start(
    dir: &Path,
    node_id: NodeId,
    registry_cluster_id: Option<&str>,
    formats_itself: bool,
    new_id: impl FnOnce() -> String,
) -> Result<String, MetaError> {
    let Some(meta) = read(dir)? else {
        if !formats_itself {
            return Err(MetaError::NotFormatted {
                dir: dir.to_path_buf(),
            });
        }
        let cluster_id = registry_cluster_id.map_or_else(new_id, str::to_string);
        write(
            dir,
            &MetaProperties {
                cluster_id: cluster_id.clone(),
                node_id,
            },
        )?;
        tracing::info!(%cluster_id, node_id = node_id.0, "data directory formatted");
        return Ok(cluster_id);
    };
    if meta.node_id != node_id {
        return Err(MetaError::OtherNode {
            dir: dir.to_path_buf(),
            formatted: meta.node_id.0,
            configured: node_id.0,
        });
    }
    match registry_cluster_id {
        Some(found) if found != meta.cluster_id => Err(MetaError::OtherClusterData {
            dir: dir.to_path_buf(),
            formatted: meta.cluster_id,
            found: found.to_string(),
        }),
        _ => Ok(meta.cluster_id),
    }
}

/// `odradek format`: formats `dir` for `cluster_id` and `node_id`. A directory already
/// formatted the same way is left as it is when `ignore_formatted` (Kafka's flag), else refused;
/// one formatted for another cluster, or holding another cluster's topics, is always refused.
pub fn format(
    dir: &Path,
    meta: &MetaProperties,
    registry_cluster_id: Option<&str>,
    ignore_formatted: bool,
) -> Result<bool, MetaError> {
    if let Some(found) = registry_cluster_id.filter(|found| *found != meta.cluster_id) {
        return Err(MetaError::FormattedForAnother {
            dir: dir.to_path_buf(),
            formatted: found.to_string(),
            wanted: meta.cluster_id.clone(),
        });
    }
    match read(dir)? {
        None => {
            write(dir, meta)?;
            Ok(true)
        }
        Some(existing) if existing == *meta => match ignore_formatted {
            true => Ok(false),
            false => Err(MetaError::AlreadyFormatted {
                dir: dir.to_path_buf(),
            }),
        },
        Some(existing) if existing.cluster_id == meta.cluster_id => Err(MetaError::OtherNode {
            dir: dir.to_path_buf(),
            formatted: existing.node_id.0,
            configured: meta.node_id.0,
        }),
        Some(existing) => Err(MetaError::FormattedForAnother {
            dir: dir.to_path_buf(),
            formatted: existing.cluster_id,
            wanted: meta.cluster_id.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(cluster: &str, node: i32) -> MetaProperties {
        MetaProperties {
            cluster_id: cluster.into(),
            node_id: NodeId(node),
        }
    }

    #[test]
    fn round_trips_and_reads_kafkas_file() {
        let path = Path::new("meta.properties");
        let ours = meta("abc-DEF_123", 7);
        assert_eq!(
            MetaProperties::decode(&ours.encode(), path).ok(),
            Some(ours)
        );
        // As Kafka 3.9's `kafka-storage.sh format` writes it.
        let kafka = "#\n#Thu Dec 03 10:00:00 UTC 2026\nnode.id=1\n\
                     directory.id=Zl2tFk1gQeGSvpw9nBZxhA\nversion=1\n\
                     cluster.id=MkU3OEVBNTcwNTJENDM2Qk\n";
        assert_eq!(
            MetaProperties::decode(kafka, path).ok(),
            Some(meta("MkU3OEVBNTcwNTJENDM2Qk", 1))
        );
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let path = Path::new("meta.properties");
        for bad in [
            "version=0\nbroker.id=1\ncluster.id=a\n",
            "version=1\nnode.id=1\n",
            "version=1\ncluster.id=a\n",
            "version=1\ncluster.id=a\nnode.id=-3\n",
            "version=1\ncluster.id=a b\nnode.id=1\n",
            "cluster.id=a\nnode.id=1\n",
            "garbage\n",
        ] {
            assert!(MetaProperties::decode(bad, path).is_err(), "{bad:?}");
        }
        assert!(cluster_id("").is_err() && cluster_id(&"x".repeat(65)).is_err());
    }

    #[test]
    fn a_directory_is_formatted_once_and_checked_at_every_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        let member = check_at_start(dir, NodeId(1), None, false, || unreachable!());
        assert!(matches!(member, Err(MetaError::NotFormatted { .. })));
        let started = check_at_start(dir, NodeId(1), None, true, || "fresh".into());
        assert_eq!(started.expect("first"), "fresh");
        let again = check_at_start(dir, NodeId(1), Some("fresh"), false, || unreachable!());
        assert_eq!(again.expect("again"), "fresh");
        let other_node = check_at_start(dir, NodeId(2), Some("fresh"), true, || unreachable!());
        assert!(matches!(other_node, Err(MetaError::OtherNode { .. })));
        let mixed_up = check_at_start(dir, NodeId(1), Some("elsewhere"), true, || unreachable!());
        assert!(matches!(mixed_up, Err(MetaError::OtherClusterData { .. })));

        assert!(matches!(
            format(dir, &meta("other", 1), None, true),
            Err(MetaError::FormattedForAnother { .. })
        ));
        assert!(matches!(
            format(dir, &meta("fresh", 1), None, false),
            Err(MetaError::AlreadyFormatted { .. })
        ));
        assert!(matches!(
            format(dir, &meta("fresh", 2), None, true),
            Err(MetaError::OtherNode { .. })
        ));
        assert!(!format(dir, &meta("fresh", 1), None, true).expect("same"));
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(format(empty.path(), &meta("c", 3), None, false).expect("formats"));
        assert!(matches!(
            format(empty.path(), &meta("c", 3), Some("d"), true),
            Err(MetaError::FormattedForAnother { .. })
        ));
    }
}
