//! The cluster metadata every shard reads: an immutable snapshot of the applied metadata log,
//! replaced whole by shard 0 each time it applies committed entries.

use std::collections::{BTreeMap, HashMap};

use odradek_storage::LeaderEpoch;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::ids::{NodeId, PartitionId};
use crate::quorum::image::{BrokerRegistration, ClusterImage};

/// One topic as the metadata log knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (Kafka names), validated when set.
    pub configs: BTreeMap<String, String>,
    /// One per partition, in partition order (`partitions` of them).
    #[serde(default)]
    pub partition_states: Vec<PartitionState>,
}

impl TopicMeta {
    /// The replicas of its first partition (every partition has as many).
    pub fn replication_factor(&self) -> i16 {
        self.partition_states
            .first()
            .map_or(1, |p| p.replicas.len() as i16)
    }
}

/// Where one partition lives and who leads it (Kafka's PartitionRecord).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Replica brokers, the preferred leader first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas: those that hold every record below the high watermark (the
    /// leader's AlterPartition changes it; a fenced broker leaves it).
    pub isr: Vec<i32>,
    /// `-1`: none (every ISR member is fenced).
    pub leader: i32,
    /// Bumped each time the leader changes: clients and followers are fenced by it.
    pub leader_epoch: i32,
    /// Bumped by every change of this record.
    pub partition_epoch: i32,
}

impl PartitionState {
    /// A new partition on `replicas`, led by the first, with every replica in `live` in sync
    /// (an empty log is as far as any; Kafka's new partitions start so too).
    pub fn new(replicas: Vec<i32>, live: &[i32]) -> PartitionState {
        let leader = replicas.first().copied().unwrap_or(-1);
        let isr = replicas
            .iter()
            .copied()
            .filter(|r| *r == leader || live.contains(r))
            .collect();
        PartitionState {
            replicas,
            isr,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }
}

/// The address clients are told to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub node_id: NodeId,
    pub host: String,
    pub port: u16,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// Immutable cluster metadata; shared across shards as `Arc<MetadataSnapshot>`.
#[derive(Clone, Debug)]
pub struct MetadataSnapshot {
    /// Bumped by every change.
    pub version: u64,
    /// This node, as clients reach it.
    pub broker: BrokerEndpoint,
    pub cluster_id: String,
    /// The active controller (the metadata quorum's leader), when one is known.
    pub controller: Option<NodeId>,
    /// Every registered broker, fenced ones too.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<String, TopicMeta>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// Broker settings changed at run time (Kafka names), from the metadata log.
    pub broker_overrides: BTreeMap<String, String>,
    /// The static broker config with `broker_overrides` applied.
    pub broker_config: Arc<BrokerConfig>,
}

impl MetadataSnapshot {
    /// The snapshot of `image` for this node (`broker`).
    pub fn of_image(
        version: u64,
        broker: BrokerEndpoint,
        cluster_id: String,
        controller: Option<NodeId>,
        image: &ClusterImage,
        broker_config: Arc<BrokerConfig>,
    ) -> Self {
        let topics = image.topics.clone();
        let topic_names_by_id = topics.values().map(|t| (t.id, t.name.clone())).collect();
        MetadataSnapshot {
            version,
            broker,
            cluster_id,
            controller,
            brokers: image.brokers.clone(),
            topics,
            topic_names_by_id,
            broker_overrides: image.broker_configs.clone(),
            broker_config,
        }
    }

    /// The state of partition `partition` of `topic`, if both exist.
    pub fn partition(&self, topic: &str, partition: PartitionId) -> Option<&PartitionState> {
        let index = usize::try_from(partition.0).ok()?;
        self.topics.get(topic)?.partition_states.get(index)
    }

    /// Whether this node leads `partition` of `topic`.
    pub fn leads(&self, topic: &str, partition: PartitionId) -> bool {
        self.partition(topic, partition)
            .is_some_and(|p| p.leader == self.broker.node_id.0)
    }

    /// The unfenced brokers, by id: the ones clients are told about.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// A broker's endpoint, this node's own as it serves (its bound port) for itself.
    pub fn endpoint_of(&self, node_id: i32) -> Option<BrokerEndpoint> {
        if node_id == self.broker.node_id.0 {
            return Some(self.broker.clone());
        }
        self.brokers.get(&node_id).map(|b| BrokerEndpoint {
            node_id: NodeId(b.node_id),
            host: b.host.clone(),
            port: b.port,
            rack: b.rack.clone(),
        })
    }

    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicMeta> {
        self.topic_names_by_id
            .get(id)
            .and_then(|name| self.topics.get(name))
    }

    /// The epoch of the leader of `partition` of `topic` (0 for one the log does not know).
    pub fn leader_epoch(&self, topic: &str, partition: PartitionId) -> LeaderEpoch {
        self.partition(topic, partition)
            .map_or(LeaderEpoch::SINGLE_NODE, |p| LeaderEpoch(p.leader_epoch))
    }
}
