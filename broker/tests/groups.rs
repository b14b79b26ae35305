//! Consumer groups through the real broker with librdkafka: subscribe-style consumers share a
//! topic's partitions and rebalance as members come and go, commit after processing, two groups
//! read independently, commits survive kill -9, and the admin side (list, describe, delete).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{
    consume_exactly, consumer, create_topic, flush, producer, send, Broker, CLIENT_TIMEOUT,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};

/// How long a group may take to settle on an assignment.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

fn broker() -> Broker {
    Broker::start_with(&[("group.initial.rebalance.delay.ms", "0")])
}

/// A subscribed group member with short timeouts (tests stay quick).
fn member(bootstrap: &str, group: &str, topic: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut settings = vec![
        ("group.id", group),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
        ("topic.metadata.refresh.interval.ms", "1000"),
    ];
    settings.extend_from_slice(extra);
    let consumer = consumer(bootstrap, &settings);
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// Commits `positions` synchronously with `committer`, then kills the broker (-9) and restarts it.
fn commit_then_kill_and_restart(
    broker: &mut Broker,
    committer: BaseConsumer,
    positions: &TopicPartitionList,
) {
    committer
        .commit(positions, CommitMode::Sync)
        .expect("commit");
    broker.kill9();
    std::mem::forget(committer); // Its broker is gone: closing would only wait for it.
    broker.restart();
}

/// Produces `count` records `"<prefix>-<i>"` round-robin over `partitions`.
fn produce(bootstrap: &str, topic: &str, partitions: i32, prefix: &str, count: usize) {
    let (producer, log) = producer(bootstrap, &[]);
    for i in 0..count {
        let value = format!("{prefix}-{i}");
        let record = BaseRecord::<str, String, usize>::with_opaque_to(topic, i)
            .partition(i as i32 % partitions)
            .payload(&value);
        send(&producer, record).expect("queue a record");
    }
    flush(&producer);
    assert_eq!(log.acked_count(), count, "failed: {:?}", log.failed());
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .map(|list| list.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every member until their assignments are disjoint, cover `0..partitions` and have
/// the sizes `expected` (sorted), and stayed so for a second; returns them.
fn settle(members: &[&BaseConsumer], partitions: i32, expected: &[usize]) -> Vec<BTreeSet<i32>> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut stable_since: Option<Instant> = None;
    loop {
        for member in members {
            let _ = member.poll(Duration::from_millis(20));
        }
        let sets: Vec<BTreeSet<i32>> = members.iter().map(|m| assigned(m)).collect();
        let mut sizes: Vec<usize> = sets.iter().map(BTreeSet::len).collect();
        sizes.sort_unstable();
        let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        let total: usize = sizes.iter().sum();
        let good = sizes == expected
            && total == partitions as usize
            && union == (0..partitions).collect::<BTreeSet<i32>>();
        match (good, stable_since) {
            (true, Some(since)) if since.elapsed() >= Duration::from_secs(1) => return sets,
            (true, None) => stable_since = Some(Instant::now()),
            (true, Some(_)) => {}
            (false, _) => stable_since = None,
        }
        assert!(
            Instant::now() < deadline,
            "the group did not settle on sizes {expected:?} within {SETTLE_TIMEOUT:?}: {sets:?}"
        );
    }
}

#[test]
fn given_three_consumers_on_six_partitions_when_members_join_and_leave_should_rebalance() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "shared", 6, &[]);
    let a = member(&bootstrap, "g-rebalance", "shared", &[]);
    let b = member(&bootstrap, "g-rebalance", "shared", &[]);
    let c = member(&bootstrap, "g-rebalance", "shared", &[]);
    let sets = settle(&[&a, &b, &c], 6, &[2, 2, 2]);
    assert!(sets.iter().all(|s| s.len() == 2), "{sets:?}");

    let d = member(&bootstrap, "g-rebalance", "shared", &[]);
    settle(&[&a, &b, &c, &d], 6, &[1, 1, 2, 2]);

    // A clean leave (LeaveGroup on close): the rest take its partitions over.
    drop(d);
    settle(&[&a, &b, &c], 6, &[2, 2, 2]);
    drop(c);
    settle(&[&a, &b], 6, &[3, 3]);
}

