//! ISR replication on a three-node cluster, driven with rdkafka: followers fetch from the
//! leader and end byte-identical to it, the ISR fills, acks=all survives the kill -9 of the
//! leader, and with too few in-sync replicas acks=all is refused, never silently weakened.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::Offset;

use common::*;

fn create(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_topic_with(bootstrap, topic, (partitions, 3), configs);
}

/// Produces `count` records `{prefix}-{i}` and waits for every delivery report.
fn produce_all(
    bootstrap: &str,
    topic: &str,
    prefix: &str,
    count: usize,
) -> std::sync::Arc<DeliveryLog> {
    let (producer, log) = producer(bootstrap, &[("enable.idempotence", "true")]);
    for i in 0..count {
        let value = format!("{prefix}-{i}");
        let record = BaseRecord::with_opaque_to(topic, i)
            .payload(&value)
            .key(&value);
        send(&producer, record).expect("queue a record");
    }
    flush(&producer);
    log
}

#[test]
fn given_rf3_when_records_are_produced_should_reach_every_replica_byte_identical_with_a_full_isr() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "replicated", 2, &[]);
    let placed = eventually(
        "every partition's ISR full",
        || placement(&bootstrap, "replicated"),
        |p| p.iter().all(|(_, _, isr)| isr.len() == 3),
    );
    eprintln!("placement: {placed:?}");

    let log = produce_all(&bootstrap, "replicated", "r", 2_000);
    assert_eq!(
        log.acked_count(),
        2_000,
        "failed: {:?}",
        log.failed().first()
    );

    let consumer = consumer(&bootstrap, &[]);
    assign_all(&consumer, "replicated", 2, Offset::Beginning);
    let got = consume_exactly(&consumer, 2_000, Duration::from_secs(60));
    let values: BTreeSet<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values.len(), 2_000, "every record once");

    for partition in 0..2 {
        let dirs: Vec<_> = (1..=3)
            .map(|id| cluster.node(id).partition_dir("replicated", partition))
            .collect();
        let leader = log_bytes(&dirs[0]).len().max(1);
        eventually(
            &format!("partition {partition} byte-identical on every replica"),
            || dirs.iter().map(|d| log_bytes(d)).collect::<Vec<_>>(),
            |logs| logs.iter().all(|l| l == &logs[0] && !l.is_empty()),
        );
        eprintln!("partition {partition}: {leader} bytes on each replica");
    }
}

