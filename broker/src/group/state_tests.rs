//! The rebalance state machine, driven by hand with explicit times.

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::error::ResponseError;

use super::state::*;

const LIMITS: Limits = Limits {
    initial_rebalance_delay_ms: 0,
};

fn args(member_id: &str, protocols: &[&str]) -> JoinArgs {
    JoinArgs {
        member_id: member_id.to_string(),
        instance_id: None,
        client_id: "c".into(),
        client_host: String::new(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(p.to_string())))
            .collect(),
        require_known_member_id: true,
    }
}

fn now<T>(step: Step<T>) -> T {
    match step {
        Step::Now(result) => result,
        Step::Wait(_) => panic!("expected an answer now"),
    }
}

fn wait<T>(step: Step<T>) -> oneshot::Receiver<T> {
    match step {
        Step::Wait(rx) => rx,
        Step::Now(_) => panic!("expected to wait"),
    }
}

fn done<T>(rx: &mut oneshot::Receiver<T>) -> T {
    rx.try_recv()
        .expect("sender alive")
        .expect("answered by now")
}

/// Joins a new dynamic member (MEMBER_ID_REQUIRED first) and returns its id and receiver.
fn join_new(g: &mut Group, t: i64) -> (String, oneshot::Receiver<JoinResult>) {
    let first = now(g.join(args("", &["range"]), t, LIMITS));
    assert_eq!(first.error, ResponseError::MemberIdRequired.code());
    let id = first.member_id.clone();
    let rx = wait(g.join(args(&id, &["range"]), t, LIMITS));
    (id, rx)
}

#[test]
fn given_one_member_when_it_joins_and_syncs_should_become_stable_leader() {
    let mut g = Group::new("g", 0);
    let (id, mut rx) = join_new(&mut g, 0);
    let joined = done(&mut rx);
    assert_eq!(joined.error, 0);
    assert_eq!(joined.generation, 1);
    assert_eq!(joined.leader, id);
    assert_eq!(joined.members.len(), 1);
    assert_eq!(g.state, GroupState::CompletingRebalance);
    let assignment = Bytes::from_static(b"a1");
    let mut sync = wait(g.sync(&id, None, 1, vec![(id.clone(), assignment.clone())], 1));
    assert_eq!(done(&mut sync).assignment, assignment);
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(g.heartbeat(&id, None, 1, 2), 0);
}

#[test]
fn given_a_stable_group_when_a_second_member_joins_should_rebalance_with_both() {
    let mut g = Group::new("g", 0);
    let (a, mut rx) = join_new(&mut g, 0);
    done(&mut rx);
    now_sync(&mut g, &a, 1);
    let (b, mut rx_b) = join_new(&mut g, 10);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert!(rx_b.try_recv().expect("alive").is_none(), "waits for a");
    assert_eq!(
        g.heartbeat(&a, None, 1, 11),
        ResponseError::RebalanceInProgress.code()
    );
    let mut rx_a = wait(g.join(args(&a, &["range"]), 12, LIMITS));
    let ja = done(&mut rx_a);
    let jb = done(&mut rx_b);
    assert_eq!((ja.generation, jb.generation), (2, 2));
    assert_eq!(ja.leader, a, "the first joiner stays leader");
    assert_eq!(ja.members.len(), 2);
    assert!(jb.members.is_empty());
    let mut sync_b = wait(g.sync(&b, None, 2, vec![], 13));
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"A")),
        (b.clone(), Bytes::from_static(b"B")),
    ];
    let mut sync_a = wait(g.sync(&a, None, 2, assignments, 14));
    assert_eq!(&done(&mut sync_a).assignment[..], b"A");
    assert_eq!(&done(&mut sync_b).assignment[..], b"B");
}

fn now_sync(g: &mut Group, leader: &str, generation: i32) {
    let assignments = vec![(leader.to_string(), Bytes::from_static(b"x"))];
    let mut rx = wait(g.sync(leader, None, generation, assignments, 1));
    assert_eq!(done(&mut rx).error, 0);
}

