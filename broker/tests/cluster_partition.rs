//! A network partition between the voters of a three-node cluster, in network namespaces this
//! test makes itself: the active controller's link is cut, the two others elect a leader and
//! commit a topic, the cut-off node cannot commit one; once the link is back, every node has the
//! majority's history and follows its leader.
//!
//! Needs root (`ip netns`, veth pairs), hence `#[ignore]`; `.ci/run` runs the ignored tests as
//! root. Topology, every name carrying the test's pid and run number so that parallel runs do
//! not meet:
//!
//! ```text
//!  root namespace                 odradek-t<pid>-net             odradek-t<pid>-n<i>
//!  odk<pid>h 10.S.T.254/24 ────── host ┐
//!  (the test and its clients)          br0 ─ n<i> ────────────── eth0 10.S.T.<i>/24
//!                                                                  odradek node <i>
//! ```
//!
//! The bridge sits in a namespace of its own, so the root namespace's firewall (br_netfilter,
//! a FORWARD policy of DROP where Docker runs) never sees the traffic between nodes, and the
//! root namespace gains one interface and one route. Cutting node i is `ip link set n<i> down`
//! on the bridge side: its `eth0` loses carrier, as if its cable were pulled, and everything
//! it sends or is sent is lost without an answer. The test still reaches a cut-off node from a
//! thread that has entered the node's namespace (`setns`), where its address is local.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{NewTopic, TopicReplication};

use common::*;

/// Every node's controller listener port (each node has an address of its own).
const CONTROLLER_PORT: u16 = 9093;
const REQUEST_TIMED_OUT: i16 = 7;
const NOT_CONTROLLER: i16 = 41;
/// A proposal no majority commits is answered after 15 s (the broker's proposal timeout).
const MINORITY_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Elections take 1 to 2 s (10 to 20 ticks of 100 ms); a fenced broker is seen after
/// `broker.session.timeout.ms` (9 s). Every wait below is bounded by this.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// The namespaces, links and addresses of one test run; removes them all when dropped, also
/// when the test panics.
struct Network {
    /// `odradek-t<pid>`: every namespace's name starts with it.
    prefix: String,
    /// The root namespace's end of the veth pair to the bridge.
    host_link: String,
    /// `10.S.T`: the /24 of this run.
    subnet: String,
    nodes: usize,
}

