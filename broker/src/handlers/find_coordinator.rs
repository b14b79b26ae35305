//! FindCoordinator: this node coordinates every group (each group's state lives on the shard
//! owning its `__consumer_offsets` partition; other shards forward to it). v4 batches keys.
//! The first group lookup creates `__consumer_offsets`, as Kafka does.
//! Transaction coordinators do not exist yet: transactional ids get
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients treat as fatal (a retriable error would
//! leave `initTransactions()` waiting until it times out); other key types get
//! COORDINATOR_NOT_AVAILABLE.
//! Runs on the connection's shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::util::str_bytes;
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::FindCoordinator;
pub const VERSIONS: (i16, i16) = (0, 4);
pub const RUNS_ON: RunsOn = RunsOn::Connection;

/// Kafka's key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(
    ctx: &RequestContext,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let snapshot = ctx.shard.metadata();
    let node = BrokerId(snapshot.broker.node_id.0);
    let host = str_bytes(&snapshot.broker.host);
    let port = i32::from(snapshot.broker.port);
    // Groups need `__consumer_offsets`; the first group lookup creates it.
    let is_group =
        request.key_type == KEY_TYPE_GROUP && crate::group::ensure_offsets_topic(&ctx.shard).await;
    let error = match (is_group, request.key_type) {
        (true, _) => 0,
        (false, KEY_TYPE_TRANSACTION) => ResponseError::TransactionalIdAuthorizationFailed.code(),
        (false, _) => ResponseError::CoordinatorNotAvailable.code(),
    };
    if ctx.version() >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key: StrBytes| {
                let found = Coordinator::default().with_key(key).with_error_code(error);
                match is_group {
                    true => found
                        .with_node_id(node)
                        .with_host(host.clone())
                        .with_port(port),
                    false => found.with_node_id(BrokerId(-1)).with_port(-1),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let response = FindCoordinatorResponse::default().with_error_code(error);
    match is_group {
        true => response.with_node_id(node).with_host(host).with_port(port),
        false => response.with_node_id(BrokerId(-1)).with_port(-1),
    }
}
