//! The client side of the codec: requests out, responses in (the mirror of [`crate::codec`]).
//!
//! Request wire format: `length: i32`, the request header (`api_key: i16`, `api_version: i16`,
//! `correlation_id: i32`, `client_id: nullable string` from header v1, tagged fields from v2;
//! the header version follows from the API key and version), then the body at `version`.
//! Response wire format: `length: i32`, `correlation_id: i32` (plus tagged fields in header v1),
//! then the body. ApiVersions responses always use header v0, whatever the request version.
//!
//! Every function here is transport-agnostic except [`read_frame_blocking`], for blocking
//! clients on `std::io` (the admin CLI). Nothing here panics on bytes from a peer.

use std::io::Read;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::codec::response_header_version;
use crate::error::{one_line, NetError};
use crate::frame::frame_length;

/// Encodes `body` at `version`, behind a request header, as one length-prefixed frame.
pub fn encode_request<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &T,
) -> Result<Bytes, NetError> {
    let encode_err = |e: anyhow::Error| NetError::Encode {
        api_key: api_key as i16,
        version,
        reason: one_line(e),
    };
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let header_version = api_key.request_header_version(version);
    let header_len = header.compute_size(header_version).map_err(encode_err)?;
    let body_len = body.compute_size(version).map_err(encode_err)?;
    let len = header_len + body_len;
    let len_i32 = i32::try_from(len).map_err(|_| NetError::Encode {
        api_key: api_key as i16,
        version,
        reason: format!("a request of {len} bytes does not fit a frame"),
    })?;
    let mut buf = BytesMut::with_capacity(4 + len);
    buf.put_i32(len_i32);
    header
        .encode(&mut buf, header_version)
        .map_err(encode_err)?;
    body.encode(&mut buf, version).map_err(encode_err)?;
    debug_assert_eq!(buf.len(), 4 + len, "compute_size disagrees with encode");
    Ok(buf.freeze())
}

