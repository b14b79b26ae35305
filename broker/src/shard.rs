//! The state of one shard (one core): its config, the metadata snapshot, the partitions it owns,
//! its storage memory, its router, the consumer groups it coordinates, and (on shard 0) the
//! control plane.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};

use glommio::channels::channel_mesh::Senders;
use odradek_storage::{PartitionLog, ShardStorage};

use crate::config::BrokerConfig;
use crate::control::ControlPlane;
use crate::fetch_session::FetchSessions;
use crate::group::coordinator::GroupTable;
use crate::ids::{shard_for, PartitionId, ShardId, TopicPartition};
use crate::metadata::MetadataSnapshot;
use crate::producer_ids::ProducerIds;
use crate::quorum::node::QuorumStatus;
use crate::replication::{Notify, Replica};
use crate::router::{MeshMsg, Router};

/// What every shard of the node shares (the one lock here is off the data path: DescribeQuorum
/// reads it, shard 0's quorum driver writes it).
#[derive(Default)]
pub struct NodeShared {
    /// Idempotent producers' ids.
    pub producer_ids: ProducerIds,
    /// The metadata quorum as shard 0's driver last saw it.
    pub quorum_status: Mutex<QuorumStatus>,
}

/// Everything a handler needs on its shard. Shared within the shard as `Rc<ShardCtx>`.
pub struct ShardCtx {
    pub shard: ShardId,
    pub shard_count: usize,
    pub config: Arc<BrokerConfig>,
    /// Replaced whole by shard 0 on every topic change.
    pub metadata: RefCell<Arc<MetadataSnapshot>>,
    /// The partitions this shard owns.
    pub partitions: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    /// Their replication state (as leader or follower), beside each log.
    pub replicas: RefCell<HashMap<TopicPartition, Rc<Replica>>>,
    /// Wakes this shard's ISR task (a follower may have caught up).
    pub isr_wakeup: Notify,
    /// Wakes this shard's replica fetcher supervisor (leaders may have changed).
    pub fetcher_wakeup: Notify,
    pub storage: Rc<ShardStorage>,
    pub router: Router,
    /// The way to the metadata quorum; set on shard 0 only, once the quorum starts.
    pub control: OnceCell<ControlPlane>,
    /// What the node's shards share.
    pub node: Arc<NodeShared>,
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
        node: Arc<NodeShared>,
    ) -> Rc<ShardCtx> {
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
            replicas: RefCell::new(HashMap::new()),
            isr_wakeup: Notify::default(),
            fetcher_wakeup: Notify::default(),
            storage,
            router: Router::new(shard, senders, weak.clone()),
            control: OnceCell::new(),
            node,
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

    /// The replication state of a partition this shard owns (created on first use).
    pub fn replica(&self, tp: &TopicPartition) -> Rc<Replica> {
        if let Some(replica) = self.replicas.borrow().get(tp) {
            return Rc::clone(replica);
        }
        let replica = Rc::new(Replica::default());
        self.replicas
            .borrow_mut()
            .insert(tp.clone(), Rc::clone(&replica));
        replica
    }
}
