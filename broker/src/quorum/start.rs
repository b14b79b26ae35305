//! Starting the quorum on shard 0: the controller listener, the connections to the other
//! voters, the driver and the applier; then this broker's registration, before it serves.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use odradek_net::Shutdown;

use super::boot::Boot;
use super::image::{BrokerRegistration, Command, Outcome};
use super::node::Driver;
use super::transport::{self, Peers};
use crate::control::{self, ControlPlane};
use crate::settings::ProcessRoles;
use crate::shard::ShardCtx;

/// Inputs waiting for the driver (proposals, other voters' messages); more messages are
/// dropped, more proposals wait.
const INBOX_MAX: usize = 8192;
/// How often a starting broker retries its registration while the quorum has no leader.
const REGISTER_RETRY: Duration = Duration::from_millis(300);
/// The longest a stopping broker waits to be fenced.
pub const CONTROLLED_SHUTDOWN_MAX: Duration = Duration::from_secs(3);
/// How often it says that it still waits.
const WAITING_LOG_EVERY: Duration = Duration::from_secs(10);

/// What shard 0 needs to start the quorum.
pub struct QuorumStart {
    pub boot: Boot,
    pub stop: Arc<AtomicBool>,
    /// Set when the metadata log cannot be written: the broker stops.
    pub failed: Arc<AtomicBool>,
    /// The producer-id generation a single-node data dir used before (see `producer_ids`).
    pub producer_id_floor: u64,
    /// Set once a stopping broker's controlled shutdown is over (fenced, or gave up): the
    /// shards keep serving until then.
    pub handed_over: Arc<AtomicBool>,
}

/// Starts the quorum and registers this broker; returns once registered (or why not).
pub async fn start(ctx: &Rc<ShardCtx>, start: QuorumStart) -> Result<(), String> {
    let config = &ctx.config;
    let me = config.node_id;
    let cluster_id = ctx.metadata().cluster_id.clone();
    let incarnation: u64 = rand::random();
    let shutdown = Shutdown::new();
    let (inbox_tx, inbox) = mpsc::channel(INBOX_MAX);
    // A broker-only node is an observer: it reaches the voters, which answer on its
    // connections; it has no controller listener.
    let observer = !start.boot.voters.contains(&me);
    let observer_inbox = observer.then(|| inbox_tx.clone());
    let voters = &config.controller_quorum_voters;
    let peers = Peers::start(voters, me, &cluster_id, observer_inbox, &shutdown);
    if start.boot.voters.len() > 1 && !observer {
        let Some(listen) = &config.controller_listen else {
            return Err("a cluster needs a CONTROLLER listener (see listeners)".into());
        };
        let (listener, address) = transport::bind(&listen.host, listen.port).map_err(|e| {
            format!(
                "cannot listen on {}:{} (controller): {e}",
                listen.host, listen.port
            )
        })?;
        tracing::info!(%address, voters = ?start.boot.voters, "controller listener");
        glommio::spawn_local(transport::accept_loop(
            listener,
            Rc::from(cluster_id.as_str()),
            Rc::from(start.boot.voters.as_slice()),
            inbox_tx.clone(),
            peers.observers(),
            shutdown.clone(),
        ))
        .detach();
    }
    let (applier_tx, applier) = mpsc::unbounded();
    let image = Arc::new(start.boot.image.clone());
    let plane = ControlPlane::new(inbox_tx, image);
    if ctx.control.set(plane).is_err() {
        return Err("the quorum started twice".into());
    }
    glommio::spawn_local(control::apply_loop(Rc::clone(ctx), applier)).detach();
    let failed = Arc::clone(&start.failed);
    let stop = Arc::clone(&start.stop);
    let driver = Driver {
        node: Some(start.boot.node),
        image: start.boot.image,
        applied: start.boot.applied,
        bytes_since_snapshot: start.boot.bytes_since_snapshot,
        snapshot_bytes: config.metadata_log_max_record_bytes_between_snapshots,
        me,
        peers,
        inbox,
        applier: applier_tx,
        shared: Arc::clone(&ctx.node),
        heartbeat_interval: Duration::from_millis(config.broker_heartbeat_interval_ms),
        session_timeout: Duration::from_millis(config.broker_session_timeout_ms),
        incarnation,
        leader_rebalance: config.auto_leader_rebalance_enable.then(|| {
            let every = Duration::from_secs(config.leader_imbalance_check_interval_seconds);
            (every, config.leader_imbalance_per_broker_percentage)
        }),
        shutdown: shutdown.clone(),
        on_failure: Box::new(move |reason| {
            tracing::error!(%reason, "the metadata quorum failed: stopping the broker");
            failed.store(true, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
        }),
    };
    glommio::spawn_local(driver.run()).detach();
    // A controller-only node is no broker: it neither registers nor fences itself.
    let serves_clients = config.process_roles != ProcessRoles::Controller;
    let stop = Arc::clone(&start.stop);
    let handed_over = Arc::clone(&start.handed_over);
    let stopping_ctx = Rc::clone(ctx);
    glommio::spawn_local(async move {
        while !stop.load(Ordering::SeqCst) {
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
        if serves_clients {
            controlled_shutdown(&stopping_ctx, incarnation).await;
        }
        handed_over.store(true, Ordering::SeqCst);
        shutdown.trigger();
    })
    .detach();
    match serves_clients {
        true => register(ctx, incarnation, start.producer_id_floor, &start.stop).await,
        false => wait_for_leader(ctx, &start.stop).await,
    }
}

/// A controller-only node is ready once the quorum has a leader (it registers nothing).
async fn wait_for_leader(ctx: &ShardCtx, stop: &AtomicBool) -> Result<(), String> {
    let began = Instant::now();
    let mut said = None::<Instant>;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err("stopped before the metadata quorum had a leader".into());
        }
        let leader = ctx.node.quorum_status.lock().ok().and_then(|s| s.leader);
        if let Some(leader) = leader {
            let waited_ms = began.elapsed().as_millis() as u64;
            tracing::info!(leader, waited_ms, "the metadata quorum has a leader");
            return Ok(());
        }
        if said.is_none_or(|t| t.elapsed() >= WAITING_LOG_EVERY) {
            tracing::info!("waiting for the metadata quorum to elect a leader");
            said = Some(Instant::now());
        }
        glommio::timer::sleep(REGISTER_RETRY).await;
    }
}

