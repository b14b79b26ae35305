//! Fetch: read batches from the owning shards' logs, with long polling.
//!
//! Advertised 0–16 (old librdkafka checks for 2, 4, 10); the codec decodes 4+.
//! Runs on the connection's shard; each partition's read hops to its owning shard.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, RequestHeader};

use crate::shard::ShardCtx;

pub const API_KEY: ApiKey = ApiKey::Fetch;
pub const VERSIONS: (i16, i16) = (0, 16);

pub async fn handle(
    ctx: &Rc<ShardCtx>,
    header: &RequestHeader,
    request: FetchRequest,
) -> FetchResponse {
    // lead engineer: data path
    let _ = (ctx, header, request);
    FetchResponse::default().with_error_code(ResponseError::UnknownServerError.code())
}
