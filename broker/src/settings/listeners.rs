//! The values of the listener settings (`listeners`, `advertised.listeners`,
//! `controller.listener.names`, `inter.broker.listener.name`, `listener.security.protocol.map`):
//! named addresses and the security protocol each name speaks. Which listener serves clients
//! and which the controller is decided once every setting is in
//! ([`BrokerConfig::finish`](crate::config::BrokerConfig)).

use super::values::{Kind, ValueError};

/// The longest listener name taken (Kafka sets no bound; its names are words such as
/// `PLAINTEXT`, `CONTROLLER`, `INTERNAL`).
pub const LISTENER_NAME_BYTES_MAX: usize = 64;

/// Where to listen, or what to tell clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub host: String,
    pub port: u16,
}

impl Listener {
    pub fn new(host: &str, port: u16) -> Listener {
        Listener {
            host: host.into(),
            port,
        }
    }

    /// `HOST:PORT` (`[::1]:9092` for IPv6; an empty host is every interface's, `0.0.0.0`).
    pub fn parse(text: &str) -> Result<Listener, ValueError> {
        let (host, port) = text.trim().rsplit_once(':').ok_or(ValueError::NoPort)?;
        let port = port.parse::<u16>().map_err(|_| ValueError::BadPort)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.contains(',') {
            return Err(ValueError::NotOneOf {
                expected: "one HOST:PORT".into(),
            });
        }
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        Ok(Listener::new(host, port))
    }

    /// As [`Listener::parse`] reads it (IPv6 hosts in brackets).
    pub fn format(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }
}

/// One entry of `listeners` or `advertised.listeners`: `NAME://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedListener {
    /// Upper case, as Kafka normalises listener names.
    pub name: String,
    pub listener: Listener,
}

impl NamedListener {
    /// The name a bare `HOST:PORT` gets.
    pub const PLAINTEXT: &'static str = "PLAINTEXT";

    /// `NAME://HOST:PORT`, or `HOST:PORT` for a PLAINTEXT listener.
    pub fn parse(text: &str) -> Result<NamedListener, ValueError> {
        let text = text.trim();
        let (name, address) = match text.split_once("://") {
            Some((name, address)) => (listener_name(name)?, address),
            None => (NamedListener::PLAINTEXT.to_string(), text),
        };
        Ok(NamedListener {
            name,
            listener: Listener::parse(address)?,
        })
    }
}

/// A listener name: letters, digits and `_`, read in upper case.
fn listener_name(text: &str) -> Result<String, ValueError> {
    let text = text.trim();
    let valid = !text.is_empty()
        && text.len() <= LISTENER_NAME_BYTES_MAX
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match valid {
        true => Ok(text.to_ascii_uppercase()),
        false => Err(ValueError::NotOneOf {
            expected: format!(
                "a listener name of 1 to {LISTENER_NAME_BYTES_MAX} letters, digits or '_', \
                 not {text:?}"
            ),
        }),
    }
}

/// The entries of a comma-separated list, blanks skipped.
fn entries(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `listeners` and `advertised.listeners`: `NAME://HOST:PORT`, comma-separated, each name once;
/// empty for none.
pub struct Listeners;

impl Kind for Listeners {
    type Value = Vec<NamedListener>;

    fn parse(&self, text: &str) -> Result<Vec<NamedListener>, ValueError> {
        let mut listeners: Vec<NamedListener> = Vec::new();
        for entry in entries(text) {
            let named = NamedListener::parse(entry)?;
            if listeners.iter().any(|l| l.name == named.name) {
                return Err(ValueError::NotOneOf {
                    expected: format!("each listener name once; {} is twice", named.name),
                });
            }
            listeners.push(named);
        }
        Ok(listeners)
    }

    fn format(&self, listeners: &Vec<NamedListener>) -> String {
        let entries: Vec<String> = listeners
            .iter()
            .map(|l| format!("{}://{}", l.name, l.listener.format()))
            .collect();
        entries.join(",")
    }

    fn accepted(&self) -> String {
        "NAME://HOST:PORT (or HOST:PORT, a PLAINTEXT listener), comma-separated, each name once"
            .into()
    }
}

/// `inter.broker.listener.name`: one listener name.
pub struct ListenerName;

impl Kind for ListenerName {
    type Value = String;

    fn parse(&self, text: &str) -> Result<String, ValueError> {
        listener_name(text)
    }

    fn format(&self, name: &String) -> String {
        name.clone()
    }

    fn accepted(&self) -> String {
        "a listener name (letters, digits, '_')".into()
    }
}

/// `controller.listener.names`: listener names, comma-separated; at least one.
pub struct ListenerNames;

impl Kind for ListenerNames {
    type Value = Vec<String>;

    fn parse(&self, text: &str) -> Result<Vec<String>, ValueError> {
        let names = entries(text)
            .map(listener_name)
            .collect::<Result<Vec<String>, ValueError>>()?;
        match names.is_empty() {
            true => Err(ValueError::NotOneOf {
                expected: self.accepted(),
            }),
            false => Ok(names),
        }
    }

    fn format(&self, names: &Vec<String>) -> String {
        names.join(",")
    }

    fn accepted(&self) -> String {
        "listener names, comma-separated (at least one)".into()
    }
}

/// What a listener speaks (Kafka's `SecurityProtocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const NAMES: &'static [(&'static str, SecurityProtocol)] = &[
        ("PLAINTEXT", SecurityProtocol::Plaintext),
        ("SSL", SecurityProtocol::Ssl),
        ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
        ("SASL_SSL", SecurityProtocol::SaslSsl),
    ];

    pub fn name(self) -> &'static str {
        match SecurityProtocol::NAMES.iter().find(|(_, p)| *p == self) {
            Some((name, _)) => name,
            None => panic!("{self:?} has no name in SecurityProtocol::NAMES"),
        }
    }

    fn parse(text: &str) -> Option<SecurityProtocol> {
        let text = text.trim();
        SecurityProtocol::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, protocol)| *protocol)
    }
}

