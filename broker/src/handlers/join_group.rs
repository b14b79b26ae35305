//! JoinGroup: a member joins (or rejoins) its group; the answer waits until the rebalance
//! ends (see `group::state`). v4+ members without an id first get MEMBER_ID_REQUIRED with one
//! (KIP-394); static members (v5+, KIP-345) skip that. Hops to the group's coordinator shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};

use super::util::str_bytes;
use crate::group::state::{JoinArgs, JoinResult};
use crate::group::{self, GroupReply, GroupRequest};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::JoinGroup;
pub const VERSIONS: (i16, i16) = (0, 9);
pub const RUNS_ON: RunsOn = RunsOn::GroupCoordinator;

pub async fn handle(ctx: &RequestContext, request: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.version();
    let group = request.group_id.0.to_string();
    let rebalance_timeout_ms = match version {
        0 => request.session_timeout_ms,
        _ => request.rebalance_timeout_ms,
    };
    let args = JoinArgs {
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        client_id: ctx
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        // As Kafka shows it (Java's `InetAddress.toString()`): `/` and the address.
        client_host: ctx
            .session
            .peer
            .map_or_else(String::new, |peer| format!("/{}", peer.ip())),
        session_timeout_ms: i64::from(request.session_timeout_ms),
        rebalance_timeout_ms: i64::from(rebalance_timeout_ms.max(0)),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let member_id = args.member_id.clone();
    let work = GroupRequest::Join {
        group: group.clone(),
        args,
    };
    let result = match group::call(&ctx.shard, &group, work).await {
        Some(GroupReply::Join(result)) => result,
        _ => JoinResult::error(ResponseError::CoordinatorNotAvailable, &member_id),
    };
    response(version, result)
}

fn response(version: i16, result: JoinResult) -> JoinGroupResponse {
    let members = result
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let member = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&id))
                .with_metadata(metadata);
            match version >= 5 {
                true => member.with_group_instance_id(instance.as_deref().map(str_bytes)),
                false => member,
            }
        })
        .collect();
    let protocol_name = match (version >= 7, result.protocol_name) {
        (true, name) => name.as_deref().map(str_bytes),
        (false, name) => Some(str_bytes(name.as_deref().unwrap_or(""))),
    };
    JoinGroupResponse::default()
        .with_error_code(result.error)
        .with_generation_id(result.generation)
        .with_protocol_type(result.protocol_type.as_deref().map(str_bytes))
        .with_protocol_name(protocol_name)
        .with_leader(str_bytes(&result.leader))
        .with_member_id(str_bytes(&result.member_id))
        .with_members(members)
}
