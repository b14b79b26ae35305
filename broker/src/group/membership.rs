//! The rest of a group's life after JoinGroup: SyncGroup, Heartbeat, LeaveGroup, session
//! expiry, commit checks and offset expiry: more methods of [`Group`], beside `state`.

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::error::ResponseError;

use super::state::{Group, GroupState, JoinResult, Limits, Step, SyncResult};

impl Group {
    /// Checks a member's identity: its instance id (static members) and generation.
    fn check_member(&self, id: &str, instance: Option<&str>, generation: i32) -> Result<(), i16> {
        if let Some(instance) = instance {
            match self.static_members.get(instance) {
                Some(known) if known != id => return Err(ResponseError::FencedInstanceId.code()),
                None => return Err(ResponseError::UnknownMemberId.code()),
                _ => {}
            }
        }
        if !self.members.contains_key(id) {
            return Err(ResponseError::UnknownMemberId.code());
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration.code());
        }
        Ok(())
    }

    /// Handles a SyncGroup: the leader's assignments end the rebalance; the others wait for them.
    pub fn sync(
        &mut self,
        id: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> Step<SyncResult> {
        if let Err(code) = self.check_member(id, instance, generation) {
            return Step::Now(SyncResult {
                error: code,
                ..SyncResult::default()
            });
        }
        if let Some(member) = self.members.get_mut(id) {
            member.last_seen_ms = now_ms;
        }
        match self.state {
            GroupState::CompletingRebalance => {}
            GroupState::Stable => return Step::Now(self.sync_result_for(id)),
            GroupState::PreparingRebalance => {
                return Step::Now(SyncResult::error(ResponseError::RebalanceInProgress))
            }
            _ => return Step::Now(SyncResult::error(ResponseError::UnknownMemberId)),
        }
        let (tx, rx) = oneshot::channel();
        if let Some(member) = self.members.get_mut(id) {
            if let Some(old) = member.sync_waiter.replace(tx) {
                let _ = old.send(SyncResult::error(ResponseError::RebalanceInProgress));
            }
        }
        if self.leader.as_deref() == Some(id) {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
            }
            for (member_id, assignment) in assignments {
                if let Some(member) = self.members.get_mut(&member_id) {
                    member.assignment = assignment;
                }
            }
            self.state = GroupState::Stable;
            let ids: Vec<String> = self.members.keys().cloned().collect();
            for id in ids {
                let result = self.sync_result_for(&id);
                if let Some(waiter) = self.members.get_mut(&id).and_then(|m| m.sync_waiter.take()) {
                    let _ = waiter.send(result);
                }
            }
            tracing::debug!(group = %self.id, generation = self.generation, "group stable");
        }
        Step::Wait(rx)
    }

    /// SyncGroup v5+ names the protocol type and name the member got from JoinGroup; when given
    /// they must be the group's.
    pub fn protocol_matches(&self, protocol_type: Option<&str>, name: Option<&str>) -> bool {
        protocol_type.is_none_or(|t| self.protocol_type.as_deref() == Some(t))
            && name.is_none_or(|n| self.protocol.as_deref() == Some(n))
    }

    fn sync_result_for(&self, id: &str) -> SyncResult {
        SyncResult {
            error: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self
                .members
                .get(id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Handles a Heartbeat; returns its error code.
    pub fn heartbeat(
        &mut self,
        id: &str,
        instance: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> i16 {
        if let Some(instance) = instance {
            if let Some(known) = self.static_members.get(instance) {
                if known != id {
                    return ResponseError::FencedInstanceId.code();
                }
            }
        }
        let Some(member) = self.members.get_mut(id) else {
            return ResponseError::UnknownMemberId.code();
        };
        member.last_seen_ms = now_ms;
        match self.state {
            GroupState::PreparingRebalance => ResponseError::RebalanceInProgress.code(),
            _ if generation != self.generation => ResponseError::IllegalGeneration.code(),
            GroupState::Stable | GroupState::CompletingRebalance => 0,
            _ => ResponseError::UnknownMemberId.code(),
        }
    }

    /// Handles one member of a LeaveGroup; returns its error code.
    pub fn leave(&mut self, id: &str, instance: Option<&str>, now_ms: i64, limits: Limits) -> i16 {
        let id = match instance {
            Some(instance) => match self.static_members.get(instance) {
                Some(known) if id.is_empty() || known == id => known.clone(),
                Some(_) => return ResponseError::FencedInstanceId.code(),
                None => return ResponseError::UnknownMemberId.code(),
            },
            None => id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            return 0;
        }
        if !self.members.contains_key(&id) {
            return ResponseError::UnknownMemberId.code();
        }
        self.remove_member(&id);
        tracing::info!(group = %self.id, member = %id, "member left");
        self.after_removal(now_ms, limits, "member left");
        0
    }

    pub(super) fn remove_member(&mut self, id: &str) {
        if let Some(mut member) = self.members.remove(id) {
            if let Some(instance) = &member.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(id) {
                    self.static_members.remove(instance);
                }
            }
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(JoinResult::error(ResponseError::UnknownMemberId, id));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(SyncResult::error(ResponseError::UnknownMemberId));
            }
        }
    }

    fn after_removal(&mut self, now_ms: i64, limits: Limits, reason: &str) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, limits, reason);
                self.try_complete_join(now_ms);
            }
            GroupState::PreparingRebalance => {
                self.try_complete_join(now_ms);
            }
            _ => {}
        }
    }

    /// Removes members whose session timed out and pending ids never used; ends a rebalance
    /// whose time is up. Returns the expired member ids.
    pub fn tick(&mut self, now_ms: i64, limits: Limits) -> Vec<String> {
        self.pending.retain(|_, deadline| *deadline > now_ms);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting() && m.last_seen_ms + m.session_timeout_ms <= now_ms)
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id);
            tracing::info!(group = %self.id, member = %id, "member expired: session timeout");
        }
        if !expired.is_empty() {
            self.after_removal(now_ms, limits, "member expired");
        }
        self.try_complete_join(now_ms);
        expired
    }

    /// An OffsetCommit's error for the whole request (0 to go ahead). Standalone consumers
    /// (generation -1, no member id) may commit to a group without members.
    pub fn check_commit(&self, id: &str, instance: Option<&str>, generation: i32) -> i16 {
        if generation < 0 && id.is_empty() {
            return if self.members.is_empty() {
                0
            } else {
                ResponseError::UnknownMemberId.code()
            };
        }
        if let Err(code) = self.check_member(id, instance, generation) {
            return code;
        }
        if self.state == GroupState::CompletingRebalance {
            return ResponseError::RebalanceInProgress.code();
        }
        0
    }

    /// Marks the group deleted (DeleteGroups): only an empty group can be.
    pub fn mark_dead(&mut self) {
        self.state = GroupState::Dead;
        self.offsets.clear();
    }

    /// Offset retention: the offsets of a group empty for longer than `retention_ms` go.
    /// Returns the partitions whose offsets expired.
    pub fn expire_offsets(&mut self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        if self.state != GroupState::Empty || now_ms - self.empty_since_ms < retention_ms {
            return Vec::new();
        }
        let expired: Vec<(String, i32)> = self
            .offsets
            .iter()
            .filter(|(_, c)| now_ms - c.commit_ms >= retention_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            self.offsets.remove(key);
        }
        expired
    }
}
