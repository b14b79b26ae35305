//! Typed ids: the nouns that must not be swapped.

use std::fmt;

/// The index of a shard (one per core) on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub usize);

/// A partition number within a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId(pub i32);

/// A broker's node id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub i32);

/// A topic and one of its partitions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: PartitionId,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition: PartitionId(partition),
        }
    }

    /// The partition's directory name in the data dir: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition.0)
    }
}

/// The shard that owns `partition` of `topic`: partitions of one topic go round-robin over the
/// shards, starting at a shard picked by the topic name's hash (CRC32C), so topics spread too.
pub fn shard_for(topic: &str, partition: PartitionId, shard_count: usize) -> ShardId {
    assert!(shard_count > 0, "shard_count must be positive");
    let start = u64::from(crc32c::crc32c(topic.as_bytes()));
    let partition = u64::from(partition.0.unsigned_abs());
    ShardId(((start + partition) % shard_count as u64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_over_all_shards() {
        let mut seen = [0usize; 4];
        for p in 0..8 {
            seen[shard_for("orders", PartitionId(p), 4).0] += 1;
        }
        assert_eq!(seen, [2, 2, 2, 2]);
    }

    #[test]
    fn shard_for_is_crc32c_of_the_topic_plus_the_partition() {
        // CRC32C("123456789") = 0xE306_9283 = 3_808_858_755 (the standard check value), so a
        // change of the hash or of the round-robin fails here.
        assert_eq!(shard_for("123456789", PartitionId(0), 1000), ShardId(755));
        assert_eq!(shard_for("123456789", PartitionId(0), 4), ShardId(3));
        // Partitions follow round-robin from there.
        assert_eq!(shard_for("123456789", PartitionId(1), 4), ShardId(0));
        assert_eq!(shard_for("123456789", PartitionId(245), 1000), ShardId(0));
        // CRC32C("orders") = 0x09A7_C08A = 161_988_746.
        assert_eq!(shard_for("orders", PartitionId(0), 3), ShardId(2));
        assert_eq!(shard_for("orders", PartitionId(1), 3), ShardId(0));
        assert_eq!(shard_for("a", PartitionId(3), 1), ShardId(0));
    }
}
