//! `odradek topic list | describe | create | delete | alter | elect-leaders`: Metadata,
//! DescribeConfigs, ListOffsets, CreateTopics, DeleteTopics, CreatePartitions,
//! IncrementalAlterConfigs and ElectLeaders.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::client::{check, topic_name, Cluster};
use super::offsets::{list_offsets, Partition, EARLIEST, LATEST};
use super::table::{or_dash, Table};
use super::{parse_assignment, CliError, Common};

/// The config resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// IncrementalAlterConfigs' SET operation.
const OP_SET: i8 = 0;
/// How long the broker may take to create, delete or grow topics.
const ADMIN_TIMEOUT_MS: i32 = 30_000;

#[derive(clap::Subcommand, Debug)]
pub enum TopicAction {
    /// Every topic with its partition count.
    List,
    /// Partitions (leader, replicas, ISR, start and end offsets) and configs of one topic.
    Describe { topic: String },
    /// Creates a topic.
    Create {
        topic: String,
        /// Number of partitions (default: the broker's num.partitions).
        #[arg(long, value_name = "N")]
        partitions: Option<i32>,
        /// Replicas of each partition (default: the broker's default.replication.factor).
        #[arg(long, value_name = "N")]
        replication_factor: Option<i16>,
        /// A topic config, e.g. --config retention.ms=60000 (repeatable).
        #[arg(long = "config", value_name = "NAME=VALUE")]
        configs: Vec<String>,
    },
    /// Deletes a topic and its data.
    Delete { topic: String },
    /// Grows a topic to N partitions and/or sets topic configs.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
    Alter {
        topic: String,
        /// The new partition count (only growing is possible).
        #[arg(long, value_name = "N", group = "change")]
        partitions: Option<i32>,
        /// A topic config to set, e.g. --config retention.ms=60000 (repeatable).
        #[arg(long = "config", value_name = "NAME=VALUE", group = "change")]
        configs: Vec<String>,
    },
    /// Gives partitions back to their preferred leader (the first replica) where it is live
    /// and in sync; with --unclean, a partition without a leader gets any live replica (its
    /// records that only the lost in-sync replicas held are gone).
    ElectLeaders {
        /// Only this topic's partitions (default: every topic).
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        #[arg(long)]
        unclean: bool,
    },
}

