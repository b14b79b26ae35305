//! The blocking Kafka connection of the admin CLI: connect with a timeout, negotiate API versions
//! (ApiVersions first, then the highest version both sides serve), one request at a time with
//! correlation ids checked. Plus [`Cluster`]: the bootstrap connection and connections to other
//! brokers (group coordinators, partition leaders) opened on demand.
//!
//! Nothing here runs on a reactor: plain `std::net::TcpStream` with read and write timeouts, so
//! an unreachable or silent broker is an error after the timeout, never a hang.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use odradek_net::client::{
    decode_response, encode_request, read_frame_blocking, response_correlation_id,
};
use odradek_net::NetError;

use super::CliError;

const CLIENT_ID: &str = "odradek-cli";
/// The largest response frame accepted (metadata of many topics, a group with many members).
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// One blocking connection to one broker, with the versions negotiated on it.
pub struct Connection {
    stream: TcpStream,
    /// `host:port` as given (for messages).
    addr: String,
    peer: SocketAddr,
    /// API key → the highest version both sides serve.
    versions: HashMap<i16, i16>,
    correlation_id: i32,
}

impl Connection {
    /// Connects to `addr` (`host:port`) within `timeout`, then negotiates API versions.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Connection, CliError> {
        let unreachable = |reason: String| CliError::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let candidates: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("cannot resolve: {e}")))?
            .collect();
        let mut last_error = String::from("the address resolves to nothing");
        let mut stream = None;
        for candidate in &candidates {
            match TcpStream::connect_timeout(candidate, timeout) {
                Ok(connected) => {
                    stream = Some(connected);
                    break;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        let stream = stream.ok_or_else(|| unreachable(last_error))?;
        let setup = |e: std::io::Error| unreachable(e.to_string());
        stream.set_read_timeout(Some(timeout)).map_err(setup)?;
        stream.set_write_timeout(Some(timeout)).map_err(setup)?;
        stream.set_nodelay(true).map_err(setup)?;
        let peer = stream.peer_addr().map_err(setup)?;
        let mut connection = Connection {
            stream,
            addr: addr.to_owned(),
            peer,
            versions: HashMap::new(),
            correlation_id: 0,
        };
        connection.negotiate()?;
        Ok(connection)
    }

    /// The highest version of `api_key` both this CLI and the broker serve.
    pub fn version(&self, api_key: ApiKey) -> Result<i16, CliError> {
        self.versions
            .get(&(api_key as i16))
            .copied()
            .ok_or_else(|| CliError::Unsupported {
                addr: self.addr.clone(),
                api: format!("{api_key:?}"),
            })
    }

    /// Sends `request` at `version` and reads its response.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, CliError> {
        let frame = self.round_trip(api_key, version, request)?;
        Ok(decode_response(api_key, version, frame)?)
    }

    /// Sends `request` at the negotiated version of `api_key`; returns the version too.
    pub fn call_negotiated<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        build: impl FnOnce(i16) -> Req,
    ) -> Result<(i16, Resp), CliError> {
        let version = self.version(api_key)?;
        let response = self.call(api_key, version, &build(version))?;
        Ok((version, response))
    }

    fn round_trip<Req: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Bytes, CliError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let frame = encode_request(api_key, version, correlation_id, CLIENT_ID, request)?;
        std::io::Write::write_all(&mut self.stream, &frame).map_err(|e| self.io_error(e))?;
        let response =
            read_frame_blocking(&mut self.stream, RESPONSE_BYTES_MAX).map_err(|e| match e {
                NetError::Io { source, .. } => self.io_error(source),
                other => CliError::Net(other),
            })?;
        let got = response_correlation_id(&response)?;
        if got != correlation_id {
            return Err(CliError::Protocol(format!(
                "{}: {api_key:?} answered with correlation id {got}, {correlation_id} expected",
                self.addr
            )));
        }
        Ok(response.freeze())
    }

    fn io_error(&self, error: std::io::Error) -> CliError {
        let reason = match error.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "no answer within the timeout".to_owned()
            }
            _ => error.to_string(),
        };
        CliError::Connect {
            addr: self.addr.clone(),
            reason,
        }
    }

    /// ApiVersions at our highest version; a broker that does not know it answers
    /// UNSUPPORTED_VERSION in a v0 body listing its range, and we retry at its highest.
    fn negotiate(&mut self) -> Result<(), CliError> {
        let ours = ApiKey::ApiVersions.valid_versions();
        let mut version = ours.max;
        for _attempt in 0..2 {
            let request = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
            let frame = self.round_trip(ApiKey::ApiVersions, version, &request)?;
            // The error code is the body's first field in every version.
            let error_code = frame.get(4..6).map(|b| i16::from_be_bytes([b[0], b[1]]));
            let unsupported = ResponseError::UnsupportedVersion.code();
            let response: ApiVersionsResponse = if error_code == Some(unsupported) {
                decode_response(ApiKey::ApiVersions, 0, frame)?
            } else {
                decode_response(ApiKey::ApiVersions, version, frame)?
            };
            self.versions = common_versions(&response);
            if response.error_code != unsupported {
                check(response.error_code, None, "ApiVersions")?;
                return Ok(());
            }
            version = self.version(ApiKey::ApiVersions)?;
        }
        Err(CliError::Protocol(format!(
            "{}: ApiVersions negotiation did not converge",
            self.addr
        )))
    }
}

