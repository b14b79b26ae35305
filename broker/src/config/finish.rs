//! What a config becomes once every source is in ([`BrokerConfig::finish`]): the listeners
//! decided from `listeners` and the listener names (a setting cannot decide them alone: the
//! names may come after the list), and the settings checked that must fit together (security
//! protocols, heartbeat and session, a cluster member's quorum settings).

use super::ConfigError;
use crate::settings::{
    BrokerConfig, Kind, Listener, NamedListener, ProcessRoles, SecurityProtocol, Voter, Voters,
};

impl BrokerConfig {
    /// Once every source is applied: decides the listeners (`listen`, `controller_listen`,
    /// `advertise`) and checks the settings that must fit together. A start and `odradek
    /// format` call it before using the config.
    pub fn finish(&mut self) -> Result<(), ConfigError> {
        self.resolve_listeners()?;
        self.check_protocols()?;
        self.check_session()?;
        self.check_cluster()
    }

    /// `--listen`: replaces the client listener's address in `listeners` (or adds a PLAINTEXT
    /// listener where there is none).
    pub fn set_client_listener(&mut self, listener: Listener) {
        let name = self.client_listener_name();
        set_named(&mut self.listeners, name, listener);
    }

    /// `--advertise`: replaces the client listener's entry in `advertised.listeners` (or adds
    /// one).
    pub fn set_advertised_listener(&mut self, listener: Listener) {
        let name = self.client_listener_name();
        set_named(&mut self.advertised_listeners, name, listener);
    }

    /// The name of the client listener among `listeners`: `inter.broker.listener.name` where
    /// it is there, else the first that is no controller listener, else (none)
    /// `inter.broker.listener.name`.
    fn client_listener_name(&self) -> String {
        let named = &self.inter_broker_listener_name;
        if self.listeners.iter().any(|l| l.name == *named) {
            return named.clone();
        }
        match self
            .listeners
            .iter()
            .find(|l| !self.is_controller_listener(&l.name))
        {
            Some(first) => first.name.clone(),
            None => named.clone(),
        }
    }

    fn is_controller_listener(&self, name: &str) -> bool {
        self.controller_listener_names.iter().any(|n| n == name)
    }

    fn resolve_listeners(&mut self) -> Result<(), ConfigError> {
        let mismatch = |setting, problem: String, fix: &str| ConfigError::Mismatch {
            setting,
            problem,
            fix: fix.to_string(),
        };
        let named = &self.inter_broker_listener_name;
        if self.is_controller_listener(named) {
            let problem = format!("{named} is also in controller.listener.names");
            let fix = "clients and the metadata quorum need listeners of their own";
            return Err(mismatch("inter.broker.listener.name", problem, fix));
        }
        let explicit = self.explicitly_set.contains("inter.broker.listener.name");
        if explicit && !self.listeners.iter().any(|l| l.name == *named) {
            let problem = format!("{named} is not among listeners ({})", self.listeners_text());
            let fix = format!("add {named}://HOST:PORT to listeners or name one of them");
            return Err(mismatch("inter.broker.listener.name", problem, &fix));
        }
        let client = self.client_listener_name();
        let controller_only = self.process_roles == ProcessRoles::Controller;
        let listen = match find_named(&self.listeners, &client) {
            Some(listen) => Some(listen),
            // It serves no clients: its listener is unused.
            None if controller_only => None,
            None => {
                let problem = match self.listeners.is_empty() {
                    true => "it names no listener".to_string(),
                    false => format!(
                        "{} are all controller listeners (controller.listener.names)",
                        self.listeners_text()
                    ),
                };
                let fix = "add one for clients, such as PLAINTEXT://127.0.0.1:9092";
                return Err(mismatch("listeners", problem, fix));
            }
        };
        if let Some(stray) = self
            .advertised_listeners
            .iter()
            .find(|a| find_named(&self.listeners, &a.name).is_none())
        {
            let problem = format!("{} is not among listeners", stray.name);
            let fix = "advertise only listeners this node has";
            return Err(mismatch("advertised.listeners", problem, fix));
        }
        let advertised = find_named(&self.advertised_listeners, &client).or_else(|| {
            let first = self
                .advertised_listeners
                .iter()
                .find(|a| !self.is_controller_listener(&a.name));
            first.map(|a| &a.listener)
        });
        let controller = self.controller_listener_names.first();
        let controller = controller.and_then(|c| find_named(&self.listeners, c));
        let (listen, advertised, controller) =
            (listen.cloned(), advertised.cloned(), controller.cloned());
        if let Some(listen) = listen {
            self.listen = listen;
        }
        (self.advertise, self.controller_listen) = (advertised, controller);
        Ok(())
    }

