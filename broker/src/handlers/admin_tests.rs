//! The admin handlers end to end on a real shard (a glommio executor, a temporary data dir):
//! every advertised version encodes and decodes, and every Kafka error a client expects comes
//! back as its code.

use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use odradek_net::codec::response_header_version;
use odradek_net::Peer;
use odradek_storage::{ShardStorage, ShardStorageConfig};

use super::util::{str_bytes, topic_name};
use super::{dispatch, entry};
use crate::config::BrokerConfig;
use crate::ids::{NodeId, ShardId};
use crate::metadata::{BrokerEndpoint, MetadataSnapshot};
use crate::session::{ConnectionId, RequestContext, Session};
use crate::shard::ShardCtx;

/// Runs `test` on a one-shard broker context inside a glommio executor.
fn on_shard<F, Fut>(auto_create: bool, test: F)
where
    F: FnOnce(Rc<ShardCtx>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    odradek_storage::testing::run(move || async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = one_shard_ctx(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            auto_create_topics_enable: auto_create,
            num_partitions: 3,
            ..BrokerConfig::default()
        })
        .await;
        test(ctx).await;
    });
}

/// A one-shard broker context over `config`, with no topics (call it on an executor; the data
/// dir must outlive it). Shared by the wire tests of other modules.
/// Its metadata quorum is a one-voter quorum in the data dir, started and registered with.
pub(crate) async fn one_shard_ctx(config: BrokerConfig) -> Rc<ShardCtx> {
    let endpoint = BrokerEndpoint {
        node_id: NodeId(config.node_id),
        host: "127.0.0.1".into(),
        port: 9092,
        rack: None,
    };
    let registry = crate::registry::Registry {
        cluster_id: "cluster".into(),
        topics: Default::default(),
        broker_configs: Default::default(),
    };
    let boot = crate::quorum::boot::open_blocking(&config.data_dir, config.node_id, &[], &registry)
        .expect("the quorum opens");
    let config = Arc::new(config);
    let snapshot = MetadataSnapshot::of_image(
        0,
        endpoint,
        "cluster".into(),
        None,
        &boot.image,
        Arc::clone(&config),
    );
    let storage = ShardStorage::new(ShardStorageConfig::default());
    let ctx = ShardCtx::new(
        ShardId(0),
        1,
        config,
        Arc::new(snapshot),
        storage,
        None,
        Arc::default(),
    );
    let start = crate::quorum::start::QuorumStart {
        boot,
        stop: Arc::new(AtomicBool::new(false)),
        failed: Arc::new(AtomicBool::new(false)),
        producer_id_floor: 0,
        handed_over: Arc::new(AtomicBool::new(false)),
    };
    crate::quorum::start::start(&ctx, start)
        .await
        .expect("the broker registers");
    ctx
}

/// Encodes `request` at `version`, dispatches it, decodes the response (checking the header and
/// that nothing trails the body). Shared by the wire tests of other modules.
pub(crate) async fn call<Req: Encodable, Resp: Decodable>(
    ctx: &Rc<ShardCtx>,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    let mut body = BytesMut::new();
    request
        .encode(&mut body, version)
        .unwrap_or_else(|e| panic!("encode {key:?} v{version}: {e}"));
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(5)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")));
    let frame = dispatch(request_context(ctx, header), key, body.freeze())
        .await
        .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"))
        .expect("a response");
    let frame = Bytes::from(frame.concat());
    let mut buf = frame.slice(4..);
    let header =
        ResponseHeader::decode(&mut buf, response_header_version(key, version)).expect("header");
    assert_eq!(header.correlation_id, 5);
    let response = Resp::decode(&mut buf, version).expect("decode response");
    assert!(!buf.has_remaining(), "{key:?} v{version}: trailing bytes");
    response
}

/// The context of a request with `header` on a connection from 127.0.0.1.
pub(crate) fn request_context(ctx: &Rc<ShardCtx>, header: RequestHeader) -> RequestContext {
    let peer = Peer {
        addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 40_000))),
        listener: Rc::from("PLAINTEXT"),
    };
    RequestContext {
        shard: Rc::clone(ctx),
        session: Rc::new(Session::new(ConnectionId(1), peer)),
        header,
    }
}

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (min, max) = entry(key).expect("served").versions;
    min.max(key.valid_versions().min)..=max
}

fn creatable(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(str_bytes(k))
                .with_value(Some(str_bytes(v)))
        })
        .collect();
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(configs)
}

