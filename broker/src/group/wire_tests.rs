//! The group APIs end to end on a real shard (a glommio executor, a temporary data dir): every
//! advertised version encodes and decodes, one member's whole life runs at each version, and
//! commits come back after the shard's logs are reopened and replayed.

use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::config::BrokerConfig;
use crate::control::{self, ControlRequest};
use crate::handlers::entry;
use crate::shard::ShardCtx;

const TOPIC: &str = "orders";

/// Runs `test` on a one-shard broker context inside a glommio executor.
fn on_shard<F, Fut>(test: F)
where
    F: FnOnce(Rc<ShardCtx>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    odradek_storage::testing::run(move || async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = one_shard_ctx(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            group_initial_rebalance_delay_ms: 0,
            offsets_topic_num_partitions: 4,
            ..BrokerConfig::default()
        })
        .await;
        super::start(&ctx).await;
        let request = ControlRequest::CreateTopic {
            name: TOPIC.into(),
            partitions: 2,
            replication_factor: None,
            assignment: None,
            configs: Default::default(),
            validate_only: false,
        };
        control::call_topic(&ctx, request)
            .await
            .expect("create the topic");
        test(ctx).await;
    });
}

use crate::handlers::admin_tests::{call, one_shard_ctx};

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// The version of `key` to use in round `round`: the advertised range, clamped.
fn version(key: ApiKey, round: i16) -> i16 {
    let (min, max) = entry(key).expect("served").versions;
    round.clamp(min.max(key.valid_versions().min), max)
}

async fn find_coordinator(ctx: &Rc<ShardCtx>, v: i16, group: &str) {
    let request = match v >= 4 {
        true => FindCoordinatorRequest::default().with_coordinator_keys(vec![s(group)]),
        false => FindCoordinatorRequest::default().with_key(s(group)),
    };
    let response: FindCoordinatorResponse = call(ctx, ApiKey::FindCoordinator, v, &request).await;
    let (error, port) = match v >= 4 {
        true => (
            response.coordinators[0].error_code,
            response.coordinators[0].port,
        ),
        false => (response.error_code, response.port),
    };
    assert_eq!((error, port), (0, 9092), "FindCoordinator v{v}");
}

async fn join(ctx: &Rc<ShardCtx>, v: i16, group: &str) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(if v >= 1 { 20_000 } else { -1 })
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"meta"))]);
    let first: JoinGroupResponse = call(ctx, ApiKey::JoinGroup, v, &request).await;
    if v < 4 {
        return first;
    }
    assert_eq!(
        first.error_code,
        ResponseError::MemberIdRequired.code(),
        "JoinGroup v{v}"
    );
    let request = request.with_member_id(first.member_id);
    call(ctx, ApiKey::JoinGroup, v, &request).await
}

/// One member's life in `group` at versions picked by `round`.
async fn member_life(ctx: &Rc<ShardCtx>, round: i16, group: &str) {
    find_coordinator(ctx, version(ApiKey::FindCoordinator, round), group).await;
    let v = version(ApiKey::JoinGroup, round);
    let joined = join(ctx, v, group).await;
    assert_eq!(joined.error_code, 0, "JoinGroup v{v}");
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    assert_eq!(joined.members.len(), 1);
    assert_eq!(&joined.members[0].metadata[..], b"meta");
    let member = joined.member_id.clone();

    let v = version(ApiKey::SyncGroup, round);
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(1)
        .with_member_id(member.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(member.clone())
            .with_assignment(Bytes::from_static(b"plan"))]);
    let synced: SyncGroupResponse = call(ctx, ApiKey::SyncGroup, v, &sync).await;
    assert_eq!(synced.error_code, 0, "SyncGroup v{v}");
    assert_eq!(&synced.assignment[..], b"plan");

    let v = version(ApiKey::Heartbeat, round);
    let beat = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(1)
        .with_member_id(member.clone());
    let response: HeartbeatResponse = call(ctx, ApiKey::Heartbeat, v, &beat).await;
    assert_eq!(response.error_code, 0, "Heartbeat v{v}");
    let stale = beat.with_generation_id(7);
    let response: HeartbeatResponse = call(ctx, ApiKey::Heartbeat, v, &stale).await;
    assert_eq!(response.error_code, ResponseError::IllegalGeneration.code());

    commit(ctx, version(ApiKey::OffsetCommit, round), group, &member).await;
    fetch(ctx, version(ApiKey::OffsetFetch, round), group, Some(41)).await;

    let v = version(ApiKey::LeaveGroup, round);
    let leave = match v >= 3 {
        true => LeaveGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_members(vec![MemberIdentity::default().with_member_id(member)]),
        false => LeaveGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(member),
    };
    let left: LeaveGroupResponse = call(ctx, ApiKey::LeaveGroup, v, &leave).await;
    let code = match v >= 3 {
        true => left.members[0].error_code,
        false => left.error_code,
    };
    assert_eq!(code, 0, "LeaveGroup v{v}");
}

async fn commit(ctx: &Rc<ShardCtx>, v: i16, group: &str, member: &StrBytes) {
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(1)
        .with_committed_offset(41)
        .with_committed_leader_epoch(if v >= 6 { 0 } else { -1 })
        .with_committed_metadata(Some(s("m")));
    let unknown = OffsetCommitRequestTopic::default()
        .with_name(TopicName(s("nope")))
        .with_partitions(vec![partition.clone()]);
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(1)
        .with_member_id(member.clone())
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![partition]),
            unknown,
        ]);
    let response: OffsetCommitResponse = call(ctx, ApiKey::OffsetCommit, v, &request).await;
    let codes: Vec<i16> = response
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(codes, vec![0, unknown], "OffsetCommit v{v}");
}

