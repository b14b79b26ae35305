//! Tests of [`DiskStorage`]: what survives a reopen, what a crash leaves and how it is
//! recovered, and raft-rs's own `RawNode` driven over it.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{Config, RawNode, Storage, StorageError};

use super::log_file::RECORD_BYTES_MAX;
use super::storage::DiskStorage;
use super::{QuorumStoreError, METADATA_LOG_DIR};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("entry {index} of term {term}").into_bytes().into(),
        ..Default::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|index| entry(index, term)).collect()
}

fn open(dir: &Path) -> DiskStorage {
    DiskStorage::open(dir).expect("open")
}

fn all(storage: &DiskStorage) -> Vec<Entry> {
    let (first, last) = (
        storage.first_index().expect("first"),
        storage.last_index().expect("last"),
    );
    let context = raft::GetEntriesContext::empty(false);
    storage
        .entries(first, last + 1, None, context)
        .expect("entries")
}

fn log_path(dir: &Path) -> std::path::PathBuf {
    dir.join("log")
}

#[test]
fn appended_entries_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut storage = open(dir.path());
    assert_eq!(
        (storage.first_index().ok(), storage.last_index().ok()),
        (Some(1), Some(0))
    );
    storage.append(&entries(1..=3, 1)).expect("append");
    storage.append(&entries(4..=5, 2)).expect("append");
    drop(storage);
    let storage = open(dir.path());
    assert_eq!(
        all(&storage),
        [entries(1..=3, 1), entries(4..=5, 2)].concat()
    );
    assert_eq!(storage.term(4).ok(), Some(2));
    assert!(matches!(
        storage.term(6),
        Err(raft::Error::Store(StorageError::Unavailable))
    ));
}

#[test]
fn a_torn_last_frame_is_cut_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut storage = open(dir.path());
    storage.append(&entries(1..=5, 1)).expect("append");
    drop(storage);
    let len = fs::metadata(log_path(dir.path())).expect("metadata").len();
    let file = fs::OpenOptions::new()
        .write(true)
        .open(log_path(dir.path()))
        .expect("open");
    file.set_len(len - 3).expect("truncate");
    let mut storage = open(dir.path());
    assert_eq!(all(&storage), entries(1..=4, 1));
    // The cut file takes appends where the last whole frame ends.
    storage.append(&entries(5..=6, 2)).expect("append");
    drop(storage);
    assert_eq!(
        all(&open(dir.path())),
        [entries(1..=4, 1), entries(5..=6, 2)].concat()
    );
}

#[test]
fn a_flipped_byte_cuts_the_log_before_its_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut storage = open(dir.path());
    storage.append(&entries(1..=2, 1)).expect("append");
    let two_frames = storage.log_bytes();
    storage.append(&entries(3..=5, 1)).expect("append");
    drop(storage);
    let mut bytes = fs::read(log_path(dir.path())).expect("read");
    bytes[two_frames as usize + 10] ^= 0x01;
    fs::write(log_path(dir.path()), &bytes).expect("write");
    let storage = open(dir.path());
    assert_eq!(all(&storage), entries(1..=2, 1));
    assert_eq!(
        fs::metadata(log_path(dir.path())).expect("metadata").len(),
        two_frames
    );
}

#[test]
fn a_conflicting_append_replaces_the_suffix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut storage = open(dir.path());
    storage.append(&entries(1..=5, 1)).expect("append");
    storage.append(&entries(3..=4, 2)).expect("append");
    let expected = [entries(1..=2, 1), entries(3..=4, 2)].concat();
    assert_eq!(all(&storage), expected);
    drop(storage);
    assert_eq!(all(&open(dir.path())), expected);
}

#[test]
fn the_hard_state_and_conf_state_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut storage = open(dir.path());
    storage
        .initialize_with_conf_state(ConfState::from((vec![1, 2, 3], vec![4])))
        .expect("conf");
    storage.append(&entries(1..=4, 7)).expect("append");
    let hard_state = HardState {
        term: 7,
        vote: 2,
        commit: 3,
        ..Default::default()
    };
    storage
        .set_hard_state(hard_state.clone())
        .expect("hard state");
    storage.set_commit(4).expect("commit");
    drop(storage);
    let storage = open(dir.path());
    assert_eq!(
        *storage.hard_state(),
        HardState {
            commit: 4,
            ..hard_state
        }
    );
    assert_eq!(
        *storage.conf_state(),
        ConfState::from((vec![1, 2, 3], vec![4]))
    );
}

