//! The command line and settings: `--help`, `--config FILE`, `--set`, refusal of unknown or bad
//! settings, and the auto-creation settings.

mod common;

use std::time::Duration;

use common::{consumer, describe_cluster, flush, producer, run_to_exit, send, topic_names, Broker};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::BaseRecord;

#[test]
fn given_help_flag_when_run_should_list_the_flags_and_exit_zero() {
    let (status, stdout, stderr) = run_to_exit(&["--help"]);
    assert!(
        status.success(),
        "odradek --help exited with {status}; stderr: {stderr}"
    );
    for flag in [
        "--listen",
        "--advertise",
        "--data-dir",
        "--cores",
        "--config",
        "--set",
    ] {
        assert!(
            stdout.contains(flag),
            "odradek --help does not mention {flag}:\n{stdout}"
        );
    }
}

/// Runs odradek with `args` on a fresh data directory; it must refuse to start, naming `name`.
fn assert_start_refused(args: &[&str], name: &str) {
    let data_dir = tempfile::tempdir().expect("temporary data directory");
    let data = data_dir.path().to_str().expect("UTF-8 path");
    let mut full = vec![
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--cores",
        "1",
    ];
    full.extend_from_slice(args);
    let (status, _, stderr) = run_to_exit(&full);
    assert!(
        !status.success(),
        "odradek {args:?} must refuse to start, exited with {status}"
    );
    assert!(
        stderr.contains(name),
        "odradek {args:?}: the message must name {name:?}; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("odradek listening on"),
        "odradek {args:?} listened before refusing:\n{stderr}"
    );
}

const KAFKA_KRAFT_SINGLE_NODE: &str = "process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,\
SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
";

/// Kafka's KRaft settings: a node that is its own one-voter quorum (Kafka's single-node
/// `config/kraft/server.properties`) runs; a member of a cluster whose settings do not fit
/// together (not a voter, no controller listener or one off its voter port, a broker-only or
/// controller-only node, a TLS listener) is refused, saying how to fix it.
#[test]
fn given_cluster_settings_when_starting_should_run_one_voter_and_refuse_a_misfit_member() {
    let one_voter = [("process.roles", "broker,controller"), ("node.id", "1")];
    let mut settings = one_voter.to_vec();
    settings.push(("controller.quorum.voters", "1@localhost:9093"));
    settings.push(("broker.rack", "rack-a"));
    let mut broker = Broker::start_with(&settings);
    let described = describe_cluster(broker.addr());
    assert_eq!(described.brokers.len(), 1);
    assert_eq!(described.brokers[0].broker_id.0, 1);
    assert_eq!(described.brokers[0].rack.as_deref(), Some("rack-a"));
    broker.stop();

    // Kafka 3.9's single-node `config/kraft/server.properties`, its settings as shipped (the
    // harness's --listen and --data-dir win over its PLAINTEXT listener and log.dirs).
    let dir = tempfile::tempdir().expect("temporary directory");
    let kafka = dir.path().join("server.properties");
    std::fs::write(&kafka, KAFKA_KRAFT_SINGLE_NODE).expect("write server.properties");
    let kafka = kafka.to_str().expect("UTF-8 path");
    let mut broker = Broker::start_with_args(&[], &["--config", kafka]);
    broker.assert_alive();
    broker.stop();

    let voters = "controller.quorum.voters=1@localhost:9093,2@localhost:9094,3@localhost:9095";
    let member = |id: &'static str, listeners: &'static str| {
        ["--set", id, "--set", voters, "--set", listeners]
    };
    assert_start_refused(
        &member("node.id=4", "listeners=PLAINTEXT://:0,CONTROLLER://:9096"),
        "node.id=4 is not among the voters",
    );
    assert_start_refused(
        &member("node.id=2", "listeners=PLAINTEXT://:0"),
        "add CONTROLLER://localhost:9094",
    );
    assert_start_refused(
        &member("node.id=2", "listeners=PLAINTEXT://:0,CONTROLLER://:9099"),
        "gives node 2 port 9094",
    );
    let set = |s: &'static str| ["--set", s];
    assert_start_refused(&set("process.roles=broker"), "no voters to follow");
    assert_start_refused(&set("process.roles=controller"), "no broker follows");
    assert_start_refused(
        &set("listeners=PLAINTEXT://:0,SSL://:9094"),
        "listener SSL is SSL",
    );
    assert_start_refused(
        &set("controller.quorum.voters=1@h"),
        "controller.quorum.voters",
    );
    assert_start_refused(&set("controller.quorum.voters=x@h:1"), "ID@HOST:PORT");
}

