//! `odradek cluster describe`: the cluster as a client sees it (Metadata): its id, its
//! controller and its brokers with their addresses and racks.

use serde_json::json;

use super::client::Cluster;
use super::table::Table;
use super::{CliError, Common};

#[derive(clap::Subcommand, Debug)]
pub enum ClusterAction {
    /// The cluster id, the controller and every broker (id, host, port, rack).
    Describe,
}

pub fn run(common: &Common, action: ClusterAction) -> Result<(), CliError> {
    let mut cluster = common.connect()?;
    match action {
        ClusterAction::Describe => describe(common, &mut cluster),
    }
}

fn describe(common: &Common, cluster: &mut Cluster) -> Result<(), CliError> {
    // No topics asked: the answer is the brokers and the cluster alone.
    let metadata = cluster.metadata(Some(&[]))?;
    let cluster_id = metadata.cluster_id.as_ref().map(|id| id.to_string());
    let controller = metadata.controller_id.0;
    let mut brokers: Vec<(i32, String, i32, Option<String>)> = metadata
        .brokers
        .iter()
        .map(|b| {
            let rack = b.rack.as_ref().map(|r| r.to_string());
            (b.node_id.0, b.host.to_string(), b.port, rack)
        })
        .collect();
    brokers.sort();
    let json = json!({
        "cluster_id": cluster_id,
        "controller_id": (controller >= 0).then_some(controller),
        "brokers": brokers
            .iter()
            .map(|(id, host, port, rack)| json!({
                "node_id": id, "host": host, "port": port, "rack": rack,
            }))
            .collect::<Vec<_>>(),
    });
    common.emit(json, || {
        let mut text = format!(
            "cluster {}, controller {}\n",
            cluster_id.as_deref().unwrap_or("(not reported)"),
            match controller >= 0 {
                true => controller.to_string(),
                false => "(none)".into(),
            }
        );
        let mut table = Table::new(&["BROKER", "HOST", "PORT", "RACK"]);
        for (id, host, port, rack) in &brokers {
            let rack = rack.clone().unwrap_or_else(|| "-".into());
            table.row(vec![id.to_string(), host.clone(), port.to_string(), rack]);
        }
        text.push_str(&table.render());
        text
    });
    Ok(())
}
