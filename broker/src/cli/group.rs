//! `odradek group list | describe | reset-offsets | delete`: ListGroups on every broker,
//! FindCoordinator, then DescribeGroups, OffsetFetch, OffsetCommit and DeleteGroups on the
//! group's coordinator; log end offsets from the partition leaders.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde_json::json;

use super::client::{check, group_id, Cluster, Connection};
use super::offsets::{list_offsets, parse_datetime, Partition, EARLIEST, LATEST};
use super::reset::{reset, Target};
use super::table::{or_dash, Table};
use super::{CliError, Common};

#[derive(clap::Subcommand, Debug)]
pub enum GroupAction {
    /// Every consumer group with its state.
    List,
    /// State, members and their assignments, committed offsets and lag of one group.
    Describe { group: String },
    /// Moves an empty group's committed offsets on one topic.
    #[command(group(clap::ArgGroup::new("target").required(true)))]
    ResetOffsets {
        group: String,
        /// The topic whose committed offsets move (every partition of it).
        #[arg(long, value_name = "TOPIC")]
        topic: String,
        /// To the log start offset of every partition.
        #[arg(long, group = "target")]
        to_earliest: bool,
        /// To the log end offset of every partition.
        #[arg(long, group = "target")]
        to_latest: bool,
        /// To this offset in every partition (kept within the log start and end offsets).
        #[arg(long, value_name = "N", group = "target")]
        to_offset: Option<i64>,
        /// To the first offset at or after this time, e.g. 2026-11-21T14:30:00Z.
        #[arg(long, value_name = "ISO8601", group = "target")]
        to_datetime: Option<String>,
    },
    /// Deletes an empty group and its committed offsets.
    Delete { group: String },
}

pub fn run(common: &Common, action: GroupAction) -> Result<(), CliError> {
    let target = match &action {
        GroupAction::ResetOffsets {
            to_earliest,
            to_latest,
            to_offset,
            to_datetime,
            ..
        } => Some(match (to_earliest, to_latest, to_offset, to_datetime) {
            (true, ..) => Target::Timestamp(EARLIEST),
            (_, true, ..) => Target::Timestamp(LATEST),
            (_, _, Some(offset), _) if *offset < 0 => {
                return Err(CliError::Usage("--to-offset must be at least 0".into()))
            }
            (_, _, Some(offset), _) => Target::Offset(*offset),
            (_, _, _, Some(time)) => Target::Timestamp(parse_datetime(time)?),
            _ => {
                return Err(CliError::Usage(
                    "reset-offsets needs a --to-… option".into(),
                ))
            }
        }),
        _ => None,
    };
    let mut cluster = common.connect()?;
    match action {
        GroupAction::List => list(common, &mut cluster),
        GroupAction::Describe { group } => describe(common, &mut cluster, &group),
        GroupAction::ResetOffsets { group, topic, .. } => match target {
            Some(target) => reset(common, &mut cluster, &group, &topic, target),
            None => Err(CliError::Usage(
                "reset-offsets needs a --to-… option".into(),
            )),
        },
        GroupAction::Delete { group } => delete(common, &mut cluster, &group),
    }
}

fn list(common: &Common, cluster: &mut Cluster) -> Result<(), CliError> {
    let metadata = cluster.metadata(Some(&[]))?;
    let mut groups = BTreeMap::new();
    for node_id in metadata
        .brokers
        .iter()
        .map(|b| *b.node_id)
        .collect::<Vec<_>>()
    {
        let connection = cluster.broker_of(&metadata, node_id)?;
        let (_, response): (i16, ListGroupsResponse) =
            connection.call_negotiated(ApiKey::ListGroups, |_| ListGroupsRequest::default())?;
        check(response.error_code, None, "ListGroups")?;
        for listed in response.groups {
            let state = Some(listed.group_state.to_string()).filter(|s| !s.is_empty());
            groups.insert(
                listed.group_id.to_string(),
                (state, listed.protocol_type.to_string()),
            );
        }
    }
    let json = json!(groups
        .iter()
        .map(|(g, (s, p))| json!({"group": g, "state": s, "protocol_type": p}))
        .collect::<Vec<_>>());
    common.emit(json, || {
        let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
        for (group, (state, protocol_type)) in &groups {
            let state = state.clone().unwrap_or_else(|| "-".into());
            table.row(vec![group.clone(), state, protocol_type.clone()]);
        }
        table.render()
    });
    Ok(())
}

