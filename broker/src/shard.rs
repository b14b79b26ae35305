//! The state of one shard (one core): its config, the metadata snapshot, the partitions it owns,
//! its storage memory, its router, the consumer groups it coordinates, and (on shard 0) the
//! control plane.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use glommio::channels::channel_mesh::Senders;
use odradek_storage::{PartitionLog, ShardStorage};

use crate::config::BrokerConfig;
use crate::control::ControlPlane;
use crate::fetch_session::FetchSessions;
use crate::group::coordinator::GroupTable;
use crate::ids::{shard_for, PartitionId, ShardId, TopicPartition};
use crate::metadata::MetadataSnapshot;
use crate::producer_ids::ProducerIds;
use crate::router::{MeshMsg, Router};

/// Everything a handler needs on its shard. Shared within the shard as `Rc<ShardCtx>`.
pub struct ShardCtx {
    pub shard: ShardId,
    pub shard_count: usize,
    pub config: Arc<BrokerConfig>,
    /// Replaced whole by shard 0 on every topic change.
    pub metadata: RefCell<Arc<MetadataSnapshot>>,
    /// The partitions this shard owns.
    pub partitions: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    pub storage: Rc<ShardStorage>,
    pub router: Router,
    /// The topic registry and its operations; `Some` on shard 0 only.
    pub control: Option<ControlPlane>,
    /// Idempotent producers' ids, shared by every shard.
    pub producer_ids: Arc<ProducerIds>,
    /// Fetch sessions (KIP-227) of this shard's connections.
    pub fetch_sessions: RefCell<FetchSessions>,
    /// The consumer groups this shard coordinates.
    pub groups: GroupTable,
}

impl ShardCtx {
    pub fn new(
        shard: ShardId,
        shard_count: usize,
        config: Arc<BrokerConfig>,
        metadata: Arc<MetadataSnapshot>,
        storage: Rc<ShardStorage>,
        senders: Option<Senders<MeshMsg>>,
        producer_ids: Arc<ProducerIds>,
    ) -> Rc<ShardCtx> {
        let control = (shard.0 == 0).then(|| ControlPlane::new(config.data_dir.clone()));
        // The broker-wide bound, split over the shards (rounded up).
        let session_slots = config
            .max_incremental_fetch_session_cache_slots
            .div_ceil(shard_count);
        let fetch_sessions = FetchSessions::new(session_slots, shard.0 as u32, shard_count as u32);
        Rc::new_cyclic(|weak: &Weak<ShardCtx>| ShardCtx {
            shard,
            shard_count,
            config,
            metadata: RefCell::new(metadata),
            partitions: RefCell::new(HashMap::new()),
            storage,
            router: Router::new(shard, senders, weak.clone()),
            control,
            producer_ids,
            fetch_sessions: RefCell::new(fetch_sessions),
            groups: GroupTable::default(),
        })
    }

    /// The current metadata snapshot (cheap: an `Arc` clone).
    pub fn metadata(&self) -> Arc<MetadataSnapshot> {
        Arc::clone(&self.metadata.borrow())
    }

    /// The shard owning `partition` of `topic`.
    pub fn owner_of(&self, topic: &str, partition: PartitionId) -> ShardId {
        shard_for(topic, partition, self.shard_count)
    }

    /// The log of a partition this shard owns.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Rc<PartitionLog>> {
        self.partitions.borrow().get(tp).cloned()
    }
}