#[test]
fn given_a_group_committing_after_processing_should_consume_every_record_once() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "work", 3, &[]);
    let a = member(&bootstrap, "g-work", "work", &[]);
    let b = member(&bootstrap, "g-work", "work", &[]);
    // Settle first (settling polls, and would swallow records), then produce.
    settle(&[&a, &b], 3, &[1, 2]);
    produce(&bootstrap, "work", 3, "w", 300);
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while seen.len() < 300 {
        assert!(Instant::now() < deadline, "consumed {} of 300", seen.len());
        for consumer in [&a, &b] {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
                let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
                *seen.entry(value.to_string()).or_insert(0) += 1;
                consumer
                    .commit_message(&message, CommitMode::Sync)
                    .expect("commit after processing");
            }
        }
    }
    assert!(seen.values().all(|n| *n == 1), "read twice: {seen:?}");
    // Every partition's committed position is its end.
    let mut list = TopicPartitionList::new();
    for p in 0..3 {
        list.add_partition("work", p);
    }
    let committed = a
        .committed_offsets(list, CLIENT_TIMEOUT)
        .expect("OffsetFetch");
    for element in committed.elements() {
        assert_eq!(element.offset(), Offset::Offset(100), "{element:?}");
    }
}

#[test]
fn given_two_groups_on_one_topic_should_each_read_every_record() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "fanout", 2, &[]);
    produce(&bootstrap, "fanout", 2, "f", 50);
    for group in ["g-one", "g-two"] {
        let consumer = member(&bootstrap, group, "fanout", &[]);
        let messages = consume_exactly(&consumer, 50, SETTLE_TIMEOUT);
        let values: BTreeSet<String> = messages
            .iter()
            .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string())
            .collect();
        assert_eq!(values.len(), 50, "{group}");
        let position = consumer.position().expect("position");
        consumer
            .commit(&position, CommitMode::Sync)
            .expect("commit");
    }
    // A group that never committed has nothing committed: -1 (Offset::Invalid) per partition.
    let fresh = consumer(&bootstrap, &[("group.id", "g-never")]);
    let mut list = TopicPartitionList::new();
    list.add_partition("fanout", 0);
    list.add_partition("fanout", 1);
    let committed = fresh
        .committed_offsets(list, CLIENT_TIMEOUT)
        .expect("OffsetFetch");
    for element in committed.elements() {
        assert_eq!(element.offset(), Offset::Invalid, "{element:?}");
    }
}

#[test]
fn given_committed_offsets_when_the_broker_is_killed_and_restarted_should_resume_from_them() {
    let mut broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "resume", 1, &[]);
    produce(&bootstrap, "resume", 1, "r", 100);
    let first = member(&bootstrap, "g-resume", "resume", &[]);
    let read = consume_exactly(&first, 40, SETTLE_TIMEOUT);
    assert_eq!(read.last().map(|m| m.offset()), Some(39));
    let mut position = TopicPartitionList::new();
    position
        .add_partition_offset("resume", 0, Offset::Offset(40))
        .expect("add the position");
    commit_then_kill_and_restart(&mut broker, first, &position);
    let bootstrap = broker.bootstrap();
    let second = member(&bootstrap, "g-resume", "resume", &[]);
    let rest = consume_exactly(&second, 60, SETTLE_TIMEOUT);
    assert_eq!(rest[0].offset(), 40, "resumes at the committed offset");
    let values: Vec<String> = rest
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string())
        .collect();
    let expected: Vec<String> = (40..100).map(|i| format!("r-{i}")).collect();
    assert_eq!(values, expected, "nothing committed is read again");
}

