//! Three `odradek` processes on loopback forming one cluster around the metadata quorum, driven
//! with rdkafka: metadata from any broker, topics placed over the brokers, records produced
//! and consumed through other brokers than the one that created the topic, groups, the kill of
//! the active controller, and a restart of the whole cluster at once.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};

use common::*;

/// Creates `topic` through `bootstrap` with `replication` replicas; the broker's answer.
fn create(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<(), RDKafkaErrorCode> {
    let admin = admin(bootstrap);
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let results = match block_on(admin.create_topics([&new_topic], &admin_options())) {
        Ok(results) => results,
        Err(error) => {
            eprintln!("CreateTopics {topic}: {error}");
            return Err(RDKafkaErrorCode::OperationTimedOut);
        }
    };
    match &results[0] {
        Ok(_) => Ok(()),
        Err((_, code)) => Err(*code),
    }
}

/// Waits until every node's Metadata lists `expected` brokers (registration is asynchronous).
fn wait_for_brokers(cluster: &mut Cluster, expected: &[i32]) {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    for id in 1..=cluster.nodes.len() {
        let bootstrap = cluster.node(id).bootstrap();
        loop {
            let seen = broker_ids(&bootstrap);
            if seen == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} lists brokers {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The coordinator FindCoordinator (v1) names for `group`.
fn find_coordinator(addr: std::net::SocketAddr, group: &str) -> i32 {
    find_coordinator_maybe(addr, group).unwrap_or_else(|| panic!("FindCoordinator {group}"))
}

/// A group id whose `__consumer_offsets` partition node `node` leads (the topic is created by
/// the first FindCoordinator, as Kafka does).
fn group_coordinated_by(cluster: &mut Cluster, node: i32) -> String {
    let first = cluster.node(1).addr();
    find_coordinator(first, "probe");
    let bootstrap = cluster.node(1).bootstrap();
    wait_for_topic(&bootstrap, "__consumer_offsets", 50);
    let leaders: Vec<i32> = placement(&bootstrap, "__consumer_offsets")
        .into_iter()
        .map(|(leader, _, _)| leader)
        .collect();
    // Kafka's partition of a group: Java's String.hashCode, made non-negative, modulo.
    let partition = |group: &str| {
        let hash = group.encode_utf16().fold(0i32, |h, unit| {
            h.wrapping_mul(31).wrapping_add(i32::from(unit))
        });
        ((hash & 0x7fff_ffff) % leaders.len() as i32) as usize
    };
    (0..)
        .map(|i| format!("cluster-group-{i}"))
        .find(|group| leaders[partition(group)] == node)
        .expect("a group for every node")
}

fn produce(bootstrap: &str, topic: &str, count: usize) {
    let (producer, log) = producer(bootstrap, &[("acks", "all")]);
    for i in 0..count {
        let (key, value) = (format!("k{i}"), format!("v{i}"));
        let record = BaseRecord::with_opaque_to(topic, i)
            .key(&key)
            .payload(&value);
        send(&producer, record).expect("queued");
    }
    flush(&producer);
    assert_eq!(log.failed(), Vec::new(), "no record failed");
    assert_eq!(log.acked_count(), count, "every record acknowledged");
}

/// The placement of `topic` once every partition's ISR holds all its replicas (bounded wait).
fn until_isr_full(bootstrap: &str, topic: &str) -> Vec<(i32, Vec<i32>, Vec<i32>)> {
    eventually(
        "every ISR full",
        || placement(bootstrap, topic),
        |placed| placed.iter().all(|(_, r, isr)| isr.len() == r.len()),
    )
}

#[test]
fn given_three_nodes_when_a_topic_is_created_through_one_should_serve_it_from_every_other() {
    let mut cluster = Cluster::start(3, &[]);
    wait_for_brokers(&mut cluster, &[1, 2, 3]);
    let controller = cluster.controller();
    assert!((1..=3).contains(&controller), "controller {controller}");
    let (first, second, third) = (
        cluster.node(1).bootstrap(),
        cluster.node(2).bootstrap(),
        cluster.node(3).bootstrap(),
    );

    create(&first, "orders", 6, 3).expect("created through node 1");
    wait_for_topic(&third, "orders", 6);
    // Followers join the ISR once they have fetched from their leaders.
    let placed = until_isr_full(&third, "orders");
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for (leader, replicas, isr) in &placed {
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![1, 2, 3], "three replicas on three brokers");
        assert_eq!(replicas[0], *leader, "the first replica leads");
        assert!(isr.contains(leader), "the leader is in sync");
        *leaders.entry(*leader).or_default() += 1;
    }
    assert_eq!(
        leaders.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "leaders spread evenly: {placed:?}"
    );
    // Every broker answers for the whole cluster.
    assert_eq!(until_isr_full(&second, "orders"), placed);

    assert_eq!(
        create(&second, "too-wide", 1, 4),
        Err(RDKafkaErrorCode::InvalidReplicationFactor)
    );
    assert_eq!(
        create(&third, "orders", 1, 1),
        Err(RDKafkaErrorCode::TopicAlreadyExists)
    );

    produce(&second, "orders", 600);
    // A group whose coordinator is the third broker: neither the producer's nor the consumer's.
    let group = group_coordinated_by(&mut cluster, 1);
    let consumer: BaseConsumer = consumer(
        &third,
        &[
            ("group.id", group.as_str()),
            ("enable.auto.commit", "false"),
        ],
    );
    consumer.subscribe(&["orders"]).expect("subscribe");
    let records = consume_exactly(&consumer, 600, CLIENT_TIMEOUT);
    let mut values: Vec<String> = records
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), 600, "every record once");
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for record in &records {
        let offset = next.entry(record.partition()).or_default();
        *offset = (*offset).max(record.offset() + 1);
    }
    let mut commits = TopicPartitionList::new();
    for (partition, offset) in &next {
        commits
            .add_partition_offset("orders", *partition, Offset::Offset(*offset))
            .expect("add");
    }
    consumer
        .commit(&commits, CommitMode::Sync)
        .expect("commit through the group's coordinator");
    let committed = consumer
        .committed_offsets(commits, CLIENT_TIMEOUT)
        .expect("committed offsets");
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            other => panic!("partition {} committed {other:?}", e.partition()),
        })
        .sum();
    assert_eq!(total, 600, "the commits cover every record");
    for id in 1..=3 {
        let found = find_coordinator(cluster.node(id).addr(), &group);
        assert_eq!(found, 1, "node {id} names the group's coordinator");
    }
}

