//! The metadata quorum's driver: one raft-rs `RawNode` on shard 0, fed by ticks, proposals and
//! the other voters' messages, and its Ready loop (persist, send, apply).
//!
//! Persisting (appends, hard state, snapshots: fsyncs) happens on glommio's blocking pool: the
//! `RawNode` with its [`DiskStorage`] is handed over and back, so the shard never blocks and
//! nothing else touches it meanwhile. Messages are sent only after what they acknowledge is
//! synced. Committed entries are applied here, to the [`ClusterImage`] (pure, quick); what that
//! means for this node's logs and shards (opening, deleting, publishing the snapshot) is the
//! applier's work (`control::apply_loop`), in its own task, so a big change never delays the
//! ticks that keep the leadership.
//!
//! The leader also watches the brokers' heartbeats: a broker silent for
//! `broker.session.timeout.ms` is fenced (a FenceBroker entry), one heard from again unfenced.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::future::{select, Either};
use futures::StreamExt;
use kafka_protocol::error::ResponseError;
use odradek_net::Shutdown;
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Message};
use raft::{RawNode, StateRole};

use super::image::{proposal_of, Applied, ClusterImage, Command, Proposal};
use super::storage::DiskStorage;
use super::transport::{Heartbeat, Incoming, Peers};
use super::QuorumStoreError;
use crate::control::ControlError;

/// One Raft tick. Elections time out after 10 to 20 ticks; the leader heartbeats every 2.
pub const TICK: Duration = Duration::from_millis(100);
pub const ELECTION_TICKS: usize = 10;
pub const HEARTBEAT_TICKS: usize = 2;
/// Inputs handled before the Ready loop runs again.
const INPUT_BATCH_MAX: usize = 1024;

/// Raft ids must be positive; Kafka's node ids start at 0.
pub fn raft_id(node_id: i32) -> u64 {
    node_id as u64 + 1
}

pub fn node_id_of(raft_id: u64) -> Option<i32> {
    (raft_id > 0).then(|| (raft_id - 1) as i32)
}

/// What the driver is asked, on shard 0.
pub enum Input {
    Network(Incoming),
    Propose {
        proposal: Proposal,
        /// Told at once when Raft refuses the proposal (no leader known).
        refused: oneshot::Sender<ControlError>,
    },
}

/// The quorum as this node sees it (DescribeQuorum, `odradek cluster describe`).
#[derive(Clone, Debug, Default)]
pub struct QuorumStatus {
    pub leader: Option<i32>,
    pub term: u64,
    pub commit: u64,
    /// Every voter with its last log index the leader knows (`None` off the leader).
    pub voters: Vec<(i32, Option<u64>)>,
    /// The broker-only nodes following the log (Raft learners), likewise.
    pub observers: Vec<(i32, Option<u64>)>,
}

/// What the applier gets after each Ready: the image as now applied, the outcomes of the
/// proposals it contained, and who leads.
pub struct AppliedBatch {
    pub image: Arc<ClusterImage>,
    pub outcomes: Vec<(u64, Applied)>,
    pub controller: Option<i32>,
}

/// The driver's state; [`Driver::run`] owns it on shard 0.
pub struct Driver {
    pub node: Option<RawNode<DiskStorage>>,
    pub image: ClusterImage,
    pub applied: u64,
    /// Entry bytes applied since the last snapshot; one is taken past `snapshot_bytes`.
    pub bytes_since_snapshot: u64,
    pub snapshot_bytes: u64,
    pub me: i32,
    pub peers: Peers,
    pub inbox: mpsc::Receiver<Input>,
    pub applier: mpsc::UnboundedSender<AppliedBatch>,
    pub shared: Arc<crate::shard::NodeShared>,
    pub heartbeat_interval: Duration,
    pub session_timeout: Duration,
    /// This node's incarnation, for its own heartbeats.
    pub incarnation: u64,
    /// `auto.leader.rebalance.enable`: how often, and past which imbalance (percent).
    pub leader_rebalance: Option<(Duration, u32)>,
    pub shutdown: Shutdown,
    /// Set when the storage failed: the broker must stop.
    pub on_failure: Box<dyn Fn(String)>,
}

/// The leader's view of the brokers' heartbeats.
#[derive(Default)]
struct Liveness {
    last_seen: HashMap<i32, Instant>,
    /// A fence proposed, not yet applied: not proposed again before this instant.
    fence_pending_until: HashMap<i32, Instant>,
    /// The same for an unfence. Apart from fences: a broker fenced (applied) and heard from
    /// again at once is unfenced at once, not a session timeout after its fence was proposed
    /// (in tests/cluster_partition.rs that held a healed broker fenced 8 s longer).
    unfence_pending_until: HashMap<i32, Instant>,
}

