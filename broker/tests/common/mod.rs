//! Test harness shared by the integration tests: it runs the real `odradek` binary and builds
//! real Kafka clients (librdkafka through the `rdkafka` crate) against it.
//!
//! Layout:
//! - [`Broker`]: one `odradek` process on `127.0.0.1:0` in its own temporary data directory;
//!   kill -9, graceful stop, restart on the same data directory, stderr kept for diagnostics.
//! - client builders: [`producer`] (threaded, every delivery report recorded), [`consumer`],
//!   [`admin`], and [`block_on`] for the admin futures.
//! - [`incremental_alter_config`]: IncrementalAlterConfigs through librdkafka's C API, which the
//!   `rdkafka` crate does not wrap (its `alter_configs` is the legacy AlterConfigs API).
//! - raw-protocol helpers for hostile-frame tests live in the tests that use them.
//!
//! Every wait in here has a bound and panics with the broker's stderr so far when it runs out:
//! a broker that hangs must fail the test, never hang it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tempfile::TempDir;

/// How long the broker may take to print its listening line.
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop (SIGTERM) may take before the test fails.
pub const BROKER_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Generous bound for one client round trip (admin request, metadata, watermarks).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

const LISTENING_MARKER: &str = "odradek listening on ";

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
        let data_dir = tempfile::Builder::new()
            .prefix("odradek-test-")
            .tempdir()
            .expect("create the broker's temporary data directory");
        let mut broker = Broker {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            settings: settings.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            cores: 2,
            log: Arc::new(Mutex::new(Vec::new())),
            incarnation: 0,
        };
        broker.spawn();
        broker
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
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
        self.incarnation += 1;
        let mut command = Command::new(env!("CARGO_BIN_EXE_odradek"));
        command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .arg("--cores")
            .arg(self.cores.to_string());
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
        self.addr = self.wait_for_listening(&lines_rx);
        self.note(&format!("listening on {}", self.addr));
    }

    fn wait_for_listening(&mut self, lines: &mpsc::Receiver<String>) -> SocketAddr {
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = self.child.as_mut().map(Child::kill);
                panic!(
                    "the broker printed no '{LISTENING_MARKER}127.0.0.1:PORT' line within \
                     {BROKER_START_TIMEOUT:?}\n{}",
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

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// A successfully delivered record, as its delivery report told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    pub id: usize,
    pub partition: i32,
    pub offset: i64,
}

/// Every delivery report a [`TestProducer`] received.
#[derive(Default)]
pub struct DeliveryLog {
    pub acked: Mutex<Vec<Acked>>,
    pub failed: Mutex<Vec<(usize, KafkaError)>>,
}

impl DeliveryLog {
    pub fn acked(&self) -> Vec<Acked> {
        self.acked.lock().expect("delivery log lock").clone()
    }

    pub fn failed(&self) -> Vec<(usize, KafkaError)> {
        self.failed.lock().expect("delivery log lock").clone()
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().expect("delivery log lock").len()
    }

    pub fn reported_count(&self) -> usize {
        self.acked_count() + self.failed.lock().expect("delivery log lock").len()
    }
}

/// Producer context that records each delivery report under the record's `usize` id.
pub struct RecordingContext {
    log: Arc<DeliveryLog>,
}

impl ClientContext for RecordingContext {}

impl ProducerContext for RecordingContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        match result {
            Ok(message) => self
                .log
                .acked
                .lock()
                .expect("delivery log lock")
                .push(Acked {
                    id,
                    partition: message.partition(),
                    offset: message.offset(),
                }),
            Err((error, _message)) => self
                .log
                .failed
                .lock()
                .expect("delivery log lock")
                .push((id, error.clone())),
        }
    }
}

pub type TestProducer = ThreadedProducer<RecordingContext>;

fn client_config(bootstrap: &str, overrides: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "odradek-tests")
        // One broker: fail fast instead of librdkafka's long default retries on a dead broker.
        .set("socket.timeout.ms", "30000")
        .set("reconnect.backoff.max.ms", "1000");
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    config
}