/// For each API both sides serve, the highest version in both ranges.
fn common_versions(response: &ApiVersionsResponse) -> HashMap<i16, i16> {
    let mut versions = HashMap::new();
    for theirs in &response.api_keys {
        let Ok(api_key) = ApiKey::try_from(theirs.api_key) else {
            continue;
        };
        let ours = api_key.valid_versions();
        let max = ours.max.min(theirs.max_version);
        if max >= ours.min.max(theirs.min_version) {
            versions.insert(theirs.api_key, max);
        }
    }
    versions
}

/// A Kafka error code as a [`CliError`]; `context` says what it was about.
pub fn check(code: i16, message: Option<&StrBytes>, context: &str) -> Result<(), CliError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(error) => Err(CliError::Kafka {
            name: error_name(error),
            context: context.to_owned(),
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        }),
    }
}

/// Kafka's own spelling of an error: `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn error_name(error: ResponseError) -> String {
    if let ResponseError::Unknown(code) = error {
        return format!("UNKNOWN_ERROR_CODE_{code}");
    }
    let mut name = String::new();
    for (i, c) in error.to_string().chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// The bootstrap connection and, opened on demand, connections to the other brokers.
pub struct Cluster {
    bootstrap: Connection,
    others: HashMap<String, Connection>,
    timeout: Duration,
}

impl Cluster {
    pub fn connect(bootstrap: &str, timeout: Duration) -> Result<Cluster, CliError> {
        Ok(Cluster {
            bootstrap: Connection::connect(bootstrap, timeout)?,
            others: HashMap::new(),
            timeout,
        })
    }

    pub fn bootstrap(&mut self) -> &mut Connection {
        &mut self.bootstrap
    }

    /// The connection to the broker at `host:port` (the bootstrap one when it is that broker).
    pub fn broker(&mut self, host: &str, port: i32) -> Result<&mut Connection, CliError> {
        let addr = format!("{host}:{port}");
        let is_bootstrap = addr == self.bootstrap.addr
            || addr
                .parse::<SocketAddr>()
                .is_ok_and(|a| a == self.bootstrap.peer);
        if is_bootstrap {
            return Ok(&mut self.bootstrap);
        }
        if !self.others.contains_key(&addr) {
            let connection = Connection::connect(&addr, self.timeout)?;
            self.others.insert(addr.clone(), connection);
        }
        self.others
            .get_mut(&addr)
            .ok_or_else(|| CliError::Protocol(format!("lost the connection to {addr}")))
    }

    /// Metadata for `topics` (`None`: every topic), never creating one.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> Result<MetadataResponse, CliError> {
        let (_, response): (i16, MetadataResponse) =
            self.bootstrap
                .call_negotiated(ApiKey::Metadata, |version| {
                    let names = topics.map(|names| {
                        names
                            .iter()
                            .map(|name| {
                                MetadataRequestTopic::default().with_name(Some(topic_name(name)))
                            })
                            .collect()
                    });
                    // v0 has no null: an empty list means every topic.
                    let names = if version == 0 {
                        Some(names.unwrap_or_default())
                    } else {
                        names
                    };
                    MetadataRequest::default()
                        .with_topics(names)
                        .with_allow_auto_topic_creation(false)
                })?;
        Ok(response)
    }

    /// The address of broker `node_id` in `metadata`.
    pub fn broker_of(
        &mut self,
        metadata: &MetadataResponse,
        node_id: i32,
    ) -> Result<&mut Connection, CliError> {
        let Some(broker) = metadata.brokers.iter().find(|b| *b.node_id == node_id) else {
            return Err(CliError::Protocol(format!(
                "broker {node_id} is not in the metadata"
            )));
        };
        let host = broker.host.to_string();
        self.broker(&host, broker.port)
    }
}

pub fn topic_name(name: &str) -> kafka_protocol::messages::TopicName {
    StrBytes::from_string(name.to_owned()).into()
}

pub fn group_id(name: &str) -> kafka_protocol::messages::GroupId {
    StrBytes::from_string(name.to_owned()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(
            error_name(ResponseError::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(error_name(ResponseError::NonEmptyGroup), "NON_EMPTY_GROUP");
        assert_eq!(
            error_name(ResponseError::Unknown(999)),
            "UNKNOWN_ERROR_CODE_999"
        );
    }

    #[test]
    fn negotiated_version_is_the_highest_in_both_ranges() {
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        let response = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(ApiKey::Metadata as i16)
                .with_min_version(0)
                .with_max_version(9),
            ApiVersion::default()
                .with_api_key(ApiKey::OffsetFetch as i16)
                .with_min_version(0)
                .with_max_version(99),
            ApiVersion::default().with_api_key(-7).with_max_version(3),
        ]);
        let versions = common_versions(&response);
        assert_eq!(versions.get(&(ApiKey::Metadata as i16)), Some(&9));
        let codec_max = ApiKey::OffsetFetch.valid_versions().max;
        assert_eq!(
            versions.get(&(ApiKey::OffsetFetch as i16)),
            Some(&codec_max)
        );
        assert_eq!(versions.len(), 2);
    }
}
