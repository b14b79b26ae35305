//! `odradek group reset-offsets`: moves an empty group's committed offsets on one topic to the
//! log start, the log end, an offset or a time, committing them as an admin would (OffsetCommit
//! with generation -1 and no member id) on the group's coordinator.

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::client::{check, group_id, topic_name, Cluster, Connection};
use super::group::{coordinator, describe_group};
use super::offsets::{list_offsets, Partition, EARLIEST, LATEST};
use super::table::Table;
use super::{CliError, Common};

/// Where `reset-offsets` moves each partition.
pub enum Target {
    Timestamp(i64),
    Offset(i64),
}

pub fn reset(
    common: &Common,
    cluster: &mut Cluster,
    group: &str,
    topic: &str,
    target: Target,
) -> Result<(), CliError> {
    let connection = coordinator(cluster, group)?;
    let state = describe_group(connection, group)?.group_state.to_string();
    // Dead: no such group yet; committing creates it, as Kafka's tool allows.
    if state != "Empty" && state != "Dead" {
        return Err(CliError::Usage(format!(
            "group '{group}' is {state}: offsets can only be reset while it has no members \
             (stop its consumers first)"
        )));
    }
    let metadata = cluster.metadata(Some(&[topic]))?;
    let Some(found) = metadata.topics.first() else {
        return Err(CliError::Protocol("Metadata answered no topic".into()));
    };
    check(found.error_code, None, &format!("topic '{topic}'"))?;
    let mut partitions: Vec<Partition> = found
        .partitions
        .iter()
        .map(|p| (topic.to_owned(), p.partition_index))
        .collect();
    partitions.sort();
    let starts = list_offsets(cluster, &metadata, &partitions, EARLIEST)?;
    let ends = list_offsets(cluster, &metadata, &partitions, LATEST)?;
    let by_time = match target {
        Target::Timestamp(t) if t >= 0 => Some(list_offsets(cluster, &metadata, &partitions, t)?),
        _ => None,
    };
    let mut new_offsets = Vec::new();
    for p in &partitions {
        let start = starts.get(p).copied().flatten().unwrap_or(0);
        let end = ends.get(p).copied().flatten().unwrap_or(start);
        let offset = match (&target, &by_time) {
            (Target::Timestamp(EARLIEST), _) => start,
            (Target::Timestamp(_), Some(found)) => found.get(p).copied().flatten().unwrap_or(end),
            (Target::Timestamp(_), None) => end,
            (Target::Offset(n), _) => (*n).clamp(start, end.max(start)),
        };
        new_offsets.push((p.1, offset));
    }
    commit(coordinator(cluster, group)?, group, topic, &new_offsets)?;
    let json = json!(new_offsets
        .iter()
        .map(|(p, o)| json!({"topic": topic, "partition": p, "new_offset": o}))
        .collect::<Vec<_>>());
    common.emit(json, || {
        let mut table = Table::new(&["TOPIC", "PARTITION", "NEW-OFFSET"]);
        for (partition, offset) in &new_offsets {
            table.row(vec![
                topic.to_owned(),
                partition.to_string(),
                offset.to_string(),
            ]);
        }
        table.render()
    });
    Ok(())
}

/// Commits `offsets` of `topic` as an admin (generation -1, no member id).
fn commit(
    connection: &mut Connection,
    group: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Result<(), CliError> {
    let partitions = offsets
        .iter()
        .map(|(index, offset)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(*index)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str("")))
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(partitions)]);
    let (_, response): (i16, OffsetCommitResponse) =
        connection.call_negotiated(ApiKey::OffsetCommit, |_| request)?;
    for answer in &response.topics {
        for p in &answer.partitions {
            let context = format!("commit {topic}-{} for group '{group}'", p.partition_index);
            check(p.error_code, None, &context)?;
        }
    }
    Ok(())
}
