//! End-to-end: the real `odradek` binary on port 0 in a temporary directory, driven by the real
//! `odradek-bench` binary. Timings are never asserted; only that the run completes, the JSON
//! carries its fields and --verify passes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BENCH: &str = env!("CARGO_BIN_EXE_odradek-bench");

/// The broker process, killed when the test ends however it ends.
struct Broker {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// The `odradek` binary beside `odradek-bench` (same target directory and profile, whatever
/// `--target-dir` CI uses), built first if it is missing (`cargo test --workspace` builds it).
fn broker_binary() -> PathBuf {
    let profile_dir = Path::new(BENCH)
        .parent()
        .expect("odradek-bench has a directory");
    let binary = profile_dir.join("odradek");
    if !binary.exists() {
        let target_dir = profile_dir.parent().expect("a target directory");
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "-p", "odradek-broker", "--target-dir"])
            .arg(target_dir)
            .current_dir(workspace_root());
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build -p odradek-broker");
        assert!(status.success(), "cargo build -p odradek-broker failed");
    }
    assert!(binary.exists(), "no broker binary at {}", binary.display());
    binary
}

fn start_broker() -> Broker {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(broker_binary())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start odradek");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    // Keep draining the broker's log so that it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("odradek listening on ").nth(1) {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the broker says where it listens within 20 s");
    Broker {
        child,
        addr,
        _dir: dir,
    }
}

#[test]
fn given_a_broker_when_producing_and_consuming_with_verify_should_pass_and_write_json() {
    let broker = start_broker();
    let out = tempfile::tempdir().expect("temp dir");
    let json = out.path().join("out.json");
    let html = out.path().join("out.html");
    let output = Command::new(BENCH)
        .args(["--bootstrap", &broker.addr])
        .args(["--topic", "bench-verify", "--partitions", "3"])
        .args(["--message-size", "256", "--acks", "all"])
        .args(["--producers", "2", "--consumers", "2", "--cores", "2"])
        .args(["--duration", "3s", "--warmup", "1s", "--keys", "random:50"])
        .args(["--rate", "20000", "--verify", "--json"])
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .output()
        .expect("run odradek-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "odradek-bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("verify: PASSED"), "{stdout}");
    let text = std::fs::read_to_string(&json).expect("the JSON report exists");
    let report: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    for field in ["publish_msgs_per_s", "publish_mb_per_s", "consume_mb_per_s"] {
        assert!(report[field].is_number(), "{field} in {text}");
    }
    for histogram in ["publish_latency_us", "e2e_latency_us"] {
        for field in ["p50", "p99", "p999", "max"] {
            assert!(
                report[histogram][field].is_u64(),
                "{histogram}.{field} in {text}"
            );
        }
    }
    assert!(report["publish_msgs_per_s"].as_f64().unwrap_or(0.0) > 0.0);
    // Every acknowledged request's round trip is part of its messages' publish latency.
    let round_trip = &report["request_latency_us"];
    assert!(round_trip["count"].as_u64().unwrap_or(0) > 0, "{text}");
    assert!(
        round_trip["p50"].as_u64() <= report["publish_latency_us"]["max"].as_u64(),
        "{text}"
    );
    assert_eq!(report["verify"]["passed"], true);
    let page = std::fs::read_to_string(&html).expect("the HTML report exists");
    assert!(
        page.contains("<svg") && page.contains("verify: <b>PASSED"),
        "{page}"
    );
    assert!(
        !page.contains("src=") && !page.contains("href="),
        "no network fetch"
    );
}

#[test]
fn given_lz4_when_producing_a_message_count_should_read_back_every_message() {
    let broker = start_broker();
    let output = Command::new(BENCH)
        .args(["--bootstrap", &broker.addr])
        .args(["--topic", "bench-count", "--partitions", "2"])
        .args(["--acks", "1", "--compression", "lz4", "--messages", "20000"])
        .args(["--producers", "2", "--consumers", "1", "--verify"])
        .output()
        .expect("run odradek-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("verify: PASSED (20000 "), "{stdout}");
}

#[test]
fn given_batches_over_max_message_bytes_should_name_the_refusal_and_fail() {
    let broker = start_broker();
    let output = Command::new(BENCH)
        .args(["--bootstrap", &broker.addr])
        .args(["--topic", "bench-too-large", "--partitions", "1"])
        .args(["--acks", "1", "--batch-size", "2MiB", "--messages", "3000"])
        .args(["--producers", "1", "--consumers", "0"])
        .output()
        .expect("run odradek-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("publish failed: producer 0: produce to partition 0")
            && stdout.contains("MESSAGE_TOO_LARGE"),
        "{stdout}"
    );
}

#[test]
fn given_no_broker_when_starting_should_fail_with_one_line() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let output = Command::new(BENCH)
        .args([
            "--bootstrap",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "2s",
        ])
        .output()
        .expect("run odradek-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[test]
fn given_bad_arguments_should_fail_with_one_line() {
    for args in [
        &["--acks", "2"][..],
        &["--message-size", "8"],
        &["--duration", "soon"],
        &["--keys", "random:0"],
        &["--verify", "--consumers", "0"],
    ] {
        let output = Command::new(BENCH).args(args).output().expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}
