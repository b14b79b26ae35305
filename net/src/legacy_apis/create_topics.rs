//! CreateTopics v0–1 (the codec starts at v2).
//!
//! Request: `topics: [name: string, num_partitions: i32, replication_factor: i16,
//! assignments: [partition_index: i32, broker_ids: [i32]], configs: [name: string,
//! value: nullable string]], timeout_ms: i32, validate_only: bool (v1)`. v0 has no
//! `validate_only`: it always creates.
//!
//! Response: `topics: [name: string, error_code: i16, error_message: nullable string (v1)]`
//! (no throttle time, no topic id, partitions or configs).

use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, TopicName,
};

use super::wire::{Reader, Writer};
use super::OldVersions;
use crate::error::NetError;

/// CreateTopics v0–1.
pub struct CreateTopicsOld;

/// The fewest bytes a topic takes: name length, num_partitions, replication_factor, and the
/// assignment and config counts.
const TOPIC_BYTES_MIN: usize = 2 + 4 + 2 + 4 + 4;
/// An assignment: partition_index and the broker id count.
const ASSIGNMENT_BYTES_MIN: usize = 4 + 4;
/// A config: name length and value length.
const CONFIG_BYTES_MIN: usize = 2 + 2;

impl OldVersions for CreateTopicsOld {
    const API_KEY: ApiKey = ApiKey::CreateTopics;
    const VERSIONS: (i16, i16) = (0, 1);
    type Request = CreateTopicsRequest;
    type Response = CreateTopicsResponse;
    type Asked = ();

    fn decode(r: &mut Reader) -> Result<(CreateTopicsRequest, ()), NetError> {
        let topics = r.array(TOPIC_BYTES_MIN, topic)?;
        let timeout_ms = r.i32()?;
        let validate_only = if r.version() >= 1 { r.bool()? } else { false };
        let request = CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(timeout_ms)
            .with_validate_only(validate_only);
        Ok((request, ()))
    }

    fn encode(w: &mut Writer, response: &CreateTopicsResponse, _: &()) -> Result<(), NetError> {
        let version = w.version();
        w.array(&response.topics, |w, topic| {
            w.string(&topic.name.0)?;
            w.i16(topic.error_code);
            if version >= 1 {
                w.nullable_string(topic.error_message.as_deref())?;
            }
            Ok(())
        })
    }
}

fn topic(r: &mut Reader) -> Result<CreatableTopic, NetError> {
    let name = TopicName(r.string()?);
    let num_partitions = r.i32()?;
    let replication_factor = r.i16()?;
    let assignments = r.array(ASSIGNMENT_BYTES_MIN, |r| {
        let partition_index = r.i32()?;
        let broker_ids = r.array(4, |r| r.i32().map(BrokerId))?;
        Ok(CreatableReplicaAssignment::default()
            .with_partition_index(partition_index)
            .with_broker_ids(broker_ids))
    })?;
    let configs = r.array(CONFIG_BYTES_MIN, |r| {
        let name = r.string()?;
        let value = r.nullable_string()?;
        Ok(CreatableTopicConfig::default()
            .with_name(name)
            .with_value(value))
    })?;
    Ok(CreatableTopic::default()
        .with_name(name)
        .with_num_partitions(num_partitions)
        .with_replication_factor(replication_factor)
        .with_assignments(assignments)
        .with_configs(configs))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::protocol::StrBytes;

    /// One topic "ab" (3 partitions, factor 1, assignment of partition 0 to broker 1, config
    /// `cleanup.policy=compact`), timeout 5000, and for v1 validate_only.
    fn body(version: i16) -> Vec<u8> {
        let mut b = 1i32.to_be_bytes().to_vec();
        b.extend(string("ab"));
        b.extend(3i32.to_be_bytes());
        b.extend(1i16.to_be_bytes());
        b.extend(1i32.to_be_bytes()); // one assignment
        b.extend(0i32.to_be_bytes());
        b.extend(1i32.to_be_bytes()); // one broker id
        b.extend(1i32.to_be_bytes());
        b.extend(1i32.to_be_bytes()); // one config
        b.extend(string("cleanup.policy"));
        b.extend(string("compact"));
        b.extend(5000i32.to_be_bytes());
        if version >= 1 {
            b.push(1);
        }
        b
    }

    #[test]
    fn floor_is_the_codec_floor() {
        floor_matches_codec::<CreateTopicsOld>();
    }

    #[test]
    fn decodes_v0_and_v1_into_the_codec_struct() {
        for version in 0..=1 {
            let (request, ()) = decoded::<CreateTopicsOld>(version, &body(version));
            let assignment = CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(1)]);
            let config = CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("cleanup.policy"))
                .with_value(Some(StrBytes::from_static_str("compact")));
            let topic = CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("ab")))
                .with_num_partitions(3)
                .with_replication_factor(1)
                .with_assignments(vec![assignment])
                .with_configs(vec![config]);
            let expected = CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(5000)
                .with_validate_only(version >= 1);
            assert_eq!(request, expected, "v{version}");
        }
    }

    #[test]
    fn every_truncated_body_and_lying_count_is_an_error() {
        for version in 0..=1 {
            let body = body(version);
            every_prefix_fails::<CreateTopicsOld>(version, &body);
            let assignments_at = 4 + 4 + 4 + 2;
            let brokers_at = assignments_at + 4 + 4;
            let configs_at = brokers_at + 4 + 4;
            for at in [0, assignments_at, brokers_at, configs_at] {
                lying_count_fails::<CreateTopicsOld>(version, &body, at);
            }
        }
    }

    #[test]
    fn encodes_exact_bytes_v0_and_v1() {
        let result = CreatableTopicResult::default()
            .with_name(TopicName(StrBytes::from_static_str("ab")))
            .with_error_code(36)
            .with_error_message(Some(StrBytes::from_static_str("exists")))
            .with_num_partitions(3);
        let response = CreateTopicsResponse::default()
            .with_throttle_time_ms(9)
            .with_topics(vec![result]);
        let mut v0 = 1i32.to_be_bytes().to_vec();
        v0.extend(string("ab"));
        v0.extend(36i16.to_be_bytes());
        let mut v1 = v0.clone();
        v1.extend(string("exists"));
        assert_eq!(encoded_body::<CreateTopicsOld>(0, &response, &()), v0);
        assert_eq!(encoded_body::<CreateTopicsOld>(1, &response, &()), v1);
    }
}
