//! The cross-shard hop: a request to another shard and its reply over glommio's channel mesh,
//! the way the broker's router sends partition work to the owning shard (two executors on their
//! own threads, one mesh channel each way).
//!
//! `cargo bench -p odradek-perf --bench hop`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::LocalExecutorBuilder;

/// Round trips measured per criterion sample batch are spread over this many requests in
/// flight, as several connections' requests would be.
const IN_FLIGHT: u64 = 16;

/// Runs `round_trips` requests from shard 0 to shard 1 and back; returns the time they took.
fn hop(round_trips: u64) -> Duration {
    let mesh = MeshBuilder::<u64, _>::full(2, 1024);
    let echo_mesh = mesh.clone();
    let echo = LocalExecutorBuilder::default()
        .spawn(move || async move {
            let (senders, mut receivers) = echo_mesh.join().await.expect("join");
            for (peer, receiver) in receivers.streams() {
                while let Some(n) = receiver.recv().await {
                    if senders.send_to(peer, n).await.is_err() {
                        break;
                    }
                }
            }
        })
        .expect("echo executor");
    let caller = LocalExecutorBuilder::default()
        .spawn(move || async move {
            let (senders, mut receivers) = mesh.join().await.expect("join");
            let (_, replies) = receivers.streams().pop().expect("a peer");
            // Peer ids follow join order: the echo shard is whichever this one is not.
            let echo_peer = 1 - senders.peer_id();
            let start = Instant::now();
            let mut sent = 0u64;
            while sent < IN_FLIGHT.min(round_trips) {
                senders.send_to(echo_peer, sent).await.expect("send");
                sent += 1;
            }
            for _ in 0..round_trips {
                replies.recv().await.expect("reply");
                if sent < round_trips {
                    senders.send_to(echo_peer, sent).await.expect("send");
                    sent += 1;
                }
            }
            let took = start.elapsed();
            senders.close();
            took
        })
        .expect("caller executor");
    let took = caller.join().expect("caller");
    echo.join().expect("echo");
    took
}

fn cross_shard_hop(c: &mut Criterion) {
    c.bench_function("cross-shard round trip (mesh, 16 in flight)", |b| {
        b.iter_custom(hop)
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = cross_shard_hop
}
criterion_main!(benches);