/// Decodes a response frame (without its length prefix) of API `api_key` at `version`.
pub fn decode_response<T: Decodable>(
    api_key: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<T, NetError> {
    decode_response_with_header(api_key, version, frame).map(|(_, body)| body)
}

/// Like [`decode_response`], also returning the header, so the caller can check that the
/// correlation id is the one it sent.
pub fn decode_response_with_header<T: Decodable>(
    api_key: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<(ResponseHeader, T), NetError> {
    let decode_err = |what: &'static str| {
        move |e: anyhow::Error| NetError::Decode {
            what,
            api_key: api_key as i16,
            version,
            reason: one_line(e),
        }
    };
    let mut buf = frame;
    let header_version = response_header_version(api_key, version);
    let header =
        ResponseHeader::decode(&mut buf, header_version).map_err(decode_err("response header"))?;
    let body = T::decode(&mut buf, version).map_err(decode_err("response body"))?;
    Ok((header, body))
}

/// The correlation id at the front of a response frame (without its length prefix).
pub fn response_correlation_id(frame: &[u8]) -> Result<i32, NetError> {
    match frame.first_chunk::<4>() {
        Some(bytes) => Ok(i32::from_be_bytes(*bytes)),
        None => Err(NetError::HeaderTooShort { len: frame.len() }),
    }
}

/// Reads one length-prefixed frame from a blocking reader; returns its payload. A stream that
/// ends anywhere, even between frames, is an error: a client is always waiting for an answer.
/// A read timeout set on the socket surfaces as [`NetError::Io`].
pub fn read_frame_blocking(
    reader: &mut impl Read,
    frame_bytes_max: usize,
) -> Result<BytesMut, NetError> {
    let mut prefix = [0u8; 4];
    read_exact_counted(reader, &mut prefix)?;
    let len = frame_length(i32::from_be_bytes(prefix), frame_bytes_max)?;
    let mut payload = BytesMut::zeroed(len);
    read_exact_counted(reader, &mut payload)?;
    Ok(payload)
}

/// `read_exact`, but an early end is [`NetError::TruncatedFrame`] with how far it got.
fn read_exact_counted(reader: &mut impl Read, buf: &mut [u8]) -> Result<(), NetError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(NetError::TruncatedFrame {
                    read: filled,
                    expected: buf.len(),
                })
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(NetError::Io {
                    op: "read response frame",
                    source,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_body, encode_response};
    use crate::header::decode_request_header;
    use bytes::Buf;
    use kafka_protocol::messages::{
        ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    };

    /// The server side decodes what the client encodes, at every Metadata version.
    #[test]
    fn request_round_trip_through_the_server_decoder() {
        let request = MetadataRequest::default().with_allow_auto_topic_creation(true);
        for version in 0..=12 {
            let mut frame = encode_request(ApiKey::Metadata, version, 7, "cli", &request)
                .expect("encode request");
            let len = frame.get_i32();
            assert_eq!(len as usize, frame.len());
            let decoded = decode_request_header(frame).expect("header");
            assert_eq!(decoded.api_key, ApiKey::Metadata);
            assert_eq!(decoded.header.request_api_version, version);
            assert_eq!(decoded.header.correlation_id, 7);
            assert_eq!(decoded.header.client_id.as_deref(), Some("cli"));
            let body: MetadataRequest =
                decode_body(ApiKey::Metadata, version, decoded.body).expect("body");
            if version >= 4 {
                assert_eq!(body, request);
            }
        }
    }

    /// The client decodes what the server encodes, header versions included.
    #[test]
    fn response_round_trip_through_the_server_encoder() {
        for version in 0..=12 {
            let header = RequestHeader::default()
                .with_request_api_key(ApiKey::Metadata as i16)
                .with_request_api_version(version)
                .with_correlation_id(41);
            let response = MetadataResponse::default().with_controller_id(3.into());
            let mut frame = encode_response(ApiKey::Metadata, &header, &response).expect("encode");
            frame.advance(4);
            assert_eq!(response_correlation_id(&frame).expect("id"), 41);
            let (got_header, body) = decode_response_with_header::<MetadataResponse>(
                ApiKey::Metadata,
                version,
                frame.clone(),
            )
            .expect("decode");
            assert_eq!(got_header.correlation_id, 41);
            if version >= 1 {
                assert_eq!(body, response);
            }
            for cut in 0..frame.len() {
                let truncated = frame.slice(..cut);
                let result =
                    decode_response::<MetadataResponse>(ApiKey::Metadata, version, truncated);
                assert!(result.is_err(), "v{version} cut {cut}");
            }
        }
    }

    #[test]
    fn api_versions_response_uses_header_v0() {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(3)
            .with_correlation_id(5);
        let response = ApiVersionsResponse::default().with_throttle_time_ms(9);
        let mut frame = encode_response(ApiKey::ApiVersions, &header, &response).expect("encode");
        frame.advance(4);
        let body: ApiVersionsResponse =
            decode_response(ApiKey::ApiVersions, 3, frame).expect("decode");
        assert_eq!(body, response);
    }

    /// Exact bytes of ApiVersions v3 (request header v2, flexible body).
    #[test]
    fn api_versions_v3_request_exact_bytes() {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("a"))
            .with_client_software_version(StrBytes::from_static_str("1"));
        let frame =
            encode_request(ApiKey::ApiVersions, 3, 0x0102_0304, "c", &request).expect("encode");
        let expected: &[u8] = &[
            0, 0, 0, 17, // length
            0, 18, // api key
            0, 3, // api version
            1, 2, 3, 4, // correlation id
            0, 1, b'c', // client id (nullable string, i16 length)
            0,    // header tagged fields
            2, b'a', // compact string "a"
            2, b'1', // compact string "1"
            0,    // body tagged fields
        ];
        assert_eq!(&frame[..], expected);
    }

    /// Exact bytes of Metadata v0 with no topics (header v1, no tagged fields).
    #[test]
    fn metadata_v0_request_exact_bytes() {
        let request = MetadataRequest::default().with_topics(Some(Vec::new()));
        let frame = encode_request(ApiKey::Metadata, 0, 1, "", &request).expect("encode");
        let expected: &[u8] = &[0, 0, 0, 14, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(&frame[..], expected);
    }

    #[test]
    fn blocking_frames_read_whole_and_fail_on_truncation() {
        let mut bytes = 5i32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"hello");
        let got = read_frame_blocking(&mut &bytes[..], 100).expect("frame");
        assert_eq!(&got[..], b"hello");
        for cut in 0..bytes.len() {
            let err = read_frame_blocking(&mut &bytes[..cut], 100).expect_err("truncated");
            assert!(matches!(err, NetError::TruncatedFrame { .. }), "cut {cut}");
        }
        let err = read_frame_blocking(&mut &101i32.to_be_bytes()[..], 100).expect_err("large");
        assert!(matches!(err, NetError::FrameTooLarge { .. }));
        let err = read_frame_blocking(&mut &(-1i32).to_be_bytes()[..], 100).expect_err("neg");
        assert!(matches!(err, NetError::NegativeFrameLength { .. }));
    }

    #[test]
    fn short_frames_have_no_correlation_id() {
        assert!(response_correlation_id(&[0, 0, 1]).is_err());
    }
}
