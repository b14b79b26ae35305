//! `odradek-bench`: an end-to-end load generator for any Kafka-compatible cluster.
//!
//! It speaks the Kafka protocol through the workspace's one codec (`kafka-protocol`, as wrapped
//! by `odradek-net`), except on the producers' hot path ([`wire`]), with its own client on
//! glommio: one executor per core it is given, a connection per producer and leader, pipelined
//! produce requests, long-polling consumers.
//!
//! Layout:
//! - [`args`]: the command line, checked into a [`args::Workload`].
//! - [`client`]: connect, encode a request, read and decode a response, all with timeouts.
//! - [`bootstrap`]: ApiVersions, Metadata, CreateTopics, ListOffsets.
//! - [`keys`]: message keys and partitions (sticky without keys).
//! - [`producer`]: batching, pipelining, fixed-rate scheduling without coordinated omission.
//! - [`wire`]: record batches and produce requests written in place (checked against the codec).
//! - [`pacing`]: when a fixed-rate producer's messages are due and when it must next send.
//! - [`consumer`]: fetching assigned partitions, end-to-end latency, sequence checks.
//! - [`payload`]: the header at the front of every message value.
//! - [`preflight`]: io_uring and locked-memory checks before glommio starts.
//! - [`stats`]: counters and histograms per executor.
//! - [`run`]: executors and the progress loop.
//! - [`report`]: progress lines, the summary, JSON, the --verify verdict.
//! - [`html`]: the --html page with inline SVG charts.

mod args;
mod bootstrap;
mod client;
mod consumer;
mod error;
mod html;
mod keys;
mod pacing;
mod payload;
mod preflight;
mod producer;
mod report;
mod run;
mod stats;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use crate::error::BenchError;

fn main() -> ExitCode {
    let argv = match args::expand_workload(std::env::args().collect()) {
        Ok(argv) => argv,
        Err(error) => {
            eprintln!("odradek-bench: {error}");
            return ExitCode::from(2);
        }
    };
    let cli = match args::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            // One line: clap's first, without the usage block that follows it.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            eprintln!(
                "odradek-bench: {} (see --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("odradek-bench: {error}");
            match error {
                BenchError::Usage(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(cli: args::Cli) -> Result<bool, BenchError> {
    let workload = cli.into_workload()?;
    preflight::check()?;
    let (json, html) = (workload.json.clone(), workload.html.clone());
    let report = run::run(workload)?;
    report.print();
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| BenchError::Output {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        write_output(&path, text + "\n")?;
    }
    if let Some(path) = html {
        write_output(&path, html::render(&report))?;
    }
    Ok(report.succeeded())
}

fn write_output(path: &std::path::Path, text: String) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|e| BenchError::Output {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}
