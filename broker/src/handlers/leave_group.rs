//! LeaveGroup: members leave at once instead of timing out (v3+ batches members, by member id
//! or group instance id). Hops to the group's coordinator shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};

use crate::group::{self, GroupReply, GroupRequest};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::LeaveGroup;
pub const VERSIONS: (i16, i16) = (0, 5);
pub const RUNS_ON: RunsOn = RunsOn::GroupCoordinator;

pub async fn handle(ctx: &RequestContext, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let batched = ctx.version() >= 3;
    let group = request.group_id.0.to_string();
    let members: Vec<(String, Option<String>)> = match batched {
        true => request
            .members
            .iter()
            .map(|m| {
                let instance = m.group_instance_id.as_ref().map(|i| i.to_string());
                (m.member_id.to_string(), instance)
            })
            .collect(),
        false => vec![(request.member_id.to_string(), None)],
    };
    let work = GroupRequest::Leave {
        group: group.clone(),
        members: members.clone(),
    };
    let codes = match group::call(&ctx.shard, &group, work).await {
        Some(GroupReply::Left(codes)) if codes.len() == members.len() => codes,
        _ => {
            let unavailable = ResponseError::CoordinatorNotAvailable.code();
            return LeaveGroupResponse::default().with_error_code(unavailable);
        }
    };
    if !batched {
        return LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0));
    }
    let responses = request
        .members
        .into_iter()
        .zip(codes)
        .map(|(m, code)| {
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}
