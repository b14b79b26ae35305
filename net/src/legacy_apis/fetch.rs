//! Fetch v0–3 (the codec starts at v4).
//!
//! Request: `replica_id: i32, max_wait_ms: i32, min_bytes: i32, max_bytes: i32 (v3), [topic:
//! string, [partition: i32, fetch_offset: i64, partition_max_bytes: i32]]`. Below v3 there is
//! no response-wide bound; Kafka reads that as `i32::MAX`, and so does this. Response:
//! `throttle_time_ms: i32 (v1+), [topic: string, [partition: i32, error_code: i16,
//! high_watermark: i64, records: bytes]]`.
//!
//! The records of an answer at these versions are legacy message sets, which the broker makes
//! from its stored batches (see [`crate::message_set::down_convert`]) before this encodes them.
//! They are copied into the frame: a response that holds a stand-in for record data sent by
//! reference (see [`crate::segmented`]) is refused with an error instead of putting the
//! stand-in's zeros on the wire.

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};

use super::wire::{Reader, Writer};
use super::OldVersions;
use crate::error::NetError;
use crate::segmented;

/// The bytes a topic takes at least: name length and partition count.
const TOPIC_BYTES_MIN: usize = 2 + 4;
/// The bytes a partition takes: partition, fetch_offset, partition_max_bytes.
const PARTITION_BYTES: usize = 4 + 8 + 4;

/// Fetch v0–3.
pub struct FetchOld;

impl OldVersions for FetchOld {
    const API_KEY: ApiKey = ApiKey::Fetch;
    const VERSIONS: (i16, i16) = (0, 3);
    type Request = FetchRequest;
    type Response = FetchResponse;
    type Asked = ();