pub fn run(common: &Common, action: TopicAction) -> Result<(), CliError> {
    // Check the arguments before connecting: a typo is not a network problem.
    let configs = match &action {
        TopicAction::Create { configs, .. } | TopicAction::Alter { configs, .. } => configs
            .iter()
            .map(|c| parse_assignment(c))
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    let mut cluster = common.connect()?;
    match action {
        TopicAction::List => list(common, &mut cluster),
        TopicAction::Describe { topic } => describe(common, &mut cluster, &topic),
        TopicAction::Create {
            topic,
            partitions,
            replication_factor,
            ..
        } => create(
            common,
            &mut cluster,
            &topic,
            (partitions, replication_factor),
            &configs,
        ),
        TopicAction::Delete { topic } => delete(common, &mut cluster, &topic),
        TopicAction::Alter {
            topic, partitions, ..
        } => alter(common, &mut cluster, &topic, partitions, &configs),
        TopicAction::ElectLeaders {
            topic,
            partition,
            unclean,
        } => elect_leaders(common, &mut cluster, topic, partition, unclean),
    }
}

fn list(common: &Common, cluster: &mut Cluster) -> Result<(), CliError> {
    let metadata = cluster.metadata(None)?;
    let mut topics: Vec<(String, usize, bool)> = metadata
        .topics
        .iter()
        .filter_map(|t| {
            Some((
                t.name.as_ref()?.to_string(),
                t.partitions.len(),
                t.is_internal,
            ))
        })
        .collect();
    topics.sort();
    let json = json!(topics
        .iter()
        .map(|(name, partitions, internal)| json!({
            "topic": name, "partitions": partitions, "internal": internal,
        }))
        .collect::<Vec<_>>());
    common.emit(json, || {
        let mut table = Table::new(&["TOPIC", "PARTITIONS", "INTERNAL"]);
        for (name, partitions, internal) in &topics {
            table.row(vec![
                name.clone(),
                partitions.to_string(),
                internal.to_string(),
            ]);
        }
        table.render()
    });
    Ok(())
}

fn describe(common: &Common, cluster: &mut Cluster, topic: &str) -> Result<(), CliError> {
    let metadata = cluster.metadata(Some(&[topic]))?;
    let Some(found) = metadata.topics.first() else {
        return Err(unknown_topic(topic));
    };
    check(found.error_code, None, &format!("topic '{topic}'"))?;
    let mut partitions = found.partitions.clone();
    partitions.sort_by_key(|p| p.partition_index);
    let names: Vec<Partition> = partitions
        .iter()
        .map(|p| (topic.to_owned(), p.partition_index))
        .collect();
    let starts = list_offsets(cluster, &metadata, &names, EARLIEST)?;
    let ends = list_offsets(cluster, &metadata, &names, LATEST)?;
    let configs = describe_configs(cluster, topic)?;
    let ids = |ids: &[BrokerId]| ids.iter().map(|id| **id).collect::<Vec<i32>>();
    let joined = |ids: &[BrokerId]| {
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        ids.join(",")
    };
    let rows: Vec<serde_json::Value> = partitions
        .iter()
        .zip(&names)
        .map(|(p, name)| {
            json!({
                "partition": p.partition_index,
                "leader": *p.leader_id,
                "replicas": ids(&p.replica_nodes),
                "isr": ids(&p.isr_nodes),
                "log_start_offset": starts.get(name).copied().flatten(),
                "log_end_offset": ends.get(name).copied().flatten(),
            })
        })
        .collect();
    let json = json!({
        "topic": topic,
        "partitions": rows,
        "configs": configs.iter().map(|(n, v, s)| json!({"name": n, "value": v, "source": s}))
            .collect::<Vec<_>>(),
    });
    common.emit(json, || {
        let mut table = Table::new(&["PARTITION", "LEADER", "REPLICAS", "ISR", "START", "END"]);
        for (p, name) in partitions.iter().zip(&names) {
            table.row(vec![
                p.partition_index.to_string(),
                p.leader_id.to_string(),
                joined(&p.replica_nodes),
                joined(&p.isr_nodes),
                or_dash(starts.get(name).copied().flatten()),
                or_dash(ends.get(name).copied().flatten()),
            ]);
        }
        let mut config_table = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
        for (name, value, source) in &configs {
            let value = value.clone().unwrap_or_else(|| "-".into());
            config_table.row(vec![name.clone(), value, source.clone()]);
        }
        format!(
            "Topic: {topic}  Partitions: {}\n\n{}\n{}",
            partitions.len(),
            table.render(),
            config_table.render()
        )
    });
    Ok(())
}

/// The topic's configs: name, value (`None` when sensitive or unset) and source.
fn describe_configs(
    cluster: &mut Cluster,
    topic: &str,
) -> Result<Vec<(String, Option<String>, String)>, CliError> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_owned()))
            .with_configuration_keys(None)]);
    let (_, response): (i16, DescribeConfigsResponse) = cluster
        .bootstrap()
        .call_negotiated(ApiKey::DescribeConfigs, |_| request)?;
    let mut configs = Vec::new();
    for result in response.results {
        let context = format!("configs of topic '{topic}'");
        check(result.error_code, result.error_message.as_ref(), &context)?;
        for config in result.configs {
            let value = config.value.map(|v| v.to_string());
            configs.push((
                config.name.to_string(),
                value,
                source_name(config.config_source),
            ));
        }
    }
    configs.sort();
    Ok(configs)
}

fn source_name(source: i8) -> String {
    match source {
        1 => "topic",
        2 | 3 => "broker (dynamic)",
        4 => "broker (static)",
        5 => "default",
        6 => "broker logger",
        _ => "unknown",
    }
    .to_owned()
}

fn create(
    common: &Common,
    cluster: &mut Cluster,
    topic: &str,
    (partitions, replication_factor): (Option<i32>, Option<i16>),
    configs: &[(String, String)],
) -> Result<(), CliError> {
    if partitions.is_some_and(|n| n < 1) {
        return Err(CliError::Usage("--partitions must be at least 1".into()));
    }
    if replication_factor.is_some_and(|n| n < 1) {
        return Err(CliError::Usage(
            "--replication-factor must be at least 1".into(),
        ));
    }
    let configs = configs
        .iter()
        .map(|(name, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    let creatable = CreatableTopic::default()
        .with_name(topic_name(topic))
        .with_num_partitions(partitions.unwrap_or(-1))
        .with_replication_factor(replication_factor.unwrap_or(-1))
        .with_configs(configs);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable])
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
    let (_, response): (i16, CreateTopicsResponse) = cluster
        .bootstrap()
        .call_negotiated(ApiKey::CreateTopics, |_| request)?;
    let Some(result) = response.topics.first() else {
        return Err(CliError::Protocol("CreateTopics answered no topic".into()));
    };
    let context = format!("create topic '{topic}'");
    check(result.error_code, result.error_message.as_ref(), &context)?;
    let count = (result.num_partitions > 0).then_some(i64::from(result.num_partitions));
    done(common, "created", topic, count)
}

fn delete(common: &Common, cluster: &mut Cluster, topic: &str) -> Result<(), CliError> {
    let (_, response): (i16, DeleteTopicsResponse) =
        cluster
            .bootstrap()
            .call_negotiated(ApiKey::DeleteTopics, |version| {
                let request = DeleteTopicsRequest::default().with_timeout_ms(ADMIN_TIMEOUT_MS);
                if version >= 6 {
                    request.with_topics(vec![
                        DeleteTopicState::default().with_name(Some(topic_name(topic)))
                    ])
                } else {
                    request.with_topic_names(vec![topic_name(topic)])
                }
            })?;
    let Some(result) = response.responses.first() else {
        return Err(CliError::Protocol("DeleteTopics answered no topic".into()));
    };
    let context = format!("delete topic '{topic}'");
    check(result.error_code, result.error_message.as_ref(), &context)?;
    done(common, "deleted", topic, None)
}

