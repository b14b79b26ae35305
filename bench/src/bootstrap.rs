//! Finding the cluster: ApiVersions (which versions to speak), Metadata (partition leaders),
//! CreateTopics when the topic is missing, ListOffsets (where consumers start).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::args::Workload;
use crate::client::Conn;
use crate::error::BenchError;

/// The version of each API we speak: the highest both sides know, within our range.
#[derive(Clone, Copy, Debug)]
pub struct Versions {
    pub produce: i16,
    pub fetch: i16,
    pub metadata: i16,
    pub list_offsets: i16,
    pub create_topics: i16,
}

/// What the run needs to know about the cluster.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub versions: Versions,
    /// Leader address of each partition, indexed by partition id.
    pub leaders: Vec<SocketAddr>,
    /// Where consumers start, indexed by partition id.
    pub start_offsets: Vec<i64>,
}

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LEADER_NOT_AVAILABLE: i16 = 5;
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Metadata attempts while a new topic's leaders are elected.
const METADATA_ATTEMPTS_MAX: u32 = 50;

pub async fn discover(workload: &Workload) -> Result<Cluster, BenchError> {
    let mut conn = Conn::open(workload.bootstrap, workload.timeout).await?;
    let versions = negotiate(&mut conn).await?;
    let mut created = false;
    let mut attempt = 0;
    let leaders = loop {
        attempt += 1;
        let metadata = fetch_metadata(&mut conn, versions, &workload.topic).await?;
        match leaders_of(&metadata, &workload.topic)? {
            Found::Leaders(leaders) => break leaders,
            Found::Missing if !created => {
                create_topic(&mut conn, versions, workload).await?;
                created = true;
            }
            Found::Missing | Found::NotReady if attempt < METADATA_ATTEMPTS_MAX => {}
            Found::Missing | Found::NotReady => {
                return Err(BenchError::Protocol {
                    what: "metadata",
                    reason: format!(
                        "topic {} has no leader for every partition after {attempt} attempts",
                        workload.topic
                    ),
                })
            }
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
    };
    if !created && leaders.len() != workload.partitions as usize {
        eprintln!(
            "note: topic {} exists with {} partitions (--partitions {} applies only when creating \
             it)",
            workload.topic,
            leaders.len(),
            workload.partitions
        );
    }
    let start_offsets = list_offsets(workload, versions, &leaders).await?;
    Ok(Cluster {
        versions,
        leaders,
        start_offsets,
    })
}

async fn negotiate(conn: &mut Conn) -> Result<Versions, BenchError> {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("odradek-bench"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    let mut response: ApiVersionsResponse = conn
        .call(ApiKey::ApiVersions, 3, &request, "ApiVersions")
        .await?;
    if response.error_code != 0 {
        // The broker knows no v3: ask again at v0, which every broker answers.
        response = conn
            .call(
                ApiKey::ApiVersions,
                0,
                &ApiVersionsRequest::default(),
                "ApiVersions",
            )
            .await?;
    }
    if response.error_code != 0 {
        return Err(BenchError::kafka("ApiVersions", response.error_code));
    }
    let pick = |key: ApiKey, ours: (i16, i16)| -> Result<i16, BenchError> {
        let theirs = response
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version));
        match theirs {
            Some((min, max)) if min <= ours.1 && ours.0 <= max => Ok(max.min(ours.1)),
            _ => Err(BenchError::Protocol {
                what: "ApiVersions",
                reason: format!(
                    "the broker supports no {key:?} version in {}..={} (it offers {theirs:?})",
                    ours.0, ours.1
                ),
            }),
        }
    };
    // Upper bounds: the last versions that name topics (later ones use topic ids).
    Ok(Versions {
        produce: pick(ApiKey::Produce, (3, 12))?,
        fetch: pick(ApiKey::Fetch, (4, 12))?,
        metadata: pick(ApiKey::Metadata, (1, 12))?,
        list_offsets: pick(ApiKey::ListOffsets, (1, 8))?,
        create_topics: pick(ApiKey::CreateTopics, (2, 7))?,
    })
}

async fn fetch_metadata(
    conn: &mut Conn,
    versions: Versions,
    topic: &str,
) -> Result<MetadataResponse, BenchError> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_owned())),
        ))]))
        .with_allow_auto_topic_creation(false);
    conn.call(ApiKey::Metadata, versions.metadata, &request, "Metadata")
        .await
}

