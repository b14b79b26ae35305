//! OffsetFetch: a group's committed positions (-1 where nothing is committed; every committed
//! partition when no topics are named). v8+ asks for many groups at once, each answered by its
//! own coordinator shard.

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse};

use super::util::{str_bytes, topic_name};
use crate::group::state::Committed;
use crate::group::{self, FoundOffsets as Found, GroupReply, GroupRequest, TopicPartitions};
use crate::session::RequestContext;
use crate::shard::ShardCtx;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::OffsetFetch;
pub const VERSIONS: (i16, i16) = (0, 9);
pub const RUNS_ON: RunsOn = RunsOn::GroupCoordinator;

pub async fn handle(ctx: &RequestContext, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let version = ctx.version();
    if version >= 8 {
        let lookups = request.groups.into_iter().map(|g| {
            let topics = g.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            async move {
                let (error, found) = fetch(&ctx.shard, &g.group_id.0, topics).await;
                group_response(g.group_id, error, found)
            }
        });
        let groups = join_all(lookups).await;
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let (error, found) = fetch(&ctx.shard, &request.group_id.0, topics).await;
    let topics = found
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, committed)| {
                    let (offset, epoch, metadata) = fields(committed);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(if version >= 5 { epoch } else { -1 })
                        .with_metadata(Some(str_bytes(&metadata)))
                        .with_error_code(if version < 2 { error } else { 0 })
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(partitions)
        })
        .collect();
    let response = OffsetFetchResponse::default().with_topics(topics);
    match version >= 2 {
        true => response.with_error_code(error),
        false => response,
    }
}

/// `(offset, leader epoch, metadata)`, or -1 and nothing when not committed.
fn fields(committed: Option<Committed>) -> (i64, i32, String) {
    match committed {
        Some(c) => (c.offset, c.leader_epoch, c.metadata),
        None => (-1, -1, String::new()),
    }
}

async fn fetch(ctx: &ShardCtx, group: &str, topics: Option<TopicPartitions>) -> (i16, Found) {
    // As for OffsetCommit: Kafka 0.8 clients fetch offsets without FindCoordinator first.
    group::ensure_offsets_topic(ctx).await;
    let asked = topics.clone();
    let work = GroupRequest::FetchOffsets {
        group: group.to_string(),
        topics,
    };
    match group::call(ctx, group, work).await {
        Some(GroupReply::Offsets { error: 0, topics }) => (0, topics),
        Some(GroupReply::Offsets { error, .. }) => (error, unanswered(asked)),
        _ => (
            ResponseError::CoordinatorNotAvailable.code(),
            unanswered(asked),
        ),
    }
}

/// Every asked partition with nothing committed (the group-level error says why).
fn unanswered(asked: Option<TopicPartitions>) -> Found {
    asked
        .unwrap_or_default()
        .into_iter()
        .map(|(topic, partitions)| (topic, partitions.into_iter().map(|p| (p, None)).collect()))
        .collect()
}

fn group_response(group_id: GroupId, error: i16, found: Found) -> OffsetFetchResponseGroup {
    let topics = found
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, committed)| {
                    let (offset, epoch, metadata) = fields(committed);
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(str_bytes(&metadata)))
                })
                .collect();
            OffsetFetchResponseTopics::default()
                .with_name(topic_name(&topic))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponseGroup::default()
        .with_group_id(group_id)
        .with_topics(topics)
        .with_error_code(error)
}
