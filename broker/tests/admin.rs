//! Topic administration and the errors clients expect: CreateTopics, DeleteTopics,
//! CreatePartitions, DescribeConfigs, IncrementalAlterConfigs, MESSAGE_TOO_LARGE.

mod common;

use std::time::Duration;

use common::{
    admin, admin_options, block_on, consume_exactly, consumer, create_topic,
    describe_topic_configs, flush, incremental_alter_config, producer, send, topic_names,
    wait_for_topic, Broker,
};
use rdkafka::admin::{AdminClient, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::Offset;

fn create(
    admin: &AdminClient<DefaultClientContext>,
    topic: &NewTopic<'_>,
) -> Result<(), RDKafkaErrorCode> {
    let results = block_on(admin.create_topics([topic], &admin_options()))
        .unwrap_or_else(|e| panic!("CreateTopics request for {}: {e}", topic.name));
    assert_eq!(results.len(), 1);
    results[0].clone().map(|_| ()).map_err(|(_, code)| code)
}

fn topic(name: &str, partitions: i32) -> NewTopic<'_> {
    NewTopic::new(name, partitions, TopicReplication::Fixed(1))
}

#[test]
fn given_invalid_topic_names_when_created_should_fail_with_invalid_topic_exception() {
    let broker = Broker::start();
    let admin = admin(&broker.bootstrap());
    let too_long = "a".repeat(250);
    let bad_names = [
        "bad name",
        "a/b",
        "..",
        ".",
        "tópico",
        "colon:topic",
        "star*",
        too_long.as_str(),
    ];
    for name in bad_names {
        assert_eq!(
            create(&admin, &topic(name, 1)),
            Err(RDKafkaErrorCode::InvalidTopic),
            "CreateTopics {name:?}"
        );
    }
    // 249 characters is the longest legal name, and the legal alphabet is accepted.
    let longest = "b".repeat(249);
    assert_eq!(
        create(&admin, &topic(&longest, 1)),
        Ok(()),
        "a 249-character name"
    );
    assert_eq!(
        create(&admin, &topic("Legal.name_with-all.chars-09", 1)),
        Ok(())
    );
    let names = topic_names(&broker.bootstrap());
    for name in bad_names {
        assert!(
            !names.iter().any(|n| n == name),
            "invalid topic {name:?} exists in metadata"
        );
    }
    assert!(names.contains(&longest));
}

#[test]
fn given_existing_topic_when_created_again_should_fail_with_topic_already_exists() {
    let broker = Broker::start();
    let admin = admin(&broker.bootstrap());
    assert_eq!(create(&admin, &topic("dup", 3)), Ok(()));
    assert_eq!(
        create(&admin, &topic("dup", 3)),
        Err(RDKafkaErrorCode::TopicAlreadyExists)
    );
    assert_eq!(
        create(&admin, &topic("dup", 5)),
        Err(RDKafkaErrorCode::TopicAlreadyExists)
    );
    // The first definition stands.
    wait_for_topic(&broker.bootstrap(), "dup", 3);
}

#[test]
fn given_bad_partition_counts_and_configs_when_created_should_fail_with_kafka_errors() {
    let broker = Broker::start();
    let admin = admin(&broker.bootstrap());
    assert_eq!(
        create(&admin, &topic("zero-partitions", 0)),
        Err(RDKafkaErrorCode::InvalidPartitions)
    );
    assert_eq!(
        create(
            &admin,
            &topic("bad-config", 1).set("retention.ms", "not-a-number")
        ),
        Err(RDKafkaErrorCode::InvalidConfig)
    );
    assert_eq!(
        create(
            &admin,
            &topic("unknown-config", 1).set("no.such.setting", "1")
        ),
        Err(RDKafkaErrorCode::InvalidConfig)
    );
    let names = topic_names(&broker.bootstrap());
    for name in ["zero-partitions", "bad-config", "unknown-config"] {
        assert!(
            !names.iter().any(|n| n == name),
            "{name} must not have been created"
        );
    }
}

#[test]
fn given_validate_only_when_creating_topic_should_not_create_it() {
    let broker = Broker::start();
    let admin = admin(&broker.bootstrap());
    let options = admin_options().validate_only(true);
    let results =
        block_on(admin.create_topics([&topic("dry-run", 2)], &options)).expect("CreateTopics");
    assert_eq!(
        results[0],
        Ok("dry-run".to_string()),
        "a valid topic validates"
    );
    let results =
        block_on(admin.create_topics([&topic("dry run", 2)], &options)).expect("CreateTopics");
    assert_eq!(
        results[0],
        Err(("dry run".to_string(), RDKafkaErrorCode::InvalidTopic))
    );
    assert!(!topic_names(&broker.bootstrap())
        .iter()
        .any(|n| n == "dry-run"));
}

