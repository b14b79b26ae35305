"""confluent-kafka (PyPI) against a running odradek: admin, produce, consume.

    python scripts/compat_confluent.py 127.0.0.1:9092

Exits 1 with a message naming the first mismatch. Run by scripts/compat.sh.
"""

import functools
import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

TOPIC = "compat-py"
PARTITIONS = 3
RECORDS = 3000
TIMEOUT_S = 30


def fail(message):
    print(f"[compat_confluent] FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def log(message):
    print(f"[compat_confluent] {message}", file=sys.stderr)


def wait_all(futures, what):
    for name, future in futures.items():
        try:
            future.result(timeout=TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - any failure is a mismatch to report
            fail(f"{what} {name}: {error}")


def topic_configs(admin, topic):
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    (future,) = futures.values()
    try:
        entries = future.result(timeout=TIMEOUT_S)
    except Exception as error:  # noqa: BLE001
        fail(f"describe_configs {topic}: {error}")
    return {name: entry.value for name, entry in entries.items()}


def admin_checks(admin):
    log(f"create topic {TOPIC} ({PARTITIONS} partitions)")
    new = NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1, config={"retention.ms": "86400000"})
    wait_all(admin.create_topics([new], operation_timeout=TIMEOUT_S), "create_topics")

    futures = admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    try:
        futures[TOPIC].result(timeout=TIMEOUT_S)
        fail("creating an existing topic succeeded")
    except KafkaException as error:
        code = error.args[0].code()
        check(code == KafkaError.TOPIC_ALREADY_EXISTS, f"duplicate create: want TOPIC_ALREADY_EXISTS, got {error}")

    deadline = time.time() + TIMEOUT_S
    while True:
        metadata = admin.list_topics(timeout=TIMEOUT_S)
        topic = metadata.topics.get(TOPIC)
        if topic is not None and topic.error is None and len(topic.partitions) == PARTITIONS:
            break
        check(time.time() < deadline, f"metadata never showed {TOPIC} with {PARTITIONS} partitions: {topic}")
        time.sleep(0.2)
    check(len(metadata.brokers) == 1, f"want one broker in metadata, got {metadata.brokers}")

    configs = topic_configs(admin, TOPIC)
    check(configs.get("retention.ms") == "86400000", f"describe_configs retention.ms: {configs.get('retention.ms')}")

    log("incremental_alter_configs retention.ms=3600000")
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        TOPIC,
        incremental_configs=[ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)],
    )
    wait_all(admin.incremental_alter_configs([resource]), "incremental_alter_configs")
    configs = topic_configs(admin, TOPIC)
    check(configs.get("retention.ms") == "3600000", f"after alter, retention.ms: {configs.get('retention.ms')}")


def produce(bootstrap):
    errors = []
    delivered = {}

    def on_delivery(seq, error, message):
        # Delivery reports carry no headers: the sequence number comes bound to the callback.
        if error is not None:
            errors.append(error)
        else:
            delivered[seq] = (message.partition(), message.offset())

    # Idempotent, as Kafka's Java producer is by default: InitProducerId, then sequenced batches.
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 5,
            "enable.idempotence": True,
        }
    )
    for i in range(RECORDS):
        producer.produce(
            TOPIC,
            key=f"key-{i % 37}",
            value=f"value-{i}".encode() * (1 + i % 5),
            headers=[("seq", str(i).encode()), ("client", b"confluent-kafka")],
            timestamp=1_700_000_000_000 + i,
            on_delivery=functools.partial(on_delivery, i),
        )
        producer.poll(0)
    left = producer.flush(60)
    check(left == 0, f"{left} records got no delivery report")
    check(not errors, f"{len(errors)} delivery errors, first: {errors[:3]}")
    check(len(delivered) == RECORDS, f"{len(delivered)} of {RECORDS} delivered")
    return delivered


def consume(bootstrap, delivered):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "compat-py",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen = {}
    last_seq_of_key = {}
    deadline = time.time() + 60
    while len(seen) < RECORDS:
        check(time.time() < deadline, f"consumed {len(seen)} of {RECORDS} within 60 s")
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            log(f"consumer error: {message.error()}")
            continue
        headers = dict(message.headers() or [])
        seq = int(headers.get("seq", b"-1"))
        check(seq >= 0, f"record without a seq header at {message.partition()}/{message.offset()}")
        check(seq not in seen, f"record {seq} consumed twice")
        seen[seq] = True
        key = f"key-{seq % 37}"
        check(message.key() == key.encode(), f"record {seq}: key {message.key()!r}")
        check(message.value() == f"value-{seq}".encode() * (1 + seq % 5), f"record {seq}: value")
        check(headers.get("client") == b"confluent-kafka", f"record {seq}: headers {headers}")
        check(message.timestamp()[1] == 1_700_000_000_000 + seq, f"record {seq}: timestamp {message.timestamp()}")
        check(
            (message.partition(), message.offset()) == delivered[seq],
            f"record {seq} at {message.partition()}/{message.offset()}, delivery said {delivered[seq]}",
        )
        previous = last_seq_of_key.get(key)
        check(previous is None or previous < seq, f"key {key}: {previous} consumed after {seq}")
        last_seq_of_key[key] = seq
    total = 0
    for partition in range(PARTITIONS):
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=TIMEOUT_S)
        check(low == 0, f"partition {partition} low watermark {low}")
        total += high
    check(total == RECORDS, f"high watermarks add up to {total}, want {RECORDS}")
    consumer.close()


