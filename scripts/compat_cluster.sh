#!/usr/bin/env bash
# Client compatibility against a 3-node cluster: PyPI's confluent-kafka and kafka-python create
# replicated topics through a broker that is not the quorum's leader, produce through one broker
# and consume in a group through another (scripts/compat_cluster.py says what is checked).
#
#   bash scripts/compat_cluster.sh
#
# Environment knobs: ODRADEK_BIN, COMPAT_PROFILE and COMPAT_VENV as scripts/compat.sh.
# The cluster (scripts/cluster.sh, in a temporary directory) is always stopped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[compat-cluster] %s\n' "$*" >&2; }
fail() {
    printf '[compat-cluster] FAIL: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=scripts/lib-compat.sh
source "$ROOT/scripts/lib-compat.sh"
resolve_odradek_bin
export ODRADEK_BIN

WORK="$(mktemp -d -t odradek-compat-cluster-XXXXXX)"
export CLUSTER_DIR="$WORK/cluster"
# Ports BASE_PORT+1..3 (Kafka) and +101..103 (quorum): a base whose neighbours are free now.
BASE_PORT="$(python3 - <<'PY'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 60000)
    try:
        socks = []
        for port in [base + i for i in (1, 2, 3, 101, 102, 103)]:
            s = socket.socket(); s.bind(("127.0.0.1", port)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
)"
export BASE_PORT

cleanup() {
    local status=$?
    if [[ $status -ne 0 ]]; then
        for log_file in "$CLUSTER_DIR"/node-*/odradek.log; do
            [[ -f "$log_file" ]] || continue
            printf '[compat-cluster] --- last lines of %s ---\n' "$log_file" >&2
            tail -n 30 "$log_file" >&2 || true
        done
    fi
    bash "$ROOT/scripts/cluster.sh" down >/dev/null 2>&1 || true
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT

BOOT="$(bash "$ROOT/scripts/cluster.sh" up 3 | tail -n 1)"
log "cluster up: $BOOT"

VENV="${COMPAT_VENV:-$ROOT/target/compat-venv}"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import confluent_kafka, kafka' 2>/dev/null; then
    log "installing confluent-kafka and kafka-python into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'confluent-kafka>=2.3,<3' \
        'kafka-python>=3,<4' lz4 python-snappy xxhash
fi
# The quorum's leader, as DescribeCluster names it (librdkafka's describe_cluster reads Metadata).
CONTROLLER="$("$ODRADEK_BIN" cluster describe --bootstrap "${BOOT%%,*}" --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["controller_id"])')"
log "active controller: node $CONTROLLER"
"$VENV/bin/python" "$ROOT/scripts/compat_cluster.py" "$BOOT" "$CONTROLLER" ||
    fail "clients against the cluster"
log "all cluster compatibility checks passed"