/// The connection to `group`'s coordinator.
pub(super) fn coordinator<'a>(
    cluster: &'a mut Cluster,
    group: &str,
) -> Result<&'a mut Connection, CliError> {
    let (version, response): (i16, FindCoordinatorResponse) =
        cluster
            .bootstrap()
            .call_negotiated(ApiKey::FindCoordinator, |version| {
                let key = StrBytes::from_string(group.to_owned());
                if version >= 4 {
                    FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
                } else {
                    FindCoordinatorRequest::default().with_key(key)
                }
            })?;
    let context = format!("find the coordinator of group '{group}'");
    let (host, port) = if version >= 4 {
        let Some(found) = response.coordinators.first() else {
            return Err(CliError::Protocol("FindCoordinator answered no key".into()));
        };
        check(found.error_code, found.error_message.as_ref(), &context)?;
        (found.host.to_string(), found.port)
    } else {
        check(
            response.error_code,
            response.error_message.as_ref(),
            &context,
        )?;
        (response.host.to_string(), response.port)
    };
    cluster.broker(&host, port)
}

pub(super) fn describe_group(
    connection: &mut Connection,
    group: &str,
) -> Result<describe_groups_response::DescribedGroup, CliError> {
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let (_, response): (i16, DescribeGroupsResponse) =
        connection.call_negotiated(ApiKey::DescribeGroups, |_| request)?;
    let Some(described) = response.groups.into_iter().next() else {
        return Err(CliError::Protocol(
            "DescribeGroups answered no group".into(),
        ));
    };
    let context = format!("group '{group}'");
    check(
        described.error_code,
        described.error_message.as_ref(),
        &context,
    )?;
    Ok(described)
}

/// A member's assignment (consumer protocol) as topic → partitions; empty when it has none.
fn assignment(bytes: &Bytes) -> BTreeMap<String, Vec<i32>> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return BTreeMap::new();
    }
    // Newer versions only add fields: read them as the newest version we know (as Kafka does).
    let known = 3;
    let version = buf.get_i16().clamp(0, known);
    let Ok(decoded) = ConsumerProtocolAssignment::decode(&mut buf, version) else {
        return BTreeMap::new();
    };
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for assigned in decoded.assigned_partitions {
        let partitions = topics.entry(assigned.topic.to_string()).or_default();
        partitions.extend(assigned.partitions);
        partitions.sort_unstable();
    }
    topics
}

/// Committed offsets of `group` on every partition it has one for.
fn committed(
    connection: &mut Connection,
    group: &str,
) -> Result<BTreeMap<Partition, i64>, CliError> {
    let (version, response): (i16, OffsetFetchResponse) =
        connection.call_negotiated(ApiKey::OffsetFetch, |version| {
            if version >= 8 {
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(group_id(group))
                    .with_member_epoch(-1)
                    .with_topics(None)])
            } else {
                // Null topics (v2+): every partition the group has an offset for.
                OffsetFetchRequest::default()
                    .with_group_id(group_id(group))
                    .with_topics(None)
            }
        })?;
    let context = format!("committed offsets of group '{group}'");
    let mut offsets = BTreeMap::new();
    let mut add = |topic: &TopicName, partition: i32, offset: i64, error: i16| {
        check(error, None, &context)?;
        if offset >= 0 {
            offsets.insert((topic.to_string(), partition), offset);
        }
        Ok::<(), CliError>(())
    };
    if version >= 8 {
        for fetched in &response.groups {
            check(fetched.error_code, None, &context)?;
            for topic in &fetched.topics {
                for p in &topic.partitions {
                    add(
                        &topic.name,
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    )?;
                }
            }
        }
    } else {
        check(response.error_code, None, &context)?;
        for topic in &response.topics {
            for p in &topic.partitions {
                add(
                    &topic.name,
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )?;
            }
        }
    }
    Ok(offsets)
}

