//! DescribeGroups: state, protocol and members (with their metadata and assignments) of each
//! named group, from its coordinator shard. An unknown group is "Dead" with no error, as in
//! Kafka.

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use super::util::{authorized_operations, operations, str_bytes};
use crate::group::{self, GroupDescription, GroupReply, GroupRequest};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::DescribeGroups;
pub const VERSIONS: (i16, i16) = (0, 5);
pub const RUNS_ON: RunsOn = RunsOn::GroupCoordinator;

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let with_instance = ctx.version() >= 4;
    let group_ops = authorized_operations(request.include_authorized_operations, operations::GROUP);
    let lookups = request.groups.into_iter().map(|group_id| async move {
        let group = group_id.0.to_string();
        let work = GroupRequest::Describe {
            group: group.clone(),
        };
        let description = match group::call(&ctx.shard, &group, work).await {
            Some(GroupReply::Described(description)) => description,
            _ => GroupDescription {
                error: ResponseError::CoordinatorNotAvailable.code(),
                ..GroupDescription::default()
            },
        };
        described(group_id, description, with_instance).with_authorized_operations(group_ops)
    });
    DescribeGroupsResponse::default().with_groups(join_all(lookups).await)
}

fn described(id: GroupId, d: GroupDescription, with_instance: bool) -> DescribedGroup {
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let member = DescribedGroupMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_client_id(str_bytes(&m.client_id))
                .with_client_host(str_bytes(&m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment);
            match with_instance {
                true => member.with_group_instance_id(m.instance_id.as_deref().map(str_bytes)),
                false => member,
            }
        })
        .collect();
    DescribedGroup::default()
        .with_error_code(d.error)
        .with_group_id(id)
        .with_group_state(str_bytes(&d.state))
        .with_protocol_type(str_bytes(&d.protocol_type))
        .with_protocol_data(str_bytes(&d.protocol))
        .with_members(members)
}
