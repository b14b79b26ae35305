//! Every advertised version of every API, against the real binary: the ApiVersions table is
//! walked and each version gets a minimal valid request (built with the codec where it can
//! encode that version, written by hand below it), and must get a response decodable at that
//! version, on one connection that never closes. Then the versions older than the codec that
//! old clients send (sarama 1.22, kafka-python pinned to 0.9/0.10) are checked for meaning:
//! they create, describe, delete, list, commit and fetch as the newer versions do.

mod common;

use std::net::TcpStream;

use bytes::{Buf, Bytes};
use common::{
    connect, correlation_id_of, create_topic, create_topics, delete_topics_v0, describe_configs_v0,
    frame, is_old, list_offsets_v0, minimal_old_request, next_response, offset_commit,
    offset_fetch_v0, offset_for_leader_epoch_v0, raw_produce, read_old_response, record_batch,
    Body, Broker, OldAnswer, OldPartition, UNSUPPORTED_VERSION,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use odradek_net::client::encode_request;
use odradek_net::codec::response_header_version;

const TOPIC: &str = "walk";
/// A group without members: commits to it are simple (standalone) commits.
const SIMPLE_GROUP: &str = "walk-simple";
/// A group nobody joins: heartbeats, syncs and leaves get errors, at once.
const IDLE_GROUP: &str = "walk-idle";

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// One connection and the bytes read past the last response.
struct Conn {
    stream: TcpStream,
    pending: Vec<u8>,
    correlation_id: i32,
}

impl Conn {
    fn open(broker: &Broker) -> Conn {
        Conn {
            stream: connect(broker.addr()),
            pending: Vec::new(),
            correlation_id: 0,
        }
    }

    /// Sends `frame_for(correlation id)` and returns the response after its length, checking
    /// its correlation id; panics, naming `what`, if the connection closes instead.
    fn ask(&mut self, what: &str, frame_for: impl FnOnce(i32) -> Vec<u8>) -> Vec<u8> {
        use std::io::Write;
        self.correlation_id += 1;
        let request = frame_for(self.correlation_id);
        self.stream
            .write_all(&request)
            .unwrap_or_else(|e| panic!("{what}: write: {e}"));
        let response = next_response(&mut self.stream, &mut self.pending)
            .unwrap_or_else(|| panic!("{what}: the broker closed the connection"));
        assert_eq!(correlation_id_of(&response), self.correlation_id, "{what}");
        response
    }

    /// An old-version request (written by hand) and its response, read whole.
    fn ask_old(&mut self, key: i16, version: i16, body: Body) -> OldAnswer {
        let what = format!("API {key} v{version}");
        let response = self.ask(&what, |id| frame(key, version, id, &body.0));
        read_old_response(key, version, &response[4..])
    }

    /// A request the codec encodes, and its response decoded at `version`, all of it.
    fn ask_codec<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        let what = format!("{key:?} v{version}");
        let response = self.ask(&what, |id| {
            encode_request(key, version, id, "every-version", request)
                .unwrap_or_else(|e| panic!("{what}: encode: {e}"))
                .to_vec()
        });
        decode_whole(&what, key, version, response)
    }
}

/// `response` (after its length) decoded as `Resp` at `version`, header included, with nothing
/// left over.
fn decode_whole<Resp: Decodable>(what: &str, key: ApiKey, version: i16, response: Vec<u8>) -> Resp {
    let mut buf = Bytes::from(response);
    ResponseHeader::decode(&mut buf, response_header_version(key, version))
        .unwrap_or_else(|e| panic!("{what}: response header: {e}"));
    let body = Resp::decode(&mut buf, version).unwrap_or_else(|e| panic!("{what}: body: {e}"));
    assert!(
        !buf.has_remaining(),
        "{what}: {} bytes after the body",
        buf.remaining()
    );
    body
}