/// A broker stopping fences itself first (Kafka's controlled shutdown): clients stop being sent
/// to it at once instead of after a session timeout, and its partitions get another leader
/// from their ISR (or none, until it returns). Bounded: without a majority it stops anyway.
async fn controlled_shutdown(ctx: &ShardCtx, incarnation: u64) {
    let Some(plane) = ctx.control.get() else {
        return;
    };
    let node_id = ctx.config.node_id;
    let fence = plane.propose(Command::FenceBroker {
        node_id,
        incarnation,
    });
    let fence = std::pin::pin!(fence);
    let bound = std::pin::pin!(glommio::timer::sleep(CONTROLLED_SHUTDOWN_MAX));
    match futures::future::select(fence, bound).await {
        futures::future::Either::Left((Ok(_), _)) => {
            tracing::info!(node_id, "fenced for the stop (controlled shutdown)");
        }
        futures::future::Either::Left((Err(error), _)) => {
            tracing::warn!(reason = %error.message, "stopping unfenced");
        }
        futures::future::Either::Right(_) => {
            tracing::warn!("stopping unfenced: the metadata quorum did not answer in time");
        }
    }
}

/// Registers this broker (its endpoint and rack), retrying until the quorum has a leader.
async fn register(
    ctx: &ShardCtx,
    incarnation: u64,
    producer_id_floor: u64,
    stop: &AtomicBool,
) -> Result<(), String> {
    let plane = ctx.control.get().expect("started above");
    let endpoint = ctx.metadata().broker.clone();
    let registration = BrokerRegistration {
        node_id: endpoint.node_id.0,
        incarnation,
        host: endpoint.host,
        port: endpoint.port,
        rack: endpoint.rack,
        fenced: false,
    };
    let began = Instant::now();
    let mut said = None::<Instant>;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err("stopped before the metadata quorum answered".into());
        }
        let command = Command::RegisterBroker {
            registration: registration.clone(),
            producer_id_floor,
        };
        match plane.propose(command).await {
            Ok(Outcome::Registered {
                producer_id_generation,
            }) => {
                ctx.node.producer_ids.assign(producer_id_generation);
                tracing::info!(
                    node_id = registration.node_id,
                    waited_ms = began.elapsed().as_millis() as u64,
                    "registered with the metadata quorum"
                );
                return Ok(());
            }
            Ok(other) => return Err(format!("registration answered {other:?}")),
            Err(error) => {
                if said.is_none_or(|t| t.elapsed() >= WAITING_LOG_EVERY) {
                    tracing::info!(reason = %error.message, "waiting for the metadata quorum");
                    said = Some(Instant::now());
                }
                glommio::timer::sleep(REGISTER_RETRY).await;
            }
        }
    }
}
