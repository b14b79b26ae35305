//! The command line and its checked form, [`Workload`].
//!
//! Every value is checked here, before any connection is made, so that a typo costs one clear
//! line and a non-zero exit rather than a half-run benchmark.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kafka_protocol::records::Compression;

use crate::error::BenchError;
use crate::payload::HEADER_BYTES;

/// The largest message we generate (a Kafka default `message.max.bytes` is about 1 MB).
const MESSAGE_BYTES_MAX: usize = 16 << 20;
/// The largest batch we build.
const BATCH_BYTES_MAX: usize = 64 << 20;
/// Requests in flight per connection, at most.
const IN_FLIGHT_MAX: usize = 1024;
/// The most a fetch asks for per partition (a whole fetch asks for at most 64 MiB).
const FETCH_PARTITION_BYTES_MAX: usize = 32 << 20;
/// Tasks of each kind, at most.
const TASKS_MAX: usize = 4096;

#[derive(Parser, Debug)]
#[command(
    name = "odradek-bench",
    version,
    about = "Load generator for any Kafka-compatible cluster: produce and consume, report rates \
             and latency",
    // A flag given twice keeps the last value: a saved --workload comes first, flags after it win.
    args_override_self = true
)]
pub struct Cli {
    /// host:port of one broker of the cluster.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic to produce to and consume from (created if missing).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Partitions of the topic when it has to be created.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Replication factor when the topic has to be created.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i16,
    /// Executors (threads), one per core given to the tool [default: one per available CPU, at
    /// most one per producer and consumer task]. One executor cannot keep up with several
    /// producers and consumers: on two cores it held 1 KiB records to ~920 MB/s where two
    /// executors reached ~1250 MB/s against the same broker.
    #[arg(long)]
    pub cores: Option<usize>,
    /// Pin executor i to CPU i (by default executors float, which suits a machine shared with
    /// the broker).
    #[arg(long)]
    pub pin: bool,
    /// Producer tasks (each with its own connection to every leader).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer tasks; the topic's partitions are assigned to them round-robin.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Message value size in bytes (at least 32: timestamp and sequence number live there).
    #[arg(long, default_value = "1024", value_parser = parse_bytes)]
    pub message_size: usize,
    /// Take message values from this file (cut or repeated to --message-size).
    #[arg(long)]
    pub payload_file: Option<PathBuf>,
    /// 0 (no response), 1 (leader) or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: i16,
    /// Message bytes per partition batch before it is sent, framing not counted (e.g. 65536,
    /// 64KiB, 512KiB).
    #[arg(long, default_value = "64KiB", value_parser = parse_bytes)]
    pub batch_size: usize,
    /// How long a partial batch may wait for more messages.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
    /// none, round-robin, or random:N (N distinct keys).
    #[arg(long, default_value = "none", value_parser = parse_keys)]
    pub keys: Keys,
    /// Target rate for all producers together: msgs/s, or with a suffix MB/s; 0 = as fast as
    /// possible.
    #[arg(long, default_value = "0", value_parser = parse_rate)]
    pub rate: Rate,
    /// How long to produce after the warm-up (e.g. 20s, 500ms, 2m; default 20s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Produce this many messages in all instead of running for a duration (with --producers 0:
    /// consume this many).
    #[arg(long, conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Time at the start excluded from the results (default 5s with --duration, 0 with
    /// --messages).
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Produce requests in flight per connection.
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    /// max.partition.fetch.bytes: the most a fetch asks for per partition (e.g. 1MiB, 4MiB).
    #[arg(long, default_value = "4MiB", value_parser = parse_bytes)]
    pub fetch_partition_bytes: usize,
    /// Consumers start from the beginning of the log instead of its end.
    #[arg(long)]
    pub from_beginning: bool,
    /// Check sequence numbers: no loss, no duplicates, per-partition order.
    #[arg(long)]
    pub verify: bool,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report (inline SVG charts) to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Start from a saved workload (a JSON object of flag names and values, see
    /// bench/workloads/); flags on the command line win.
    #[arg(long)]
    pub workload: Option<PathBuf>,
    /// Connection and request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long consumers may take to catch up after the producers stop.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
}

/// How message keys are chosen (and so, partitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// No key: partitions are taken in turn.
    None,
    /// Keys cycle through one per partition, in order.
    RoundRobin,
    /// A key drawn at random from this many.
    Random(u32),
}

