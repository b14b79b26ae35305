//! The whole broker in-process on two shards: a topic created over the wire is seen by every
//! shard, survives a graceful stop and restart, and its deletion removes every partition dir.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::config::BrokerConfig;
use crate::server::{self, StartError};

struct Running {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), StartError>>,
}

impl Running {
    fn start(data_dir: &Path) -> Running {
        let config = BrokerConfig {
            listen: crate::settings::Listener::new("127.0.0.1", 0),
            data_dir: data_dir.to_path_buf(),
            ..BrokerConfig::default()
        };
        let shards = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            server::run_with(config, Some(shards), stop_flag, move |port| {
                let _ = tx.send(port);
            })
        });
        let port = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the broker starts");
        Running { port, stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .expect("server thread")
            .expect("clean stop");
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(11)
            .with_client_id(Some(StrBytes::from_static_str("server-test")));
        let mut payload = BytesMut::new();
        header
            .encode(&mut payload, key.request_header_version(version))
            .expect("header");
        request.encode(&mut payload, version).expect("body");
        stream
            .write_all(&(payload.len() as i32).to_be_bytes())
            .expect("write");
        stream.write_all(&payload).expect("write");
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).expect("response length");
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).expect("response");
        let mut buf = Bytes::from(body);
        let header_version = odradek_net::codec::response_header_version(key, version);
        let header = ResponseHeader::decode(&mut buf, header_version).expect("response header");
        assert_eq!(header.correlation_id, 11);
        Resp::decode(&mut buf, version).expect("response body")
    }

    fn topics(&self) -> Vec<MetadataResponseTopic> {
        let request = MetadataRequest::default().with_topics(None);
        let response: MetadataResponse = self.call(ApiKey::Metadata, 12, &request);
        response.topics
    }
}

use kafka_protocol::messages::metadata_response::MetadataResponseTopic;

#[test]
fn given_two_shards_when_topic_created_stopped_and_restarted_should_keep_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Running::start(dir.path());
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("spread")))
        .with_num_partitions(4)
        .with_replication_factor(1);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(5000);
    let response: CreateTopicsResponse = broker.call(ApiKey::CreateTopics, 7, &request);
    assert_eq!(
        response.topics[0].error_code, 0,
        "{:?}",
        response.topics[0].error_message
    );
    let id = response.topics[0].topic_id;
    // Connections land on any shard: every one must see the topic.
    for _ in 0..8 {
        let topics = broker.topics();
        assert_eq!(topics.len(), 1);
        assert_eq!(topics[0].partitions.len(), 4);
        assert_eq!(topics[0].topic_id, id);
    }
    broker.stop();
    for partition in 0..4 {
        assert!(
            dir.path().join(format!("spread-{partition}")).is_dir(),
            "partition {partition}"
        );
    }

    let broker = Running::start(dir.path());
    let topics = broker.topics();
    assert_eq!(topics.len(), 1, "the topic survives a restart");
    assert_eq!(topics[0].topic_id, id, "with its id");
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("spread"))]);
    let response: DeleteTopicsResponse = broker.call(ApiKey::DeleteTopics, 5, &request);
    assert_eq!(response.responses[0].error_code, 0);
    assert!(broker.topics().is_empty());
    broker.stop();
    for partition in 0..4 {
        assert!(
            !dir.path().join(format!("spread-{partition}")).exists(),
            "partition {partition} stays"
        );
    }
}