/// Fetches partitions 0 and 1 of the topic: 0 was never committed, 1 holds `expected`.
async fn fetch(ctx: &Rc<ShardCtx>, v: i16, group: &str, expected: Option<i64>) {
    let offsets: Vec<i64> = if v >= 8 {
        let topics = OffsetFetchRequestTopics::default()
            .with_name(TopicName(s(TOPIC)))
            .with_partition_indexes(vec![0, 1]);
        let request =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(vec![topics]))]);
        let response: OffsetFetchResponse = call(ctx, ApiKey::OffsetFetch, v, &request).await;
        assert_eq!(response.groups[0].error_code, 0);
        let topic = &response.groups[0].topics[0];
        topic
            .partitions
            .iter()
            .map(|p| p.committed_offset)
            .collect()
    } else {
        let topics = OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(TOPIC)))
            .with_partition_indexes(vec![0, 1]);
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![topics]));
        let response: OffsetFetchResponse = call(ctx, ApiKey::OffsetFetch, v, &request).await;
        assert_eq!(response.error_code, 0);
        let topic = &response.topics[0];
        topic
            .partitions
            .iter()
            .map(|p| p.committed_offset)
            .collect()
    };
    assert_eq!(
        offsets,
        vec![-1, expected.unwrap_or(-1)],
        "OffsetFetch v{v}"
    );
}

#[test]
fn given_every_version_when_a_member_joins_syncs_commits_and_leaves_should_answer_each() {
    on_shard(|ctx| async move {
        for round in 0..=9 {
            member_life(&ctx, round, &format!("g{round}")).await;
        }
        for v in 0..=5 {
            let request = ListGroupsRequest::default();
            let listed: ListGroupsResponse = call(&ctx, ApiKey::ListGroups, v, &request).await;
            assert_eq!(listed.groups.len(), 10, "ListGroups v{v}");
            let request = DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(s("g3")), GroupId(s("unknown"))]);
            let described: DescribeGroupsResponse =
                call(&ctx, ApiKey::DescribeGroups, v, &request).await;
            assert_eq!(described.groups[0].group_state.as_str(), "Empty");
            assert_eq!(described.groups[1].group_state.as_str(), "Dead");
        }
        // The first FindCoordinator created the internal topic; Metadata flags it.
        let metadata: MetadataResponse = call(
            &ctx,
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
        let internal: Vec<_> = metadata
            .topics
            .iter()
            .filter(|t| t.is_internal)
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        assert_eq!(internal, vec![super::OFFSETS_TOPIC.to_string()]);
        let request = ListGroupsRequest::default().with_states_filter(vec![s("Stable")]);
        let listed: ListGroupsResponse = call(&ctx, ApiKey::ListGroups, 4, &request).await;
        assert!(listed.groups.is_empty(), "no group is stable");

        let request = OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("g9")))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(1)
                ])]);
        let deleted: OffsetDeleteResponse = call(&ctx, ApiKey::OffsetDelete, 0, &request).await;
        assert_eq!(deleted.error_code, 0);
        fetch(&ctx, 9, "g9", None).await;

        for v in 0..=2 {
            let group = format!("g{v}");
            let request =
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]);
            let response: DeleteGroupsResponse =
                call(&ctx, ApiKey::DeleteGroups, v, &request).await;
            assert_eq!(response.results[0].error_code, 0, "DeleteGroups v{v}");
            fetch(&ctx, 8, &group, None).await;
            let response: DeleteGroupsResponse =
                call(&ctx, ApiKey::DeleteGroups, v, &request).await;
            let not_found = ResponseError::GroupIdNotFound.code();
            assert_eq!(response.results[0].error_code, not_found);
        }
    });
}

#[test]
fn given_commits_when_the_logs_are_replayed_should_restore_them() {
    on_shard(|ctx| async move {
        member_life(&ctx, 9, "durable").await;
        // A standalone consumer commits too (generation -1, no member id).
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s("solo")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(1)
                    .with_committed_offset(41)])]);
        let response: OffsetCommitResponse = call(&ctx, ApiKey::OffsetCommit, 8, &request).await;
        assert_eq!(response.topics[0].partitions[0].error_code, 0);
        // Forget everything in memory, then replay the logs.
        ctx.groups.by_id.borrow_mut().clear();
        fetch(&ctx, 9, "durable", None).await;
        ctx.groups.loaded.borrow_mut().clear();
        let replayed = super::housekeeping::load_leaderships(&ctx).await;
        assert_eq!(replayed, 2);
        fetch(&ctx, 9, "durable", Some(41)).await;
        fetch(&ctx, 5, "solo", Some(41)).await;
    });
}

#[test]
fn given_an_empty_group_past_retention_when_offsets_expire_should_write_tombstones() {
    on_shard(|ctx| async move {
        member_life(&ctx, 9, "old").await;
        let later = odradek_storage::now_ms() + super::housekeeping::offsets_retention_ms(&ctx);
        // The group became Empty when its member left; a week later its offsets go.
        super::housekeeping::expire_offsets(&ctx, later + 1).await;
        fetch(&ctx, 9, "old", None).await;
        // The tombstones are in the log: a replay does not bring the commit back.
        ctx.groups.by_id.borrow_mut().clear();
        ctx.groups.loaded.borrow_mut().clear();
        assert_eq!(super::housekeeping::load_leaderships(&ctx).await, 0);
        fetch(&ctx, 9, "old", None).await;
    });
}
