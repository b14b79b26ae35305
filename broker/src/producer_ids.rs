//! Producer ids for idempotent producers (InitProducerId).
//!
//! An id must never be handed out twice, across restarts too: a partition remembers the
//! sequences of every id it has seen, so a reused id would make a new producer's first batches
//! look like duplicates or gaps, and in a cluster never by two brokers. Each start of a broker
//! gets the next *generation* from the metadata log, with its registration (so no two brokers
//! and no two starts share one), and ids are `generation << 32 | n` for a counter `n` shared
//! by the shards: 2^32 ids per start. Before the metadata log, a single node kept its last
//! generation in a small file of the data directory; that file is still read, so a node that
//! used it gets a generation past it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use odradek_storage::ProducerId;

const FILE: &str = "producer-id-generation";
/// Ids per generation.
const PER_GENERATION: u64 = 1 << 32;
/// Generations, so that every id is a non-negative `i64`.
const GENERATIONS_MAX: u64 = (1 << 31) - 1;

#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason} (remove it only if no partition log holds idempotent batches)")]
    Corrupt { path: PathBuf, reason: String },
}

pub struct ProducerIds {
    /// 0 until the broker registers.
    generation: AtomicU64,
    next: AtomicU64,
}

impl Default for ProducerIds {
    fn default() -> Self {
        ProducerIds::unassigned()
    }
}

impl ProducerIds {
    /// Ids to be handed out once [`ProducerIds::assign`] gives them a generation.
    pub fn unassigned() -> ProducerIds {
        ProducerIds {
            generation: AtomicU64::new(0),
            next: AtomicU64::new(0),
        }
    }

    /// This start's generation, from the metadata log (its registration's outcome).
    pub fn assign(&self, generation: u64) {
        self.next.store(0, Ordering::SeqCst);
        self.generation.store(generation, Ordering::SeqCst);
    }

    /// The last generation a single-node data directory took from its file (0: none).
    /// Blocking: call it before the shards start.
    pub fn floor_blocking(data_dir: &Path) -> Result<u64, ProducerIdError> {
        let path = data_dir.join(FILE);
        let last = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|e| ProducerIdError::Corrupt {
                    path: path.clone(),
                    reason: format!("not a generation number: {e}"),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => return Err(ProducerIdError::Read { path, source }),
        };
        if last > GENERATIONS_MAX {
            return Err(ProducerIdError::Corrupt {
                path,
                reason: "every producer id generation is used".into(),
            });
        }
        Ok(last)
    }

    /// A producer id never handed out before, or `None` once this start has used all of its.
    pub fn allocate(&self) -> Option<ProducerId> {
        let generation = self.generation.load(Ordering::Relaxed);
        if generation == 0 || generation > GENERATIONS_MAX {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n < PER_GENERATION).then(|| ProducerId((generation * PER_GENERATION + n) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_ids_before_a_generation_is_assigned() {
        let ids = ProducerIds::unassigned();
        assert_eq!(ids.allocate(), None);
        ids.assign(2);
        let a = ids.allocate().expect("id");
        let b = ids.allocate().expect("id");
        assert_eq!(
            (a, b),
            (
                ProducerId((2 * PER_GENERATION) as i64),
                ProducerId((2 * PER_GENERATION + 1) as i64)
            )
        );
        ids.assign(3);
        assert!(
            ids.allocate().expect("id") > b,
            "a later generation hands out larger ids"
        );
    }

    #[test]
    fn the_single_node_file_is_the_floor() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(ProducerIds::floor_blocking(dir.path()).expect("no file"), 0);
        std::fs::write(dir.path().join(FILE), "17\n").expect("write");
        assert_eq!(ProducerIds::floor_blocking(dir.path()).expect("read"), 17);
    }

    #[test]
    fn a_damaged_generation_file_stops_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), "garbage").expect("write");
        let error = ProducerIds::floor_blocking(dir.path()).expect_err("refused");
        assert!(
            error.to_string().contains("producer-id-generation"),
            "{error}"
        );
    }

    #[test]
    fn a_generation_runs_out_instead_of_wrapping() {
        let ids = ProducerIds {
            generation: AtomicU64::new(3),
            next: AtomicU64::new(PER_GENERATION - 1),
        };
        assert_eq!(
            ids.allocate(),
            Some(ProducerId((4 * PER_GENERATION - 1) as i64))
        );
        assert_eq!(ids.allocate(), None);
    }
}