/// A minimal valid request of `key` at `version` (one the codec encodes) sent on `conn`, its
/// response decoded at that version. Panics for an API this test does not know: a new entry
/// in the table must be walked too.
fn walk_codec_version(conn: &mut Conn, key: ApiKey, version: i16) {
    let topic = || TopicName(s(TOPIC));
    let group = |g: &str| GroupId(s(g));
    match key {
        ApiKey::Produce => {
            let request = ProduceRequest::default().with_acks(1).with_timeout_ms(1000);
            let _: ProduceResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::Fetch => {
            let request = FetchRequest::default().with_max_wait_ms(0);
            let _: FetchResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::ListOffsets => {
            let partition = ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1);
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![partition])]);
            let _: ListOffsetsResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::Metadata => {
            let request = MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic())),
            ]));
            let _: MetadataResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::OffsetCommit => {
            let partition = OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0);
            let request = OffsetCommitRequest::default()
                .with_group_id(group(SIMPLE_GROUP))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![partition])]);
            let _: OffsetCommitResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::OffsetFetch => {
            let request = if version >= 8 {
                let topics = OffsetFetchRequestTopics::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0]);
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(group(SIMPLE_GROUP))
                    .with_topics(Some(vec![topics]))])
            } else {
                let topics = OffsetFetchRequestTopic::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0]);
                OffsetFetchRequest::default()
                    .with_group_id(group(SIMPLE_GROUP))
                    .with_topics(Some(vec![topics]))
            };
            let _: OffsetFetchResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::FindCoordinator => {
            let request = if version >= 4 {
                FindCoordinatorRequest::default().with_coordinator_keys(vec![s(IDLE_GROUP)])
            } else {
                FindCoordinatorRequest::default().with_key(s(IDLE_GROUP))
            };
            let _: FindCoordinatorResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::JoinGroup => {
            // An empty group id is refused at once (no member is left waiting to rebalance).
            let request = JoinGroupRequest::default()
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(if version >= 1 { 10_000 } else { -1 })
                .with_protocol_type(s("consumer"));
            let _: JoinGroupResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::Heartbeat => {
            let request = HeartbeatRequest::default()
                .with_group_id(group(IDLE_GROUP))
                .with_generation_id(1)
                .with_member_id(s("nobody"));
            let _: HeartbeatResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::LeaveGroup => {
            let request = LeaveGroupRequest::default().with_group_id(group(IDLE_GROUP));
            let request = if version >= 3 {
                request.with_members(vec![MemberIdentity::default().with_member_id(s("nobody"))])
            } else {
                request.with_member_id(s("nobody"))
            };
            let _: LeaveGroupResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::SyncGroup => {
            let request = SyncGroupRequest::default()
                .with_group_id(group(IDLE_GROUP))
                .with_generation_id(1)
                .with_member_id(s("nobody"));
            let _: SyncGroupResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::DescribeGroups => {
            let request = DescribeGroupsRequest::default().with_groups(vec![group(IDLE_GROUP)]);
            let _: DescribeGroupsResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::ListGroups => {
            let _: ListGroupsResponse = conn.ask_codec(key, version, &ListGroupsRequest::default());
        }
        ApiKey::ApiVersions => {
            let request = ApiVersionsRequest::default()
                .with_client_software_name(s("every-version"))
                .with_client_software_version(s("1"));
            let response: ApiVersionsResponse = conn.ask_codec(key, version, &request);
            assert_eq!(response.error_code, 0, "ApiVersions v{version}");
        }
        ApiKey::CreateTopics => {
            let request = CreateTopicsRequest::default().with_timeout_ms(1000);
            let _: CreateTopicsResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::DeleteTopics => {
            let request = DeleteTopicsRequest::default().with_timeout_ms(1000);
            let _: DeleteTopicsResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::DeleteRecords => {
            let request = DeleteRecordsRequest::default().with_timeout_ms(1000);
            let _: DeleteRecordsResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::OffsetForLeaderEpoch => {
            let request = OffsetForLeaderEpochRequest::default().with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(topic())
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_leader_epoch(0)]),
            ]);
            let _: OffsetForLeaderEpochResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::InitProducerId => {
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000);
            let _: InitProducerIdResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::DescribeConfigs => {
            let resource = DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(TOPIC))
                .with_configuration_keys(None);
            let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
            let _: DescribeConfigsResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::AlterConfigs => {
            let _: AlterConfigsResponse =
                conn.ask_codec(key, version, &AlterConfigsRequest::default());
        }
        ApiKey::CreatePartitions => {
            let request = CreatePartitionsRequest::default().with_timeout_ms(1000);
            let _: CreatePartitionsResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::DeleteGroups => {
            let _: DeleteGroupsResponse =
                conn.ask_codec(key, version, &DeleteGroupsRequest::default());
        }
        ApiKey::IncrementalAlterConfigs => {
            let _: IncrementalAlterConfigsResponse =
                conn.ask_codec(key, version, &IncrementalAlterConfigsRequest::default());
        }
        ApiKey::OffsetDelete => {
            let request = OffsetDeleteRequest::default().with_group_id(group(SIMPLE_GROUP));
            let _: OffsetDeleteResponse = conn.ask_codec(key, version, &request);
        }
        ApiKey::DescribeCluster => {
            let _: DescribeClusterResponse =
                conn.ask_codec(key, version, &DescribeClusterRequest::default());
        }
        ApiKey::DescribeQuorum => {
            let _: DescribeQuorumResponse =
                conn.ask_codec(key, version, &DescribeQuorumRequest::default());
        }
        ApiKey::ElectLeaders => {
            // Every partition, preferred: the single broker leads them all already.
            let request = ElectLeadersRequest::default().with_timeout_ms(1000);
            let response: ElectLeadersResponse = conn.ask_codec(key, version, &request);
            assert_eq!(response.error_code, 0, "ElectLeaders v{version}");
            assert!(response.replica_election_results.is_empty(), "none needed");
        }
        other => panic!("{other:?} is advertised but this test does not walk it: add it"),
    }
}

#[test]
fn given_the_advertised_table_when_every_version_of_every_api_is_sent_should_answer_each_at_its_version_on_one_connection(
) {
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), TOPIC, 1, &[]);
    let mut conn = Conn::open(&broker);
    let table: ApiVersionsResponse =
        conn.ask_codec(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    assert_eq!(table.error_code, 0);
    assert!(table.api_keys.len() >= 25, "{:?}", table.api_keys);
    let mut walked = 0;
    for api in &table.api_keys {
        let key = ApiKey::try_from(api.api_key).expect("an API key the codec knows");
        for version in api.min_version..=api.max_version {
            if is_old(api.api_key, version) {
                let body = minimal_old_request(api.api_key, version, TOPIC, SIMPLE_GROUP);
                conn.ask_old(api.api_key, version, Body(body));
            } else {
                assert!(
                    version >= key.valid_versions().min,
                    "{key:?} v{version}: older than the codec and not written by hand here"
                );
                walk_codec_version(&mut conn, key, version);
            }
            walked += 1;
        }
    }
    // After all of it the connection still serves.
    let again: ApiVersionsResponse =
        conn.ask_codec(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(again.api_keys, table.api_keys);
    assert!(walked > 150, "{walked} versions walked");
}

/// The topics of a CreateTopics or DeleteTopics v0–1 answer.
fn topics(answer: OldAnswer) -> Vec<(String, i16)> {
    match answer {
        OldAnswer::Topics(topics) => topics,
        other => panic!("not a topics answer: {other:?}"),
    }
}

fn partitions(answer: OldAnswer) -> Vec<OldPartition> {
    match answer {
        OldAnswer::Partitions(partitions) => partitions,
        other => panic!("not a partitions answer: {other:?}"),
    }
}

#[test]
fn given_sarama_era_admin_requests_when_sent_should_create_describe_and_delete_like_newer_versions()
{
    let broker = Broker::start();
    let mut conn = Conn::open(&broker);
    let compact: &[(&str, &str)] = &[("cleanup.policy", "compact")];

    let created = conn.ask_old(19, 0, create_topics(0, &[("old-a", 2, compact)], false));
    assert_eq!(topics(created), vec![("old-a".to_string(), 0)]);
    let again = conn.ask_old(19, 1, create_topics(1, &[("old-a", 2, &[])], false));
    assert_eq!(
        topics(again),
        vec![("old-a".to_string(), TOPIC_ALREADY_EXISTS)]
    );
    let dry = conn.ask_old(19, 1, create_topics(1, &[("old-dry", 1, &[])], true));
    assert_eq!(topics(dry), vec![("old-dry".to_string(), 0)]);

    // The codec's Metadata sees what v0 created, and nothing of the dry run.
    let request = MetadataRequest::default().with_topics(None);
    let metadata: MetadataResponse = conn.ask_codec(ApiKey::Metadata, 1, &request);
    let names: Vec<(String, usize)> = metadata
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().expect("named").to_string(),
                t.partitions.len(),
            )
        })
        .filter(|(name, _)| !name.starts_with("__"))
        .collect();
    assert_eq!(names, vec![("old-a".to_string(), 2)]);

    let OldAnswer::Resources(resources) = conn.ask_old(32, 0, describe_configs_v0(2, "old-a"))
    else {
        panic!("not a DescribeConfigs answer");
    };
    let (error_code, name, configs) = &resources[0];
    assert_eq!((*error_code, name.as_str()), (0, "old-a"));
    let config = |key: &str| {
        configs
            .iter()
            .find(|c| c.name == key)
            .unwrap_or_else(|| panic!("{key} in {configs:?}"))
    };
    assert_eq!(config("cleanup.policy").value.as_deref(), Some("compact"));
    assert!(!config("cleanup.policy").is_default, "set on the topic");
    assert!(config("retention.ms").is_default, "not set anywhere");
    let OldAnswer::Resources(missing) = conn.ask_old(32, 0, describe_configs_v0(2, "nope")) else {
        panic!("not a DescribeConfigs answer");
    };
    assert_eq!(missing[0].0, UNKNOWN_TOPIC_OR_PARTITION);

    let deleted = conn.ask_old(20, 0, delete_topics_v0(&["old-a", "nope"]));
    assert_eq!(
        topics(deleted),
        vec![
            ("old-a".to_string(), 0),
            ("nope".to_string(), UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
}

#[test]
fn given_old_consumer_requests_when_sent_should_list_commit_and_fetch_like_newer_versions() {
    let broker = Broker::start();
    let topic = "old-offsets";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    for (i, timestamp_ms) in [1_700_000_000_000i64, 1_700_000_001_000, 1_700_000_002_000]
        .into_iter()
        .enumerate()
    {
        let (error_code, offset) = raw_produce(
            broker.addr(),
            topic,
            i as i32,
            &record_batch(b"v", timestamp_ms),
        );
        assert_eq!((error_code, offset), (0, i as i64));
    }
    let mut conn = Conn::open(&broker);

    // ListOffsets v0: latest, earliest, by timestamp, none asked for, a v1+ sentinel, and a
    // partition that does not exist.
    let asked = [
        (0, -1, 1),
        (0, -2, 1),
        (0, 1_700_000_001_000, 1),
        (0, -1, 0),
        (0, -3, 1),
        (7, -1, 1),
    ];
    let listed = partitions(conn.ask_old(2, 0, list_offsets_v0(topic, &asked)));
    let got: Vec<(i16, Vec<i64>)> = listed
        .into_iter()
        .map(|p| (p.error_code, p.offsets))
        .collect();
    let expected = vec![
        (0, vec![3]),
        (0, vec![0]),
        (0, vec![1]),
        (0, vec![]),
        (UNSUPPORTED_VERSION, vec![]),
        (UNKNOWN_TOPIC_OR_PARTITION, vec![]),
    ];
    assert_eq!(got, expected);

    // OffsetCommit v0 (a simple commit), read back by OffsetFetch v0, then v1 over it, read
    // back by v0 and by the codec's v5: one store for every version.
    let group = "old-group";
    let committed =
        partitions(conn.ask_old(8, 0, offset_commit(0, group, topic, &[(0, 2, Some("m0"))])));
    assert_eq!(
        committed.iter().map(|p| p.error_code).collect::<Vec<_>>(),
        vec![0]
    );
    let fetched = partitions(conn.ask_old(9, 0, offset_fetch_v0(group, topic, &[0])));
    assert_eq!(
        (
            fetched[0].error_code,
            fetched[0].offsets.clone(),
            fetched[0].metadata.as_deref()
        ),
        (0, vec![2], Some("m0"))
    );
    let committed = partitions(conn.ask_old(8, 1, offset_commit(1, group, topic, &[(0, 3, None)])));
    assert_eq!(committed[0].error_code, 0);
    let fetched = partitions(conn.ask_old(9, 0, offset_fetch_v0(group, topic, &[0])));
    assert_eq!(fetched[0].offsets, vec![3]);
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0])]));
    let v5: OffsetFetchResponse = conn.ask_codec(ApiKey::OffsetFetch, 5, &request);
    assert_eq!(v5.topics[0].partitions[0].committed_offset, 3);

    // Nothing committed for another group: -1.
    let fresh = partitions(conn.ask_old(9, 0, offset_fetch_v0("other", topic, &[0])));
    assert_eq!(
        (fresh[0].error_code, fresh[0].offsets.clone()),
        (0, vec![-1])
    );
}