#[test]
fn given_one_commit_larger_than_message_max_bytes_when_restarted_should_keep_every_offset() {
    // 80 partitions with 2000 bytes of metadata each: ~170 kB of commit records in one request,
    // against a 64 KiB batch limit; they are stored as several batches and replayed.
    const PARTITIONS: i32 = 80;
    let mut broker = Broker::start_with(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("message.max.bytes", "65536"),
    ]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "wide", PARTITIONS, &[]);
    let metadata = "m".repeat(2000);
    let committer = consumer(&bootstrap, &[("group.id", "g-wide")]);
    let mut positions = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        positions
            .add_partition_offset("wide", p, Offset::Offset(i64::from(p) + 1))
            .expect("add a position");
        positions
            .find_partition("wide", p)
            .expect("just added")
            .set_metadata(metadata.clone());
    }
    commit_then_kill_and_restart(&mut broker, committer, &positions);
    let reader = consumer(&broker.bootstrap(), &[("group.id", "g-wide")]);
    let mut asked = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        asked.add_partition("wide", p);
    }
    let committed = reader
        .committed_offsets(asked, CLIENT_TIMEOUT)
        .expect("OffsetFetch");
    let found: Vec<(i32, Offset, usize)> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset(), e.metadata().len()))
        .collect();
    let expected: Vec<(i32, Offset, usize)> = (0..PARTITIONS)
        .map(|p| (p, Offset::Offset(i64::from(p) + 1), metadata.len()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn given_groups_when_listed_described_and_deleted_should_show_then_remove_them() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "adm", 2, &[]);
    let a = member(&bootstrap, "g-admin", "adm", &[]);
    settle(&[&a], 2, &[2]);
    let mut position = TopicPartitionList::new();
    position
        .add_partition_offset("adm", 0, Offset::Offset(0))
        .expect("add a position");
    a.commit(&position, CommitMode::Sync).expect("commit");

    let groups = a
        .fetch_group_list(Some("g-admin"), CLIENT_TIMEOUT)
        .expect("ListGroups/DescribeGroups");
    let group = &groups.groups()[0];
    assert_eq!(group.name(), "g-admin");
    assert_eq!(group.state(), "Stable");
    assert_eq!(group.protocol(), "range");
    assert_eq!(group.members().len(), 1);
    assert!(group.members()[0]
        .assignment()
        .is_some_and(|a| !a.is_empty()));
    let all = a
        .fetch_group_list(None, CLIENT_TIMEOUT)
        .expect("ListGroups");
    assert!(all.groups().iter().any(|g| g.name() == "g-admin"));

    let admin = common::admin(&bootstrap);
    let delete = |name: &str| {
        let results = common::block_on(admin.delete_groups(&[name], &common::admin_options()))
            .expect("DeleteGroups");
        results[0].clone().map(|_| ()).map_err(|(_, code)| code)
    };
    assert_eq!(
        delete("g-admin"),
        Err(rdkafka::types::RDKafkaErrorCode::NonEmptyGroup)
    );
    drop(a);
    // An empty group keeps its protocol type, as in Kafka: tools list it as a consumer group.
    let viewer = consumer(&bootstrap, &[]);
    let groups = viewer
        .fetch_group_list(Some("g-admin"), CLIENT_TIMEOUT)
        .expect("DescribeGroups");
    assert_eq!(groups.groups()[0].state(), "Empty");
    assert_eq!(groups.groups()[0].protocol_type(), "consumer");
    assert_eq!(delete("g-admin"), Ok(()));
    assert_eq!(
        delete("g-admin"),
        Err(rdkafka::types::RDKafkaErrorCode::GroupIdNotFound)
    );
    let fresh = consumer(&bootstrap, &[("group.id", "g-admin")]);
    let mut list = TopicPartitionList::new();
    list.add_partition("adm", 0);
    let committed = fresh
        .committed_offsets(list, CLIENT_TIMEOUT)
        .expect("OffsetFetch");
    assert_eq!(
        committed.elements()[0].offset(),
        Offset::Invalid,
        "offsets deleted"
    );
}

#[test]
fn given_cooperative_sticky_members_when_one_joins_should_rebalance_incrementally() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "coop", 4, &[]);
    let sticky = [("partition.assignment.strategy", "cooperative-sticky")];
    let a = member(&bootstrap, "g-coop", "coop", &sticky);
    let b = member(&bootstrap, "g-coop", "coop", &sticky);
    let before = settle(&[&a, &b], 4, &[2, 2]);
    let c = member(&bootstrap, "g-coop", "coop", &sticky);
    let after = settle(&[&a, &b, &c], 4, &[1, 1, 2]);
    // Sticky: a and b keep what they had, less what moved to c.
    assert!(after[0].is_subset(&before[0]), "{before:?} -> {after:?}");
    assert!(after[1].is_subset(&before[1]), "{before:?} -> {after:?}");
}

