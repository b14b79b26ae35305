#!/usr/bin/env bash
# A local odradek cluster on loopback: N nodes, each a process of its own with its own data
# directory, every one broker and controller (combined mode), all voters of one metadata quorum.
#
#   scripts/cluster.sh up N     start nodes 1..N (formatting their data directories the first
#                               time, with one cluster id); prints the bootstrap list last
#   scripts/cluster.sh down     stop them (SIGTERM; SIGKILL for any still running after 15 s)
#   scripts/cluster.sh status   which are running (exit 0: all of them, 3: not all)
#   scripts/cluster.sh start I  start node I again, with the command line `up` gave it (the
#                               cluster's other nodes are left as they are)
#   scripts/cluster.sh kill I   stop node I at once (SIGKILL: a crash, no controlled shutdown)
#
# Environment knobs:
#   ODRADEK_BIN   the broker binary (else target/release/odradek, built first if absent)
#   CLUSTER_DIR   the nodes' directories node-1 … node-N, the cluster id and the node count
#                 (default: ./odradek-cluster)
#   BASE_PORT     node i listens for Kafka clients on BASE_PORT+i and for the quorum on
#                 BASE_PORT+100+i (default: 19090, so 19091… and 19191…)
#   NODE_CORES    shards per node (default: the CPUs divided among the nodes, at least 1;
#                 `start I` uses what `up` used)
#   START_WAIT_S  how long `up` and `start` wait for each node to listen (default: 60)
#   STOP_WAIT_S   how long `down` waits for the nodes to exit before SIGKILL (default: 15; a
#                 node with thousands of partition logs takes longer to close them: 26-55 s
#                 for 6000 each on 2 cores, BENCHMARKS.md)
#
# Node i keeps its log in node-i/odradek.log (the previous run's in odradek.log.prev) and its
# process id in node-i/pid.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="${CLUSTER_DIR:-./odradek-cluster}"
BASE_PORT="${BASE_PORT:-19090}"
START_WAIT_S="${START_WAIT_S:-60}"
# Ports BASE_PORT+1 … +NODES_MAX serve clients and +101 … +100+NODES_MAX the quorum: more nodes
# would make the two ranges meet.
NODES_MAX=99
STOP_WAIT_S="${STOP_WAIT_S:-15}"

log() { printf '[cluster] %s\n' "$*" >&2; }
fail() {
    printf '[cluster] error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat >&2 <<'EOF'
usage: scripts/cluster.sh up N | down | status | start I | kill I
  up N     start an N-node local cluster (1 <= N <= 99) and print its bootstrap list
  down     stop its nodes
  status   show which nodes run
  start I  start node I of the cluster again (as `up` started it)
  kill I   kill node I (SIGKILL)
EOF
    exit 2
}

