//! Heartbeat: a member tells its coordinator it is alive, and learns of rebalances
//! (REBALANCE_IN_PROGRESS). Hops to the group's coordinator shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};

use crate::group::{self, GroupReply, GroupRequest};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::Heartbeat;
pub const VERSIONS: (i16, i16) = (0, 4);
pub const RUNS_ON: RunsOn = RunsOn::GroupCoordinator;

pub async fn handle(ctx: &RequestContext, request: HeartbeatRequest) -> HeartbeatResponse {
    let group = request.group_id.0.to_string();
    let work = GroupRequest::Heartbeat {
        group: group.clone(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation: request.generation_id,
    };
    let code = match group::call(&ctx.shard, &group, work).await {
        Some(GroupReply::Code(code)) => code,
        _ => ResponseError::CoordinatorNotAvailable.code(),
    };
    HeartbeatResponse::default().with_error_code(code)
}