fn describe(common: &Common, cluster: &mut Cluster, group: &str) -> Result<(), CliError> {
    let connection = coordinator(cluster, group)?;
    let described = describe_group(connection, group)?;
    let offsets = committed(connection, group)?;
    if described.group_state.as_str() == "Dead" && offsets.is_empty() {
        return Err(CliError::Kafka {
            name: "GROUP_ID_NOT_FOUND".into(),
            context: format!("group '{group}'"),
            message: Some("no such group".into()),
        });
    }
    let members: Vec<_> = described
        .members
        .iter()
        .map(|m| (m, assignment(&m.member_assignment)))
        .collect();
    // Every partition with a committed offset or an owner.
    let mut owner: BTreeMap<Partition, String> = BTreeMap::new();
    for (member, assigned) in &members {
        for (topic, partitions) in assigned {
            for p in partitions {
                owner.insert((topic.clone(), *p), member.member_id.to_string());
            }
        }
    }
    let partitions: BTreeSet<Partition> = offsets.keys().chain(owner.keys()).cloned().collect();
    let partitions: Vec<Partition> = partitions.into_iter().collect();
    let topics: BTreeSet<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
    let topics: Vec<&str> = topics.into_iter().collect();
    let ends = if partitions.is_empty() {
        Default::default()
    } else {
        let metadata = cluster.metadata(Some(&topics))?;
        list_offsets(cluster, &metadata, &partitions, LATEST)?
    };
    let rows: Vec<_> = partitions
        .iter()
        .map(|p| {
            let committed = offsets.get(p).copied();
            let end = ends.get(p).copied().flatten();
            let lag = committed.zip(end).map(|(c, e)| (e - c).max(0));
            (p, committed, end, lag, owner.get(p).cloned())
        })
        .collect();
    let json = json!({
        "group": group,
        "state": described.group_state.to_string(),
        "protocol_type": described.protocol_type.to_string(),
        "protocol": described.protocol_data.to_string(),
        "members": members.iter().map(|(m, assigned)| json!({
            "member_id": m.member_id.to_string(),
            "client_id": m.client_id.to_string(),
            "host": m.client_host.to_string(),
            "assignment": assigned,
        })).collect::<Vec<_>>(),
        "offsets": rows.iter().map(|((t, p), c, e, l, o)| json!({
            "topic": t, "partition": p, "committed_offset": c, "log_end_offset": e, "lag": l,
            "member_id": o,
        })).collect::<Vec<_>>(),
    });
    common.emit(json, || {
        let mut text = format!(
            "Group: {group}  State: {}  Protocol: {} ({})\n\n",
            described.group_state.as_str(),
            described.protocol_data.as_str(),
            described.protocol_type.as_str(),
        );
        let mut table = Table::new(&["MEMBER", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
        for (member, assigned) in &members {
            let assigned: Vec<String> = assigned
                .iter()
                .map(|(topic, partitions)| {
                    let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
                    format!("{topic}:{}", list.join(","))
                })
                .collect();
            table.row(vec![
                member.member_id.to_string(),
                member.client_id.to_string(),
                member.client_host.to_string(),
                assigned.join(" "),
            ]);
        }
        if members.is_empty() {
            text.push_str("No active members.\n");
        } else {
            text.push_str(&table.render());
        }
        let mut table = Table::new(&[
            "TOPIC",
            "PARTITION",
            "COMMITTED",
            "LOG-END",
            "LAG",
            "MEMBER",
        ]);
        for ((topic, partition), committed, end, lag, owner) in &rows {
            table.row(vec![
                topic.clone(),
                partition.to_string(),
                or_dash(*committed),
                or_dash(*end),
                or_dash(*lag),
                owner.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        text.push('\n');
        text.push_str(&table.render());
        text
    });
    Ok(())
}

fn delete(common: &Common, cluster: &mut Cluster, group: &str) -> Result<(), CliError> {
    let connection = coordinator(cluster, group)?;
    let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
    let (_, response): (i16, DeleteGroupsResponse) =
        connection.call_negotiated(ApiKey::DeleteGroups, |_| request)?;
    for result in &response.results {
        check(result.error_code, None, &format!("delete group '{group}'"))?;
    }
    common.emit(json!({"group": group, "result": "deleted"}), || {
        format!("group '{group}' deleted\n")
    });
    Ok(())
}
