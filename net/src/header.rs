//! The request header.
//!
//! Wire format (after the frame length): `api_key: i16`, `api_version: i16`,
//! `correlation_id: i32`, `client_id: nullable string` (v1+), tagged fields (v2+). The header
//! version follows from the API key and version ([`ApiKey::request_header_version`]).

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

use crate::error::NetError;

/// The decoded header of one request and the rest of its frame (the body, still encoded).
#[derive(Clone, Debug)]
pub struct DecodedHeader {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// Decodes the header at the front of `frame`. An unknown API key is an error (Kafka closes the
/// connection for it); any API version is accepted here, the broker decides what it serves.
pub fn decode_request_header(frame: Bytes) -> Result<DecodedHeader, NetError> {
    if frame.len() < 8 {
        return Err(NetError::HeaderTooShort { len: frame.len() });
    }
    let mut peek = &frame[..8];
    let api_key_raw = peek.get_i16();
    let api_version = peek.get_i16();
    let correlation_id = peek.get_i32();
    let api_key = ApiKey::try_from(api_key_raw).map_err(|()| NetError::UnknownApiKey {
        api_key: api_key_raw,
    })?;
    let header_version = api_key.request_header_version(api_version);
    let mut buf = frame;
    match RequestHeader::decode(&mut buf, header_version) {
        Ok(header) => Ok(DecodedHeader {
            api_key,
            header,
            body: buf,
        }),
        // ApiVersions must be answered whatever its version (clients downgrade from the
        // UNSUPPORTED_VERSION answer), and the answer needs only the correlation id.
        Err(_) if api_key == ApiKey::ApiVersions => {
            let header = RequestHeader::default()
                .with_request_api_key(api_key_raw)
                .with_request_api_version(api_version)
                .with_correlation_id(correlation_id);
            Ok(DecodedHeader {
                api_key,
                header,
                body: Bytes::new(),
            })
        }
        Err(e) => Err(NetError::Decode {
            what: "request header",
            api_key: api_key_raw,
            version: api_version,
            reason: crate::error::one_line(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encoded(api_key: ApiKey, version: i16) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test-client")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .expect("encode");
        buf.extend_from_slice(b"BODY");
        buf.freeze()
    }

    #[test]
    fn round_trip_v1_and_v2_headers() {
        for (key, version) in [
            (ApiKey::Metadata, 1),
            (ApiKey::Metadata, 12),
            (ApiKey::ApiVersions, 3),
        ] {
            let decoded = decode_request_header(encoded(key, version)).expect("decode");
            assert_eq!(decoded.api_key, key);
            assert_eq!(decoded.header.request_api_version, version);
            assert_eq!(decoded.header.correlation_id, 42);
            assert_eq!(decoded.header.client_id.as_deref(), Some("test-client"));
            assert_eq!(&decoded.body[..], b"BODY");
        }
    }

    #[test]
    fn every_truncated_prefix_fails_cleanly() {
        for (key, version) in [(ApiKey::Metadata, 1), (ApiKey::Metadata, 12)] {
            let full = encoded(key, version);
            let header_len = full.len() - 4;
            for cut in 0..header_len {
                assert!(
                    decode_request_header(full.slice(..cut)).is_err(),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn api_versions_header_is_read_leniently() {
        // A v127 ApiVersions with a v1-style header (no tagged fields): still answerable.
        let frame = Bytes::from_static(&[0, 18, 0, 127, 0, 0, 0, 55, 0, 1, b'x']);
        let decoded = decode_request_header(frame).expect("lenient");
        assert_eq!(decoded.api_key, ApiKey::ApiVersions);
        assert_eq!(decoded.header.request_api_version, 127);
        assert_eq!(decoded.header.correlation_id, 55);
    }

    #[test]
    fn unknown_api_key_is_an_error() {
        let frame = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
        let err = decode_request_header(frame).expect_err("unknown key");
        assert!(matches!(err, NetError::UnknownApiKey { api_key: 0x7f00 }));
    }
}
