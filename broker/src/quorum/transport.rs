//! The controller listener: how voters send each other Raft messages and heartbeats.
//!
//! Each voter connects to every other voter's controller listener and only writes on that
//! connection; what it receives comes on the connections the others opened. A broker-only
//! node (an *observer*: a Raft learner, which follows the log but does not vote) has no
//! controller listener: it connects to every voter likewise, and the voters write to it on
//! that same connection. Messages may be lost (a peer down, a queue full): Raft retries what
//! matters, and a heartbeat comes again.
//!
//! ```text
//! frame:  length u32 big-endian (of what follows) | kind u8 | payload
//! kind 1: hello      JSON {cluster_id, node_id, observer}: first on every connection
//! kind 2: raft       a raft-rs (eraftpb) Message, protobuf
//! kind 3: heartbeat  JSON {node_id, incarnation}: a broker to the active controller
//! ```
//!
//! Hostile input is answered like on the Kafka port: a connection whose hello names another
//! cluster or a node that is not a voter, a frame over the bound (4 KiB before the hello),
//! an unknown kind or a payload that does not decode is closed with a log line.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::{select, Either};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use glommio::net::{TcpListener, TcpStream};
use odradek_net::Shutdown;
use protobuf::Message as _;
use raft::prelude::Message;
use serde::{Deserialize, Serialize};

use super::node::Input;
use crate::settings::Voter;

const KIND_HELLO: u8 = 1;
const KIND_RAFT: u8 = 2;
const KIND_HEARTBEAT: u8 = 3;
/// The largest frame before a connection has said who it is.
const HELLO_BYTES_MAX: usize = 4 << 10;
/// The largest frame from a voter: a snapshot of the whole metadata image fits.
pub const FRAME_BYTES_MAX: usize = 256 << 20;
/// Messages waiting for one peer's connection; more are dropped.
const QUEUE_MAX: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(1);
/// How long what a voter sent may stay unacknowledged before the kernel drops the connection
/// (TCP_USER_TIMEOUT); keepalive probes every second find a silent one. Without it, a
/// connection that lived through a network partition is retried only at TCP's backed-off
/// retransmission times (up to 2 minutes apart, for some 15 minutes), and the reading end of
/// one whose sender gave up stays open for good. In tests/cluster_partition.rs a voter cut off
/// for 10 to 50 s followed the leader again 3 to 5 s after the network's return; with this,
/// the sender reconnects and it follows within 2 s. More than the longest election timeout
/// (2 s): a peer's kernel acknowledges within milliseconds whatever its process is doing.
const UNACKNOWLEDGED_MAX: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    cluster_id: String,
    node_id: i32,
    /// A broker-only node: the voter writes to it on this connection.
    #[serde(default)]
    observer: bool,
}

/// A broker's heartbeat to the active controller.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node_id: i32,
    pub incarnation: u64,
}

/// What arrives from other voters (for the driver's inbox, as [`Input::Network`]).
pub enum Incoming {
    Raft(Box<Message>),
    Heartbeat(Heartbeat),
}

/// The queues to observers connected here, by node id (shared with the accepting side).
pub type Observers = Rc<RefCell<HashMap<i32, mpsc::Sender<Vec<u8>>>>>;

/// The queues to the other voters (one connection task each) and to the observers connected.
pub struct Peers {
    queues: HashMap<i32, mpsc::Sender<Vec<u8>>>,
    observers: Observers,
}

impl Peers {
    /// Starts a connection task for each voter other than `me`. An observer (`inbox` given)
    /// also reads what the voter writes back on it.
    pub fn start(
        voters: &[Voter],
        me: i32,
        cluster_id: &str,
        inbox: Option<mpsc::Sender<Input>>,
        shutdown: &Shutdown,
    ) -> Peers {
        let mut queues = HashMap::new();
        let hello = Hello {
            cluster_id: cluster_id.to_string(),
            node_id: me,
            observer: inbox.is_some(),
        };
        let hello = frame(
            KIND_HELLO,
            &serde_json::to_vec(&hello).expect("a hello encodes"),
        );
        for voter in voters.iter().filter(|v| v.node_id != me) {
            let (tx, rx) = mpsc::channel(QUEUE_MAX);
            let peer = Peer {
                address: format!("{}:{}", voter.host, voter.port),
                node_id: voter.node_id,
                inbox: inbox.clone(),
            };
            let task = send_loop(peer, hello.clone(), rx, shutdown.clone());
            glommio::spawn_local(task).detach();
            queues.insert(voter.node_id, tx);
        }
        Peers {
            queues,
            observers: Observers::default(),
        }
    }

