//! `odradek`: a Kafka-wire-compatible broker, thread-per-core on io_uring.
//!
//! Layout:
//! - [`settings`]: the one table of settings (Kafka's broker and topic names, types, defaults,
//!   bounds, docs), which declares [`config::BrokerConfig`]; [`config`]: its sources (file,
//!   `--set`, flags, run-time overrides).
//! - [`preflight`], [`data_dir`], [`signals`], [`server`]: process start (host checks, the data
//!   directory checked and locked), stop signals, one executor per shard.
//! - [`shard_main`]: one shard's life (bind, mesh, partitions, accept, retention, stop).
//! - [`shard`]: [`shard::ShardCtx`], what every handler gets.
//! - [`router`], [`shard_msg`]: cross-shard calls over the channel mesh.
//! - [`data_path`], [`partition_ops`]: Produce, Fetch, ListOffsets and DeleteRecords as typed
//!   operations sent to the shards owning the partitions, and what an owner does with them;
//!   [`fetch_session`]: the fetch sessions (KIP-227) of a shard's connections.
//! - [`ids`]: typed ids and `shard_for`.
//! - [`metadata`], [`control`], [`topic_config`]: the cluster's metadata: the snapshot every
//!   shard reads, the control plane on shard 0 (proposals to the quorum, and the applier that
//!   turns the applied log into logs and snapshots), topic configs; [`registry`]: the single
//!   node's topic file from before the metadata log (imported once; it keeps the cluster id);
//!   [`meta_properties`]: the cluster and node a data directory belongs to (`odradek format`).
//! - [`handlers`]: one file per Kafka API and the one table of them; [`service`] plugs it into
//!   `odradek-net`'s connection loop; [`session`]: the connection's session and the request
//!   context every handler receives.
//! - [`quorum`]: the metadata quorum: raft-rs driven on shard 0, its log, hard state and
//!   snapshots on disk, the metadata image and its commands, the controller listener.
//! - [`producer_ids`]: idempotent producers' ids, unique across brokers and restarts.
//! - [`durable_file`]: small files replaced whole and crash-safely (`meta.properties`, the
//!   registry, the quorum's state and snapshot).
//! - [`retention`]: the per-shard retention timer (and idle producers' expiry).
//! - [`group`]: consumer groups and committed offsets (the group coordinator).
//! - [`cli`]: the admin subcommands (`odradek topic …`, `odradek group …`), blocking Kafka
//!   clients.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches};

/// Hostile length prefixes make the codec reserve what they declare; see `guard_alloc`.
#[global_allocator]
static ALLOCATOR: odradek_net::guard_alloc::GuardedAlloc = odradek_net::guard_alloc::GuardedAlloc;

mod cli;
mod config;
mod control;
mod data_dir;
mod data_path;
mod durable_file;
mod fetch_session;
mod group;
mod handlers;
mod ids;
mod meta_properties;
mod metadata;
mod partition_ops;
mod preflight;
mod producer_ids;
mod quorum;
mod registry;
mod replication;
mod retention;
mod router;
mod server;
#[cfg(test)]
mod server_tests;
mod service;
mod session;
mod settings;
mod shard;
mod shard_main;
mod shard_msg;
mod signals;
mod topic_config;

use config::{BrokerConfig, ConfigError};

/// A Kafka-wire-compatible broker, thread-per-core on io_uring.
///
/// Settings use Kafka's names (num.partitions, log.retention.ms, auto.create.topics.enable, …);
/// README lists them. Later sources win: defaults, --config, --set, then the flags below.
/// With a subcommand (`topic`, `group`), odradek is instead an admin client of a running broker;
/// `format` prepares a data directory for a cluster.
#[derive(clap::Parser, Debug)]
#[command(name = "odradek", version, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Admin commands; without one, odradek runs the broker.
    #[command(subcommand)]
    command: Option<Command>,
    /// Address every shard accepts Kafka connections on (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Address given to clients in Metadata (default: the listen address with the bound port).
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Data directory (Kafka's log.dirs).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Number of shards, one per CPU (default: every available CPU).
    #[arg(long, value_name = "N")]
    cores: Option<usize>,
    /// A Kafka server.properties file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// One setting, e.g. --set num.partitions=6 (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Admin(cli::Command),
    /// Formats a data directory for a cluster (Kafka's `kafka-storage.sh format`): writes its
    /// meta.properties, the cluster and node it belongs to, checked at every start. A single
    /// node formats itself at its first start; do it before the first start of a cluster's nodes,
    /// with one cluster id for all of them.
    Format(FormatArgs),
}

