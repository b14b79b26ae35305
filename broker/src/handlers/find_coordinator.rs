//! FindCoordinator: a group's coordinator is the leader of its `__consumer_offsets` partition,
//! wherever in the cluster that is (on that broker, the group's state lives on the shard
//! owning the partition; other shards forward to it). v4 batches keys.
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
use crate::metadata::BrokerEndpoint;
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
    // Groups need `__consumer_offsets`; the first group lookup creates it.
    let is_group =
        request.key_type == KEY_TYPE_GROUP && crate::group::ensure_offsets_topic(&ctx.shard).await;
    let other_error = match request.key_type {
        KEY_TYPE_TRANSACTION => ResponseError::TransactionalIdAuthorizationFailed.code(),
        _ => ResponseError::CoordinatorNotAvailable.code(),
    };
    let snapshot = ctx.shard.metadata();
    let find = |key: &str| -> Result<BrokerEndpoint, i16> {
        if !is_group {
            return Err(other_error);
        }
        crate::group::coordinator_of(&ctx.shard, &snapshot, key)
            .ok_or(ResponseError::CoordinatorNotAvailable.code())
    };
    if ctx.version() >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key: StrBytes| {
                let found = find(key.as_str());
                let coordinator = Coordinator::default().with_key(key);
                match found {
                    Ok(endpoint) => coordinator
                        .with_node_id(BrokerId(endpoint.node_id.0))
                        .with_host(str_bytes(&endpoint.host))
                        .with_port(i32::from(endpoint.port)),
                    Err(code) => coordinator
                        .with_error_code(code)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let response = FindCoordinatorResponse::default();
    match find(request.key.as_str()) {
        Ok(endpoint) => response
            .with_node_id(BrokerId(endpoint.node_id.0))
            .with_host(str_bytes(&endpoint.host))
            .with_port(i32::from(endpoint.port)),
        Err(code) => response
            .with_error_code(code)
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}
