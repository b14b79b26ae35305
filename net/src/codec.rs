//! Request bodies and responses through the `kafka-protocol` crate (the one Kafka codec of the
//! workspace).
//!
//! Response wire format: `length: i32`, the response header (`correlation_id: i32`, then tagged
//! fields in header v1), the body at the request's version. ApiVersions answers always use
//! header v0, so that a client that sent a version we do not know can still read the error.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::error::NetError;
use crate::segmented::{SegmentedBuf, Shared};

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
        reason: crate::error::one_line(e),
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
    let frame = Frame::new(api_key, header, response, version, header_version)?;
    let mut buf = BytesMut::with_capacity(frame.total_len());
    frame.encode_into(&mut buf)?;
    Ok(buf.freeze())
}

/// Encodes `response` as one frame in pieces: the record data in `shared` (which the response
/// holds, directly or as stand-ins) is passed on by reference instead of copied (see
/// [`crate::segmented`]). Written in order, the pieces are the frame [`encode_response`] would
/// produce with the real records in place of the stand-ins.
pub fn encode_response_sharing<T: Encodable>(
    api_key: ApiKey,
    header: &RequestHeader,
    response: &T,
    shared: &[Shared],
) -> Result<Vec<Bytes>, NetError> {
    let version = header.request_api_version;
    let header_version = response_header_version(api_key, version);
    let frame = Frame::new(api_key, header, response, version, header_version)?;
    let inline = frame
        .total_len()
        .saturating_sub(SegmentedBuf::shared_len(shared));
    let mut buf = SegmentedBuf::new(shared, inline);
    frame.encode_into(&mut buf)?;
    buf.into_pieces().ok_or_else(|| NetError::Encode {
        api_key: api_key as i16,
        version,
        reason: "the response holds record data it was not given".to_string(),
    })
}

/// One response frame, sized before it is encoded.
struct Frame<'a, T> {
    api_key: ApiKey,
    version: i16,
    header_version: i16,
    header: ResponseHeader,
    body: &'a T,
    len: i32,
}

impl<'a, T: Encodable> Frame<'a, T> {
    fn new(
        api_key: ApiKey,
        request: &RequestHeader,
        body: &'a T,
        version: i16,
        header_version: i16,
    ) -> Result<Self, NetError> {
        let header = ResponseHeader::default().with_correlation_id(request.correlation_id);
        let mut frame = Frame {
            api_key,
            version,
            header_version,
            header,
            body,
            len: 0,
        };
        let header_len = frame
            .header
            .compute_size(header_version)
            .map_err(|e| frame.error(e))?;
        let body_len = body.compute_size(version).map_err(|e| frame.error(e))?;
        let len = header_len + body_len;
        frame.len = i32::try_from(len).map_err(|_| NetError::ResponseTooLarge { len })?;
        Ok(frame)
    }

    /// Bytes of the frame, length prefix included.
    fn total_len(&self) -> usize {
        4 + self.len as usize
    }

    fn encode_into<B: ByteBufMut>(&self, buf: &mut B) -> Result<(), NetError> {
        let start = buf.offset();
        buf.put_i32(self.len);
        self.header
            .encode(buf, self.header_version)
            .map_err(|e| self.error(e))?;
        self.body
            .encode(buf, self.version)
            .map_err(|e| self.error(e))?;
        debug_assert_eq!(
            buf.offset() - start,
            self.total_len(),
            "compute_size disagrees with encode"
        );
        Ok(())
    }

    fn error(&self, e: anyhow::Error) -> NetError {
        NetError::Encode {
            api_key: self.api_key as i16,
            version: self.version,
            reason: crate::error::one_line(e),
        }
    }
}

/// A record for kafka-protocol's encoder as a plain producer sends it: not idempotent, not
/// transactional, create time, no headers. Its sequence follows its offset because the encoder
/// starts a new batch wherever `offset - sequence` changes: records numbered from 0 share one
/// batch, with base sequence -1 (none).
pub fn plain_record(
    offset: i64,
    timestamp_ms: i64,
    leader_epoch: i32,
    key: Option<Bytes>,
    value: Option<Bytes>,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: leader_epoch,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: (offset as i32).wrapping_sub(1),
        timestamp: timestamp_ms,
        key,
        value,
        headers: Default::default(),
    }
}

