//! The process: pick CPUs, load the registry, start one pinned executor per shard, print the
//! listening line once every shard is ready, and wait for them to stop.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use glommio::{CpuSet, LocalExecutorBuilder, Placement};

use crate::config::BrokerConfig;
use crate::ids::{NodeId, ShardId};
use crate::registry::{self, RegistryError};
use crate::router;
use crate::settings::ProcessRoles;
use crate::shard_main::{self, Shared, StartEvent};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot list the CPUs: {0}")]
    Cpus(String),
    #[error("--cores {wanted} but only {available} CPUs are available")]
    TooManyCores { wanted: usize, available: usize },
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Meta(#[from] crate::meta_properties::MetaError),
    #[error(transparent)]
    Quorum(#[from] crate::quorum::boot::BootError),
    #[error("cannot reserve producer ids: {0}")]
    ProducerIds(#[from] crate::producer_ids::ProducerIdError),
    #[error("the registry's run-time broker settings are invalid: {0}")]
    StoredBrokerConfig(String),
    #[error("cannot start shard {shard}: {reason}")]
    Shard { shard: usize, reason: String },
    #[error("shard {shard} stopped abnormally")]
    ShardPanicked { shard: usize },
    #[error(
        "a partition log failed (the error is logged above) and odradek stopped, as Kafka does \
         when its only log directory fails; acknowledged records are safe: fix the device and \
         start again (recovery checks every log's tail)"
    )]
    LogFailed,
}

/// The CPUs this process may run on, in order.
fn available_cpus() -> Result<Vec<usize>, StartError> {
    let online = CpuSet::online().map_err(|e| StartError::Cpus(e.to_string()))?;
    let mut cpus: Vec<usize> = online.iter().map(|l| l.cpu).collect();
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Runs the broker until every shard has stopped.
pub fn run(
    config: BrokerConfig,
    cores: Option<usize>,
    stop: Arc<AtomicBool>,
) -> Result<(), StartError> {
    run_with(config, cores, stop, |_port| {})
}

/// [`run`], calling `on_ready` with the bound port once every shard serves.
pub fn run_with(
    mut config: BrokerConfig,
    cores: Option<usize>,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(u16),
) -> Result<(), StartError> {
    let cpus = available_cpus()?;
    let shard_count = cores.unwrap_or(cpus.len()).max(1);
    if shard_count > cpus.len() {
        return Err(StartError::TooManyCores {
            wanted: shard_count,
            available: cpus.len(),
        });
    }
    let data_dir = crate::data_dir::prepare(&config.data_dir)?;
    config.data_dir.clone_from(&data_dir.path);
    let registry = load_registry(&config)?;
    let producer_id_floor = crate::producer_ids::ProducerIds::floor_blocking(&config.data_dir)?;
    let boot = crate::quorum::boot::open_blocking(
        &config.data_dir,
        config.node_id,
        &config.controller_quorum_voters,
        &registry,
    )?;
    remove_orphans(&config, &boot.image)?;
    let effective = config
        .with_dynamic(&boot.image.broker_configs)
        .map_err(|e| StartError::StoredBrokerConfig(e.to_string()))?;
    let failed = Arc::new(AtomicBool::new(false));
    let handed_over = Arc::new(AtomicBool::new(false));
    let quorum = crate::quorum::start::QuorumStart {
        boot,
        stop: Arc::clone(&stop),
        failed: Arc::clone(&failed),
        producer_id_floor,
        handed_over: Arc::clone(&handed_over),
    };
    let shared = Arc::new(Shared {
        config: Arc::new(config),
        cluster_id: registry.cluster_id.clone(),
        initial_image: Arc::new(quorum.boot.image.clone()),
        quorum: std::sync::Mutex::new(Some(quorum)),
        effective_config: Arc::new(effective),
        shard_count,
        stop,
        drained: Arc::new(AtomicUsize::new(0)),
        closed: Arc::new(AtomicUsize::new(0)),
        serving: Arc::new(AtomicBool::new(false)),
        log_failed: failed,
        handed_over,
        node: Arc::default(),
    });
    let mesh = (shard_count > 1).then(|| router::new_mesh(shard_count));
    let (events_tx, events) = mpsc::channel();
    let mut handles = Vec::with_capacity(shard_count);
    let mut port = shared.config.listen.port;
    for (shard, &cpu) in cpus.iter().take(shard_count).enumerate() {
        let (shared, events_tx, mesh) = (Arc::clone(&shared), events_tx.clone(), mesh.clone());
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("odradek-shard-{shard}"))
            .spawn(move || shard_main::run(ShardId(shard), port, shared, mesh, events_tx))
            .map_err(|e| StartError::Shard {
                shard,
                reason: e.to_string(),
            })?;
        handles.push(handle);
        // One shard at a time: shard 0 finds the port, and mesh peer ids follow shard order.
        port = wait_bound(&events, shard)?;
    }
    drop(events_tx);
    if let Err(error) = wait_ready(&events, shard_count) {
        // The shards that did start stop instead of serving a broker that failed to start.
        shared.stop.store(true, Ordering::SeqCst);
        return Err(error);
    }
    shared.serving.store(true, Ordering::SeqCst);
    if shared.config.advertise.is_none()
        && matches!(shared.config.listen.host.as_str(), "0.0.0.0" | "::")
    {
        tracing::warn!(
            "listening on a wildcard address without --advertise: clients are told 127.0.0.1"
        );
    }
    let controller_only = shared.config.process_roles == ProcessRoles::Controller;
    let listen = match (&shared.config.controller_listen, controller_only) {
        (Some(controller), true) => format!("{}:{}", controller.host, controller.port),
        _ => format!("{}:{port}", shared.config.listen.host),
    };
    let role = match controller_only {
        true => " (controller only: the metadata quorum, no Kafka clients)",
        false => "",
    };
    tracing::info!(
        target: "odradek::ready",
        shards = shard_count,
        data_dir = %shared.config.data_dir.display(),
        "odradek listening on {listen}{role}"
    );
    on_ready(port);
    for (shard, handle) in handles.into_iter().enumerate() {
        handle
            .join()
            .map_err(|_| StartError::ShardPanicked { shard })?;
    }
    drop(data_dir);
    if shared.log_failed.load(Ordering::SeqCst) {
        return Err(StartError::LogFailed);
    }
    tracing::info!("odradek stopped");
    Ok(())
}

