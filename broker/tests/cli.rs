//! The admin CLI (`odradek topic …`, `odradek group …`) against the real broker: topics round
//! trip, a group made by a librdkafka consumer is listed, described with its lag, reset and
//! deleted; `--json` parses; an unreachable or silent broker is one error line, never a hang.

mod common;

use std::net::TcpListener;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::{consume_exactly, consumer, flush, producer, run_to_exit, send, Broker};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::BaseRecord;
use serde_json::Value;

fn broker() -> Broker {
    Broker::start_with(&[("group.initial.rebalance.delay.ms", "0")])
}

/// Runs `odradek <args> --bootstrap <broker>`.
fn cli(broker: &Broker, args: &[&str]) -> (ExitStatus, String, String) {
    let bootstrap = broker.bootstrap();
    let mut all = args.to_vec();
    all.extend(["--bootstrap", bootstrap.as_str()]);
    run_to_exit(&all)
}

/// Runs a command that must succeed; returns its stdout.
fn ok(broker: &Broker, args: &[&str]) -> String {
    let (status, stdout, stderr) = cli(broker, args);
    assert!(
        status.success(),
        "odradek {args:?} failed with {status}\nstdout: {stdout}\nstderr: {stderr}\n{}",
        broker.log_tail(50)
    );
    stdout
}

/// Runs a command with `--json` that must succeed; returns the parsed output.
fn json(broker: &Broker, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let stdout = ok(broker, &all);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?} --json: {e}\n{stdout}"))
}

/// Runs a command that must fail with one stderr line containing `expected`.
fn fails(broker: &Broker, args: &[&str], expected: &str) {
    let (status, stdout, stderr) = cli(broker, args);
    assert!(!status.success(), "odradek {args:?} succeeded: {stdout}");
    assert_one_error_line(&stderr, expected);
}

fn assert_one_error_line(stderr: &str, expected: &str) {
    assert_eq!(
        stderr.lines().count(),
        1,
        "one stderr line expected: {stderr:?}"
    );
    assert!(stderr.contains(expected), "{expected:?} not in {stderr:?}");
}

fn config_value(describe: &Value, name: &str) -> Option<String> {
    describe["configs"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["value"].as_str().map(str::to_owned))
}