is_count() { [[ "$1" =~ ^[0-9]+$ ]] && ((10#$1 >= 1 && 10#$1 <= NODES_MAX)); }

# The pid in node directory $1's pid file, if that process is still an odradek (a pid file left
# by a crash may name a pid the system has given to another program since).
running_pid() {
    local pid_file="$1/pid" pid
    [[ -f "$pid_file" ]] || return 1
    pid="$(<"$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q odradek || return 1
    printf '%s\n' "$pid"
}

# Sets NODE_DIRS to the node directories of the cluster at CLUSTER_DIR (made absolute), in order.
find_nodes() {
    local count
    [[ -f "$CLUSTER_DIR/nodes" ]] || fail "no cluster at $CLUSTER_DIR (scripts/cluster.sh up N)"
    CLUSTER_DIR="$(cd "$CLUSTER_DIR" && pwd)"
    count="$(<"$CLUSTER_DIR/nodes")"
    is_count "$count" || fail "$CLUSTER_DIR/nodes holds no node count: '$count'"
    NODE_DIRS=()
    for ((i = 1; i <= count; i++)); do NODE_DIRS+=("$CLUSTER_DIR/node-$i"); done
}

# Sets ODRADEK_BIN: as given, else the release build, built first if absent.
resolve_bin() {
    if [[ -z "${ODRADEK_BIN:-}" ]]; then
        ODRADEK_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/odradek"
        if [[ ! -x "$ODRADEK_BIN" ]]; then
            log "building odradek (release)"
            (cd "$ROOT" && cargo build --release -p odradek-broker --bin odradek >&2)
        fi
    fi
    [[ -x "$ODRADEK_BIN" ]] || fail "no broker binary at $ODRADEK_BIN (set ODRADEK_BIN)"
}

# The cluster's id, made the first time: 16 random bytes in URL-safe base64 without padding
# (22 characters, as Kafka's `kafka-storage.sh random-uuid` writes them).
cluster_id() {
    local file="$CLUSTER_DIR/cluster.id"
    if [[ ! -s "$file" ]]; then
        head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$file"
    fi
    cat "$file"
}

# Waits until node directory $1's log says it listens; fails if the node exits first or the wait
# passes START_WAIT_S.
wait_listening() {
    local dir="$1" pid="$2" deadline=$((SECONDS + START_WAIT_S))
    until grep -q "odradek listening on" "$dir/odradek.log" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$(basename "$dir") exited before listening; the end of its log:"
            tail -n 20 "$dir/odradek.log" >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "$(basename "$dir") does not listen after ${START_WAIT_S} s; see $dir/odradek.log"
            return 1
        fi
        sleep 0.2
    done
}

# Formats (the first time) and starts node $1 of a $2-node cluster with base port $3, $4 shards
# and cluster id $5, in the background; writes its pid and address files.
launch_node() {
    local i="$1" count="$2" base="$3" cores="$4" id="$5" voters="" j
    for ((j = 1; j <= count; j++)); do
        voters+="${voters:+,}$j@127.0.0.1:$((base + 100 + j))"
    done
    local dir="$CLUSTER_DIR/node-$i" kafka=$((base + i)) quorum=$((base + 100 + i))
    local settings=(
        --set "node.id=$i"
        --set "process.roles=broker,controller"
        --set "listeners=PLAINTEXT://127.0.0.1:$kafka,CONTROLLER://127.0.0.1:$quorum"
        --set "controller.quorum.voters=$voters"
        --set "log.dirs=$dir/data"
    )
    mkdir -p "$dir"
    "$ODRADEK_BIN" format --cluster-id "$id" --ignore-formatted "${settings[@]}" >&2 ||
        fail "cannot format node-$i's data directory $dir/data"
    [[ -f "$dir/odradek.log" ]] && mv -f "$dir/odradek.log" "$dir/odradek.log.prev"
    # setsid: a node outlives this script and the terminal it ran in.
    setsid "$ODRADEK_BIN" --cores "$cores" "${settings[@]}" \
        </dev/null >"$dir/odradek.log" 2>&1 &
    local pid=$!
    printf '%s\n' "$pid" >"$dir/pid"
    printf '127.0.0.1:%s\n' "$kafka" >"$dir/address"
    log "node-$i: pid $pid, Kafka 127.0.0.1:$kafka, quorum 127.0.0.1:$quorum"
}

up() {
    local count="$1"
    is_count "$count" || fail "up needs a node count from 1 to $NODES_MAX, not '$count'"
    [[ "$START_WAIT_S" =~ ^[0-9]+$ ]] ||
        fail "START_WAIT_S must be a number of seconds, not '$START_WAIT_S'"
    local last_port=$((BASE_PORT + 100 + count))
    if ! [[ "$BASE_PORT" =~ ^[0-9]+$ ]] || ((BASE_PORT < 1024 || last_port > 65535)); then
        fail "BASE_PORT=$BASE_PORT: nodes need ports BASE_PORT+1 … BASE_PORT+$((100 + count)), \
from 1024 to 65535"
    fi
    mkdir -p "$CLUSTER_DIR"
    CLUSTER_DIR="$(cd "$CLUSTER_DIR" && pwd)"
    if [[ -f "$CLUSTER_DIR/nodes" ]]; then
        local known
        known="$(<"$CLUSTER_DIR/nodes")"
        [[ "$known" == "$count" ]] || fail "$CLUSTER_DIR holds a $known-node cluster, not $count: \
its voters are fixed; scripts/cluster.sh down, then remove $CLUSTER_DIR to make another"
        local dir pid
        find_nodes
        for dir in "${NODE_DIRS[@]}"; do
            if pid="$(running_pid "$dir")"; then
                fail "$(basename "$dir") already runs (pid $pid): scripts/cluster.sh down first"
            fi
        done
    fi
    resolve_bin
    local id cores bootstrap=""
    id="$(cluster_id)"
    cores="${NODE_CORES:-$(($(nproc) / count))}"
    ((cores >= 1)) || cores=1
    for ((i = 1; i <= count; i++)); do
        bootstrap+="${bootstrap:+,}127.0.0.1:$((BASE_PORT + i))"
    done
    printf '%s\n' "$count" >"$CLUSTER_DIR/nodes"
    # What `start I` needs to give node I the same command line again.
    printf '%s %s\n' "$BASE_PORT" "$cores" >"$CLUSTER_DIR/launch"

    local started=() dir
    for ((i = 1; i <= count; i++)); do
        launch_node "$i" "$count" "$BASE_PORT" "$cores" "$id"
        started+=("$CLUSTER_DIR/node-$i")
    done
    for dir in "${started[@]}"; do
        if ! wait_listening "$dir" "$(<"$dir/pid")"; then
            log "stopping the nodes started"
            down
            exit 1
        fi
    done
    log "$count nodes listening; cluster $id in $CLUSTER_DIR"
    printf '%s\n' "$bootstrap"
}

down() {
    [[ "$STOP_WAIT_S" =~ ^[0-9]+$ ]] ||
        fail "STOP_WAIT_S must be a number of seconds, not '$STOP_WAIT_S'"
    find_nodes
    local dir pid pids=() names=()
    for dir in "${NODE_DIRS[@]}"; do
        if pid="$(running_pid "$dir")"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$(basename "$dir")")
        fi
        rm -f "$dir/pid"
    done
    if ((${#pids[@]} == 0)); then
        log "no node runs"
        return 0
    fi
    log "stopping ${names[*]}"
    local deadline=$((SECONDS + STOP_WAIT_S))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid still runs after ${STOP_WAIT_S} s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    log "stopped"
}

# Sets NODE to node number $1 of the cluster at CLUSTER_DIR, checked.
find_node() {
    find_nodes
    if ! [[ "$1" =~ ^[0-9]+$ ]] || ((10#$1 < 1 || 10#$1 > ${#NODE_DIRS[@]})); then
        fail "the cluster at $CLUSTER_DIR has nodes 1 to ${#NODE_DIRS[@]}, not '$1'"
    fi
    NODE=$((10#$1))
}

start_one() {
    find_node "$1"
    local dir="$CLUSTER_DIR/node-$NODE" pid base cores
    if pid="$(running_pid "$dir")"; then
        fail "node-$NODE already runs (pid $pid)"
    fi
    [[ -f "$CLUSTER_DIR/launch" ]] ||
        fail "$CLUSTER_DIR/launch is missing: the cluster was made before \`start\` existed; \
scripts/cluster.sh down, then up N"
    read -r base cores <"$CLUSTER_DIR/launch"
    resolve_bin
    launch_node "$NODE" "${#NODE_DIRS[@]}" "$base" "$cores" "$(cluster_id)"
    wait_listening "$dir" "$(<"$dir/pid")" || exit 1
    log "node-$NODE listening"
}

kill_one() {
    find_node "$1"
    local dir="$CLUSTER_DIR/node-$NODE" pid
    pid="$(running_pid "$dir")" || fail "node-$NODE does not run"
    kill -KILL "$pid" 2>/dev/null || true
    # Gone once the kernel has reaped it (setsid: it is not our child, so no wait).
    while kill -0 "$pid" 2>/dev/null && [[ "$(ps -o stat= -p "$pid")" != Z* ]]; do
        sleep 0.05
    done
    rm -f "$dir/pid"
    log "node-$NODE (pid $pid) killed"
}

status() {
    find_nodes
    local dir pid all=0 address
    for dir in "${NODE_DIRS[@]}"; do
        address="$(cat "$dir/address" 2>/dev/null || echo '?')"
        if pid="$(running_pid "$dir")"; then
            printf '%s: running, pid %s, Kafka %s\n' "$(basename "$dir")" "$pid" "$address"
        else
            printf '%s: stopped\n' "$(basename "$dir")"
            all=3
        fi
    done
    return "$all"
}

case "${1:-}" in
up)
    (($# == 2)) || usage
    up "$2"
    ;;
down)
    (($# == 1)) || usage
    down
    ;;
status)
    (($# == 1)) || usage
    status
    ;;
start)
    (($# == 2)) || usage
    start_one "$2"
    ;;
kill)
    (($# == 2)) || usage
    kill_one "$2"
    ;;
*) usage ;;
esac
