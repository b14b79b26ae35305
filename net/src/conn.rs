//! The per-connection loop.
//!
//! A reader reads frames, decodes each request header and spawns the request on the shard as its
//! own task, so requests of one connection run concurrently (Kafka clients pipeline). The task
//! handles go through a bounded local channel, which bounds the requests in flight, to a writer
//! that awaits them in order and writes their responses: responses go back in request order. A
//! request may have no response (acks=0 produce). Any malformed input closes this connection
//! only, with one log line.

use std::rc::Rc;

use bytes::Bytes;
use futures::future::{select, Either};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::task::JoinHandle;
use kafka_protocol::messages::{ApiKey, RequestHeader};

use crate::error::NetError;
use crate::frame::read_frame;
use crate::header::decode_request_header;
use crate::shutdown::Shutdown;

/// One request whose header is decoded; the body is still encoded.
#[derive(Clone, Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// What serves requests: the broker's handler table.
#[allow(async_fn_in_trait)] // Shard-local: the futures are never sent across threads.
pub trait Service: 'static {
    /// `Ok(Some(frame))`: a length-prefixed response frame; `Ok(None)`: no response (acks=0);
    /// `Err`: close the connection (for input the protocol cannot answer).
    async fn call(self: Rc<Self>, request: Request) -> Result<Option<Bytes>, NetError>;
}

/// Bounds of one connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// `socket.request.max.bytes`: the largest request frame.
    pub frame_bytes_max: usize,
    /// `queued.max.requests`: requests of this connection decoded and not yet answered.
    pub in_flight_max: usize,
}

type Reply = Result<Option<Bytes>, NetError>;

/// Serves one connection until the peer closes it, an error, or `shutdown` (then the requests
/// already read are answered first). Logs why it closed.
pub async fn serve_connection<T, S>(
    stream: T,
    peer: &str,
    service: Rc<S>,
    limits: ConnLimits,
    shutdown: Shutdown,
) where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    S: Service,
{
    assert!(limits.in_flight_max > 0, "in_flight_max must be positive");
    let (reader, writer) = stream.split();
    let (tx, rx) = local_channel::new_bounded(limits.in_flight_max);
    let read = std::pin::pin!(read_loop(reader, service, limits, tx, shutdown));
    let write = std::pin::pin!(write_loop(writer, rx));
    let result = match select(read, write).await {
        // The reader is done (EOF, shutdown or bad input): answer what was read, then close.
        Either::Left((read_result, write)) => {
            let write_result = write.await;
            read_result.and(write_result)
        }
        Either::Right((write_result, _read)) => write_result,
    };
    log_close(peer, result);
}

fn log_close(peer: &str, result: Result<(), NetError>) {
    match result {
        Ok(()) => tracing::debug!(peer, "connection closed"),
        Err(NetError::Io { op, source }) => tracing::debug!(peer, op, %source, "connection closed"),
        Err(error) => tracing::warn!(peer, %error, "closing connection"),
    }
}

async fn read_loop<R, S>(
    mut reader: R,
    service: Rc<S>,
    limits: ConnLimits,
    tx: LocalSender<JoinHandle<Reply>>,
    shutdown: Shutdown,
) -> Result<(), NetError>
where
    R: AsyncRead + Unpin,
    S: Service,
{
    loop {
        let next = std::pin::pin!(read_frame(&mut reader, limits.frame_bytes_max));
        let stop = std::pin::pin!(shutdown.wait());
        let frame = match select(next, stop).await {
            Either::Left((frame, _)) => frame?,
            Either::Right(((), _)) => return Ok(()),
        };
        let Some(frame) = frame else { return Ok(()) };
        let decoded = decode_request_header(frame)?;
        let request = Request {
            api_key: decoded.api_key,
            header: decoded.header,
            body: decoded.body,
        };
        let task = glommio::spawn_local(Rc::clone(&service).call(request)).detach();
        if tx.send(task).await.is_err() {
            return Ok(()); // The writer is gone: the connection is closing.
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    rx: LocalReceiver<JoinHandle<Reply>>,
) -> Result<(), NetError> {
    while let Some(task) = rx.recv().await {
        // `None` from the handle: the task was cancelled (the shard is stopping).
        let Some(reply) = task.await else {
            return Ok(());
        };
        if let Some(frame) = reply? {
            writer
                .write_all(&frame)
                .await
                .map_err(|source| NetError::Io {
                    op: "write response",
                    source,
                })?;
        }
    }
    writer.close().await.map_err(|source| NetError::Io {
        op: "close",
        source,
    })
}
