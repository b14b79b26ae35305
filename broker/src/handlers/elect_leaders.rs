//! ElectLeaders (API 43, v0–2): leader elections an operator asks for, through the control
//! plane on shard 0 (one metadata-log entry for the whole request). Preferred (v0's only kind,
//! election type 0): the first replica leads again where it is live and in sync
//! (ELECTION_NOT_NEEDED where it leads already, PREFERRED_LEADER_NOT_AVAILABLE where it cannot).
//! Unclean (type 1): a partition with no leader gets its first live replica, in sync or not
//! (ELIGIBLE_LEADERS_NOT_AVAILABLE where none is live). Null partitions: every partition, and
//! the answer lists those whose leader changed or could not.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::util::str_bytes;
use super::RunsOn;
use crate::control::{self, ControlDone, ControlRequest};
use crate::session::RequestContext;

pub const API_KEY: ApiKey = ApiKey::ElectLeaders;
pub const VERSIONS: (i16, i16) = (0, 2);
pub const RUNS_ON: RunsOn = RunsOn::ControlPlane;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(ctx: &RequestContext, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let election_type = match ctx.version() {
        0 => PREFERRED,
        _ => request.election_type,
    };
    if election_type != PREFERRED && election_type != UNCLEAN {
        return ElectLeadersResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    }
    let partitions = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let change = ControlRequest::ElectLeaders {
        partitions,
        unclean: election_type == UNCLEAN,
    };
    let elections = match control::call(&ctx.shard, change).await {
        Ok(ControlDone::Elections(elections)) => elections,
        Ok(_) => Vec::new(),
        Err(error) => {
            return ElectLeadersResponse::default().with_error_code(error.code());
        }
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, partition, failure) in elections {
        let result = PartitionResult::default().with_partition_id(partition);
        let result = match failure {
            None => result,
            Some(error) => result
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(&error.message))),
        };
        by_topic.entry(topic).or_default().push(result);
    }
    let results = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(str_bytes(&topic)))
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}
