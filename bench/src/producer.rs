//! Producers: each task generates messages, batches them per partition and pipelines produce
//! requests to every partition leader over its own connection, with at most `--max-in-flight`
//! requests unanswered per connection.
//!
//! At a fixed rate, message `i` of a producer is due at `start + i / rate`; that intended time
//! is written into the message and latency is measured from it, so a stalled broker shows up as
//! latency rather than as fewer samples (no coordinated omission). Messages that are due but
//! not yet generated cost nothing: the backlog is a counter, not a queue. The producer sleeps
//! until a request has to go out, not until each message is due ([`crate::pacing`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::io::{AsyncReadExt, ReadHalf, WriteHalf};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use kafka_protocol::messages::{ApiKey, ProduceResponse};
use kafka_protocol::ResponseError;
use odradek_net::FrameReader;

use crate::args::Workload;
use crate::bootstrap::Cluster;
use crate::client::{self, with_timeout};
use crate::error::BenchError;
use crate::keys::KeyPicker;
use crate::pacing::{Buffered, Pacing};
use crate::payload::MessageHeader;
use crate::run::Shared;
use crate::stats::{Clock, LocalStats};
use crate::wire::{BatchBuilder, ProduceHead};

/// Messages generated per clock reading when producing as fast as possible.
const BURST_MSGS: u64 = 32;
/// Produce requests grow to about this size when many partitions share a leader.
const REQUEST_BYTES_TARGET: usize = 1 << 20;

/// What a producer reports at the end.
#[derive(Debug, Default)]
pub struct ProducerResult {
    pub id: u32,
    /// Per partition: sequence numbers `0..n` were acknowledged.
    pub acked_seqs: Vec<u64>,
    pub failed_msgs: u64,
    pub first_failure: Option<String>,
    /// A produce was refused with an error that is not retriable (a client would give up too).
    pub refused: bool,
}

/// Everything a producer task needs.
pub struct ProducerCtx {
    pub id: u32,
    pub run_id: u32,
    pub workload: Arc<Workload>,
    pub cluster: Arc<Cluster>,
    pub shared: Arc<Shared>,
    pub stats: Rc<RefCell<LocalStats>>,
    /// Messages this producer sends in all (with --messages).
    pub quota: Option<u64>,
}

/// Messages of one partition waiting to be sent.
struct Accumulator {
    partition: i32,
    batch: BatchBuilder,
    send_ns: Vec<u64>,
    first_seq: u64,
    next_seq: u64,
}

/// A request sent and not yet answered.
struct InFlight {
    correlation_id: i32,
    /// When the request was handed to the socket.
    written_ns: u64,
    batches: Vec<SentBatch>,
}

struct SentBatch {
    partition: i32,
    bytes: u64,
    last_seq: u64,
    send_ns: Vec<u64>,
}

/// State shared by a connection's writer (the producer loop) and its reader task.
struct ConnState {
    addr: SocketAddr,
    in_flight: RefCell<VecDeque<InFlight>>,
    /// Free request slots; closed by the reader when the connection fails.
    slots: Semaphore,
    /// Requests waiting for a response; closed by the writer when it is done.
    pending: Semaphore,
    failure: RefCell<Option<BenchError>>,
}

/// One connection to one leader, and the accumulators of the partitions it leads.
struct LeaderConn {
    state: Rc<ConnState>,
    writer: WriteHalf<TcpStream>,
    /// The socket under `writer`, for vectored sends.
    fd: RawFd,
    reader: glommio::task::JoinHandle<()>,
    accumulators: Vec<Accumulator>,
    bytes_buffered: usize,
    oldest_ns: Option<u64>,
    correlation_id: i32,
}

/// Per-producer results that the reader task updates.
struct Acks {
    acked_seqs: Vec<u64>,
    failed_msgs: u64,
    first_failure: Option<String>,
    refused: bool,
}

pub async fn run_producer(ctx: ProducerCtx) -> Result<ProducerResult, BenchError> {
    let mut producer = Producer::connect(&ctx).await?;
    let outcome = producer.produce(&ctx).await;
    let drained = producer.finish(&ctx).await;
    outcome.and(drained)?;
    let acks = producer.acks.borrow();
    Ok(ProducerResult {
        id: ctx.id,
        acked_seqs: acks.acked_seqs.clone(),
        failed_msgs: acks.failed_msgs,
        first_failure: acks.first_failure.clone(),
        refused: acks.refused,
    })
}