#[test]
fn a_corrupt_state_file_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut storage = open(dir.path());
    storage
        .set_hard_state(HardState {
            term: 1,
            ..Default::default()
        })
        .expect("hard state");
    drop(storage);
    let mut bytes = fs::read(dir.path().join("state")).expect("read");
    bytes[9] ^= 0xff;
    fs::write(dir.path().join("state"), &bytes).expect("write");
    let error = DiskStorage::open(dir.path()).err().expect("refused");
    assert!(matches!(error, QuorumStoreError::Corrupt { .. }), "{error}");
    assert!(
        error.to_string().contains("catches up from the leader"),
        "{error}"
    );
}

#[test]
fn a_snapshot_compacts_the_log_and_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut storage = open(dir.path());
    storage
        .initialize_with_conf_state(ConfState::from((vec![1], vec![])))
        .expect("conf");
    storage.append(&entries(1..=10, 3)).expect("append");
    storage.set_commit(10).expect("commit");
    let before = storage.log_bytes();
    storage
        .create_snapshot(6, b"image at 6".to_vec())
        .expect("snapshot");
    assert!(storage.log_bytes() < before);
    for storage in [storage, open(dir.path())] {
        assert_eq!(storage.first_index().ok(), Some(7));
        assert_eq!(all(&storage), entries(7..=10, 3));
        assert_eq!(storage.term(6).ok(), Some(3));
        assert!(matches!(
            storage.term(5),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        let snapshot = storage.snapshot(0, 2).expect("snapshot");
        assert_eq!(&snapshot.data[..], b"image at 6");
        assert_eq!(snapshot.get_metadata().index, 6);
        assert_eq!(snapshot.get_metadata().get_conf_state().voters, [1]);
        assert!(storage.snapshot(8, 2).is_err(), "older than asked");
    }
}

#[test]
fn a_crash_before_the_compacted_log_is_renamed_is_compacted_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut storage = open(dir.path());
    storage.append(&entries(1..=10, 3)).expect("append");
    storage.set_commit(10).expect("commit");
    let old_log = fs::read(log_path(dir.path())).expect("read");
    storage
        .create_snapshot(6, b"image".to_vec())
        .expect("snapshot");
    drop(storage);
    fs::write(log_path(dir.path()), old_log).expect("put the old log back");
    let storage = open(dir.path());
    assert_eq!(storage.first_index().ok(), Some(7));
    assert_eq!(all(&storage), entries(7..=10, 3));
}

#[test]
fn a_leaders_snapshot_replaces_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut storage = open(dir.path());
    storage.append(&entries(1..=5, 1)).expect("append");
    let mut snapshot = Snapshot {
        data: b"leader image".to_vec().into(),
        ..Default::default()
    };
    let meta = snapshot.mut_metadata();
    (meta.index, meta.term) = (20, 4);
    meta.set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    storage.apply_snapshot(snapshot).expect("apply");
    storage.append(&entries(21..=22, 4)).expect("append");
    drop(storage);
    let storage = open(dir.path());
    assert_eq!(
        (storage.first_index().ok(), storage.last_index().ok()),
        (Some(21), Some(22))
    );
    let state = storage.initial_state().expect("state");
    assert_eq!((state.hard_state.commit, state.hard_state.term), (20, 4));
    assert_eq!(state.conf_state.voters, [1, 2, 3]);
}

#[test]
fn an_entry_over_the_bound_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut storage = open(dir.path());
    let mut big = entry(2, 1);
    big.data = vec![0; RECORD_BYTES_MAX + 1].into();
    let error = storage.append(&[entry(1, 1), big]).expect_err("refused");
    assert!(
        matches!(error, QuorumStoreError::TooLarge { .. }),
        "{error}"
    );
    assert_eq!(storage.log_bytes(), 0);
    assert_eq!(storage.last_index().ok(), Some(0));
    // A refused overwrite keeps the suffix it would have replaced.
    storage.append(&entries(1..=3, 1)).expect("append");
    let mut big = entry(2, 2);
    big.data = vec![0; RECORD_BYTES_MAX + 1].into();
    storage.append(&[big]).expect_err("refused");
    drop(storage);
    assert_eq!(all(&open(dir.path())), entries(1..=3, 1));
}

