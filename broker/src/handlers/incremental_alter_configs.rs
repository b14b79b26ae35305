//! IncrementalAlterConfigs for TOPIC and BROKER resources (SET, DELETE, APPEND, SUBTRACT), applied
//! by the control plane on shard 0, which pushes the new log settings to the owning shards. On
//! the BROKER resource only the defaults behind topic configs change at run time; other broker
//! settings are refused with INVALID_CONFIG.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::util::str_bytes;
use crate::control::{self, ControlError, ControlRequest};
use crate::session::RequestContext;
use crate::shard::ShardCtx;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::IncrementalAlterConfigs;
pub const VERSIONS: (i16, i16) = (0, 1);
pub const RUNS_ON: RunsOn = RunsOn::ControlPlane;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let result = alter_resource(&ctx.shard, resource, request.validate_only).await;
        responses.push(match result {
            Ok(()) => response,
            Err(error) => response
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(&error.message))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn alter_resource(
    ctx: &Rc<ShardCtx>,
    resource: AlterConfigsResource,
    validate_only: bool,
) -> Result<(), ControlError> {
    let edit = |configs: &mut BTreeMap<String, String>| {
        resource
            .configs
            .iter()
            .try_for_each(|op| apply_op(configs, op))
    };
    let name = resource.resource_name.as_str();
    edit_overrides(ctx, resource.resource_type, name, edit, validate_only).await
}

/// Applies `edit` to the overrides of one resource — a topic, or the broker (`""` or this node's
/// id: the run-time defaults) — and has the control plane validate and store the result.
/// IncrementalAlterConfigs and the legacy AlterConfigs differ only in their `edit`.
pub(super) async fn edit_overrides(
    ctx: &Rc<ShardCtx>,
    resource_type: i8,
    name: &str,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), ControlError>,
    validate_only: bool,
) -> Result<(), ControlError> {
    match resource_type {
        RESOURCE_TOPIC => {
            let Some(meta) = ctx.metadata().topic(name).cloned() else {
                return Err(ControlError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic '{name}' does not exist"),
                ));
            };
            let mut configs = meta.configs;
            edit(&mut configs)?;
            let name = name.to_string();
            let request = ControlRequest::SetTopicConfigs {
                name,
                configs,
                validate_only,
            };
            control::call_topic(ctx, request).await.map(|_| ())
        }
        RESOURCE_BROKER => {
            if !name.is_empty() && name != ctx.config.node_id.to_string() {
                let message = format!("this is broker {}, not '{name}'", ctx.config.node_id);
                return Err(ControlError::new(ResponseError::InvalidRequest, message));
            }
            let mut configs = ctx.metadata().broker_overrides.clone();
            edit(&mut configs)?;
            let request = ControlRequest::SetBrokerConfigs {
                configs,
                validate_only,
            };
            control::call(ctx, request).await.map(|_| ())
        }
        other => Err(ControlError::new(
            ResponseError::InvalidRequest,
            format!("resource type {other} is not served"),
        )),
    }
}

fn apply_op(
    configs: &mut BTreeMap<String, String>,
    op: &AlterableConfig,
) -> Result<(), ControlError> {
    let name = op.name.to_string();
    let value = op.value.as_ref().map(|v| v.to_string());
    let invalid = |message: String| Err(ControlError::new(ResponseError::InvalidConfig, message));
    match (op.config_operation, value) {
        (OP_SET, Some(value)) => {
            configs.insert(name, value);
        }
        (OP_DELETE, _) => {
            configs.remove(&name);
        }
        (OP_APPEND, Some(value)) => {
            let mut items = list(configs.get(&name));
            items.extend(
                list(Some(&value))
                    .into_iter()
                    .filter(|v| !items.contains(v))
                    .collect::<Vec<_>>(),
            );
            configs.insert(name, items.join(","));
        }
        (OP_SUBTRACT, Some(value)) => {
            let remove = list(Some(&value));
            let items: Vec<String> = list(configs.get(&name))
                .into_iter()
                .filter(|v| !remove.contains(v))
                .collect();
            configs.insert(name, items.join(","));
        }
        (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
            return invalid(format!("null value for `{name}`"))
        }
        (other, _) => return invalid(format!("unknown operation {other} on `{name}`")),
    }
    Ok(())
}

fn list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}