#[test]
fn given_unknown_or_bad_settings_when_starting_should_refuse_naming_them() {
    assert_start_refused(&["--set", "no.such.setting=1"], "no.such.setting");
    assert_start_refused(&["--set", "num.partitions=many"], "num.partitions");
    assert_start_refused(&["--set", "log.segment.bytes=-5"], "log.segment.bytes");
    assert_start_refused(
        &["--set", "auto.create.topics.enable=maybe"],
        "auto.create.topics.enable",
    );

    let config_dir = tempfile::tempdir().expect("temporary directory");
    let config = config_dir.path().join("server.properties");
    std::fs::write(&config, "num.partitions=2\nlog.retention.hours.typo=5\n")
        .expect("write config");
    assert_start_refused(
        &["--config", config.to_str().expect("UTF-8")],
        "log.retention.hours.typo",
    );
}

#[test]
fn given_server_properties_file_when_topic_auto_created_should_use_its_num_partitions() {
    let config_dir = tempfile::tempdir().expect("temporary directory");
    let config = config_dir.path().join("server.properties");
    std::fs::write(
        &config,
        "# an operator's server.properties\n\nnum.partitions=4\nauto.create.topics.enable=true\n",
    )
    .expect("write config");
    let broker = Broker::start_with_args(&[], &["--config", config.to_str().expect("UTF-8")]);

    let (producer, log) = producer(&broker.bootstrap(), &[]);
    send(
        &producer,
        BaseRecord::with_opaque_to("auto-created", 0)
            .key("k")
            .payload("v"),
    )
    .expect("queue");
    flush(&producer);
    assert_eq!(
        log.acked_count(),
        1,
        "produce to an auto-created topic: {:?}",
        log.failed()
    );
    common::wait_for_topic(&broker.bootstrap(), "auto-created", 4);
}

#[test]
fn given_set_overriding_the_config_file_when_topic_auto_created_should_use_the_set_value() {
    let config_dir = tempfile::tempdir().expect("temporary directory");
    let config = config_dir.path().join("server.properties");
    std::fs::write(&config, "num.partitions=4\n").expect("write config");
    let broker = Broker::start_with_args(
        &[("num.partitions", "3")],
        &["--config", config.to_str().expect("UTF-8")],
    );
    let (producer, log) = producer(&broker.bootstrap(), &[]);
    send(
        &producer,
        BaseRecord::with_opaque_to("overridden", 0)
            .key("k")
            .payload("v"),
    )
    .expect("queue");
    flush(&producer);
    assert_eq!(
        log.acked_count(),
        1,
        "produce to an auto-created topic: {:?}",
        log.failed()
    );
    common::wait_for_topic(&broker.bootstrap(), "overridden", 3);
}

#[test]
fn given_auto_create_disabled_when_producing_to_unknown_topic_should_fail_and_not_create_it() {
    let broker = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    let (producer, log) = producer(&broker.bootstrap(), &[("message.timeout.ms", "5000")]);
    send(
        &producer,
        BaseRecord::with_opaque_to("not-there", 0)
            .key("k")
            .payload("v"),
    )
    .expect("queue");
    flush(&producer);
    let failed = log.failed();
    assert_eq!(
        failed.len(),
        1,
        "the record must fail; acked: {:?}",
        log.acked()
    );
    assert!(
        matches!(
            failed[0].1,
            KafkaError::MessageProduction(
                RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::MessageTimedOut
            )
        ),
        "unexpected error: {:?}",
        failed[0].1
    );
    assert!(!topic_names(&broker.bootstrap())
        .iter()
        .any(|n| n == "not-there"));

    // A metadata request naming the topic does not create it either.
    let reader = consumer(&broker.bootstrap(), &[("allow.auto.create.topics", "true")]);
    let metadata = reader
        .fetch_metadata(Some("not-there"), Duration::from_secs(10))
        .expect("metadata");
    let topic = metadata.topics().iter().find(|t| t.name() == "not-there");
    assert!(
        topic.is_none_or(|t| t.error().is_some()),
        "metadata shows the topic without an error"
    );
    assert!(!topic_names(&broker.bootstrap())
        .iter()
        .any(|n| n == "not-there"));
}