struct Producer {
    conns: Vec<LeaderConn>,
    /// Per partition: which connection, and which accumulator in it.
    route: Vec<(usize, usize)>,
    acks: Rc<RefCell<Acks>>,
    keys: KeyPicker,
    template: Vec<u8>,
    batch_bytes: usize,
    /// The schedule at a fixed rate; `None` as fast as possible.
    pacing: Option<Pacing>,
    /// Messages put in batches so far.
    generated: u64,
}

impl Producer {
    async fn connect(ctx: &ProducerCtx) -> Result<Producer, BenchError> {
        let partitions = ctx.cluster.leaders.len();
        let acks = Rc::new(RefCell::new(Acks {
            acked_seqs: vec![0; partitions],
            failed_msgs: 0,
            first_failure: None,
            refused: false,
        }));
        let mut conns: Vec<LeaderConn> = Vec::new();
        let mut route = Vec::with_capacity(partitions);
        for (partition, &leader) in ctx.cluster.leaders.iter().enumerate() {
            let conn_index = match conns.iter().position(|c| c.state.addr == leader) {
                Some(i) => i,
                None => {
                    conns.push(LeaderConn::open(leader, ctx, Rc::clone(&acks)).await?);
                    conns.len() - 1
                }
            };
            let conn = &mut conns[conn_index];
            conn.accumulators.push(Accumulator {
                partition: partition as i32,
                batch: BatchBuilder::new(batch_capacity(&ctx.workload)),
                send_ns: Vec::new(),
                first_seq: 0,
                next_seq: 0,
            });
            route.push((conn_index, conn.accumulators.len() - 1));
        }
        Ok(Producer {
            conns,
            route,
            acks,
            keys: KeyPicker::new(ctx.workload.keys, partitions as u32, ctx.id),
            template: ctx.workload.payload.clone(),
            batch_bytes: ctx.workload.batch_bytes,
            pacing: None,
            generated: 0,
        })
    }

    /// Generates and sends until the deadline or the quota.
    async fn produce(&mut self, ctx: &ProducerCtx) -> Result<(), BenchError> {
        let w = &ctx.workload;
        let clock = ctx.stats.borrow().clock;
        let rate_per_producer = w.rate_msgs_per_s / w.producers as f64;
        let linger_ns = crate::stats::nanos(w.linger);
        self.pacing = (rate_per_producer > 0.0).then(|| Pacing {
            start_ns: clock.now_ns(),
            interval_ns: 1e9 / rate_per_producer,
            linger_ns,
            message_bytes: w.message_bytes,
        });
        loop {
            let now = clock.now_ns();
            let ended = now >= clock.deadline_ns;
            let due = match self.pacing {
                None if ended => self.generated,
                _ => self.due_at(ctx, now),
            };
            while let Some(full) = self.append_until(ctx, due, now) {
                self.send(full, ctx).await?;
                if self.pacing.is_none() {
                    break; // The burst ends at the first send, which may have waited.
                }
            }
            if ended || ctx.quota.is_some_and(|q| self.generated >= q) {
                return Ok(()); // What is buffered goes out in `finish`.
            }
            let now = clock.now_ns();
            for i in 0..self.conns.len() {
                if self.conns[i]
                    .oldest_ns
                    .is_some_and(|t| t + linger_ns <= now)
                {
                    self.send(i, ctx).await?;
                }
            }
            match self.pacing {
                Some(p) => self.sleep_until_next_send(&p, clock, w).await,
                None => glommio::yield_if_needed().await,
            }
        }
    }

    /// How many messages should have been generated at `now`: at a fixed rate, those due by
    /// then (and before the deadline, which a sleep may have overshot); as fast as possible, a
    /// burst more, all sharing one clock reading. Never more than the quota.
    fn due_at(&self, ctx: &ProducerCtx, now: u64) -> u64 {
        let deadline_ns = ctx.stats.borrow().clock.deadline_ns;
        let due = match &self.pacing {
            Some(p) => p.due_by(now.min(deadline_ns.saturating_sub(1))),
            None => self.generated + BURST_MSGS,
        };
        ctx.quota.map_or(due, |q| due.min(q))
    }

