//! OffsetFetch v0 (the codec starts at v1).
//!
//! v0 is v1 byte for byte, both ways, so the codec decodes and encodes it at v1. Request:
//! `group_id: string, topics: [name: string, partition_indexes: [i32]]` (not nullable: v0
//! cannot ask for every partition). Response: `topics: [name: string, partitions:
//! [partition_index: i32, committed_offset: i64, metadata: nullable string, error_code: i16]]`
//! (no group-level error: the handler puts it on every partition below v2).
//!
//! In Kafka, v0 read offsets that v0 commits had written to ZooKeeper (and a KRaft broker
//! answers it with UNSUPPORTED_VERSION). Odradek has one offset store: v0 reads what
//! OffsetCommit of any version wrote.

use kafka_protocol::messages::{ApiKey, OffsetFetchRequest, OffsetFetchResponse};

use super::wire::{Reader, Writer};
use super::{decode_as, encode_as, OldVersions};
use crate::error::NetError;

/// OffsetFetch v0.
pub struct OffsetFetchOld;

impl OldVersions for OffsetFetchOld {
    const API_KEY: ApiKey = ApiKey::OffsetFetch;
    const VERSIONS: (i16, i16) = (0, 0);
    type Request = OffsetFetchRequest;
    type Response = OffsetFetchResponse;
    type Asked = ();

    fn decode(r: &mut Reader) -> Result<(OffsetFetchRequest, ()), NetError> {
        let request: OffsetFetchRequest = decode_as(r, 1)?;
        // The codec reads a null array at v1 too; Kafka refuses it below v2.
        if request.topics.is_none() {
            return Err(r.error("null topics (nullable from v2 on)".into()));
        }
        Ok((request, ()))
    }

    fn encode(w: &mut Writer, response: &OffsetFetchResponse, _: &()) -> Result<(), NetError> {
        encode_as(w, response, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponsePartition, OffsetFetchResponseTopic,
    };
    use kafka_protocol::messages::{GroupId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn body() -> Vec<u8> {
        let mut b = string("g");
        b.extend(1i32.to_be_bytes());
        b.extend(string("ab"));
        b.extend(2i32.to_be_bytes());
        b.extend(0i32.to_be_bytes());
        b.extend(3i32.to_be_bytes());
        b
    }

    fn s(s: &'static str) -> StrBytes {
        StrBytes::from_static_str(s)
    }

    #[test]
    fn floor_is_the_codec_floor() {
        floor_matches_codec::<OffsetFetchOld>();
    }

    #[test]
    fn decodes_v0_into_the_codec_struct() {
        let (request, ()) = decoded::<OffsetFetchOld>(0, &body());
        let topic = OffsetFetchRequestTopic::default()
            .with_name(TopicName(s("ab")))
            .with_partition_indexes(vec![0, 3]);
        let expected = OffsetFetchRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(Some(vec![topic]));
        assert_eq!(request, expected);
    }

    #[test]
    fn every_truncated_body_is_an_error_and_null_topics_are_refused() {
        let body = body();
        every_prefix_fails::<OffsetFetchOld>(0, &body);
        let mut null_topics = string("g");
        null_topics.extend((-1i32).to_be_bytes());
        let result = super::super::decode::<OffsetFetchOld>(
            &header::<OffsetFetchOld>(0),
            null_topics.into(),
        );
        assert!(result.is_err(), "topics are nullable from v2 only");
    }

    #[test]
    fn encodes_exact_bytes() {
        let partition = OffsetFetchResponsePartition::default()
            .with_partition_index(3)
            .with_committed_offset(40)
            .with_committed_leader_epoch(-1)
            .with_metadata(Some(s("x")))
            .with_error_code(0);
        let topic = OffsetFetchResponseTopic::default()
            .with_name(TopicName(s("ab")))
            .with_partitions(vec![partition]);
        let response = OffsetFetchResponse::default().with_topics(vec![topic]);
        let mut expected = 1i32.to_be_bytes().to_vec();
        expected.extend(string("ab"));
        expected.extend(1i32.to_be_bytes());
        expected.extend(3i32.to_be_bytes());
        expected.extend(40i64.to_be_bytes());
        expected.extend(string("x"));
        expected.extend(0i16.to_be_bytes());
        assert_eq!(encoded_body::<OffsetFetchOld>(0, &response, &()), expected);
    }
}
