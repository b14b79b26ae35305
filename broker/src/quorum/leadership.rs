//! Who leads each partition, as the metadata log decides it: leadership moved off a fenced
//! broker, given back to a returning one where none was left, ISR changes (AlterPartition) and
//! leader elections (ElectLeaders: preferred, or unclean when an operator asks).

use kafka_protocol::error::ResponseError;

use super::image::{unknown_topic, ClusterImage, Election, IsrChange, NO_LEADER};
use crate::control::ControlError;
use crate::metadata::PartitionState;

impl ClusterImage {
    /// A fenced broker leads nothing: each partition it led gets the next live member of its
    /// ISR, or no leader when it was the last (no unclean election: its data is only there).
    /// It leaves the ISR of the partitions it follows too (unless it is their last member), so
    /// their acks=all producers do not wait for it.
    pub(super) fn move_leadership_from(&mut self, node_id: i32) {
        let live: Vec<i32> = self.live_brokers().iter().map(|b| b.node_id).collect();
        for state in self
            .topics
            .values_mut()
            .flat_map(|t| &mut t.partition_states)
        {
            if state.leader != node_id {
                if state.isr.len() > 1 && state.isr.contains(&node_id) {
                    state.isr.retain(|r| *r != node_id);
                    state.partition_epoch += 1;
                }
                continue;
            }
            let next = state.isr.iter().copied().find(|r| live.contains(r));
            if next.is_some() {
                state.isr.retain(|r| *r != node_id);
            }
            set_leader(state, next.unwrap_or(NO_LEADER));
        }
    }

    /// A broker back (registered or unfenced) leads the partitions that lost their leader
    /// while it was their last in-sync replica.
    pub(super) fn elect_where_leaderless(&mut self, node_id: i32) {
        for state in self
            .topics
            .values_mut()
            .flat_map(|t| &mut t.partition_states)
        {
            if state.leader == NO_LEADER && state.isr.contains(&node_id) {
                set_leader(state, node_id);
            }
        }
    }

    /// [`Command::AlterPartition`]: the new ISR, checked against the partition's state.
    pub(super) fn alter_partition(
        &mut self,
        change: IsrChange,
    ) -> Result<PartitionState, ControlError> {
        let IsrChange {
            topic,
            partition,
            leader,
            leader_epoch,
            partition_epoch,
            isr,
        } = change;
        let topic = topic.as_str();
        let live: Vec<i32> = self.live_brokers().iter().map(|b| b.node_id).collect();
        let state = usize::try_from(partition)
            .ok()
            .and_then(|p| self.topics.get_mut(topic)?.partition_states.get_mut(p))
            .ok_or_else(|| unknown_topic(topic))?;
        let refuse = |error, why: String| Err(ControlError::new(error, why));
        if state.leader != leader || state.leader_epoch != leader_epoch {
            let why = format!(
                "{topic}-{partition} is led by {} at epoch {}, not {leader} at {leader_epoch}",
                state.leader, state.leader_epoch
            );
            return refuse(ResponseError::FencedLeaderEpoch, why);
        }
        if state.partition_epoch != partition_epoch {
            let why = format!(
                "{topic}-{partition} is at partition epoch {}, not {partition_epoch}",
                state.partition_epoch
            );
            return refuse(ResponseError::InvalidUpdateVersion, why);
        }
        let mut sorted = isr.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let valid = sorted.len() == isr.len()
            && isr.contains(&leader)
            && isr.iter().all(|r| state.replicas.contains(r));
        if !valid {
            let why = format!("ISR {isr:?} is not a set of {topic}-{partition}'s replicas");
            return refuse(ResponseError::InvalidRequest, why);
        }
        if let Some(r) = isr
            .iter()
            .find(|r| !state.isr.contains(r) && !live.contains(r))
        {
            let why = format!("broker {r} is fenced: it cannot join the ISR");
            return refuse(ResponseError::IneligibleReplica, why);
        }
        state.isr = isr;
        state.partition_epoch += 1;
        Ok(state.clone())
    }
}