#[test]
fn given_rf3_and_min_isr_2_when_the_leader_is_killed_under_acks_all_should_lose_no_acked_record() {
    let mut cluster = Cluster::start(3, &FAST_FENCING);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "failover", 1, &[("min.insync.replicas", "2")]);
    let placed = eventually(
        "the ISR full",
        || placement(&bootstrap, "failover"),
        |p| p[0].2.len() == 3,
    );
    let old_leader = placed[0].0;
    let survivor = (1..=3)
        .find(|id| *id != old_leader as usize)
        .expect("a survivor");
    let survivor_bootstrap = cluster.node(survivor).bootstrap();
    let others: Vec<String> = (1..=3)
        .filter(|id| *id != old_leader as usize)
        .map(|id| cluster.node(id).bootstrap())
        .collect();

    let (producer, log) = producer(
        &others.join(","),
        &[
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("linger.ms", "2"),
        ],
    );
    let send_range = |range: std::ops::Range<usize>| {
        for i in range {
            let value = format!("f-{i}");
            let record = BaseRecord::<str, str, usize>::with_opaque_to("failover", i)
                .payload(value.as_str());
            send(&producer, record).expect("queue a record");
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    send_range(0..1_500);
    eventually("1,000 acks", || log.acked_count(), |n| *n >= 1_000);
    cluster.node(old_leader as usize).kill9();
    let killed = true;
    eprintln!(
        "killed leader {old_leader} after {} acks",
        log.acked_count()
    );
    send_range(1_500..3_000);
    flush(&producer);
    assert!(killed, "the leader was killed mid-stream");
    let acked = log.acked();
    eprintln!("acked {}, failed {}", acked.len(), log.failed().len());
    assert!(
        acked.len() > 1_000,
        "the producer carried on against the new leader"
    );

    let new_leader = eventually(
        "a new leader",
        || placement(&survivor_bootstrap, "failover")[0].0,
        |l| *l >= 0 && *l != old_leader,
    );
    eprintln!("new leader {new_leader}");
    let consumer = consumer(&survivor_bootstrap, &[]);
    assign_all(&consumer, "failover", 1, Offset::Beginning);
    let got = drain_for(&consumer, Duration::from_secs(5));
    let mut by_offset = std::collections::BTreeMap::new();
    for m in &got {
        by_offset.insert(
            m.offset(),
            String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
        );
    }
    let mut lost = Vec::new();
    for a in &acked {
        if by_offset.get(&a.offset) != Some(&format!("f-{}", a.id)) {
            lost.push(*a);
        }
    }
    assert!(
        lost.is_empty(),
        "{} acked records lost, first {:?}",
        lost.len(),
        lost.first()
    );
    let distinct: BTreeSet<&String> = by_offset.values().collect();
    assert_eq!(
        distinct.len(),
        by_offset.len(),
        "no record twice (idempotence across the failover)"
    );
    assert!(
        acked.iter().any(|a| a.id >= 1_500),
        "records sent after the kill were acknowledged by the new leader"
    );

    // The old leader returns as a follower: it truncates what it alone held, catches up,
    // rejoins the ISR and ends byte-identical to the new leader.
    cluster.start_nodes(&[old_leader as usize]);
    eventually(
        "the old leader back in the ISR",
        || placement(&survivor_bootstrap, "failover")[0].2.len(),
        |n| *n == 3,
    );
    let dirs: Vec<_> = (1..=3)
        .map(|id| cluster.node(id).partition_dir("failover", 0))
        .collect();
    eventually(
        "every replica byte-identical",
        || dirs.iter().map(|d| log_bytes(d).len()).collect::<Vec<_>>(),
        |_| {
            let logs: Vec<_> = dirs.iter().map(|d| log_bytes(d)).collect();
            logs.iter().all(|l| l == &logs[0])
        },
    );

    // The operator gives the partition back to its preferred leader, the first replica.
    let args = [
        "topic",
        "elect-leaders",
        "--topic",
        "failover",
        "--bootstrap",
    ];
    let (status, stdout, stderr) =
        run_to_exit(&[&args[..], &[survivor_bootstrap.as_str()]].concat());
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("elected"), "{stdout}");
    let placed = placement(&survivor_bootstrap, "failover");
    assert_eq!(
        placed[0].0, placed[0].1[0],
        "the preferred replica leads: {placed:?}"
    );
    assert_eq!(placed[0].0, old_leader, "{placed:?}");
    let (status, stdout, stderr) =
        run_to_exit(&[&args[..], &[survivor_bootstrap.as_str()]].concat());
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("ELECTION_NOT_NEEDED"), "{stdout}");
}

#[test]
fn given_one_replica_down_should_refuse_acks_all_below_min_isr_and_serve_it_at_or_above() {
    let mut cluster = Cluster::start(3, &FAST_FENCING);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "strict", 1, &[("min.insync.replicas", "3")]);
    create(&bootstrap, "lenient", 1, &[("min.insync.replicas", "2")]);
    let mut leaders = Vec::new();
    for topic in ["strict", "lenient"] {
        let placed = eventually(
            "the ISR full",
            || placement(&bootstrap, topic),
            |p| p[0].2.len() == 3,
        );
        leaders.push(placed[0].0 as usize);
    }
    let lenient = produce_all(&bootstrap, "lenient", "before", 10);
    assert_eq!(lenient.acked_count(), 10, "{:?}", lenient.failed().first());
    let strict = produce_all(&bootstrap, "strict", "before", 10);
    assert_eq!(strict.acked_count(), 10, "{:?}", strict.failed().first());

    // A broker that leads neither: a follower of both.
    let victim = (1..=3)
        .find(|id| !leaders.contains(id))
        .expect("a follower of both");
    let witness = leaders[0];
    let witness_bootstrap = cluster.node(witness).bootstrap();
    cluster.node(victim).kill9();
    for topic in ["strict", "lenient"] {
        eventually(
            "the dead follower out of the ISR",
            || placement(&witness_bootstrap, topic)[0].2.clone(),
            |isr| isr.len() == 2 && !isr.contains(&(victim as i32)),
        );
    }
    let lenient = produce_all(&witness_bootstrap, "lenient", "after", 10);
    assert_eq!(lenient.acked_count(), 10, "{:?}", lenient.failed().first());

    let (producer, log) = producer(
        &witness_bootstrap,
        &[("message.timeout.ms", "5000"), ("retries", "0")],
    );
    send(
        &producer,
        BaseRecord::<str, str, usize>::with_opaque_to("strict", 0).payload("refused"),
    )
    .expect("queue");
    flush(&producer);
    let failed = log.failed();
    assert_eq!(
        log.acked_count(),
        0,
        "acks=all with 2 in-sync replicas of 3 required"
    );
    assert!(
        matches!(
            failed.first(),
            Some((
                _,
                KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)
            ))
        ),
        "{failed:?}"
    );
    // Nothing of the refused record reached the log.
    let consumer = consumer(&witness_bootstrap, &[]);
    assign_all(&consumer, "strict", 1, Offset::Beginning);
    let got = drain_for(&consumer, Duration::from_secs(3));
    assert_eq!(got.len(), 10, "only the records produced before");
}

