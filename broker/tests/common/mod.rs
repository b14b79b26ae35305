//! Test harness shared by the integration tests: it runs the real `odradek` binary and builds
//! real Kafka clients (librdkafka through the `rdkafka` crate) against it.
//!
//! Layout:
//! - [`Broker`]: one `odradek` process on `127.0.0.1:0` (or another host, run under a command
//!   prefix such as `ip netns exec NS`) in its own temporary data directory; kill -9, graceful
//!   stop, restart on the same data directory, stderr kept for diagnostics.
//! - [`run_to_exit`]: the binary run to its exit (`--help`, refused settings).
//! - `clients`: rdkafka builders: [`producer`] (threaded, every delivery report recorded),
//!   [`consumer`], [`admin`], topic helpers, and [`incremental_alter_config`] through librdkafka's
//!   C API, which the `rdkafka` crate does not wrap (its `alter_configs` is the legacy API).
//! - `raw`: hand-built Kafka frames and a response reader, for tests below the client libraries.
//! - `old_versions`: request bodies and full response readers for the versions older than the
//!   codec (Produce v0–2, Fetch v0–3, CreateTopics v0–1, DeleteTopics v0, DescribeConfigs v0,
//!   ListOffsets v0, OffsetCommit v0–1, OffsetFetch v0).
//! - `cluster`: [`Cluster`], N `odradek` processes forming one metadata quorum, on loopback or
//!   where each node's [`Placement`] puts it.
//! - [`call`]: one request on a fresh connection and its decoded response (DescribeCluster).
//! - files: partition directory sizes and segment files.
//!
//! Every wait in here has a bound and panics with the broker's stderr so far when it runs out:
//! a broker that hangs must fail the test, never hang it.

#![allow(dead_code)]

mod clients;
mod cluster;
mod old_versions;
mod raw;

// Each test binary uses its own part of the harness.
#[allow(unused_imports)]
pub use clients::*;
#[allow(unused_imports)]
pub use cluster::*;
#[allow(unused_imports)]
pub use old_versions::*;
#[allow(unused_imports)]
pub use raw::*;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::{Decodable, Encodable};
use odradek_net::client::{decode_response, encode_request, read_frame_blocking};
use tempfile::TempDir;

/// How long the broker may take to print its listening line.
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop (SIGTERM) may take before the test fails.
pub const BROKER_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Generous bound for one client round trip (admin request, metadata, watermarks).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

const LISTENING_MARKER: &str = "odradek listening on ";

/// The `--data-dir` of [`Broker::start_with_relative_data_dir`], relative to its working directory.
const RELATIVE_DATA_DIR: &str = "data";

/// One running (or stopped) `odradek` process and the data directory it owns.
pub struct Broker {
    child: Option<Child>,
    addr: SocketAddr,
    data_dir: TempDir,
    settings: Vec<String>,
    /// More command-line arguments (e.g. `--config FILE`), after the harness's own.
    extra_args: Vec<String>,
    cores: u32,
    /// Every stderr line of every incarnation of this broker, in order.
    log: Arc<Mutex<Vec<String>>>,
    /// Counts starts, so log lines can tell incarnations apart.
    incarnation: u32,
    /// Run in the temporary directory with `--data-dir data` (relative), as a user would.
    relative_data_dir: bool,
    /// The host the Kafka listener binds (`--listen HOST:PORT`).
    listen_host: String,
    /// A command the binary runs under, e.g. `ip netns exec NS` (empty: run it directly).
    command_prefix: Vec<String>,
}

impl Broker {
    /// Starts a broker with the default settings.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts a broker with extra `--set name=value` settings.
    pub fn start_with(settings: &[(&str, &str)]) -> Broker {
        Broker::start_with_args(settings, &[])
    }

    /// Starts a broker with extra `--set name=value` settings and extra command-line arguments.
    pub fn start_with_args(settings: &[(&str, &str)], extra_args: &[&str]) -> Broker {
        let mut broker = Broker::unstarted(settings, extra_args);
        broker.spawn();
        broker
    }

    /// Starts a broker with extra `--set name=value` settings after `prepare` has run on its
    /// (empty) data directory, as an operator's `odradek format` does before a first start.
    pub fn start_after(settings: &[(&str, &str)], prepare: impl FnOnce(&Path)) -> Broker {
        let mut broker = Broker::unstarted(settings, &[]);
        prepare(&broker.data_dir());
        broker.spawn();
        broker
    }