/// A threaded producer (background polling thread) whose delivery reports land in the returned
/// log. Defaults: `acks=all`, `linger.ms=5`; `overrides` win.
pub fn producer(bootstrap: &str, overrides: &[(&str, &str)]) -> (TestProducer, Arc<DeliveryLog>) {
    let log = Arc::new(DeliveryLog::default());
    let mut config = client_config(bootstrap, &[("acks", "all"), ("linger.ms", "5")]);
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    let producer = config
        .create_with_context(RecordingContext {
            log: Arc::clone(&log),
        })
        .expect("create the rdkafka producer");
    (producer, log)
}

/// Queues a record, waiting while librdkafka's local queue is full. Any other immediate error
/// (e.g. the record exceeds the client's own `message.max.bytes`) is returned.
pub fn send<K, P>(
    producer: &TestProducer,
    mut record: BaseRecord<'_, K, P, usize>,
) -> Result<(), KafkaError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if Instant::now() < deadline =>
            {
                record = back;
                thread::sleep(Duration::from_millis(5));
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// Flushes and waits until every queued record has a delivery report.
pub fn flush(producer: &TestProducer) {
    producer
        .flush(Duration::from_secs(120))
        .expect("flush the producer: some records got no delivery report within 120 s");
}

/// A consumer for `assign`-style reads (a group id is required by librdkafka for assign; the
/// group is never joined and nothing is committed).
pub fn consumer(bootstrap: &str, overrides: &[(&str, &str)]) -> BaseConsumer {
    let mut config = client_config(
        bootstrap,
        &[
            ("group.id", "odradek-tests"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
        ],
    );
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    config.create().expect("create the rdkafka consumer")
}

/// Assigns partitions `0..partitions` of `topic`, each from `offset`.
pub fn assign_all(consumer: &BaseConsumer, topic: &str, partitions: i32, offset: Offset) {
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, offset)
            .expect("add a partition to the assignment");
    }
    consumer.assign(&list).expect("assign partitions");
}

/// Polls until `count` records arrived or `timeout` passed; panics on the timeout with what it
/// got and the consumer errors it saw.
pub fn consume_exactly(
    consumer: &BaseConsumer,
    count: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::with_capacity(count);
    let mut errors: Vec<String> = Vec::new();
    while messages.len() < count {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {count} records within {timeout:?}; consumer errors: {:?}",
            messages.len(),
            &errors[errors.len().saturating_sub(20)..]
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => messages.push(message.detach()),
            Some(Err(error)) => errors.push(error.to_string()),
        }
    }
    messages
}

/// Polls for `quiet` and returns whatever arrives (used to prove nothing more is there).
pub fn drain_for(consumer: &BaseConsumer, quiet: Duration) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + quiet;
    let mut messages = Vec::new();
    while Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            messages.push(message.detach());
        }
    }
    messages
}

/// `(low, high)` watermarks of one partition.
pub fn watermarks(consumer: &BaseConsumer, topic: &str, partition: i32) -> (i64, i64) {
    consumer
        .fetch_watermarks(topic, partition, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("fetch_watermarks({topic}, {partition}): {e}"))
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap, &[])
        .create()
        .expect("create the rdkafka admin client")
}

pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(CLIENT_TIMEOUT))
        .operation_timeout(Some(CLIENT_TIMEOUT))
}

/// Runs an admin future to completion (librdkafka's admin thread resolves it).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
        .block_on(future)
}

/// Creates a topic with `partitions` partitions and the given topic configs; panics unless the
/// broker reports success.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let results = block_on(admin.create_topics([&new_topic], &admin_options()))
        .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
    assert_eq!(results.len(), 1, "one result per topic");
    if let Err((name, code)) = &results[0] {
        panic!("CreateTopics {name} failed with {code:?}");
    }
    wait_for_topic(bootstrap, topic, partitions);
}

