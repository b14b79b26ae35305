//! The storage engine seen through the broker: retention by size and by time (and none for a
//! compact-only topic), the active segment's O_DIRECT and O_DIRECT|O_DSYNC descriptors, and
//! indexes rebuilt after they are lost.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    assign_all, consume_exactly, consumer, create_topic, dir_size_bytes, flush, now_ms, producer,
    send, watermarks, Broker,
};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};

const MIB: u64 = 1024 * 1024;
/// O_DIRECT on x86_64 and most other Linux architectures (asm-generic); arm64 uses 0o200000.
#[cfg(target_arch = "aarch64")]
const O_DIRECT: u64 = 0o200000;
#[cfg(not(target_arch = "aarch64"))]
const O_DIRECT: u64 = 0o40000;
/// O_DSYNC (x86_64, arm64 and asm-generic alike).
const O_DSYNC: u64 = 0o10000;

/// 1 KiB of bytes that do not compress, distinct per record.
fn kib_value(id: usize) -> Vec<u8> {
    let mut state = (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn given_topic_with_small_segments_and_retention_bytes_when_24_mib_produced_should_delete_old_segments_and_keep_high_watermark(
) {
    let broker = Broker::start_with(&[("log.retention.check.interval.ms", "1000")]);
    let topic = "retained";
    create_topic(
        &broker.bootstrap(),
        topic,
        1,
        &[("segment.bytes", "1048576"), ("retention.bytes", "4194304")],
    );

    let records = 24 * 1024; // 24 MiB of values
    let offset_of: HashMap<i64, usize> =
        produce_kib_records(&broker, topic, 0..records, |_| now_ms())
            .into_iter()
            .map(|(id, offset)| (offset, id))
            .collect();

    let reader = consumer(&broker.bootstrap(), &[]);
    let (_, high) = watermarks(&reader, topic, 0);
    assert_eq!(high, records as i64, "high watermark after producing");

    // Retention runs every second; give it a bounded while to catch up.
    let partition_dir = broker.partition_dir(topic, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut low, mut size) = (0, (u64::MAX, u64::MAX));
    while Instant::now() < deadline {
        low = watermarks(&reader, topic, 0).0;
        size = dir_size_bytes(&partition_dir);
        if low > 0 && size.0 < 12 * MIB && size.1 < 12 * MIB {
            break;
        }
        thread::sleep(Duration::from_millis(500));
    }
    let (low_now, high_now) = watermarks(&reader, topic, 0);
    eprintln!(
        "after retention: offsets {low_now}..{high_now}, {} bytes ({} allocated) in {:?}",
        size.0,
        size.1,
        common::segment_files(&partition_dir)
    );
    assert_eq!(high_now, high, "retention must not move the high watermark");
    assert!(
        low > 0 && low_now >= low,
        "the log start offset must move above 0 (is {low_now})"
    );
    assert!(
        size.0 < 12 * MIB && size.1 < 12 * MIB,
        "{} holds {} bytes ({} allocated), want well under 12 MiB; files: {:?}",
        partition_dir.display(),
        size.0,
        size.1,
        common::segment_files(&partition_dir)
    );
    // retention.bytes is a floor of what stays: at least 4 MiB of the newest records remain.
    assert!(
        (high_now - low_now) as u64 * 1024 >= 4 * MIB - MIB,
        "retention deleted too much: only offsets {low_now}..{high_now} remain"
    );

    // Consuming from the beginning starts at the new log start offset, with the right record.
    assign_all(&reader, topic, 1, Offset::Beginning);
    let first = consume_exactly(&reader, 1, Duration::from_secs(30));
    assert_eq!(
        first[0].offset(),
        low_now,
        "the first record served is the log start offset"
    );
    let id = offset_of[&low_now];
    assert_eq!(
        first[0].payload(),
        Some(&kib_value(id)[..]),
        "record at the log start offset"
    );
}

/// Open descriptors of `pid` that point at a `.log` file under `dir`: (path, flags from fdinfo).
fn open_log_descriptors(pid: u32, dir: &Path) -> Vec<(PathBuf, u64)> {
    let dir = dir.canonicalize().expect("canonical data directory");
    let mut found = Vec::new();
    let fd_dir = format!("/proc/{pid}/fd");
    for entry in std::fs::read_dir(&fd_dir).unwrap_or_else(|e| panic!("read {fd_dir}: {e}")) {
        let entry = entry.expect("fd entry");
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.starts_with(&dir) || target.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let fd = entry.file_name().to_string_lossy().to_string();
        let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
            continue;
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|v| u64::from_str_radix(v.trim(), 8).expect("octal flags in fdinfo"))
            .unwrap_or_else(|| panic!("no flags line in fdinfo of fd {fd}: {info}"));
        found.push((target, flags));
    }
    found
}

#[test]
fn given_no_tail_cache_when_a_consumer_reads_24_mib_from_the_start_should_get_every_record_from_the_files(
) {
    // Every fetch goes to the segment files: 4 MiB read windows, the next one read ahead.
    let broker = Broker::start_with(&[("odradek.tail.cache.bytes", "0")]);
    let topic = "cold";
    create_topic(
        &broker.bootstrap(),
        topic,
        1,
        &[("segment.bytes", "16777216")],
    );
    let records = 24 * 1024;
    let id_at: HashMap<i64, usize> = produce_kib_records(&broker, topic, 0..records, |_| now_ms())
        .into_iter()
        .map(|(id, offset)| (offset, id))
        .collect();

    let reader = consumer(
        &broker.bootstrap(),
        &[
            ("fetch.max.bytes", "1048576"),
            ("max.partition.fetch.bytes", "262144"),
        ],
    );
    assign_all(&reader, topic, 1, Offset::Beginning);
    let messages = consume_exactly(&reader, records, Duration::from_secs(120));
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m.offset(), i as i64, "records in offset order");
        let id = id_at[&m.offset()];
        assert!(
            m.payload() == Some(&kib_value(id)[..]),
            "the value at offset {i} is record {id}'s"
        );
    }
}

