//! OffsetCommit: a group's positions, written to `__consumer_offsets` and answered once
//! durable. A member's commit is checked against its generation; standalone consumers
//! (generation -1, no member id) may commit to a group without members. Hops to the group's
//! coordinator shard. Clients older than FindCoordinator (OffsetCommit v0 from Kafka 0.8
//! clients) commit without asking for a coordinator first, so a commit creates
//! `__consumer_offsets` when it is missing, as FindCoordinator does.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};

use crate::group::{self, CommitItem, GroupReply, GroupRequest};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::OffsetCommit;
pub const VERSIONS: (i16, i16) = (0, 9);
pub const RUNS_ON: RunsOn = RunsOn::GroupCoordinator;

pub async fn handle(ctx: &RequestContext, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = request.group_id.0.to_string();
    // Without the topic the commit is answered COORDINATOR_NOT_AVAILABLE below.
    group::ensure_offsets_topic(&ctx.shard).await;
    let topics: Vec<(String, Vec<CommitItem>)> = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
                    let (index, offset) = (p.partition_index, p.committed_offset);
                    (index, offset, p.committed_leader_epoch, metadata)
                })
                .collect();
            (t.name.0.to_string(), partitions)
        })
        .collect();
    let work = GroupRequest::Commit {
        group: group.clone(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation: request.generation_id_or_member_epoch,
        topics,
    };
    let codes = match group::call(&ctx.shard, &group, work).await {
        Some(GroupReply::Committed(codes)) if codes.len() == request.topics.len() => codes,
        _ => Vec::new(),
    };
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    let topics = request
        .topics
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let partitions = t
                .partitions
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    let code = codes
                        .get(i)
                        .and_then(|c| c.get(j))
                        .copied()
                        .unwrap_or(unavailable);
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
