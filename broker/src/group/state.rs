//! One consumer group's membership and Kafka's classic rebalance protocol, as a plain state
//! machine: no I/O, no timers, time passed in as `now_ms`. The coordinator drives it (requests
//! and a periodic tick) and turns its results into responses.
//!
//! States: Empty → PreparingRebalance → CompletingRebalance → Stable (and Dead once deleted).
//! A rebalance waits for every known member to send JoinGroup again (their JoinGroup responses
//! are held as oneshots), or for the rebalance timeout, which removes the members that did not;
//! a new group's first rebalance also waits `group.initial.rebalance.delay.ms`. The leader (the
//! first joiner) sends every member's assignment in SyncGroup; the broker passes them through.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::error::ResponseError;

/// The most members of one group (Kafka's `group.max.size` default is unlimited; bounded here).
pub const MEMBERS_MAX: usize = 1000;
/// The most members that got MEMBER_ID_REQUIRED and have not come back yet.
pub const PENDING_MAX: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses (ListGroups, DescribeGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A committed position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_ms: i64,
    /// Where in `__consumer_offsets` this commit is stored (not part of the stored value): of
    /// two commits of one partition, the later in the log is the committed one.
    pub log_offset: i64,
}

/// What a JoinGroup is answered with.
#[derive(Clone, Debug, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol: for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub fn error(error: ResponseError, member_id: &str) -> JoinResult {
        JoinResult {
            error: error.code(),
            generation: -1,
            member_id: member_id.to_string(),
            ..JoinResult::default()
        }
    }
}

/// What a SyncGroup is answered with.
#[derive(Clone, Debug, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ResponseError) -> SyncResult {
        SyncResult {
            error: error.code(),
            ..SyncResult::default()
        }
    }
}

/// An answer now, or one to wait for (the sender sits in the member until the rebalance ends).
pub enum Step<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

/// One JoinGroup, as the state machine needs it.
#[derive(Clone, Debug)]
pub struct JoinArgs {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a dynamic member without an id is first given one (KIP-394).
    pub require_known_member_id: bool,
}

/// Settings of the coordinator that the state machine uses.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub initial_rebalance_delay_ms: i64,
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_seen_ms: i64,
    /// Order of first joining: the leader is the earliest member left.
    seq: u64,
    /// The member's JoinGroup and SyncGroup answers while it waits for the rebalance.
    pub(super) join_waiter: Option<oneshot::Sender<JoinResult>>,
    pub(super) sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    /// Whether the member waits for a JoinGroup or SyncGroup answer.
    pub(super) fn awaiting(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }

    /// The member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

