#!/usr/bin/env bash
# Two odradek binaries in one sitting, runs interleaved (A, B, A, B, …), so that a change's
# effect is read as a ratio measured under the same noise rather than against an old table:
#
#   bash scripts/bench-ab.sh OLD/odradek NEW/odradek
#   RUNS=5 DURATION=10s bash scripts/bench-ab.sh A B
#
# Two workloads, each on a fresh broker and data directory per run:
#   acksall  1 KiB records, 6 partitions, acks=all, 4 producers, as fast as possible
#   tail     TAIL_MESSAGES records of 1 KiB written (acks=1), then read from the start by two
#            consumers while the tail cache holds them all
# The load comes from one odradek-bench (BENCH_BIN, default the release build in this tree).
# Prints each run and the medians, and B/A; results go to bench-results/ab-<UTC timestamp>/.
# Speed is never asserted: this reports, it does not judge.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib-bench.sh
source scripts/lib-bench.sh

[[ $# -eq 2 ]] || die "usage: bench-ab.sh BROKER_A BROKER_B (two odradek binaries)"
bins=("$(realpath "$1")" "$(realpath "$2")")
for bin in "${bins[@]}"; do
    [[ -x "$bin" ]] || die "$bin is not an executable"
done
runs=${RUNS:-3}
duration=${DURATION:-10s}
warmup=${WARMUP:-3s}
tail_messages=${TAIL_MESSAGES:-1000000}
bench_bin=${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/odradek-bench}
[[ -x "$bench_bin" ]] || die "no odradek-bench at $bench_bin: cargo build --release -p odradek-bench"
out=bench-results/ab-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
trap stop_broker EXIT

# One workload run against a fresh broker of `bin`; prints the figure it is judged by.
run_one() {
    local bin=$1 workload=$2 tag=$3 data
    data=$(mktemp -d)
    start_broker "$out/$tag.broker.log" "$bin" --listen 127.0.0.1:0 --data-dir "$data" \
        --set odradek.tail.cache.bytes=2147483648
    local common=(--bootstrap "$broker_addr" --topic "ab-$tag" --partitions 6 --message-size 1024)
    case $workload in
    acksall)
        "$bench_bin" "${common[@]}" --acks all --producers 4 --consumers 0 --rate 0 \
            --duration "$duration" --warmup "$warmup" --json "$out/$tag.json" >"$out/$tag.out" 2>&1
        figure=publish_mb_per_s
        ;;
    tail)
        "$bench_bin" "${common[@]}" --acks 1 --producers 2 --consumers 0 \
            --messages "$tail_messages" --json "$out/$tag.fill.json" >"$out/$tag.fill.out" 2>&1
        "$bench_bin" --bootstrap "$broker_addr" --topic "ab-$tag" --producers 0 --consumers 2 \
            --from-beginning --messages "$tail_messages" --json "$out/$tag.json" >"$out/$tag.out" 2>&1
        figure=consume_mb_per_s
        ;;
    esac
    stop_broker
    rm -rf "$data"
    python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]], 1))" \
        "$out/$tag.json" "$figure"
}

for workload in acksall tail; do
    declare -a got_a=() got_b=()
    for run in $(seq "$runs"); do
        a=$(run_one "${bins[0]}" "$workload" "$workload-a-r$run")
        b=$(run_one "${bins[1]}" "$workload" "$workload-b-r$run")
        got_a+=("$a")
        got_b+=("$b")
        echo "$workload run $run: A $a MB/s, B $b MB/s" | tee -a "$out/summary.txt"
    done
    python3 - "$workload" "${got_a[*]}" "${got_b[*]}" <<'EOF' | tee -a "$out/summary.txt"
import statistics, sys
workload, a, b = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"{workload}: median A {ma:.1f} MB/s, B {mb:.1f} MB/s, B/A {mb / ma:.3f}")
EOF
done
echo "A: ${bins[0]}" >>"$out/summary.txt"
echo "B: ${bins[1]}" >>"$out/summary.txt"
echo "results in $out"
