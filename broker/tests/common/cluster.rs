//! N `odradek` processes on loopback forming one cluster: every node broker and controller,
//! all voters of one metadata quorum, one core each, formatted with one cluster id.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{run_to_exit, Broker};

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

impl Cluster {
    /// Starts `n` nodes with `extra` settings each and waits until every one listens (each
    /// listens once it has registered with the quorum).
    pub fn start(n: usize, extra: &[(&str, &str)]) -> Cluster {
        Cluster::start_voters(&vec!["broker,controller"; n], extra)
    }

    /// Starts one voter per entry of `roles` (`process.roles` of each: `broker,controller`, or
    /// `controller` alone, which has no Kafka listener: its `addr` is its controller's).
    pub fn start_voters(roles: &[&str], extra: &[(&str, &str)]) -> Cluster {
        let n = roles.len();
        let ports = free_ports(n);
        let voters: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
            .collect();
        let voters = voters.join(",");
        let cluster_id = format!("test-cluster-{}", std::process::id());
        let mut nodes = Vec::with_capacity(n);
        for (i, port) in ports.iter().enumerate() {
            let node_id = (i + 1).to_string();
            let listeners = match roles[i] {
                "controller" => format!("CONTROLLER://127.0.0.1:{port}"),
                _ => format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"),
            };
            let mut settings: Vec<(String, String)> = vec![
                ("node.id".into(), node_id),
                ("process.roles".into(), roles[i].into()),
                ("listeners".into(), listeners),
                ("controller.quorum.voters".into(), voters.clone()),
            ];
            settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            let borrowed: Vec<(&str, &str)> = settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut node = Broker::unstarted(&borrowed, &[]);
            node.cores = 1;
            format(&node, &cluster_id, &settings);
            nodes.push(node);
        }
        let mut cluster = Cluster {
            nodes,
            cluster_id,
            controller_ports: ports,
            voters,
        };
        let all: Vec<usize> = (1..=n).collect();
        cluster.start_nodes(&all);
        cluster
    }

    /// Adds a broker-only node (no voter: it follows the voters' log), started and listening;
    /// returns its node id.
    pub fn add_broker(&mut self, extra: &[(&str, &str)]) -> usize {
        let id = self.nodes.len() + 1;
        let mut settings: Vec<(String, String)> = vec![
            ("node.id".into(), id.to_string()),
            ("process.roles".into(), "broker".into()),
            ("listeners".into(), "PLAINTEXT://127.0.0.1:0".into()),
            ("controller.quorum.voters".into(), self.voters.clone()),
        ];
        settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let borrowed: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut node = Broker::unstarted(&borrowed, &[]);
        node.cores = 1;
        format(&node, &self.cluster_id, &settings);
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