/// One group: membership, the rebalance in progress, and committed offsets.
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, each with the time it expires.
    pub(super) pending: HashMap<String, i64>,
    /// group.instance.id → member id (static members, KIP-345).
    pub static_members: HashMap<String, String>,
    pub offsets: HashMap<(String, i32), Committed>,
    /// The rebalance ends by then even if members have not rejoined.
    rebalance_deadline_ms: i64,
    /// A new group's first rebalance waits at least until then.
    initial_delay_until_ms: i64,
    /// When the group last became Empty (for offset expiry).
    pub empty_since_ms: i64,
    next_seq: u64,
    next_member: u64,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            offsets: HashMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay_until_ms: 0,
            empty_since_ms: now_ms,
            next_seq: 0,
            next_member: 0,
        }
    }

    /// A fresh member id: the client id and a unique suffix, as Kafka makes them.
    fn new_member_id(&mut self, client_id: &str, now_ms: i64) -> String {
        self.next_member += 1;
        let unique = u64::from(rand::random::<u32>());
        format!("{client_id}-{now_ms:x}-{:x}-{unique:08x}", self.next_member)
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// Handles a JoinGroup.
    pub fn join(&mut self, args: JoinArgs, now_ms: i64, limits: Limits) -> Step<JoinResult> {
        if self.state == GroupState::Dead {
            return Step::Now(JoinResult::error(
                ResponseError::CoordinatorNotAvailable,
                &args.member_id,
            ));
        }
        if !self.protocols_fit(&args) {
            return Step::Now(JoinResult::error(
                ResponseError::InconsistentGroupProtocol,
                &args.member_id,
            ));
        }
        if let Some(instance) = args.instance_id.clone() {
            return self.join_static(args, &instance, now_ms, limits);
        }
        if args.member_id.is_empty() {
            if self.members.len() + self.pending.len() >= MEMBERS_MAX {
                return Step::Now(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
            }
            let id = self.new_member_id(&args.client_id, now_ms);
            if args.require_known_member_id {
                if self.pending.len() >= PENDING_MAX {
                    return Step::Now(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
                }
                self.pending
                    .insert(id.clone(), now_ms + args.session_timeout_ms);
                return Step::Now(JoinResult::error(ResponseError::MemberIdRequired, &id));
            }
            return self.add_member(id, args, now_ms, limits);
        }
        let id = args.member_id.clone();
        if self.pending.remove(&id).is_some() {
            return self.add_member(id, args, now_ms, limits);
        }
        if !self.members.contains_key(&id) {
            return Step::Now(JoinResult::error(ResponseError::UnknownMemberId, &id));
        }
        self.rejoin(id, args, now_ms, limits)
    }

    /// Static membership: a known instance id takes over its member (a restarted consumer gets
    /// its old assignment back without a rebalance); an unknown one joins as a new member.
    fn join_static(
        &mut self,
        args: JoinArgs,
        instance: &str,
        now_ms: i64,
        limits: Limits,
    ) -> Step<JoinResult> {
        let Some(old_id) = self.static_members.get(instance).cloned() else {
            if !args.member_id.is_empty() {
                return Step::Now(JoinResult::error(
                    ResponseError::UnknownMemberId,
                    &args.member_id,
                ));
            }
            if self.members.len() + self.pending.len() >= MEMBERS_MAX {
                return Step::Now(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
            }
            let id = self.new_member_id(instance, now_ms);
            self.static_members.insert(instance.to_string(), id.clone());
            return self.add_member(id, args, now_ms, limits);
        };
        if !args.member_id.is_empty() {
            if args.member_id != old_id {
                return Step::Now(JoinResult::error(
                    ResponseError::FencedInstanceId,
                    &args.member_id,
                ));
            }
            return self.rejoin(old_id, args, now_ms, limits);
        }
        // A restarted static member: a new id replaces the old one, which is fenced.
        let new_id = self.new_member_id(instance, now_ms);
        let Some(mut member) = self.members.remove(&old_id) else {
            self.static_members.remove(instance);
            return self.join_static(args, instance, now_ms, limits);
        };
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(JoinResult::error(ResponseError::FencedInstanceId, &old_id));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(SyncResult::error(ResponseError::FencedInstanceId));
        }
        member.id = new_id.clone();
        let same_protocols = member.protocols == args.protocols;
        member.protocols = args.protocols.clone();
        member.session_timeout_ms = args.session_timeout_ms;
        member.rebalance_timeout_ms = args.rebalance_timeout_ms;
        member.last_seen_ms = now_ms;
        self.members.insert(new_id.clone(), member);
        self.static_members
            .insert(instance.to_string(), new_id.clone());
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        if self.state == GroupState::Stable && same_protocols {
            // Nothing changed for the others: hand back the current generation.
            return Step::Now(self.join_result_for(&new_id, false));
        }
        self.rejoin(new_id, args, now_ms, limits)
    }

    fn protocols_fit(&self, args: &JoinArgs) -> bool {
        if args.protocols.is_empty() || args.protocol_type.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(args.protocol_type.as_str()) {
            return false;
        }
        let others = self.members.values().filter(|m| m.id != args.member_id);
        let mut candidates: Vec<&str> = args.protocols.iter().map(|(n, _)| n.as_str()).collect();
        for member in others {
            candidates.retain(|c| member.protocols.iter().any(|(n, _)| n == c));
        }
        !candidates.is_empty()
    }

    fn add_member(
        &mut self,
        id: String,
        args: JoinArgs,
        now_ms: i64,
        limits: Limits,
    ) -> Step<JoinResult> {
        self.next_seq += 1;
        let member = Member {
            id: id.clone(),
            instance_id: args.instance_id.clone(),
            client_id: args.client_id.clone(),
            client_host: args.client_host.clone(),
            session_timeout_ms: args.session_timeout_ms,
            rebalance_timeout_ms: args.rebalance_timeout_ms,
            protocols: args.protocols.clone(),
            assignment: Bytes::new(),
            last_seen_ms: now_ms,
            seq: self.next_seq,
            join_waiter: None,
            sync_waiter: None,
        };
        if self.members.is_empty() {
            self.protocol_type = Some(args.protocol_type.clone());
        }
        self.members.insert(id.clone(), member);
        if self.state == GroupState::PreparingRebalance && now_ms < self.initial_delay_until_ms {
            // Every new member during the initial delay pushes it out, up to the timeout.
            self.initial_delay_until_ms = (now_ms + limits.initial_rebalance_delay_ms)
                .min(self.rebalance_deadline_ms.max(now_ms));
        }
        self.rejoin_as(id, args, now_ms, limits, true)
    }

    fn rejoin(
        &mut self,
        id: String,
        args: JoinArgs,
        now_ms: i64,
        limits: Limits,
    ) -> Step<JoinResult> {
        self.rejoin_as(id, args, now_ms, limits, false)
    }

    /// A known member sends JoinGroup: it waits for the rebalance (starting one if needed), or
    /// gets the current generation back when nothing changed.
    fn rejoin_as(
        &mut self,
        id: String,
        args: JoinArgs,
        now_ms: i64,
        limits: Limits,
        is_new: bool,
    ) -> Step<JoinResult> {
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        let Some(member) = self.members.get_mut(&id) else {
            return Step::Now(JoinResult::error(ResponseError::UnknownMemberId, &id));
        };
        let same = member.protocols == args.protocols;
        member.protocols = args.protocols;
        member.session_timeout_ms = args.session_timeout_ms;
        member.rebalance_timeout_ms = args.rebalance_timeout_ms;
        member.client_id = args.client_id;
        member.client_host = args.client_host;
        member.last_seen_ms = now_ms;
        let unchanged = same && !is_new && !is_leader && member.join_waiter.is_none();
        match self.state {
            GroupState::CompletingRebalance | GroupState::Stable if unchanged => {
                return Step::Now(self.join_result_for(&id, false));
            }
            GroupState::PreparingRebalance => {}
            _ => self.prepare_rebalance(now_ms, limits, "member joined"),
        }
        let (tx, rx) = oneshot::channel();
        if let Some(member) = self.members.get_mut(&id) {
            if let Some(old) = member.join_waiter.replace(tx) {
                let _ = old.send(JoinResult::error(ResponseError::UnknownMemberId, &id));
            }
        }
        self.try_complete_join(now_ms);
        Step::Wait(rx)
    }

    /// Starts a rebalance: members must join again within the rebalance timeout.
    pub fn prepare_rebalance(&mut self, now_ms: i64, limits: Limits, reason: &str) {
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncResult::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        self.rebalance_deadline_ms = now_ms + timeout;
        self.initial_delay_until_ms =
            if self.state == GroupState::Empty && limits.initial_rebalance_delay_ms > 0 {
                now_ms + limits.initial_rebalance_delay_ms.min(timeout)
            } else {
                now_ms
            };
        tracing::debug!(group = %self.id, reason, from = self.state.name(), "preparing rebalance");
        self.state = GroupState::PreparingRebalance;
    }

    /// Ends the join phase when every member has rejoined (after the initial delay), or when
    /// the rebalance timeout passed (dropping the members that did not). True if it ended.
    pub fn try_complete_join(&mut self, now_ms: i64) -> bool {
        if self.state != GroupState::PreparingRebalance || now_ms < self.initial_delay_until_ms {
            return false;
        }
        let all_joined =
            self.members.values().all(|m| m.join_waiter.is_some()) && self.pending.is_empty();
        if !all_joined && now_ms < self.rebalance_deadline_ms {
            return false;
        }
        let late: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in &late {
            self.remove_member(id);
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.become_empty(now_ms);
            tracing::info!(group = %self.id, generation = self.generation, "group is empty");
            return true;
        }
        self.protocol = self.choose_protocol();
        let leader_left = self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l));
        if leader_left {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.seq)
                .map(|m| m.id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol.as_deref().unwrap_or(""),
            "group rebalanced"
        );
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let result = self.join_result_for(&id, is_leader);
            if let Some(member) = self.members.get_mut(&id) {
                member.last_seen_ms = now_ms;
                if let Some(waiter) = member.join_waiter.take() {
                    let _ = waiter.send(result);
                }
            }
        }
        true
    }

    fn become_empty(&mut self, now_ms: i64) {
        self.state = GroupState::Empty;
        self.protocol = None;
        // Kafka keeps the type of an empty group ("consumer"): tools list it as a consumer group
        // with no members, not as a simple group. The next member to join sets it afresh.
        self.leader = None;
        self.empty_since_ms = now_ms;
    }

    /// The protocol every member supports that most members prefer.
    pub(super) fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|c| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == c))
            })
            .collect();
        let mut votes: Vec<(usize, &str)> = candidates.iter().map(|c| (0, *c)).collect();
        for member in self.members.values() {
            let choice = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()));
            if let Some((name, _)) = choice {
                if let Some(vote) = votes.iter_mut().find(|(_, c)| c == name) {
                    vote.0 += 1;
                }
            }
        }
        // Most votes; ties go to the earlier candidate.
        let mut best: Option<(usize, &str)> = None;
        for (count, name) in votes {
            if best.is_none_or(|(b, _)| count > b) {
                best = Some((count, name));
            }
        }
        best.map(|(_, name)| name.to_string())
    }

    fn join_result_for(&self, id: &str, with_members: bool) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if with_members {
            self.members
                .values()
                .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: id.to_string(),
            members,
        }
    }
}