def subscribe_and_commit(bootstrap):
    settings = {
        "bootstrap.servers": bootstrap,
        "group.id": "compat-py-group",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    consumer = Consumer(settings)
    consumer.subscribe([TOPIC])
    seen = set()
    deadline = time.time() + 90
    while len(seen) < RECORDS:
        check(time.time() < deadline, f"the group consumed {len(seen)} of {RECORDS} within 90 s")
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        seen.add((message.partition(), message.offset()))
    check(len(seen) == RECORDS, f"the group read {len(seen)} distinct records, want {RECORDS}")
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=TIMEOUT_S)
    consumer.close()
    total = sum(tp.offset for tp in committed)
    check(total == RECORDS, f"committed offsets add up to {total}, want {RECORDS}: {committed}")


def group_admin_checks(admin):
    group = "compat-py-group"
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    ids = [g.group_id for g in listed.valid]
    check(group in ids, f"list_consumer_groups: {group} missing from {ids}")

    described = admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group]
    description = described.result(timeout=TIMEOUT_S)
    check(description.group_id == group, f"describe_consumer_groups: {description}")
    check(str(description.state).endswith("EMPTY"), f"the closed group should be Empty: {description.state}")

    request = ConsumerGroupTopicPartitions(group, [TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
    offsets = admin.list_consumer_group_offsets([request], request_timeout=TIMEOUT_S)[group]
    partitions = offsets.result(timeout=TIMEOUT_S).topic_partitions
    total = sum(tp.offset for tp in partitions)
    check(total == RECORDS, f"list_consumer_group_offsets: offsets add up to {total}, want {RECORDS}")

    wait_all(admin.delete_consumer_groups([group], request_timeout=TIMEOUT_S), "delete_consumer_groups")
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    ids = [g.group_id for g in listed.valid]
    check(group not in ids, f"{group} still listed after delete_consumer_groups: {ids}")


def watermarks(bootstrap, partition):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compat-py-watermarks"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=TIMEOUT_S)
    finally:
        consumer.close()


def main():
    if len(sys.argv) != 2:
        fail("usage: compat_confluent.py HOST:PORT")
    bootstrap = sys.argv[1]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin_checks(admin)
    log(f"produce {RECORDS} records (lz4, acks=all, idempotent)")
    delivered = produce(bootstrap)
    log("consume them back")
    consume(bootstrap, delivered)

    log("consume them again through a subscribed consumer group, and commit")
    subscribe_and_commit(bootstrap)

    log("consumer-group admin: list, describe, list committed offsets, delete")
    group_admin_checks(admin)

    log("describe_cluster")
    try:
        cluster = admin.describe_cluster(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    except Exception as error:  # noqa: BLE001
        fail(f"describe_cluster: {error}")
    check(cluster.cluster_id, f"describe_cluster: empty cluster id: {cluster}")
    check(len(cluster.nodes) == 1, f"describe_cluster: want one node, got {cluster.nodes}")

    log("list_offsets: earliest, latest, max timestamp")
    partition0 = TopicPartition(TOPIC, 0)
    low, high = watermarks(bootstrap, 0)
    max_seq = max(seq for seq, (p, _) in delivered.items() if p == 0)
    for name, spec, want in [
        ("earliest", OffsetSpec.earliest(), low),
        ("latest", OffsetSpec.latest(), high),
        ("max_timestamp", OffsetSpec.max_timestamp(), delivered[max_seq][1]),
    ]:
        futures = admin.list_offsets({partition0: spec}, request_timeout=TIMEOUT_S)
        try:
            got = futures[partition0].result(timeout=TIMEOUT_S).offset
        except Exception as error:  # noqa: BLE001
            fail(f"list_offsets {name}: {error}")
        check(got == want, f"list_offsets {name}: want {want}, got {got}")

    log("delete_records before offset 10 of partition 0")
    low_before, high_before = watermarks(bootstrap, 0)
    check(high_before > 10, f"partition 0 has only {high_before} records")
    futures = admin.delete_records([TopicPartition(TOPIC, 0, 10)], request_timeout=TIMEOUT_S)
    wait_all({str(k): v for k, v in futures.items()}, "delete_records")
    low_after, high_after = watermarks(bootstrap, 0)
    check((low_after, high_after) == (10, high_before), f"watermarks after delete_records: {(low_after, high_after)}")

    log("create_partitions to 4, then delete the topic")
    wait_all(admin.create_partitions([NewPartitions(TOPIC, 4)]), "create_partitions")
    wait_all(admin.delete_topics([TOPIC], operation_timeout=TIMEOUT_S), "delete_topics")
    deadline = time.time() + TIMEOUT_S
    while TOPIC in admin.list_topics(timeout=TIMEOUT_S).topics:
        check(time.time() < deadline, f"{TOPIC} still listed after delete_topics")
        time.sleep(0.2)
    log("ok")


if __name__ == "__main__":
    main()
