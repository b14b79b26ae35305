#!/usr/bin/env bash
# Side by side: librdkafka's rdkafka_performance and odradek-bench producing the same workload
# (as fast as possible, acks=1, no compression) to a fresh release odradek per run.
#
#   RDKAFKA_PERF=/path/to/rdkafka_performance bench/scripts/compare-librdkafka.sh [runs]
#
# Env: SIZE (message bytes, 1024), COUNT (messages, 3000000), PARTITIONS (6), RKX (extra
# rdkafka_performance flags, e.g. "-X linger.ms=20 -X batch.num.messages=100000").
# Prints one line per run; take the median of each tool. Needs `cargo build --release
# -p odradek-broker -p odradek-bench` first. Each run writes SIZE*COUNT bytes to a temp dir.
set -euo pipefail
runs=${1:-3}
size=${SIZE:-1024}
count=${COUNT:-3000000}
partitions=${PARTITIONS:-6}
rkperf=${RDKAFKA_PERF:-/tmp/rkperf/rdkafka_performance}
root=$(cd "$(dirname "$0")/../.." && pwd)
broker=$root/target/release/odradek
bench=$root/target/release/odradek-bench

start_broker() {
  data=$(mktemp -d)
  log=$data.log
  "$broker" --listen 127.0.0.1:0 --data-dir "$data" >"$log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
  addr=$(grep -o "listening on [0-9.:]*" "$log" | awk '{print $3}')
  [ -n "$addr" ] || { echo "the broker did not start: $log" >&2; exit 1; }
  # Create the topic the same way for both tools.
  "$bench" --bootstrap "$addr" --topic cmp --partitions "$partitions" --producers 0 \
    --consumers 1 --duration 1s --warmup 0s >/dev/null 2>&1
}

stop_broker() {
  kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
  rm -rf "$data" "$log"
}

for run in $(seq "$runs"); do
  start_broker
  line=$("$rkperf" -P -t cmp -b "$addr" -s "$size" -a 1 -c "$count" -q ${RKX:-} 2>&1 \
    | grep -o '[0-9]* msgs/s and [0-9.]* MB/s' || true)
  echo "run $run librdkafka:    $line"
  stop_broker
  start_broker
  line=$("$bench" --bootstrap "$addr" --topic cmp --message-size "$size" --acks 1 \
    --producers 1 --consumers 0 --messages "$count" 2>/dev/null | grep '^publish:')
  echo "run $run odradek-bench: $line"
  stop_broker
done
