//! CreatePartitions: raise topics' partition counts (through the control plane on shard 0).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};

use super::util::str_bytes;
use crate::control::{self, ControlRequest};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::CreatePartitions;
pub const VERSIONS: (i16, i16) = (0, 3);
pub const RUNS_ON: RunsOn = RunsOn::ControlPlane;

pub async fn handle(
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        // Null or empty: placed by the controller.
        let assignment = topic
            .assignments
            .as_ref()
            .filter(|a| !a.is_empty())
            .map(|assignments| {
                assignments
                    .iter()
                    .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
        let change = ControlRequest::CreatePartitions {
            name: topic.name.0.to_string(),
            count: topic.count,
            assignment,
            validate_only: request.validate_only,
        };
        let result = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match control::call_topic(&ctx.shard, change).await {
            Ok(_) => result,
            Err(error) => result
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(&error.message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
