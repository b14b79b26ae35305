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
runs=${1:-3}
out="bench-results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
missing=()
need iperf3 iperf3; need fio fio; need gcc gcc
if ((${#missing[@]} > 0)); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

tdir=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p odradek-broker
find_lib() { find target "$tdir" -path "*$1" 2>/dev/null | head -1; }
# The tests' build of rdkafka-sys leaves a static librdkafka; build it when it is not there yet.
[[ -n "$(find_lib 'rdkafka-sys-*/out/src/librdkafka.a')" ]] || cargo test -q -p odradek-broker --no-run
lib=$(find_lib 'rdkafka-sys-*/out/src/librdkafka.a')
zstd=$(find_lib 'zstd-sys-*/out/libzstd.a')
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-*/librdkafka | tail -1)
perf_bin="$out/rdkafka_performance"
gcc -O2 -w -o "$perf_bin" "$src/examples/rdkafka_performance.c" -I"$(dirname "$lib")" -I"$src/src" \
    "$lib" "$zstd" -lz -lssl -lcrypto -lpthread -lm -ldl -lrt

data=$(mktemp -d)
port=29192
broker_pid=
cleanup() {
    [[ -n "$broker_pid" ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    pkill -f "iperf3 -s -p 29193" 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "== iperf3 loopback (5 s, one stream)"
iperf3 -s -p 29193 -D >/dev/null
sleep 0.5
for _ in $(seq "$runs"); do
    iperf3 -c 127.0.0.1 -p 29193 -t 5 -J | python3 -c \
        'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e6))'
done | tee "$out/iperf3_MBps.txt" | median > "$out/iperf3.median"
echo "   median $(cat "$out/iperf3.median") MB/s"

echo "== fio O_DIRECT sequential write (1 MiB blocks, iodepth 16, 15 s)"
fio --name=w --filename="$data/fio.tmp" --size=4G --rw=write --bs=1M --direct=1 --ioengine=io_uring \
    --iodepth=16 --runtime=15 --time_based --output-format=json |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"]/1e6))' \
    > "$out/fio.median"
rm -f "$data/fio.tmp"
echo "   $(cat "$out/fio.median") MB/s"

"$tdir/release/odradek" --listen "127.0.0.1:$port" --data-dir "$data/broker" \
    --set num.partitions=6 2> "$out/broker.log" &
broker_pid=$!
for _ in $(seq 50); do grep -q "odradek listening" "$out/broker.log" && break; sleep 0.2; done

# produce NAME SIZE ACKS COUNT: prints MB/s of delivered messages (10^6 bytes).
produce() {
    "$perf_bin" -P -t "$1" -b "127.0.0.1:$port" -s "$2" -a "$3" -c "$4" -u \
        -X linger.ms=5 -X batch.size=1000000 2>/dev/null | awk -F'|' '/^\|/ {mb=$8} END {print mb+0}'
}
# consume NAME COUNT: all six partitions from the beginning; prints MB/s.
consume() {
    "$perf_bin" -C -t "$1" -p 0 -p 1 -p 2 -p 3 -p 4 -p 5 -b "127.0.0.1:$port" -o beginning -c "$2" -u \
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
