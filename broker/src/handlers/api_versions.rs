//! ApiVersions: the APIs and versions this broker serves, built from [`super::API_TABLE`].
//!
//! A client newer than us may send a version we do not know: as Kafka does, we answer it with
//! UNSUPPORTED_VERSION in a v0 response that still lists our versions, so it can retry with one
//! we serve. ApiVersions responses always use response header v0. Runs on any shard.

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use odradek_net::{decode_body, encode_response_with_header_version, NetError, Request};

use super::API_TABLE;
use crate::shard::ShardCtx;

pub const API_KEY: ApiKey = ApiKey::ApiVersions;
pub const VERSIONS: (i16, i16) = (0, 3);

/// Decodes, serves and encodes an ApiVersions request of any version.
pub fn respond(ctx: &Rc<ShardCtx>, request: Request) -> Result<Bytes, NetError> {
    let version = request.header.request_api_version;
    if version < VERSIONS.0 || version > VERSIONS.1 {
        let response = response_with(ResponseError::UnsupportedVersion.code());
        return encode_response_with_header_version(API_KEY, &request.header, &response, 0, 0);
    }
    let response = match decode_body::<ApiVersionsRequest>(API_KEY, version, request.body) {
        Ok(body) => handle_now(ctx, &request.header, body),
        Err(error) => {
            tracing::debug!(%error, "ApiVersions request body undecodable");
            response_with(ResponseError::InvalidRequest.code())
        }
    };
    encode_response_with_header_version(API_KEY, &request.header, &response, version, 0)
}

#[allow(dead_code)] // Same shape as every handler; `respond` serves every version.
pub async fn handle(
    ctx: &Rc<ShardCtx>,
    header: &RequestHeader,
    request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    handle_now(ctx, header, request)
}

fn handle_now(
    _ctx: &Rc<ShardCtx>,
    _header: &RequestHeader,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    response_with(0)
}

/// The table as an ApiVersions response with `error_code`.
pub fn response_with(error_code: i16) -> ApiVersionsResponse {
    let api_keys = API_TABLE
        .iter()
        .map(|e| {
            ApiVersion::default()
                .with_api_key(e.key as i16)
                .with_min_version(e.versions.0)
                .with_max_version(e.versions.1)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}