#[test]
fn given_a_static_member_when_it_restarts_within_the_session_should_keep_its_partitions() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "static", 4, &[]);
    let one = [("group.instance.id", "instance-1")];
    let two = [("group.instance.id", "instance-2")];
    let a = member(&bootstrap, "g-static", "static", &one);
    let b = member(&bootstrap, "g-static", "static", &two);
    let before = settle(&[&a, &b], 4, &[2, 2]);
    let rebalances = |broker: &Broker| {
        broker
            .log_lines()
            .iter()
            .filter(|l| l.contains("group rebalanced") && l.contains("g-static"))
            .count()
    };
    let count = rebalances(&broker);
    // A static member sends no LeaveGroup on close; its replacement takes its place.
    drop(a);
    let a = member(&bootstrap, "g-static", "static", &one);
    let after = settle(&[&a, &b], 4, &[2, 2]);
    assert_eq!(after, before, "the same partitions come back");
    assert_eq!(rebalances(&broker), count, "without a rebalance");
}

/// Polls `consumer` until it holds exactly `count` partitions.
fn wait_for_count(consumer: &BaseConsumer, count: usize) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while assigned(consumer).len() != count {
        assert!(
            Instant::now() < deadline,
            "never held {count} partitions: {:?}",
            assigned(consumer)
        );
        let _ = consumer.poll(Duration::from_millis(50));
    }
}

/// Uses kcat (Debian's, librdkafka 2.0) as the member that dies; skipped where kcat is missing.
#[test]
fn given_a_member_killed_without_leaving_when_its_session_expires_should_move_its_partitions() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "killed", 4, &[]);
    let a = member(&bootstrap, "g-killed", "killed", &[]);
    wait_for_count(&a, 4);
    let spawned = std::process::Command::new("kcat")
        .args(["-b", &bootstrap, "-G", "g-killed", "-q"])
        .args([
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "heartbeat.interval.ms=500",
        ])
        .arg("killed")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut kcat) = spawned else {
        eprintln!("kcat is not installed: skipping");
        return;
    };
    wait_for_count(&a, 2);
    kcat.kill().expect("kill -9 kcat");
    let _ = kcat.wait();
    // No LeaveGroup: the coordinator notices only when kcat's session times out.
    wait_for_count(&a, 4);
    assert!(
        broker
            .log_lines()
            .iter()
            .any(|l| l.contains("member expired") && l.contains("g-killed")),
        "the session expiry is logged"
    );
}

#[test]
fn given_fifty_back_to_back_async_commits_when_read_back_should_hold_the_last_one() {
    // librdkafka's 0030_offset_commit: the commits' appends all finish at one sync, and the
    // in-memory table took whichever answer came last instead of the commit last in the log.
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "async-commits", 1, &[]);
    let committer = consumer(&bootstrap, &[("group.id", "g-async")]);
    for offset in 1..=50 {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset("async-commits", 0, Offset::Offset(offset))
            .expect("offset");
        committer
            .commit(&list, CommitMode::Async)
            .expect("queue the commit");
    }
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        let _ = committer.poll(Duration::from_millis(100));
        let mut list = TopicPartitionList::new();
        list.add_partition("async-commits", 0);
        let committed = committer
            .committed_offsets(list, CLIENT_TIMEOUT)
            .expect("OffsetFetch");
        let offset = committed.elements()[0].offset();
        if offset == Offset::Offset(50) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the committed offset reads back as {offset:?}, not 50"
        );
    }
    // And it stays 50: no late answer overwrites it.
    assert_still_committed_after_a_while(&committer);
}

fn assert_still_committed_after_a_while(committer: &BaseConsumer) {
    std::thread::sleep(Duration::from_millis(500));
    let mut list = TopicPartitionList::new();
    list.add_partition("async-commits", 0);
    let committed = committer
        .committed_offsets(list, CLIENT_TIMEOUT)
        .expect("OffsetFetch");
    assert_eq!(committed.elements()[0].offset(), Offset::Offset(50));
}
