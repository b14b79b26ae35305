//! DescribeConfigs for TOPIC and BROKER resources. Topic configs report their effective value
//! and where it comes from (topic override, broker setting, default); broker settings report
//! theirs, read-only except those IncrementalAlterConfigs and AlterConfigs may change at run
//! time. Runs on any shard, from its metadata snapshot.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::util::str_bytes;
use crate::session::RequestContext;
use crate::settings;
use crate::shard::ShardCtx;
use crate::topic_config::{self, broker_source, ConfigSource};

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::DescribeConfigs;
pub const VERSIONS: (i16, i16) = (0, 4);
pub const RUNS_ON: RunsOn = RunsOn::Connection;

/// Kafka's `ConfigResource.Type` numbers.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// What to include for each config.
#[derive(Clone, Copy)]
struct Detail {
    synonyms: bool,
    documentation: bool,
}

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let detail = Detail {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
    };
    let results = request
        .resources
        .into_iter()
        .map(|r| describe_resource(&ctx.shard, r, detail))
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe_resource(
    ctx: &ShardCtx,
    resource: DescribeConfigsResource,
    detail: Detail,
) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let configs = match resource.resource_type {
        RESOURCE_TOPIC => topic_configs(ctx, resource.resource_name.as_str(), detail),
        RESOURCE_BROKER => broker_configs(ctx, resource.resource_name.as_str(), detail),
        other => Err((
            ResponseError::InvalidRequest,
            format!("resource type {other} is not served"),
        )),
    };
    let wanted = resource.configuration_keys;
    match configs {
        Ok(mut configs) => {
            if let Some(keys) = wanted {
                configs.retain(|c| keys.contains(&c.name));
            }
            result.with_configs(configs)
        }
        Err((error, message)) => result
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(&message))),
    }
}

type Described = Result<Vec<DescribeConfigsResourceResult>, (ResponseError, String)>;

fn topic_configs(ctx: &ShardCtx, name: &str, detail: Detail) -> Described {
    let snapshot = ctx.metadata();
    let Some(meta) = snapshot.topic(name) else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        ));
    };
    let broker = &snapshot.broker_config;
    let configs = topic_config::describe(broker, &meta.configs)
        .into_iter()
        .map(|entry| {
            let mut synonyms = Vec::new();
            if detail.synonyms {
                if entry.source == ConfigSource::Topic {
                    synonyms.push(synonym(entry.name, &entry.value, ConfigSource::Topic));
                }
                let broker_value = entry.setting.value(broker);
                synonyms.push(synonym(
                    entry.setting.name,
                    &broker_value,
                    broker_source(broker, entry.setting.name),
                ));
            }
            config_result(
                entry.name,
                &entry.value,
                entry.source,
                false,
                detail.documentation.then_some(entry.setting.doc),
            )
            .with_synonyms(synonyms)
        })
        .collect();
    Ok(configs)
}

fn broker_configs(ctx: &ShardCtx, name: &str, detail: Detail) -> Described {
    let node = ctx.config.node_id.to_string();
    if !name.is_empty() && name != node {
        return Err((
            ResponseError::InvalidRequest,
            format!("this is broker {node}, not '{name}'"),
        ));
    }
    let snapshot = ctx.metadata();
    let configs = settings::describe(&snapshot.broker_config)
        .into_iter()
        .map(|setting| {
            let value = setting.value;
            let source = broker_source(&snapshot.broker_config, setting.name);
            let synonyms = if detail.synonyms {
                vec![synonym(setting.name, &value, source)]
            } else {
                Vec::new()
            };
            config_result(
                setting.name,
                &value,
                source,
                setting.read_only,
                detail.documentation.then_some(&setting.doc),
            )
            .with_synonyms(synonyms)
        })
        .collect();
    Ok(configs)
}

fn config_result(
    name: &str,
    value: &str,
    source: ConfigSource,
    read_only: bool,
    documentation: Option<&str>,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_read_only(read_only)
        .with_config_source(source as i8)
        .with_documentation(documentation.map(str_bytes))
}

fn synonym(name: &str, value: &str, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(str_bytes(value)))
        .with_source(source as i8)
}