    /// The observers' queues, for the controller listener to fill as they connect.
    pub fn observers(&self) -> Observers {
        Rc::clone(&self.observers)
    }

    /// The observers connected to this node now.
    pub fn observer_ids(&self) -> Vec<i32> {
        self.observers.borrow().keys().copied().collect()
    }

    /// Queues a Raft message for its recipient (dropped when its queue is full).
    pub fn send_raft(&mut self, to: i32, message: &Message) {
        match message.write_to_bytes() {
            Ok(bytes) => self.send(to, frame(KIND_RAFT, &bytes)),
            Err(error) => tracing::error!(%error, "a raft message does not encode"),
        }
    }

    pub fn send_heartbeat(&mut self, to: i32, heartbeat: &Heartbeat) {
        let bytes = serde_json::to_vec(heartbeat).expect("a heartbeat encodes");
        self.send(to, frame(KIND_HEARTBEAT, &bytes));
    }

    fn send(&mut self, to: i32, frame: Vec<u8>) {
        // Full or closed: the message is lost, which Raft tolerates.
        if let Some(queue) = self.queues.get_mut(&to) {
            let _ = queue.try_send(frame);
        } else if let Some(queue) = self.observers.borrow_mut().get_mut(&to) {
            let _ = queue.try_send(frame);
        }
    }
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

/// One voter this node connects to.
struct Peer {
    address: String,
    node_id: i32,
    /// An observer's inbox: what the voter writes back goes there.
    inbox: Option<mpsc::Sender<Input>>,
}

/// Keeps a connection to one voter and writes its queue to it (an observer also reads the
/// voter's messages from it); reconnects with a backoff.
async fn send_loop(
    peer: Peer,
    hello: Vec<u8>,
    mut queue: mpsc::Receiver<Vec<u8>>,
    shutdown: Shutdown,
) {
    let address = peer.address.as_str();
    let mut backoff = Duration::from_millis(50);
    let mut warned = false;
    while !shutdown.is_triggered() {
        let connected = glommio::timer::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await;
        let stream = match connected {
            Ok(stream) => stream,
            Err(error) => {
                if !warned {
                    tracing::info!(peer = %address, %error, "cannot reach a voter; retrying");
                    warned = true;
                }
                // What was queued meanwhile is stale.
                while queue.try_recv().is_ok() {}
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        watch_liveness(&stream, address);
        if warned {
            tracing::info!(peer = %address, "voter reachable again");
        }
        (warned, backoff) = (false, Duration::from_millis(50));
        let (reader, mut writer) = stream.split();
        if writer.write_all(&hello).await.is_err() {
            continue;
        }
        let write = std::pin::pin!(write_queue(&mut writer, &mut queue, &shutdown));
        let read = std::pin::pin!(async {
            match &peer.inbox {
                Some(inbox) => read_from_voter(reader, peer.node_id, inbox.clone()).await,
                None => futures::future::pending().await,
            }
        });
        match select(write, read).await {
            Either::Left((Ok(()), _)) => return,
            Either::Left((Err(error), _)) => {
                tracing::debug!(peer = %address, %error, "voter connection lost");
            }
            Either::Right((result, _)) => {
                if let Err(reason) = result {
                    tracing::warn!(peer = %address, %reason, "voter connection closed");
                }
            }
        }
    }
}

/// Writes queued frames until the queue closes or the node stops (`Ok`), or a write fails.
async fn write_queue(
    writer: &mut (impl AsyncWrite + Unpin),
    queue: &mut mpsc::Receiver<Vec<u8>>,
    shutdown: &Shutdown,
) -> std::io::Result<()> {
    loop {
        let next = std::pin::pin!(queue.next());
        let stop = std::pin::pin!(shutdown.wait());
        let bytes = match select(next, stop).await {
            Either::Left((Some(bytes), _)) => bytes,
            Either::Left((None, _)) | Either::Right(_) => return Ok(()),
        };
        writer.write_all(&bytes).await?;
    }
}

/// An observer reading what voter `voter` writes back: Raft messages from it only.
async fn read_from_voter(
    mut reader: impl AsyncRead + Unpin,
    voter: i32,
    mut inbox: mpsc::Sender<Input>,
) -> Result<(), String> {
    while let Some((kind, payload)) = read_frame(&mut reader, FRAME_BYTES_MAX).await? {
        if kind != KIND_RAFT {
            return Err(format!("a voter sent a frame of kind {kind}"));
        }
        let message = raft_message(&payload, voter)?;
        let input = Input::Network(Incoming::Raft(Box::new(message)));
        if inbox.try_send(input).is_err() && inbox.is_closed() {
            return Ok(());
        }
    }
    Ok(())
}

/// A Raft message that must come from `node_id`.
fn raft_message(payload: &[u8], node_id: i32) -> Result<Message, String> {
    let message = Message::parse_from_bytes(payload)
        .map_err(|e| format!("a raft message that does not decode: {e}"))?;
    if message.from != super::node::raft_id(node_id) {
        return Err(format!(
            "node {node_id} sent a message from raft id {}",
            message.from
        ));
    }
    Ok(message)
}

/// Accepts voters' connections on the controller listener and hands what they send to
/// `inbox` until `shutdown`.
pub async fn accept_loop(
    listener: TcpListener,
    cluster_id: Rc<str>,
    voters: Rc<[i32]>,
    inbox: mpsc::Sender<Input>,
    observers: Observers,
    shutdown: Shutdown,
) {
    loop {
        let accept = std::pin::pin!(listener.accept());
        let stop = std::pin::pin!(shutdown.wait());
        let stream = match select(accept, stop).await {
            Either::Left((Ok(stream), _)) => stream,
            Either::Left((Err(error), _)) => {
                tracing::warn!(%error, "controller listener: accept failed");
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Either::Right(_) => return,
        };
        let peer = stream.peer_addr().ok();
        // A sender gone in a partition never closes this end: it must time out by itself.
        watch_liveness(&stream, &format!("{peer:?}"));
        let (cluster_id, voters, inbox) =
            (Rc::clone(&cluster_id), Rc::clone(&voters), inbox.clone());
        let (shutdown, observers) = (shutdown.clone(), Rc::clone(&observers));
        glommio::spawn_local(async move {
            let accepted = Accepted {
                cluster_id: &cluster_id,
                voters: &voters,
                observers: &observers,
                shutdown: &shutdown,
            };
            let read = std::pin::pin!(read_loop(stream, accepted, inbox));
            let stop = std::pin::pin!(shutdown.wait());
            if let Either::Left((Err(reason), _)) = select(read, stop).await {
                tracing::warn!(peer = ?peer, %reason, "controller listener: connection closed");
            }
        })
        .detach();
    }
}

/// What a connection accepted on the controller listener is checked against and shares.
struct Accepted<'a> {
    cluster_id: &'a str,
    voters: &'a [i32],
    observers: &'a Observers,
    shutdown: &'a Shutdown,
}

/// Reads one connection: its hello, then frames. `Ok` at a clean end of stream. An observer's
/// connection is also how this node writes to it, while it lasts.
async fn read_loop(
    stream: TcpStream,
    accepted: Accepted<'_>,
    mut inbox: mpsc::Sender<Input>,
) -> Result<(), String> {
    let (mut reader, mut writer) = stream.split();
    let Some((kind, payload)) = read_frame(&mut reader, HELLO_BYTES_MAX).await? else {
        return Ok(());
    };
    if kind != KIND_HELLO {
        return Err(format!("the first frame is of kind {kind}, not a hello"));
    }
    let hello: Hello = serde_json::from_slice(&payload)
        .map_err(|e| format!("a hello that does not decode: {e}"))?;
    if hello.cluster_id != accepted.cluster_id {
        return Err(format!(
            "node {} is of cluster {}, this node of {}",
            hello.node_id, hello.cluster_id, accepted.cluster_id
        ));
    }
    let is_voter = accepted.voters.contains(&hello.node_id);
    if is_voter == hello.observer {
        return Err(match is_voter {
            true => format!("node {} is a voter, not an observer", hello.node_id),
            false => format!("node {} is not a voter", hello.node_id),
        });
    }
    let read = std::pin::pin!(read_frames(&mut reader, hello.node_id, &mut inbox));
    if !hello.observer {
        return read.await;
    }
    // This node writes to the observer over its connection (its newest, where it has several).
    let (queue, mut queued) = mpsc::channel(QUEUE_MAX);
    accepted
        .observers
        .borrow_mut()
        .insert(hello.node_id, queue.clone());
    let write = std::pin::pin!(write_queue(&mut writer, &mut queued, accepted.shutdown));
    let result = match select(read, write).await {
        Either::Left((result, _)) => result,
        Either::Right((result, _)) => result.map_err(|e| e.to_string()),
    };
    let mut observers = accepted.observers.borrow_mut();
    if observers
        .get(&hello.node_id)
        .is_some_and(|q| q.same_receiver(&queue))
    {
        observers.remove(&hello.node_id);
    }
    result
}

/// The frames after the hello of node `from`, into `inbox`.
async fn read_frames(
    reader: &mut (impl AsyncRead + Unpin),
    from: i32,
    inbox: &mut mpsc::Sender<Input>,
) -> Result<(), String> {
    while let Some((kind, payload)) = read_frame(reader, FRAME_BYTES_MAX).await? {
        let incoming = match kind {
            KIND_RAFT => Incoming::Raft(Box::new(raft_message(&payload, from)?)),
            KIND_HEARTBEAT => {
                let heartbeat: Heartbeat = serde_json::from_slice(&payload)
                    .map_err(|e| format!("a heartbeat that does not decode: {e}"))?;
                if heartbeat.node_id != from {
                    return Err(format!(
                        "node {from} sent a heartbeat for node {}",
                        heartbeat.node_id
                    ));
                }
                Incoming::Heartbeat(heartbeat)
            }
            other => return Err(format!("a frame of unknown kind {other}")),
        };
        // A full inbox drops the message, which Raft tolerates.
        if inbox.try_send(Input::Network(incoming)).is_err() && inbox.is_closed() {
            return Ok(());
        }
    }
    Ok(())
}

/// One frame, or `None` at a clean end of stream (between frames).
async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    bytes_max: usize,
) -> Result<Option<(u8, Vec<u8>)>, String> {
    let mut header = [0u8; 4];
    let mut read = 0;
    while read < header.len() {
        match stream.read(&mut header[read..]).await {
            Ok(0) if read == 0 => return Ok(None),
            Ok(0) => return Err("the stream ended inside a frame header".into()),
            Ok(n) => read += n,
            Err(error) => return Err(error.to_string()),
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 || len > bytes_max {
        return Err(format!("a frame of {len} bytes (bound {bytes_max})"));
    }
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| format!("the stream ended inside a frame: {e}"))?;
    let kind = body[0];
    body.remove(0);
    Ok(Some((kind, body)))
}

/// Keepalive and [`UNACKNOWLEDGED_MAX`] on a voter connection; a failure is logged and leaves
/// the connection as the kernel's defaults have it.
fn watch_liveness(stream: &TcpStream, peer: &str) {
    use nix::libc::{c_int, IPPROTO_TCP, SOL_SOCKET, SO_KEEPALIVE};
    use nix::libc::{TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_USER_TIMEOUT};
    let unacknowledged_ms = UNACKNOWLEDGED_MAX.as_millis() as c_int;
    let options = [
        (SOL_SOCKET, SO_KEEPALIVE, 1),
        (IPPROTO_TCP, TCP_KEEPIDLE, 1),
        (IPPROTO_TCP, TCP_KEEPINTVL, 1),
        (IPPROTO_TCP, TCP_USER_TIMEOUT, unacknowledged_ms),
    ];
    for (level, name, value) in options {
        // SAFETY: setsockopt(2) on the stream's open descriptor, reading one c_int from a live
        // local of that size.
        let rc = unsafe {
            nix::libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(stream),
                level,
                name,
                (&value as *const c_int).cast(),
                std::mem::size_of::<c_int>() as nix::libc::socklen_t,
            )
        };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            tracing::warn!(%peer, name, %error, "controller connection: a socket option failed");
        }
    }
}

/// The address the controller listener binds.
pub fn bind(host: &str, port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind((host, port))?;
    let address = listener.local_addr()?;
    Ok((listener, address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_length_and_kind() {
        assert_eq!(
            frame(KIND_HEARTBEAT, b"ab"),
            vec![0, 0, 0, 3, 3, b'a', b'b']
        );
    }
}