/// `records` encoded as record batches (magic 2) with `compression`; `None` when the encoder
/// refuses them (a length past its limits).
pub fn encode_records(records: &[Record], compression: Compression) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).ok()?;
    Some(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use kafka_protocol::messages::{
        ApiVersionsRequest, CreateTopicsRequest, FetchRequest, MetadataRequest, MetadataResponse,
        ProduceRequest,
    };
    use proptest::prelude::*;

    use crate::guard_alloc::counting::counts;

    fn header(api_key: ApiKey, version: i16) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(99)
    }

    #[test]
    fn response_round_trip_every_metadata_version() {
        for version in 0..=12 {
            let response =
                MetadataResponse::default().with_throttle_time_ms(if version >= 3 { 5 } else { 0 });
            let frame = encode_response(
                ApiKey::Metadata,
                &header(ApiKey::Metadata, version),
                &response,
            )
            .expect("encode");
            let mut buf = frame.clone();
            assert_eq!(buf.get_i32() as usize, frame.len() - 4);
            let header_version = ApiKey::Metadata.response_header_version(version);
            let decoded_header = ResponseHeader::decode(&mut buf, header_version).expect("header");
            assert_eq!(decoded_header.correlation_id, 99);
            let decoded = MetadataResponse::decode(&mut buf, version).expect("body");
            assert_eq!(decoded, response);
            assert!(!buf.has_remaining());
        }
    }

    #[test]
    fn api_versions_response_header_is_always_v0() {
        let response = kafka_protocol::messages::ApiVersionsResponse::default();
        let frame = encode_response(
            ApiKey::ApiVersions,
            &header(ApiKey::ApiVersions, 3),
            &response,
        )
        .expect("encode");
        // length, correlation id, then directly the body (no tagged-field byte of header v1).
        assert_eq!(&frame[4..8], &99i32.to_be_bytes());
        assert_eq!(
            &frame[8..10],
            &[0, 0],
            "error code follows the correlation id"
        );
    }

    #[test]
    fn request_body_round_trip_and_truncations() {
        let request = MetadataRequest::default().with_allow_auto_topic_creation(true);
        for version in 4..=12 {
            let mut buf = BytesMut::new();
            request.encode(&mut buf, version).expect("encode");
            let full = buf.freeze();
            let decoded: MetadataRequest =
                decode_body(ApiKey::Metadata, version, full.clone()).expect("decode");
            assert_eq!(decoded, request);
            for cut in 0..full.len() {
                let err =
                    decode_body::<MetadataRequest>(ApiKey::Metadata, version, full.slice(..cut));
                assert!(err.is_err(), "v{version} cut {cut}");
            }
        }
    }

    fn decode_any(api_key: ApiKey, version: i16, body: Bytes) {
        let _ = match api_key {
            ApiKey::Produce => decode_body::<ProduceRequest>(api_key, version, body).map(drop),
            ApiKey::Fetch => decode_body::<FetchRequest>(api_key, version, body).map(drop),
            ApiKey::Metadata => decode_body::<MetadataRequest>(api_key, version, body).map(drop),
            ApiKey::CreateTopics => {
                decode_body::<CreateTopicsRequest>(api_key, version, body).map(drop)
            }
            _ => decode_body::<ApiVersionsRequest>(api_key, version, body).map(drop),
        };
    }

    #[test]
    fn a_lying_array_length_costs_a_mapping_that_is_given_back_not_memory() {
        // Metadata v4 whose topics array declares i32::MAX entries, followed by 5 bytes. The
        // codec reserves room for every declared entry before it reads one (why the broker runs
        // under `guard_alloc`): that reservation must come from a mapping, not from the system
        // allocator, decoding must fail at the first missing entry, and the mapping must go back.
        let mut body = i32::MAX.to_be_bytes().to_vec();
        body.extend_from_slice(&[0xff; 5]);
        let body = Bytes::from(body);
        let before = counts();
        let decoded = decode_body::<MetadataRequest>(ApiKey::Metadata, 4, body);
        let after = counts();
        assert!(
            decoded.is_err(),
            "a body shorter than it declares must not decode"
        );
        assert_eq!(
            after.mappings - before.mappings,
            1,
            "one reservation, from a mapping"
        );
        assert_eq!(
            after.mapped_bytes_live, before.mapped_bytes_live,
            "given back"
        );
        let plain_bytes = after.plain_bytes - before.plain_bytes;
        assert!(
            plain_bytes < 64 << 10,
            "decoding 9 bytes took {plain_bytes} bytes from the system allocator"
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_decoders(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let frame = Bytes::from(bytes);
            if let Ok(decoded) = crate::header::decode_request_header(frame.clone()) {
                let version = decoded.header.request_api_version;
                decode_any(decoded.api_key, version, decoded.body);
            }
            for (api_key, versions) in [
                (ApiKey::Produce, 3..=11),
                (ApiKey::Fetch, 4..=16),
                (ApiKey::Metadata, 0..=12),
                (ApiKey::CreateTopics, 2..=7),
                (ApiKey::ApiVersions, 0..=3),
            ] {
                for version in versions {
                    decode_any(api_key, version, frame.clone());
                }
            }
        }

        #[test]
        fn hostile_lengths_give_back_what_they_reserve(
            prefix in proptest::collection::vec(any::<u8>(), 0..8),
            len in any::<i32>(),
        ) {
            // An array or string length right after a few bytes: decoding must end (an error,
            // or a request), not abort, and give back every mapping it reserved.
            let mut bytes = prefix;
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&[0xff; 5]);
            for version in 0..=12 {
                let before = counts().mapped_bytes_live;
                decode_any(ApiKey::Metadata, version, Bytes::from(bytes.clone()));
                prop_assert_eq!(counts().mapped_bytes_live, before, "v{} kept a mapping", version);
            }
        }
    }
}
