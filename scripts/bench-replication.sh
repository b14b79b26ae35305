#!/usr/bin/env bash
# Replication costs, in one sitting (not run in CI; numbers go to BENCHMARKS.md):
#
#   bash scripts/bench-replication.sh
#   RUNS=5 DURATION=20s bash scripts/bench-replication.sh
#
# 1. produce 1 KiB records, acks=all, 4 producers, 6 partitions: to RF=1 on one broker and to
#    RF=3 on a local three-broker cluster (scripts/cluster.sh, one core each), runs interleaved;
#    MB/s and the brokers' CPU seconds (user + system, every broker process) per GB produced,
#    measured from the end of the warm-up to the end of the run; medians and RF=3/RF=1.
# 2. a follower's catch-up: one follower of a 1-partition RF=3 topic is killed, CATCHUP_MB of
#    1 KiB records are produced (acks=1), the follower is started again; the time from its
#    start until it is back in the ISR (polled every 100 ms), median of the runs.
#
# On a 2-core machine the three brokers and the load generator share the cores: the RF=3
# figure is a floor, and the CPU per GB is the figure to compare. Speed is never asserted.
# Knobs: RUNS (3), DURATION (10s), WARMUP (3s), CATCHUP_MB (1024), ODRADEK_BIN, BENCH_BIN.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib-bench.sh
source scripts/lib-bench.sh

runs=${RUNS:-3}
duration=${DURATION:-10s}
warmup=${WARMUP:-3s}
catchup_mb=${CATCHUP_MB:-1024}
odradek=${ODRADEK_BIN:-${CARGO_TARGET_DIR:-target}/release/odradek}
bench_bin=${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/odradek-bench}
for bin in "$odradek" "$bench_bin"; do
    [[ -x "$bin" ]] || die "no $bin: cargo build --release -p odradek-broker -p odradek-bench"
