//! Cross-shard calls over glommio's channel mesh.
//!
//! `Router::call(to, request)` sends a [`ShardRequest`] to the shard `to` and awaits its
//! [`ShardReply`]. A call to the own shard runs locally, without the mesh. Each message carries a
//! request id; the reply comes back over the mesh and completes a local oneshot. The receive loop
//! of each peer spawns a task per message and never awaits a send itself, so a full channel can
//! never stop a shard from draining its inbox (glommio issue #555); channels are sized generously.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use futures::channel::oneshot;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::channels::shared_channel::ConnectedReceiver;

use crate::ids::ShardId;
use crate::shard::ShardCtx;
use crate::shard_msg::{self, ShardReply, ShardRequest};

/// Messages in flight per mesh channel (one channel per ordered pair of shards).
pub const MESH_CHANNEL_CAPACITY: usize = 4096;

/// What travels over the mesh.
pub enum MeshMsg {
    Request {
        id: u64,
        from: ShardId,
        request: ShardRequest,
    },
    Reply {
        id: u64,
        reply: ShardReply,
    },
}

pub type Mesh = MeshBuilder<MeshMsg, Full>;

/// Creates the mesh all shards join (cloned into every executor).
pub fn new_mesh(shard_count: usize) -> Mesh {
    MeshBuilder::full(shard_count, MESH_CHANNEL_CAPACITY)
}

/// This shard's end of the mesh.
pub struct Router {
    shard: ShardId,
    senders: Option<Senders<MeshMsg>>,
    pending: RefCell<HashMap<u64, oneshot::Sender<ShardReply>>>,
    next_id: Cell<u64>,
    ctx: Weak<ShardCtx>,
}

impl Router {
    /// A router for `shard`; `senders` is `None` on a single-shard node (no mesh).
    pub fn new(shard: ShardId, senders: Option<Senders<MeshMsg>>, ctx: Weak<ShardCtx>) -> Router {
        if let Some(senders) = &senders {
            assert_eq!(
                senders.peer_id(),
                shard.0,
                "mesh peer order must equal shard order"
            );
        }
        Router {
            shard,
            senders,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            ctx,
        }
    }

    /// Runs `request` on shard `to` and returns its reply. Never fails: an unreachable shard (it is
    /// stopping) gives [`ShardReply::Unreachable`].
    pub async fn call(&self, to: ShardId, request: ShardRequest) -> ShardReply {
        if to == self.shard {
            return match self.ctx.upgrade() {
                Some(ctx) => shard_msg::serve(&ctx, request).await,
                None => ShardReply::Unreachable,
            };
        }
        let Some(senders) = &self.senders else {
            return ShardReply::Unreachable;
        };
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        let message = MeshMsg::Request {
            id,
            from: self.shard,
            request,
        };
        if senders.send_to(to.0, message).await.is_err() {
            self.pending.borrow_mut().remove(&id);
            return ShardReply::Unreachable;
        }
        rx.await.unwrap_or(ShardReply::Unreachable)
    }

    /// Starts one receive loop per peer (each holds the shard's context).
    pub fn start(ctx: &Rc<ShardCtx>, mut receivers: Receivers<MeshMsg>) {
        for (_peer, receiver) in receivers.streams() {
            glommio::spawn_local(Self::receive_loop(Rc::clone(ctx), receiver)).detach();
        }
    }

    async fn receive_loop(ctx: Rc<ShardCtx>, receiver: ConnectedReceiver<MeshMsg>) {
        while let Some(message) = receiver.recv().await {
            match message {
                MeshMsg::Request { id, from, request } => {
                    glommio::spawn_local(Self::serve_and_reply(Rc::clone(&ctx), id, from, request))
                        .detach();
                }
                MeshMsg::Reply { id, reply } => ctx.router.complete(id, reply),
            }
        }
    }

    async fn serve_and_reply(ctx: Rc<ShardCtx>, id: u64, from: ShardId, request: ShardRequest) {
        let reply = shard_msg::serve(&ctx, request).await;
        let Some(senders) = &ctx.router.senders else {
            return;
        };
        if senders
            .send_to(from.0, MeshMsg::Reply { id, reply })
            .await
            .is_err()
        {
            tracing::debug!(to = %from, "reply dropped: the caller's shard is stopping");
        }
    }

    fn complete(&self, id: u64, reply: ShardReply) {
        match self.pending.borrow_mut().remove(&id) {
            // The caller may have given up (its connection closed); the reply is then dropped.
            Some(tx) => drop(tx.send(reply)),
            None => tracing::debug!(id, "reply for an unknown request id"),
        }
    }

    /// Closes this shard's senders (at shutdown, after its own work is done).
    pub fn close(&self) {
        if let Some(senders) = &self.senders {
            senders.close();
        }
    }
}
