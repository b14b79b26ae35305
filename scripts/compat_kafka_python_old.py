"""kafka-python (PyPI) pinned to old broker versions against a running odradek: the request
versions older than the codec (Produce v0-2 and Fetch v1-3 with legacy message sets of magic 0
and 1, plain, gzip, snappy and lz4; CreateTopics v0, DeleteTopics v0, DescribeConfigs v0,
ListOffsets v0, OffsetCommit v0 and v1, OffsetFetch v0), served like newer ones.

    python scripts/compat_kafka_python_old.py 127.0.0.1:9092

kafka-python picks request versions from `api_version`: 0.8.1 commits and fetches offsets
with v0, 0.8.2 commits with v1, 0.8-0.10.0 list offsets with v0, 0.10.1 creates and deletes
topics with v0, 0.11 describes configs with v0. The versions really sent are read from
kafka-python's debug log and checked, so a client that stops sending them fails this run
instead of passing without testing anything. Exits 1 with a message naming the first
mismatch. Run by scripts/compat.sh.
"""

import logging
import re
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.structs import OffsetAndMetadata

TIMEOUT_MS = 20_000


class SentVersions(logging.Handler):
    """Collects (request name, version) from kafka-python's "Sending request" debug lines."""

    PATTERN = re.compile(r"Sending request \S+ (\w+)Request\(version=(\d+)")

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.sent = set()

    def emit(self, record):
        match = self.PATTERN.search(record.getMessage())
        if match:
            self.sent.add((match.group(1), int(match.group(2))))


def fail(message):
    print(f"[compat-kafka-python-old] FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def expect(what, want, got):
    if want != got:
        fail(f"{what}: want {want!r}, got {got!r}")


def log(message):
    print(f"[compat-kafka-python-old] {message}", file=sys.stderr)


def admin(bootstrap, api_version):
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        api_version=api_version,
        request_timeout_ms=TIMEOUT_MS,
    )


def consumer(bootstrap, api_version, group):
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        api_version=api_version,
        group_id=group,
        enable_auto_commit=False,
        request_timeout_ms=TIMEOUT_MS + 1000,
    )


def commit(c, tp, offset):
    # OffsetAndMetadata gained a leader_epoch field in kafka-python 2.1.
    fields = (offset, "old-client") + ((-1,) if len(OffsetAndMetadata._fields) == 3 else ())
    c.commit({tp: OffsetAndMetadata(*fields)})


# (producer api_version, compression): Produce v0 writes magic 0 (0.8.2), v1 magic 0 (0.9),
# v2 magic 1 (0.10.0). Compressed sets are wrappers; magic-0 lz4 carries the old, wrong frame
# checksum (KAFKA-3160) that kafka-python still writes for it.
PRODUCERS = [
    ((0, 8, 2), None),
    ((0, 8, 2), "gzip"),
    ((0, 9), "snappy"),
    ((0, 9), "lz4"),
    ((0, 10, 0), None),
    ((0, 10, 0), "gzip"),
    ((0, 10, 0), "snappy"),
    ((0, 10, 0), "lz4"),
]

# Consumer api_version and the Fetch version it sends: v0 and v1 (magic 0), v2 and v3 (magic 1).
CONSUMERS = [(0, 8, 2), (0, 9), (0, 10, 0), (0, 10, 1)]