impl Driver {
    pub async fn run(mut self) {
        let mut next_tick = Instant::now() + TICK;
        let mut next_heartbeat = Instant::now();
        let mut leader = None;
        let mut next_rebalance = self
            .leader_rebalance
            .map(|(every, _)| Instant::now() + every);
        let mut liveness = Liveness::default();
        self.publish_status(leader);
        while !self.shutdown.is_triggered() {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let input = std::pin::pin!(self.inbox.next());
            let timer = std::pin::pin!(glommio::timer::sleep(wait));
            match select(input, timer).await {
                Either::Left((Some(input), _)) => self.handle(input, &mut liveness),
                Either::Left((None, _)) => return,
                Either::Right(_) => {}
            }
            for _ in 0..INPUT_BATCH_MAX {
                match self.inbox.try_recv() {
                    Ok(input) => self.handle(input, &mut liveness),
                    _ => break,
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                self.node_mut().tick();
                next_tick = now + TICK;
                if self.node_ref().raft.state == StateRole::Leader {
                    self.watch_liveness(&mut liveness, now);
                    self.add_observers();
                    if let (Some(at), Some((every, percent))) =
                        (next_rebalance, self.leader_rebalance)
                    {
                        if now >= at {
                            next_rebalance = Some(now + every);
                            self.rebalance_leaders(percent);
                        }
                    }
                }
            }
            if now >= next_heartbeat {
                next_heartbeat = now + self.heartbeat_interval;
                self.send_heartbeat();
            }
            if self.node_ref().has_ready() {
                if let Err(error) = self.handle_ready().await {
                    (self.on_failure)(format!("the metadata log cannot be written: {error}"));
                    return;
                }
            }
            let now_leader = node_id_of(self.node_ref().raft.leader_id);
            if now_leader != leader {
                leader = now_leader;
                let term = self.node_ref().raft.term;
                tracing::info!(leader = ?leader, term, "metadata quorum leader");
                if leader == Some(self.me) {
                    // A new leader gives every broker a full session before fencing it.
                    liveness = Liveness::default();
                    for id in self.image.brokers.keys() {
                        liveness.last_seen.insert(*id, now);
                    }
                }
                self.send_batch(Vec::new(), leader);
            }
            self.publish_status(leader);
        }
    }

    fn node_ref(&self) -> &RawNode<DiskStorage> {
        self.node
            .as_ref()
            .expect("the node is back from the blocking pool")
    }

    fn node_mut(&mut self) -> &mut RawNode<DiskStorage> {
        self.node
            .as_mut()
            .expect("the node is back from the blocking pool")
    }

    fn handle(&mut self, input: Input, liveness: &mut Liveness) {
        match input {
            Input::Network(Incoming::Raft(message)) => {
                // A message of an old term or for another node: raft-rs says so and drops it.
                if let Err(error) = self.node_mut().step(*message) {
                    tracing::debug!(%error, "raft message not taken");
                }
            }
            Input::Network(Incoming::Heartbeat(heartbeat)) => {
                liveness.last_seen.insert(heartbeat.node_id, Instant::now());
                self.unfence_if_back(&heartbeat, liveness);
            }
            Input::Propose { proposal, refused } => {
                let data = serde_json::to_vec(&proposal).expect("a proposal encodes");
                if let Err(error) = self.node_mut().propose(Vec::new(), data) {
                    let _ = refused.send(ControlError::new(
                        ResponseError::NotController,
                        format!("the metadata quorum has no leader now ({error}); retry"),
                    ));
                }
            }
        }
    }

    fn send_heartbeat(&mut self) {
        let heartbeat = Heartbeat {
            node_id: self.me,
            incarnation: self.incarnation,
        };
        match node_id_of(self.node_ref().raft.leader_id) {
            Some(leader) if leader != self.me => self.peers.send_heartbeat(leader, &heartbeat),
            _ => {}
        }
    }

    /// On the leader: fences brokers silent for a session timeout.
    fn watch_liveness(&mut self, liveness: &mut Liveness, now: Instant) {
        liveness.last_seen.insert(self.me, now);
        let mut silent = Vec::new();
        for broker in self.image.brokers.values().filter(|b| !b.fenced) {
            // A broker registered since this node leads gets a full session from now.
            let seen = liveness.last_seen.entry(broker.node_id).or_insert(now);
            if now.duration_since(*seen) > self.session_timeout {
                silent.push((broker.node_id, broker.incarnation));
            }
        }
        for (node_id, incarnation) in silent {
            if liveness
                .fence_pending_until
                .get(&node_id)
                .is_some_and(|t| now < *t)
            {
                continue;
            }
            tracing::warn!(
                node_id,
                "no heartbeat within broker.session.timeout.ms: fencing"
            );
            liveness
                .fence_pending_until
                .insert(node_id, now + self.session_timeout);
            self.propose_internal(Command::FenceBroker {
                node_id,
                incarnation,
            });
        }
    }

    /// On the leader: preferred elections where leadership is out of balance.
    fn rebalance_leaders(&mut self, percent: u32) {
        let partitions = self.image.imbalanced_partitions(percent);
        if partitions.is_empty() {
            return;
        }
        tracing::info!(
            partitions = partitions.len(),
            "leaders out of balance: preferred elections"
        );
        self.propose_internal(Command::ElectLeaders {
            partitions: Some(partitions),
            unclean: false,
        });
    }

    fn unfence_if_back(&mut self, heartbeat: &Heartbeat, liveness: &mut Liveness) {
        if self.node_ref().raft.state != StateRole::Leader {
            return;
        }
        let fenced = self
            .image
            .brokers
            .get(&heartbeat.node_id)
            .is_some_and(|b| b.fenced && b.incarnation == heartbeat.incarnation);
        let now = Instant::now();
        let pending = liveness
            .unfence_pending_until
            .get(&heartbeat.node_id)
            .is_some_and(|t| now < *t);
        if fenced && !pending {
            tracing::info!(
                node_id = heartbeat.node_id,
                "heartbeat from a fenced broker: unfencing"
            );
            liveness
                .unfence_pending_until
                .insert(heartbeat.node_id, now + self.session_timeout);
            self.propose_internal(Command::UnfenceBroker {
                node_id: heartbeat.node_id,
                incarnation: heartbeat.incarnation,
            });
        }
    }

    /// On the leader: makes the broker-only nodes connected here learners, one conf change at a
    /// time (a learner gets the log and snapshots; it does not vote).
    fn add_observers(&mut self) {
        let raft = &self.node_ref().raft;
        if raft.has_pending_conf() {
            return;
        }
        let conf = raft.prs().conf();
        let known = |id: u64| conf.learners().contains(&id) || conf.voters().contains(id);
        let Some(observer) = self
            .peers
            .observer_ids()
            .into_iter()
            .find(|id| !known(raft_id(*id)))
        else {
            return;
        };
        let change = ConfChange {
            change_type: ConfChangeType::AddLearnerNode,
            node_id: raft_id(observer),
            ..Default::default()
        };
        match self.node_mut().propose_conf_change(Vec::new(), change) {
            Ok(()) => tracing::info!(node_id = observer, "adding a broker-only node as a learner"),
            Err(error) => tracing::debug!(%error, "conf change not proposed"),
        }
    }

    /// A proposal of the driver's own, whose outcome nobody waits for.
    fn propose_internal(&mut self, command: Command) {
        let proposal = Proposal {
            id: rand::random(),
            command,
        };
        let data = serde_json::to_vec(&proposal).expect("a proposal encodes");
        if let Err(error) = self.node_mut().propose(Vec::new(), data) {
            tracing::debug!(%error, "proposal dropped");
        }
    }

    async fn handle_ready(&mut self) -> Result<(), raft::Error> {
        let mut node = self.node.take().expect("one Ready at a time");
        let compact = (self.bytes_since_snapshot >= self.snapshot_bytes).then(|| {
            self.bytes_since_snapshot = 0;
            let image = serde_json::to_vec(&self.image).expect("the image encodes");
            (self.applied, image)
        });
        let (node, persisted) = glommio::executor()
            .spawn_blocking(move || {
                let persisted = persist(&mut node, compact);
                (node, persisted)
            })
            .await;
        self.node = Some(node);
        let persisted = persisted?;
        for message in &persisted.messages {
            if let Some(to) = node_id_of(message.to) {
                self.peers.send_raft(to, message);
            }
        }
        let mut outcomes = Vec::new();
        if let Some((index, data)) = persisted.snapshot {
            match serde_json::from_slice::<ClusterImage>(&data) {
                Ok(image) => {
                    tracing::info!(index, "metadata snapshot installed from the leader");
                    self.image = image;
                    self.applied = index;
                    self.bytes_since_snapshot = 0;
                }
                Err(error) => {
                    let reason = format!("a metadata snapshot does not decode: {error}");
                    return Err(raft::Error::Store(raft::StorageError::Other(reason.into())));
                }
            }
        }
        let applied_before = self.applied;
        for entry in persisted.committed {
            self.apply_entry(entry, &mut outcomes);
        }
        if self.applied != applied_before || !outcomes.is_empty() {
            let leader = node_id_of(self.node_ref().raft.leader_id);
            self.send_batch(outcomes, leader);
        }
        Ok(())
    }

    fn apply_entry(&mut self, entry: Entry, outcomes: &mut Vec<(u64, Applied)>) {
        if entry.index <= self.applied {
            return;
        }
        self.applied = entry.index;
        self.bytes_since_snapshot += entry.data.len() as u64;
        if let Some(proposal) = proposal_of(&entry) {
            let outcome = self.image.apply(proposal.command);
            outcomes.push((proposal.id, outcome));
        }
    }

    fn send_batch(&mut self, outcomes: Vec<(u64, Applied)>, controller: Option<i32>) {
        let _ = self.applier.unbounded_send(AppliedBatch {
            image: Arc::new(self.image.clone()),
            outcomes,
            controller,
        });
    }

    fn publish_status(&self, leader: Option<i32>) {
        let node = self.node_ref();
        let raft = &node.raft;
        let progress: HashMap<u64, u64> = if raft.state == StateRole::Leader {
            raft.prs().iter().map(|(id, p)| (*id, p.matched)).collect()
        } else {
            HashMap::new()
        };
        let with_progress = |ids: &mut dyn Iterator<Item = u64>| {
            let mut listed: Vec<(i32, Option<u64>)> = ids
                .filter_map(|id| Some((node_id_of(id)?, progress.get(&id).copied())))
                .collect();
            listed.sort_unstable();
            listed
        };
        let conf = raft.prs().conf();
        let status = QuorumStatus {
            leader,
            term: raft.term,
            commit: raft.raft_log.committed,
            voters: with_progress(&mut conf.voters().ids().iter()),
            observers: with_progress(&mut conf.learners().iter().copied()),
        };
        if let Ok(mut shared) = self.shared.quorum_status.lock() {
            *shared = status;
        }
    }
}

/// What one Ready produced, once persisted.
struct Persisted {
    messages: Vec<Message>,
    committed: Vec<Entry>,
    /// A snapshot installed from the leader: its index and data.
    snapshot: Option<(u64, Vec<u8>)>,
}

/// Runs on the blocking pool: compacts when asked, then persists one Ready (snapshot, entries,
/// hard state, all synced) and advances the node.
fn persist(
    node: &mut RawNode<DiskStorage>,
    compact: Option<(u64, Vec<u8>)>,
) -> Result<Persisted, raft::Error> {
    if let Some((index, data)) = compact {
        match node.mut_store().create_snapshot(index, data) {
            Ok(()) => tracing::info!(index, "metadata snapshot taken; the log before it dropped"),
            Err(raft::Error::Store(raft::StorageError::SnapshotOutOfDate)) => {}
            Err(error) => return Err(error),
        }
    }
    let mut ready = node.ready();
    let mut out = Persisted {
        messages: ready.take_messages(),
        committed: Vec::new(),
        snapshot: None,
    };
    if !ready.snapshot().is_empty() {
        let snapshot = ready.snapshot().clone();
        out.snapshot = Some((snapshot.get_metadata().index, snapshot.get_data().to_vec()));
        node.mut_store().apply_snapshot(snapshot)?;
    }
    out.committed = ready.take_committed_entries();
    apply_conf_changes(node, &out.committed)?;
    node.mut_store().append(ready.entries()).map_err(to_raft)?;
    if let Some(hard_state) = ready.hs() {
        node.mut_store()
            .set_hard_state(hard_state.clone())
            .map_err(to_raft)?;
    }
    out.messages.extend(ready.take_persisted_messages());
    let mut light = node.advance(ready);
    if let Some(commit) = light.commit_index() {
        node.mut_store().set_commit(commit).map_err(to_raft)?;
    }
    out.messages.extend(light.take_messages());
    let committed = light.take_committed_entries();
    apply_conf_changes(node, &committed)?;
    out.committed.extend(committed);
    node.advance_apply();
    Ok(out)
}

/// Applies the committed conf changes (learners added) to the node and stores the new conf
/// state, synced. The metadata image does not see them.
fn apply_conf_changes(
    node: &mut RawNode<DiskStorage>,
    committed: &[Entry],
) -> Result<(), raft::Error> {
    for entry in committed {
        let conf_state = match entry.get_entry_type() {
            EntryType::EntryConfChange => {
                let change = ConfChange::parse_from_bytes(&entry.data)?;
                node.apply_conf_change(&change)?
            }
            EntryType::EntryConfChangeV2 => {
                let change = ConfChangeV2::parse_from_bytes(&entry.data)?;
                node.apply_conf_change(&change)?
            }
            EntryType::EntryNormal => continue,
        };
        tracing::info!(learners = ?conf_state.learners, "metadata quorum membership changed");
        node.mut_store()
            .set_conf_state(conf_state)
            .map_err(to_raft)?;
    }
    Ok(())
}

fn to_raft(error: QuorumStoreError) -> raft::Error {
    error.into()
}
