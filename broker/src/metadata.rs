//! The topic metadata every shard reads: an immutable snapshot, replaced whole by shard 0.

use std::collections::{BTreeMap, HashMap};

use odradek_storage::LeaderEpoch;
use uuid::Uuid;

use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::ids::{NodeId, PartitionId};

/// One topic as the registry knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (Kafka names), validated when set.
    pub configs: BTreeMap<String, String>,
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

/// Immutable topic metadata; shared across shards as `Arc<MetadataSnapshot>`.
#[derive(Clone, Debug)]
pub struct MetadataSnapshot {
    /// Bumped by every change.
    pub version: u64,
    pub broker: BrokerEndpoint,
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMeta>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// Broker settings changed at run time (Kafka names), as stored in the registry.
    pub broker_overrides: BTreeMap<String, String>,
    /// The static broker config with `broker_overrides` applied.
    pub broker_config: Arc<BrokerConfig>,
}

impl MetadataSnapshot {
    pub fn new(
        version: u64,
        broker: BrokerEndpoint,
        cluster_id: String,
        topics: BTreeMap<String, TopicMeta>,
        broker_overrides: BTreeMap<String, String>,
        broker_config: Arc<BrokerConfig>,
    ) -> Self {
        let topic_names_by_id = topics.values().map(|t| (t.id, t.name.clone())).collect();
        MetadataSnapshot {
            version,
            broker,
            cluster_id,
            topics,
            topic_names_by_id,
            broker_overrides,
            broker_config,
        }
    }

    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicMeta> {
        self.topic_names_by_id
            .get(id)
            .and_then(|name| self.topics.get(name))
    }

    /// The epoch of `tp`'s leader. On a single node this broker has led every partition since
    /// it was created, at epoch 0; the cluster's controller will keep one per partition here.
    pub fn leader_epoch(&self, _topic: &str, _partition: PartitionId) -> LeaderEpoch {
        LeaderEpoch::SINGLE_NODE
    }

    /// A new snapshot with `topics` replaced and the version bumped.
    pub fn with_topics(&self, topics: BTreeMap<String, TopicMeta>) -> MetadataSnapshot {
        MetadataSnapshot::new(
            self.version + 1,
            self.broker.clone(),
            self.cluster_id.clone(),
            topics,
            self.broker_overrides.clone(),
            Arc::clone(&self.broker_config),
        )
    }

    /// A new snapshot with new run-time broker settings and the version bumped.
    pub fn with_broker_config(
        &self,
        broker_overrides: BTreeMap<String, String>,
        broker_config: Arc<BrokerConfig>,
    ) -> MetadataSnapshot {
        MetadataSnapshot::new(
            self.version + 1,
            self.broker.clone(),
            self.cluster_id.clone(),
            self.topics.clone(),
            broker_overrides,
            broker_config,
        )
    }
}