/// A target rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    MsgsPerSec(f64),
    MbPerSec(f64),
}

/// The checked run description shared by every executor.
#[derive(Clone, Debug)]
pub struct Workload {
    pub bootstrap: SocketAddr,
    pub bootstrap_text: String,
    pub topic: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub cores: usize,
    pub pin: bool,
    pub producers: usize,
    pub consumers: usize,
    pub message_bytes: usize,
    pub payload: Vec<u8>,
    pub acks: i16,
    pub batch_bytes: usize,
    pub linger: Duration,
    pub compression: Compression,
    pub keys: Keys,
    /// Messages per second for all producers together; 0 = as fast as possible.
    pub rate_msgs_per_s: f64,
    pub duration: Option<Duration>,
    pub messages: Option<u64>,
    pub warmup: Duration,
    pub in_flight_max: usize,
    pub fetch_partition_bytes_max: i32,
    pub from_beginning: bool,
    pub verify: bool,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub timeout: Duration,
    pub drain_timeout: Duration,
}

impl Cli {
    /// Checks every value and resolves the bootstrap address.
    pub fn into_workload(self) -> Result<Workload, BenchError> {
        let usage = |m: String| Err(BenchError::Usage(m));
        if self.topic.is_empty() || self.topic.len() > 249 {
            return usage("--topic must have 1 to 249 characters".into());
        }
        if !(1..=100_000).contains(&self.partitions) {
            return usage(format!(
                "--partitions {} is not in 1..=100000",
                self.partitions
            ));
        }
        if self.replication_factor < 1 {
            return usage("--replication-factor must be at least 1".into());
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cores = self
            .cores
            .unwrap_or_else(|| cpus.min(self.producers + self.consumers).max(1));
        if !(1..=256).contains(&cores) {
            return usage(format!("--cores {cores} is not in 1..=256"));
        }
        if self.pin && cores > cpus {
            return usage(format!("--pin with --cores {cores} on {cpus} CPUs"));
        }
        if self.producers > TASKS_MAX || self.consumers > TASKS_MAX {
            return usage(format!("at most {TASKS_MAX} producers and consumers"));
        }
        if self.producers == 0 && self.consumers == 0 {
            return usage("nothing to do: --producers and --consumers are both 0".into());
        }
        if !(HEADER_BYTES..=MESSAGE_BYTES_MAX).contains(&self.message_size) {
            return usage(format!(
                "--message-size {} is not in {HEADER_BYTES}..={MESSAGE_BYTES_MAX} (the first \
                 {HEADER_BYTES} bytes carry the send time and sequence number)",
                self.message_size
            ));
        }
        if !(1..=BATCH_BYTES_MAX).contains(&self.batch_size) {
            return usage(format!(
                "--batch-size must be in 1..={BATCH_BYTES_MAX} bytes"
            ));
        }
        if !(1..=IN_FLIGHT_MAX).contains(&self.max_in_flight) {
            return usage(format!("--max-in-flight must be in 1..={IN_FLIGHT_MAX}"));
        }
        if !(1024..=FETCH_PARTITION_BYTES_MAX).contains(&self.fetch_partition_bytes) {
            return usage(format!(
                "--fetch-partition-bytes must be in 1024..={FETCH_PARTITION_BYTES_MAX}"
            ));
        }
        if self.linger_ms > 60_000 {
            return usage("--linger-ms must be at most 60000".into());
        }
        if let Keys::Random(0) = self.keys {
            return usage("--keys random:N needs N >= 1".into());
        }
        if self.messages == Some(0) {
            return usage("--messages must be at least 1".into());
        }
        if self.verify && (self.consumers == 0 || self.producers == 0) {
            return usage("--verify needs at least one producer and one consumer".into());
        }
        if self.verify && self.acks == 0 {
            return usage(
                "--verify needs --acks 1 or all (acks=0 gives no delivery report)".into(),
            );
        }
        if self.timeout.is_zero() {
            return usage("--timeout must be positive".into());
        }
        let rate_msgs_per_s = match self.rate {
            Rate::MsgsPerSec(r) => r,
            Rate::MbPerSec(mb) => mb * 1e6 / self.message_size as f64,
        };
        for path in [&self.json, &self.html].into_iter().flatten() {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if dir.is_some_and(|d| !d.is_dir()) {
                return usage(format!("{}: the directory does not exist", path.display()));
            }
        }
        let payload = load_payload(self.payload_file.as_deref(), self.message_size)?;
        let bootstrap = resolve(&self.bootstrap)?;
        let (duration, warmup) = match (self.duration, self.messages) {
            (_, Some(_)) => (None, self.warmup.unwrap_or(Duration::ZERO)),
            (Some(d), None) => (Some(d), self.warmup.unwrap_or(Duration::from_secs(5))),
            (None, None) => (
                Some(Duration::from_secs(20)),
                self.warmup.unwrap_or(Duration::from_secs(5)),
            ),
        };
        if duration.is_some_and(|d| d.is_zero()) {
            return usage("--duration must be positive".into());
        }
        Ok(Workload {
            bootstrap,
            bootstrap_text: self.bootstrap,
            topic: self.topic,
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            cores,
            pin: self.pin,
            producers: self.producers,
            consumers: self.consumers,
            message_bytes: self.message_size,
            payload,
            acks: self.acks,
            batch_bytes: self.batch_size,
            linger: Duration::from_millis(self.linger_ms),
            compression: self.compression,
            keys: self.keys,
            rate_msgs_per_s,
            duration,
            messages: self.messages,
            warmup,
            in_flight_max: self.max_in_flight,
            fetch_partition_bytes_max: self.fetch_partition_bytes as i32,
            from_beginning: self.from_beginning,
            verify: self.verify,
            json: self.json,
            html: self.html,
            timeout: self.timeout,
            drain_timeout: self.drain_timeout,
        })
    }
}

/// The command line with a saved workload's flags (from `--workload FILE`) put first, so that
/// the flags typed after them win.
pub fn expand_workload(args: Vec<String>) -> Result<Vec<String>, BenchError> {
    let position = args
        .iter()
        .position(|a| a == "--workload" || a.starts_with("--workload="));
    let Some(i) = position else {
        return Ok(args);
    };
    let path = match args[i].strip_prefix("--workload=") {
        Some(p) => p.to_owned(),
        None => args.get(i + 1).cloned().unwrap_or_default(),
    };
    let bad = |reason: String| BenchError::Usage(format!("--workload {path}: {reason}"));
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| bad("expected a JSON object of flag names and values".into()))?;
    let mut saved = Vec::new();
    for (name, value) in object {
        if name == "workload" || name == "description" {
            continue;
        }
        let flag = format!("--{name}");
        match value {
            serde_json::Value::Bool(true) => saved.push(flag),
            serde_json::Value::Bool(false) => {}
            serde_json::Value::String(s) => saved.extend([flag, s.clone()]),
            serde_json::Value::Number(n) => saved.extend([flag, n.to_string()]),
            _ => return Err(bad(format!("{name}: expected a string, number or boolean"))),
        }
    }
    let mut expanded = vec![args[0].clone()];
    expanded.extend(saved);
    expanded.extend(args.into_iter().skip(1));
    Ok(expanded)
}