done
export ODRADEK_BIN=$odradek
out=bench-results/replication-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
work=$(mktemp -d)
export CLUSTER_DIR=$work/cluster BASE_PORT=${BASE_PORT:-29090} NODE_CORES=1
cleanup() {
    stop_broker
    scripts/cluster.sh down >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# CPU seconds (user + system) the processes `$@` have used.
cpu_of() {
    local total=0 pid ticks
    for pid in "$@"; do
        # Fields 14 and 15 of /proc/PID/stat, after the parenthesised command name.
        ticks=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
        total=$((total + ticks))
    done
    python3 -c "import os,sys; print(int(sys.argv[1]) / os.sysconf('SC_CLK_TCK'))" "$total"
}

seconds_of() { python3 -c "import sys; s=sys.argv[1]; print(float(s[:-1]))" "$1"; }

# Runs the acks=all load against `bootstrap` with replication factor `rf` while sampling the
# CPU of `pids`; prints "MB/s CPU-s-per-GB".
load() {
    local tag=$1 bootstrap=$2 rf=$3
    shift 3
    "$bench_bin" --bootstrap "$bootstrap" --topic "repl-$tag" --partitions 6 \
        --replication-factor "$rf" --message-size 1024 --acks all --producers 4 --consumers 0 \
        --duration "$duration" --warmup "$warmup" --json "$out/$tag.json" >"$out/$tag.out" 2>&1 &
    local bench=$!
    sleep "$(seconds_of "$warmup")"
    local before after
    before=$(cpu_of "$@")
    wait "$bench" || die "odradek-bench failed: see $out/$tag.out"
    after=$(cpu_of "$@")
    python3 - "$out/$tag.json" "$before" "$after" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
cpu = float(sys.argv[3]) - float(sys.argv[2])
gb = report["publish_bytes"] / 1e9
print(f"{report['publish_mb_per_s']:.1f} {cpu / gb if gb else float('nan'):.1f}")
EOF
}

cluster_pids() { cat "$CLUSTER_DIR"/node-*/pid; }

single_run() {
    local tag=$1 data
    data=$(mktemp -d -p "$work")
    start_broker "$out/$tag.broker.log" "$odradek" --listen 127.0.0.1:0 --data-dir "$data" \
        --cores 1
    load "$tag" "$broker_addr" 1 "$broker_pid"
    stop_broker
    rm -rf "$data"
}

cluster_run() {
    local tag=$1 bootstrap
    rm -rf "$CLUSTER_DIR"
    bootstrap=$(scripts/cluster.sh up 3 2>"$out/$tag.cluster.log" | tail -1)
    # odradek-bench takes one bootstrap address.
    # shellcheck disable=SC2046
    load "$tag" "${bootstrap%%,*}" 3 $(cluster_pids)
    scripts/cluster.sh down >>"$out/$tag.cluster.log" 2>&1
}

declare -a rf1=() rf3=()
for run in $(seq "$runs"); do
    a=$(single_run "rf1-r$run")
    b=$(cluster_run "rf3-r$run")
    rf1+=("$a")
    rf3+=("$b")
    echo "run $run: RF=1 $a, RF=3 $b (MB/s, broker CPU s per GB)" | tee -a "$out/summary.txt"
done
python3 - "${rf1[*]}" "${rf3[*]}" <<'EOF' | tee -a "$out/summary.txt"
import statistics, sys
def cols(text):
    values = [float(x) for x in text.split()]
    return values[0::2], values[1::2]
(m1, c1), (m3, c3) = cols(sys.argv[1]), cols(sys.argv[2])
a, b = statistics.median(m1), statistics.median(m3)
ca, cb = statistics.median(c1), statistics.median(c3)
print(f"acks=all 1 KiB: RF=1 one broker median {a:.1f} MB/s, {ca:.1f} CPU-s/GB; "
      f"RF=3 three brokers median {b:.1f} MB/s, {cb:.1f} CPU-s/GB; "
      f"RF=3/RF=1 throughput {b / a:.3f}, CPU per GB {cb / ca:.2f}")
EOF

# A follower of `catchup-0` away while CATCHUP_MB are written, then back: seconds to the ISR.
isr_len() {
    "$odradek" topic describe catchup --bootstrap "$1" --json 2>/dev/null |
        python3 -c "import json,sys; print(len(json.load(sys.stdin)['partitions'][0]['isr']))" ||
        echo 0
}
declare -a catchups=()
for run in $(seq "$runs"); do
    rm -rf "$CLUSTER_DIR"
    bootstrap=$(scripts/cluster.sh up 3 2>"$out/catchup-r$run.cluster.log" | tail -1)
    bootstrap=${bootstrap%%,*}
    "$odradek" topic create catchup --partitions 1 --replication-factor 3 \
        --bootstrap "$bootstrap" >/dev/null
    leader=$("$odradek" topic describe catchup --bootstrap "$bootstrap" --json |
        python3 -c "import json,sys; print(json.load(sys.stdin)['partitions'][0]['leader'])")
    follower=$(( leader % 3 + 1 ))
    scripts/cluster.sh kill "$follower" >>"$out/catchup-r$run.cluster.log" 2>&1
    leader_addr=127.0.0.1:$((BASE_PORT + leader))
    "$bench_bin" --bootstrap "$leader_addr" --topic catchup --message-size 1024 --acks 1 \
        --producers 2 --consumers 0 --messages $((catchup_mb * 1024)) \
        --json "$out/catchup-r$run.json" >"$out/catchup-r$run.out" 2>&1
    started=$(date +%s.%N)
    scripts/cluster.sh start "$follower" >>"$out/catchup-r$run.cluster.log" 2>&1
    until [[ $(isr_len "$leader_addr") == 3 ]]; do sleep 0.1; done
    took=$(python3 -c "import sys,time; print(f'{time.time() - float(sys.argv[1]):.2f}')" "$started")
    catchups+=("$took")
    echo "catch-up run $run: ${catchup_mb} MB in $took s (from the follower's start)" |
        tee -a "$out/summary.txt"
    scripts/cluster.sh down >>"$out/catchup-r$run.cluster.log" 2>&1
done
python3 - "${catchups[*]}" "$catchup_mb" <<'EOF' | tee -a "$out/summary.txt"
import statistics, sys
values = [float(x) for x in sys.argv[1].split()]
print(f"catch-up of {sys.argv[2]} MB: median {statistics.median(values):.2f} s")
EOF
echo "results in $out"
