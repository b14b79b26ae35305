//! InitProducerId: a fresh producer id (epoch 0) for an idempotent producer, as Kafka hands out
//! to producers without a `transactional.id`; the partitions then check its sequences (see
//! `odradek_storage`'s producer state). Transactions are not served: a transactional id gets
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients treat as fatal, rather than an error they
//! would retry until they time out. Runs on the connection's shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::InitProducerId;
pub const VERSIONS: (i16, i16) = (0, 4);
pub const RUNS_ON: RunsOn = RunsOn::Connection;

pub async fn handle(
    ctx: &RequestContext,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let refused = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        return refused(ResponseError::TransactionalIdAuthorizationFailed);
    }
    // v3+: an existing producer asks again with its id and epoch, both or neither.
    if (request.producer_id.0 == -1) != (request.producer_epoch == -1) {
        return refused(ResponseError::InvalidRequest);
    }
    match ctx.shard.node.producer_ids.allocate() {
        Some(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id.0))
            .with_producer_epoch(0),
        None => {
            tracing::error!("every producer id of this start is used; restart the broker");
            refused(ResponseError::UnknownServerError)
        }
    }
}
