//! The controller listener: how voters send each other Raft messages and heartbeats.
//!
//! Each voter connects to every other voter's controller listener and only writes on that
//! connection; what it receives comes on the connections the others opened. Messages may be
//! lost (a peer down, a queue full): Raft retries what matters, and a heartbeat comes again.
//!
//! ```text
//! frame:  length u32 big-endian (of what follows) | kind u8 | payload
//! kind 1: hello      JSON {cluster_id, node_id}: first on every connection
//! kind 2: raft       a raft-rs (eraftpb) Message, protobuf
//! kind 3: heartbeat  JSON {node_id, incarnation}: a broker to the active controller
//! ```
//!
//! Hostile input is answered like on the Kafka port: a connection whose hello names another
//! cluster or a node that is not a voter, a frame over the bound (4 KiB before the hello),
//! an unknown kind or a payload that does not decode is closed with a log line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::{select, Either};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
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

#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    cluster_id: String,
    node_id: i32,
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

/// The queues to the other voters, one connection task each.
pub struct Peers {
    queues: HashMap<i32, mpsc::Sender<Vec<u8>>>,
}

impl Peers {
    /// Starts a sender task for each voter other than `me`.
    pub fn start(voters: &[Voter], me: i32, cluster_id: &str, shutdown: &Shutdown) -> Peers {
        let mut queues = HashMap::new();
        for voter in voters.iter().filter(|v| v.node_id != me) {
            let (tx, rx) = mpsc::channel(QUEUE_MAX);
            let hello = frame(
                KIND_HELLO,
                &serde_json::to_vec(&Hello {
                    cluster_id: cluster_id.to_string(),
                    node_id: me,
                })
                .expect("a hello encodes"),
            );
            let address = format!("{}:{}", voter.host, voter.port);
            glommio::spawn_local(send_loop(address, hello, rx, shutdown.clone())).detach();
            queues.insert(voter.node_id, tx);
        }
        Peers { queues }
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
        if let Some(queue) = self.queues.get_mut(&to) {
            // Full or closed: the message is lost, which Raft tolerates.
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

/// Keeps a connection to one voter and writes its queue to it; reconnects with a backoff.
async fn send_loop(
    address: String,
    hello: Vec<u8>,
    mut queue: mpsc::Receiver<Vec<u8>>,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(50);
    let mut warned = false;
    while !shutdown.is_triggered() {
        let connected =
            glommio::timer::timeout(CONNECT_TIMEOUT, TcpStream::connect(address.as_str())).await;
        let mut stream = match connected {
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
        if warned {
            tracing::info!(peer = %address, "voter reachable again");
        }
        (warned, backoff) = (false, Duration::from_millis(50));
        if stream.write_all(&hello).await.is_err() {
            continue;
        }
        loop {
            let next = std::pin::pin!(queue.next());
            let stop = std::pin::pin!(shutdown.wait());
            let bytes = match select(next, stop).await {
                Either::Left((Some(bytes), _)) => bytes,
                Either::Left((None, _)) | Either::Right(_) => return,
            };
            if let Err(error) = stream.write_all(&bytes).await {
                tracing::debug!(peer = %address, %error, "voter connection lost");
                break;
            }
        }
    }
}

/// Accepts voters' connections on the controller listener and hands what they send to
/// `inbox` until `shutdown`.
pub async fn accept_loop(
    listener: TcpListener,
    cluster_id: Rc<str>,
    voters: Rc<[i32]>,
    inbox: mpsc::Sender<Input>,
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
        let (cluster_id, voters, inbox) =
            (Rc::clone(&cluster_id), Rc::clone(&voters), inbox.clone());
        let shutdown = shutdown.clone();
        glommio::spawn_local(async move {
            let read = std::pin::pin!(read_loop(stream, &cluster_id, &voters, inbox));
            let stop = std::pin::pin!(shutdown.wait());
            if let Either::Left((Err(reason), _)) = select(read, stop).await {
                tracing::warn!(peer = ?peer, %reason, "controller listener: connection closed");
            }
        })
        .detach();
    }
}

/// Reads one connection: its hello, then frames. `Ok` at a clean end of stream.
async fn read_loop(
    mut stream: TcpStream,
    cluster_id: &str,
    voters: &[i32],
    mut inbox: mpsc::Sender<Input>,
) -> Result<(), String> {
    let Some((kind, payload)) = read_frame(&mut stream, HELLO_BYTES_MAX).await? else {
        return Ok(());
    };
    if kind != KIND_HELLO {
        return Err(format!("the first frame is of kind {kind}, not a hello"));
    }
    let hello: Hello = serde_json::from_slice(&payload)
        .map_err(|e| format!("a hello that does not decode: {e}"))?;
    if hello.cluster_id != cluster_id {
        return Err(format!(
            "node {} is of cluster {}, this node of {cluster_id}",
            hello.node_id, hello.cluster_id
        ));
    }
    if !voters.contains(&hello.node_id) {
        return Err(format!("node {} is not a voter", hello.node_id));
    }
    while let Some((kind, payload)) = read_frame(&mut stream, FRAME_BYTES_MAX).await? {
        let incoming = match kind {
            KIND_RAFT => {
                let message = Message::parse_from_bytes(&payload)
                    .map_err(|e| format!("a raft message that does not decode: {e}"))?;
                if message.from != super::node::raft_id(hello.node_id) {
                    return Err(format!(
                        "node {} sent a message from raft id {}",
                        hello.node_id, message.from
                    ));
                }
                Incoming::Raft(Box::new(message))
            }
            KIND_HEARTBEAT => {
                let heartbeat: Heartbeat = serde_json::from_slice(&payload)
                    .map_err(|e| format!("a heartbeat that does not decode: {e}"))?;
                if heartbeat.node_id != hello.node_id {
                    return Err(format!(
                        "node {} sent a heartbeat for node {}",
                        hello.node_id, heartbeat.node_id
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
    stream: &mut TcpStream,
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
