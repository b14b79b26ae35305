#!/usr/bin/env bash
# Throughput of a local odradek measured with librdkafka's own rdkafka_performance, beside the
# machine's loopback bandwidth (iperf3) and O_DIRECT write bandwidth (fio) in the same sitting.
#
#   bash scripts/bench-rdkafka.sh [RUNS]        # default 3 runs per workload; prints medians
#
# rdkafka_performance is compiled from the librdkafka sources that ship inside the rdkafka-sys
# crate (already in cargo's registry once the tests have been built), linked with the static
# librdkafka that `cargo test` built. Results go to bench-results/<UTC date>/ (not committed).
# Speed is never asserted: this script reports, it does not judge.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib-bench.sh
source scripts/lib-bench.sh
runs=${1:-3}
out=$(results_dir)

need_tools iperf3 fio gcc

tdir=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p odradek-broker
find_lib() { find target "$tdir" -path "*$1" 2>/dev/null | head -1; }
# The tests' build of rdkafka-sys leaves a static librdkafka; build it when it is not there yet.
[[ -n "$(find_lib 'rdkafka-sys-*/out/src/librdkafka.a')" ]] || cargo test -q -p odradek-broker --no-run
lib=$(find_lib 'rdkafka-sys-*/out/src/librdkafka.a')
zstd=$(find_lib 'zstd-sys-*/out/libzstd.a')
sources=("${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-*/librdkafka)
src=${sources[-1]}
perf_bin="$out/rdkafka_performance"
gcc -O2 -w -o "$perf_bin" "$src/examples/rdkafka_performance.c" -I"$(dirname "$lib")" -I"$src/src" \
    "$lib" "$zstd" -lz -lssl -lcrypto -lpthread -lm -ldl -lrt

data=$(mktemp -d)
cleanup() {
    stop_broker
    stop_iperf3
    rm -rf "$data"
}
trap cleanup EXIT

measure_loopback "$out" "$runs" 5
measure_disk "$out" "$data" 15

start_broker "$out/broker.log" "$tdir/release/odradek" --listen 127.0.0.1:0 --data-dir "$data/broker" \
    --set num.partitions=6

# produce NAME SIZE ACKS COUNT: prints MB/s of delivered messages (10^6 bytes).
produce() {
    "$perf_bin" -P -t "$1" -b "$broker_addr" -s "$2" -a "$3" -c "$4" -u \
        -X linger.ms=5 -X batch.size=1000000 2>/dev/null | awk -F'|' '/^\|/ {mb=$8} END {print mb+0}'
}
# consume NAME COUNT: all six partitions from the beginning; prints MB/s.
consume() {
    "$perf_bin" -C -t "$1" -p 0 -p 1 -p 2 -p 3 -p 4 -p 5 -b "$broker_addr" -o beginning -c "$2" -u \
        2>/dev/null | awk -F'|' '/^\|/ {mb=$7} END {print mb+0}'
}

printf '| workload | median MB/s | runs | %% of loopback |\n| --- | --- | --- | --- |\n' > "$out/table.md"
row() {
    local name=$1 file=$2
    local m
    m=$(median < "$file")
    printf '| %s | %s | %s | %s%% |\n' "$name" "$m" "$(paste -sd' ' "$file")" \
        "$(python3 -c "print(round(100*$m/$(cat "$out/iperf3.median")))")" | tee -a "$out/table.md"
}

for size in 1024 100; do
    count=$((size == 1024 ? 1000000 : 3000000))
    for acks in -1 1; do
        name="produce ${size}B acks=$([[ $acks == -1 ]] && echo all || echo 1), 6 partitions"
        file="$out/produce_${size}_${acks}.txt"
        for run in $(seq "$runs"); do produce "p${size}a${acks}r${run}" "$size" "$acks" "$count"; done > "$file"
        row "$name" "$file"
    done
    # Catch-up: ~1 GB (1 KiB) or ~300 MB (100 B) written a while ago; the older part is on disk only.
    file="$out/consume_cold_${size}.txt"
    for run in $(seq "$runs"); do consume "p${size}a-1r${run}" "$count"; done > "$file"
    row "consume ${size}B catch-up (mostly from disk), 6 partitions" "$file"
    # Tail: ~200 MB just written, within the shards' tail caches (256 MiB each).
    tail_count=$((200000000 / size))
    file="$out/consume_tail_${size}.txt"
    for run in $(seq "$runs"); do
        produce "t${size}r${run}" "$size" 1 "$tail_count" >/dev/null
        consume "t${size}r${run}" "$tail_count"
    done > "$file"
    row "consume ${size}B from the tail cache, 6 partitions" "$file"
done
echo "results in $out"
