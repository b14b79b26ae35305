//! N `odradek` processes forming one cluster: every node broker and controller, all voters of
//! one metadata quorum, one core each, formatted with one cluster id; on loopback, or each
//! where a [`Placement`] puts it (a network namespace of a test's own).

use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use super::{consumer, run_to_exit, segment_files, Broker, CLIENT_TIMEOUT};

/// Settings that fence a stopped or killed broker within about two seconds (a heartbeat every
/// 300 ms), so that failover tests do not wait out Kafka's 9 s session.
pub const FAST_FENCING: [(&str, &str); 2] = [
    ("broker.heartbeat.interval.ms", "300"),
    ("broker.session.timeout.ms", "2000"),
];

/// A running cluster; node `i` (1-based ids) is `nodes[i - 1]`.
pub struct Cluster {
    pub nodes: Vec<Broker>,
    pub cluster_id: String,
    /// Node `i`'s controller listener port is `controller_ports[i - 1]` (voters only).
    pub controller_ports: Vec<u16>,
    /// `controller.quorum.voters`.
    pub voters: String,
}

/// Ports free now (bound to port 0 and released): the controller listeners must be named in
/// every node's voters before any node starts.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("address").port())
        .collect()
}

/// Where one voter runs: its `process.roles`, the host its listeners bind, its controller
/// listener's port, and the command its process starts under (empty: directly;
/// `ip netns exec NS`: in a network namespace).
pub struct Placement {
    pub roles: String,
    pub host: String,
    pub controller_port: u16,
    pub command_prefix: Vec<String>,
}

impl Cluster {
    /// Starts `n` nodes with `extra` settings each and waits until every one listens (each
    /// listens once it has registered with the quorum).
    pub fn start(n: usize, extra: &[(&str, &str)]) -> Cluster {
        Cluster::start_voters(&vec!["broker,controller"; n], extra)
    }

    /// Starts one voter on loopback per entry of `roles` (`process.roles` of each:
    /// `broker,controller`, or `controller` alone, which has no Kafka listener: its `addr` is
    /// its controller's).
    pub fn start_voters(roles: &[&str], extra: &[(&str, &str)]) -> Cluster {
        let placements = roles
            .iter()
            .zip(free_ports(roles.len()))
            .map(|(roles, controller_port)| Placement {
                roles: roles.to_string(),
                host: "127.0.0.1".to_string(),
                controller_port,
                command_prefix: Vec::new(),
            })
            .collect();
        Cluster::start_placed(placements, extra)
    }

    /// Starts one voter per placement (node `i` is `placements[i - 1]`) with `extra` settings
    /// each and waits until every one listens.
    pub fn start_placed(placements: Vec<Placement>, extra: &[(&str, &str)]) -> Cluster {
        let voters: Vec<String> = placements
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@{}:{}", i + 1, p.host, p.controller_port))
            .collect();
        let voters = voters.join(",");
        let cluster_id = format!("test-cluster-{}", std::process::id());
        let mut nodes = Vec::with_capacity(placements.len());
        for (i, placement) in placements.iter().enumerate() {
            let node_id = (i + 1).to_string();
            let (host, port) = (&placement.host, placement.controller_port);
            let listeners = match placement.roles.as_str() {
                "controller" => format!("CONTROLLER://{host}:{port}"),
                _ => format!("PLAINTEXT://{host}:0,CONTROLLER://{host}:{port}"),
            };
            let member = [node_id.as_str(), &placement.roles, &listeners, &voters];
            let mut node = formatted_node(member, extra, &cluster_id);
            node.listen_host = host.clone();
            node.command_prefix = placement.command_prefix.clone();
            nodes.push(node);
        }
        let mut cluster = Cluster {
            nodes,
            cluster_id,
            controller_ports: placements.iter().map(|p| p.controller_port).collect(),
            voters,
        };
        let all: Vec<usize> = (1..=placements.len()).collect();
        cluster.start_nodes(&all);
        cluster
    }

    /// Adds a broker-only node (no voter: it follows the voters' log), started and listening;
    /// returns its node id.
    pub fn add_broker(&mut self, extra: &[(&str, &str)]) -> usize {
        let id = self.nodes.len() + 1;
        let (node_id, roles, listeners) = (id.to_string(), "broker", "PLAINTEXT://127.0.0.1:0");
        let member = [&node_id, roles, listeners, &self.voters];
        let node = formatted_node(member, extra, &self.cluster_id);
        self.nodes.push(node);
        self.start_nodes(&[id]);
        id
    }

    /// Node `id` (1-based).
    pub fn node(&mut self, id: usize) -> &mut Broker {
        &mut self.nodes[id - 1]
    }

