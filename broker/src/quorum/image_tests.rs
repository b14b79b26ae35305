//! The metadata image: placement, fencing, explicit assignments, determinism.

use super::*;

fn broker(node_id: i32, rack: Option<&str>) -> Command {
    Command::RegisterBroker {
        registration: BrokerRegistration {
            node_id,
            incarnation: 7,
            host: "127.0.0.1".into(),
            port: 9092 + node_id as u16,
            rack: rack.map(String::from),
            fenced: false,
        },
        producer_id_floor: 0,
    }
}

fn create(name: &str, partitions: i32, replication_factor: i16) -> Command {
    assigned(name, partitions, replication_factor, None)
}

fn assigned(
    name: &str,
    partitions: i32,
    replication_factor: i16,
    assignment: Option<Assignment>,
) -> Command {
    Command::CreateTopic {
        name: name.into(),
        id: Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788),
        partitions,
        replication_factor,
        assignment,
        configs: BTreeMap::new(),
    }
}

fn image_of(brokers: &[(i32, Option<&str>)]) -> ClusterImage {
    let mut image = ClusterImage::default();
    for (id, rack) in brokers {
        image.apply(broker(*id, *rack)).expect("register");
    }
    image
}

#[test]
fn placement_spreads_leaders_and_never_repeats_a_broker() {
    let mut image = image_of(&[(1, None), (2, None), (3, None)]);
    let Ok(Outcome::Topic(meta)) = image.apply(create("t", 6, 3)) else {
        panic!("created");
    };
    let mut leaders = BTreeMap::new();
    for state in &meta.partition_states {
        let mut replicas = state.replicas.clone();
        replicas.sort_unstable();
        assert_eq!(replicas, vec![1, 2, 3]);
        assert_eq!(
            state.isr, state.replicas,
            "every live replica starts in sync"
        );
        *leaders.entry(state.leader).or_insert(0) += 1;
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
}

#[test]
fn placement_puts_replicas_in_different_racks() {
    let racks = [
        (1, Some("a")),
        (2, Some("a")),
        (3, Some("b")),
        (4, Some("b")),
    ];
    let mut image = image_of(&racks);
    let Ok(Outcome::Topic(meta)) = image.apply(create("t", 8, 2)) else {
        panic!("created");
    };
    let rack = |id: i32| if id <= 2 { "a" } else { "b" };
    for state in &meta.partition_states {
        assert_ne!(
            rack(state.replicas[0]),
            rack(state.replicas[1]),
            "{state:?}"
        );
    }
}

#[test]
fn too_few_brokers_is_invalid_replication_factor() {
    let mut image = image_of(&[(1, None), (2, None)]);
    let error = image.apply(create("t", 1, 3)).expect_err("refused");
    assert_eq!(error.error, ResponseError::InvalidReplicationFactor);
    assert!(image.topics.is_empty());
}

#[test]
fn fencing_the_last_isr_member_leaves_no_leader_until_it_returns() {
    let mut image = image_of(&[(1, None), (2, None)]);
    image.apply(create("t", 2, 1)).expect("created");
    let led_by_1 = |image: &ClusterImage| {
        image.topics["t"]
            .partition_states
            .iter()
            .position(|p| p.replicas == vec![1])
            .expect("one partition on broker 1")
    };
    let p = led_by_1(&image);
    let fence = Command::FenceBroker {
        node_id: 1,
        incarnation: 7,
    };
    image.apply(fence).expect("fenced");
    let state = &image.topics["t"].partition_states[p];
    assert_eq!((state.leader, state.leader_epoch), (NO_LEADER, 1));
    // A fence for another incarnation (an older registration) changes nothing.
    let stale = Command::UnfenceBroker {
        node_id: 1,
        incarnation: 6,
    };
    image.apply(stale).expect("ignored");
    assert_eq!(image.topics["t"].partition_states[p].leader, NO_LEADER);
    image
        .apply(Command::UnfenceBroker {
            node_id: 1,
            incarnation: 7,
        })
        .expect("unfenced");
    let state = &image.topics["t"].partition_states[p];
    assert_eq!((state.leader, state.leader_epoch), (1, 2));
}

#[test]
fn fencing_moves_leadership_to_a_live_isr_member() {
    let mut image = image_of(&[(1, None), (2, None)]);
    let command = assigned("t", 1, 2, Some(vec![vec![1, 2]]));
    image.apply(command).expect("created");
    assert_eq!(image.topics["t"].partition_states[0].isr, vec![1, 2]);
    image
        .apply(Command::FenceBroker {
            node_id: 1,
            incarnation: 7,
        })
        .expect("fenced");
    let state = &image.topics["t"].partition_states[0];
    assert_eq!((state.leader, state.isr.clone()), (2, vec![2]));
}

#[test]
fn explicit_assignments_are_checked() {
    let mut image = image_of(&[(1, None), (2, None)]);
    for bad in [
        vec![vec![1, 1]],
        vec![vec![1, 9]],
        vec![vec![1], vec![1, 2]],
    ] {
        let command = assigned("t", 1, 1, Some(bad.clone()));
        let error = image.apply(command).expect_err("refused");
        assert_eq!(
            error.error,
            ResponseError::InvalidReplicaAssignment,
            "{bad:?}"
        );
    }
}

#[test]
fn every_node_applying_the_same_log_gets_the_same_image() {
    let log = [
        broker(1, None),
        broker(2, None),
        create("t", 4, 2),
        Command::CreatePartitions {
            name: "t".into(),
            count: 6,
            assignment: None,
        },
        create("t", 1, 1),
        Command::DeleteTopic { name: "t".into() },
    ];
    let (mut a, mut b) = (ClusterImage::default(), ClusterImage::default());
    let outcomes_a: Vec<_> = log.iter().map(|c| a.apply(c.clone())).collect();
    let outcomes_b: Vec<_> = log.iter().map(|c| b.apply(c.clone())).collect();
    assert_eq!(a, b);
    assert_eq!(outcomes_a, outcomes_b);
    assert!(matches!(outcomes_a[4], Err(ref e) if e.error == ResponseError::TopicAlreadyExists));
    let bytes = serde_json::to_vec(&a).expect("encode");
    assert_eq!(
        serde_json::from_slice::<ClusterImage>(&bytes).expect("decode"),
        a
    );
}

#[test]
fn each_registration_gets_a_new_producer_id_generation() {
    let mut image = ClusterImage::default();
    let first = image.apply(broker(1, None)).expect("registered");
    assert_eq!(
        first,
        Outcome::Registered {
            producer_id_generation: 1
        }
    );
    let Command::RegisterBroker { registration, .. } = broker(2, None) else {
        unreachable!()
    };
    let second = image
        .apply(Command::RegisterBroker {
            registration,
            producer_id_floor: 40,
        })
        .expect("registered");
    assert_eq!(
        second,
        Outcome::Registered {
            producer_id_generation: 41
        }
    );
}

fn alter(leader: i32, epochs: (i32, i32), isr: Vec<i32>) -> Command {
    Command::AlterPartition(IsrChange {
        topic: "t".into(),
        partition: 0,
        leader,
        leader_epoch: epochs.0,
        partition_epoch: epochs.1,
        isr,
    })
}

#[test]
fn an_isr_change_applies_only_from_the_current_leader_at_the_current_epochs() {
    let mut image = image_of(&[(1, None), (2, None), (3, None)]);
    image
        .apply(assigned("t", 1, 3, Some(vec![vec![1, 2, 3]])))
        .expect("created");
    let shrunk = image.apply(alter(1, (0, 0), vec![1, 3])).expect("shrunk");
    let Outcome::Partition(state) = shrunk else {
        panic!("{shrunk:?}");
    };
    assert_eq!((state.isr.clone(), state.partition_epoch), (vec![1, 3], 1));

    // Computed from the state before the change: refused, nothing changes.
    let stale = image.apply(alter(1, (0, 0), vec![1])).expect_err("stale");
    assert_eq!(stale.error, ResponseError::InvalidUpdateVersion);
    // From a broker that does not lead, or at another leader epoch.
    let deposed = image
        .apply(alter(2, (0, 1), vec![1, 2]))
        .expect_err("not leader");
    assert_eq!(deposed.error, ResponseError::FencedLeaderEpoch);
    let old_epoch = image
        .apply(alter(1, (3, 1), vec![1]))
        .expect_err("other epoch");
    assert_eq!(old_epoch.error, ResponseError::FencedLeaderEpoch);
    // Not a set of the replicas, or without the leader.
    for bad in [vec![1, 1], vec![1, 9], vec![2, 3]] {
        let error = image
            .apply(alter(1, (0, 1), bad.clone()))
            .expect_err("invalid");
        assert_eq!(error.error, ResponseError::InvalidRequest, "{bad:?}");
    }
    assert_eq!(image.topics["t"].partition_states[0].isr, vec![1, 3]);

    // A fenced broker cannot join; a fenced member leaves the ISR of partitions it follows.
    image
        .apply(Command::FenceBroker {
            node_id: 2,
            incarnation: 7,
        })
        .expect("fenced");
    let fenced = image
        .apply(alter(1, (0, 1), vec![1, 2, 3]))
        .expect_err("fenced");
    assert_eq!(fenced.error, ResponseError::IneligibleReplica);
    image
        .apply(Command::FenceBroker {
            node_id: 3,
            incarnation: 7,
        })
        .expect("fenced");
    let state = &image.topics["t"].partition_states[0];
    assert_eq!(
        (state.leader, state.isr.clone(), state.partition_epoch),
        (1, vec![1], 2)
    );
}

#[test]
fn preferred_elections_give_leadership_back_to_the_first_replica_when_it_is_in_sync() {
    let mut image = image_of(&[(1, None), (2, None), (3, None)]);
    image
        .apply(assigned("t", 1, 3, Some(vec![vec![1, 2, 3]])))
        .expect("created");
    let fence = |node_id| Command::FenceBroker {
        node_id,
        incarnation: 7,
    };
    image.apply(fence(1)).expect("fenced");
    let state = image.topics["t"].partition_states[0].clone();
    assert_eq!((state.leader, state.isr.clone()), (2, vec![2, 3]));
    let elect = |unclean| Command::ElectLeaders {
        partitions: Some(vec![("t".into(), 0), ("gone".into(), 0)]),
        unclean,
    };
    let Ok(Outcome::Elections(results)) = image.apply(elect(false)) else {
        panic!("elections");
    };
    let errors: Vec<_> = results
        .iter()
        .map(|(_, _, e)| e.as_ref().map(|e| e.error))
        .collect();
    assert_eq!(
        errors,
        vec![
            Some(ResponseError::PreferredLeaderNotAvailable),
            Some(ResponseError::UnknownTopicOrPartition)
        ]
    );
    // Back and in sync (its leader's AlterPartition): broker 1 leads again.
    image
        .apply(Command::UnfenceBroker {
            node_id: 1,
            incarnation: 7,
        })
        .expect("unfenced");
    image
        .apply(Command::AlterPartition(IsrChange {
            topic: "t".into(),
            partition: 0,
            leader: 2,
            leader_epoch: 1,
            partition_epoch: 1,
            isr: vec![1, 2, 3],
        }))
        .expect("ISR grown");
    assert_eq!(image.imbalanced_partitions(10), vec![("t".to_string(), 0)]);
    let Ok(Outcome::Elections(results)) = image.apply(elect(false)) else {
        panic!("elections");
    };
    assert!(results[0].2.is_none(), "{results:?}");
    let state = &image.topics["t"].partition_states[0];
    assert_eq!((state.leader, state.leader_epoch), (1, 2));
    assert!(image.imbalanced_partitions(10).is_empty());
    // Every partition, nothing to do: nothing reported.
    let all = Command::ElectLeaders {
        partitions: None,
        unclean: false,
    };
    assert_eq!(image.apply(all), Ok(Outcome::Elections(Vec::new())));
}

#[test]
fn an_unclean_election_takes_any_live_replica_only_where_no_leader_is_left() {
    let mut image = image_of(&[(1, None), (2, None)]);
    image
        .apply(assigned("t", 1, 2, Some(vec![vec![1, 2]])))
        .expect("created");
    image
        .apply(Command::AlterPartition(IsrChange {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: vec![1],
        }))
        .expect("shrunk");
    image
        .apply(Command::FenceBroker {
            node_id: 1,
            incarnation: 7,
        })
        .expect("fenced");
    assert_eq!(image.topics["t"].partition_states[0].leader, NO_LEADER);
    let unclean = Command::ElectLeaders {
        partitions: Some(vec![("t".into(), 0)]),
        unclean: true,
    };
    let Ok(Outcome::Elections(results)) = image.apply(unclean.clone()) else {
        panic!("elections");
    };
    assert!(results[0].2.is_none(), "{results:?}");
    let state = &image.topics["t"].partition_states[0];
    assert_eq!((state.leader, state.isr.clone()), (2, vec![2]));
    let Ok(Outcome::Elections(results)) = image.apply(unclean) else {
        panic!("elections");
    };
    assert_eq!(
        results[0].2.as_ref().map(|e| e.error),
        Some(ResponseError::ElectionNotNeeded)
    );
}
