//! Metadata: the live brokers, the cluster id, the active controller, and topics with their
//! partitions (leader, leader epoch, replicas, ISR, offline replicas), from the snapshot of
//! the metadata log: every broker answers for the whole cluster. The controller named is this
//! broker (see `response`).
//!
//! Unknown topics are created when the broker allows it (`auto.create.topics.enable`) and the
//! client asks (v4+; always asked before v4), with `num.partitions` partitions, through the
//! control plane on shard 0. Runs on any shard.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse};
use uuid::Uuid;

use super::util::{authorized_operations, operations, str_bytes, topic_name};
use crate::control::{self, validate_topic_name, ControlRequest};
use crate::metadata::{MetadataSnapshot, TopicMeta};
use crate::quorum::image::NO_LEADER;
use crate::session::RequestContext;
use crate::shard::ShardCtx;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::Metadata;
pub const VERSIONS: (i16, i16) = (0, 12);
pub const RUNS_ON: RunsOn = RunsOn::Connection;

/// Kafka's "authorized operations not computed" sentinel.
const OPERATIONS_UNKNOWN: i32 = i32::MIN;

pub async fn handle(ctx: &RequestContext, request: MetadataRequest) -> MetadataResponse {
    let version = ctx.version();
    let allow_create = ctx.shard.config.auto_create_topics_enable
        && (version < 4 || request.allow_auto_topic_creation);
    let snapshot = ctx.shard.metadata();
    let topic_ops = authorized_operations(
        request.include_topic_authorized_operations,
        operations::TOPIC,
    );
    let topics = match request.topics {
        // v0: an empty list means every topic; v1+: null does.
        Some(list) if !(version == 0 && list.is_empty()) => {
            let mut topics = Vec::with_capacity(list.len());
            for wanted in list {
                let topic = match wanted.name {
                    Some(name) => {
                        let name = name.0.as_str();
                        by_name(&ctx.shard, &snapshot, name, allow_create, topic_ops).await
                    }
                    None => by_id(&snapshot, wanted.topic_id, topic_ops),
                };
                topics.push(topic);
            }
            topics
        }
        _ => snapshot
            .topics
            .values()
            .map(|meta| describe_topic(&snapshot, meta, topic_ops))
            .collect(),
    };
    let cluster_ops = authorized_operations(
        request.include_cluster_authorized_operations,
        operations::CLUSTER,
    );
    response(&snapshot, topics, cluster_ops)
}

async fn by_name(
    ctx: &Rc<ShardCtx>,
    snapshot: &MetadataSnapshot,
    name: &str,
    allow_create: bool,
    topic_ops: i32,
) -> MetadataResponseTopic {
    if let Some(meta) = snapshot.topic(name) {
        return describe_topic(snapshot, meta, topic_ops);
    }
    if let Err(error) = validate_topic_name(name) {
        return topic_error(name, error.code());
    }
    if !allow_create {
        return topic_error(name, ResponseError::UnknownTopicOrPartition.code());
    }
    let request = ControlRequest::CreateTopic {
        name: name.to_string(),
        partitions: ctx.config.num_partitions as i32,
        replication_factor: None,
        assignment: None,
        configs: Default::default(),
        validate_only: false,
    };
    match control::call_topic(ctx, request).await {
        Ok(meta) => describe_topic(snapshot, &meta, topic_ops),
        // Created meanwhile by another request: the new snapshot has it.
        Err(_) => match ctx.metadata().topic(name) {
            Some(meta) => describe_topic(snapshot, meta, topic_ops),
            None => topic_error(name, ResponseError::LeaderNotAvailable.code()),
        },
    }
}

fn by_id(snapshot: &MetadataSnapshot, id: Uuid, topic_ops: i32) -> MetadataResponseTopic {
    match snapshot.topic_by_id(&id) {
        Some(meta) => describe_topic(snapshot, meta, topic_ops),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code())
            .with_topic_authorized_operations(OPERATIONS_UNKNOWN),
    }
}

fn topic_error(name: &str, error_code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_error_code(error_code)
        .with_topic_authorized_operations(OPERATIONS_UNKNOWN)
}

fn describe_topic(
    snapshot: &MetadataSnapshot,
    meta: &TopicMeta,
    topic_ops: i32,
) -> MetadataResponseTopic {
    let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let partitions = meta
        .partition_states
        .iter()
        .enumerate()
        .map(|(index, state)| {
            let offline: Vec<i32> = state
                .replicas
                .iter()
                .copied()
                .filter(|r| snapshot.brokers.get(r).is_none_or(|b| b.fenced))
                .collect();
            let error = match state.leader {
                NO_LEADER => ResponseError::LeaderNotAvailable.code(),
                _ => 0,
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(state.leader))
                .with_leader_epoch(state.leader_epoch)
                .with_replica_nodes(ids(&state.replicas))
                .with_isr_nodes(ids(&state.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&meta.name)))
        .with_topic_id(meta.id)
        .with_is_internal(meta.name == crate::group::OFFSETS_TOPIC)
        .with_partitions(partitions)
        .with_topic_authorized_operations(topic_ops)
}

fn response(
    snapshot: &MetadataSnapshot,
    topics: Vec<MetadataResponseTopic>,
    cluster_ops: i32,
) -> MetadataResponse {
    let brokers = snapshot
        .live_brokers()
        .filter_map(|b| snapshot.endpoint_of(b.node_id))
        .map(|endpoint| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(endpoint.node_id.0))
                .with_host(str_bytes(&endpoint.host))
                .with_port(i32::from(endpoint.port))
                .with_rack(endpoint.rack.as_deref().map(str_bytes))
        })
        .collect();
    // As Kafka's KRaft brokers do, the controller clients are told is a live broker, not the
    // quorum's leader: this one, which takes admin requests and proposes them to the quorum
    // (forwarded to its leader). A client then never waits on a dead controller's address
    // during an election. DescribeCluster names the real active controller.
    let controller = snapshot.broker.node_id.0;
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(&snapshot.cluster_id)))
        .with_controller_id(BrokerId(controller))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}