#[test]
fn given_a_broker_when_topics_are_created_altered_and_deleted_should_round_trip() {
    let broker = broker();
    let created = ok(
        &broker,
        &[
            "topic",
            "create",
            "cli-t",
            "--partitions",
            "2",
            "--config",
            "retention.ms=60000",
        ],
    );
    assert!(created.contains("cli-t"), "{created}");

    let list = ok(&broker, &["topic", "list"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("cli-t "))
        .expect("cli-t listed");
    assert_eq!(row.split_whitespace().nth(1), Some("2"), "{list}");

    let text = ok(&broker, &["topic", "describe", "cli-t"]);
    assert!(
        text.contains("PARTITION") && text.contains("retention.ms"),
        "{text}"
    );
    let described = json(&broker, &["topic", "describe", "cli-t"]);
    assert_eq!(described["partitions"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        config_value(&described, "retention.ms").as_deref(),
        Some("60000")
    );

    ok(
        &broker,
        &[
            "topic",
            "alter",
            "cli-t",
            "--partitions",
            "3",
            "--config",
            "retention.ms=120000",
        ],
    );
    let described = json(&broker, &["topic", "describe", "cli-t"]);
    assert_eq!(described["partitions"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        config_value(&described, "retention.ms").as_deref(),
        Some("120000")
    );

    fails(
        &broker,
        &["topic", "create", "cli-t"],
        "TOPIC_ALREADY_EXISTS",
    );
    fails(
        &broker,
        &["topic", "alter", "cli-t", "--partitions", "1"],
        "INVALID_PARTITIONS",
    );
    fails(
        &broker,
        &["topic", "create", "x", "--config", "oops"],
        "NAME=VALUE",
    );

    ok(&broker, &["topic", "delete", "cli-t"]);
    let listed = json(&broker, &["topic", "list"]);
    let names: Vec<&str> = listed
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|t| t["topic"].as_str())
        .collect();
    assert!(!names.contains(&"cli-t"), "{names:?}");
    fails(
        &broker,
        &["topic", "describe", "cli-t"],
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    fails(
        &broker,
        &["topic", "delete", "cli-t"],
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
}

fn produce(bootstrap: &str, topic: &str, partitions: i32, count: usize) {
    let (producer, log) = producer(bootstrap, &[]);
    for i in 0..count {
        let value = format!("record-{i}");
        let record = BaseRecord::<str, String, usize>::with_opaque_to(topic, i)
            .partition(i as i32 % partitions)
            .payload(&value);
        send(&producer, record).expect("queue a record");
    }
    flush(&producer);
    assert_eq!(log.acked_count(), count, "failed: {:?}", log.failed());
}

fn member(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let consumer = consumer(
        bootstrap,
        &[
            ("group.id", group),
            ("client.id", "cli-test-client"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ],
    );
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// Sums a numeric field over the `offsets` rows of a `group describe --json`.
fn offsets_sum(described: &Value, field: &str) -> i64 {
    described["offsets"]
        .as_array()
        .expect("offsets array")
        .iter()
        .map(|row| {
            row[field]
                .as_i64()
                .unwrap_or_else(|| panic!("{field} in {row}"))
        })
        .sum()
}

/// Describes `group` until `done` holds for it (the group settles asynchronously).
fn describe_until(broker: &Broker, group: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let described = json(broker, &["group", "describe", group]);
        if done(&described) {
            return described;
        }
        assert!(
            Instant::now() < deadline,
            "group never got there: {described}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn given_a_consumer_group_when_described_reset_and_deleted_should_show_offsets_and_lag() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("cli-g-topic", "cli-group");
    ok(&broker, &["topic", "create", topic, "--partitions", "2"]);
    produce(&bootstrap, topic, 2, 10);

    let consumer = member(&bootstrap, group, topic);
    consume_exactly(&consumer, 10, Duration::from_secs(30));
    let position = consumer.position().expect("position");
    consumer
        .commit(&position, CommitMode::Sync)
        .expect("commit");

    // While the member is there: it shows with its assignment, and resets are refused.
    let described = describe_until(&broker, group, |d| {
        d["state"] == "Stable" && d["members"].as_array().is_some_and(|m| m.len() == 1)
    });
    let member_row = &described["members"][0];
    assert_eq!(member_row["client_id"], "cli-test-client", "{described}");
    // The member's host is its connection's peer, as Kafka shows it.
    assert_eq!(member_row["host"], "/127.0.0.1", "{described}");
    assert_eq!(member_row["assignment"][topic], serde_json::json!([0, 1]));
    assert_eq!(described["protocol_type"], "consumer");
    fails(
        &broker,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-earliest",
        ],
        "Stable",
    );
    let text = ok(&broker, &["group", "describe", group]);
    assert!(
        text.contains("LAG") && text.contains("cli-test-client"),
        "{text}"
    );
    let listed = ok(&broker, &["group", "list"]);
    assert!(listed.lines().any(|l| l.starts_with(group)), "{listed}");

    // Closing sends LeaveGroup. In this test binary librdkafka's destroy then waits on its broker
    // thread for good (after the close is done), so the drop runs on a thread of its own.
    std::thread::spawn(move || drop(consumer));
    // Produced after the close: these 6 are the lag.
    produce(&bootstrap, topic, 2, 6);
    let described = describe_until(&broker, group, |d| d["state"] == "Empty");
    assert_eq!(
        offsets_sum(&described, "committed_offset"),
        10,
        "{described}"
    );
    assert_eq!(offsets_sum(&described, "log_end_offset"), 16, "{described}");
    assert_eq!(offsets_sum(&described, "lag"), 6, "{described}");

    let reset = json(
        &broker,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-earliest",
        ],
    );
    assert_eq!(reset.as_array().map(Vec::len), Some(2), "{reset}");
    let described = json(&broker, &["group", "describe", group]);
    assert_eq!(
        offsets_sum(&described, "committed_offset"),
        0,
        "{described}"
    );
    assert_eq!(offsets_sum(&described, "lag"), 16, "{described}");

    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-offset",
            "5",
        ],
    );
    let described = json(&broker, &["group", "describe", group]);
    assert_eq!(
        offsets_sum(&described, "committed_offset"),
        10,
        "{described}"
    );
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-latest",
        ],
    );
    let described = json(&broker, &["group", "describe", group]);
    assert_eq!(offsets_sum(&described, "lag"), 0, "{described}");

    ok(&broker, &["group", "delete", group]);
    let listed = json(&broker, &["group", "list"]);
    assert!(
        !listed
            .as_array()
            .expect("array")
            .iter()
            .any(|g| g["group"] == group),
        "{listed}"
    );
    fails(&broker, &["group", "describe", group], "GROUP_ID_NOT_FOUND");
}

#[test]
fn given_no_broker_when_a_command_runs_should_fail_with_one_line() {
    // A port nobody listens on: bind one, then free it.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let (status, _, stderr) = run_to_exit(&["topic", "list", "--bootstrap", &bootstrap]);
    assert!(!status.success());
    assert_one_error_line(&stderr, "cannot reach the broker");

    // A peer that accepts and never answers: the read timeout ends it.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind a silent listener");
    let bootstrap = silent.local_addr().expect("address").to_string();
    let (status, _, stderr) = run_to_exit(&[
        "group",
        "list",
        "--bootstrap",
        &bootstrap,
        "--timeout-ms",
        "500",
    ]);
    assert!(!status.success());
    assert_one_error_line(&stderr, "no answer within the timeout");
    drop(silent);
}

#[test]
fn given_a_broker_when_the_cluster_is_described_should_show_its_id_controller_and_brokers() {
    let broker = Broker::start_with(&[("node.id", "3"), ("broker.rack", "rack-b")]);
    let served = common::describe_cluster(broker.addr());
    let described = json(&broker, &["cluster", "describe"]);
    assert_eq!(described["cluster_id"], served.cluster_id.to_string());
    assert_eq!(described["controller_id"], 3);
    let port = broker.addr().port();
    assert_eq!(
        described["brokers"],
        serde_json::json!([{
            "node_id": 3, "host": "127.0.0.1", "port": port, "rack": "rack-b",
            "state": "registered",
        }])
    );
    // A one-voter quorum of itself, its own log's end the high watermark.
    let quorum = &described["quorum"];
    assert_eq!(quorum["leader_id"], 3, "{quorum}");
    assert_eq!(quorum["voters"][0]["node_id"], 3, "{quorum}");
    assert_eq!(quorum["voters"][0]["lag"], 0, "{quorum}");
    assert!(
        quorum["high_watermark"].as_i64().is_some_and(|hw| hw > 0),
        "{quorum}"
    );
    let text = ok(&broker, &["cluster", "describe"]);
    assert!(
        text.contains(&format!("cluster {}, controller 3", served.cluster_id)),
        "{text}"
    );
    assert!(text.contains("rack-b") && text.contains("BROKER"), "{text}");
    assert!(
        text.contains("quorum: leader 3") && text.contains("LAG"),
        "{text}"
    );
}
