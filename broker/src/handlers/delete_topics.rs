//! DeleteTopics: by name (v1–5) or by name or topic id (v6). Each deletion goes through the
//! control plane on shard 0, which unpublishes the topic and then deletes its partition logs.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use uuid::Uuid;

use super::util::{str_bytes, topic_name};
use crate::control::{self, ControlRequest};
use crate::session::RequestContext;
use crate::shard::ShardCtx;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::DeleteTopics;
pub const VERSIONS: (i16, i16) = (0, 6);
pub const RUNS_ON: RunsOn = RunsOn::ControlPlane;

pub async fn handle(ctx: &RequestContext, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, Uuid)> = if ctx.version() >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        responses.push(delete_one(&ctx.shard, name, id).await);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

async fn delete_one(ctx: &Rc<ShardCtx>, name: Option<TopicName>, id: Uuid) -> DeletableTopicResult {
    let name = match name {
        Some(name) => name.0.to_string(),
        None => match ctx.metadata().topic_by_id(&id) {
            Some(meta) => meta.name.clone(),
            None => {
                return DeletableTopicResult::default()
                    .with_topic_id(id)
                    .with_error_code(ResponseError::UnknownTopicId.code())
            }
        },
    };
    let result = DeletableTopicResult::default().with_name(Some(topic_name(&name)));
    match control::call_topic(ctx, ControlRequest::DeleteTopic { name }).await {
        Ok(meta) => result.with_topic_id(meta.id),
        Err(error) => result
            .with_topic_id(id)
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(&error.message))),
    }
}