def message_formats(bootstrap):
    """Legacy message sets produced by every old format and codec, read back by old consumers
    (down-converted) and by a current one (stored as record batches)."""
    topic = "compat-kp-msgset"
    admin(bootstrap, (0, 10, 1)).create_topics([NewTopic(topic, 1, 1)])
    tp = TopicPartition(topic, 0)
    sent = []
    for api_version, codec in PRODUCERS:
        name = ".".join(map(str, api_version))
        log(f"Produce with api_version {name}, compression {codec}")
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            api_version=api_version,
            compression_type=codec,
            acks=1,
            linger_ms=50,
        )
        futures = []
        for i in range(3):
            key = b"%s-%s-%d" % (name.encode(), str(codec).encode(), i)
            value = key + b" value"
            futures.append(producer.send(topic, key=key, value=value, partition=0))
            sent.append((key, value, api_version >= (0, 10, 0)))
        producer.flush(timeout=30)
        offsets = [f.get(timeout=20).offset for f in futures]
        expect(f"offsets of api_version {name} {codec}", list(range(len(sent) - 3, len(sent))), offsets)
        producer.close()

    for api_version in CONSUMERS + [None]:
        name = "current" if api_version is None else ".".join(map(str, api_version))
        log(f"Fetch everything with a {name} consumer")
        kwargs = {} if api_version is None else {"api_version": api_version}
        c = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            consumer_timeout_ms=5_000,
            request_timeout_ms=TIMEOUT_MS + 1000,
            fetch_max_bytes=1 << 20,
            **kwargs,
        )
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = []
        for record in c:
            got.append(record)
            if len(got) == len(sent):
                break
        c.close()
        expect(f"{name} consumer offsets", list(range(len(sent))), [r.offset for r in got])
        expect(f"{name} consumer keys and values", [(k, v) for k, v, _ in sent],
               [(r.key, r.value) for r in got])
        magic_0_consumer = api_version is not None and api_version < (0, 10, 0)
        for record, (key, _, stamped) in zip(got, sent):
            has_timestamp = record.timestamp is not None and record.timestamp >= 0
            if magic_0_consumer or not stamped:
                want = False
            else:
                want = True
            expect(f"{name} consumer: {key!r} carries a timestamp", want, has_timestamp)


def main(bootstrap):
    versions = SentVersions()
    kafka_log = logging.getLogger("kafka")
    kafka_log.setLevel(logging.DEBUG)
    kafka_log.addHandler(versions)
    topic, group = "compat-kp-old", "compat-kp-old-group"

    log("CreateTopics v0 (api_version 0.10.1)")
    result = admin(bootstrap, (0, 10, 1)).create_topics(
        [NewTopic(topic, 2, 1, topic_configs={"cleanup.policy": "compact"})]
    )
    expect("CreateTopics v0 result", [(topic, 0)], [
        (t["name"], t["error_code"]) for t in result["topics"]
    ])

    log("DescribeConfigs v0 (api_version 0.11)")
    described = admin(bootstrap, (0, 11)).describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)]
    )
    policy = described["topic"][topic].get("cleanup.policy", {})
    expect("cleanup.policy value", "compact", policy.get("value"))
    expect("cleanup.policy is_default", False, policy.get("is_default"))

    log("5 records with a current producer, then ListOffsets v0 (api_version 0.8.1)")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(5):
        producer.send(topic, key=b"k", value=b"record %d" % i, partition=0).get(timeout=20)
    producer.close()
    old = consumer(bootstrap, (0, 8, 1), group)
    tp = TopicPartition(topic, 0)
    expect("end offset (ListOffsets v0, latest)", {tp: 5}, old.end_offsets([tp]))
    expect("beginning offset (ListOffsets v0, earliest)", {tp: 0}, old.beginning_offsets([tp]))

    log("OffsetCommit v0 and OffsetFetch v0 (api_version 0.8.1)")
    old.assign([tp])
    commit(old, tp, 3)
    expect("offset committed with v0, fetched with v0", 3, old.committed(tp))
    old.close()

    log("OffsetCommit v1 (api_version 0.8.2) over the v0 commit")
    newer = consumer(bootstrap, (0, 8, 2), group)
    newer.assign([tp])
    commit(newer, tp, 4)
    expect("offset committed with v1, fetched with v1", 4, newer.committed(tp))
    newer.close()

    log("DeleteTopics v0 (api_version 0.10.1)")
    deleted = admin(bootstrap, (0, 10, 1)).delete_topics([topic])
    expect("DeleteTopics v0 result", [(topic, 0)], [
        (t["name"], t["error_code"]) for t in deleted["topics"]
    ])

    message_formats(bootstrap)

    wanted = {
        ("Produce", 0),
        ("Produce", 1),
        ("Produce", 2),
        ("Fetch", 0),
        ("Fetch", 1),
        ("Fetch", 2),
        ("Fetch", 3),
        ("CreateTopics", 0),
        ("DescribeConfigs", 0),
        ("ListOffsets", 0),
        ("OffsetCommit", 0),
        ("OffsetCommit", 1),
        ("OffsetFetch", 0),
        ("DeleteTopics", 0),
    }
    missing = wanted - versions.sent
    if missing:
        fail(f"kafka-python did not send {sorted(missing)} (sent {sorted(versions.sent)})")
    log(f"old versions served: {sorted(wanted)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: compat_kafka_python_old.py HOST:PORT")
    main(sys.argv[1])
