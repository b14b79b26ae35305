//! The broker as an `odradek_net::Service`: every request goes to the handler table.

use std::rc::Rc;

use bytes::Bytes;
use odradek_net::{NetError, Request, Service};

use crate::handlers;
use crate::shard::ShardCtx;

/// The per-shard service all connections of a shard share.
pub struct BrokerService {
    pub ctx: Rc<ShardCtx>,
}

impl Service for BrokerService {
    async fn call(self: Rc<Self>, request: Request) -> Result<Option<Vec<Bytes>>, NetError> {
        handlers::dispatch(&self.ctx, request).await
    }
}