    /// Appends messages until `due` have been generated, stopping at the first connection
    /// whose request is full (which it returns; it may have been full already).
    fn append_until(&mut self, ctx: &ProducerCtx, due: u64, now: u64) -> Option<usize> {
        let w = &ctx.workload;
        let is_full = |p: &Producer, i: usize| p.conns[i].bytes_buffered >= p.full_bytes(i, w);
        if let Some(full) = (0..self.conns.len()).find(|&i| is_full(self, i)) {
            return Some(full);
        }
        while self.generated < due {
            let send_ns = self.pacing.map_or(now, |p| p.due_ns(self.generated));
            let conn_index = self.append(ctx, send_ns);
            self.generated += 1;
            if is_full(self, conn_index) {
                return Some(conn_index);
            }
        }
        None
    }

    /// A connection sends when it holds a full batch for each of its partitions, or
    /// [`REQUEST_BYTES_TARGET`] if that is less (but at least one full batch).
    fn full_bytes(&self, conn_index: usize, w: &Workload) -> usize {
        let all = w.batch_bytes * self.conns[conn_index].accumulators.len();
        all.min(REQUEST_BYTES_TARGET).max(w.batch_bytes)
    }

    /// Sleeps until a request may have to go out (see [`Pacing::next_send_ns`]), or the
    /// deadline.
    async fn sleep_until_next_send(&self, p: &Pacing, clock: Clock, w: &Workload) {
        let buffered = (0..self.conns.len()).map(|i| Buffered {
            oldest_ns: self.conns[i].oldest_ns,
            bytes: self.conns[i].bytes_buffered,
            full_bytes: self.full_bytes(i, w),
        });
        let wake = p
            .next_send_ns(self.generated, buffered)
            .min(clock.deadline_ns);
        let now = clock.now_ns();
        if wake > now {
            glommio::timer::sleep(Duration::from_nanos(wake - now)).await;
        } else {
            glommio::yield_if_needed().await;
        }
    }

    /// Adds one message to its partition's accumulator; returns the connection index.
    fn append(&mut self, ctx: &ProducerCtx, send_ns: u64) -> usize {
        let (key, partition) = self.keys.next();
        let (conn_index, acc_index) = self.route[partition as usize];
        let conn = &mut self.conns[conn_index];
        let acc = &mut conn.accumulators[acc_index];
        let header = MessageHeader {
            run_id: ctx.run_id,
            send_ns,
            producer: ctx.id,
            seq: acc.next_seq,
        };
        acc.batch
            .push(key, &self.template, |value| header.write(value));
        acc.next_seq += 1;
        if acc.batch.value_bytes() >= self.batch_bytes {
            self.keys.batch_full();
        }
        acc.send_ns.push(send_ns);
        conn.bytes_buffered += self.template.len();
        conn.oldest_ns = Some(conn.oldest_ns.map_or(send_ns, |t| t.min(send_ns)));
        conn_index
    }

