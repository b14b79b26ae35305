//! rdkafka clients against the broker under test: producers whose delivery reports are
//! recorded, assign-style consumers, the admin client and topic helpers.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{Broker, CLIENT_TIMEOUT};

/// A successfully delivered record, as its delivery report told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    pub id: usize,
    pub partition: i32,
    pub offset: i64,
}

/// Every delivery report a [`TestProducer`] received.
#[derive(Default)]
pub struct DeliveryLog {
    pub acked: Mutex<Vec<Acked>>,
    pub failed: Mutex<Vec<(usize, KafkaError)>>,
}

impl DeliveryLog {
    pub fn acked(&self) -> Vec<Acked> {
        self.acked.lock().expect("delivery log lock").clone()
    }

    pub fn failed(&self) -> Vec<(usize, KafkaError)> {
        self.failed.lock().expect("delivery log lock").clone()
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().expect("delivery log lock").len()
    }

    pub fn reported_count(&self) -> usize {
        self.acked_count() + self.failed.lock().expect("delivery log lock").len()
    }
}

/// Producer context that records each delivery report under the record's `usize` id.
pub struct RecordingContext {
    log: Arc<DeliveryLog>,
}

impl ClientContext for RecordingContext {}

impl ProducerContext for RecordingContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        match result {
            Ok(message) => self
                .log
                .acked
                .lock()
                .expect("delivery log lock")
                .push(Acked {
                    id,
                    partition: message.partition(),
                    offset: message.offset(),
                }),
            Err((error, _message)) => self
                .log
                .failed
                .lock()
                .expect("delivery log lock")
                .push((id, error.clone())),
        }
    }
}

pub type TestProducer = ThreadedProducer<RecordingContext>;

fn client_config(bootstrap: &str, overrides: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "odradek-tests")
        // One broker: fail fast instead of librdkafka's long default retries on a dead broker.
        .set("socket.timeout.ms", "30000")
        .set("reconnect.backoff.max.ms", "1000");
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    config
}

/// A threaded producer (background polling thread) whose delivery reports land in the returned
/// log. Defaults: `acks=all`, `linger.ms=5`; `overrides` win.
pub fn producer(bootstrap: &str, overrides: &[(&str, &str)]) -> (TestProducer, Arc<DeliveryLog>) {
    let log = Arc::new(DeliveryLog::default());
    let mut config = client_config(bootstrap, &[("acks", "all"), ("linger.ms", "5")]);
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    let producer = config
        .create_with_context(RecordingContext {
            log: Arc::clone(&log),
        })
        .expect("create the rdkafka producer");
    (producer, log)
}

/// Queues a record, waiting while librdkafka's local queue is full. Any other immediate error
/// (e.g. the record exceeds the client's own `message.max.bytes`) is returned.
pub fn send<K, P>(
    producer: &TestProducer,
    mut record: BaseRecord<'_, K, P, usize>,
) -> Result<(), KafkaError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if Instant::now() < deadline =>
            {
                record = back;
                thread::sleep(Duration::from_millis(5));
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// Flushes and waits until every queued record has a delivery report.
pub fn flush(producer: &TestProducer) {
    producer
        .flush(Duration::from_secs(120))
        .expect("flush the producer: some records got no delivery report within 120 s");
}

/// A consumer for `assign`-style reads (a group id is required by librdkafka for assign; the
/// group is never joined and nothing is committed).
pub fn consumer(bootstrap: &str, overrides: &[(&str, &str)]) -> BaseConsumer {
    let mut config = client_config(
        bootstrap,
        &[
            ("group.id", "odradek-tests"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
        ],
    );
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    config.create().expect("create the rdkafka consumer")
}

/// Assigns partitions `0..partitions` of `topic`, each from `offset`.
pub fn assign_all(consumer: &BaseConsumer, topic: &str, partitions: i32, offset: Offset) {
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, offset)
            .expect("add a partition to the assignment");
    }
    consumer.assign(&list).expect("assign partitions");
}

/// Polls until `count` records arrived or `timeout` passed; panics on the timeout with what it
/// got and the consumer errors it saw.
pub fn consume_exactly(
    consumer: &BaseConsumer,
    count: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::with_capacity(count);
    let mut errors: Vec<String> = Vec::new();
    while messages.len() < count {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {count} records within {timeout:?}; consumer errors: {:?}",
            messages.len(),
            &errors[errors.len().saturating_sub(20)..]
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => messages.push(message.detach()),
            Some(Err(error)) => errors.push(error.to_string()),
        }
    }
    messages
}

/// Polls for `quiet` and returns whatever arrives (used to prove nothing more is there).
pub fn drain_for(consumer: &BaseConsumer, quiet: Duration) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + quiet;
    let mut messages = Vec::new();
    while Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            messages.push(message.detach());
        }
    }
    messages
}

/// `(low, high)` watermarks of one partition.
pub fn watermarks(consumer: &BaseConsumer, topic: &str, partition: i32) -> (i64, i64) {
    consumer
        .fetch_watermarks(topic, partition, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("fetch_watermarks({topic}, {partition}): {e}"))
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap, &[])
        .create()
        .expect("create the rdkafka admin client")
}

pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(CLIENT_TIMEOUT))
        .operation_timeout(Some(CLIENT_TIMEOUT))
}

/// Runs an admin future to completion (librdkafka's admin thread resolves it).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
        .block_on(future)
}

/// Creates a topic with `partitions` partitions and the given topic configs; panics unless the
/// broker reports success.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_topic_with(bootstrap, topic, (partitions, 1), configs);
}

