//! ApiVersions: the APIs and versions this broker serves, built from [`super::API_TABLE`].
//!
//! A client newer than us may send a version we do not know: as Kafka does, we answer it with
//! UNSUPPORTED_VERSION in a v0 response that still lists our versions, so it can retry with one
//! we serve. ApiVersions responses always use response header v0. Runs on any shard.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use odradek_net::{decode_body, encode_response_with_header_version, NetError};

use super::{RunsOn, API_TABLE};
use crate::session::RequestContext;

pub const API_KEY: ApiKey = ApiKey::ApiVersions;
pub const VERSIONS: (i16, i16) = (0, 3);
pub const RUNS_ON: RunsOn = RunsOn::Connection;

/// Served from the raw body: every version is answered, none closes the connection.
pub async fn serve(ctx: RequestContext, body: Bytes) -> Result<Option<Vec<Bytes>>, NetError> {
    respond(&ctx.header, body).map(|frame| Some(vec![frame]))
}

/// Decodes, serves and encodes an ApiVersions request of any version.
fn respond(header: &RequestHeader, body: Bytes) -> Result<Bytes, NetError> {
    let version = header.request_api_version;
    if version < VERSIONS.0 || version > VERSIONS.1 {
        let response = response_with(ResponseError::UnsupportedVersion.code());
        return encode_response_with_header_version(API_KEY, header, &response, 0, 0);
    }
    // The request's fields (client software name and version) change nothing in the answer.
    let response = match decode_body::<ApiVersionsRequest>(API_KEY, version, body) {
        Ok(_) => response_with(0),
        Err(error) => {
            tracing::debug!(%error, "ApiVersions request body undecodable");
            response_with(ResponseError::InvalidRequest.code())
        }
    };
    encode_response_with_header_version(API_KEY, header, &response, version, 0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    fn request(version: i16, body: &'static [u8]) -> (RequestHeader, Bytes) {
        let header = RequestHeader::default()
            .with_request_api_key(API_KEY as i16)
            .with_request_api_version(version)
            .with_correlation_id(0x0102_0304)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        (header, Bytes::from_static(body))
    }

    fn respond((header, body): (RequestHeader, Bytes)) -> Result<Bytes, NetError> {
        super::respond(&header, body)
    }

    /// The table as ApiVersions v0 writes it: i32 count, then (key, min, max) as i16s.
    fn table_bytes_v0() -> Vec<u8> {
        let mut out = (API_TABLE.len() as i32).to_be_bytes().to_vec();
        for e in API_TABLE {
            for v in [e.key as i16, e.versions.0, e.versions.1] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        out
    }

    fn framed(payload: Vec<u8>) -> Vec<u8> {
        let mut out = (payload.len() as i32).to_be_bytes().to_vec();
        out.extend(payload);
        out
    }

    #[test]
    fn v0_exact_bytes() {
        let got = respond(request(0, b"")).expect("respond");
        let mut payload = vec![1, 2, 3, 4, 0, 0];
        payload.extend(table_bytes_v0());
        assert_eq!(&got[..], &framed(payload)[..]);
    }

    #[test]
    fn newer_version_gets_unsupported_version_in_v0() {
        let got = respond(request(9, b"")).expect("respond");
        let mut payload = vec![1, 2, 3, 4, 0, 35];
        payload.extend(table_bytes_v0());
        assert_eq!(&got[..], &framed(payload)[..]);
    }

    #[test]
    fn v3_exact_bytes() {
        // v3 body: compact strings client_software_name "a", version "1", no tagged fields.
        let got = respond(request(3, b"\x02a\x021\x00")).expect("respond");
        let mut payload = vec![1, 2, 3, 4, 0, 0];
        payload.push(API_TABLE.len() as u8 + 1); // compact array length
        for e in API_TABLE {
            for v in [e.key as i16, e.versions.0, e.versions.1] {
                payload.extend_from_slice(&v.to_be_bytes());
            }
            payload.push(0); // tagged fields
        }
        payload.extend_from_slice(&0i32.to_be_bytes()); // throttle_time_ms
        payload.push(0); // tagged fields
        assert_eq!(&got[..], &framed(payload)[..]);
    }

    #[test]
    fn every_advertised_key_has_a_codec_range_overlap() {
        for e in API_TABLE {
            let codec = e.key.valid_versions();
            assert!(
                e.versions.1 >= codec.min,
                "{:?} advertises nothing the codec decodes",
                e.key
            );
        }
    }
}
