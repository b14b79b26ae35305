//! OffsetCommit v0–1 (the codec starts at v2).
//!
//! Request v0: `group_id: string, topics: [name: string, partitions: [partition_index: i32,
//! committed_offset: i64, committed_metadata: nullable string]]`: a simple commit, outside any
//! generation (decoded as generation -1, no member id, which the coordinator accepts for a
//! group without members, as it does a standalone consumer's v2+ commit).
//! Request v1: `group_id: string, generation_id: i32, member_id: string, topics: [name: string,
//! partitions: [partition_index: i32, committed_offset: i64, commit_timestamp: i64,
//! committed_metadata: nullable string]]`.
//!
//! `commit_timestamp` has no field in the codec's struct and is dropped: the coordinator
//! stamps every commit with its own clock, which is what clients get by sending -1 (all
//! known ones do). Kafka 3.9 would keep a client-chosen timestamp as the commit time that
//! offset expiry counts from.
//!
//! Response v0–1: exactly v2's bytes (`topics: [name: string, partitions: [partition_index:
//! i32, error_code: i16]]`), encoded by the codec at v2.

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetCommitRequest, OffsetCommitResponse, TopicName,
};

use super::wire::{Reader, Writer};
use super::{encode_as, OldVersions};
use crate::error::NetError;

/// OffsetCommit v0–1.
pub struct OffsetCommitOld;

/// The fewest bytes a topic takes: name length and partition count.
const TOPIC_BYTES_MIN: usize = 2 + 4;

impl OldVersions for OffsetCommitOld {
    const API_KEY: ApiKey = ApiKey::OffsetCommit;
    const VERSIONS: (i16, i16) = (0, 1);
    type Request = OffsetCommitRequest;
    type Response = OffsetCommitResponse;
    type Asked = ();

    fn decode(r: &mut Reader) -> Result<(OffsetCommitRequest, ()), NetError> {
        let version = r.version();
        let group_id = GroupId(r.string()?);
        let mut request = OffsetCommitRequest::default()
            .with_group_id(group_id)
            .with_generation_id_or_member_epoch(-1)
            .with_retention_time_ms(-1);
        if version >= 1 {
            request.generation_id_or_member_epoch = r.i32()?;
            request.member_id = r.string()?;
        }
        // partition_index, committed_offset, commit_timestamp (v1), metadata length.
        let partition_bytes_min = 4 + 8 + if version >= 1 { 8 } else { 0 } + 2;
        request.topics = r.array(TOPIC_BYTES_MIN, |r| {
            let name = TopicName(r.string()?);
            let partitions = r.array(partition_bytes_min, |r| {
                let partition_index = r.i32()?;
                let committed_offset = r.i64()?;
                if version >= 1 {
                    let _commit_timestamp = r.i64()?;
                }
                let committed_metadata = r.nullable_string()?;
                Ok(OffsetCommitRequestPartition::default()
                    .with_partition_index(partition_index)
                    .with_committed_offset(committed_offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(committed_metadata))
            })?;
            Ok(OffsetCommitRequestTopic::default()
                .with_name(name)
                .with_partitions(partitions))
        })?;
        Ok((request, ()))
    }

    fn encode(w: &mut Writer, response: &OffsetCommitResponse, _: &()) -> Result<(), NetError> {
        // v2's bytes have no throttle time (v3+); the codec refuses nothing else at v2.
        encode_as(w, response, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use kafka_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    use kafka_protocol::protocol::StrBytes;

    /// Group "g" (v1: generation 3, member "m"), topic "ab" partition 2 at offset 40 (v1:
    /// commit timestamp -1) with metadata "x", partition 5 at 9 with null metadata.
    fn body(version: i16) -> Vec<u8> {
        let mut b = string("g");
        if version >= 1 {
            b.extend(3i32.to_be_bytes());
            b.extend(string("m"));
        }
        b.extend(1i32.to_be_bytes());
        b.extend(string("ab"));
        b.extend(2i32.to_be_bytes());
        for (index, offset, metadata) in [(2i32, 40i64, Some("x")), (5, 9, None)] {
            b.extend(index.to_be_bytes());
            b.extend(offset.to_be_bytes());
            if version >= 1 {
                b.extend((-1i64).to_be_bytes());
            }
            match metadata {
                Some(m) => b.extend(string(m)),
                None => b.extend((-1i16).to_be_bytes()),
            }
        }
        b
    }

    fn s(s: &'static str) -> StrBytes {
        StrBytes::from_static_str(s)
    }

    #[test]
    fn floor_is_the_codec_floor() {
        floor_matches_codec::<OffsetCommitOld>();
    }

    #[test]
    fn decodes_v0_as_a_simple_commit_and_v1_with_its_generation() {
        for version in 0..=1 {
            let (request, ()) = decoded::<OffsetCommitOld>(version, &body(version));
            let partition = |index, offset, metadata| {
                OffsetCommitRequestPartition::default()
                    .with_partition_index(index)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(metadata)
            };
            let topic = OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("ab")))
                .with_partitions(vec![partition(2, 40, Some(s("x"))), partition(5, 9, None)]);
            let (generation, member) = if version >= 1 { (3, "m") } else { (-1, "") };
            let expected = OffsetCommitRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(StrBytes::from_string(member.to_string()))
                .with_group_instance_id(None)
                .with_retention_time_ms(-1)
                .with_topics(vec![topic]);
            assert_eq!(request, expected, "v{version}");
        }
    }

    #[test]
    fn every_truncated_body_and_lying_count_is_an_error() {
        for version in 0..=1 {
            let body = body(version);
            every_prefix_fails::<OffsetCommitOld>(version, &body);
            let topics_at = if version >= 1 { 3 + 4 + 3 } else { 3 };
            let partitions_at = topics_at + 4 + 4;
            lying_count_fails::<OffsetCommitOld>(version, &body, topics_at);
            lying_count_fails::<OffsetCommitOld>(version, &body, partitions_at);
        }
    }

    #[test]
    fn encodes_exact_bytes_v0_and_v1() {
        let partition = OffsetCommitResponsePartition::default()
            .with_partition_index(2)
            .with_error_code(25);
        let topic = OffsetCommitResponseTopic::default()
            .with_name(TopicName(s("ab")))
            .with_partitions(vec![partition]);
        let response = OffsetCommitResponse::default().with_topics(vec![topic]);
        let mut expected = 1i32.to_be_bytes().to_vec();
        expected.extend(string("ab"));
        expected.extend(1i32.to_be_bytes());
        expected.extend(2i32.to_be_bytes());
        expected.extend(25i16.to_be_bytes());
        for version in 0..=1 {
            let got = encoded_body::<OffsetCommitOld>(version, &response, &());
            assert_eq!(got, expected, "v{version}");
        }
    }
}
