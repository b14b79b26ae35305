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

/// Kafka's ACL operation codes (`AclOperation`) that resources support.
mod acl_operation {
    pub const READ: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const CREATE: u8 = 5;
    pub const DELETE: u8 = 6;
    pub const ALTER: u8 = 7;
    pub const DESCRIBE: u8 = 8;
    pub const CLUSTER_ACTION: u8 = 9;
    pub const DESCRIBE_CONFIGS: u8 = 10;
    pub const ALTER_CONFIGS: u8 = 11;
    pub const IDEMPOTENT_WRITE: u8 = 12;
}

/// The operations Kafka supports on each resource type.
pub mod operations {
    use super::acl_operation::*;
    pub const TOPIC: &[u8] = &[
        READ,
        WRITE,
        CREATE,
        DELETE,
        ALTER,
        DESCRIBE,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
    ];
    pub const CLUSTER: &[u8] = &[
        CREATE,
        ALTER,
        DESCRIBE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
    ];
    pub const GROUP: &[u8] = &[READ, DELETE, DESCRIBE];
}

/// The authorized-operations bitfield of a Metadata, DescribeCluster or DescribeGroups answer:
/// `i32::MIN` when the request did not ask, else one bit per operation code. No authorizer is
/// configured (there are no ACLs yet), and Kafka then grants everything the resource supports.
pub fn authorized_operations(asked: bool, operations: &[u8]) -> i32 {
    if !asked {
        return i32::MIN;
    }
    operations.iter().fold(0, |bits, op| bits | 1 << op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_operations_are_the_bits_kafka_sets_without_an_authorizer() {
        // READ..DESCRIBE (3-8) and DESCRIBE_CONFIGS, ALTER_CONFIGS (10, 11): 0b1101_1111_1000.
        assert_eq!(authorized_operations(true, operations::TOPIC), 0xDF8);
        assert_eq!(authorized_operations(false, operations::TOPIC), i32::MIN);
    }
}