#[test]
fn given_records_appended_when_inspecting_the_open_segment_descriptors_should_carry_o_direct_and_o_dsync(
) {
    let broker = Broker::start();
    let topic = "direct";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    let (producer, log) = producer(&broker.bootstrap(), &[]);
    for id in 0..200 {
        let value = kib_value(id);
        // Keyed: compacted topics refuse records without a key.
        let key = format!("key-{id}");
        send(
            &producer,
            BaseRecord::with_opaque_to(topic, id)
                .partition(0)
                .key(&key)
                .payload(&value),
        )
        .expect("queue");
    }
    flush(&producer);
    assert_eq!(log.acked_count(), 200, "failed: {:?}", log.failed());

    let partition_dir = broker
        .partition_dir(topic, 0)
        .canonicalize()
        .expect("partition directory");
    let active = common::segment_files(&partition_dir)
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no segment in {}", partition_dir.display()));
    let descriptors = open_log_descriptors(broker.pid(), &broker.data_dir());
    eprintln!("open .log descriptors: {descriptors:?}");
    let on_active: Vec<&(PathBuf, u64)> =
        descriptors.iter().filter(|(p, _)| *p == active).collect();
    assert!(
        !on_active.is_empty(),
        "no open descriptor on the active segment {}; .log descriptors: {descriptors:?}",
        active.display()
    );
    let flags: Vec<String> = on_active.iter().map(|(_, f)| format!("{f:o}")).collect();
    assert!(
        on_active
            .iter()
            .any(|(_, f)| f & O_DIRECT != 0 && f & O_DSYNC == 0),
        "no plain O_DIRECT descriptor of the active segment {}; flags: {flags:?}",
        active.display(),
    );
    // The one acks=all appends are written through.
    assert!(
        on_active
            .iter()
            .any(|(_, f)| f & O_DIRECT != 0 && f & O_DSYNC != 0),
        "no O_DIRECT|O_DSYNC descriptor of the active segment {}; flags: {flags:?}",
        active.display(),
    );
}

/// Produces `count` keyed 1 KiB records to partition 0, record `id` stamped `timestamp_of(id)`;
/// returns the offset of each id.
fn produce_kib_records(
    broker: &Broker,
    topic: &str,
    ids: std::ops::Range<usize>,
    timestamp_of: impl Fn(usize) -> i64,
) -> HashMap<usize, i64> {
    let (producer, log) = producer(
        &broker.bootstrap(),
        &[("linger.ms", "5"), ("compression.type", "none")],
    );
    for id in ids.clone() {
        let value = kib_value(id);
        // Keyed: compacted topics refuse records without a key.
        let key = format!("key-{id}");
        send(
            &producer,
            BaseRecord::with_opaque_to(topic, id)
                .partition(0)
                .key(&key)
                .payload(&value)
                .timestamp(timestamp_of(id)),
        )
        .expect("queue");
    }
    flush(&producer);
    assert!(log.failed().is_empty(), "failed: {:?}", &log.failed()[..1]);
    assert_eq!(log.acked_count(), ids.len());
    log.acked().iter().map(|a| (a.id, a.offset)).collect()
}