    fn listeners_text(&self) -> String {
        self.listeners
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every listener speaks PLAINTEXT: one that is mapped to TLS or SASL, or not mapped at all
    /// (Kafka refuses that too), stops the start rather than serve what it was not meant to.
    fn check_protocols(&self) -> Result<(), ConfigError> {
        for listener in &self.listeners {
            let mapped = self
                .listener_security_protocol_map
                .iter()
                .find(|e| e.name == listener.name);
            match mapped.map(|e| e.protocol) {
                Some(SecurityProtocol::Plaintext) => {}
                Some(protocol) => {
                    return Err(ConfigError::NotPlaintext {
                        listener: listener.name.clone(),
                        protocol: protocol.name(),
                    })
                }
                None => {
                    return Err(ConfigError::Mismatch {
                        setting: "listener.security.protocol.map",
                        problem: format!("listener {} is not in it", listener.name),
                        fix: format!("add {}:PLAINTEXT", listener.name),
                    })
                }
            }
        }
        Ok(())
    }

    fn check_session(&self) -> Result<(), ConfigError> {
        let (heartbeat_ms, session_ms) = (
            self.broker_heartbeat_interval_ms,
            self.broker_session_timeout_ms,
        );
        if session_ms > heartbeat_ms {
            return Ok(());
        }
        Err(ConfigError::Mismatch {
            setting: "broker.session.timeout.ms",
            problem: format!(
                "{session_ms} is not more than broker.heartbeat.interval.ms ({heartbeat_ms}): \
                 every broker would be fenced between two heartbeats"
            ),
            fix: "make it several heartbeat intervals (Kafka's: 9000 and 2000)".into(),
        })
    }

    /// A cluster's settings: with `controller.quorum.voters` naming other nodes, a combined or
    /// controller-only node is one of the voters and its controller listener is on its voter
    /// port; a broker-only node is none of them (it follows their log). Without other voters a
    /// combined node is a single node, its own one-voter quorum; a controller listener is then
    /// optional.
    pub fn check_cluster(&self) -> Result<(), ConfigError> {
        let voters = &self.controller_quorum_voters;
        match self.process_roles {
            ProcessRoles::Combined => {}
            ProcessRoles::Controller if voters.is_empty() => {
                return Err(ConfigError::Mismatch {
                    setting: "process.roles",
                    problem: "controller alone, with no controller.quorum.voters: a quorum \
                              of itself that no broker follows"
                        .into(),
                    fix: "for a single node, use broker,controller; for a controller, name \
                          the voters (this node among them)"
                        .into(),
                });
            }
            ProcessRoles::Controller => {}
            ProcessRoles::Broker => return self.check_broker_only(),
        }
        let clustered = voters.iter().any(|v| v.node_id != self.node_id);
        let mine = voters.iter().find(|v| v.node_id == self.node_id);
        let mismatch = |setting, problem: String, fix: String| ConfigError::Mismatch {
            setting,
            problem,
            fix,
        };
        let Some(mine) = mine else {
            if !clustered {
                return Ok(());
            }
            let problem = format!(
                "node.id={} is not among the voters ({})",
                self.node_id,
                voters_text(voters)
            );
            let fix = format!(
                "a controller is a voter: add {}@HOST:PORT to controller.quorum.voters, set \
                 node.id to this node's voter id, or make it a broker-only node \
                 (process.roles=broker)",
                self.node_id
            );
            return Err(mismatch("controller.quorum.voters", problem, fix));
        };
        let controller_name = self
            .controller_listener_names
            .first()
            .map_or("CONTROLLER", String::as_str);
        match &self.controller_listen {
            None if clustered => {
                let problem = format!(
                    "no {controller_name} listener (controller.listener.names) for the metadata \
                     quorum of {}",
                    voters_text(voters)
                );
                let fix = format!(
                    "add {controller_name}://{}:{} (this node's voter address) to listeners",
                    mine.host, mine.port
                );
                Err(mismatch("listeners", problem, fix))
            }
            Some(controller) if controller.port != mine.port => {
                let problem = format!(
                    "the {controller_name} listener is on port {}, and controller.quorum.voters \
                     gives node {} port {}",
                    controller.port, self.node_id, mine.port
                );
                let fix = "make the two ports one".to_string();
                Err(mismatch("listeners", problem, fix))
            }
            _ => Ok(()),
        }
    }
}

impl BrokerConfig {
    /// A broker-only node follows the metadata log of the voters, of which it is not one.
    fn check_broker_only(&self) -> Result<(), ConfigError> {
        let voters = &self.controller_quorum_voters;
        let mismatch = |problem: String, fix: String| ConfigError::Mismatch {
            setting: "controller.quorum.voters",
            problem,
            fix,
        };
        if voters.is_empty() {
            let problem = "process.roles=broker and no voters to follow".to_string();
            let fix = "name the controllers (ID@HOST:PORT,…), or run this node as \
                       broker,controller"
                .to_string();
            return Err(mismatch(problem, fix));
        }
        if voters.iter().any(|v| v.node_id == self.node_id) {
            let problem = format!(
                "node.id={} is a voter, and process.roles=broker is none",
                self.node_id
            );
            let fix =
                "give the broker a node id of its own, or run it as broker,controller".to_string();
            return Err(mismatch(problem, fix));
        }
        Ok(())
    }
}

fn find_named<'a>(listeners: &'a [NamedListener], name: &str) -> Option<&'a Listener> {
    listeners
        .iter()
        .find(|l| l.name == name)
        .map(|l| &l.listener)
}

