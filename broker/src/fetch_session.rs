//! Fetch sessions (KIP-227): a consumer fetching many partitions names them once; later fetches
//! of its session carry only the partitions whose position changed, and the answers only the
//! partitions with something new (records, an error, moved watermarks).
//!
//! Sessions live on the shard of the connection that created them (a connection's requests all
//! land there), bounded by `max.incremental.fetch.session.cache.slots` split over the shards;
//! the least recently used session is evicted for a new one. A client whose session is gone
//! gets FETCH_SESSION_ID_NOT_FOUND and starts again with a full fetch, as with Kafka. Ids are
//! unique across shards (`counter * shards + shard + 1`).
//!
//! Epochs, as Kafka reads them: id 0 with epoch -1 is a fetch without a session; epoch 0 asks
//! for a new session (closing the named one, if any); epoch -1 with an id closes that session;
//! epoch N > 0 continues session `id`, whose next expected epoch must be N.

use odradek_storage::LeaderEpoch;
use std::collections::HashMap;

use kafka_protocol::indexmap::IndexMap;
use uuid::Uuid;

/// Kafka's error codes for sessions.
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

/// `session_epoch` of a fetch without a session, or closing one.
const FINAL_EPOCH: i32 = -1;
/// `session_epoch` asking for a new session.
const INITIAL_EPOCH: i32 = 0;

/// A partition as the client names it: by topic name (Fetch < 13) or by topic id (13+); the
/// other half is empty.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// Where a partition is read from, and up to how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// The leader epoch the fetcher last named for the partition (Fetch v9+).
    pub current_leader_epoch: Option<LeaderEpoch>,
}

/// What the session's last answer told the client of a partition; an incremental answer
/// repeats a partition only when this changed or it has records or an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reported {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    /// In the order the client added them (responses follow it).
    partitions: IndexMap<PartitionKey, (Position, Option<Reported>)>,
    last_used: u64,
}

/// What one fetch reads and how it is answered.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// The id the response carries (0: no session).
    pub session_id: i32,
    /// Answer only what changed (an established session's follow-up).
    pub incremental: bool,
    pub partitions: Vec<(PartitionKey, Position)>,
}

/// The sessions of one shard.
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    slots: usize,
    shard: u32,
    shards: u32,
    created: u32,
    clock: u64,
}

impl FetchSessions {
    /// At most `slots` sessions on shard `shard` of `shards`.
    pub fn new(slots: usize, shard: u32, shards: u32) -> FetchSessions {
        assert!(shard < shards, "shard {shard} of {shards}");
        FetchSessions {
            sessions: HashMap::new(),
            slots,
            shard,
            shards,
            created: 0,
            clock: 0,
        }
    }

    /// Applies a request's session fields to the cache; the partitions it names (in request
    /// order) and the forgotten ones. An error is the response's top-level error code.
    pub fn begin(
        &mut self,
        session_id: i32,
        epoch: i32,
        named: Vec<(PartitionKey, Position)>,
        forgotten: &[PartitionKey],
    ) -> Result<Plan, i16> {
        self.clock += 1;
        match epoch {
            FINAL_EPOCH => {
                self.sessions.remove(&session_id);
                Ok(sessionless(named))
            }
            INITIAL_EPOCH => {
                self.sessions.remove(&session_id);
                Ok(self.create(named))
            }
            _ => self.continue_session(session_id, epoch, named, forgotten),
        }
    }

    fn create(&mut self, named: Vec<(PartitionKey, Position)>) -> Plan {
        if self.slots == 0 {
            return sessionless(named);
        }
        if self.sessions.len() >= self.slots {
            if let Some(oldest) = self.sessions.iter().min_by_key(|(_, s)| s.last_used) {
                let oldest = *oldest.0;
                self.sessions.remove(&oldest);
            }
        }
        let id = self.next_id();
        let partitions = named.iter().map(|(k, p)| (k.clone(), (*p, None))).collect();
        self.sessions.insert(
            id,
            Session {
                next_epoch: 1,
                partitions,
                last_used: self.clock,
            },
        );
        Plan {
            session_id: id,
            incremental: false,
            partitions: named,
        }
    }

