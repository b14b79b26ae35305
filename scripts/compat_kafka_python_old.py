"""kafka-python (PyPI) pinned to old broker versions against a running odradek: the request
versions older than the codec (CreateTopics v0, DeleteTopics v0, DescribeConfigs v0,
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

    wanted = {
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