/// Replaces the address of `listeners`' entry `name`, or adds one.
fn set_named(listeners: &mut Vec<NamedListener>, name: String, listener: Listener) {
    match listeners.iter_mut().find(|l| l.name == name) {
        Some(entry) => entry.listener = listener,
        None => listeners.insert(0, NamedListener { name, listener }),
    }
}

fn voters_text(voters: &[Voter]) -> String {
    Voters.format(&voters.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::listener_flag;
    use crate::settings;

    /// `sets` applied to the defaults, then finished.
    fn finished(sets: &[&str]) -> Result<BrokerConfig, ConfigError> {
        let mut config = BrokerConfig::default();
        for set in sets {
            config.apply_set(set)?;
        }
        config.finish()?;
        Ok(config)
    }

    /// The message of the error `sets` finish with.
    fn refusal(sets: &[&str]) -> String {
        match finished(sets) {
            Ok(config) => panic!("{sets:?} must be refused: {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn the_defaults_finish_as_they_are() {
        let config = finished(&[]).expect("defaults");
        assert_eq!(config, BrokerConfig::default());
        assert_eq!(config.listen, Listener::new("127.0.0.1", 9092));
        assert_eq!((config.controller_listen, config.advertise), (None, None));
    }

    #[test]
    fn listeners_name_the_client_and_the_controller_listener() {
        let config = finished(&["listeners=PLAINTEXT://0.0.0.0:19092,CONTROLLER://:19093"])
            .expect("named listeners");
        assert_eq!(config.listen, Listener::new("0.0.0.0", 19092));
        assert_eq!(
            config.controller_listen,
            Some(Listener::new("0.0.0.0", 19093))
        );
        let bare = finished(&["listeners=127.0.0.1:19092"]).expect("a bare address");
        assert_eq!(bare.listen, Listener::new("127.0.0.1", 19092));

        // Without a PLAINTEXT listener, the first that is no controller listener serves
        // clients; inter.broker.listener.name picks another.
        let three = "listeners=CONTROLLER://:1,EXTERNAL://:2,INTERNAL://:3";
        let map = "listener.security.protocol.map=CONTROLLER:PLAINTEXT,EXTERNAL:PLAINTEXT,\
                   INTERNAL:PLAINTEXT";
        let config = finished(&[three, map]).expect("first non-controller");
        assert_eq!(config.listen.port, 2);
        let advertised = "advertised.listeners=EXTERNAL://e:12,INTERNAL://i:13";
        let config = finished(&[
            three,
            map,
            "inter.broker.listener.name=internal",
            advertised,
        ])
        .expect("named client listener");
        assert_eq!(config.listen.port, 3);
        assert_eq!(config.advertise, Some(Listener::new("i", 13)));
        assert_eq!(config.controller_listen.map(|c| c.port), Some(1));
    }

    #[test]
    fn listen_and_advertise_flags_replace_the_client_listener() {
        let mut config = BrokerConfig::default();
        config
            .apply_set("listeners=CONTROLLER://:9093,PLAINTEXT://:9092")
            .expect("listeners");
        config.set_client_listener(listener_flag("--listen", "127.0.0.1:0").expect("flag"));
        config.set_advertised_listener(listener_flag("--advertise", "h:1").expect("flag"));
        config.finish().expect("finish");
        assert_eq!(config.listen, Listener::new("127.0.0.1", 0));
        assert_eq!(
            config.controller_listen.as_ref().map(|c| c.port),
            Some(9093)
        );
        assert_eq!(config.advertise, Some(Listener::new("h", 1)));
        let listeners = settings::find("listeners").expect("a setting");
        assert_eq!(
            listeners.value(&config),
            "CONTROLLER://0.0.0.0:9093,PLAINTEXT://127.0.0.1:0"
        );
        let err = listener_flag("--listen", "nowhere").expect_err("no port");
        assert_eq!(err.to_string(), "--listen nowhere: expected HOST:PORT");
    }

    #[test]
    fn listener_names_that_do_not_fit_are_refused() {
        let only_controller = refusal(&["listeners=CONTROLLER://:9093"]);
        assert!(
            only_controller.contains("are all controller listeners"),
            "{only_controller}"
        );
        let missing = refusal(&["inter.broker.listener.name=INTERNAL"]);
        assert!(
            missing.contains("INTERNAL is not among listeners"),
            "{missing}"
        );
        let shared = refusal(&["inter.broker.listener.name=CONTROLLER"]);
        assert!(
            shared.contains("also in controller.listener.names"),
            "{shared}"
        );
        let stray = refusal(&["advertised.listeners=OTHER://h:1"]);
        assert!(stray.starts_with("advertised.listeners: OTHER"), "{stray}");
    }

    #[test]
    fn listeners_other_than_plaintext_are_refused() {
        let tls = refusal(&["listeners=PLAINTEXT://:9092,SSL://:9094"]);
        assert!(
            tls.starts_with("listener SSL is SSL in listener.security.protocol.map"),
            "{tls}"
        );
        let sasl = refusal(&["listener.security.protocol.map=PLAINTEXT:SASL_PLAINTEXT"]);
        assert!(sasl.contains("is SASL_PLAINTEXT"), "{sasl}");
        let unmapped = refusal(&["listeners=PLAINTEXT://:9092,INTERNAL://:9094"]);
        assert!(unmapped.contains("add INTERNAL:PLAINTEXT"), "{unmapped}");
        finished(&[
            "listeners=PLAINTEXT://:9092,INTERNAL://:9094",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
        ])
        .expect("INTERNAL mapped to PLAINTEXT");
    }

    #[test]
    fn the_session_outlasts_a_heartbeat() {
        let refused = refusal(&["broker.session.timeout.ms=2000"]);
        assert!(
            refused.starts_with("broker.session.timeout.ms: 2000 is not more"),
            "{refused}"
        );
        let config = finished(&["broker.heartbeat.interval.ms=500"]).expect("shorter");
        assert_eq!(config.broker_heartbeat_interval_ms, 500);
    }

    const VOTERS: &str = "controller.quorum.voters=1@127.0.0.1:19191,2@127.0.0.1:19192";

    #[test]
    fn a_cluster_node_is_a_voter_with_its_controller_listener_on_its_voter_port() {
        let node = |id: &'static str, controller: &'static str| {
            let listeners = format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://{controller}");
            finished(&[id, VOTERS, &listeners])
        };
        let config = node("node.id=2", "127.0.0.1:19192").expect("voter 2");
        assert_eq!(config.controller_quorum_voters.len(), 2);

        let not_a_voter = node("node.id=3", "127.0.0.1:19193").expect_err("not a voter");
        let not_a_voter = not_a_voter.to_string();
        assert!(
            not_a_voter.starts_with("controller.quorum.voters: node.id=3 is not among the voters"),
            "{not_a_voter}"
        );
        let wrong_port = node("node.id=2", "127.0.0.1:19999").expect_err("other port");
        assert!(
            wrong_port
                .to_string()
                .contains("port 19999, and controller.quorum.voters gives node 2 port 19192"),
            "{wrong_port}"
        );
        let no_controller = refusal(&["node.id=1", VOTERS]);
        assert!(
            no_controller.contains("add CONTROLLER://127.0.0.1:19191"),
            "{no_controller}"
        );
        let controller = finished(&[
            "node.id=1",
            VOTERS,
            "process.roles=controller",
            "listeners=CONTROLLER://127.0.0.1:19191",
        ]);
        assert!(
            controller.is_ok(),
            "a controller-only voter needs no client listener"
        );
        let refused = refusal(&["node.id=3", VOTERS, "process.roles=controller"]);
        assert!(refused.contains("not among the voters"), "{refused}");
        let broker = finished(&["node.id=7", VOTERS, "process.roles=broker"]);
        assert!(broker.is_ok(), "a broker-only node beside the voters");
        let refused = refusal(&["node.id=1", VOTERS, "process.roles=broker"]);
        assert!(refused.contains("is a voter"), "{refused}");
    }

    #[test]
    fn a_single_node_needs_no_controller_listener() {
        let alone = finished(&["node.id=1", "controller.quorum.voters=1@localhost:9093"])
            .expect("its own quorum");
        assert_eq!(alone.controller_listen, None);
        finished(&[
            "node.id=1",
            "controller.quorum.voters=1@localhost:9093",
            "listeners=PLAINTEXT://:9092,CONTROLLER://:9093",
        ])
        .expect("with its controller listener");
        let refused = refusal(&["process.roles=broker"]);
        assert!(refused.contains("no voters to follow"), "{refused}");
    }
}
