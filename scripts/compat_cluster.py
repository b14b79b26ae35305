"""Real Python clients against a 3-node odradek cluster (scripts/compat_cluster.sh).

Usage: compat_cluster.py HOST:PORT,HOST:PORT,HOST:PORT CONTROLLER_ID

CONTROLLER_ID is the metadata quorum's leader (from `odradek cluster describe`: librdkafka's
describe_cluster reports Metadata's controller, which is the answering broker here, as with
Kafka's KRaft brokers).
confluent-kafka: describe_cluster lists the three brokers; a topic with 6
partitions and replication factor 3 is created through a broker that is not the controller and
placed on all three (leaders spread); 300 records produced (acks=all) through a second broker
are consumed once each by a group through a third, whose commits read back.
kafka-python: its admin client creates a topic with replication factor 2 and is refused one of
4 (INVALID_REPLICATION_FACTOR); its producer and group consumer round-trip through other brokers.
"""

import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def wait_for(what, probe, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.2)


def confluent(brokers, controller):
    first, second, third = brokers
    admin = AdminClient({"bootstrap.servers": first})
    cluster = admin.describe_cluster(request_timeout=15).result()
    ids = sorted(node.id for node in cluster.nodes)
    assert ids == [1, 2, 3], f"DescribeCluster lists {ids}"
    # Through a broker that is not the active controller: it forwards to the quorum.
    others = [b for b, i in zip(brokers, [1, 2, 3]) if i != controller]
    admin = AdminClient({"bootstrap.servers": others[0]})
    topic = f"cc-{uuid.uuid4().hex[:8]}"
    for future in admin.create_topics([NewTopic(topic, 6, 3)], request_timeout=15).values():
        future.result()

    def placed():
        metadata = admin.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or len(metadata.partitions) != 6:
            return None
        return metadata.partitions

    partitions = wait_for(f"{topic} in metadata", placed)
    leaders = {}
    for p in partitions.values():
        assert sorted(p.replicas) == [1, 2, 3], f"partition {p.id} on {p.replicas}"
        leaders[p.leader] = leaders.get(p.leader, 0) + 1
    assert sorted(leaders.values()) == [2, 2, 2], f"leaders {leaders}"

    producer = Producer({"bootstrap.servers": second, "acks": "all", "linger.ms": 5})
    failures = []

    def delivered(error, _message):
        if error is not None:
            failures.append(error)

    for i in range(300):
        producer.produce(topic, key=f"k{i}", value=f"v{i}", on_delivery=delivered)
    assert producer.flush(30) == 0, "undelivered records"
    assert not failures, f"delivery failures: {failures[:3]}"

    consumer = Consumer({
        "bootstrap.servers": third,
        "group.id": f"g-{topic}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    seen = set()
    deadline = time.monotonic() + 40
    while len(seen) < 300 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            raise KafkaException(message.error())
        value = message.value().decode()
        assert value not in seen, f"{value} twice"
        seen.add(value)
    assert len(seen) == 300, f"consumed {len(seen)} of 300"
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, p) for p in range(6)], timeout=15)
    total = sum(tp.offset for tp in committed)
    assert total == 300, f"committed offsets sum to {total}"
    consumer.close()
    print(f"[compat-cluster] confluent-kafka: ok (controller {controller}, topic {topic})",
          file=sys.stderr)


def kafka_python(brokers):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic as KpNewTopic
    from kafka.errors import InvalidReplicationFactorError

    first, second, third = brokers
    admin = KafkaAdminClient(bootstrap_servers=third, request_timeout_ms=15000)
    topic = f"kp-{uuid.uuid4().hex[:8]}"
    admin.create_topics([KpNewTopic(topic, num_partitions=3, replication_factor=2)])
    try:
        admin.create_topics([KpNewTopic(f"{topic}-wide", num_partitions=1, replication_factor=4)])
        raise AssertionError("replication factor 4 on 3 brokers was accepted")
    except InvalidReplicationFactorError:
        pass
    admin.close()

    producer = KafkaProducer(bootstrap_servers=first, acks="all")
    for i in range(90):
        producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    producer.flush(30)
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=second,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
    )
    seen = set()
    for message in consumer:
        seen.add(message.value.decode())
        if len(seen) == 90:
            break
    assert len(seen) == 90, f"kafka-python consumed {len(seen)} of 90"
    consumer.commit()
    consumer.close()
    print(f"[compat-cluster] kafka-python: ok (topic {topic})", file=sys.stderr)


def main():
    brokers = sys.argv[1].split(",")
    assert len(brokers) == 3, f"three brokers, got {brokers}"
    controller = int(sys.argv[2])
    assert controller in (1, 2, 3), f"controller {controller}"
    confluent(brokers, controller)
    kafka_python(brokers)


if __name__ == "__main__":
    main()
