//! A data directory of the single-node broker from before the metadata log: its topic registry
//! (`topics.registry`) is imported into the metadata log at the first start, once; the topics
//! keep their ids and configs, and a later change (a deletion) is not undone by the old file.

mod common;

use std::path::Path;

use rdkafka::producer::BaseRecord;
use rdkafka::Offset;

use common::*;

const TOPIC_ID: &str = "5b6a3c1e-2f4d-4b8a-9c0e-7d1f2a3b4c5d";

/// The registry file as the single-node broker wrote it: a CRC32C line, then the JSON.
fn write_registry(dir: &Path) {
    let configs = r#"{"retention.ms":"3600000"}"#;
    let topic =
        format!(r#"{{"name":"legacy","id":"{TOPIC_ID}","partitions":2,"configs":{configs}}}"#);
    let json =
        format!(r#"{{"cluster_id":"old-single-node","topics":[{topic}],"broker_configs":{{}}}}"#);
    let text = format!("crc32c={:08x}\n{json}", crc32c::crc32c(json.as_bytes()));
    std::fs::write(dir.join("topics.registry"), text).expect("write the registry");
}

#[test]
fn given_a_single_node_registry_when_started_should_import_it_once() {
    let mut broker = Broker::start_after(&[], write_registry);
    let bootstrap = broker.bootstrap();
    wait_for_topic(&bootstrap, "legacy", 2);
    let configs = describe_topic_configs(&bootstrap, "legacy");
    assert_eq!(
        configs.get("retention.ms"),
        Some(&Some("3600000".to_string()))
    );
    assert_eq!(
        describe_cluster(broker.addr()).cluster_id.to_string(),
        "old-single-node"
    );
    let (producer, log) = producer(&bootstrap, &[]);
    for partition in 0..2 {
        let record = BaseRecord::<str, str, usize>::with_opaque_to("legacy", 0)
            .partition(partition)
            .payload("kept");
        send(&producer, record).expect("queued");
    }
    flush(&producer);
    assert_eq!(log.acked_count(), 2, "{:?}", log.failed());

    broker.stop();
    broker.restart();
    let bootstrap = broker.bootstrap();
    wait_for_topic(&bootstrap, "legacy", 2);
    let consumer = consumer(&bootstrap, &[]);
    assign_all(&consumer, "legacy", 2, Offset::Beginning);
    assert_eq!(consume_exactly(&consumer, 2, CLIENT_TIMEOUT).len(), 2);
    drop(consumer);

    let admin = admin(&bootstrap);
    let deleted = block_on(admin.delete_topics(&["legacy"], &admin_options())).expect("delete");
    assert!(deleted[0].is_ok(), "{deleted:?}");
    broker.stop();
    assert!(
        broker.data_dir().join("topics.registry").exists(),
        "left as it was"
    );
    broker.restart();
    let names = topic_names(&broker.bootstrap());
    assert!(
        !names.iter().any(|n| n == "legacy"),
        "not imported again: {names:?}"
    );
}