impl ClusterImage {
    /// [`Command::ElectLeaders`]. Without a list, every partition that needs an election (and
    /// can have one) is reported; with one, every partition listed.
    /// Kafka's automatic leader rebalance: for each live broker of which more than `percent` %
    /// of the partitions it prefers (it is their first replica) are led by another, those of
    /// them where it is in sync, to be given back with a preferred election.
    pub fn imbalanced_partitions(&self, percent: u32) -> Vec<(String, i32)> {
        let mut elect = Vec::new();
        for broker in self.live_brokers() {
            let mut preferred = 0usize;
            let mut elsewhere = Vec::new();
            for topic in self.topics.values() {
                for (p, state) in topic.partition_states.iter().enumerate() {
                    if state.replicas.first() != Some(&broker.node_id) {
                        continue;
                    }
                    preferred += 1;
                    if state.leader != broker.node_id {
                        elsewhere.push((
                            state.isr.contains(&broker.node_id),
                            (topic.name.clone(), p as i32),
                        ));
                    }
                }
            }
            if preferred > 0 && elsewhere.len() * 100 > percent as usize * preferred {
                elect.extend(
                    elsewhere
                        .into_iter()
                        .filter(|(in_sync, _)| *in_sync)
                        .map(|(_, tp)| tp),
                );
            }
        }
        elect
    }

    pub(super) fn elect_leaders(
        &mut self,
        asked: Option<Vec<(String, i32)>>,
        unclean: bool,
    ) -> Vec<Election> {
        let live: Vec<i32> = self.live_brokers().iter().map(|b| b.node_id).collect();
        let listed = asked.is_some();
        let asked = asked.unwrap_or_else(|| {
            self.topics
                .values()
                .flat_map(|t| (0..t.partitions).map(|p| (t.name.clone(), p)))
                .collect()
        });
        let mut elections = Vec::new();
        for (topic, partition) in asked {
            let state = usize::try_from(partition)
                .ok()
                .and_then(|p| self.topics.get_mut(&topic)?.partition_states.get_mut(p));
            let outcome = match state {
                None => Err(ControlError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("{topic}-{partition} does not exist"),
                )),
                Some(state) if unclean => elect_unclean(state, &live),
                Some(state) => elect_preferred(state, &live),
            };
            let not_needed =
                matches!(&outcome, Err(e) if e.error == ResponseError::ElectionNotNeeded);
            if listed || !not_needed {
                elections.push((topic, partition, outcome.err()));
            }
        }
        elections
    }
}

/// The preferred replica (the first) leads, if it is live and in sync and does not already.
fn elect_preferred(state: &mut PartitionState, live: &[i32]) -> Result<(), ControlError> {
    let preferred = state.replicas.first().copied().unwrap_or(NO_LEADER);
    if state.leader == preferred {
        let why = format!("broker {preferred}, the preferred replica, leads already");
        return Err(ControlError::new(ResponseError::ElectionNotNeeded, why));
    }
    if !live.contains(&preferred) || !state.isr.contains(&preferred) {
        let why = format!("broker {preferred}, the preferred replica, is not live and in sync");
        return Err(ControlError::new(
            ResponseError::PreferredLeaderNotAvailable,
            why,
        ));
    }
    set_leader(state, preferred);
    Ok(())
}

/// A partition without a leader gets its first live replica, in sync or not, as its leader
/// and only ISR member: records only the old ISR had are lost (the operator asked for it).
fn elect_unclean(state: &mut PartitionState, live: &[i32]) -> Result<(), ControlError> {
    if state.leader != NO_LEADER {
        let why = format!(
            "broker {} leads: no unclean election is needed",
            state.leader
        );
        return Err(ControlError::new(ResponseError::ElectionNotNeeded, why));
    }
    let Some(next) = state.replicas.iter().copied().find(|r| live.contains(r)) else {
        let why = "no replica of the partition is live".to_string();
        return Err(ControlError::new(
            ResponseError::EligibleLeadersNotAvailable,
            why,
        ));
    };
    state.isr = vec![next];
    set_leader(state, next);
    Ok(())
}

fn set_leader(state: &mut PartitionState, leader: i32) {
    state.leader = leader;
    state.leader_epoch += 1;
    state.partition_epoch += 1;
}