    /// Starts a broker whose working directory is its temporary directory and whose data
    /// directory is given relative to it (`--data-dir data`), as a user starting it by hand does.
    pub fn start_with_relative_data_dir() -> Broker {
        let mut broker = Broker::unstarted(&[], &[]);
        broker.relative_data_dir = true;
        broker.spawn();
        broker
    }

    fn unstarted(settings: &[(&str, &str)], extra_args: &[&str]) -> Broker {
        let data_dir = tempfile::Builder::new()
            .prefix("odradek-test-")
            .tempdir()
            .expect("create the broker's temporary data directory");
        Broker {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            settings: settings.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            cores: 2,
            log: Arc::new(Mutex::new(Vec::new())),
            incarnation: 0,
            relative_data_dir: false,
            listen_host: "127.0.0.1".to_string(),
            command_prefix: Vec::new(),
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> PathBuf {
        if self.relative_data_dir {
            self.data_dir.path().join(RELATIVE_DATA_DIR)
        } else {
            self.data_dir.path().to_path_buf()
        }
    }

    /// The partition directory `<data-dir>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir().join(format!("{topic}-{partition}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker is not running").id()
    }

    /// True while the process has not exited.
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(child) => matches!(child.try_wait(), Ok(None)),
        }
    }

    /// Panics (with the broker's stderr) if the process has exited.
    pub fn assert_alive(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the broker exited unexpectedly with {status}\n{}",
                    self.log_tail(200)
                );
            }
        } else {
            panic!("the broker is not running");
        }
    }

    /// SIGKILL, then reap the process. Nothing is flushed: this is the crash.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9: the broker is not running");
        child.kill().expect("send SIGKILL to the broker");
        let status = child.wait().expect("reap the killed broker");
        self.note(&format!("killed with SIGKILL ({status})"));
    }

    /// SIGTERM, then wait for the process to exit with status 0.
    pub fn stop(&mut self) {
        let status = self.terminate();
        assert!(
            status.success(),
            "the broker did not exit with status 0 after SIGTERM: {status}\n{}",
            self.log_tail(200)
        );
    }

    /// SIGTERM and wait for exit (bounded); returns the exit status, whatever it is.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("stop: the broker is not running");
        send_signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + BROKER_STOP_TIMEOUT;
        loop {
            match child.try_wait().expect("wait for the broker") {
                Some(status) => {
                    self.note(&format!("stopped with SIGTERM ({status})"));
                    return status;
                }
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the broker did not exit within {BROKER_STOP_TIMEOUT:?} of SIGTERM\n{}",
                        self.log_tail(200)
                    );
                }
                None => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Starts the broker again on the same data directory (it gets a new port).
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart: stop or kill the broker first"
        );
        self.spawn();
    }

    /// Restarts on the port the broker had, so clients that outlive the restart reconnect.
    pub fn restart_on_same_port(&mut self) {
        assert!(
            self.child.is_none(),
            "restart: stop or kill the broker first"
        );
        let port = self.addr.port();
        self.spawn_on(port);
        assert_eq!(self.addr.port(), port, "the same port");
    }

    /// The last `lines` stderr lines, for panic messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log.lock().expect("broker log lock");
        let start = log.len().saturating_sub(lines);
        let mut text = String::from("--- odradek stderr (last lines) ---\n");
        for line in &log[start..] {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("--- end of odradek stderr ---");
        text
    }

    /// All stderr lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("broker log lock").clone()
    }

    fn note(&self, text: &str) {
        let line = format!("[harness] broker #{} {text}", self.incarnation);
        eprintln!("{line}");
        self.log.lock().expect("broker log lock").push(line);
    }

    fn spawn(&mut self) {
        self.spawn_on(0);
    }

    fn spawn_on(&mut self, port: u16) {
        let lines = self.launch(port);
        self.addr = self.wait_for_listening(&lines);
        self.note(&format!("listening on {}", self.addr));
    }

    /// Starts the process; its stderr lines come on the receiver until it listens.
    fn launch(&mut self, port: u16) -> mpsc::Receiver<String> {
        self.incarnation += 1;
        let binary = env!("CARGO_BIN_EXE_odradek");
        let mut command = match self.command_prefix.split_first() {
            None => Command::new(binary),
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
        };
        command
            .arg("--listen")
            .arg(format!("{}:{port}", self.listen_host));
        if self.relative_data_dir {
            command
                .current_dir(self.data_dir.path())
                .arg("--data-dir")
                .arg(RELATIVE_DATA_DIR);
        } else {
            command.arg("--data-dir").arg(self.data_dir.path());
        }
        command.arg("--cores").arg(self.cores.to_string());
        for setting in &self.settings {
            command.arg("--set").arg(setting);
        }
        command.args(&self.extra_args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        self.note(&format!("starting: {command:?}"));
        let mut child = command.spawn().expect("spawn the odradek binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let log = Arc::clone(&self.log);
        let incarnation = self.incarnation;
        // Drains stderr for the life of the process so the broker never blocks on a full pipe.
        // eprintln! output of a thread spawned by a test is captured with the test's own output,
        // so a failing test shows the broker's log.
        thread::Builder::new()
            .name(format!("odradek-stderr-{incarnation}"))
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[odradek#{incarnation}] {line}");
                    log.lock().expect("broker log lock").push(line.clone());
                    // The receiver is gone once the broker has started; that is fine.
                    let _ = lines_tx.send(line);
                }
            })
            .expect("spawn the stderr drain thread");
        self.child = Some(child);
        lines_rx
    }

    fn wait_for_listening(&mut self, lines: &mpsc::Receiver<String>) -> SocketAddr {
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = self.child.as_mut().map(Child::kill);
                panic!(
                    "the broker printed no '{LISTENING_MARKER}{}:PORT' line within \
                     {BROKER_START_TIMEOUT:?}\n{}",
                    self.listen_host,
                    self.log_tail(500)
                );
            }
            match lines.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(addr) = parse_listening_line(&line) {
                        return addr;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stderr closed: the process is exiting or gone.
                    let status = self.child.as_mut().and_then(|c| c.wait().ok());
                    self.child = None;
                    panic!(
                        "the broker exited before listening (status {status:?})\n{}",
                        self.log_tail(500)
                    );
                }
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `odradek` with `args` to its exit (bounded by [`BROKER_START_TIMEOUT`]); returns the
/// exit status, stdout and stderr. For command lines that must stop the start (bad settings,
/// `--help`).
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_odradek"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the odradek binary");
    let collect = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
            }
            text
        })
    };
    let stdout = collect(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr = collect(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let deadline = Instant::now() + BROKER_START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for odradek") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "odradek {args:?} did not exit within {BROKER_START_TIMEOUT:?}; stderr:\n{stderr}"
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    (status, stdout, stderr)
}

/// DescribeCluster v0 of the broker at `addr`.
pub fn describe_cluster(addr: SocketAddr) -> DescribeClusterResponse {
    let request = DescribeClusterRequest::default();
    call(
        addr,
        ApiKey::DescribeCluster,
        0,
        &request,
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("DescribeCluster to {addr}: {e}"))
}

/// One request on a fresh connection to `addr` and its response, waiting at most `timeout`
/// for it; an error says what failed (connect, no answer in time, a response that does not
/// decode).
pub fn call<Req: Encodable, Resp: Decodable>(
    addr: SocketAddr,
    api_key: ApiKey,
    version: i16,
    request: &Req,
    timeout: Duration,
) -> std::io::Result<Resp> {
    use std::io::Write;
    let other = |e: odradek_net::NetError| std::io::Error::other(e.to_string());
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let frame = encode_request(api_key, version, 1, "odradek-tests", request).map_err(other)?;
    stream.write_all(&frame)?;
    let response = read_frame_blocking(&mut stream, 1 << 20).map_err(other)?;
    decode_response(api_key, version, response.freeze()).map_err(other)
}

/// Finds `odradek listening on 127.0.0.1:PORT` in a log line (ANSI colour codes ignored).
pub fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    let plain = strip_ansi(line);
    let rest = &plain[plain.find(LISTENING_MARKER)? + LISTENING_MARKER.len()..];
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    let addr: SocketAddr = token.parse().ok()?;
    (addr.port() != 0).then_some(addr)
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

pub fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) with a pid we spawned and own; no memory is involved.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}) failed: {}",
        std::io::Error::last_os_error()
    );
}

/// Sum of the apparent sizes and of the allocated sizes of the files under `dir`.
pub fn dir_size_bytes(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    for entry in
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
    {
        let entry = entry.expect("directory entry");
        // The broker may delete a segment between read_dir and metadata (retention runs).
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => panic!("metadata of {}: {error}", entry.path().display()),
        };
        if metadata.is_dir() {
            let (a, b) = dir_size_bytes(&entry.path());
            apparent += a;
            allocated += b;
        } else {
            apparent += metadata.len();
            allocated += metadata.blocks() * 512;
        }
    }
    (apparent, allocated)
}

/// The `.log` segment files of a partition directory, sorted by base offset.
pub fn segment_files(partition_dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", partition_dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments
}

/// The wall clock in milliseconds since the epoch, as the broker reads it.
pub fn now_ms() -> i64 {
    odradek_storage::now_ms()
}