    /// Every running node's address, comma-separated.
    pub fn bootstrap(&mut self) -> String {
        let mut addresses = Vec::new();
        for node in &mut self.nodes {
            if node.is_alive() {
                addresses.push(node.bootstrap());
            }
        }
        addresses.join(",")
    }

    /// Starts the stopped nodes `ids` at once (a lone voter waits for a majority before it
    /// listens) and waits until each listens.
    pub fn start_nodes(&mut self, ids: &[usize]) {
        let started: Vec<(usize, mpsc::Receiver<String>)> = ids
            .iter()
            .map(|id| (*id, self.nodes[id - 1].launch(0)))
            .collect();
        for (id, lines) in started {
            let node = &mut self.nodes[id - 1];
            node.addr = node.wait_for_listening(&lines);
            node.note(&format!("listening on {} (node {id})", node.addr));
        }
    }

    /// The node ids of the metadata quorum's leader as each running node reports it in
    /// DescribeCluster, once they agree (bounded wait).
    pub fn controller(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut seen = Vec::new();
            for node in &mut self.nodes {
                if node.is_alive() {
                    seen.push(super::describe_cluster(node.addr()).controller_id.0);
                }
            }
            if !seen.is_empty() && seen[0] >= 0 && seen.iter().all(|c| *c == seen[0]) {
                return seen[0];
            }
            assert!(
                Instant::now() < deadline,
                "the nodes do not agree on a controller: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// An unstarted node of one core with its data directory formatted: `[node.id, process.roles,
/// listeners, controller.quorum.voters]`, then `extra`.
fn formatted_node(member: [&str; 4], extra: &[(&str, &str)], cluster_id: &str) -> Broker {
    let names = [
        "node.id",
        "process.roles",
        "listeners",
        "controller.quorum.voters",
    ];
    let mut settings: Vec<(String, String)> = names
        .iter()
        .zip(member)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let borrowed: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut node = Broker::unstarted(&borrowed, &[]);
    node.cores = 1;
    format(&node, cluster_id, &settings);
    node
}

fn format(node: &Broker, cluster_id: &str, settings: &[(String, String)]) {
    let dir = node.data_dir();
    let dir = dir.to_str().expect("a UTF-8 path");
    let mut args = vec!["format", "--cluster-id", cluster_id, "--data-dir", dir];
    let sets: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for set in &sets {
        args.push("--set");
        args.push(set);
    }
    let (status, stdout, stderr) = run_to_exit(&args);
    assert!(status.success(), "format failed:\n{stdout}{stderr}");
}

/// Each partition's (leader, replicas, isr) as the broker at `bootstrap` reports them.
pub fn placement(bootstrap: &str, topic: &str) -> Vec<(i32, Vec<i32>, Vec<i32>)> {
    let consumer = consumer(bootstrap, &[]);
    let metadata = consumer
        .fetch_metadata(Some(topic), CLIENT_TIMEOUT)
        .expect("metadata");
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .expect("the topic");
    let mut partitions: Vec<_> = topic
        .partitions()
        .iter()
        .map(|p| (p.id(), p.leader(), p.replicas().to_vec(), p.isr().to_vec()))
        .collect();
    partitions.sort();
    partitions
        .into_iter()
        .map(|(_, l, r, i)| (l, r, i))
        .collect()
}

/// The broker ids Metadata from `bootstrap` lists.
pub fn broker_ids(bootstrap: &str) -> Vec<i32> {
    let consumer = consumer(bootstrap, &[]);
    let metadata = consumer
        .fetch_metadata(None, CLIENT_TIMEOUT)
        .expect("metadata");
    let mut ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
    ids.sort_unstable();
    ids
}

/// Polls `probe` until `check` holds, for at most 40 s; panics with `what` and the last value.
pub fn eventually<T: std::fmt::Debug>(
    what: &str,
    probe: impl FnMut() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    eventually_within(Duration::from_secs(40), what, probe, check)
}

/// [`eventually`] with another bound.
pub fn eventually_within<T: std::fmt::Debug>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let value = probe();
        if check(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: last seen {value:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The batches of a partition's segment files, in order (each file up to its first unused
/// byte: segments are preallocated), as one byte string.
pub fn log_bytes(partition_dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for file in segment_files(partition_dir) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let mut at = 0;
        while at + 12 <= bytes.len() {
            let length = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
            if length <= 0 || at + 12 + length as usize > bytes.len() {
                break;
            }
            at += 12 + length as usize;
        }
        out.extend_from_slice(&bytes[..at]);
    }
    out
}
