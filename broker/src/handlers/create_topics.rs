//! CreateTopics: new topics with a partition count and config overrides, or just a check
//! (`validate_only`). Each topic is created by the control plane on shard 0.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};

use super::util::str_bytes;
use crate::control::{self, ControlError, ControlRequest};
use crate::quorum::image::Assignment;
use crate::session::RequestContext;
use crate::shard::ShardCtx;
use crate::topic_config;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::CreateTopics;
pub const VERSIONS: (i16, i16) = (0, 7);
pub const RUNS_ON: RunsOn = RunsOn::ControlPlane;

pub async fn handle(ctx: &RequestContext, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.clone();
        let result = if duplicates.contains(name.0.as_str()) {
            Err(ControlError::new(
                ResponseError::InvalidRequest,
                "topic named more than once in the request",
            ))
        } else {
            create_one(&ctx.shard, topic, request.validate_only).await
        };
        let result = match result {
            Ok(result) => result,
            Err(error) => CreatableTopicResult::default()
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(&error.message)))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        };
        results.push(result.with_name(name));
    }
    CreateTopicsResponse::default().with_topics(results)
}

async fn create_one(
    ctx: &Rc<ShardCtx>,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<CreatableTopicResult, ControlError> {
    let (partitions, assignment) = partitions_and_assignment(ctx, &topic)?;
    let replication_factor = match topic.replication_factor {
        -1 => None,
        factor if factor < 1 => {
            let message = format!("replication factor {factor}: at least 1, or -1 for the default");
            return Err(ControlError::new(
                ResponseError::InvalidReplicationFactor,
                message,
            ));
        }
        factor if assignment.is_some() => {
            let message = format!("replication factor {factor} and an assignment: give one");
            return Err(ControlError::new(ResponseError::InvalidRequest, message));
        }
        factor => Some(factor),
    };
    let mut configs = BTreeMap::new();
    for config in &topic.configs {
        let Some(value) = &config.value else {
            return Err(ControlError::new(
                ResponseError::InvalidConfig,
                format!("null value for `{}`", config.name),
            ));
        };
        configs.insert(config.name.to_string(), value.to_string());
    }
    let name = topic.name.0.to_string();
    let request = ControlRequest::CreateTopic {
        name,
        partitions,
        replication_factor,
        assignment,
        configs,
        validate_only,
    };
    let meta = control::call_topic(ctx, request).await?;
    let entries = topic_config::describe(&ctx.metadata().broker_config, &meta.configs)
        .into_iter()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(e.name))
                .with_value(Some(str_bytes(&e.value)))
                .with_config_source(e.source as i8)
        })
        .collect();
    Ok(CreatableTopicResult::default()
        .with_topic_id(meta.id)
        .with_num_partitions(meta.partitions)
        .with_replication_factor(meta.replication_factor())
        .with_configs(Some(entries)))
}

/// `num_partitions` (-1: the broker default), or an explicit assignment (partition order,
/// leader first), checked against the registered brokers when applied.
fn partitions_and_assignment(
    ctx: &ShardCtx,
    topic: &CreatableTopic,
) -> Result<(i32, Option<Assignment>), ControlError> {
    if topic.assignments.is_empty() {
        let partitions = match topic.num_partitions {
            -1 => ctx.config.num_partitions as i32,
            n => n,
        };
        return Ok((partitions, None));
    }
    if topic.num_partitions != -1 {
        return Err(ControlError::new(
            ResponseError::InvalidRequest,
            "both num_partitions and assignments given",
        ));
    }
    let mut assignments: Vec<_> = topic.assignments.iter().collect();
    assignments.sort_by_key(|a| a.partition_index);
    if assignments
        .iter()
        .enumerate()
        .any(|(i, a)| a.partition_index != i as i32)
    {
        return Err(ControlError::new(
            ResponseError::InvalidReplicaAssignment,
            "assignments must number the partitions 0, 1, 2, … each once",
        ));
    }
    let assignment: Vec<Vec<i32>> = assignments
        .iter()
        .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
        .collect();
    Ok((assignment.len() as i32, Some(assignment)))
}