    /// Sends every non-empty batch of connection `conn_index` in one produce request.
    async fn send(&mut self, conn_index: usize, ctx: &ProducerCtx) -> Result<(), BenchError> {
        let w = &ctx.workload;
        let conn = &mut self.conns[conn_index];
        if conn.bytes_buffered == 0 {
            return Ok(());
        }
        if conn.state.slots.acquire(1).await.is_err() {
            return Err(conn.failure());
        }
        if self.pacing.is_some() {
            // Messages that fell due while this request waited for a slot go out with it, as
            // they would with any client, rather than wait for the next slot.
            let now = ctx.stats.borrow().clock.now_ns();
            let due = self.due_at(ctx, now);
            let _ = self.append_until(ctx, due, now);
        }
        let conn = &mut self.conns[conn_index];
        let version = ctx.cluster.versions.produce;
        let (entries, batches) = finish_batches(conn, w, version)?;
        conn.bytes_buffered = 0;
        conn.oldest_ns = None;
        self.keys.batch_full();
        conn.correlation_id = conn.correlation_id.wrapping_add(1);
        let pieces = ProduceHead {
            version,
            correlation_id: conn.correlation_id,
            client_id: client::CLIENT_ID,
            acks: w.acks,
            timeout_ms: i32::try_from(w.timeout.as_millis()).unwrap_or(i32::MAX),
            topic: &w.topic,
        }
        .frame(entries);
        let acked = w.acks != 0;
        let unacked_counts = (!acked).then(|| {
            let msgs: usize = batches.iter().map(|b| b.send_ns.len()).sum();
            let bytes: u64 = batches.iter().map(|b| b.bytes).sum();
            (msgs as u64, bytes)
        });
        if acked {
            conn.state.in_flight.borrow_mut().push_back(InFlight {
                correlation_id: conn.correlation_id,
                written_ns: ctx.stats.borrow().clock.now_ns(),
                batches,
            });
            conn.state.pending.signal(1);
        }
        let written = client::write_pieces(
            &mut conn.writer,
            conn.fd,
            &pieces,
            conn.state.addr,
            w.timeout,
        );
        if let Err(error) = written.await {
            // Nothing more can go out on this connection: stop waiting for its slots.
            conn.state.slots.close();
            return Err(error);
        }
        if let Some((msgs, bytes)) = unacked_counts {
            let now = ctx.stats.borrow().clock.now_ns();
            ctx.stats.borrow_mut().on_unacked_send(now, msgs, bytes);
            conn.state.slots.signal(1);
        }
        Ok(())
    }

    /// Sends what is buffered, waits for every answer (within the timeout), closes.
    async fn finish(&mut self, ctx: &ProducerCtx) -> Result<(), BenchError> {
        let mut result = Ok(());
        for i in 0..self.conns.len() {
            if result.is_ok() {
                result = self.send(i, ctx).await;
            }
        }
        for conn in self.conns.drain(..) {
            let all = ctx.workload.in_flight_max as u64;
            let drained = with_timeout(ctx.workload.timeout, conn.state.slots.acquire(all)).await;
            conn.state.pending.close();
            let failure = conn.state.failure.borrow_mut().take();
            if result.is_ok() {
                result = match (drained, failure) {
                    (_, Some(error)) => Err(error),
                    (Some(Ok(())), None) => Ok(()),
                    (Some(Err(_)), None) => Err(BenchError::Protocol {
                        what: "produce",
                        reason: "connection closed".into(),
                    }),
                    (None, None) => Err(BenchError::Timeout {
                        what: "produce responses",
                        addr: conn.state.addr,
                        timeout_ms: ctx.workload.timeout.as_millis(),
                    }),
                };
            }
            conn.reader.cancel();
        }
        result
    }
}

impl LeaderConn {
    async fn open(
        addr: SocketAddr,
        ctx: &ProducerCtx,
        acks: Rc<RefCell<Acks>>,
    ) -> Result<LeaderConn, BenchError> {
        let stream = client::connect(addr, ctx.workload.timeout).await?;
        let fd = stream.as_raw_fd();
        let (reader, writer) = stream.split();
        let state = Rc::new(ConnState {
            addr,
            in_flight: RefCell::new(VecDeque::with_capacity(ctx.workload.in_flight_max)),
            slots: Semaphore::new(ctx.workload.in_flight_max as u64),
            pending: Semaphore::new(0),
            failure: RefCell::new(None),
        });
        let task = read_acks(
            reader,
            Rc::clone(&state),
            ReaderCtx {
                version: ctx.cluster.versions.produce,
                timeout: ctx.workload.timeout,
                stats: Rc::clone(&ctx.stats),
                shared: Arc::clone(&ctx.shared),
                acks,
            },
        );
        let reader = glommio::spawn_local(task).detach();
        Ok(LeaderConn {
            state,
            writer,
            fd,
            reader,
            accumulators: Vec::new(),
            bytes_buffered: 0,
            oldest_ns: None,
            correlation_id: 0,
        })
    }

    fn failure(&self) -> BenchError {
        self.state
            .failure
            .borrow_mut()
            .take()
            .unwrap_or_else(|| BenchError::Protocol {
                what: "produce",
                reason: "connection closed".into(),
            })
    }
}

/// Room a batch takes when its first message comes: a full batch of messages with their record
/// framing and keys (so that it is never grown, which would copy it).
fn batch_capacity(w: &Workload) -> usize {
    let messages = w.batch_bytes / w.message_bytes.max(1) + 1;
    messages * (w.message_bytes + RECORD_FRAMING_BYTES_MAX)
}

