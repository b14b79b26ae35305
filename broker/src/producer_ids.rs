//! Producer ids for idempotent producers (InitProducerId).
//!
//! An id must never be handed out twice, across restarts too: a partition remembers the
//! sequences of every id it has seen, so a reused id would make a new producer's first batches
//! look like duplicates or gaps. Each start takes the next *generation* from a small file in the
//! data directory (written and synced before any shard serves), and ids are
//! `generation << 32 | n` for a counter `n` shared by the shards: 2^32 ids per start.

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
    #[error(transparent)]
    Write(#[from] crate::durable_file::FileError),
    #[error("{path}: {reason} (remove it only if no partition log holds idempotent batches)")]
    Corrupt { path: PathBuf, reason: String },
}

pub struct ProducerIds {
    generation: u64,
    next: AtomicU64,
}

impl ProducerIds {
    /// Takes this start's generation: reads the last one and stores its successor, synced.
    /// Blocking: call it before the shards start.
    pub fn reserve(data_dir: &Path) -> Result<ProducerIds, ProducerIdError> {
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
        let generation = last + 1;
        if generation > GENERATIONS_MAX {
            return Err(ProducerIdError::Corrupt {
                path,
                reason: "every producer id generation is used".into(),
            });
        }
        crate::durable_file::replace_blocking(
            data_dir,
            FILE,
            format!("{generation}\n").as_bytes(),
        )?;
        Ok(ProducerIds {
            generation,
            next: AtomicU64::new(0),
        })
    }

    /// A producer id never handed out before, or `None` once this start has used all of its.
    pub fn allocate(&self) -> Option<ProducerId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n < PER_GENERATION).then(|| ProducerId((self.generation * PER_GENERATION + n) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ProducerIds::reserve(dir.path()).expect("first start");
        let a = first.allocate().expect("id");
        let b = first.allocate().expect("id");
        assert_ne!(a, b);
        let second = ProducerIds::reserve(dir.path()).expect("second start");
        let c = second.allocate().expect("id");
        assert!(c > b, "a later start hands out larger ids: {c} after {b}");
        assert!(a.0 >= 0 && c.0 >= 0);
    }

    #[test]
    fn a_damaged_generation_file_stops_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), "garbage").expect("write");
        let error = ProducerIds::reserve(dir.path()).err().expect("refused");
        assert!(
            error.to_string().contains("producer-id-generation"),
            "{error}"
        );
    }

    #[test]
    fn a_generation_runs_out_instead_of_wrapping() {
        let ids = ProducerIds {
            generation: 3,
            next: AtomicU64::new(PER_GENERATION - 1),
        };
        assert_eq!(
            ids.allocate(),
            Some(ProducerId((4 * PER_GENERATION - 1) as i64))
        );
        assert_eq!(ids.allocate(), None);
    }
}