/// One entry of `listener.security.protocol.map`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerProtocol {
    pub name: String,
    pub protocol: SecurityProtocol,
}

/// `listener.security.protocol.map`: `NAME:PROTOCOL`, comma-separated, each name once.
pub struct ProtocolMap;

impl ProtocolMap {
    /// Kafka's default, with the controller listener's name Kafka's KRaft examples use.
    pub fn kafka_default() -> Vec<ListenerProtocol> {
        [
            ("PLAINTEXT", SecurityProtocol::Plaintext),
            ("CONTROLLER", SecurityProtocol::Plaintext),
            ("SSL", SecurityProtocol::Ssl),
            ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
            ("SASL_SSL", SecurityProtocol::SaslSsl),
        ]
        .into_iter()
        .map(|(name, protocol)| ListenerProtocol {
            name: name.into(),
            protocol,
        })
        .collect()
    }
}

impl Kind for ProtocolMap {
    type Value = Vec<ListenerProtocol>;

    fn parse(&self, text: &str) -> Result<Vec<ListenerProtocol>, ValueError> {
        let bad = || ValueError::NotOneOf {
            expected: self.accepted(),
        };
        let mut map: Vec<ListenerProtocol> = Vec::new();
        for entry in entries(text) {
            let (name, protocol) = entry.split_once(':').ok_or_else(bad)?;
            let name = listener_name(name)?;
            let protocol = SecurityProtocol::parse(protocol).ok_or_else(bad)?;
            if map.iter().any(|e| e.name == name) {
                return Err(bad());
            }
            map.push(ListenerProtocol { name, protocol });
        }
        Ok(map)
    }

    fn format(&self, map: &Vec<ListenerProtocol>) -> String {
        let entries: Vec<String> = map
            .iter()
            .map(|e| format!("{}:{}", e.name, e.protocol.name()))
            .collect();
        entries.join(",")
    }

    fn accepted(&self) -> String {
        "NAME:PROTOCOL, comma-separated, each name once, a protocol being PLAINTEXT, SSL, \
         SASL_PLAINTEXT or SASL_SSL"
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, host: &str, port: u16) -> NamedListener {
        NamedListener {
            name: name.into(),
            listener: Listener::new(host, port),
        }
    }

    #[test]
    fn addresses_read_hosts_and_ports() {
        assert_eq!(
            Listener::parse("[::1]:9092"),
            Ok(Listener::new("::1", 9092))
        );
        assert_eq!(Listener::parse(":9092"), Ok(Listener::new("0.0.0.0", 9092)));
        assert_eq!(Listener::new("::1", 9092).format(), "[::1]:9092");
        assert_eq!(Listener::parse("localhost"), Err(ValueError::NoPort));
        assert_eq!(Listener::parse("a:http"), Err(ValueError::BadPort));
        assert!(Listener::parse("a:1,b:2").is_err(), "one address");
    }

    #[test]
    fn listeners_read_every_named_entry() {
        // A bare address is a PLAINTEXT listener, so beside PLAINTEXT:// it is a second one.
        let twice = Listeners.parse("PLAINTEXT://127.0.0.1:9092,[::1]:9094");
        let refused = twice.expect_err("PLAINTEXT twice").to_string();
        assert_eq!(
            refused,
            "expected each listener name once; PLAINTEXT is twice"
        );
        let parsed = Listeners.parse("PLAINTEXT://127.0.0.1:9092, controller://:9093");
        let expected = vec![
            named("PLAINTEXT", "127.0.0.1", 9092),
            named("CONTROLLER", "0.0.0.0", 9093),
        ];
        assert_eq!(parsed.as_ref(), Ok(&expected));
        assert_eq!(
            Listeners.format(&expected),
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://0.0.0.0:9093"
        );
        assert_eq!(
            Listeners.parse("127.0.0.1:19092"),
            Ok(vec![named("PLAINTEXT", "127.0.0.1", 19092)])
        );
        assert_eq!(Listeners.parse(""), Ok(Vec::new()));
        for bad in ["BAD NAME://h:1", "://h:1", "PLAINTEXT://h", "X://h:port"] {
            assert!(Listeners.parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listener_names_are_words_in_upper_case() {
        assert_eq!(ListenerName.parse(" internal "), Ok("INTERNAL".into()));
        assert!(ListenerName.parse("in-ternal").is_err());
        assert_eq!(
            ListenerNames.parse("CONTROLLER, other"),
            Ok(vec!["CONTROLLER".into(), "OTHER".into()])
        );
        assert!(ListenerNames.parse(" , ").is_err(), "at least one");
    }

    #[test]
    fn protocol_maps_read_each_name_once() {
        let default = ProtocolMap.format(&ProtocolMap::kafka_default());
        assert_eq!(
            default,
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,\
             SASL_SSL:SASL_SSL"
        );
        assert_eq!(
            ProtocolMap.parse("internal:sasl_ssl"),
            Ok(vec![ListenerProtocol {
                name: "INTERNAL".into(),
                protocol: SecurityProtocol::SaslSsl
            }])
        );
        for bad in ["A:PLAINTEXT,A:SSL", "A", "A:TLS"] {
            assert!(ProtocolMap.parse(bad).is_err(), "{bad}");
        }
    }
}