/// Record framing (varints, attributes) and a key of the tool's (`key-N`), at most.
const RECORD_FRAMING_BYTES_MAX: usize = 48;

/// Finishes each non-empty accumulator of `conn` as one record batch (v2): the request's
/// partition entries, and what to account for when they are answered.
fn finish_batches(
    conn: &mut LeaderConn,
    w: &Workload,
    version: i16,
) -> Result<(Vec<Bytes>, Vec<SentBatch>), BenchError> {
    let timestamp_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut entries = Vec::new();
    let mut sent = Vec::new();
    for acc in conn.accumulators.iter_mut().filter(|a| !a.batch.is_empty()) {
        let bytes = acc.batch.value_bytes() as u64;
        entries.push(
            acc.batch
                .finish(acc.partition, version, timestamp_ms, w.compression)?,
        );
        let count = acc.send_ns.len() as u64;
        sent.push(SentBatch {
            partition: acc.partition,
            bytes,
            last_seq: acc.first_seq + count - 1,
            send_ns: std::mem::take(&mut acc.send_ns),
        });
        acc.first_seq = acc.next_seq;
    }
    Ok((entries, sent))
}

struct ReaderCtx {
    version: i16,
    timeout: Duration,
    stats: Rc<RefCell<LocalStats>>,
    shared: Arc<Shared>,
    acks: Rc<RefCell<Acks>>,
}

/// Reads produce responses in order and accounts for them; on failure, records why and closes
/// the request slots so that the writer stops.
async fn read_acks(reader: ReadHalf<TcpStream>, state: Rc<ConnState>, ctx: ReaderCtx) {
    let mut reader = FrameReader::new(reader);
    loop {
        if state.pending.acquire(1).await.is_err() {
            return; // The writer is done and every response was read.
        }
        let outcome = read_one_ack(&mut reader, &state, &ctx).await;
        if let Err(error) = outcome {
            *state.failure.borrow_mut() = Some(error);
            state.slots.close();
            return;
        }
        state.slots.signal(1);
    }
}

async fn read_one_ack(
    reader: &mut FrameReader<ReadHalf<TcpStream>>,
    state: &ConnState,
    ctx: &ReaderCtx,
) -> Result<(), BenchError> {
    let frame =
        client::read_response_frame(reader, state.addr, "produce response", ctx.timeout).await?;
    let Some(entry) = state.in_flight.borrow_mut().pop_front() else {
        return Err(BenchError::Protocol {
            what: "produce",
            reason: "a response to no request".into(),
        });
    };
    let response: ProduceResponse =
        client::decode_response(ApiKey::Produce, ctx.version, entry.correlation_id, frame)?;
    let mut stats = ctx.stats.borrow_mut();
    let ack_ns = stats.clock.now_ns();
    stats.on_request_answered(entry.written_ns, ack_ns);
    let mut acks = ctx.acks.borrow_mut();
    for batch in &entry.batches {
        let answer = response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == batch.partition);
        let count = batch.send_ns.len() as u64;
        match answer {
            Some(p) if p.error_code == 0 => {
                stats.on_ack(ack_ns, batch.bytes, &batch.send_ns);
                let slot = &mut acks.acked_seqs[batch.partition as usize];
                *slot = (*slot).max(batch.last_seq + 1);
                if let Some(high) = ctx.shared.acked_high.get(batch.partition as usize) {
                    high.fetch_max(p.base_offset + count as i64, Ordering::AcqRel);
                }
            }
            other => {
                stats.on_publish_error(ack_ns, count);
                acks.failed_msgs += count;
                let code = other.map_or(-1, |p| p.error_code);
                // The tool does not retry; retriable answers (a broker shedding load with
                // REQUEST_TIMED_OUT, a leader moving) are counted, not fatal.
                acks.refused |=
                    !ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable());
                if acks.first_failure.is_none() {
                    acks.first_failure = Some(
                        BenchError::kafka(
                            format!("produce to partition {}", batch.partition),
                            code,
                        )
                        .to_string(),
                    );
                }
            }
        }
    }
    Ok(())
}