impl Network {
    /// Removes what a crashed run of the same pid left, then builds the topology for `nodes`.
    fn build(nodes: usize) -> Network {
        // SAFETY: geteuid(2) reads a process attribute; no memory is involved.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "this test makes network namespaces and veth pairs, which needs root: run it as \
             root (as .ci/run does)"
        );
        // The tests of one process run in parallel: each network is the pid's and a number's.
        static BUILT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let run = BUILT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = std::process::id();
        let id = pid.wrapping_mul(4).wrapping_add(run);
        // 10.200.0.0 to 10.249.255.0: a /24 per run, unlikely to be a network of the machine's;
        // checked below all the same.
        let subnet = format!("10.{}.{}", 200 + (id >> 8) % 50, id & 0xff);
        let network = Network {
            prefix: format!("odradek-t{pid}-{run}"),
            host_link: format!("odk{pid}{run}h"),
            subnet,
            nodes,
        };
        network.remove();
        network.check_subnet_unused();
        network.make();
        network
    }

    fn make(&self) {
        let switch = self.switch();
        ip(&["netns", "add", &switch]);
        ip(&[
            "-n",
            &switch,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        let host = &self.host_link;
        ip(&[
            "link", "add", host, "type", "veth", "peer", "name", "host", "netns", &switch,
        ]);
        ip(&["-n", &switch, "link", "set", "host", "master", "br0", "up"]);
        let host_address = format!("{}.254/24", self.subnet);
        ip(&["addr", "add", &host_address, "dev", host]);
        ip(&["link", "set", host, "up"]);
        for id in 1..=self.nodes {
            let (ns, port) = (self.node_ns(id), format!("n{id}"));
            ip(&["netns", "add", &ns]);
            let pair = ["type", "veth", "peer", "name", "eth0", "netns", &ns];
            ip(&[&["-n", &switch, "link", "add", &port][..], &pair].concat());
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            let address = format!("{}/24", self.node_host(id));
            ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
    }

    /// The bridge's namespace.
    fn switch(&self) -> String {
        format!("{}-net", self.prefix)
    }

    fn node_ns(&self, id: usize) -> String {
        format!("{}-n{id}", self.prefix)
    }

    fn node_host(&self, id: usize) -> String {
        format!("{}.{id}", self.subnet)
    }

    /// Where each node runs: in its namespace, on its address.
    fn placements(&self) -> Vec<Placement> {
        (1..=self.nodes)
            .map(|id| Placement {
                roles: "broker,controller".to_string(),
                host: self.node_host(id),
                controller_port: CONTROLLER_PORT,
                command_prefix: ["ip", "netns", "exec", &self.node_ns(id)]
                    .map(String::from)
                    .to_vec(),
            })
            .collect()
    }

    /// Pulls node `id`'s cable: nothing it sends arrives, nothing sent to it arrives.
    fn cut(&self, id: usize) {
        ip(&[
            "-n",
            &self.switch(),
            "link",
            "set",
            &format!("n{id}"),
            "down",
        ]);
    }

    fn heal(&self, id: usize) {
        ip(&["-n", &self.switch(), "link", "set", &format!("n{id}"), "up"]);
    }

    /// Runs `work` on a thread inside node `id`'s network namespace, where the node's address
    /// is local: the way to reach a node whose cable is pulled.
    fn on_node<T: Send + 'static>(
        &self,
        id: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        use std::os::fd::AsRawFd;
        let path = format!("/run/netns/{}", self.node_ns(id));
        thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns(2) with a descriptor this thread owns; it moves only this thread,
            // which ends with `work`, into the namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            work()
        })
    }

    /// A route of the machine's own to this run's /24 would be shadowed by the bridge's.
    fn check_subnet_unused(&self) {
        let probe = format!("{}.1", self.subnet);
        let output = Command::new("ip")
            .args(["-4", "route", "show", "match", &probe])
            .output()
            .unwrap_or_else(|e| panic!("run ip: {e}; install iproute2"));
        let routes = String::from_utf8_lossy(&output.stdout);
        let taken: Vec<&str> = routes
            .lines()
            .filter(|l| !l.starts_with("default"))
            .collect();
        assert!(
            taken.is_empty(),
            "{}.0/24 is routed on this machine already ({taken:?}); run the test again (the \
             subnet comes from the pid)",
            self.subnet
        );
    }

    /// Deletes the namespaces (their links go with them) and the root namespace's link;
    /// quietly, as after a clean run nothing is there.
    fn remove(&self) {
        ip_quietly(&["link", "del", &self.host_link]);
        for id in 1..=self.nodes {
            ip_quietly(&["netns", "del", &self.node_ns(id)]);
        }
        ip_quietly(&["netns", "del", &self.switch()]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Runs `ip ARGS`; panics with its stderr unless it succeeds.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run ip: {e}; this test needs iproute2"));
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

fn ip_quietly(args: &[&str]) {
    let _ = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The topic names in a full Metadata (v12) of the broker at `addr`.
fn topics_at(addr: SocketAddr) -> std::io::Result<BTreeSet<String>> {
    let request = MetadataRequest::default().with_topics(None);
    let response: MetadataResponse = call(addr, ApiKey::Metadata, 12, &request, CLIENT_TIMEOUT)?;
    Ok(response
        .topics
        .iter()
        .filter_map(|t| Some(t.name.as_ref()?.to_string()))
        .collect())
}

/// The active controller and the live brokers, as DescribeCluster at `addr` reports them.
fn quorum_at(addr: SocketAddr) -> std::io::Result<(i32, Vec<i32>)> {
    let request = DescribeClusterRequest::default();
    let response: DescribeClusterResponse =
        call(addr, ApiKey::DescribeCluster, 0, &request, CLIENT_TIMEOUT)?;
    let mut brokers: Vec<i32> = response.brokers.iter().map(|b| b.broker_id.0).collect();
    brokers.sort_unstable();
    Ok((response.controller_id.0, brokers))
}

/// CreateTopics v7 of `topic` (one partition, one replica) sent to the broker at `addr` itself
/// (not to the controller a client would look up): the topic's error code.
fn create_at(addr: SocketAddr, topic: &str, timeout: Duration) -> std::io::Result<i16> {
    let creatable = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_num_partitions(1)
        .with_replication_factor(1);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable])
        .with_timeout_ms(timeout.as_millis() as i32);
    let response: CreateTopicsResponse = call(addr, ApiKey::CreateTopics, 7, &request, timeout)?;
    Ok(response.topics.first().map_or(-1, |t| t.error_code))
}

/// Creates `topic` with rdkafka through `bootstrap`, as a client on that side would.
fn create_with_client(bootstrap: &str, topic: &str) {
    let admin = admin(bootstrap);
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let results = block_on(admin.create_topics([&new_topic], &admin_options()))
        .unwrap_or_else(|e| panic!("CreateTopics {topic} through {bootstrap}: {e}"));
    if let Err((name, code)) = &results[0] {
        panic!("CreateTopics {name} through {bootstrap}: {code:?}");
    }
}

/// [`common::eventually_within`] the partitioned cluster's bound.
fn eventually<T: std::fmt::Debug>(
    what: &str,
    probe: impl FnMut() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    eventually_within(CONVERGENCE_TIMEOUT, what, probe, check)
}

fn names(topics: &[&str]) -> BTreeSet<String> {
    topics.iter().map(|t| t.to_string()).collect()
}

/// `probe` of every node in `addrs`; panics when one does not answer.
fn each<T>(addrs: &[SocketAddr], probe: impl Fn(SocketAddr) -> std::io::Result<T>) -> Vec<T> {
    addrs
        .iter()
        .map(|a| probe(*a).unwrap_or_else(|e| panic!("{a}: {e}")))
        .collect()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn given_the_controller_cut_off_when_both_sides_create_topics_should_keep_the_majoritys_history() {
    let started = Instant::now();
    let phase = |what: &str| eprintln!("[test] {what} (at {:?})", started.elapsed());
    // Declared before the cluster, dropped after it: the nodes die before their namespaces go.
    let network = Network::build(3);
    let mut cluster = Cluster::start_placed(network.placements(), &[]);
    let addrs: Vec<SocketAddr> = (1..=3).map(|id| cluster.node(id).addr()).collect();
    let all_ids = vec![1, 2, 3];
    eventually(
        "every node lists the three brokers",
        || each(&addrs, quorum_at),
        |seen| seen.iter().all(|(_, brokers)| *brokers == all_ids),
    );
    let old_leader = cluster.controller();
    let cut = old_leader as usize;
    let majority: Vec<SocketAddr> = (1..=3)
        .filter(|id| *id != cut)
        .map(|id| addrs[id - 1])
        .collect();
    let majority_ids: Vec<i32> = (1..=3).filter(|id| *id != old_leader).collect();
    create_with_client(&cluster.bootstrap(), "before-cut");
    eventually(
        "every node has the first topic",
        || each(&addrs, topics_at),
        |seen| seen.iter().all(|t| *t == names(&["before-cut"])),
    );
    phase(&format!(
        "three nodes up, node {old_leader} leads; cutting its link"
    ));

    network.cut(cut);
    // At once, while the cut-off leader may still believe it leads: its log may take the entry,
    // no majority can commit it.
    let isolated = addrs[cut - 1];
    let attempt = network.on_node(cut, move || {
        let sent = Instant::now();
        let outcome = create_at(isolated, "minority-topic", MINORITY_ANSWER_TIMEOUT);
        (outcome, sent.elapsed())
    });
    let (new_leader, _) = eventually(
        "the two others elect a leader among themselves",
        || each(&majority, quorum_at),
        |seen| seen[0].0 == seen[1].0 && majority_ids.contains(&seen[0].0),
    )[0];
    phase(&format!("node {new_leader} elected on the majority side"));
    let majority_bootstrap = majority.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    create_with_client(&majority_bootstrap.join(","), "majority-topic");
    let history = names(&["before-cut", "majority-topic"]);
    eventually(
        "the majority has its topic",
        || each(&majority, topics_at),
        |seen| seen.iter().all(|t| *t == history),
    );
    phase("the majority committed its topic");
    eventually(
        "the majority fences the cut-off broker",
        || each(&majority, quorum_at),
        |seen| seen.iter().all(|(_, brokers)| *brokers == majority_ids),
    );
    phase("the majority fenced the cut-off broker");

    let (outcome, answered_after) = attempt.join().expect("the minority's attempt ran");
    phase(&format!(
        "the cut-off node had answered the minority's CreateTopics with {outcome:?} after \
         {answered_after:?}"
    ));
    assert!(
        matches!(outcome, Ok(REQUEST_TIMED_OUT | NOT_CONTROLLER)),
        "a topic created where no majority is must fail with REQUEST_TIMED_OUT or \
         NOT_CONTROLLER, not {outcome:?}"
    );
    let inside = network.on_node(cut, move || (topics_at(isolated), quorum_at(isolated)));
    let (topics, quorum) = inside.join().expect("the look from inside ran");
    assert_eq!(
        topics.expect("Metadata of the cut-off node"),
        names(&["before-cut"]),
        "the cut-off node has neither its own attempt nor the majority's topic"
    );
    let (controller, _) = quorum.expect("DescribeCluster of the cut-off node");
    assert_ne!(
        controller, old_leader,
        "a leader without a majority steps down (check_quorum)"
    );

    network.heal(cut);
    phase("link healed");
    eventually(
        "the three nodes follow the majority's leader",
        || each(&addrs, quorum_at),
        |seen| seen.iter().all(|q| *q == (new_leader, all_ids.clone())),
    );
    phase("the old leader follows the new one and is unfenced");
    eventually(
        "every node has the majority's history",
        || each(&addrs, topics_at),
        |seen| seen.iter().all(|t| *t == history),
    );
    phase("every node has the majority's history");
    // The old leader takes proposals again, forwarding them to the new one.
    let created = create_at(isolated, "after-heal", CLIENT_TIMEOUT);
    assert_eq!(created.expect("CreateTopics through the old leader"), 0);
    let history = names(&["after-heal", "before-cut", "majority-topic"]);
    eventually(
        "every node has the topic created through the old leader",
        || each(&addrs, topics_at),
        |seen| seen.iter().all(|t| *t == history),
    );
    for id in 1..=3 {
        cluster.node(id).assert_alive();
    }
    phase("one history on every node");
}

/// Produce v7 with acks=all of one record to `partition` of `topic`, sent to the broker at
/// `addr` itself: the partition's error code.
fn produce_at(addr: SocketAddr, topic: &str, partition: i32) -> std::io::Result<i16> {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
    let records = record_batch(b"from the cut-off leader", now_ms());
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records.into()))])]);
    let response: ProduceResponse = call(addr, ApiKey::Produce, 7, &request, CLIENT_TIMEOUT)?;
    Ok(response.responses[0].partition_responses[0].error_code)
}