#[test]
fn given_three_nodes_when_the_controller_is_killed_should_elect_another_and_create_topics_again() {
    let mut cluster = Cluster::start(3, &[]);
    wait_for_brokers(&mut cluster, &[1, 2, 3]);
    let old = cluster.controller() as usize;
    let survivor = cluster.node(if old == 1 { 2 } else { 1 }).bootstrap();
    create(&survivor, "before", 3, 3).expect("created");
    cluster.node(old).kill9();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(30);
    loop {
        match create(&survivor, "after", 3, 2) {
            Ok(()) => break,
            Err(code) => assert!(
                Instant::now() < deadline,
                "no topic creation within 30 s of the controller's kill: {code:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "topic created {:?} after the controller's kill",
        killed.elapsed()
    );
    let new = cluster.controller();
    assert_ne!(new as usize, old, "another controller");
    // The killed node returns and catches up from the leader.
    cluster.start_nodes(&[old]);
    let returned = cluster.node(old).bootstrap();
    wait_for_topic(&returned, "after", 3);
    assert_eq!(placement(&returned, "before").len(), 3);
}

#[test]
fn given_a_cluster_when_every_node_is_killed_and_restarted_at_once_should_keep_topics_and_records()
{
    let mut cluster = Cluster::start(3, &[]);
    wait_for_brokers(&mut cluster, &[1, 2, 3]);
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "kept", 3, 1).expect("created");
    wait_for_topic(&bootstrap, "kept", 3);
    produce(&bootstrap, "kept", 90);
    let before = placement(&bootstrap, "kept");
    // The metadata log and acknowledged records are synced: kill -9 loses neither.
    for id in 1..=3 {
        cluster.node(id).kill9();
    }
    cluster.start_nodes(&[1, 2, 3]);
    wait_for_brokers(&mut cluster, &[1, 2, 3]);
    let bootstrap = cluster.bootstrap();
    assert_eq!(placement(&bootstrap, "kept"), before, "same placement");
    let consumer = consumer(&bootstrap, &[]);
    assign_all(&consumer, "kept", 3, Offset::Beginning);
    let records = consume_exactly(&consumer, 90, CLIENT_TIMEOUT);
    assert_eq!(records.len(), 90);
}

#[test]
fn given_three_brokers_when_each_hands_out_producer_ids_should_never_hand_out_one_twice() {
    let mut cluster = Cluster::start(3, &[]);
    let mut ids = Vec::new();
    for round in 0..2 {
        for id in 1..=3 {
            let (code, producer_id, epoch) = raw_init_producer_id(cluster.node(id).addr(), None, 7);
            assert_eq!((code, epoch), (0, 0), "node {id}");
            ids.push(producer_id);
        }
        if round == 0 {
            // A restarted broker registers again and gets a generation of ids of its own.
            cluster.node(2).kill9();
            cluster.start_nodes(&[2]);
        }
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "every producer id once: {ids:?}");
}

#[test]
fn given_three_voters_when_a_broker_only_node_joins_should_follow_the_log_and_lead_partitions() {
    let mut cluster = Cluster::start(3, &[]);
    let four = cluster.add_broker(&[]);
    wait_for_brokers(&mut cluster, &[1, 2, 3, 4]);
    let bootstrap = cluster.node(four).bootstrap();
    create(&bootstrap, "wide", 4, 4).expect("created through the broker-only node");
    wait_for_topic(&bootstrap, "wide", 4);
    let placed = placement(&bootstrap, "wide");
    assert!(
        placed.iter().any(|(leader, _, _)| *leader == 4),
        "{placed:?}"
    );
    produce(&bootstrap, "wide", 100);
    let first = cluster.node(1).bootstrap();
    let reader = consumer(&first, &[]);
    assign_all(&reader, "wide", 4, Offset::Beginning);
    assert_eq!(consume_exactly(&reader, 100, CLIENT_TIMEOUT).len(), 100);

    // It follows the quorum as an observer, and votes in nothing.
    let args = ["cluster", "describe", "--bootstrap", &first, "--json"];
    let (status, stdout, stderr) = run_to_exit(&args);
    assert!(status.success(), "{stderr}");
    let described: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let ids = |list: &serde_json::Value| -> Vec<i64> {
        let list = list.as_array().expect("a list");
        list.iter().filter_map(|v| v["node_id"].as_i64()).collect()
    };
    assert_eq!(
        ids(&described["quorum"]["voters"]),
        vec![1, 2, 3],
        "{described}"
    );
    assert_eq!(
        ids(&described["quorum"]["observers"]),
        vec![4],
        "{described}"
    );

    // Killed and back, it catches up with what was decided meanwhile.
    cluster.node(four).kill9();
    create(&first, "while-away", 1, 3).expect("created without it");
    cluster.start_nodes(&[four]);
    wait_for_topic(&cluster.node(four).bootstrap(), "while-away", 1);
}

#[test]
fn given_three_controllers_and_two_brokers_when_the_active_controller_dies_should_serve_on() {
    let mut cluster = Cluster::start_voters(&["controller"; 3], &[]);
    let (four, five) = (cluster.add_broker(&[]), cluster.add_broker(&[]));
    let (b4, b5) = (
        cluster.node(four).bootstrap(),
        cluster.node(five).bootstrap(),
    );
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    while broker_ids(&b4) != [4, 5] {
        assert!(Instant::now() < deadline, "only the brokers are brokers");
        std::thread::sleep(Duration::from_millis(100));
    }
    create(&b4, "split", 2, 2).expect("created");
    wait_for_topic(&b5, "split", 2);
    for (leader, replicas, _) in placement(&b5, "split") {
        assert!(
            [4, 5].contains(&leader),
            "a controller-only node leads nothing"
        );
        assert_eq!(replicas.len(), 2);
    }
    produce(&b5, "split", 50);
    let reader = consumer(&b4, &[]);
    assign_all(&reader, "split", 2, Offset::Beginning);
    assert_eq!(consume_exactly(&reader, 50, CLIENT_TIMEOUT).len(), 50);

    let active = describe_cluster(cluster.node(four).addr()).controller_id.0;
    assert!(
        (1..=3).contains(&active),
        "a controller leads the quorum: {active}"
    );
    cluster.node(active as usize).kill9();
    let deadline = Instant::now() + Duration::from_secs(30);
    while create(&b4, "after", 1, 2).is_err() {
        assert!(
            Instant::now() < deadline,
            "no topic within 30 s of the controller's kill"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let new = describe_cluster(cluster.node(five).addr()).controller_id.0;
    assert!(
        (1..=3).contains(&new) && new != active,
        "another controller: {new}"
    );
}

#[test]
fn given_a_groups_commits_when_its_coordinator_is_killed_should_keep_them_on_the_new_one() {
    let mut cluster = Cluster::start(3, &FAST_FENCING);
    wait_for_brokers(&mut cluster, &[1, 2, 3]);
    let bootstrap = cluster.node(1).bootstrap();
    create(&bootstrap, "tracked", 2, 3).expect("created");
    wait_for_topic(&bootstrap, "tracked", 2);
    let victim = 3;
    let group = group_coordinated_by(&mut cluster, victim);
    until_isr_full(&bootstrap, "__consumer_offsets");

    let committer: BaseConsumer = consumer(&bootstrap, &[("group.id", group.as_str())]);
    let mut commits = TopicPartitionList::new();
    commits
        .add_partition_offset("tracked", 0, Offset::Offset(17))
        .expect("add");
    commits
        .add_partition_offset("tracked", 1, Offset::Offset(29))
        .expect("add");
    committer
        .commit(&commits, CommitMode::Sync)
        .expect("commit through the coordinator");
    drop(committer);

    cluster.node(victim as usize).kill9();
    let witness = cluster.node(1).addr();
    let deadline = Instant::now() + Duration::from_secs(30);
    while find_coordinator_maybe(witness, &group) == Some(victim) {
        assert!(Instant::now() < deadline, "the coordinator never moved");
        std::thread::sleep(Duration::from_millis(200));
    }
    let reader: BaseConsumer = consumer(&bootstrap, &[("group.id", group.as_str())]);
    let committed = reader
        .committed_offsets(commits, CLIENT_TIMEOUT)
        .expect("committed offsets from the new coordinator");
    let offsets: Vec<Offset> = committed.elements().iter().map(|e| e.offset()).collect();
    assert_eq!(offsets, vec![Offset::Offset(17), Offset::Offset(29)]);
}

/// The coordinator FindCoordinator (v1) names for `group`, or `None` while there is none.
fn find_coordinator_maybe(addr: std::net::SocketAddr, group: &str) -> Option<i32> {
    use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
    let request = FindCoordinatorRequest::default().with_key(group.to_string().into());
    let response: FindCoordinatorResponse =
        call(addr, ApiKey::FindCoordinator, 1, &request, CLIENT_TIMEOUT).ok()?;
    (response.error_code == 0).then_some(response.node_id.0)
}