/// [`create_topic`] with `(partitions, replication factor)`.
pub fn create_topic_with(
    bootstrap: &str,
    topic: &str,
    (partitions, replication): (i32, i32),
    configs: &[(&str, &str)],
) {
    let admin = admin(bootstrap);
    let replication = TopicReplication::Fixed(replication);
    let mut new_topic = NewTopic::new(topic, partitions, replication);
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let results = block_on(admin.create_topics([&new_topic], &admin_options()))
        .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
    assert_eq!(results.len(), 1, "one result per topic");
    if let Err((name, code)) = &results[0] {
        panic!("CreateTopics {name} failed with {code:?}");
    }
    wait_for_topic(bootstrap, topic, partitions);
}

/// Waits until Metadata shows `topic` with `partitions` partitions, each with a leader.
pub fn wait_for_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let consumer = consumer(bootstrap, &[]);
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(metadata) => {
                let found = metadata.topics().iter().find(|t| t.name() == topic);
                match found {
                    Some(t)
                        if t.error().is_none()
                            && t.partitions().len() == partitions as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0) =>
                    {
                        return
                    }
                    Some(t) => {
                        last = format!(
                            "error {:?}, {} partitions, leaders {:?}",
                            t.error(),
                            t.partitions().len(),
                            t.partitions()
                                .iter()
                                .map(|p| p.leader())
                                .collect::<Vec<_>>()
                        )
                    }
                    None => last = "topic absent".to_string(),
                }
            }
            Err(error) => last = error.to_string(),
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("topic {topic} never showed {partitions} partitions with leaders in Metadata: {last}");
}

/// Names of all topics in a full Metadata response.
pub fn topic_names(bootstrap: &str) -> Vec<String> {
    let consumer = consumer(bootstrap, &[]);
    let metadata = consumer
        .fetch_metadata(None, CLIENT_TIMEOUT)
        .expect("fetch metadata for all topics");
    metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect()
}

/// Describes one topic's configs as a name → value map.
pub fn describe_topic_configs(bootstrap: &str, topic: &str) -> HashMap<String, Option<String>> {
    use rdkafka::admin::ResourceSpecifier;
    let admin = admin(bootstrap);
    let results =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options()))
            .unwrap_or_else(|e| panic!("DescribeConfigs {topic}: {e}"));
    assert_eq!(results.len(), 1, "one result per resource");
    let resource = results[0]
        .as_ref()
        .unwrap_or_else(|code| panic!("DescribeConfigs {topic} failed with {code:?}"));
    resource
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

/// IncrementalAlterConfigs (SET) on one topic through librdkafka's C API. Returns the
/// per-resource error code (`NoError` on success).
pub fn incremental_alter_config(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    settings: &[(&str, &str)],
) -> RDKafkaErrorCode {
    use rdkafka::bindings as rd;
    let rk = admin.inner().native_ptr();
    let topic_c = CString::new(topic).expect("topic name without NUL");
    // SAFETY: plain use of librdkafka's admin C API: every object created here is destroyed
    // here, pointers returned by librdkafka are used only while their event is alive.
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        );
        let mut errstr = [0 as libc::c_char; 512];
        let timeout_ms = CLIENT_TIMEOUT.as_millis() as libc::c_int;
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let mut resource = rd::rd_kafka_ConfigResource_new(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            topic_c.as_ptr(),
        );
        for (name, value) in settings {
            let name_c = CString::new(*name).expect("config name without NUL");
            let value_c = CString::new(*value).expect("config value without NUL");
            let error = rd::rd_kafka_ConfigResource_add_incremental_config(
                resource,
                name_c.as_ptr(),
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                value_c.as_ptr(),
            );
            assert!(
                error.is_null(),
                "librdkafka rejected config {name}={value} locally"
            );
        }
        rd::rd_kafka_IncrementalAlterConfigs(rk, &mut resource, 1, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms + 5000);
        assert!(
            !event.is_null(),
            "IncrementalAlterConfigs: no result within the timeout"
        );
        let request_error = rd::rd_kafka_event_error(event);
        let code = if request_error != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            let text = CStr::from_ptr(rd::rd_kafka_event_error_string(event));
            eprintln!(
                "IncrementalAlterConfigs request error: {}",
                text.to_string_lossy()
            );
            RDKafkaErrorCode::from(request_error)
        } else {
            let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event);
            let mut count = 0usize;
            let resources =
                rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
            assert_eq!(count, 1, "one resource result");
            let first = *resources;
            let code = rd::rd_kafka_ConfigResource_error(first);
            let text = rd::rd_kafka_ConfigResource_error_string(first);
            if !text.is_null() {
                eprintln!(
                    "IncrementalAlterConfigs {topic}: {}",
                    CStr::from_ptr(text).to_string_lossy()
                );
            }
            RDKafkaErrorCode::from(code)
        };
        rd::rd_kafka_event_destroy(event);
        rd::rd_kafka_ConfigResource_destroy(resource);
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_queue_destroy(queue);
        code
    }
}

/// Produces and consumes one record with librdkafka: the broker still serves real clients.
pub fn assert_round_trip(broker: &mut Broker, topic: &str, round: usize) {
    broker.assert_alive();
    let (producer, log) = producer(&broker.bootstrap(), &[]);
    let value = format!("after hostile round {round}");
    send(
        &producer,
        BaseRecord::with_opaque_to(topic, round)
            .key("k")
            .payload(&value),
    )
    .expect("queue");
    flush(&producer);
    assert_eq!(
        log.acked_count(),
        1,
        "produce after hostile frames failed: {:?}",
        log.failed()
    );
    let reader = consumer(&broker.bootstrap(), &[]);
    assign_all(&reader, topic, 1, Offset::Beginning);
    let got = consume_exactly(&reader, round + 1, Duration::from_secs(30));
    assert_eq!(got[round].payload(), Some(value.as_bytes()));
    broker.assert_alive();
}