#[test]
fn given_a_follower_away_while_the_leader_deleted_records_should_start_at_the_leaders_start() {
    let mut cluster = Cluster::start(3, &FAST_FENCING);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "trimmed", 1, &[]);
    let placed = eventually(
        "the ISR full",
        || placement(&bootstrap, "trimmed"),
        |p| p[0].2.len() == 3,
    );
    let leader = placed[0].0 as usize;
    let mut followers = (1..=3).filter(|id| *id != leader);
    let (away, witness) = (
        followers.next().expect("one"),
        followers.next().expect("two"),
    );
    let leader_bootstrap = cluster.node(leader).bootstrap();
    let log = produce_all(&leader_bootstrap, "trimmed", "a", 100);
    assert_eq!(log.acked_count(), 100);

    cluster.node(away).kill9();
    eventually(
        "the away follower out of the ISR",
        || placement(&leader_bootstrap, "trimmed")[0].2.len(),
        |n| *n == 2,
    );
    let log = produce_all(&leader_bootstrap, "trimmed", "b", 100);
    assert_eq!(log.acked_count(), 100);
    let admin = admin(&leader_bootstrap);
    let mut before = rdkafka::TopicPartitionList::new();
    before
        .add_partition_offset("trimmed", 0, Offset::Offset(150))
        .expect("add partition");
    let result = block_on(admin.delete_records(&before, &admin_options())).expect("DeleteRecords");
    let element = result.find_partition("trimmed", 0).expect("partition 0");
    assert_eq!(element.error(), Ok(()), "DeleteRecords before 150");

    // Back, the follower's log (0..100) cannot be continued from the leader's (150..200): it
    // starts over at 150, catches up and rejoins the ISR.
    cluster.start_nodes(&[away]);
    eventually(
        "the returning follower in the ISR",
        || placement(&leader_bootstrap, "trimmed")[0].2.len(),
        |n| *n == 3,
    );
    let away_dir = cluster.node(away).partition_dir("trimmed", 0);
    let names: Vec<String> = segment_files(&away_dir)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    // At 150, or at the base of the leader's batch holding 150 (a follower starts at a batch).
    let base: i64 = match names.as_slice() {
        [only] => only
            .trim_end_matches(".log")
            .parse()
            .expect("a segment base"),
        other => panic!("one segment after starting over: {other:?}"),
    };
    assert!(
        (100..=150).contains(&base),
        "started over near 150: {names:?}"
    );

    // The follower that stayed moved its start with the leader's: once the leader is gone, the
    // new leader serves from 150 to 200, whichever follower it is.
    cluster.node(leader).kill9();
    let survivor = cluster.node(witness).bootstrap();
    eventually(
        "a new leader",
        || placement(&survivor, "trimmed")[0].0,
        |l| *l >= 0 && *l != leader as i32,
    );
    let consumer = consumer(&survivor, &[]);
    let marks = eventually(
        "the new leader's watermarks",
        || watermarks(&consumer, "trimmed", 0),
        |m| m.1 == 200,
    );
    assert_eq!(marks, (150, 200));
}
