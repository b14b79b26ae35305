//! SyncGroup: the leader hands in every member's assignment (passed through untouched); each
//! member gets its own once the leader's arrives. Hops to the group's coordinator shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};

use super::util::str_bytes;
use crate::group::state::SyncResult;
use crate::group::{self, GroupReply, GroupRequest};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::SyncGroup;
pub const VERSIONS: (i16, i16) = (0, 5);
pub const RUNS_ON: RunsOn = RunsOn::GroupCoordinator;

pub async fn handle(ctx: &RequestContext, request: SyncGroupRequest) -> SyncGroupResponse {
    let group = request.group_id.0.to_string();
    let work = GroupRequest::Sync {
        group: group.clone(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation: request.generation_id,
        protocol: (
            request.protocol_type.map(|t| t.to_string()),
            request.protocol_name.map(|n| n.to_string()),
        ),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let result = match group::call(&ctx.shard, &group, work).await {
        Some(GroupReply::Sync(result)) => result,
        _ => SyncResult::error(ResponseError::CoordinatorNotAvailable),
    };
    SyncGroupResponse::default()
        .with_error_code(result.error)
        .with_protocol_type(result.protocol_type.as_deref().map(str_bytes))
        .with_protocol_name(result.protocol_name.as_deref().map(str_bytes))
        .with_assignment(result.assignment)
}
