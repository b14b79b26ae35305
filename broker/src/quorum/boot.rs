//! Opening the metadata quorum at start (blocking, before any shard runs): the storage, the
//! voters, the image as of the locally committed log, and the `RawNode` over them.

use std::fmt::Write as _;
use std::path::Path;

use raft::prelude::{ConfState, Snapshot};
use raft::{Config, RawNode, Storage};

use super::image::{proposal_of, ClusterImage, Command};
use super::node::{raft_id, ELECTION_TICKS, HEARTBEAT_TICKS};
use super::storage::DiskStorage;
use super::{QuorumStoreError, METADATA_LOG_DIR};
use crate::registry::Registry;
use crate::settings::Voter;

/// Why the quorum cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Store(#[from] QuorumStoreError),
    #[error("the metadata log: {0}")]
    Raft(#[from] raft::Error),
    #[error(
        "the metadata log in {dir} was formed by voters {stored:?}, but controller.quorum.voters \
         names {configured:?}: the quorum's voters cannot change (start with the voters it was \
         formed with, or format a new data directory)"
    )]
    OtherVoters {
        dir: String,
        stored: Vec<i32>,
        configured: Vec<i32>,
    },
    #[error(
        "{0} holds a single node's topics (topics.registry) but controller.quorum.voters names \
         other nodes: a single node's data cannot seed a new cluster; start it as a single node, \
         or use an empty data directory"
    )]
    RegistryInCluster(String),
}

/// The quorum as opened.
pub struct Boot {
    pub node: RawNode<DiskStorage>,
    /// The image as of `applied` (the locally committed log).
    pub image: ClusterImage,
    pub applied: u64,
    /// The bytes of the entries applied after the snapshot.
    pub bytes_since_snapshot: u64,
    pub voters: Vec<i32>,
}

/// Opens the quorum of node `me` in `data_dir`. `voters` empty: a one-voter quorum of `me`.
/// A data directory of the single-node broker (a registry with topics, no metadata log) is
/// imported: its image becomes the log's first snapshot.
pub fn open_blocking(
    data_dir: &Path,
    me: i32,
    voters: &[Voter],
    registry: &Registry,
) -> Result<Boot, BootError> {
    let mut voter_ids: Vec<i32> = voters.iter().map(|v| v.node_id).collect();
    if voter_ids.is_empty() {
        voter_ids.push(me);
    }
    voter_ids.sort_unstable();
    let dir = data_dir.join(METADATA_LOG_DIR);
    let mut storage = DiskStorage::open(&dir)?;
    let stored: Vec<i32> = storage
        .conf_state()
        .voters
        .iter()
        .filter_map(|id| super::node::node_id_of(*id))
        .collect();
    let conf = ConfState {
        voters: voter_ids.iter().map(|id| raft_id(*id)).collect(),
        ..Default::default()
    };
    if stored.is_empty() {
        let has_registry_data = !registry.topics.is_empty() || !registry.broker_configs.is_empty();
        if has_registry_data && voter_ids != [me] {
            return Err(BootError::RegistryInCluster(data_dir.display().to_string()));
        }
        if has_registry_data {
            import_registry(&mut storage, me, registry, conf)?;
            tracing::info!(
                topics = registry.topics.len(),
                "the topic registry is now the metadata log's first snapshot"
            );
        } else {
            storage.initialize_with_conf_state(conf)?;
        }
    } else {
        let mut stored = stored;
        stored.sort_unstable();
        if stored != voter_ids {
            return Err(BootError::OtherVoters {
                dir: dir.display().to_string(),
                stored,
                configured: voter_ids,
            });
        }
    }
    let (image, applied, bytes_since_snapshot) = replay(&storage)?;
    let config = Config {
        id: raft_id(me),
        election_tick: ELECTION_TICKS,
        heartbeat_tick: HEARTBEAT_TICKS,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    };
    let mut node = RawNode::new(&config, storage, &logger())?;
    if voter_ids == [me] {
        // Alone: no reason to wait an election timeout.
        node.campaign()?;
    }
    Ok(Boot {
        node,
        image,
        applied,
        bytes_since_snapshot,
        voters: voter_ids,
    })
}

fn import_registry(
    storage: &mut DiskStorage,
    me: i32,
    registry: &Registry,
    conf: ConfState,
) -> Result<(), BootError> {
    let mut image = ClusterImage::default();
    image
        .apply(Command::Import {
            node_id: me,
            topics: registry.topics.clone(),
            broker_configs: registry.broker_configs.clone(),
        })
        .map_err(|e| raft::Error::ConfigInvalid(e.message))?;
    let mut snapshot = Snapshot {
        data: serde_json::to_vec(&image)
            .expect("the image encodes")
            .into(),
        ..Default::default()
    };
    let meta = snapshot.mut_metadata();
    meta.index = 1;
    meta.term = 1;
    meta.set_conf_state(conf);
    storage.apply_snapshot(snapshot)?;
    Ok(())
}

/// The image of the snapshot and the committed entries after it, the last index applied, and
/// the bytes of the entries applied after the snapshot.
fn replay(storage: &DiskStorage) -> Result<(ClusterImage, u64, u64), BootError> {
    let snapshot = storage.snapshot(0, 0)?;
    let mut applied = snapshot.get_metadata().index;
    let mut image = if snapshot.get_data().is_empty() {
        ClusterImage::default()
    } else {
        serde_json::from_slice(snapshot.get_data()).map_err(|e| {
            raft::Error::Store(raft::StorageError::Other(
                format!("the metadata snapshot does not decode: {e}").into(),
            ))
        })?
    };
    let commit = storage.hard_state().commit;
    let mut bytes = 0;
    if commit > applied {
        let entries = storage.entries(
            applied + 1,
            commit + 1,
            None,
            raft::GetEntriesContext::empty(false),
        )?;
        for entry in entries {
            applied = entry.index;
            bytes += entry.data.len() as u64;
            if let Some(proposal) = proposal_of(&entry) {
                let _ = image.apply(proposal.command);
            }
        }
    }
    Ok((image, applied, bytes))
}

/// raft-rs logs through slog: its records go to `tracing`, under the target `raft`.
fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}

struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        let mut fields = KeyValues(String::new());
        let _ = slog::KV::serialize(&record.kv(), record, &mut fields);
        let _ = slog::KV::serialize(values, record, &mut fields);
        let message = record.msg();
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{message}{}", fields.0)
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{message}{}", fields.0),
            slog::Level::Info => tracing::info!(target: "raft", "{message}{}", fields.0),
            slog::Level::Debug => tracing::debug!(target: "raft", "{message}{}", fields.0),
            slog::Level::Trace => tracing::trace!(target: "raft", "{message}{}", fields.0),
        }
        Ok(())
    }
}

struct KeyValues(String);

impl slog::Serializer for KeyValues {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}