#[test]
fn given_records_older_than_retention_ms_when_retention_runs_should_delete_their_closed_segments() {
    let broker = Broker::start_with(&[("log.retention.check.interval.ms", "1000")]);
    let topic = "aged";
    let settings = [("segment.bytes", "1048576"), ("retention.ms", "3600000")];
    create_topic(&broker.bootstrap(), topic, 1, &settings);
    // The same settings under a compact-only policy: nothing goes by age.
    let kept = "aged-compacted";
    create_topic(
        &broker.bootstrap(),
        kept,
        1,
        &[settings[0], settings[1], ("cleanup.policy", "compact")],
    );
    // 4 MiB stamped in 2020, far beyond an hour old, then 2 MiB stamped now.
    let old_ms = 1_577_836_800_000; // 2020-01-01
    let now_ms = now_ms();
    produce_kib_records(&broker, kept, 0..4096, |_| old_ms);
    produce_kib_records(&broker, kept, 4096..4100, |_| now_ms);
    let old = produce_kib_records(&broker, topic, 0..4096, |_| old_ms);
    let new = produce_kib_records(&broker, topic, 4096..6144, |_| now_ms);
    let first_new = new[&4096];
    assert_eq!(first_new, 4096);
    assert_eq!(old.len(), 4096);

    let reader = consumer(&broker.bootstrap(), &[]);
    // Segments wholly older than an hour go; the one holding the first new record stays.
    let deadline = Instant::now() + Duration::from_secs(60);
    while watermarks(&reader, topic, 0).0 <= 3000 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(500));
    }
    let (low, high) = watermarks(&reader, topic, 0);
    eprintln!("after time retention: offsets {low}..{high}");
    assert!(
        low > 3000,
        "old segments were not deleted: log start offset {low}"
    );
    assert!(
        low <= first_new,
        "a segment with fresh records was deleted: log start {low}"
    );
    assert_eq!(high, 6144, "retention must not move the high watermark");
    // Two more retention passes of every shard: the compact-only topic keeps all it has.
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        watermarks(&reader, kept, 0),
        (0, 4100),
        "a compact-only topic lost segments to time retention"
    );
}

#[test]
fn given_index_files_deleted_while_broker_down_when_restarted_should_rebuild_them_and_serve_lookups(
) {
    let mut broker = Broker::start();
    let topic = "reindexed";
    create_topic(
        &broker.bootstrap(),
        topic,
        1,
        &[("segment.bytes", "1048576")],
    );
    // 3 MiB over several segments; record id is stamped BASE + id seconds.
    const BASE_MS: i64 = 1_704_067_200_000;
    let offsets = produce_kib_records(&broker, topic, 0..3000, |id| BASE_MS + id as i64 * 1000);
    broker.stop();

    let partition_dir = broker.partition_dir(topic, 0);
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(&partition_dir).expect("read the partition directory") {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.ends_with(".index") || name.ends_with(".timeindex") || name.contains("clean") {
            std::fs::remove_file(&path).expect("remove an index file");
            removed.push(name);
        }
    }
    assert!(
        removed.iter().any(|n| n.ends_with(".index"))
            && removed.iter().any(|n| n.ends_with(".timeindex")),
        "expected offset and time indexes in {}, found to remove: {removed:?}",
        partition_dir.display()
    );
    assert!(
        common::segment_files(&partition_dir).len() >= 3,
        "several segments"
    );

    broker.restart();
    let reader = consumer(&broker.bootstrap(), &[]);
    assert_eq!(watermarks(&reader, topic, 0), (0, 3000));

    // Lookups by time land on the right records in every segment.
    for id in [0usize, 1, 999, 1500, 2222, 2999] {
        let mut query = TopicPartitionList::new();
        query
            .add_partition_offset(topic, 0, Offset::Offset(BASE_MS + id as i64 * 1000 - 500))
            .expect("add partition");
        let answer = reader
            .offsets_for_times(query, common::CLIENT_TIMEOUT)
            .expect("offsets_for_times");
        let element = answer.find_partition(topic, 0).expect("partition 0");
        assert_eq!(
            element.offset(),
            Offset::Offset(offsets[&id]),
            "offset for record {id}'s time"
        );
    }

    // Reads from the middle of every segment start at the right record.
    for id in [700usize, 1700, 2700] {
        let from = consumer(&broker.bootstrap(), &[]);
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, 0, Offset::Offset(offsets[&id]))
            .expect("add partition");
        from.assign(&list).expect("assign");
        let got = consume_exactly(&from, 1, Duration::from_secs(30));
        assert_eq!(got[0].offset(), offsets[&id]);
        assert_eq!(
            got[0].payload(),
            Some(&kib_value(id)[..]),
            "record {id} after reindexing"
        );
    }
}
