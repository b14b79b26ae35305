//! What travels with every request: the connection's [`Session`] (who the peer is, the listener
//! it came in on, what it authenticated as) and the [`RequestContext`] a handler receives beside
//! the decoded body. Authentication, authorization, quotas and per-connection metrics read and
//! keep their state here, not in handler arguments.

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;

use kafka_protocol::messages::RequestHeader;
use odradek_net::Peer;

use crate::shard::ShardCtx;

/// A connection's id, unique on this node while the process runs: the shard that accepted it
/// and a count of that shard's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// Who a connection acts as, in Kafka's `type:name` form (`User:alice`). Until SASL exists
/// every connection is `User:ANONYMOUS`, as on Kafka's PLAINTEXT listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub kind: String,
    pub name: String,
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal {
            kind: "User".into(),
            name: "ANONYMOUS".into(),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// One connection's state, shared by its requests (`Rc`: a connection lives on one shard).
#[derive(Debug)]
pub struct Session {
    pub id: ConnectionId,
    /// The remote address, where the socket could tell.
    pub peer: Option<SocketAddr>,
    /// The listener the connection arrived on.
    pub listener: Rc<str>,
    /// Changes when the connection authenticates (SASL); read by authorization.
    pub principal: RefCell<Principal>,
}

impl Session {
    pub fn new(id: ConnectionId, peer: Peer) -> Session {
        Session {
            id,
            peer: peer.addr,
            listener: peer.listener,
            principal: RefCell::new(Principal::anonymous()),
        }
    }
}

/// Everything a handler knows about the request it serves besides its body.
pub struct RequestContext {
    /// The shard the connection landed on.
    pub shard: Rc<ShardCtx>,
    pub session: Rc<Session>,
    pub header: RequestHeader,
}

impl RequestContext {
    /// The request's API version.
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}
