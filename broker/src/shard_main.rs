//! The life of one shard: bind the Kafka port, join the mesh, open the partitions it owns, wait
//! until every shard has (connections wait in the listen backlog meanwhile),
//! accept connections, run retention, and on stop drain connections and close every log.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{select, Either};
use futures::StreamExt;
use glommio::net::TcpListener;
use odradek_net::{serve_connection, ConnLimits, Peer, Shutdown};
use odradek_storage::{ShardStorage, ShardStorageConfig};

use crate::config::BrokerConfig;
use crate::control::owned_at_start;
use crate::ids::{NodeId, ShardId};
use crate::metadata::{BrokerEndpoint, MetadataSnapshot};
use crate::quorum::image::ClusterImage;
use crate::quorum::start::QuorumStart;
use crate::router::Mesh;
use crate::service::BrokerService;
use crate::settings::ProcessRoles;
use crate::shard::ShardCtx;
use crate::shard_msg;
use crate::{replication, retention};

/// What a shard tells the main thread while starting.
#[derive(Debug)]
pub enum StartEvent {
    /// Bound the Kafka port (shard 0 reports the real port when asked for port 0).
    Bound {
        shard: usize,
        port: u16,
    },
    /// Partitions open; accepting once every shard is (`Shared::serving`).
    Ready {
        shard: usize,
    },
    Failed {
        shard: usize,
        reason: String,
    },
}

/// Shared by every shard and the main thread.
pub struct Shared {
    pub config: Arc<BrokerConfig>,
    pub cluster_id: String,
    /// The metadata as of the locally committed log, which the shards open their logs from.
    pub initial_image: Arc<ClusterImage>,
    /// The quorum, for shard 0 to start (taken once).
    pub quorum: Mutex<Option<QuorumStart>>,
    /// `config` with the metadata log's run-time broker settings applied.
    pub effective_config: Arc<BrokerConfig>,
    pub shard_count: usize,
    pub stop: Arc<AtomicBool>,
    /// Shards done with their connections (stop phase 1), then with their logs (phase 2).
    pub drained: Arc<AtomicUsize>,
    pub closed: Arc<AtomicUsize>,
    /// Set once every shard has opened its partitions: no shard accepts before, so no client is
    /// told a partition another shard is still recovering does not exist.
    pub serving: Arc<AtomicBool>,
    /// Set by the shard that saw a partition log fail; the process then stops with an error.
    pub log_failed: Arc<AtomicBool>,
    /// Set once the controlled shutdown (shard 0's, `quorum::start`) is over.
    pub handed_over: Arc<AtomicBool>,
    /// Idempotent producers' ids (InitProducerId).
    /// What the shards share (producer ids, the quorum's status).
    pub node: Arc<crate::shard::NodeShared>,
}

/// How long shards wait for the controlled shutdown: its own bound, and a margin.
const HAND_OVER_WAIT_MAX: Duration =
    Duration::from_millis(crate::quorum::start::CONTROLLED_SHUTDOWN_MAX.as_millis() as u64 + 1000);

/// How often a shard checks the stop flag and the stop barriers.
const STOP_POLL: Duration = Duration::from_millis(50);
const BARRIER_POLL: Duration = Duration::from_millis(5);
/// The longest a shard waits for the others at a stop barrier.
const BARRIER_WAIT_MAX: Duration = Duration::from_secs(30);
/// Logs closing at once at stop.
const LOG_CLOSES_IN_FLIGHT: usize = 64;
/// The longest a shard waits for its connections to finish at stop.
const DRAIN_WAIT_MAX: Duration = Duration::from_secs(10);

/// The shard's whole life; returns when it has stopped.
pub async fn run(
    shard: ShardId,
    port: u16,
    shared: Arc<Shared>,
    mesh: Option<Mesh>,
    events: Sender<StartEvent>,
) {
    let config = Arc::clone(&shared.config);
    // A controller-only node serves no clients: no Kafka listener.
    let serves_clients = config.process_roles != ProcessRoles::Controller;
    let listener = match serves_clients {
        false => None,
        true => match TcpListener::bind((config.listen.host.as_str(), port)) {
            Ok(listener) => Some(listener),
            Err(error) => {
                let reason = format!("cannot listen on {}:{port}: {error}", config.listen.host);
                let _ = events.send(StartEvent::Failed {
                    shard: shard.0,
                    reason,
                });
                return;
            }
        },
    };
    let port = listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map_or(port, |a| a.port());
    let _ = events.send(StartEvent::Bound {
        shard: shard.0,
        port,
    });
    let ctx = match build_ctx(shard, port, &shared, mesh).await {
        Ok(ctx) => ctx,
        Err(reason) => {
            let _ = events.send(StartEvent::Failed {
                shard: shard.0,
                reason,
            });
            return;
        }
    };
    if let Err(reason) = open_owned(&ctx).await {
        let _ = events.send(StartEvent::Failed {
            shard: shard.0,
            reason,
        });
        return;
    }
    if shard.0 == 0 {
        let quorum = shared.quorum.lock().ok().and_then(|mut q| q.take());
        let started = match quorum {
            Some(quorum) => crate::quorum::start::start(&ctx, quorum).await,
            None => Err("the quorum is missing".to_string()),
        };
        if let Err(reason) = started {
            let _ = events.send(StartEvent::Failed {
                shard: shard.0,
                reason,
            });
            return;
        }
    }
    crate::group::start(&ctx).await;
    let _ = events.send(StartEvent::Ready { shard: shard.0 });
    // Connections wait in the listen backlog meanwhile.
    while !shared.serving.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
        glommio::timer::sleep(BARRIER_POLL).await;
    }
    serve_until_stop(ctx, listener, &shared).await;
}