enum Found {
    Leaders(Vec<SocketAddr>),
    Missing,
    NotReady,
}

fn leaders_of(metadata: &MetadataResponse, topic: &str) -> Result<Found, BenchError> {
    let Some(entry) = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
    else {
        return Ok(Found::Missing);
    };
    match entry.error_code {
        0 => {}
        UNKNOWN_TOPIC_OR_PARTITION => return Ok(Found::Missing),
        LEADER_NOT_AVAILABLE => return Ok(Found::NotReady),
        code => {
            return Err(BenchError::kafka(
                format!("metadata of topic {topic}"),
                code,
            ))
        }
    }
    let brokers: BTreeMap<i32, (String, i32)> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id.0, (b.host.to_string(), b.port)))
        .collect();
    let count = entry.partitions.len();
    if count == 0 {
        return Ok(Found::NotReady);
    }
    let mut leaders = vec![None; count];
    for partition in &entry.partitions {
        let index = usize::try_from(partition.partition_index)
            .ok()
            .filter(|&i| i < count)
            .ok_or_else(|| BenchError::Protocol {
                what: "metadata",
                reason: format!("partition ids of {topic} are not 0..{count}"),
            })?;
        if partition.error_code != 0 || partition.leader_id.0 < 0 {
            return Ok(Found::NotReady);
        }
        let Some((host, port)) = brokers.get(&partition.leader_id.0) else {
            return Ok(Found::NotReady);
        };
        leaders[index] = Some(resolve_broker(host, *port)?);
    }
    match leaders.into_iter().collect::<Option<Vec<_>>>() {
        Some(all) => Ok(Found::Leaders(all)),
        None => Ok(Found::NotReady),
    }
}

fn resolve_broker(host: &str, port: i32) -> Result<SocketAddr, BenchError> {
    let unreachable = |reason: String| BenchError::Protocol {
        what: "metadata",
        reason: format!("broker address {host}:{port}: {reason}"),
    };
    let port = u16::try_from(port).map_err(|_| unreachable("bad port".into()))?;
    (host, port)
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("no address".into()))
}

async fn create_topic(
    conn: &mut Conn,
    versions: Versions,
    workload: &Workload,
) -> Result<(), BenchError> {
    let timeout_ms = i32::try_from(workload.timeout.as_millis()).unwrap_or(i32::MAX);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(workload.topic.clone())))
            .with_num_partitions(workload.partitions)
            .with_replication_factor(workload.replication_factor)])
        .with_timeout_ms(timeout_ms);
    let response: CreateTopicsResponse = conn
        .call(
            ApiKey::CreateTopics,
            versions.create_topics,
            &request,
            "CreateTopics",
        )
        .await?;
    for result in &response.topics {
        if result.error_code != 0 && result.error_code != TOPIC_ALREADY_EXISTS {
            return Err(BenchError::kafka(
                format!("creating topic {}", workload.topic),
                result.error_code,
            ));
        }
    }
    eprintln!(
        "created topic {} with {} partitions",
        workload.topic, workload.partitions
    );
    Ok(())
}

/// The latest (or, with --from-beginning, the earliest) offset of every partition.
async fn list_offsets(
    workload: &Workload,
    versions: Versions,
    leaders: &[SocketAddr],
) -> Result<Vec<i64>, BenchError> {
    let timestamp = if workload.from_beginning { -2 } else { -1 };
    let mut offsets = vec![0i64; leaders.len()];
    let mut by_leader: BTreeMap<SocketAddr, Vec<i32>> = BTreeMap::new();
    for (partition, leader) in leaders.iter().enumerate() {
        by_leader.entry(*leader).or_default().push(partition as i32);
    }
    for (leader, partitions) in by_leader {
        let mut conn = Conn::open(leader, workload.timeout).await?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(workload.topic.clone())))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let response: ListOffsetsResponse = conn
            .call(
                ApiKey::ListOffsets,
                versions.list_offsets,
                &request,
                "ListOffsets",
            )
            .await?;
        for topic in &response.topics {
            for partition in &topic.partitions {
                if partition.error_code != 0 {
                    return Err(BenchError::kafka(
                        format!("offsets of partition {}", partition.partition_index),
                        partition.error_code,
                    ));
                }
                if let Some(slot) = usize::try_from(partition.partition_index)
                    .ok()
                    .and_then(|i| offsets.get_mut(i))
                {
                    *slot = partition.offset;
                }
            }
        }
    }
    Ok(offsets)
}
