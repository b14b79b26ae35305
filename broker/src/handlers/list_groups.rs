//! ListGroups: every group of this node (each shard lists the groups it coordinates), filtered
//! by state (v4+) and type (v5+: every group here is a "classic" one).

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse};

use super::util::str_bytes;
use crate::group::{self, GroupReply, GroupRequest};
use crate::ids::ShardId;
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::ListGroups;
pub const VERSIONS: (i16, i16) = (0, 5);
pub const RUNS_ON: RunsOn = RunsOn::EveryShard;

/// The classic protocol's group type (KIP-848 names the new one "consumer").
const CLASSIC: &str = "classic";

pub async fn handle(ctx: &RequestContext, request: ListGroupsRequest) -> ListGroupsResponse {
    let version = ctx.version();
    let types: Vec<String> = request.types_filter.iter().map(|t| t.to_string()).collect();
    if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case(CLASSIC)) {
        return ListGroupsResponse::default();
    }
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    let calls =
        (0..ctx.shard.shard_count).map(|shard| {
            let states = states.clone();
            async move {
                group::call_shard(&ctx.shard, ShardId(shard), GroupRequest::List { states }).await
            }
        });
    let mut error = 0;
    let mut groups = Vec::new();
    for reply in join_all(calls).await {
        match reply {
            Some(GroupReply::Listed(listed)) => {
                groups.extend(listed.into_iter().map(|(id, protocol_type, state)| {
                    let group = ListedGroup::default()
                        .with_group_id(GroupId(str_bytes(&id)))
                        .with_protocol_type(str_bytes(&protocol_type));
                    let group = match version >= 4 {
                        true => group.with_group_state(str_bytes(&state)),
                        false => group,
                    };
                    match version >= 5 {
                        true => group.with_group_type(str_bytes(CLASSIC)),
                        false => group,
                    }
                }))
            }
            _ => error = ResponseError::CoordinatorNotAvailable.code(),
        }
    }
    ListGroupsResponse::default()
        .with_error_code(error)
        .with_groups(groups)
}