async fn create(
    ctx: &Rc<ShardCtx>,
    version: i16,
    topic: CreatableTopic,
    validate_only: bool,
) -> CreatableTopicResult {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_validate_only(validate_only);
    let response: CreateTopicsResponse = call(ctx, ApiKey::CreateTopics, version, &request).await;
    response.topics.into_iter().next().expect("one result")
}

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;

#[test]
fn create_topics_every_version_and_error() {
    on_shard(false, |ctx| async move {
        for version in versions(ApiKey::CreateTopics) {
            let name = format!("t-v{version}");
            let ok = create(
                &ctx,
                version,
                creatable(&name, 2, &[("retention.ms", "1000")]),
                false,
            )
            .await;
            assert_eq!(ok.error_code, 0, "v{version}: {:?}", ok.error_message);
            let codes = [
                (creatable(&name, 2, &[]), ResponseError::TopicAlreadyExists),
                (
                    creatable("bad name", 1, &[]),
                    ResponseError::InvalidTopicException,
                ),
                (
                    creatable("..", 1, &[]),
                    ResponseError::InvalidTopicException,
                ),
                (creatable("zero", 0, &[]), ResponseError::InvalidPartitions),
                (
                    creatable("badcfg", 1, &[("retention.ms", "soon")]),
                    ResponseError::InvalidConfig,
                ),
                (
                    creatable("unknowncfg", 1, &[("no.such", "1")]),
                    ResponseError::InvalidConfig,
                ),
                (
                    creatable("rf", 1, &[]).with_replication_factor(3),
                    ResponseError::InvalidReplicationFactor,
                ),
            ];
            for (topic, expected) in codes {
                let got = create(&ctx, version, topic, false).await;
                assert_eq!(got.error_code, expected.code(), "v{version} {:?}", got.name);
            }
            let dry = create(
                &ctx,
                version,
                creatable(&format!("dry-v{version}"), 1, &[]),
                true,
            )
            .await;
            assert_eq!(dry.error_code, 0);
        }
        let snapshot = ctx.metadata();
        assert!(
            snapshot.topics.keys().all(|n| n.starts_with("t-v")),
            "{:?}",
            snapshot.topics.keys()
        );
        assert_eq!(snapshot.topic("t-v7").map(|t| t.partitions), Some(2));
        let default_partitions = create(&ctx, 7, creatable("dflt", -1, &[]), false).await;
        assert_eq!(default_partitions.num_partitions, 3, "num.partitions");
    });
}

#[test]
fn metadata_every_version() {
    on_shard(false, |ctx| async move {
        assert_eq!(
            create(&ctx, 7, creatable("orders", 4, &[]), false)
                .await
                .error_code,
            0
        );
        for version in versions(ApiKey::Metadata) {
            let wanted = ["orders", "missing", "bad name"]
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect();
            let request = MetadataRequest::default().with_topics(Some(wanted));
            let response: MetadataResponse = call(&ctx, ApiKey::Metadata, version, &request).await;
            assert_eq!(response.brokers.len(), 1);
            assert_eq!(response.brokers[0].port, 9092);
            let codes: Vec<i16> = response.topics.iter().map(|t| t.error_code).collect();
            let expected = [
                0,
                ResponseError::UnknownTopicOrPartition.code(),
                ResponseError::InvalidTopicException.code(),
            ];
            assert_eq!(codes, expected, "v{version}");
            assert_eq!(response.topics[0].partitions.len(), 4);
            // Every topic: null list (v1+) or empty list (v0).
            let all = if version == 0 {
                MetadataRequest::default().with_topics(Some(vec![]))
            } else {
                MetadataRequest::default().with_topics(None)
            };
            let response: MetadataResponse = call(&ctx, ApiKey::Metadata, version, &all).await;
            assert_eq!(response.topics.len(), 1, "v{version}");
        }
    });
}

#[test]
fn metadata_auto_creates_when_allowed_and_asked() {
    on_shard(true, |ctx| async move {
        let wanted = |n: &str| {
            Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(n)))
            ])
        };
        let refused = MetadataRequest::default()
            .with_topics(wanted("not-asked"))
            .with_allow_auto_topic_creation(false);
        let response: MetadataResponse = call(&ctx, ApiKey::Metadata, 9, &refused).await;
        assert_eq!(
            response.topics[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        let asked = MetadataRequest::default()
            .with_topics(wanted("auto"))
            .with_allow_auto_topic_creation(true);
        let response: MetadataResponse = call(&ctx, ApiKey::Metadata, 12, &asked).await;
        assert_eq!(response.topics[0].error_code, 0);
        assert_eq!(response.topics[0].partitions.len(), 3);
        assert!(!response.topics[0].topic_id.is_nil());
        assert!(ctx.metadata().topic("auto").is_some());
    });
}

