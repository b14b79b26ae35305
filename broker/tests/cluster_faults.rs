//! A three-node cluster when things go wrong: a broker killed is fenced and its partitions lose
//! their leader until it returns; a request for a partition another broker leads is refused
//! with NOT_LEADER_OR_FOLLOWER; a deleted topic goes from every broker; hostile bytes on the
//! controller listener close the connection and change nothing.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn create(bootstrap: &str, topic: &str, partitions: i32, replication: i32) {
    create_topic_with(bootstrap, topic, (partitions, replication), &[]);
}

/// Each partition's leader as the broker at `bootstrap` reports it (-1: none).
fn leaders(bootstrap: &str, topic: &str) -> Vec<i32> {
    let placed = placement(bootstrap, topic);
    placed.into_iter().map(|(leader, _, _)| leader).collect()
}

/// `odradek cluster describe --json` through `bootstrap`.
fn describe(bootstrap: &str) -> serde_json::Value {
    let args = ["cluster", "describe", "--bootstrap", bootstrap, "--json"];
    let (status, stdout, stderr) = run_to_exit(&args);
    assert!(status.success(), "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn given_a_broker_killed_when_its_session_times_out_should_be_fenced_and_lead_again_on_return() {
    let mut cluster = Cluster::start(3, &FAST_FENCING);
    let controller = cluster.controller() as usize;
    // A broker that is not the controller (the controller's own death is another test).
    let victim = (1..=3).find(|id| *id != controller).expect("another node");
    let witness = (1..=3)
        .find(|id| *id != victim && *id != controller)
        .expect("a third node");
    let bootstrap = cluster.node(witness).bootstrap();
    eventually(
        "three brokers",
        || broker_ids(&bootstrap),
        |ids| ids.len() == 3,
    );
    create(&bootstrap, "fenced", 3, 1);
    let before = leaders(&bootstrap, "fenced");
    let victim_id = victim as i32;
    assert!(
        before.contains(&victim_id),
        "RF 1 over 3 brokers: one each, {before:?}"
    );

    cluster.node(victim).kill9();
    let killed = Instant::now();
    let ids = eventually(
        "the killed broker fenced",
        || broker_ids(&bootstrap),
        |ids| !ids.contains(&victim_id),
    );
    eprintln!(
        "fenced {:?} after the kill; brokers now {ids:?}",
        killed.elapsed()
    );
    let described = describe(&bootstrap);
    let state = |described: &serde_json::Value, id: usize| {
        let brokers = described["brokers"].as_array().expect("brokers").clone();
        let broker = brokers.iter().find(|b| b["node_id"] == id).cloned();
        broker.map(|b| b["state"].clone())
    };
    assert_eq!(
        state(&described, victim),
        Some("fenced".into()),
        "{described}"
    );
    assert_eq!(
        state(&described, witness),
        Some("registered".into()),
        "{described}"
    );
    assert_eq!(described["quorum"]["leader_id"], controller, "{described}");
    let voters = described["quorum"]["voters"]
        .as_array()
        .expect("voters")
        .clone();
    assert_eq!(voters.len(), 3, "{described}");
    let after = leaders(&bootstrap, "fenced");
    for (partition, (old, new)) in before.iter().zip(&after).enumerate() {
        match *old == victim_id {
            // Its only in-sync replica is gone: no unclean election.
            true => assert_eq!(
                *new, -1,
                "partition {partition} had only the fenced replica"
            ),
            false => assert_eq!(new, old, "partition {partition} keeps its leader"),
        }
    }

    cluster.start_nodes(&[victim]);
    let back = eventually(
        "the broker leads again",
        || leaders(&bootstrap, "fenced"),
        |l| *l == before,
    );
    assert_eq!(back, before);
    eventually(
        "three brokers again",
        || broker_ids(&bootstrap),
        |ids| ids.len() == 3,
    );
    let described = describe(&bootstrap);
    assert_eq!(
        state(&described, victim),
        Some("registered".into()),
        "{described}"
    );
}

#[test]
fn given_a_partition_led_elsewhere_when_produced_to_directly_should_answer_not_leader() {
    let mut cluster = Cluster::start(3, &[]);
    let first = cluster.node(1).bootstrap();
    create(&first, "elsewhere", 3, 1);
    let led = leaders(&first, "elsewhere");
    for id in 1..=3 {
        let addr: SocketAddr = cluster.node(id).addr();
        for (partition, leader) in led.iter().enumerate() {
            let request = produce_v3_to("elsewhere", partition as i32, 9, &record_batch(b"x", 1));
            let Verdict::Answered(response) = send_and_judge(addr, &request, false) else {
                panic!("node {id}: no answer for partition {partition}");
            };
            let (code, _) = produce_v3_partition_result(&response, "elsewhere");
            let expected = if *leader == id as i32 {
                0
            } else {
                NOT_LEADER_OR_FOLLOWER
            };
            assert_eq!(
                code, expected,
                "node {id}, partition {partition} led by {leader}"
            );
        }
    }
}

#[test]
fn given_a_topic_on_every_broker_when_deleted_through_one_should_leave_every_broker() {
    let mut cluster = Cluster::start(3, &[]);
    let first = cluster.node(1).bootstrap();
    create(&first, "doomed", 2, 3);
    for id in 1..=3 {
        let dir = cluster.node(id).partition_dir("doomed", 0);
        assert!(dir.exists(), "node {id} hosts a replica: {}", dir.display());
    }
    let admin = admin(&cluster.node(2).bootstrap());
    let results = block_on(admin.delete_topics(&["doomed"], &admin_options())).expect("delete");
    assert!(results[0].is_ok(), "{results:?}");
    for id in 1..=3 {
        let bootstrap = cluster.node(id).bootstrap();
        eventually(
            "the topic gone",
            || topic_names(&bootstrap),
            |names| !names.iter().any(|n| n == "doomed"),
        );
        let dir = cluster.node(id).partition_dir("doomed", 0);
        eventually("its log deleted", || dir.exists(), |exists| !exists);
    }
}

#[test]
fn given_hostile_bytes_on_the_controller_listener_should_close_and_keep_the_quorum() {
    let mut cluster = Cluster::start(3, &[]);
    let port = cluster.controller_ports[0];
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // The controller listener's frames: length (of kind and payload), kind, payload.
    let frame = |kind: u8, payload: &[u8]| {
        let mut frame = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        frame.push(kind);
        frame.extend_from_slice(payload);
        frame
    };
    let hello = |cluster_id: &str, node_id: i32| {
        let json = format!("{{\"cluster_id\":\"{cluster_id}\",\"node_id\":{node_id}}}");
        frame(1, json.as_bytes())
    };
    let own = hello(&cluster.cluster_id, 2);
    let after_hello = |tail: &[u8]| {
        let mut bytes = own.clone();
        bytes.extend_from_slice(tail);
        bytes
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("a huge length", vec![0x7f, 0xff, 0xff, 0xff, 1]),
        ("a zero length", vec![0, 0, 0, 0]),
        ("another cluster's hello", hello("someone-else", 2)),
        ("a hello from a non-voter", hello(&cluster.cluster_id, 42)),
        (
            "a raft frame that does not decode",
            after_hello(&[0, 0, 0, 4, 2, 0xff, 0xff, 0xff]),
        ),
        (
            "a frame of an unknown kind",
            after_hello(&[0, 0, 0, 2, 9, 0]),
        ),
        (
            "a heartbeat for another node",
            after_hello(&frame(3, br#"{"node_id":3,"incarnation":1}"#)),
        ),
        (
            "a heartbeat that does not decode",
            after_hello(&frame(3, b"{")),
        ),
        ("a frame cut short", after_hello(&[0, 0, 1, 0, 2, 1, 2])),
    ];
    for (case, bytes) in &cases {
        assert_closed(case, send_and_judge(addr, bytes, true));
    }
    for id in 1..=3 {
        cluster.node(id).assert_alive();
    }
    // The quorum still commits.
    create(&cluster.node(1).bootstrap(), "after-hostility", 1, 3);
}

#[test]
fn given_a_voter_down_while_the_log_is_compacted_when_it_returns_should_catch_up_from_a_snapshot() {
    let settings = [
        ("metadata.log.max.record.bytes.between.snapshots", "1024"),
        ("broker.heartbeat.interval.ms", "300"),
        ("broker.session.timeout.ms", "2000"),
    ];
    let mut cluster = Cluster::start(3, &settings);
    let controller = cluster.controller() as usize;
    let down = (1..=3).find(|id| *id != controller).expect("another node");
    let bootstrap = cluster.node(controller).bootstrap();
    cluster.node(down).kill9();
    let down_id = down as i32;
    eventually(
        "fenced",
        || broker_ids(&bootstrap),
        |ids| !ids.contains(&down_id),
    );
    // Enough entries that the leader's log no longer holds what the returning voter lacks.
    for i in 0..12 {
        create(&bootstrap, &format!("while-down-{i}"), 1, 2);
    }
    cluster.start_nodes(&[down]);
    let returned = cluster.node(down).bootstrap();
    let names = eventually(
        "every topic on the returned node",
        || topic_names(&returned),
        |n| (0..12).all(|i| n.contains(&format!("while-down-{i}"))),
    );
    assert!(names.len() >= 12);
    let installed = cluster
        .node(down)
        .log_lines()
        .iter()
        .any(|line| line.contains("metadata snapshot installed from the leader"));
    assert!(
        installed,
        "caught up from a snapshot\n{}",
        cluster.node(down).log_tail(80)
    );
}

#[test]
fn given_a_broker_stopped_when_it_stops_should_be_fenced_at_once_not_after_its_session() {
    // A session far longer than the wait below: only the broker's own fence can explain it.
    let mut cluster = Cluster::start(3, &[("broker.session.timeout.ms", "60000")]);
    let controller = cluster.controller() as usize;
    let stopped = (1..=3).find(|id| *id != controller).expect("another node");
    let bootstrap = cluster.node(controller).bootstrap();
    eventually(
        "three brokers",
        || broker_ids(&bootstrap),
        |ids| ids.len() == 3,
    );
    cluster.node(stopped).stop();
    let stopped_at = Instant::now();
    let gone = stopped as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker_ids(&bootstrap).contains(&gone) {
        assert!(
            Instant::now() < deadline,
            "a stopped broker is still listed after 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("unlisted {:?} after its stop", stopped_at.elapsed());
    assert!(
        cluster
            .node(stopped)
            .log_lines()
            .iter()
            .any(|line| line.contains("fenced for the stop")),
        "{}",
        cluster.node(stopped).log_tail(40)
    );
}
