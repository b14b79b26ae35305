//! Small helpers shared by handlers.

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

/// A protocol string from a Rust one.
pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A topic name from a Rust string.
pub fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}