fn resolve(text: &str) -> Result<SocketAddr, BenchError> {
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| BenchError::Usage(format!("--bootstrap {text}: {e} (expected host:port)")))?;
    addrs
        .next()
        .ok_or_else(|| BenchError::Usage(format!("--bootstrap {text}: no address")))
}

/// The bytes every message value starts from: the file's bytes repeated, or a fixed pattern.
fn load_payload(
    file: Option<&std::path::Path>,
    message_bytes: usize,
) -> Result<Vec<u8>, BenchError> {
    let source = match file {
        Some(path) => std::fs::read(path)
            .map_err(|e| BenchError::Usage(format!("--payload-file {}: {e}", path.display())))?,
        None => (0..=255u8).map(|b| b'a' + b % 26).collect(),
    };
    if source.is_empty() {
        return Err(BenchError::Usage("--payload-file is empty".into()));
    }
    Ok(source.iter().copied().cycle().take(message_bytes).collect())
}

/// `20s`, `500ms`, `2m`, `1h`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (try 20s, 500ms, 2m)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{unit}' (use ms, s, m or h)"
            ))
        }
    };
    if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) {
        return Err(format!("'{text}' is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A byte count: `1024`, `64KiB`, `1MiB`, `16KB`, `1MB`.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: usize = number
        .parse()
        .map_err(|_| format!("'{text}' is not a byte count (try 1024, 64KiB, 1MiB)"))?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "kb" => 1_000,
        "mb" => 1_000_000,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{unit}' (use KiB, MiB, KB, MB)"
            ))
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("'{text}' is too large"))
}

