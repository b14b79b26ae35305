//! Consumer groups and committed offsets: the group coordinator.
//!
//! A group's coordinator is the shard owning partition `hash(group.id) %
//! offsets.topic.num.partitions` of the internal topic `__consumer_offsets` (Kafka's own hash:
//! Java's `String.hashCode`, sign bit cleared). Its state lives on that shard only (in the
//! shard context's group table, no locks); a request reaching another shard hops there as a
//! [`ShardRequest::Group`]. Commits are records of that partition (see [`offsets`]), answered
//! once durable, and replayed on start. Like Kafka, the topic is created by the first
//! FindCoordinator for a group.
//!
//! Layout:
//! - [`state`]: one group's state machine (Kafka's classic rebalance protocol): JoinGroup and
//!   the group's shape, no I/O. `membership`: the rest of a member's life (SyncGroup,
//!   Heartbeat, LeaveGroup, session expiry, commit checks, offset expiry), more methods of the
//!   same [`state::Group`]. `state_tests`: the state machine driven by hand.
//! - [`coordinator`]: the shard's table of groups ([`coordinator::GroupTable`], on the shard
//!   context), each request applied to it, commits written to the log.
//! - [`housekeeping`]: replay at start, creating `__consumer_offsets` on first use, the tick
//!   that expires sessions and ends rebalances, offset expiry.
//! - [`offsets`]: the `__consumer_offsets` key/value layout and record batches.

pub mod coordinator;
pub mod housekeeping;
mod membership;
pub mod offsets;
pub mod state;
#[cfg(test)]
mod state_tests;
#[cfg(test)]
mod wire_tests;

use bytes::Bytes;

use crate::ids::{PartitionId, ShardId};
use crate::metadata::{BrokerEndpoint, MetadataSnapshot};
use crate::shard::ShardCtx;
use crate::shard_msg::{ShardReply, ShardRequest};
use state::{Committed, JoinArgs, JoinResult, SyncResult};

/// The internal topic of committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// `(topic, partitions)` lists, as requests name them.
pub type TopicPartitions = Vec<(String, Vec<i32>)>;

/// Committed positions per topic: `(partition, committed or None)`.
pub type FoundOffsets = Vec<(String, Vec<(i32, Option<Committed>)>)>;

/// One partition's commit: `(partition, offset, leader epoch, metadata)`.
pub type CommitItem = (i32, i64, i32, Option<String>);

/// Group work for the coordinator shard of `group`.
#[derive(Debug)]
pub enum GroupRequest {
    Join {
        group: String,
        args: JoinArgs,
    },
    Sync {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        /// v5+: what the member believes the group's protocol type and name are.
        protocol: (Option<String>, Option<String>),
        assignments: Vec<(String, Bytes)>,
    },
    Heartbeat {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
    },
    /// `(member id, instance id)` of each leaving member.
    Leave {
        group: String,
        members: Vec<(String, Option<String>)>,
    },
    Commit {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        topics: Vec<(String, Vec<CommitItem>)>,
    },
    /// `None`: every committed partition of the group.
    FetchOffsets {
        group: String,
        topics: Option<TopicPartitions>,
    },
    /// The groups of this shard (ListGroups), filtered by state name when not empty.
    List {
        states: Vec<String>,
    },
    Describe {
        group: String,
    },
    Delete {
        group: String,
    },
    DeleteOffsets {
        group: String,
        topics: TopicPartitions,
    },
}

impl GroupRequest {
    /// The group the request is about (`None` for List, which is about every group here).
    pub fn group(&self) -> Option<&str> {
        match self {
            GroupRequest::Join { group, .. }
            | GroupRequest::Sync { group, .. }
            | GroupRequest::Heartbeat { group, .. }
            | GroupRequest::Leave { group, .. }
            | GroupRequest::Commit { group, .. }
            | GroupRequest::FetchOffsets { group, .. }
            | GroupRequest::Describe { group }
            | GroupRequest::Delete { group }
            | GroupRequest::DeleteOffsets { group, .. } => Some(group),
            GroupRequest::List { .. } => None,
        }
    }
}

/// One group as DescribeGroups shows it.
#[derive(Clone, Debug, Default)]
pub struct GroupDescription {
    pub error: i16,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Clone, Debug, Default)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// The coordinator's answers.
#[derive(Debug)]
pub enum GroupReply {
    Join(JoinResult),
    Sync(SyncResult),
    /// One error code (Heartbeat, DeleteGroups).
    Code(i16),
    /// One code per leaving member.
    Left(Vec<i16>),
    /// One code per partition, per topic, in the request's order.
    Committed(Vec<Vec<i16>>),
    Offsets {
        error: i16,
        topics: FoundOffsets,
    },
    /// `(group id, protocol type, state)`.
    Listed(Vec<(String, String, String)>),
    Described(GroupDescription),
    /// The group's error, then one code per partition, per topic.
    OffsetsDeleted(i16, Vec<Vec<i16>>),
}

/// Java's `String.hashCode` over UTF-16 code units, as Kafka computes a group's partition.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition holding `group`.
pub fn partition_for(ctx: &ShardCtx, group: &str) -> i32 {
    let count = ctx
        .metadata()
        .topic(OFFSETS_TOPIC)
        .map_or(ctx.config.offsets_topic_num_partitions as i32, |t| {
            t.partitions
        })
        .max(1);
    (java_hash(group) & 0x7fff_ffff) % count
}

/// The broker coordinating `group`: the leader of its `__consumer_offsets` partition (`None`
/// while that partition has no leader, or before the topic exists).
pub fn coordinator_of(
    ctx: &ShardCtx,
    snapshot: &MetadataSnapshot,
    group: &str,
) -> Option<BrokerEndpoint> {
    let partition = PartitionId(partition_for(ctx, group));
    let leader = snapshot.partition(OFFSETS_TOPIC, partition)?.leader;
    snapshot.endpoint_of(leader)
}

/// Whether this broker coordinates `group` (it leads the group's offsets partition).
pub fn coordinates(ctx: &ShardCtx, group: &str) -> bool {
    ctx.metadata()
        .leads(OFFSETS_TOPIC, PartitionId(partition_for(ctx, group)))
}

/// Whether the commits of `group`'s offsets partition are loaded at its current leader epoch.
pub fn loaded(ctx: &ShardCtx, group: &str) -> bool {
    let partition = partition_for(ctx, group);
    let epoch = ctx
        .metadata()
        .partition(OFFSETS_TOPIC, PartitionId(partition))
        .map(|p| p.leader_epoch);
    epoch.is_some_and(|epoch| ctx.groups.is_loaded(partition, epoch))
}

/// The shard coordinating `group`.
pub fn coordinator_shard(ctx: &ShardCtx, group: &str) -> ShardId {
    ctx.owner_of(OFFSETS_TOPIC, PartitionId(partition_for(ctx, group)))
}

/// Runs `request` on the coordinator shard of `group`; `None` if that shard cannot answer.
pub async fn call(ctx: &ShardCtx, group: &str, request: GroupRequest) -> Option<GroupReply> {
    call_shard(ctx, coordinator_shard(ctx, group), request).await
}

/// Runs `request` on `shard`.
pub async fn call_shard(
    ctx: &ShardCtx,
    shard: ShardId,
    request: GroupRequest,
) -> Option<GroupReply> {
    match ctx.router.call(shard, ShardRequest::Group(request)).await {
        ShardReply::Group(reply) => Some(reply),
        _ => None,
    }
}

pub use coordinator::serve;
pub use housekeeping::{ensure_offsets_topic, start};