#[test]
fn given_topic_with_small_max_message_bytes_when_larger_record_produced_should_fail_with_message_too_large(
) {
    let broker = Broker::start();
    let name = "small-messages";
    create_topic(
        &broker.bootstrap(),
        name,
        1,
        &[("max.message.bytes", "10000")],
    );
    // The client allows far more, so the record reaches the broker and the broker refuses it.
    let (producer, log) = producer(
        &broker.bootstrap(),
        &[
            ("message.max.bytes", "2000000"),
            ("compression.type", "none"),
            ("linger.ms", "0"),
        ],
    );
    let big: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    send(
        &producer,
        BaseRecord::<str, _, usize>::with_opaque_to(name, 1)
            .partition(0)
            .payload(&big),
    )
    .expect("queue the big record");
    flush(&producer);
    let failed = log.failed();
    assert_eq!(
        failed.len(),
        1,
        "the big record must fail; acked: {:?}",
        log.acked()
    );
    assert_eq!(
        failed[0].1,
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)
    );

    // A small record on the same topic is fine, and the big one was not stored.
    send(
        &producer,
        BaseRecord::<str, _, usize>::with_opaque_to(name, 2)
            .partition(0)
            .payload("small"),
    )
    .expect("queue");
    flush(&producer);
    let acked = log.acked();
    assert_eq!(
        acked.len(),
        1,
        "the small record must be acknowledged: {:?}",
        log.failed()
    );
    assert_eq!(acked[0].offset, 0, "the refused record took no offset");
}

