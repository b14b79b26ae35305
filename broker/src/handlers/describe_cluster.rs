//! DescribeCluster: this node, as the only broker and the controller. Runs on any shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::util::{authorized_operations, operations, str_bytes};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::DescribeCluster;
pub const VERSIONS: (i16, i16) = (0, 1);
pub const RUNS_ON: RunsOn = RunsOn::Connection;

/// `endpoint_type` 1: brokers (the only kind a single node has).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let snapshot = ctx.shard.metadata();
    let node = BrokerId(snapshot.broker.node_id.0);
    let response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&snapshot.cluster_id))
        .with_controller_id(node)
        .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
        .with_cluster_authorized_operations(authorized_operations(
            request.include_cluster_authorized_operations,
            operations::CLUSTER,
        ));
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("only broker endpoints are served")));
    }
    let broker = DescribeClusterBroker::default()
        .with_broker_id(node)
        .with_host(str_bytes(&snapshot.broker.host))
        .with_port(i32::from(snapshot.broker.port))
        .with_rack(snapshot.broker.rack.as_deref().map(str_bytes));
    response.with_brokers(vec![broker])
}
