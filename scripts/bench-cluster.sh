#!/usr/bin/env bash
# Cluster timings (not run in CI): controller failover, metadata propagation, and the restart of
# a 3-node cluster holding many topics, each on a fresh local cluster of scripts/cluster.sh
# (scripts/bench_cluster.py says how each is measured).
#
#   bash scripts/bench-cluster.sh
#
# Environment knobs:
#   ONLY                  failover,propagation,restart (default: all three), comma-separated
#   FAILOVER_RUNS         kills of the active controller (default 10)
#   PROPAGATION_TOPICS    topics created and watched (default 20)
#   RESTART_TOPICS, RESTART_PARTITIONS, RESTART_REPLICATION, RESTART_RUNS
#                         the restarted cluster's topics, partitions each, replication factor and
#                         how many restarts (defaults 1000, 6, 3, 3: 6000 partition logs a node)
#   ODRADEK_BIN           the broker binary (else the release build, built first if absent)
#   NODE_CORES            shards per node, as scripts/cluster.sh (default: the CPUs / 3, min 1)
#   TMPDIR                where the clusters' directories go (removed at the end)
#
# Everything goes to bench-results/cluster-<UTC timestamp>/: results.json (every sample),
# summary.txt, and each cluster's node logs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[bench-cluster] %s\n' "$*" >&2; }
fail() {
    printf '[bench-cluster] FAIL: %s\n' "$*" >&2
    exit 1
}

if [[ -z "${ODRADEK_BIN:-}" ]]; then
    ODRADEK_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/odradek"
    log "building odradek (release)"
    cargo build --release -p odradek-broker --bin odradek >&2
fi
[[ -x "$ODRADEK_BIN" ]] || fail "no broker binary at $ODRADEK_BIN"
export ODRADEK_BIN

OUT="$ROOT/bench-results/cluster-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
WORK="$(mktemp -d -t odradek-bench-cluster-XXXXXX)"

# Ports BASE_PORT+1..3 (Kafka) and +101..103 (quorum): a base whose neighbours are free now.
BASE_PORT="$(python3 - <<'PY'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 60000)
    socks = []
    try:
        for port in [base + i for i in (1, 2, 3, 101, 102, 103)]:
            s = socket.socket(); s.bind(("127.0.0.1", port)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
)"

cleanup() {
    local status=$? dir
    for dir in "$WORK"/*/; do
        [[ -f "$dir/nodes" ]] || continue
        CLUSTER_DIR="$dir" bash "$ROOT/scripts/cluster.sh" down >/dev/null 2>&1 || true
        mkdir -p "$OUT/logs/$(basename "$dir")"
        for node in "$dir"/node-*; do
            cp "$node/odradek.log" "$OUT/logs/$(basename "$dir")/$(basename "$node").log" \
                2>/dev/null || true
            cp "$node/odradek.log.prev" \
                "$OUT/logs/$(basename "$dir")/$(basename "$node").prev.log" 2>/dev/null || true
        done
    done
    rm -rf "$WORK"
    ((status == 0)) || log "failed; node logs in $OUT/logs"
    exit $status
}
trap cleanup EXIT

log "binary $ODRADEK_BIN ($(git -C "$ROOT" rev-parse --short HEAD)), clusters in $WORK, \
ports $((BASE_PORT + 1))… , results in $OUT"
python3 "$ROOT/scripts/bench_cluster.py" --cluster-sh "$ROOT/scripts/cluster.sh" \
    --work "$WORK" --base-port "$BASE_PORT" --out "$OUT" \
    --only "${ONLY:-failover,propagation,restart}" \
    --failover-runs "${FAILOVER_RUNS:-10}" \
    --propagation-topics "${PROPAGATION_TOPICS:-20}" \
    --restart-topics "${RESTART_TOPICS:-1000}" \
    --restart-partitions "${RESTART_PARTITIONS:-6}" \
    --restart-replication "${RESTART_REPLICATION:-3}" \
    --restart-runs "${RESTART_RUNS:-3}" | tee "$OUT/summary.txt"