#[test]
fn given_records_of_epoch_0_when_offset_for_leader_epoch_is_asked_should_answer_where_epochs_end() {
    let broker = Broker::start();
    let topic = "epochs";
    create_topic(&broker.bootstrap(), topic, 2, &[]);
    for i in 0..3 {
        let (error_code, _) = raw_produce(broker.addr(), topic, i, &record_batch(b"v", 1_000));
        assert_eq!(error_code, 0);
    }
    let mut conn = Conn::open(&broker);
    // (partition, leader epoch, current leader epoch) → (error code, epoch, end offset).
    let cases = [
        ((0, 0, -1), (0, 0, 3)),
        ((0, 0, 0), (0, 0, 3)),
        ((0, 1, -1), (0, -1, -1)),
        ((0, -1, -1), (0, -1, -1)),
        ((0, 0, 1), (UNKNOWN_LEADER_EPOCH, -1, -1)),
        ((1, 0, -1), (0, -1, -1)),
        ((5, 0, -1), (UNKNOWN_TOPIC_OR_PARTITION, -1, -1)),
    ];
    let partitions = cases
        .iter()
        .map(|&((partition, epoch, current), _)| {
            OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_leader_epoch(epoch)
                .with_current_leader_epoch(current)
        })
        .collect();
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(partitions),
            OffsetForLeaderTopic::default()
                .with_topic(TopicName(s("no-such-topic")))
                .with_partitions(vec![OffsetForLeaderPartition::default()]),
        ]);
    let answer: OffsetForLeaderEpochResponse =
        conn.ask_codec(ApiKey::OffsetForLeaderEpoch, 4, &request);
    let got: Vec<(i32, (i16, i32, i64))> = answer.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition, (p.error_code, p.leader_epoch, p.end_offset)))
        .collect();
    let expected: Vec<(i32, (i16, i32, i64))> =
        cases.iter().map(|&((p, _, _), want)| (p, want)).collect();
    assert_eq!(got, expected);
    assert_eq!(
        answer.topics[1].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // v0 (no epoch in the answer) and v1, as brokers before Kafka 2.1 ask.
    let asked = || offset_for_leader_epoch_v0(topic, &[(0, 0), (0, 3)]);
    let v0 = partitions_of(conn.ask_old(23, 0, asked()));
    assert_eq!(v0, vec![(0, vec![3]), (0, vec![-1])]);
    let v1 = partitions_of(conn.ask_old(23, 1, asked()));
    assert_eq!(v1, vec![(0, vec![0, 3]), (0, vec![-1, -1])]);
}

/// (error code, offsets) of each partition of an old answer.
fn partitions_of(answer: OldAnswer) -> Vec<(i16, Vec<i64>)> {
    partitions(answer)
        .into_iter()
        .map(|p| (p.error_code, p.offsets))
        .collect()
}

#[test]
fn given_an_old_request_with_a_lying_count_when_sent_should_close_only_that_connection() {
    let broker = Broker::start();
    let mut bad = create_topics(0, &[("lies", 1, &[])], false).0;
    bad[..4].copy_from_slice(&i32::MAX.to_be_bytes());
    let verdict = common::send_and_judge(broker.addr(), &frame(19, 0, 1, &bad), false);
    common::assert_closed("CreateTopics v0 with a lying topic count", verdict);
    // The broker serves the next connection.
    let mut conn = Conn::open(&broker);
    let created = conn.ask_old(19, 0, create_topics(0, &[("truth", 1, &[])], false));
    assert_eq!(topics(created), vec![("truth".to_string(), 0)]);
}