#[derive(clap::Args, Debug)]
struct FormatArgs {
    /// The cluster's id, the same on every node: 1 to 64 letters, digits, '-' or '_'.
    #[arg(long, value_name = "ID")]
    cluster_id: String,
    /// Succeed, changing nothing, where the directory is already formatted exactly so.
    #[arg(long)]
    ignore_formatted: bool,
    /// The data directory (else log.dirs from --config and --set).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The server.properties the node will run with (for log.dirs and node.id).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// One setting, e.g. --set node.id=2 (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

fn main() -> ExitCode {
    let mut cli = parse_cli();
    match cli.command.take() {
        // An admin command is a plain blocking client: no executors, no preflight, no signals.
        Some(Command::Admin(command)) => return cli::run(command),
        Some(Command::Format(args)) => return format(&args),
        None => {}
    }
    init_logging();
    exit_on_panic();
    // Before any thread starts, so that only the signal thread receives SIGTERM and SIGINT.
    let signal_set = match signals::block_stop_signals() {
        Ok(set) => set,
        Err(error) => return fail(format!("cannot block stop signals: {error}")),
    };
    let (config, cores) = match build_config(&cli) {
        Ok(config) => config,
        Err(error) => return fail(error.to_string()),
    };
    if let Err(error) = preflight::check() {
        return fail(error.to_string());
    }
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(error) = signals::spawn_signal_thread(signal_set, Arc::clone(&stop)) {
        return fail(format!("cannot start the signal thread: {error}"));
    }
    match server::run(config, cores, stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error.to_string()),
    }
}

fn fail(message: String) -> ExitCode {
    // Plain stderr, not tracing: a failed start must be readable whatever RUST_LOG says.
    eprintln!("odradek: {message}");
    ExitCode::FAILURE
}

/// A panic is a bug: a shard that died would leave the others serving a broker with holes in
/// it, so the whole process exits (the logs recover on restart like after a crash).
fn exit_on_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("odradek: a shard panicked (a bug); exiting");
        std::process::exit(101);
    }));
}

/// The command line's parser; `--help` also lists every setting from the settings table.
fn command() -> clap::Command {
    Cli::command().after_long_help(settings::help())
}

fn parse_cli() -> Cli {
    let matches = command().get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The "listening" line is how scripts learn the port: never filtered out.
    let filter = match "odradek::ready=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// Applies the config sources in order; an error names the bad setting.
/// The defaults, then `file`, then `sets`.
fn settings_from(file: Option<&PathBuf>, sets: &[String]) -> Result<BrokerConfig, ConfigError> {
    let mut config = BrokerConfig::default();
    if let Some(path) = file {
        config.apply_file(path)?;
    }
    for assignment in sets {
        config.apply_set(assignment)?;
    }
    Ok(config)
}

fn build_config(cli: &Cli) -> Result<(BrokerConfig, Option<usize>), ConfigError> {
    let mut config = settings_from(cli.config.as_ref(), &cli.set)?;
    if let Some(listen) = &cli.listen {
        config.set_client_listener(config::listener_flag("--listen", listen)?);
    }
    if let Some(advertise) = &cli.advertise {
        config.set_advertised_listener(config::listener_flag("--advertise", advertise)?);
    }
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if cli.cores == Some(0) {
        return Err(ConfigError::NoCores);
    }
    config.finish()?;
    Ok((config, cli.cores))
}

/// `odradek format`.
fn format(args: &FormatArgs) -> ExitCode {
    let mut config = match settings_from(args.config.as_ref(), &args.set) {
        Ok(config) => config,
        Err(error) => return fail(error.to_string()),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir.clone_from(dir);
    }
    if let Err(error) = config.finish() {
        return fail(error.to_string());
    }
    match format_data_dir(&config, &args.cluster_id, args.ignore_formatted) {
        Ok((dir, true)) => {
            println!(
                "formatted {} for cluster {} as node {}",
                dir.display(),
                args.cluster_id,
                config.node_id
            );
            ExitCode::SUCCESS
        }
        Ok((dir, false)) => {
            println!("{} is already formatted so; nothing changed", dir.display());
            ExitCode::SUCCESS
        }
        Err(message) => fail(message),
    }
}

/// Formats the configured data directory (locked meanwhile, so not under a running broker);
/// the directory, and whether anything was written.
fn format_data_dir(
    config: &BrokerConfig,
    cluster_id: &str,
    ignore_formatted: bool,
) -> Result<(PathBuf, bool), String> {
    let cluster_id = meta_properties::cluster_id(cluster_id).map_err(|e| e.to_string())?;
    let dir = data_dir::prepare(&config.data_dir).map_err(|e| e.to_string())?;
    let found = match registry::path_in(&dir.path).exists() {
        true => Some(
            registry::load(&dir.path)
                .map_err(|e| e.to_string())?
                .cluster_id,
        ),
        false => None,
    };
    let meta = meta_properties::MetaProperties {
        cluster_id,
        node_id: ids::NodeId(config.node_id),
    };
    let written = meta_properties::format(&dir.path, &meta, found.as_deref(), ignore_formatted)
        .map_err(|e| e.to_string())?;
    Ok((dir.path.clone(), written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_help_lists_every_setting_with_its_default() {
        let help = command().render_long_help().to_string();
        for setting in settings::SETTINGS {
            let name = match setting.topic_name {
                Some(topic_name) if !setting.is_broker_setting() => topic_name,
                _ => setting.name,
            };
            let default = setting.default_value();
            let default = if default.is_empty() {
                "(unset)".into()
            } else {
                default
            };
            let entry = format!("  {name} = {default}");
            assert!(help.contains(&entry), "--help lacks `{entry}`:\n{help}");
            assert!(help.contains(setting.doc), "--help lacks the doc of {name}");
            for unit in setting.units {
                assert!(
                    help.contains(&format!("  {} = ", unit.name)),
                    "{}",
                    unit.name
                );
            }
        }
    }
}