#[test]
fn given_advertise_flag_when_metadata_asked_should_return_the_advertised_address() {
    // Clients reach the broker through the bootstrap address; Metadata tells them where to go
    // next. 127.0.0.2:9999 only has to appear in the answer, nobody connects to it here.
    let broker = Broker::start_with_args(&[], &["--advertise", "127.0.0.2:9999"]);
    let reader = consumer(&broker.bootstrap(), &[]);
    let metadata = reader
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata over the bootstrap connection");
    let brokers: Vec<(String, i32)> = metadata
        .brokers()
        .iter()
        .map(|b| (b.host().to_string(), b.port()))
        .collect();
    assert_eq!(brokers, vec![("127.0.0.2".to_string(), 9999)]);
    assert_eq!(metadata.brokers()[0].id(), 0, "node id 0 by default");
}

#[test]
fn given_auto_create_enabled_when_a_consumer_asks_metadata_without_allowing_creation_should_not_create(
) {
    let broker = Broker::start();
    // librdkafka consumers send allow_auto_topic_creation=false by default.
    let reader = consumer(
        &broker.bootstrap(),
        &[("allow.auto.create.topics", "false")],
    );
    let metadata = reader
        .fetch_metadata(Some("ghost"), Duration::from_secs(10))
        .expect("metadata");
    let topic = metadata.topics().iter().find(|t| t.name() == "ghost");
    assert!(
        topic.is_none_or(|t| t.error().is_some()),
        "metadata shows ghost without an error"
    );
    assert!(
        !topic_names(&broker.bootstrap())
            .iter()
            .any(|n| n == "ghost"),
        "a metadata request that did not allow creation created the topic"
    );

    // A producer (which allows creation) does create it.
    let (producer, log) = producer(&broker.bootstrap(), &[]);
    send(
        &producer,
        BaseRecord::with_opaque_to("ghost", 0)
            .key("k")
            .payload("boo"),
    )
    .expect("queue");
    flush(&producer);
    assert_eq!(log.acked_count(), 1, "produce: {:?}", log.failed());
    assert!(topic_names(&broker.bootstrap())
        .iter()
        .any(|n| n == "ghost"));
}

#[test]
fn given_a_relative_data_dir_when_producing_acks_all_should_store_across_a_restart() {
    // glommio opens directories with openat(-1, path): relative paths failed every append.
    let mut broker = Broker::start_with_relative_data_dir();
    common::assert_round_trip(&mut broker, "relative", 0);
    broker.stop();
    broker.restart();
    common::assert_round_trip(&mut broker, "relative", 1);
    assert!(
        broker.partition_dir("relative", 0).is_dir(),
        "the partition lives under the relative data directory"
    );
}

#[test]
fn given_a_data_dir_in_use_when_a_second_broker_starts_should_refuse_naming_it() {
    let broker = Broker::start();
    let data = broker.data_dir();
    let (status, _, stderr) = run_to_exit(&[
        "--listen",
        "127.0.0.1:0",
        "--cores",
        "1",
        "--data-dir",
        data.to_str().expect("UTF-8 path"),
    ]);
    assert!(
        !status.success(),
        "a second broker on one data directory started"
    );
    assert!(
        stderr.contains("in use by another odradek"),
        "the refusal must say why; stderr:\n{stderr}"
    );
}

#[test]
fn given_a_data_dir_that_is_a_file_when_starting_should_refuse_saying_so() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write a plain file");
    let (status, _, stderr) = run_to_exit(&[
        "--listen",
        "127.0.0.1:0",
        "--cores",
        "1",
        "--data-dir",
        file.to_str().expect("UTF-8 path"),
    ]);
    assert!(!status.success(), "odradek started on a plain file");
    assert!(
        stderr.contains("not a directory") && !stderr.contains("odradek listening on"),
        "stderr:\n{stderr}"
    );
}
