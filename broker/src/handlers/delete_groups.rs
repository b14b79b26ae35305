//! DeleteGroups: removes empty groups and their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members gets NON_EMPTY_GROUP, an unknown one
//! GROUP_ID_NOT_FOUND. Each group is handled by its coordinator shard.

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};

use crate::group::{self, GroupReply, GroupRequest};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::DeleteGroups;
pub const VERSIONS: (i16, i16) = (0, 2);
pub const RUNS_ON: RunsOn = RunsOn::GroupCoordinator;

pub async fn handle(ctx: &RequestContext, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let deletions = request.groups_names.into_iter().map(|group_id| async move {
        let group = group_id.0.to_string();
        let work = GroupRequest::Delete {
            group: group.clone(),
        };
        let code = match group::call(&ctx.shard, &group, work).await {
            Some(GroupReply::Code(code)) => code,
            _ => ResponseError::CoordinatorNotAvailable.code(),
        };
        DeletableGroupResult::default()
            .with_group_id(group_id)
            .with_error_code(code)
    });
    DeleteGroupsResponse::default().with_results(join_all(deletions).await)
}