#[test]
fn given_a_silent_member_when_its_session_times_out_should_be_removed_and_rebalance() {
    let mut g = Group::new("g", 0);
    let (a, mut rx) = join_new(&mut g, 0);
    done(&mut rx);
    let (b, mut rx_b) = join_new(&mut g, 0);
    let mut rx_a = wait(g.join(args(&a, &["range"]), 0, LIMITS));
    done(&mut rx_a);
    done(&mut rx_b);
    now_sync(&mut g, &a, 2);
    assert_eq!(g.state, GroupState::Stable);
    // a heartbeats, b stays silent past its 10 s session.
    assert_eq!(g.heartbeat(&a, None, 2, 9_000), 0);
    let expired = g.tick(10_001, LIMITS);
    assert_eq!(expired, vec![b.clone()]);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    let mut rx_a = wait(g.join(args(&a, &["range"]), 10_002, LIMITS));
    assert_eq!(done(&mut rx_a).generation, 3);
    assert_eq!(
        g.heartbeat(&b, None, 3, 10_003),
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn given_a_member_that_does_not_rejoin_when_the_rebalance_times_out_should_drop_it() {
    let mut g = Group::new("g", 0);
    let (a, mut rx) = join_new(&mut g, 0);
    done(&mut rx);
    now_sync(&mut g, &a, 1);
    let (_b, mut rx_b) = join_new(&mut g, 100);
    g.heartbeat(&a, None, 1, 20_000);
    assert!(!g.try_complete_join(20_000));
    g.tick(30_101, LIMITS);
    let jb = done(&mut rx_b);
    assert_eq!(jb.generation, 2);
    assert_eq!(jb.members.len(), 1, "b leads alone");
    assert!(!g.members.contains_key(&a));
}

#[test]
fn given_a_leaving_member_when_it_leaves_should_rebalance_the_rest() {
    let mut g = Group::new("g", 0);
    let (a, mut rx) = join_new(&mut g, 0);
    done(&mut rx);
    let (b, mut rx_b) = join_new(&mut g, 0);
    let mut rx_a = wait(g.join(args(&a, &["range"]), 0, LIMITS));
    done(&mut rx_a);
    done(&mut rx_b);
    now_sync(&mut g, &a, 2);
    assert_eq!(g.leave(&a, None, 5, LIMITS), 0);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    let mut rx_b = wait(g.join(args(&b, &["range"]), 6, LIMITS));
    let jb = done(&mut rx_b);
    assert_eq!(jb.leader, b, "a new leader when the old one left");
    assert_eq!(g.leave(&b, None, 7, LIMITS), 0);
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(
        g.leave(&b, None, 8, LIMITS),
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn given_wrong_identity_when_syncing_or_heartbeating_should_get_kafkas_errors() {
    let mut g = Group::new("g", 0);
    let (a, mut rx) = join_new(&mut g, 0);
    done(&mut rx);
    let sync = now(g.sync(&a, None, 7, vec![], 1));
    assert_eq!(sync.error, ResponseError::IllegalGeneration.code());
    let sync = now(g.sync("nobody", None, 1, vec![], 1));
    assert_eq!(sync.error, ResponseError::UnknownMemberId.code());
    let join = now(g.join(args("nobody", &["range"]), 1, LIMITS));
    assert_eq!(join.error, ResponseError::UnknownMemberId.code());
    let join = now(g.join(args("", &["other"]), 1, LIMITS));
    assert_eq!(join.error, ResponseError::InconsistentGroupProtocol.code());
    assert_eq!(
        g.check_commit("", None, -1),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        g.check_commit(&a, None, 1),
        ResponseError::RebalanceInProgress.code()
    );
}

#[test]
fn given_an_empty_group_when_a_standalone_consumer_commits_should_be_allowed() {
    let g = Group::new("g", 0);
    assert_eq!(g.check_commit("", None, -1), 0);
    assert_eq!(
        g.check_commit("m", None, 3),
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn given_members_preferring_different_protocols_should_choose_one_all_support() {
    let mut g = Group::new("g", 0);
    let mut a = args("", &["cooperative-sticky", "range"]);
    a.require_known_member_id = false;
    let mut rx_a = wait(g.join(a, 0, LIMITS));
    done(&mut rx_a);
    let mut b = args("", &["range"]);
    b.require_known_member_id = false;
    let _rx_b = wait(g.join(b, 1, LIMITS));
    assert_eq!(g.choose_protocol().as_deref(), Some("range"));
}

#[test]
fn given_an_initial_delay_when_members_join_should_wait_for_it() {
    let limits = Limits {
        initial_rebalance_delay_ms: 3_000,
    };
    let mut g = Group::new("g", 0);
    let mut a = args("", &["range"]);
    a.require_known_member_id = false;
    let mut rx = wait(g.join(a, 0, limits));
    assert!(rx.try_recv().expect("alive").is_none());
    g.tick(2_999, limits);
    assert!(rx.try_recv().expect("alive").is_none());
    g.tick(3_000, limits);
    assert_eq!(done(&mut rx).generation, 1);
}

#[test]
fn given_a_static_member_when_it_restarts_should_keep_its_assignment_and_fence_the_old_id() {
    let mut g = Group::new("g", 0);
    let mut a = args("", &["range"]);
    a.instance_id = Some("i1".into());
    let mut rx = wait(g.join(a.clone(), 0, LIMITS));
    let old = done(&mut rx).member_id;
    now_sync(&mut g, &old, 1);
    let again = now(g.join(a, 5, LIMITS));
    assert_eq!(again.error, 0);
    assert_eq!(again.generation, 1, "no rebalance");
    assert_ne!(again.member_id, old);
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(
        g.heartbeat(&old, Some("i1"), 1, 6),
        ResponseError::FencedInstanceId.code()
    );
    assert_eq!(g.heartbeat(&again.member_id, Some("i1"), 1, 6), 0);
    let sync = now(g.sync(&again.member_id, Some("i1"), 1, vec![], 7));
    assert_eq!(
        &sync.assignment[..],
        b"x",
        "the old assignment carries over"
    );
}

#[test]
fn given_an_empty_group_past_retention_should_expire_its_offsets() {
    let mut g = Group::new("g", 0);
    let committed = Committed {
        offset: 1,
        leader_epoch: -1,
        metadata: String::new(),
        commit_ms: 0,
        log_offset: -1,
    };
    g.offsets.insert(("t".into(), 0), committed);
    assert!(g.expire_offsets(99, 100).is_empty());
    assert_eq!(g.expire_offsets(100, 100), vec![("t".to_string(), 0)]);
    assert!(g.offsets.is_empty());
}

#[test]
fn given_members_awaiting_sync_when_a_rebalance_starts_should_tell_them_to_rejoin() {
    let mut g = Group::new("g", 0);
    let (a, mut rx_a) = join_new(&mut g, 0);
    done(&mut rx_a);
    let (b, mut rx_b) = join_new(&mut g, 0);
    let mut rx_a = wait(g.join(args(&a, &["range"]), 0, LIMITS));
    done(&mut rx_a);
    done(&mut rx_b);
    assert_eq!(g.state, GroupState::CompletingRebalance);
    let mut sync_b = wait(g.sync(&b, None, 2, vec![], 1));
    // The leader never syncs and goes silent: b's wait ends with REBALANCE_IN_PROGRESS.
    g.heartbeat(&b, None, 2, 9_000);
    g.tick(10_001, LIMITS);
    assert_eq!(
        done(&mut sync_b).error,
        ResponseError::RebalanceInProgress.code()
    );
    assert!(!g.members.contains_key(&a));
}

#[test]
fn given_a_member_id_handed_out_when_never_used_should_expire_and_not_block_the_rebalance() {
    let mut g = Group::new("g", 0);
    let (a, mut rx) = join_new(&mut g, 0);
    done(&mut rx);
    now_sync(&mut g, &a, 1);
    let pending = now(g.join(args("", &["range"]), 100, LIMITS));
    assert_eq!(pending.error, ResponseError::MemberIdRequired.code());
    // The new member never comes back with its id; a's own rejoin waits only for the expiry.
    g.prepare_rebalance(200, LIMITS, "test");
    let mut rx_a = wait(g.join(args(&a, &["range"]), 200, LIMITS));
    assert!(rx_a.try_recv().expect("alive").is_none());
    g.tick(10_101, LIMITS);
    assert_eq!(done(&mut rx_a).generation, 2);
}

#[test]
fn given_a_stable_group_should_match_only_its_own_protocol() {
    let mut g = Group::new("g", 0);
    let (a, mut rx) = join_new(&mut g, 0);
    done(&mut rx);
    now_sync(&mut g, &a, 1);
    assert!(g.protocol_matches(None, None));
    assert!(g.protocol_matches(Some("consumer"), Some("range")));
    assert!(!g.protocol_matches(Some("connect"), Some("range")));
    assert!(!g.protocol_matches(Some("consumer"), Some("roundrobin")));
}