    fn decode(r: &mut Reader) -> Result<(FetchRequest, ()), NetError> {
        let replica_id = r.i32()?;
        let max_wait_ms = r.i32()?;
        let min_bytes = r.i32()?;
        let max_bytes = if r.version() >= 3 { r.i32()? } else { i32::MAX };
        let topics = r.array(TOPIC_BYTES_MIN, |r| {
            let topic = TopicName(r.string()?);
            let partitions = r.array(PARTITION_BYTES, |r| {
                Ok(FetchPartition::default()
                    .with_partition(r.i32()?)
                    .with_fetch_offset(r.i64()?)
                    .with_partition_max_bytes(r.i32()?))
            })?;
            Ok(FetchTopic::default()
                .with_topic(topic)
                .with_partitions(partitions))
        })?;
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(replica_id))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(min_bytes)
            .with_max_bytes(max_bytes)
            .with_topics(topics);
        Ok((request, ()))
    }

    fn encode(w: &mut Writer, response: &FetchResponse, _: &()) -> Result<(), NetError> {
        if w.version() >= 1 {
            w.i32(response.throttle_time_ms);
        }
        w.array(&response.responses, |w, topic| {
            w.string(&topic.topic)?;
            w.array(&topic.partitions, |w, p| {
                w.i32(p.partition_index);
                w.i16(p.error_code);
                w.i64(p.high_watermark);
                let records = p.records.as_deref().unwrap_or_default();
                if segmented::is_stand_in(records) {
                    return Err(w.error_reason(
                        "record data held by reference cannot go into an old Fetch answer".into(),
                    ));
                }
                let len = i32::try_from(records.len())
                    .map_err(|_| w.error_reason(format!("{} bytes of records", records.len())))?;
                w.i32(len);
                w.buf().extend_from_slice(records);
                Ok(())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::StrBytes;

    /// A Fetch body at `version` asking for partitions 0 and 1 of "ab" and 2 of "c".
    fn body(version: i16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((-1i32).to_be_bytes()); // replica_id
        b.extend(500i32.to_be_bytes()); // max_wait_ms
        b.extend(1i32.to_be_bytes()); // min_bytes
        if version >= 3 {
            b.extend((1i32 << 20).to_be_bytes()); // max_bytes
        }
        b.extend(2i32.to_be_bytes());
        for (name, partitions) in [("ab", &[0i32, 1][..]), ("c", &[2][..])] {
            b.extend(string(name));
            b.extend((partitions.len() as i32).to_be_bytes());
            for &partition in partitions {
                b.extend(partition.to_be_bytes());
                b.extend((40i64 + i64::from(partition)).to_be_bytes());
                b.extend((1i32 << 16).to_be_bytes());
            }
        }
        b
    }

    fn topic_count_at(version: i16) -> usize {
        if version >= 3 {
            16
        } else {
            12
        }
    }

    #[test]
    fn floor_is_the_codec_floor() {
        floor_matches_codec::<FetchOld>();
    }

    #[test]
    fn decodes_every_version_into_the_codec_struct() {
        for version in 0..=3 {
            let (request, ()) = decoded::<FetchOld>(version, &body(version));
            assert_eq!(request.replica_id, BrokerId(-1));
            assert_eq!((request.max_wait_ms, request.min_bytes), (500, 1));
            let max_bytes = if version >= 3 { 1 << 20 } else { i32::MAX };
            assert_eq!(request.max_bytes, max_bytes, "v{version}");
            let asked: Vec<(String, i32, i64, i32)> = request
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        (
                            t.topic.to_string(),
                            p.partition,
                            p.fetch_offset,
                            p.partition_max_bytes,
                        )
                    })
                })
                .collect();
            let want = vec![
                ("ab".to_string(), 0, 40, 1 << 16),
                ("ab".to_string(), 1, 41, 1 << 16),
                ("c".to_string(), 2, 42, 1 << 16),
            ];
            assert_eq!(asked, want, "v{version}");
        }
    }

    #[test]
    fn truncated_bodies_and_lying_counts_are_errors() {
        for version in 0..=3 {
            let body = body(version);
            every_prefix_fails::<FetchOld>(version, &body);
            let topics_at = topic_count_at(version);
            lying_count_fails::<FetchOld>(version, &body, topics_at);
            // The first topic's partition count, after its name "ab".
            lying_count_fails::<FetchOld>(version, &body, topics_at + 4 + 4);
        }
    }

    fn response(records: Option<Bytes>) -> FetchResponse {
        let partition = PartitionData::default()
            .with_partition_index(3)
            .with_error_code(0)
            .with_high_watermark(99)
            .with_records(records);
        FetchResponse::default()
            .with_throttle_time_ms(5)
            .with_responses(vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("ab")))
                .with_partitions(vec![partition])])
    }

    #[test]
    fn encodes_exact_bytes_at_each_version() {
        for version in 0..=3 {
            for records in [None, Some(Bytes::from_static(b"message set"))] {
                let mut want = Vec::new();
                if version >= 1 {
                    want.extend(5i32.to_be_bytes());
                }
                want.extend(1i32.to_be_bytes());
                want.extend(string("ab"));
                want.extend(1i32.to_be_bytes());
                want.extend(3i32.to_be_bytes());
                want.extend(0i16.to_be_bytes());
                want.extend(99i64.to_be_bytes());
                let bytes = records.as_deref().unwrap_or_default();
                want.extend((bytes.len() as i32).to_be_bytes());
                want.extend(bytes);
                let got = encoded_body::<FetchOld>(version, &response(records.clone()), &());
                assert_eq!(got, want, "v{version} {records:?}");
            }
        }
    }

    #[test]
    fn a_stand_in_is_refused_not_sent_as_zeros() {
        let pieces = vec![Bytes::from_static(b"one"), Bytes::from_static(b"two")];
        let (stand_in, _) = segmented::Shared::joined(pieces, 0);
        let result = super::super::encode::<FetchOld>(
            &header::<FetchOld>(2),
            &response(Some(stand_in)),
            &(),
        );
        assert!(result.is_err(), "{result:?}");
    }
}