async fn build_ctx(
    shard: ShardId,
    port: u16,
    shared: &Shared,
    mesh: Option<Mesh>,
) -> Result<Rc<ShardCtx>, String> {
    let senders = match mesh {
        Some(mesh) => {
            let (senders, receivers) = mesh
                .join()
                .await
                .map_err(|e| format!("cannot join the mesh: {e}"))?;
            Some((senders, receivers))
        }
        None => None,
    };
    let config = &shared.config;
    let (host, port) = match &config.advertise {
        Some(advertise) => (advertise.host.clone(), advertise.port),
        None => (advertised_host(&config.listen.host), port),
    };
    let endpoint = BrokerEndpoint {
        node_id: NodeId(config.node_id),
        host,
        port,
        rack: config.broker_rack.clone(),
    };
    let snapshot = MetadataSnapshot::of_image(
        0,
        endpoint,
        shared.cluster_id.clone(),
        None,
        &shared.initial_image,
        Arc::clone(&shared.effective_config),
    );
    let storage = ShardStorage::new(ShardStorageConfig {
        tail_cache_bytes: config.tail_cache_bytes,
        ..ShardStorageConfig::default()
    });
    let (senders, receivers) = match senders {
        Some((s, r)) => (Some(s), Some(r)),
        None => (None, None),
    };
    let ctx = ShardCtx::new(
        shard,
        shared.shard_count,
        Arc::clone(config),
        Arc::new(snapshot),
        storage,
        senders,
        Arc::clone(&shared.node),
    );
    if let Some(receivers) = receivers {
        crate::router::Router::start(&ctx, receivers);
    }
    Ok(ctx)
}

/// A wildcard listen address is not something a client can connect to.
fn advertised_host(listen_host: &str) -> String {
    match listen_host {
        "0.0.0.0" | "::" | "" => "127.0.0.1".to_string(),
        host => host.to_string(),
    }
}

async fn open_owned(ctx: &ShardCtx) -> Result<(), String> {
    let snapshot = ctx.metadata();
    for (topic, partitions, config) in owned_at_start(&snapshot, ctx.shard, ctx.shard_count) {
        if let shard_msg::ShardReply::Failed(reason) =
            shard_msg::open_partitions(ctx, &topic, &partitions, &config).await
        {
            return Err(reason);
        }
    }
    let opened = ctx.partitions.borrow().len();
    if opened > 0 {
        tracing::info!(shard = %ctx.shard, partitions = opened, "partition logs opened");
    }
    Ok(())
}

async fn serve_until_stop(ctx: Rc<ShardCtx>, listener: Option<TcpListener>, shared: &Shared) {
    let shutdown = Shutdown::new();
    let active = Rc::new(Cell::new(0usize));
    glommio::spawn_local(retention::run(Rc::clone(&ctx), shutdown.clone())).detach();
    let fetching =
        glommio::spawn_local(replication::fetcher::run(Rc::clone(&ctx), shutdown.clone()));
    glommio::spawn_local(replication::isr::run(Rc::clone(&ctx), shutdown.clone())).detach();
    let accepting = listener.map(|listener| {
        glommio::spawn_local(accept_loop(
            Rc::clone(&ctx),
            listener,
            shutdown.clone(),
            Rc::clone(&active),
        ))
    });
    while !shared.stop.load(Ordering::SeqCst) {
        glommio::timer::sleep(STOP_POLL).await;
        stop_if_a_log_failed(&ctx, shared);
    }
    // Every shard serves on until the broker is fenced (its partitions' leadership moved):
    // requests in between are still answered, and none finds the listener gone first.
    let mut waited = Duration::ZERO;
    while !shared.handed_over.load(Ordering::SeqCst) && waited < HAND_OVER_WAIT_MAX {
        glommio::timer::sleep(STOP_POLL).await;
        waited += STOP_POLL;
    }
    shutdown.trigger();
    if let Some(accepting) = accepting {
        accepting.await;
    }
    drain(&active).await;
    fetching.await;
    barrier(&shared.drained, shared.shard_count).await;
    close_logs(&ctx).await;
    barrier(&shared.closed, shared.shard_count).await;
    ctx.router.close();
}