fn alter(
    common: &Common,
    cluster: &mut Cluster,
    topic: &str,
    partitions: Option<i32>,
    configs: &[(String, String)],
) -> Result<(), CliError> {
    if let Some(count) = partitions {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None)])
            .with_timeout_ms(ADMIN_TIMEOUT_MS);
        let (_, response): (i16, CreatePartitionsResponse) = cluster
            .bootstrap()
            .call_negotiated(ApiKey::CreatePartitions, |_| request)?;
        let Some(result) = response.results.first() else {
            return Err(CliError::Protocol(
                "CreatePartitions answered no topic".into(),
            ));
        };
        let context = format!("grow topic '{topic}' to {count} partitions");
        check(result.error_code, result.error_message.as_ref(), &context)?;
    }
    if !configs.is_empty() {
        let alterations = configs
            .iter()
            .map(|(name, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_config_operation(OP_SET)
                    .with_value(Some(StrBytes::from_string(value.clone())))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configs(alterations),
        ]);
        let (_, response): (i16, IncrementalAlterConfigsResponse) = cluster
            .bootstrap()
            .call_negotiated(ApiKey::IncrementalAlterConfigs, |_| request)?;
        for result in &response.responses {
            let context = format!("set configs of topic '{topic}'");
            check(result.error_code, result.error_message.as_ref(), &context)?;
        }
    }
    done(common, "altered", topic, partitions.map(i64::from))
}

fn elect_leaders(
    common: &Common,
    cluster: &mut Cluster,
    topic: Option<String>,
    partition: Option<i32>,
    unclean: bool,
) -> Result<(), CliError> {
    let partitions = match (&topic, partition) {
        (None, _) => None,
        (Some(topic), Some(p)) => Some(vec![(topic.clone(), vec![p])]),
        (Some(topic), None) => {
            let metadata = cluster.metadata(Some(&[topic.as_str()]))?;
            let found = metadata.topics.first().filter(|t| t.error_code == 0);
            let found = found.ok_or_else(|| unknown_topic(topic))?;
            let all = found.partitions.iter().map(|p| p.partition_index).collect();
            Some(vec![(topic.clone(), all)])
        }
    };
    let request = ElectLeadersRequest::default()
        .with_election_type(i8::from(unclean))
        .with_topic_partitions(partitions.map(|topics| {
            topics
                .into_iter()
                .map(|(t, p)| {
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(topic_name(&t))
                        .with_partitions(p)
                })
                .collect()
        }))
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
    let (_, response): (i16, ElectLeadersResponse) = cluster
        .bootstrap()
        .call_negotiated(ApiKey::ElectLeaders, |_| request)?;
    check(response.error_code, None, "elect leaders")?;
    let mut rows = Vec::new();
    let mut failure = None;
    for topic in &response.replica_election_results {
        for p in &topic.partition_result {
            let context = format!("elect a leader of {}-{}", topic.topic.0, p.partition_id);
            let outcome = match check(p.error_code, p.error_message.as_ref(), &context) {
                Ok(()) => "elected".to_string(),
                Err(error) => {
                    let name = match &error {
                        CliError::Kafka { name, .. } => name.clone(),
                        other => other.to_string(),
                    };
                    if name != "ELECTION_NOT_NEEDED" && failure.is_none() {
                        failure = Some(error);
                    }
                    name
                }
            };
            rows.push((topic.topic.0.to_string(), p.partition_id, outcome));
        }
    }
    let json = json!({
        "elections": rows.iter().map(|(t, p, r)| json!({"topic": t, "partition": p, "result": r}))
            .collect::<Vec<_>>(),
    });
    common.emit(json, || {
        if rows.is_empty() {
            return "no election needed\n".to_string();
        }
        let mut table = Table::new(&["TOPIC", "PARTITION", "RESULT"]);
        for (t, p, r) in &rows {
            table.row(vec![t.clone(), p.to_string(), r.clone()]);
        }
        table.render()
    });
    failure.map_or(Ok(()), Err)
}

/// Prints what a successful create, delete or alter did.
fn done(common: &Common, what: &str, topic: &str, partitions: Option<i64>) -> Result<(), CliError> {
    let json = json!({ "topic": topic, "result": what, "partitions": partitions });
    common.emit(json, || match partitions {
        Some(n) => format!("topic '{topic}' {what} ({n} partitions)\n"),
        None => format!("topic '{topic}' {what}\n"),
    });
    Ok(())
}

fn unknown_topic(topic: &str) -> CliError {
    CliError::Kafka {
        name: "UNKNOWN_TOPIC_OR_PARTITION".into(),
        context: format!("topic '{topic}'"),
        message: None,
    }
}
