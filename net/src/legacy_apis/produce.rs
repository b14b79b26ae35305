//! Produce v0–2 (the codec starts at v3).
//!
//! Request: v3 without its first field (`transactional_id`): `acks: i16, timeout_ms: i32,
//! [topic: string, [index: i32, records: bytes]]`, so it is decoded by the codec at v3 behind a
//! null transactional id. The records are legacy message sets (magic 0 or 1; see
//! [`crate::message_set`]) or, from clients that have them, v2 batches; the broker up-converts
//! the former before it appends. Response: `[topic: string, [index: i32, error_code: i16,
//! base_offset: i64, log_append_time_ms: i64 (v2)]], throttle_time_ms: i32 (v1+)`. A request
//! with acks=0 gets no response, as at every version (the broker sends none).

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::Decodable;

use super::wire::{Reader, Writer};
use super::OldVersions;
use crate::error::{one_line, NetError};

/// Produce v0–2.
pub struct ProduceOld;

impl OldVersions for ProduceOld {
    const API_KEY: ApiKey = ApiKey::Produce;
    const VERSIONS: (i16, i16) = (0, 2);
    type Request = ProduceRequest;
    type Response = ProduceResponse;
    type Asked = ();

    fn decode(r: &mut Reader) -> Result<(ProduceRequest, ()), NetError> {
        let rest = r.take_rest();
        let mut v3 = BytesMut::with_capacity(rest.len() + 2);
        v3.put_i16(-1); // a null transactional_id
        v3.extend_from_slice(&rest);
        let request =
            ProduceRequest::decode(&mut v3.freeze(), 3).map_err(|e| r.error(one_line(e)))?;
        Ok((request, ()))
    }

    fn encode(w: &mut Writer, response: &ProduceResponse, _: &()) -> Result<(), NetError> {
        let version = w.version();
        w.array(&response.responses, |w, topic| {
            w.string(&topic.name)?;
            w.array(&topic.partition_responses, |w, p| {
                w.i32(p.index);
                w.i16(p.error_code);
                w.i64(p.base_offset);
                if version >= 2 {
                    w.i64(p.log_append_time_ms);
                }
                Ok(())
            })
        })?;
        if version >= 1 {
            w.i32(response.throttle_time_ms);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode;
    use super::super::test_support::*;
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn request() -> ProduceRequest {
        let partitions = vec![PartitionProduceData::default()
            .with_index(4)
            .with_records(Some(Bytes::from_static(b"0123456789")))];
        let topic = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("ab")))
            .with_partition_data(partitions);
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1500)
            .with_topic_data(vec![topic])
    }

    /// A v0–2 body: the v3 encoding without its null transactional_id.
    fn body() -> Vec<u8> {
        let mut buf = BytesMut::new();
        request().encode(&mut buf, 3).expect("encode");
        assert_eq!(&buf[..2], &[0xff, 0xff], "null transactional id first");
        buf[2..].to_vec()
    }

    #[test]
    fn floor_is_the_codec_floor() {
        floor_matches_codec::<ProduceOld>();
    }

    #[test]
    fn decodes_every_version_into_the_codec_struct() {
        for version in 0..=2 {
            let (decoded, ()) = decoded::<ProduceOld>(version, &body());
            assert_eq!(decoded, request(), "v{version}");
        }
    }

    #[test]
    fn truncated_bodies_and_lying_counts_are_errors() {
        let body = body();
        every_prefix_fails::<ProduceOld>(1, &body);
        // The codec reads the counts; a lying one is an error there too (the guarding
        // allocator keeps what it reserves for one from aborting the process).
        let topic_count_at = 2 + 4;
        for count in [i32::MAX, 1 << 20, -2] {
            let mut bad = body.clone();
            bad[topic_count_at..topic_count_at + 4].copy_from_slice(&count.to_be_bytes());
            let result = decode::<ProduceOld>(&header::<ProduceOld>(0), Bytes::from(bad));
            assert!(result.is_err(), "count {count}");
        }
    }

    #[test]
    fn encodes_exact_bytes_at_each_version() {
        let partition = PartitionProduceResponse::default()
            .with_index(4)
            .with_error_code(2)
            .with_base_offset(77)
            .with_log_append_time_ms(1_700_000_000_000);
        let response = ProduceResponse::default()
            .with_throttle_time_ms(9)
            .with_responses(vec![TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("ab")))
                .with_partition_responses(vec![partition])]);
        for version in 0..=2 {
            let mut want = 1i32.to_be_bytes().to_vec();
            want.extend(string("ab"));
            want.extend(1i32.to_be_bytes());
            want.extend(4i32.to_be_bytes());
            want.extend(2i16.to_be_bytes());
            want.extend(77i64.to_be_bytes());
            if version >= 2 {
                want.extend(1_700_000_000_000i64.to_be_bytes());
            }
            if version >= 1 {
                want.extend(9i32.to_be_bytes());
            }
            let got = encoded_body::<ProduceOld>(version, &response, &());
            assert_eq!(got, want, "v{version}");
        }
    }
}