/// Waits until Metadata shows `topic` with `partitions` partitions, each with a leader.
pub fn wait_for_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let consumer = consumer(bootstrap, &[]);
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(metadata) => {
                let found = metadata.topics().iter().find(|t| t.name() == topic);
                match found {
                    Some(t)
                        if t.error().is_none()
                            && t.partitions().len() == partitions as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0) =>
                    {
                        return
                    }
                    Some(t) => {
                        last = format!(
                            "error {:?}, {} partitions, leaders {:?}",
                            t.error(),
                            t.partitions().len(),
                            t.partitions()
                                .iter()
                                .map(|p| p.leader())
                                .collect::<Vec<_>>()
                        )
                    }
                    None => last = "topic absent".to_string(),
                }
            }
            Err(error) => last = error.to_string(),
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("topic {topic} never showed {partitions} partitions with leaders in Metadata: {last}");
}

/// Names of all topics in a full Metadata response.
pub fn topic_names(bootstrap: &str) -> Vec<String> {
    let consumer = consumer(bootstrap, &[]);
    let metadata = consumer
        .fetch_metadata(None, CLIENT_TIMEOUT)
        .expect("fetch metadata for all topics");
    metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect()
}

/// Describes one topic's configs as a name → value map.
pub fn describe_topic_configs(bootstrap: &str, topic: &str) -> HashMap<String, Option<String>> {
    use rdkafka::admin::ResourceSpecifier;
    let admin = admin(bootstrap);
    let results =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options()))
            .unwrap_or_else(|e| panic!("DescribeConfigs {topic}: {e}"));
    assert_eq!(results.len(), 1, "one result per resource");
    let resource = results[0]
        .as_ref()
        .unwrap_or_else(|code| panic!("DescribeConfigs {topic} failed with {code:?}"));
    resource
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

/// IncrementalAlterConfigs (SET) on one topic through librdkafka's C API. Returns the
/// per-resource error code (`NoError` on success).
pub fn incremental_alter_config(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    settings: &[(&str, &str)],
) -> RDKafkaErrorCode {
    use rdkafka::bindings as rd;
    let rk = admin.inner().native_ptr();
    let topic_c = CString::new(topic).expect("topic name without NUL");
    // SAFETY: plain use of librdkafka's admin C API: every object created here is destroyed
    // here, pointers returned by librdkafka are used only while their event is alive.
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        );
        let mut errstr = [0 as libc::c_char; 512];
        let timeout_ms = CLIENT_TIMEOUT.as_millis() as libc::c_int;
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let mut resource = rd::rd_kafka_ConfigResource_new(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            topic_c.as_ptr(),
        );
        for (name, value) in settings {
            let name_c = CString::new(*name).expect("config name without NUL");
            let value_c = CString::new(*value).expect("config value without NUL");
            let error = rd::rd_kafka_ConfigResource_add_incremental_config(
                resource,
                name_c.as_ptr(),
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                value_c.as_ptr(),
            );
            assert!(
                error.is_null(),
                "librdkafka rejected config {name}={value} locally"
            );
        }
        rd::rd_kafka_IncrementalAlterConfigs(rk, &mut resource, 1, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms + 5000);
        assert!(
            !event.is_null(),
            "IncrementalAlterConfigs: no result within the timeout"
        );
        let request_error = rd::rd_kafka_event_error(event);
        let code = if request_error != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            let text = CStr::from_ptr(rd::rd_kafka_event_error_string(event));
            eprintln!(
                "IncrementalAlterConfigs request error: {}",
                text.to_string_lossy()
            );
            RDKafkaErrorCode::from(request_error)
        } else {
            let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event);
            let mut count = 0usize;
            let resources =
                rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
            assert_eq!(count, 1, "one resource result");
            let first = *resources;
            let code = rd::rd_kafka_ConfigResource_error(first);
            let text = rd::rd_kafka_ConfigResource_error_string(first);
            if !text.is_null() {
                eprintln!(
                    "IncrementalAlterConfigs {topic}: {}",
                    CStr::from_ptr(text).to_string_lossy()
                );
            }
            RDKafkaErrorCode::from(code)
        };
        rd::rd_kafka_event_destroy(event);
        rd::rd_kafka_ConfigResource_destroy(resource);
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_queue_destroy(queue);
        code
    }
}

/// A unique topic name per test (tests share nothing, but unique names make logs readable).
pub fn topic_name(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
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
        let metadata = entry.metadata().expect("file metadata");
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
