//! OffsetDelete: removes a group's committed offsets for some partitions (tombstones in
//! `__consumer_offsets`). Refused with GROUP_SUBSCRIBED_TO_TOPIC while the group has members.
//! Hops to the group's coordinator shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse};

use crate::group::{self, GroupReply, GroupRequest};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::OffsetDelete;
pub const VERSIONS: (i16, i16) = (0, 0);
pub const RUNS_ON: RunsOn = RunsOn::GroupCoordinator;

pub async fn handle(ctx: &RequestContext, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group = request.group_id.0.to_string();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
            (t.name.0.to_string(), partitions)
        })
        .collect();
    let work = GroupRequest::DeleteOffsets {
        group: group.clone(),
        topics,
    };
    let (error, codes) = match group::call(&ctx.shard, &group, work).await {
        Some(GroupReply::OffsetsDeleted(error, codes)) => (error, codes),
        _ => (ResponseError::CoordinatorNotAvailable.code(), Vec::new()),
    };
    if error != 0 {
        return OffsetDeleteResponse::default().with_error_code(error);
    }
    let topics = request
        .topics
        .into_iter()
        .zip(codes)
        .map(|(t, codes)| {
            let partitions = t
                .partitions
                .iter()
                .zip(codes)
                .map(|(p, code)| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
