//! Typed nouns of the log.

use std::fmt;

/// A Kafka offset: the position of a record in a partition. `-1` never appears in a stored log;
/// protocol sentinels (latest, earliest) are resolved before they reach storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A partition leader's epoch: how many times its leadership has changed hands. Followers and
/// clients send the epoch they know, so a request meant for an older (or newer) leader is told
/// so instead of being served. A single node leads every partition at epoch 0 forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// The epoch of every partition of a single node: leadership never moves.
    pub const SINGLE_NODE: LeaderEpoch = LeaderEpoch(0);

    /// The epoch a request names, or `None` for Kafka's "no epoch" (-1; older versions).
    pub fn from_request(epoch: i32) -> Option<LeaderEpoch> {
        (epoch >= 0).then_some(LeaderEpoch(epoch))
    }
}

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An idempotent (later transactional) producer's id, handed out by InitProducerId and carried
/// in every batch it writes. `-1` in a batch means "not idempotent" and never becomes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerId(pub i64);

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
