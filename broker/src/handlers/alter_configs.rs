//! AlterConfigs (the legacy, non-incremental API that librdkafka's and confluent-kafka's
//! `alter_configs` send): the configs given become the resource's whole set of overrides; a
//! config left out returns to its default. Served through the same path as
//! IncrementalAlterConfigs.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};

use super::incremental_alter_configs::edit_overrides;
use super::util::str_bytes;
use crate::control::ControlError;
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::AlterConfigs;
pub const VERSIONS: (i16, i16) = (0, 2);
pub const RUNS_ON: RunsOn = RunsOn::ControlPlane;

pub async fn handle(ctx: &RequestContext, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let replacement = resource
            .configs
            .iter()
            .map(|c| match &c.value {
                Some(value) => Ok((c.name.to_string(), value.to_string())),
                None => Err(ControlError::new(
                    ResponseError::InvalidConfig,
                    format!("null value for `{}`", c.name.as_str()),
                )),
            })
            .collect::<Result<BTreeMap<String, String>, ControlError>>();
        let name = resource.resource_name.as_str();
        let result = match replacement {
            Ok(replacement) => {
                let replace = |configs: &mut BTreeMap<String, String>| {
                    *configs = replacement;
                    Ok(())
                };
                let kind = resource.resource_type;
                edit_overrides(&ctx.shard, kind, name, replace, request.validate_only).await
            }
            Err(error) => Err(error),
        };
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        responses.push(match result {
            Ok(()) => response,
            Err(error) => response
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(&error.message))),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}