fn parse_acks(text: &str) -> Result<i16, String> {
    match text {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" | "-1" => Ok(-1),
        _ => Err(format!("'{text}' is not 0, 1 or all")),
    }
}

fn parse_compression(text: &str) -> Result<Compression, String> {
    match text {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        _ => Err(format!("'{text}' is not none, gzip, snappy, lz4 or zstd")),
    }
}

fn parse_keys(text: &str) -> Result<Keys, String> {
    match text {
        "none" => Ok(Keys::None),
        "round-robin" => Ok(Keys::RoundRobin),
        _ => match text.strip_prefix("random:").map(str::parse::<u32>) {
            Some(Ok(n)) => Ok(Keys::Random(n)),
            _ => Err(format!("'{text}' is not none, round-robin or random:N")),
        },
    }
}

fn parse_rate(text: &str) -> Result<Rate, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, mb) = match lower.strip_suffix("mb/s") {
        Some(n) => (n, true),
        None => (lower.strip_suffix("msgs/s").unwrap_or(&lower), false),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a rate (try 10000, 10000msgs/s or 50MB/s)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("'{text}' must be 0 or a positive rate"));
    }
    Ok(if mb {
        Rate::MbPerSec(value)
    } else {
        Rate::MsgsPerSec(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("3x").is_err());
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("1MB"), Ok(1_000_000));
        assert!(parse_bytes("1GiB").is_err());
    }

    #[test]
    fn saved_workloads_come_first_and_flags_after_them_win() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w.json");
        std::fs::write(&path, r#"{"acks": "1", "partitions": 3, "verify": true}"#).expect("write");
        let args = [
            "odradek-bench",
            "--workload",
            path.to_str().expect("utf-8"),
            "--acks",
            "all",
        ];
        let expanded = expand_workload(args.iter().map(|s| s.to_string()).collect()).expect("ok");
        let cli = Cli::try_parse_from(&expanded).expect("parses");
        assert_eq!(cli.acks, -1, "the command line wins");
        assert_eq!(cli.partitions, 3);
        assert!(cli.verify);
        std::fs::write(&path, r#"{"acks": [1]}"#).expect("write");
        assert!(expand_workload(args.iter().map(|s| s.to_string()).collect()).is_err());
    }

    #[test]
    fn every_saved_workload_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/workloads");
        for entry in std::fs::read_dir(dir).expect("bench/workloads") {
            let path = entry.expect("entry").path();
            let args = vec![
                "odradek-bench".into(),
                "--workload".into(),
                path.display().to_string(),
            ];
            let expanded = expand_workload(args).expect("valid JSON");
            Cli::try_parse_from(&expanded).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }

    #[test]
    fn keys_rates_and_acks_parse() {
        assert_eq!(parse_keys("random:10"), Ok(Keys::Random(10)));
        assert!(parse_keys("random:x").is_err());
        assert_eq!(parse_rate("50MB/s"), Ok(Rate::MbPerSec(50.0)));
        assert_eq!(parse_rate("1000"), Ok(Rate::MsgsPerSec(1000.0)));
        assert!(parse_rate("-3").is_err());
        assert_eq!(parse_acks("all"), Ok(-1));
        assert!(parse_acks("2").is_err());
    }
}
