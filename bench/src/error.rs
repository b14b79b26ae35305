//! What can stop a run, each with enough context for one line to the operator.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {addr}: {reason} (is the broker running and reachable?)")]
    Connect { addr: SocketAddr, reason: String },
    #[error(
        "{what} ({addr}): nothing within {timeout_ms} ms (raise --timeout if the cluster is only \
         slow)"
    )]
    Timeout {
        what: &'static str,
        addr: SocketAddr,
        timeout_ms: u128,
    },
    #[error("{op} ({addr}): {reason}")]
    Io {
        op: &'static str,
        addr: SocketAddr,
        reason: String,
    },
    #[error("{what}: {reason}")]
    Protocol { what: &'static str, reason: String },
    #[error("{what}: Kafka error code {code}{hint}")]
    Kafka {
        what: String,
        code: i16,
        hint: &'static str,
    },
    #[error(
        "cannot start an executor: {0} (glommio needs io_uring and a memlock limit of at least \
         512 KiB: try `ulimit -l unlimited`)"
    )]
    Executor(String),
    #[error("cannot write {path}: {reason}")]
    Output { path: String, reason: String },
}

impl BenchError {
    pub fn kafka(what: impl Into<String>, code: i16) -> Self {
        let hint = match code {
            3 => " (UNKNOWN_TOPIC_OR_PARTITION)",
            6 => " (NOT_LEADER_OR_FOLLOWER)",
            7 => " (REQUEST_TIMED_OUT)",
            10 => " (MESSAGE_TOO_LARGE: lower --batch-size or --message-size)",
            29 => " (TOPIC_AUTHORIZATION_FAILED)",
            35 => " (UNSUPPORTED_VERSION)",
            36 => " (TOPIC_ALREADY_EXISTS)",
            37 => " (INVALID_PARTITIONS)",
            38 => " (INVALID_REPLICATION_FACTOR: lower --replication-factor)",
            _ => "",
        };
        BenchError::Kafka {
            what: what.into(),
            code,
            hint,
        }
    }
}