#[test]
fn delete_topics_and_create_partitions_every_version() {
    on_shard(false, |ctx| async move {
        for version in versions(ApiKey::DeleteTopics) {
            let name = format!("del-v{version}");
            let created = create(&ctx, 7, creatable(&name, 1, &[]), false).await;
            let request = if version >= 6 {
                let by_id = delete_topics_request::DeleteTopicState::default()
                    .with_topic_id(created.topic_id);
                let missing = delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(topic_name("nope")));
                DeleteTopicsRequest::default().with_topics(vec![by_id, missing])
            } else {
                DeleteTopicsRequest::default()
                    .with_topic_names(vec![topic_name(&name), topic_name("nope")])
            };
            let response: DeleteTopicsResponse =
                call(&ctx, ApiKey::DeleteTopics, version, &request).await;
            let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
            assert_eq!(
                codes,
                [0, ResponseError::UnknownTopicOrPartition.code()],
                "v{version}"
            );
            assert!(ctx.metadata().topic(&name).is_none());
            assert!(
                !ctx.config.data_dir.join(format!("{name}-0")).exists(),
                "v{version}: partition dir stays"
            );
        }
        create(&ctx, 7, creatable("grow", 1, &[]), false).await;
        for version in versions(ApiKey::CreatePartitions) {
            let count = 2 + i32::from(version);
            let topics = vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic_name("grow"))
                    .with_count(count),
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic_name("nope"))
                    .with_count(2),
            ];
            let request = CreatePartitionsRequest::default().with_topics(topics);
            let response: CreatePartitionsResponse =
                call(&ctx, ApiKey::CreatePartitions, version, &request).await;
            let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
            assert_eq!(
                codes,
                [0, ResponseError::UnknownTopicOrPartition.code()],
                "v{version}"
            );
            assert_eq!(
                ctx.metadata().topic("grow").map(|t| t.partitions),
                Some(count)
            );
        }
        let shrink = vec![create_partitions_request::CreatePartitionsTopic::default()
            .with_name(topic_name("grow"))
            .with_count(1)];
        let response: CreatePartitionsResponse = call(
            &ctx,
            ApiKey::CreatePartitions,
            3,
            &CreatePartitionsRequest::default().with_topics(shrink),
        )
        .await;
        assert_eq!(
            response.results[0].error_code,
            ResponseError::InvalidPartitions.code()
        );
    });
}

fn describe_request(resource_type: i8, name: &str) -> DescribeConfigsRequest {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_configuration_keys(None);
    DescribeConfigsRequest::default()
        .with_resources(vec![resource])
        .with_include_synonyms(true)
}

fn value_of(response: &DescribeConfigsResponse, name: &str) -> Option<String> {
    let configs = &response.results[0].configs;
    configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
}