/// A log whose write or sync failed refuses appends for good, and the data directory is this
/// node's only one: like Kafka when its last log directory fails, the broker stops (cleanly:
/// the other logs close with their markers; the failed one is checked by recovery at the next
/// start) rather than serve a partition that takes no writes. In a cluster, stopping is also
/// what hands the partition's leadership to another replica.
fn stop_if_a_log_failed(ctx: &ShardCtx, shared: &Shared) {
    if ctx.storage.failed_logs() == 0 || shared.log_failed.swap(true, Ordering::SeqCst) {
        return;
    }
    tracing::error!(shard = %ctx.shard, "a partition log failed: stopping the broker");
    shared.stop.store(true, Ordering::SeqCst);
}

async fn accept_loop(
    ctx: Rc<ShardCtx>,
    listener: TcpListener,
    shutdown: Shutdown,
    active: Rc<Cell<usize>>,
) {
    let service = Rc::new(BrokerService::new(Rc::clone(&ctx)));
    let limits = ConnLimits {
        frame_bytes_max: ctx.config.socket_request_max_bytes,
        in_flight_max: ctx.config.queued_max_requests,
    };
    // The one listener there is today, by Kafka's name for a plain TCP listener.
    let listener_name: Rc<str> = Rc::from("PLAINTEXT");
    let mut at_limit = false;
    loop {
        let accept = std::pin::pin!(listener.accept());
        let stop = std::pin::pin!(shutdown.wait());
        let stream = match select(accept, stop).await {
            Either::Left((Ok(stream), _)) => stream,
            Either::Left((Err(error), _)) => {
                tracing::warn!(shard = %ctx.shard, %error, "accept failed");
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Either::Right(_) => return,
        };
        if active.get() >= ctx.config.max_connections {
            // One line per crossing of the limit, not one per refused connection.
            if !at_limit {
                tracing::warn!(
                    shard = %ctx.shard,
                    max = ctx.config.max_connections,
                    "max.connections reached: refusing connections"
                );
            }
            at_limit = true;
            continue;
        }
        at_limit = false;
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            addr: stream.peer_addr().ok(),
            listener: Rc::clone(&listener_name),
        };
        active.set(active.get() + 1);
        let (service, shutdown, active) =
            (Rc::clone(&service), shutdown.clone(), Rc::clone(&active));
        glommio::spawn_local(async move {
            serve_connection(stream, peer, service, limits, shutdown).await;
            active.set(active.get() - 1);
        })
        .detach();
    }
}

async fn drain(active: &Cell<usize>) {
    let mut waited = Duration::ZERO;
    while active.get() > 0 && waited < DRAIN_WAIT_MAX {
        glommio::timer::sleep(STOP_POLL).await;
        waited += STOP_POLL;
    }
    if active.get() > 0 {
        tracing::warn!(
            connections = active.get(),
            "stopping with connections still open"
        );
    }
}

/// Counts this shard in and waits until every shard has arrived (or a bounded time passed).
async fn barrier(counter: &AtomicUsize, shard_count: usize) {
    counter.fetch_add(1, Ordering::SeqCst);
    let mut waited = Duration::ZERO;
    while counter.load(Ordering::SeqCst) < shard_count {
        if waited >= BARRIER_WAIT_MAX {
            tracing::warn!("some shard did not reach the stop barrier; stopping anyway");
            return;
        }
        glommio::timer::sleep(BARRIER_POLL).await;
        waited += BARRIER_POLL;
    }
}

/// Closes every log of this shard, [`LOG_CLOSES_IN_FLIGHT`] at a time: each close is a few
/// syncs (its tail, its clean marker), which a device with queues (NVMe) takes together. On
/// the 2-core VM's disk they serialize all the same: 3000 logs took 12.9 s against 14.8 s one
/// after another (medians of 5), a stop of 6000 half a minute; see BENCHMARKS.md.
async fn close_logs(ctx: &ShardCtx) {
    let logs: Vec<_> = ctx.partitions.borrow_mut().drain().collect();
    if logs.is_empty() {
        return;
    }
    let (count, began) = (logs.len(), std::time::Instant::now());
    tracing::info!(shard = %ctx.shard, logs = count, "closing the partition logs");
    futures::stream::iter(logs)
        .for_each_concurrent(LOG_CLOSES_IN_FLIGHT, |(tp, log)| async move {
            if let Err(error) = log.close().await {
                tracing::error!(partition = %tp, %error, "closing the log failed");
            }
        })
        .await;
    let elapsed_ms = began.elapsed().as_millis() as u64;
    tracing::info!(shard = %ctx.shard, logs = count, elapsed_ms, "partition logs closed");
}
