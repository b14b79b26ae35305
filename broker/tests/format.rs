//! `odradek format` and the check at every start: a data directory belongs to one cluster and
//! one node (its `meta.properties`, as Kafka writes it), and a broker given another's refuses to
//! start, saying why; a single node formats itself at its first start.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::{describe_cluster, run_to_exit, Broker};

/// The cluster id the broker at `addr` reports.
fn cluster_id(addr: SocketAddr) -> String {
    describe_cluster(addr).cluster_id.to_string()
}

fn format(dir: &Path, cluster: &str, extra: &[&str]) -> (bool, String) {
    let dir = dir.to_str().expect("UTF-8 path");
    let mut args = vec!["format", "--cluster-id", cluster, "--data-dir", dir];
    args.extend_from_slice(extra);
    let (status, stdout, stderr) = run_to_exit(&args);
    (status.success(), format!("{stdout}{stderr}"))
}

/// Starts odradek on `dir` with `--set` `settings`; it must exit at once, saying `expected`.
fn assert_refused(dir: &Path, settings: &[&str], expected: &str) {
    let dir = dir.to_str().expect("UTF-8 path");
    let mut args = vec!["--listen", "127.0.0.1:0", "--data-dir", dir, "--cores", "1"];
    for setting in settings {
        args.extend_from_slice(&["--set", setting]);
    }
    let (status, _, stderr) = run_to_exit(&args);
    assert!(!status.success(), "started on another's data: {stderr}");
    assert!(stderr.contains(expected), "{stderr}");
}

#[test]
fn given_a_formatted_data_dir_when_started_should_serve_its_cluster_id_and_refuse_other_nodes() {
    let mut broker = Broker::start_after(&[("node.id", "4")], |dir| {
        let (ok, out) = format(dir, "formatted-cluster-1", &["--set", "node.id=4"]);
        assert!(ok, "{out}");
        assert!(out.contains("formatted"), "{out}");
        // Formatting is once: again is refused, unless asked to accept the same format.
        let (ok, out) = format(dir, "formatted-cluster-1", &["--set", "node.id=4"]);
        assert!(!ok && out.contains("--ignore-formatted"), "{out}");
        let same = ["--set", "node.id=4", "--ignore-formatted"];
        let (ok, out) = format(dir, "formatted-cluster-1", &same);
        assert!(ok && out.contains("nothing changed"), "{out}");
        let (ok, out) = format(dir, "another-cluster", &same);
        assert!(!ok && out.contains("formatted-cluster-1"), "{out}");
        let (ok, out) = format(dir, "not a cluster id", &[]);
        assert!(!ok && out.contains("cluster id"), "{out}");
    });
    assert_eq!(cluster_id(broker.addr()), "formatted-cluster-1");
    broker.stop();

    let dir = broker.data_dir();
    assert_refused(&dir, &["node.id=5"], "belongs to node 4");
    let text = std::fs::read_to_string(dir.join("meta.properties")).expect("meta.properties");
    assert!(text.contains("cluster.id=formatted-cluster-1") && text.contains("node.id=4"));
    // The topic registry says which cluster's topics the directory holds: a registry copied
    // from another cluster's directory is refused too.
    let copied = text.replace("formatted-cluster-1", "someone-elses");
    std::fs::write(dir.join("meta.properties"), copied).expect("write");
    assert_refused(
        &dir,
        &["node.id=4"],
        "holds the topics of cluster formatted-cluster-1",
    );
}

#[test]
fn given_an_unformatted_data_dir_when_a_single_node_starts_should_format_it_with_its_own_id() {
    let mut broker = Broker::start();
    let served = cluster_id(broker.addr());
    broker.stop();
    let text = std::fs::read_to_string(broker.data_dir().join("meta.properties")).expect("file");
    assert!(text.contains(&format!("cluster.id={served}\n")), "{text}");
    assert!(
        text.contains("node.id=0\n") && text.contains("version=1\n"),
        "{text}"
    );
    // A data directory from before meta.properties existed is formatted from its registry.
    std::fs::remove_file(broker.data_dir().join("meta.properties")).expect("remove");
    broker.restart();
    assert_eq!(cluster_id(broker.addr()), served);
    let (ok, out) = format(&broker.data_dir(), "another", &["--ignore-formatted"]);
    assert!(!ok, "formatted a running broker's directory: {out}");
}

#[test]
fn given_an_unformatted_data_dir_when_a_cluster_member_starts_should_refuse_and_say_format() {
    // Each member formatting itself would give each its own cluster id: they would never agree.
    let dir = tempfile::tempdir().expect("tempdir");
    let member = [
        "node.id=1",
        "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:29391",
        "controller.quorum.voters=1@127.0.0.1:29391,2@127.0.0.1:29392",
    ];
    assert_refused(dir.path(), &member, "odradek format --cluster-id");
    assert!(
        !dir.path().join("meta.properties").exists(),
        "nothing formatted"
    );
}