#[test]
fn given_topic_with_records_when_deleted_should_disappear_and_delete_again_should_fail() {
    let broker = Broker::start();
    let name = "doomed";
    create_topic(&broker.bootstrap(), name, 2, &[]);
    let (producer, log) = producer(&broker.bootstrap(), &[]);
    send(
        &producer,
        BaseRecord::with_opaque_to(name, 0).key("k").payload("v"),
    )
    .expect("queue");
    flush(&producer);
    assert_eq!(log.acked_count(), 1);
    drop(producer);

    let admin = admin(&broker.bootstrap());
    let results = block_on(admin.delete_topics(&[name], &admin_options())).expect("DeleteTopics");
    assert_eq!(results, vec![Ok(name.to_string())]);
    assert!(
        !topic_names(&broker.bootstrap()).iter().any(|n| n == name),
        "deleted topic still listed"
    );
    let results = block_on(admin.delete_topics(&[name], &admin_options())).expect("DeleteTopics");
    assert_eq!(
        results,
        vec![Err((
            name.to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
    let results =
        block_on(admin.delete_topics(&["never-existed"], &admin_options())).expect("DeleteTopics");
    assert_eq!(
        results,
        vec![Err((
            "never-existed".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    // The partition directories go away (Kafka may rename them first; none may stay as they were).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while broker.partition_dir(name, 0).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !broker.partition_dir(name, 0).exists(),
        "the deleted partition's directory stays"
    );

    // The name can be used again, from offset 0.
    create_topic(&broker.bootstrap(), name, 1, &[]);
    let reader = consumer(&broker.bootstrap(), &[]);
    assert_eq!(
        common::watermarks(&reader, name, 0),
        (0, 0),
        "a re-created topic starts empty"
    );
}

#[test]
fn given_topic_when_partitions_added_should_serve_the_new_ones_and_refuse_shrinking() {
    let broker = Broker::start();
    let name = "growing";
    create_topic(&broker.bootstrap(), name, 2, &[]);
    let admin = admin(&broker.bootstrap());
    let results =
        block_on(admin.create_partitions([&NewPartitions::new(name, 5)], &admin_options()))
            .expect("CreatePartitions");
    assert_eq!(results, vec![Ok(name.to_string())]);
    wait_for_topic(&broker.bootstrap(), name, 5);

    let results =
        block_on(admin.create_partitions([&NewPartitions::new(name, 3)], &admin_options()))
            .expect("CreatePartitions");
    assert_eq!(
        results,
        vec![Err((name.to_string(), RDKafkaErrorCode::InvalidPartitions))]
    );
    let results = block_on(
        admin.create_partitions([&NewPartitions::new("no-such-topic", 3)], &admin_options()),
    )
    .expect("CreatePartitions");
    assert_eq!(
        results,
        vec![Err((
            "no-such-topic".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    let (producer, log) = producer(&broker.bootstrap(), &[]);
    send(
        &producer,
        BaseRecord::with_opaque_to(name, 0)
            .partition(4)
            .key("k")
            .payload("in new partition"),
    )
    .expect("queue");
    flush(&producer);
    assert_eq!(
        log.acked_count(),
        1,
        "produce to partition 4: {:?}",
        log.failed()
    );
    let reader = consumer(&broker.bootstrap(), &[]);
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(name, 4, Offset::Beginning)
        .expect("add partition");
    rdkafka::consumer::Consumer::assign(&reader, &list).expect("assign");
    let got = consume_exactly(&reader, 1, Duration::from_secs(30));
    assert_eq!(got[0].payload(), Some(&b"in new partition"[..]));
}

#[test]
fn given_topic_with_configs_when_described_and_altered_should_report_the_new_values() {
    let broker = Broker::start();
    let name = "configured";
    create_topic(
        &broker.bootstrap(),
        name,
        1,
        &[("retention.ms", "123456789"), ("cleanup.policy", "delete")],
    );

    let configs = describe_topic_configs(&broker.bootstrap(), name);
    assert_eq!(
        configs.get("retention.ms"),
        Some(&Some("123456789".to_string())),
        "configs: {configs:?}"
    );
    assert_eq!(
        configs.get("cleanup.policy"),
        Some(&Some("delete".to_string()))
    );
    // Defaults are described too.
    for key in [
        "retention.bytes",
        "segment.bytes",
        "segment.ms",
        "max.message.bytes",
        "message.timestamp.type",
        "flush.ms",
    ] {
        assert!(
            matches!(configs.get(key), Some(Some(_))),
            "DescribeConfigs of {name} lacks {key}: {configs:?}"
        );
    }
    assert_eq!(
        configs.get("retention.bytes"),
        Some(&Some("-1".to_string())),
        "default retention.bytes"
    );

    let admin = admin(&broker.bootstrap());
    let code = incremental_alter_config(
        &admin,
        name,
        &[("retention.ms", "3600000"), ("segment.bytes", "2097152")],
    );
    assert_eq!(
        code,
        RDKafkaErrorCode::NoError,
        "IncrementalAlterConfigs SET"
    );
    let configs = describe_topic_configs(&broker.bootstrap(), name);
    assert_eq!(
        configs.get("retention.ms"),
        Some(&Some("3600000".to_string()))
    );
    assert_eq!(
        configs.get("segment.bytes"),
        Some(&Some("2097152".to_string()))
    );

    let code = incremental_alter_config(&admin, name, &[("retention.ms", "soon")]);
    assert_eq!(
        code,
        RDKafkaErrorCode::InvalidConfig,
        "a bad value is refused"
    );
    let code = incremental_alter_config(&admin, "no-such-topic", &[("retention.ms", "1000")]);
    assert_eq!(
        code,
        RDKafkaErrorCode::UnknownTopicOrPartition,
        "altering a missing topic"
    );
    let configs = describe_topic_configs(&broker.bootstrap(), name);
    assert_eq!(
        configs.get("retention.ms"),
        Some(&Some("3600000".to_string())),
        "a refused alter changes nothing"
    );

    // The broker's own configs can be described.
    let results =
        block_on(admin.describe_configs([&ResourceSpecifier::Broker(0)], &admin_options()))
            .expect("DescribeConfigs broker 0");
    let broker_configs = results[0].as_ref().expect("broker 0 described");
    assert!(
        broker_configs
            .entries
            .iter()
            .any(|e| e.name == "log.retention.check.interval.ms"),
        "broker configs: {:?}",
        broker_configs
            .entries
            .iter()
            .map(|e| &e.name)
            .collect::<Vec<_>>()
    );
}

#[test]
fn given_records_when_deleted_before_an_offset_should_move_the_log_start_offset() {
    let broker = Broker::start();
    let name = "trimmed";
    create_topic(&broker.bootstrap(), name, 1, &[]);
    let (producer, log) = producer(&broker.bootstrap(), &[]);
    for id in 0..100usize {
        let value = format!("record {id}");
        send(
            &producer,
            BaseRecord::with_opaque_to(name, id)
                .partition(0)
                .key("k")
                .payload(&value),
        )
        .expect("queue");
    }
    flush(&producer);
    assert_eq!(log.acked_count(), 100);

    let admin = admin(&broker.bootstrap());
    let mut before = rdkafka::TopicPartitionList::new();
    before
        .add_partition_offset(name, 0, Offset::Offset(40))
        .expect("add partition");
    let result = block_on(admin.delete_records(&before, &admin_options())).expect("DeleteRecords");
    let element = result
        .find_partition(name, 0)
        .expect("partition 0 in the result");
    assert_eq!(element.error(), Ok(()), "DeleteRecords before 40");
    assert_eq!(
        element.offset(),
        Offset::Offset(40),
        "the new low watermark"
    );

    let reader = consumer(&broker.bootstrap(), &[]);
    assert_eq!(common::watermarks(&reader, name, 0), (40, 100));
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(name, 0, Offset::Beginning)
        .expect("add partition");
    rdkafka::consumer::Consumer::assign(&reader, &list).expect("assign");
    let got = consume_exactly(&reader, 60, Duration::from_secs(30));
    assert_eq!(
        got[0].offset(),
        40,
        "reading from the beginning starts at the new log start"
    );
    assert_eq!(got[0].payload(), Some(&b"record 40"[..]));

    // Past the high watermark: OFFSET_OUT_OF_RANGE for that partition, nothing moves.
    let mut past = rdkafka::TopicPartitionList::new();
    past.add_partition_offset(name, 0, Offset::Offset(500))
        .expect("add partition");
    let result = block_on(admin.delete_records(&past, &admin_options()));
    let refused = match result {
        Err(_) => true,
        Ok(list) => list
            .find_partition(name, 0)
            .expect("partition 0")
            .error()
            .is_err(),
    };
    assert!(
        refused,
        "DeleteRecords past the high watermark must be refused"
    );
    assert_eq!(common::watermarks(&reader, name, 0), (40, 100));
}

#[test]
fn given_a_compact_only_topic_when_records_deleted_should_refuse_with_policy_violation() {
    let broker = Broker::start();
    let name = "compacted";
    create_topic(
        &broker.bootstrap(),
        name,
        1,
        &[("cleanup.policy", "compact")],
    );
    let (producer, log) = producer(&broker.bootstrap(), &[]);
    for id in 0..10usize {
        send(
            &producer,
            BaseRecord::with_opaque_to(name, id)
                .partition(0)
                .key("k")
                .payload("v"),
        )
        .expect("queue");
    }
    flush(&producer);
    assert_eq!(log.acked_count(), 10);
    let mut before = rdkafka::TopicPartitionList::new();
    before
        .add_partition_offset(name, 0, Offset::Offset(5))
        .expect("add partition");
    let admin = admin(&broker.bootstrap());
    let result = block_on(admin.delete_records(&before, &admin_options())).expect("DeleteRecords");
    let element = result.find_partition(name, 0).expect("partition 0");
    assert_eq!(
        element.error(),
        Err(KafkaError::OffsetFetch(RDKafkaErrorCode::PolicyViolation)),
        "DeleteRecords on a compact-only topic"
    );
    let reader = consumer(&broker.bootstrap(), &[]);
    assert_eq!(common::watermarks(&reader, name, 0), (0, 10));
}

#[test]
fn given_topic_overrides_when_altered_with_the_legacy_api_should_replace_the_whole_set() {
    let broker = Broker::start();
    let name = "legacy-alter";
    create_topic(
        &broker.bootstrap(),
        name,
        1,
        &[("retention.ms", "123456789"), ("segment.bytes", "2097152")],
    );
    // rdkafka's alter_configs sends AlterConfigs (API key 33), not the incremental API.
    let admin = admin(&broker.bootstrap());
    let alter = rdkafka::admin::AlterConfig::new(ResourceSpecifier::Topic(name))
        .set("retention.bytes", "7340032");
    let results =
        block_on(admin.alter_configs([&alter], &admin_options())).expect("AlterConfigs request");
    assert!(results[0].is_ok(), "AlterConfigs: {results:?}");

    let configs = describe_topic_configs(&broker.bootstrap(), name);
    assert_eq!(
        configs.get("retention.bytes"),
        Some(&Some("7340032".to_string()))
    );
    // Left out of the request: back to the broker defaults.
    assert_eq!(
        configs.get("retention.ms"),
        Some(&Some("604800000".to_string())),
        "{configs:?}"
    );
    assert_eq!(
        configs.get("segment.bytes"),
        Some(&Some("1073741824".to_string())),
        "{configs:?}"
    );

    let bad = rdkafka::admin::AlterConfig::new(ResourceSpecifier::Topic(name))
        .set("retention.bytes", "lots");
    // The rdkafka crate reports every resource as Ok whatever its error code, so what counts
    // is that the refused value was not stored.
    block_on(admin.alter_configs([&bad], &admin_options())).expect("AlterConfigs request");
    let configs = describe_topic_configs(&broker.bootstrap(), name);
    assert_eq!(
        configs.get("retention.bytes"),
        Some(&Some("7340032".to_string()))
    );
}
