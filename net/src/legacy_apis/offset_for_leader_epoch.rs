//! OffsetForLeaderEpoch v0–1 (the codec starts at v2).
//!
//! Request: `topics: [topic: string, partitions: [partition: i32, leader_epoch: i32]]`: no
//! replica id (v3+) and no current leader epoch (v2+), so the request names no epoch to check.
//! Response: `topics: [topic: string, partitions: [error_code: i16, partition: i32,
//! leader_epoch: i32 (v1 only), end_offset: i64]]`, with no throttle time (v2+).

use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};

use super::wire::{Reader, Writer};
use super::OldVersions;
use crate::error::NetError;

/// OffsetForLeaderEpoch v0–1.
pub struct OffsetForLeaderEpochOld;

impl OldVersions for OffsetForLeaderEpochOld {
    const API_KEY: ApiKey = ApiKey::OffsetForLeaderEpoch;
    const VERSIONS: (i16, i16) = (0, 1);
    type Request = OffsetForLeaderEpochRequest;
    type Response = OffsetForLeaderEpochResponse;
    type Asked = ();

    fn decode(r: &mut Reader) -> Result<(OffsetForLeaderEpochRequest, ()), NetError> {
        // A topic takes at least its name's length and its partition count; a partition 8 bytes.
        let topics = r.array(6, |r| {
            let topic = TopicName(r.string()?);
            let partitions = r.array(8, |r| {
                Ok(OffsetForLeaderPartition::default()
                    .with_partition(r.i32()?)
                    .with_leader_epoch(r.i32()?))
            })?;
            Ok(OffsetForLeaderTopic::default()
                .with_topic(topic)
                .with_partitions(partitions))
        })?;
        // v0–1 come from followers; -1 (a consumer's id) keeps them from looking like debug tools.
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(topics);
        Ok((request, ()))
    }

    fn encode(
        w: &mut Writer,
        response: &OffsetForLeaderEpochResponse,
        _: &(),
    ) -> Result<(), NetError> {
        let version = w.version();
        w.array(&response.topics, |w, topic| {
            w.string(&topic.topic)?;
            w.array(&topic.partitions, |w, p| {
                w.i16(p.error_code);
                w.i32(p.partition);
                if version >= 1 {
                    w.i32(p.leader_epoch);
                }
                w.i64(p.end_offset);
                Ok(())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use kafka_protocol::messages::offset_for_leader_epoch_response::{
        EpochEndOffset, OffsetForLeaderTopicResult,
    };
    use kafka_protocol::protocol::StrBytes;

    fn body() -> Vec<u8> {
        let mut b = 1i32.to_be_bytes().to_vec();
        b.extend(string("ab"));
        b.extend(2i32.to_be_bytes());
        for (partition, epoch) in [(0i32, 3i32), (5, 7)] {
            b.extend(partition.to_be_bytes());
            b.extend(epoch.to_be_bytes());
        }
        b
    }

    #[test]
    fn floor_is_the_codec_floor() {
        floor_matches_codec::<OffsetForLeaderEpochOld>();
    }

    #[test]
    fn decodes_v0_and_v1_into_the_codec_struct() {
        for version in 0..=1 {
            let (request, ()) = decoded::<OffsetForLeaderEpochOld>(version, &body());
            assert_eq!(request.topics.len(), 1);
            assert_eq!(&*request.topics[0].topic, "ab");
            let asked: Vec<(i32, i32, i32)> = request.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition, p.current_leader_epoch, p.leader_epoch))
                .collect();
            assert_eq!(
                asked,
                vec![(0, -1, 3), (5, -1, 7)],
                "no current epoch to check"
            );
        }
    }

    #[test]
    fn every_truncated_body_is_an_error() {
        every_prefix_fails::<OffsetForLeaderEpochOld>(0, &body());
        lying_count_fails::<OffsetForLeaderEpochOld>(1, &body(), 0);
    }

    #[test]
    fn encodes_exact_bytes_per_version() {
        let partition = EpochEndOffset::default()
            .with_error_code(0)
            .with_partition(5)
            .with_leader_epoch(7)
            .with_end_offset(42);
        let response = OffsetForLeaderEpochResponse::default()
            .with_throttle_time_ms(9)
            .with_topics(vec![OffsetForLeaderTopicResult::default()
                .with_topic(TopicName(StrBytes::from_static_str("ab")))
                .with_partitions(vec![partition])]);
        for version in 0..=1 {
            let mut expected = 1i32.to_be_bytes().to_vec();
            expected.extend(string("ab"));
            expected.extend(1i32.to_be_bytes());
            expected.extend(0i16.to_be_bytes());
            expected.extend(5i32.to_be_bytes());
            if version == 1 {
                expected.extend(7i32.to_be_bytes());
            }
            expected.extend(42i64.to_be_bytes());
            let got = encoded_body::<OffsetForLeaderEpochOld>(version, &response, &());
            assert_eq!(got, expected, "v{version}");
        }
    }
}
