//! DescribeCluster: the live (unfenced) brokers and the active controller, from the metadata
//! snapshot. Runs on any shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::util::{authorized_operations, operations, str_bytes};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::DescribeCluster;
pub const VERSIONS: (i16, i16) = (0, 1);
pub const RUNS_ON: RunsOn = RunsOn::Connection;

/// `endpoint_type` 1: brokers (2, controllers, is Kafka 4.0's KIP-919).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let snapshot = ctx.shard.metadata();
    let controller = BrokerId(snapshot.controller.map_or(-1, |c| c.0));
    let response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&snapshot.cluster_id))
        .with_controller_id(controller)
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
    let brokers = snapshot
        .live_brokers()
        .filter_map(|b| snapshot.endpoint_of(b.node_id))
        .map(|endpoint| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(endpoint.node_id.0))
                .with_host(str_bytes(&endpoint.host))
                .with_port(i32::from(endpoint.port))
                .with_rack(endpoint.rack.as_deref().map(str_bytes))
        })
        .collect();
    response.with_brokers(brokers)
}