#[test]
#[ignore = "needs root: network namespaces"]
fn given_a_partition_leader_cut_off_should_acknowledge_nothing_the_majority_then_loses() {
    let started = Instant::now();
    let phase = |what: &str| eprintln!("[test] {what} (at {:?})", started.elapsed());
    let network = Network::build(3);
    let mut cluster = Cluster::start_placed(network.placements(), &FAST_FENCING);
    let addrs: Vec<SocketAddr> = (1..=3).map(|id| cluster.node(id).addr()).collect();
    eventually(
        "every node lists the three brokers",
        || each(&addrs, quorum_at),
        |seen| seen.iter().all(|(_, brokers)| brokers.len() == 3),
    );
    let controller = cluster.controller();
    let bootstrap = cluster.bootstrap();
    create_topic_with(
        &bootstrap,
        "guarded",
        (3, 3),
        &[("min.insync.replicas", "2")],
    );
    let placed = eventually(
        "every ISR full",
        || placement(&bootstrap, "guarded"),
        |p| p.iter().all(|(_, _, isr)| isr.len() == 3),
    );
    // A partition led by a broker that is not the controller: cut off, it still believes it
    // leads, and it cannot reach the controller to shrink the ISR.
    let (partition, leader) = placed
        .iter()
        .enumerate()
        .find(|(_, (leader, _, _))| *leader != controller)
        .map(|(p, (leader, _, _))| (p as i32, *leader as usize))
        .expect("leaders are spread over the three brokers");
    let (producer, log) = producer(&bootstrap, &[]);
    for i in 0..20 {
        let value = format!("before-{i}");
        let record = rdkafka::producer::BaseRecord::<str, str, usize>::with_opaque_to("guarded", i)
            .partition(partition)
            .payload(value.as_str());
        send(&producer, record).expect("queue");
    }
    flush(&producer);
    assert_eq!(log.acked_count(), 20, "{:?}", log.failed().first());
    phase(&format!(
        "partition {partition} led by {leader}; cutting its link"
    ));

    network.cut(leader);
    let isolated = addrs[leader - 1];
    let attempt = network.on_node(leader, move || produce_at(isolated, "guarded", partition));
    let majority: Vec<String> = (1..=3)
        .filter(|id| *id != leader)
        .map(|id| addrs[id - 1].to_string())
        .collect();
    let majority = majority.join(",");
    let new_leader = eventually(
        "the majority elects another leader for the partition",
        || placement(&majority, "guarded")[partition as usize].0,
        |l| *l > 0 && *l != leader as i32,
    );
    phase(&format!(
        "broker {new_leader} leads partition {partition} now"
    ));
    let code = attempt.join().expect("the attempt ran").expect("an answer");
    phase(&format!(
        "the cut-off leader answered acks=all with error {code}"
    ));
    assert_ne!(
        code, 0,
        "a leader cut off from its ISR and controller acknowledged a write"
    );

    network.heal(leader);
    eventually(
        "the old leader back in the ISR",
        || placement(&majority, "guarded")[partition as usize].2.len(),
        |n| *n == 3,
    );
    let old = cluster.node(leader).partition_dir("guarded", partition);
    let new = cluster
        .node(new_leader as usize)
        .partition_dir("guarded", partition);
    eventually(
        "the old leader byte-identical to the new one (its own record truncated)",
        || (log_bytes(&old).len(), log_bytes(&new).len()),
        |_| log_bytes(&old) == log_bytes(&new),
    );
    let consumer = consumer(&majority, &[]);
    consumer_assign(&consumer, "guarded", partition);
    let values: Vec<String> = drain_for(&consumer, Duration::from_secs(3))
        .iter()
        .map(|m| String::from_utf8_lossy(rdkafka::Message::payload(m).unwrap_or_default()).into())
        .collect();
    assert_eq!(
        values.len(),
        20,
        "only what the ISR acknowledged: {values:?}"
    );
    phase("the old leader follows, holding only what the ISR acknowledged");
}

fn consumer_assign(consumer: &rdkafka::consumer::BaseConsumer, topic: &str, partition: i32) {
    use rdkafka::consumer::Consumer;
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
        .expect("add");
    consumer.assign(&list).expect("assign");
}