#[test]
fn configs_describe_and_alter_every_version() {
    on_shard(false, |ctx| async move {
        create(
            &ctx,
            7,
            creatable("cfg", 1, &[("retention.ms", "1234")]),
            false,
        )
        .await;
        for version in versions(ApiKey::DescribeConfigs) {
            let topic: DescribeConfigsResponse = call(
                &ctx,
                ApiKey::DescribeConfigs,
                version,
                &describe_request(2, "cfg"),
            )
            .await;
            assert_eq!(topic.results[0].error_code, 0);
            assert_eq!(value_of(&topic, "retention.ms").as_deref(), Some("1234"));
            assert_eq!(value_of(&topic, "retention.bytes").as_deref(), Some("-1"));
            let broker: DescribeConfigsResponse = call(
                &ctx,
                ApiKey::DescribeConfigs,
                version,
                &describe_request(4, "0"),
            )
            .await;
            assert_eq!(value_of(&broker, "num.partitions").as_deref(), Some("3"));
            let missing: DescribeConfigsResponse = call(
                &ctx,
                ApiKey::DescribeConfigs,
                version,
                &describe_request(2, "nope"),
            )
            .await;
            assert_eq!(
                missing.results[0].error_code,
                ResponseError::UnknownTopicOrPartition.code()
            );
        }
        for version in versions(ApiKey::IncrementalAlterConfigs) {
            let alter = |name: &str, key: &str, value: &str| {
                let op = AlterableConfig::default()
                    .with_name(str_bytes(key))
                    .with_value(Some(str_bytes(value)));
                let resource = AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(str_bytes(name))
                    .with_configs(vec![op]);
                IncrementalAlterConfigsRequest::default().with_resources(vec![resource])
            };
            let ok: IncrementalAlterConfigsResponse = call(
                &ctx,
                ApiKey::IncrementalAlterConfigs,
                version,
                &alter("cfg", "segment.bytes", "2097152"),
            )
            .await;
            assert_eq!(
                ok.responses[0].error_code, 0,
                "{:?}",
                ok.responses[0].error_message
            );
            let bad: IncrementalAlterConfigsResponse = call(
                &ctx,
                ApiKey::IncrementalAlterConfigs,
                version,
                &alter("cfg", "retention.ms", "soon"),
            )
            .await;
            assert_eq!(
                bad.responses[0].error_code,
                ResponseError::InvalidConfig.code()
            );
            let missing: IncrementalAlterConfigsResponse = call(
                &ctx,
                ApiKey::IncrementalAlterConfigs,
                version,
                &alter("nope", "retention.ms", "1"),
            )
            .await;
            assert_eq!(
                missing.responses[0].error_code,
                ResponseError::UnknownTopicOrPartition.code()
            );
        }
        let topic: DescribeConfigsResponse = call(
            &ctx,
            ApiKey::DescribeConfigs,
            4,
            &describe_request(2, "cfg"),
        )
        .await;
        assert_eq!(
            value_of(&topic, "segment.bytes").as_deref(),
            Some("2097152")
        );
        assert_eq!(
            value_of(&topic, "retention.ms").as_deref(),
            Some("1234"),
            "other overrides stay"
        );
    });
}

#[test]
fn describe_cluster_every_version() {
    on_shard(false, |ctx| async move {
        for version in versions(ApiKey::DescribeCluster) {
            let request = DescribeClusterRequest::default().with_endpoint_type(1);
            let response: DescribeClusterResponse =
                call(&ctx, ApiKey::DescribeCluster, version, &request).await;
            assert_eq!(response.error_code, 0);
            assert_eq!(response.brokers.len(), 1);
            assert_eq!(response.cluster_id.as_str(), "cluster");
        }
    });
}

fn alter_broker(key: &str, value: &str) -> IncrementalAlterConfigsRequest {
    let op = AlterableConfig::default()
        .with_name(str_bytes(key))
        .with_value(Some(str_bytes(value)));
    let resource = AlterConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(str_bytes(""))
        .with_configs(vec![op]);
    IncrementalAlterConfigsRequest::default().with_resources(vec![resource])
}

#[test]
fn broker_defaults_change_at_run_time() {
    on_shard(false, |ctx| async move {
        create(&ctx, 7, creatable("plain", 1, &[]), false).await;
        let key = ApiKey::IncrementalAlterConfigs;
        let ok: IncrementalAlterConfigsResponse =
            call(&ctx, key, 1, &alter_broker("log.retention.ms", "5000")).await;
        assert_eq!(
            ok.responses[0].error_code, 0,
            "{:?}",
            ok.responses[0].error_message
        );
        for (name, value) in [("num.partitions", "7"), ("log.retention.ms", "soon")] {
            let refused: IncrementalAlterConfigsResponse =
                call(&ctx, key, 1, &alter_broker(name, value)).await;
            assert_eq!(
                refused.responses[0].error_code,
                ResponseError::InvalidConfig.code(),
                "{name}"
            );
        }
        let broker: DescribeConfigsResponse =
            call(&ctx, ApiKey::DescribeConfigs, 4, &describe_request(4, "")).await;
        assert_eq!(
            value_of(&broker, "log.retention.ms").as_deref(),
            Some("5000")
        );
        let entry = broker.results[0]
            .configs
            .iter()
            .find(|c| c.name.as_str() == "log.retention.ms");
        assert_eq!(
            entry.map(|c| (c.config_source, c.read_only)),
            Some((3, false))
        );
        let topic: DescribeConfigsResponse = call(
            &ctx,
            ApiKey::DescribeConfigs,
            4,
            &describe_request(2, "plain"),
        )
        .await;
        assert_eq!(
            value_of(&topic, "retention.ms").as_deref(),
            Some("5000"),
            "the topic default follows"
        );
        let log = ctx
            .partitions
            .borrow()
            .values()
            .next()
            .cloned()
            .expect("the partition");
        assert_eq!(
            log.config().retention_ms,
            5000,
            "the open log got the new default"
        );
    });
}
