//! ListOffsets v0 (the codec starts at v1).
//!
//! Request: `replica_id: i32, topics: [name: string, partitions: [partition_index: i32,
//! timestamp: i64, max_num_offsets: i32]]`. Response: `topics: [name: string, partitions:
//! [partition_index: i32, error_code: i16, old_style_offsets: [i64]]]`.
//!
//! The handler answers one offset per partition (as v1+ does). v0 asked for up to
//! `max_num_offsets` of them, newest first: the answer holds that one offset, or none when
//! there is none (an error, nothing at the timestamp) or the client asked for none. Kafka 3.9
//! could add older segment base offsets after the first when asked for more; clients ask for 1.

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};

use super::wire::{Reader, Writer};
use super::OldVersions;
use crate::error::NetError;

/// ListOffsets v0.
pub struct ListOffsetsOld;

/// Each asked partition's `max_num_offsets`, in request order (topic by topic), which the
/// codec's request struct has no field for.
pub type MaxNumOffsets = Vec<i32>;

/// The fewest bytes a topic takes: name length and partition count.
const TOPIC_BYTES_MIN: usize = 2 + 4;
/// The bytes a partition takes: partition_index, timestamp, max_num_offsets.
const PARTITION_BYTES: usize = 4 + 8 + 4;

impl OldVersions for ListOffsetsOld {
    const API_KEY: ApiKey = ApiKey::ListOffsets;
    const VERSIONS: (i16, i16) = (0, 0);
    type Request = ListOffsetsRequest;
    type Response = ListOffsetsResponse;
    type Asked = MaxNumOffsets;

    fn decode(r: &mut Reader) -> Result<(ListOffsetsRequest, MaxNumOffsets), NetError> {
        let replica_id = r.i32()?;
        let mut max_num_offsets = Vec::new();
        let topics = r.array(TOPIC_BYTES_MIN, |r| {
            let name = TopicName(r.string()?);
            let partitions = r.array(PARTITION_BYTES, |r| {
                let partition_index = r.i32()?;
                let timestamp = r.i64()?;
                max_num_offsets.push(r.i32()?);
                Ok(ListOffsetsPartition::default()
                    .with_partition_index(partition_index)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp))
            })?;
            Ok(ListOffsetsTopic::default()
                .with_name(name)
                .with_partitions(partitions))
        })?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(replica_id))
            .with_isolation_level(0)
            .with_topics(topics);
        Ok((request, max_num_offsets))
    }

    fn encode(
        w: &mut Writer,
        response: &ListOffsetsResponse,
        max_num_offsets: &MaxNumOffsets,
    ) -> Result<(), NetError> {
        let mut asked = max_num_offsets.iter();
        w.array(&response.topics, |w, topic| {
            w.string(&topic.name.0)?;
            w.array(&topic.partitions, |w, partition| {
                // A response with more partitions than asked is a handler bug; answer what
                // v1+ would (one offset) rather than fail the whole response.
                let max = asked.next().copied().unwrap_or(1);
                let found = partition.error_code == 0 && partition.offset >= 0 && max >= 1;
                w.i32(partition.partition_index);
                w.i16(partition.error_code);
                let offsets: &[i64] = if found {
                    std::slice::from_ref(&partition.offset)
                } else {
                    &[]
                };
                w.array(offsets, |w, offset| {
                    w.i64(*offset);
                    Ok(())
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };
    use kafka_protocol::protocol::StrBytes;

    /// Topic "ab": partition 0 latest (-1) max 1, partition 1 earliest (-2) max 5.
    fn body() -> Vec<u8> {
        let mut b = (-1i32).to_be_bytes().to_vec();
        b.extend(1i32.to_be_bytes());
        b.extend(string("ab"));
        b.extend(2i32.to_be_bytes());
        for (index, timestamp, max) in [(0i32, -1i64, 1i32), (1, -2, 5)] {
            b.extend(index.to_be_bytes());
            b.extend(timestamp.to_be_bytes());
            b.extend(max.to_be_bytes());
        }
        b
    }

    fn name() -> TopicName {
        TopicName(StrBytes::from_static_str("ab"))
    }

    #[test]
    fn floor_is_the_codec_floor() {
        floor_matches_codec::<ListOffsetsOld>();
    }

    #[test]
    fn decodes_v0_into_the_codec_struct_and_keeps_max_num_offsets() {
        let (request, max_num_offsets) = decoded::<ListOffsetsOld>(0, &body());
        let partition = |index, timestamp| {
            ListOffsetsPartition::default()
                .with_partition_index(index)
                .with_current_leader_epoch(-1)
                .with_timestamp(timestamp)
        };
        let topic = ListOffsetsTopic::default()
            .with_name(name())
            .with_partitions(vec![partition(0, -1), partition(1, -2)]);
        let expected = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![topic]);
        assert_eq!(request, expected);
        assert_eq!(max_num_offsets, vec![1, 5]);
    }

    #[test]
    fn every_truncated_body_and_lying_count_is_an_error() {
        let body = body();
        every_prefix_fails::<ListOffsetsOld>(0, &body);
        let partitions_at = 4 + 4 + 4;
        lying_count_fails::<ListOffsetsOld>(0, &body, 4);
        lying_count_fails::<ListOffsetsOld>(0, &body, partitions_at);
    }

    #[test]
    fn encodes_one_old_style_offset_or_none() {
        let partition = |index, error_code, offset| {
            ListOffsetsPartitionResponse::default()
                .with_partition_index(index)
                .with_error_code(error_code)
                .with_timestamp(-1)
                .with_offset(offset)
        };
        let topic = ListOffsetsTopicResponse::default()
            .with_name(name())
            .with_partitions(vec![
                partition(0, 0, 42), // found
                partition(1, 0, 7),  // found, but the client asked for none
                partition(2, 0, -1), // nothing at the timestamp
                partition(3, 3, -1), // an error
            ]);
        let response = ListOffsetsResponse::default()
            .with_throttle_time_ms(5)
            .with_topics(vec![topic]);
        let mut expected = 1i32.to_be_bytes().to_vec();
        expected.extend(string("ab"));
        expected.extend(4i32.to_be_bytes());
        for (index, error_code, offsets) in [
            (0i32, 0i16, &[42i64][..]),
            (1, 0, &[]),
            (2, 0, &[]),
            (3, 3, &[]),
        ] {
            expected.extend(index.to_be_bytes());
            expected.extend(error_code.to_be_bytes());
            expected.extend((offsets.len() as i32).to_be_bytes());
            for offset in offsets {
                expected.extend(offset.to_be_bytes());
            }
        }
        let asked = vec![1, 0, 1, 1];
        assert_eq!(
            encoded_body::<ListOffsetsOld>(0, &response, &asked),
            expected
        );
    }
}
