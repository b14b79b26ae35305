//! Offsets of partitions, asked of their leaders with ListOffsets: the log start (earliest), the
//! log end (latest) and the first offset at or after a time; and the ISO 8601 times
//! `--to-datetime` takes.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, MetadataResponse};

use super::client::{check, topic_name, Cluster};
use super::CliError;

/// ListOffsets' timestamp for the log end offset.
pub const LATEST: i64 = -1;
/// ListOffsets' timestamp for the log start offset.
pub const EARLIEST: i64 = -2;

/// A topic partition, by name.
pub type Partition = (String, i32);

/// The offset ListOffsets answers for `timestamp` on each of `partitions` (`None`: no record at
/// or after that time), each asked of its leader in `metadata`.
pub fn list_offsets(
    cluster: &mut Cluster,
    metadata: &MetadataResponse,
    partitions: &[Partition],
    timestamp: i64,
) -> Result<HashMap<Partition, Option<i64>>, CliError> {
    let mut by_leader: BTreeMap<i32, Vec<&Partition>> = BTreeMap::new();
    for partition in partitions {
        by_leader
            .entry(leader_of(metadata, partition)?)
            .or_default()
            .push(partition);
    }
    let mut offsets = HashMap::new();
    for (leader, partitions) in by_leader {
        let connection = cluster.broker_of(metadata, leader)?;
        let request = request_for(&partitions, timestamp);
        let (_, response): (i16, ListOffsetsResponse) =
            connection.call_negotiated(ApiKey::ListOffsets, |_| request)?;
        for topic in response.topics {
            for answer in topic.partitions {
                let context = format!("ListOffsets {}-{}", &*topic.name, answer.partition_index);
                check(answer.error_code, None, &context)?;
                let offset = (answer.offset >= 0).then_some(answer.offset);
                offsets.insert((topic.name.to_string(), answer.partition_index), offset);
            }
        }
    }
    for partition in partitions {
        if !offsets.contains_key(partition) {
            return Err(CliError::Protocol(format!(
                "ListOffsets did not answer for {}-{}",
                partition.0, partition.1
            )));
        }
    }
    Ok(offsets)
}

fn request_for(partitions: &[&Partition], timestamp: i64) -> ListOffsetsRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic).or_default().push(*partition);
    }
    let topics = topics
        .into_iter()
        .map(|(name, indexes)| {
            let partitions = indexes
                .into_iter()
                .map(|index| {
                    ListOffsetsPartition::default()
                        .with_partition_index(index)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(timestamp)
                })
                .collect();
            ListOffsetsTopic::default()
                .with_name(topic_name(name))
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(topics)
}

fn leader_of(metadata: &MetadataResponse, (topic, index): &Partition) -> Result<i32, CliError> {
    let found = metadata
        .topics
        .iter()
        .filter(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == *index);
    match found {
        Some(partition) if *partition.leader_id >= 0 => Ok(*partition.leader_id),
        Some(_) => Err(CliError::Kafka {
            name: "LEADER_NOT_AVAILABLE".into(),
            context: format!("partition {topic}-{index}"),
            message: None,
        }),
        None => Err(CliError::Kafka {
            name: "UNKNOWN_TOPIC_OR_PARTITION".into(),
            context: format!("partition {topic}-{index}"),
            message: None,
        }),
    }
}

/// Milliseconds since the Unix epoch of an ISO 8601 time: `YYYY-MM-DDTHH:MM:SS[.fff]` followed
/// by `Z` or `±HH:MM` (no zone: UTC), or a bare date `YYYY-MM-DD` (midnight UTC).
pub fn parse_datetime(text: &str) -> Result<i64, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--to-datetime {text}: expected ISO 8601, e.g. 2026-11-21T14:30:00Z or \
             2026-11-21T14:30:00.000+01:00"
        ))
    };
    if !text.is_ascii() {
        return Err(bad());
    }
    let (date, rest) = text.split_at(text.len().min(10));
    let date_parts: Vec<&str> = date.split('-').collect();
    let [year, month, day] = date_parts.as_slice() else {
        return Err(bad());
    };
    let number = |s: &str, len: usize| -> Result<i64, CliError> {
        if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (year, month, day) = (number(year, 4)?, number(month, 2)?, number(day, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let mut millis = days_from_civil(year, month, day) * 86_400_000;
    let Some(time) = rest.strip_prefix(['T', ' ']) else {
        return if rest.is_empty() {
            Ok(millis)
        } else {
            Err(bad())
        };
    };
    let zone_at = time.find(['Z', 'z', '+', '-']).unwrap_or(time.len());
    let (clock, zone) = time.split_at(zone_at);
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let clock_parts: Vec<&str> = clock.split(':').collect();
    let (hour, minute, second) = match clock_parts.as_slice() {
        [h, m] => (number(h, 2)?, number(m, 2)?, 0),
        [h, m, s] => (number(h, 2)?, number(m, 2)?, number(s, 2)?),
        _ => return Err(bad()),
    };
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    millis += ((hour * 60 + minute) * 60 + second) * 1000;
    if !fraction.is_empty() {
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let digits = &fraction[..fraction.len().min(3)];
        millis += number(&format!("{digits:0<3}"), 3)?;
    }
    let offset_minutes = match zone {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':').unwrap_or((&zone[1..], ""));
            let m = if m.is_empty() && h.len() == 4 {
                &h[2..]
            } else {
                m
            };
            let h = if h.len() == 4 { &h[..2] } else { h };
            sign * (number(h, 2)? * 60 + if m.is_empty() { 0 } else { number(m, 2)? })
        }
    };
    Ok(millis - offset_minutes * 60_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_parse_to_epoch_millis() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z").expect("epoch"), 0);
        assert_eq!(parse_datetime("1970-01-02").expect("date"), 86_400_000);
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.789Z").expect("leap"),
            1_709_210_096_789
        );
        assert_eq!(
            parse_datetime("2024-02-29T13:34:56.789+01:00").expect("zone"),
            1_709_210_096_789
        );
        assert_eq!(
            parse_datetime("2024-02-29T11:34:56.789-0100").expect("zone"),
            1_709_210_096_789
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:34").expect("no secs"),
            1_709_210_040_000
        );
    }

    #[test]
    fn bad_times_are_usage_errors_not_panics() {
        for text in [
            "",
            "2024",
            "2024-13-01",
            "2024-02-30x",
            "2024-02-29T25:00:00Z",
            "2024-02-29T12",
            "2024-02-29T12:00:00+1",
            "yesterday",
            "2024-02-29T12:00:00.x",
            "é",
            "2024-02-2é",
        ] {
            assert!(parse_datetime(text).is_err(), "{text}");
        }
    }
}