    /// Positive, never 0, unique across shards until the counter wraps.
    fn next_id(&mut self) -> i32 {
        loop {
            self.created = self.created.wrapping_add(1);
            let id = u64::from(self.created) * u64::from(self.shards) + u64::from(self.shard) + 1;
            let id = (id % i32::MAX as u64) as i32;
            if id > 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn continue_session(
        &mut self,
        session_id: i32,
        epoch: i32,
        named: Vec<(PartitionKey, Position)>,
        forgotten: &[PartitionKey],
    ) -> Result<Plan, i16> {
        let clock = self.clock;
        let session = self
            .sessions
            .get_mut(&session_id)
            .ok_or(FETCH_SESSION_ID_NOT_FOUND)?;
        if epoch != session.next_epoch {
            return Err(INVALID_FETCH_SESSION_EPOCH);
        }
        session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        session.last_used = clock;
        for key in forgotten {
            session.partitions.shift_remove(key);
        }
        for (key, position) in named {
            session.partitions.entry(key).or_insert((position, None)).0 = position;
        }
        Ok(Plan {
            session_id,
            incremental: true,
            partitions: session
                .partitions
                .iter()
                .map(|(k, (p, _))| (k.clone(), *p))
                .collect(),
        })
    }

    /// Records what the answer to `session_id` told the client of each partition (`has_news`:
    /// records or an error); answers, in the same order, whether an incremental answer
    /// includes it. Partitions the session no longer holds are included.
    pub fn report(
        &mut self,
        session_id: i32,
        answers: &[(&PartitionKey, Reported, bool)],
    ) -> Vec<bool> {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return vec![true; answers.len()];
        };
        answers
            .iter()
            .map(
                |(key, now, has_news)| match session.partitions.get_mut(*key) {
                    Some((_, last)) => {
                        let changed = *has_news || *last != Some(*now);
                        *last = Some(*now);
                        changed
                    }
                    None => true,
                },
            )
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sessions.len()
    }
}

fn sessionless(named: Vec<(PartitionKey, Position)>) -> Plan {
    Plan {
        session_id: 0,
        incremental: false,
        partitions: named,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(partition: i32) -> PartitionKey {
        PartitionKey {
            topic: "t".into(),
            topic_id: Uuid::nil(),
            partition,
        }
    }

    fn at(offset: i64) -> Position {
        Position {
            fetch_offset: offset,
            max_bytes: 1 << 20,
            current_leader_epoch: None,
        }
    }

    const REPORTED: Reported = Reported {
        high_watermark: 10,
        last_stable_offset: 10,
        log_start_offset: 0,
    };

    #[test]
    fn given_a_new_session_when_continued_should_keep_the_partitions_and_check_the_epoch() {
        let mut sessions = FetchSessions::new(10, 0, 1);
        let full = sessions
            .begin(0, 0, vec![(key(0), at(0)), (key(1), at(5))], &[])
            .expect("created");
        assert!(full.session_id > 0 && !full.incremental);
        let id = full.session_id;
        // The first answer reports everything; the second nothing that did not change.
        let both = [(&key(0), REPORTED, false), (&key(1), REPORTED, false)];
        assert_eq!(sessions.report(id, &both), [true, true]);
        let next = sessions
            .begin(id, 1, vec![(key(1), at(7))], &[key(0)])
            .expect("continued");
        assert!(next.incremental);
        assert_eq!(next.partitions, vec![(key(1), at(7))]);
        assert_eq!(sessions.report(id, &[(&key(1), REPORTED, false)]), [false]);
        assert_eq!(
            sessions.report(id, &[(&key(1), REPORTED, true)]),
            [true],
            "records are news"
        );
        assert_eq!(
            sessions.begin(id, 1, vec![], &[]),
            Err(INVALID_FETCH_SESSION_EPOCH),
            "an epoch already used"
        );
        let third = sessions.begin(id, 2, vec![], &[]).expect("epoch 2");
        let moved = Reported {
            high_watermark: 11,
            ..REPORTED
        };
        assert_eq!(third.partitions.len(), 1);
        assert_eq!(sessions.report(id, &[(&key(1), moved, false)]), [true]);
        // Closing it: a fetch without a session, and the id is gone.
        assert_eq!(
            sessions.begin(id, -1, vec![], &[]).map(|p| p.session_id),
            Ok(0)
        );
        assert_eq!(
            sessions.begin(id, 3, vec![], &[]),
            Err(FETCH_SESSION_ID_NOT_FOUND)
        );
    }

    #[test]
    fn given_a_full_cache_when_a_session_is_created_should_evict_the_least_recently_used() {
        let mut sessions = FetchSessions::new(2, 1, 3);
        let a = sessions.begin(0, 0, vec![], &[]).expect("a").session_id;
        let b = sessions.begin(0, 0, vec![], &[]).expect("b").session_id;
        assert_eq!((a % 3, b % 3), (2, 2), "ids carry their shard");
        sessions.begin(a, 1, vec![], &[]).expect("a used again");
        let c = sessions.begin(0, 0, vec![], &[]).expect("c").session_id;
        assert_eq!(sessions.len(), 2);
        assert!(sessions.begin(b, 1, vec![], &[]).is_err(), "b was evicted");
        assert!(sessions.begin(a, 2, vec![], &[]).is_ok());
        assert!(sessions.begin(c, 1, vec![], &[]).is_ok());
    }

    #[test]
    fn given_no_slots_when_a_session_is_asked_for_should_answer_without_one() {
        let mut sessions = FetchSessions::new(0, 0, 1);
        let plan = sessions
            .begin(0, 0, vec![(key(0), at(0))], &[])
            .expect("plan");
        assert_eq!(plan.session_id, 0);
        assert_eq!(sessions.len(), 0);
    }
}
