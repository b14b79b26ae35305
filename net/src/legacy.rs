//! Produce v0–2, which old clients may still send because brokers advertise them (librdkafka
//! before 2.11.1 checks for them), but which the codec does not decode. As Kafka 4 does, each
//! partition is answered with UNSUPPORTED_VERSION.
//!
//! Request v0–2 is request v3 without its first field (`transactional_id`), so it is decoded as
//! v3 behind a null one. Response wire format (after the length and the v0 response header,
//! `correlation_id: i32`): `[topic: string, [index: i32, error_code: i16, base_offset: i64,
//! log_append_time_ms: i64 (v2)]], throttle_time_ms: i32 (v1+)`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader};
use kafka_protocol::protocol::Decodable;

use crate::error::{one_line, NetError};

/// The oldest Produce version the codec decodes.
pub const PRODUCE_VERSION_MIN: i16 = 3;

/// The answer to a Produce v0–2 request: `None` for acks=0 (no response is sent).
pub fn produce_unsupported(header: &RequestHeader, body: Bytes) -> Result<Option<Bytes>, NetError> {
    let version = header.request_api_version;
    assert!(
        (0..PRODUCE_VERSION_MIN).contains(&version),
        "Produce v{version} is not legacy"
    );
    let mut v3 = BytesMut::with_capacity(body.len() + 2);
    v3.put_i16(-1); // a null transactional_id
    v3.extend_from_slice(&body);
    let mut buf = v3.freeze();
    let request = ProduceRequest::decode(&mut buf, 3).map_err(|e| NetError::Decode {
        what: "request body",
        api_key: ApiKey::Produce as i16,
        version,
        reason: one_line(e),
    })?;
    if request.acks == 0 {
        return Ok(None);
    }
    encode(header.correlation_id, version, &request).map(Some)
}

fn encode(correlation_id: i32, version: i16, request: &ProduceRequest) -> Result<Bytes, NetError> {
    let mut out = BytesMut::new();
    out.put_i32(0); // the length, set below
    out.put_i32(correlation_id);
    out.put_i32(len_i32(request.topic_data.len())?);
    for topic in &request.topic_data {
        let name = topic.name.0.as_bytes();
        out.put_i16(i16::try_from(name.len()).map_err(|_| too_large(name.len()))?);
        out.extend_from_slice(name);
        out.put_i32(len_i32(topic.partition_data.len())?);
        for partition in &topic.partition_data {
            out.put_i32(partition.index);
            out.put_i16(ResponseError::UnsupportedVersion.code());
            out.put_i64(-1); // base_offset
            if version >= 2 {
                out.put_i64(-1); // log_append_time_ms
            }
        }
    }
    if version >= 1 {
        out.put_i32(0); // throttle_time_ms
    }
    let len = len_i32(out.len() - 4)?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out.freeze())
}

fn len_i32(len: usize) -> Result<i32, NetError> {
    i32::try_from(len).map_err(|_| too_large(len))
}

fn too_large(len: usize) -> NetError {
    NetError::ResponseTooLarge { len }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    /// A v0–2 body: the v3 encoding without its null transactional_id.
    fn legacy_body(acks: i16) -> Bytes {
        let partitions = vec![PartitionProduceData::default().with_index(4)];
        let topic = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("ab")))
            .with_partition_data(partitions);
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_topic_data(vec![topic]);
        let mut buf = BytesMut::new();
        request.encode(&mut buf, 3).expect("encode");
        assert_eq!(&buf[..2], &[0xff, 0xff], "null transactional id first");
        buf.freeze().slice(2..)
    }

    fn header(version: i16) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(0)
            .with_request_api_version(version)
            .with_correlation_id(7)
    }

    #[test]
    fn exact_bytes_v0_v1_v2() {
        let partition_v0 = [
            &4i32.to_be_bytes()[..],
            &35i16.to_be_bytes(),
            &(-1i64).to_be_bytes(),
        ]
        .concat();
        for version in 0..=2 {
            let got = produce_unsupported(&header(version), legacy_body(1))
                .expect("answer")
                .expect("acks=1 is answered");
            let mut payload = [
                &7i32.to_be_bytes()[..],
                &1i32.to_be_bytes(),
                &2i16.to_be_bytes(),
                b"ab",
            ]
            .concat();
            payload.extend_from_slice(&1i32.to_be_bytes());
            payload.extend_from_slice(&partition_v0);
            if version >= 2 {
                payload.extend_from_slice(&(-1i64).to_be_bytes());
            }
            if version >= 1 {
                payload.extend_from_slice(&0i32.to_be_bytes());
            }
            let mut expected = (payload.len() as i32).to_be_bytes().to_vec();
            expected.extend(payload);
            assert_eq!(&got[..], &expected[..], "v{version}");
        }
    }

    #[test]
    fn acks_zero_gets_no_answer_and_junk_is_an_error() {
        assert!(produce_unsupported(&header(2), legacy_body(0))
            .expect("ok")
            .is_none());
        let body = legacy_body(1);
        for cut in 0..body.len() {
            assert!(
                produce_unsupported(&header(1), body.slice(..cut)).is_err(),
                "cut {cut}"
            );
        }
    }
}
