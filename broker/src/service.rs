//! The broker as an `odradek_net::Service`: a [`Session`] per connection, and every request to
//! the handler table with its [`RequestContext`].

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use odradek_net::{NetError, Peer, Request, Service};

use crate::handlers;
use crate::session::{ConnectionId, RequestContext, Session};
use crate::shard::ShardCtx;

/// The per-shard service all connections of a shard share.
pub struct BrokerService {
    pub ctx: Rc<ShardCtx>,
    /// Connections this shard has opened so far (the low bits of their ids).
    opened: Cell<u64>,
}

impl BrokerService {
    pub fn new(ctx: Rc<ShardCtx>) -> BrokerService {
        BrokerService {
            ctx,
            opened: Cell::new(0),
        }
    }
}

/// Connection ids carry the shard in their top bits: unique on the node without coordination.
const SHARD_SHIFT: u32 = 48;

impl Service for BrokerService {
    type Session = Session;

    fn open(&self, peer: Peer) -> Session {
        let count = self.opened.get() + 1;
        self.opened.set(count);
        let shard = u64::try_from(self.ctx.shard.0).unwrap_or(u64::MAX);
        let session = Session::new(ConnectionId((shard << SHARD_SHIFT) | count), peer);
        tracing::debug!(
            connection = session.id.0,
            peer = ?session.peer,
            listener = %session.listener,
            principal = %session.principal.borrow(),
            "connection opened"
        );
        session
    }

    async fn call(
        self: Rc<Self>,
        session: Rc<Session>,
        request: Request,
    ) -> Result<Option<Vec<Bytes>>, NetError> {
        let context = RequestContext {
            shard: Rc::clone(&self.ctx),
            session,
            header: request.header,
        };
        handlers::dispatch(context, request.api_key, request.body).await
    }
}