fn load_registry(config: &BrokerConfig) -> Result<registry::Registry, StartError> {
    let existed = registry::path_in(&config.data_dir).exists();
    let mut registry = registry::load(&config.data_dir)?;
    let found = existed.then(|| registry.cluster_id.clone());
    let fresh = registry.cluster_id.clone();
    let single_node = config
        .controller_quorum_voters
        .iter()
        .all(|v| v.node_id == config.node_id);
    registry.cluster_id = crate::meta_properties::check_at_start(
        &config.data_dir,
        NodeId(config.node_id),
        found.as_deref(),
        single_node,
        || fresh,
    )?;
    if !existed {
        // Persist the new cluster id at once, so it survives a restart without topics.
        registry::store_blocking(&config.data_dir, &registry::encode(&registry))?;
    }
    Ok(registry)
}

/// Removes partition directories this node does not host (a crash between a topic's deletion
/// in the metadata log and the deletion of its logs), before any shard runs.
fn remove_orphans(
    config: &BrokerConfig,
    image: &crate::quorum::image::ClusterImage,
) -> Result<(), StartError> {
    let me = config.node_id;
    registry::remove_orphans_blocking(&config.data_dir, |dir_name| {
        if dir_name == crate::quorum::METADATA_LOG_DIR {
            return None;
        }
        let (topic, partition) = dir_name.rsplit_once('-')?;
        let partition: usize = partition.parse().ok()?;
        Some(image.topics.get(topic).is_some_and(|t| {
            t.partition_states
                .get(partition)
                .is_some_and(|p| p.replicas.contains(&me))
        }))
    })?;
    tracing::info!(topics = image.topics.len(), "metadata loaded");
    Ok(())
}

fn wait_bound(events: &mpsc::Receiver<StartEvent>, shard: usize) -> Result<u16, StartError> {
    match events.recv() {
        Ok(StartEvent::Bound { port, .. }) => Ok(port),
        Ok(StartEvent::Failed { shard, reason }) => Err(StartError::Shard { shard, reason }),
        Ok(other) => Err(StartError::Shard {
            shard,
            reason: format!("unexpected {other:?}"),
        }),
        Err(_) => Err(StartError::ShardPanicked { shard }),
    }
}

fn wait_ready(events: &mpsc::Receiver<StartEvent>, shard_count: usize) -> Result<(), StartError> {
    let mut ready = 0;
    while ready < shard_count {
        match events.recv() {
            Ok(StartEvent::Ready { shard }) => {
                tracing::debug!(shard, "shard ready");
                ready += 1;
            }
            Ok(StartEvent::Failed { shard, reason }) => {
                return Err(StartError::Shard { shard, reason })
            }
            Ok(StartEvent::Bound { shard, .. }) => {
                return Err(StartError::Shard {
                    shard,
                    reason: "bound twice".into(),
                })
            }
            Err(_) => return Err(StartError::ShardPanicked { shard: ready }),
        }
    }
    Ok(())
}
