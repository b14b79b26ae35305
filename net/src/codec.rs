//! Request bodies and responses through the `kafka-protocol` crate (the one Kafka codec of the
//! workspace).
//!
//! Response wire format: `length: i32`, the response header (`correlation_id: i32`, then tagged
//! fields in header v1), the body at the request's version. ApiVersions answers always use
//! header v0, so that a client that sent a version we do not know can still read the error.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::error::NetError;

/// Decodes a request body of API `api_key` at `version`.
pub fn decode_body<T: Decodable>(
    api_key: ApiKey,
    version: i16,
    body: Bytes,
) -> Result<T, NetError> {
    let mut buf = body;
    T::decode(&mut buf, version).map_err(|e| NetError::Decode {
        what: "request body",
        api_key: api_key as i16,
        version,
        reason: e.to_string(),
    })
}

/// The response header version for `api_key` at `version` (ApiVersions: always 0).
pub fn response_header_version(api_key: ApiKey, version: i16) -> i16 {
    match api_key {
        ApiKey::ApiVersions => 0,
        _ => api_key.response_header_version(version),
    }
}

/// Encodes `response` to the request described by `header` as one length-prefixed frame.
pub fn encode_response<T: Encodable>(
    api_key: ApiKey,
    header: &RequestHeader,
    response: &T,
) -> Result<Bytes, NetError> {
    let version = header.request_api_version;
    let header_version = response_header_version(api_key, version);
    encode_response_with_header_version(api_key, header, response, version, header_version)
}

/// Encodes `response` at an explicit body and header version (ApiVersions' fallback to v0).
pub fn encode_response_with_header_version<T: Encodable>(
    api_key: ApiKey,
    header: &RequestHeader,
    response: &T,
    version: i16,
    header_version: i16,
) -> Result<Bytes, NetError> {
    let encode_err = |e: anyhow::Error| NetError::Encode {
        api_key: api_key as i16,
        version,
        reason: e.to_string(),
    };
    let response_header = ResponseHeader::default().with_correlation_id(header.correlation_id);
    let header_len = response_header
        .compute_size(header_version)
        .map_err(encode_err)?;
    let body_len = response.compute_size(version).map_err(encode_err)?;
    let len = header_len + body_len;
    let len_i32 = i32::try_from(len).map_err(|_| NetError::ResponseTooLarge { len })?;
    let mut buf = BytesMut::with_capacity(4 + len);
    buf.put_i32(len_i32);
    response_header
        .encode(&mut buf, header_version)
        .map_err(encode_err)?;
    response.encode(&mut buf, version).map_err(encode_err)?;
    debug_assert_eq!(buf.len(), 4 + len, "compute_size disagrees with encode");
    Ok(buf.freeze())
}