/// Runs one Ready as the controller will: persist (snapshot, entries, hard state), send, then
/// advance; returns the entries committed.
fn handle_ready(node: &mut RawNode<DiskStorage>) -> Vec<Entry> {
    let mut committed = Vec::new();
    if !node.has_ready() {
        return committed;
    }
    let mut ready = node.ready();
    assert!(ready.messages().is_empty(), "a single voter sends nothing");
    if !ready.snapshot().is_empty() {
        let snapshot = ready.snapshot().clone();
        node.mut_store()
            .apply_snapshot(snapshot)
            .expect("apply snapshot");
    }
    committed.extend(ready.take_committed_entries());
    node.mut_store().append(ready.entries()).expect("append");
    if let Some(hard_state) = ready.hs() {
        node.mut_store()
            .set_hard_state(hard_state.clone())
            .expect("hard state");
    }
    assert!(
        ready.persisted_messages().is_empty(),
        "a single voter sends nothing"
    );
    let mut light = node.advance(ready);
    if let Some(commit) = light.commit_index() {
        node.mut_store().set_commit(commit).expect("commit");
    }
    committed.extend(light.take_committed_entries());
    node.advance_apply();
    committed
}

fn single_voter(storage: DiskStorage) -> RawNode<DiskStorage> {
    let config = Config {
        id: 1,
        election_tick: 10,
        heartbeat_tick: 3,
        ..Default::default()
    };
    RawNode::new(&config, storage, &raft::default_logger()).expect("raw node")
}

/// Ticks until the node leads, handling every Ready on the way.
fn elect(node: &mut RawNode<DiskStorage>) {
    for _ in 0..100 {
        node.tick();
        handle_ready(node);
        if node.raft.state == raft::StateRole::Leader {
            return;
        }
    }
    panic!("a single voter did not become leader in 100 ticks");
}

#[test]
fn raw_node_commits_a_proposal_that_survives_a_reopen() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let dir = data_dir.path().join(METADATA_LOG_DIR);
    let mut storage = open(&dir);
    storage
        .initialize_with_conf_state(ConfState::from((vec![1], vec![])))
        .expect("conf");
    let mut node = single_voter(storage);
    elect(&mut node);
    node.propose(Vec::new(), b"topic created".to_vec())
        .expect("propose");
    let committed: Vec<Entry> = (0..3).flat_map(|_| handle_ready(&mut node)).collect();
    let proposal = committed
        .iter()
        .find(|e| &e.data[..] == b"topic created")
        .expect("the proposal is committed")
        .clone();
    let term = node.raft.term;
    drop(node);

    let storage = open(&dir);
    assert!(storage.hard_state().commit >= proposal.index);
    assert!(all(&storage).contains(&proposal));
    let mut node = single_voter(storage);
    elect(&mut node);
    assert!(node.raft.term > term, "a new term after the restart");
    assert_eq!(
        node.raft.raft_log.committed,
        node.raft.raft_log.last_index()
    );
}

/// An operation of the property test: an append from `start` (clamped to the log) of `count`
/// entries in `term`, or a reopen.
#[derive(Debug, Clone)]
enum Op {
    Append { start: u64, count: u64, term: u64 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..30u64, 1..5u64, 1..4u64)
            .prop_map(|(start, count, term)| Op::Append { start, count, term }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn appends_and_reopens_keep_what_a_vector_keeps(ops in proptest::collection::vec(op(), 1..12)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut storage = open(dir.path());
        let mut model: Vec<Entry> = Vec::new();
        for op in ops {
            match op {
                Op::Append { start, count, term } => {
                    let start = start.min(model.len() as u64 + 1);
                    let new = entries(start..=start + count - 1, term);
                    storage.append(&new).expect("append");
                    model.truncate(start as usize - 1);
                    model.extend(new);
                }
                Op::Reopen => {
                    drop(storage);
                    storage = open(dir.path());
                }
            }
            prop_assert_eq!(all(&storage), model.clone());
        }
    }
}

/// The controller hands the node (and the storage it owns) to glommio's blocking pool to
/// persist a Ready: both must be `Send`.
#[test]
fn the_node_and_its_storage_can_go_to_the_blocking_pool() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<DiskStorage>();
    assert_send::<RawNode<DiskStorage>>();
}
