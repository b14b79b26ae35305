#!/usr/bin/env bash
# The standard matrix, measured with odradek-bench beside the machine's loopback bandwidth
# (iperf3) and O_DIRECT write bandwidth (fio) in the same sitting.
#
#   bash scripts/bench.sh                                   # local release odradek
#   RUNS=1 DURATION=5s WARMUP=1s ONLY=1kb-6p bash scripts/bench.sh   # a quick look
#   BOOTSTRAP=host:9092 bash scripts/bench.sh               # any running Kafka-compatible broker
#
# The matrix: message sizes 1 KiB and 100 B × 1 and 6 partitions × acks=1 and acks=all; each
# first as fast as possible (`-max`), then at half the median msgs/s of those runs (`-half`).
# Then `1kb-6p-tail`: TAIL_MESSAGES records of 1 KiB are written (acks=1) to a broker whose tail
# cache holds them all, and two consumers read them from the start: consume from the tail, with
# the broker's device reads over the read (/proc/PID/io read_bytes) beside it.
# Every run has a topic of its own; against the local broker every run also has a fresh broker
# and data directory. Results go to bench-results/<UTC timestamp>/ (not committed): each run's
# JSON, stdout and stderr, the broker logs, commands.txt and summary.md, a table of medians.
# Against the local broker the summary also replaces the text between the bench.sh markers in
# BENCHMARKS.md. Speed is never asserted: this script reports, it does not judge.
#
# Environment (a bad value stops the script before anything runs):
#   RUNS               runs of each workload (default 3)
#   DURATION, WARMUP   measured time and warm-up of each run, odradek-bench syntax (20s, 5s)
#   ONLY               extended regex; only workloads whose name matches (e.g. 1kb, 6p-acksall)
#   BOOTSTRAP          host:port of a running broker; no local broker is started
#   UPDATE_BENCHMARKS  1 (default): write the summary into BENCHMARKS.md; 0: leave it alone
#   BENCH_FLAGS        more odradek-bench flags for every run (e.g. "--cores 2 --linger-ms 0")
#   BROKER_FLAGS       more flags for the local odradek (e.g. "--cores 1")
#   IPERF3_SECONDS     length of each iperf3 run (5); FIO_SECONDS: length of the fio run (15)
#   TAIL_MESSAGES      records of the tail-consume workload (3000000, 3 GB; at most 3500000: the
#                      local broker's tail cache is set to 4 GiB per shard for it). It runs in a
#                      full sitting, or when ONLY names it (ONLY=tail)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib-bench.sh
source scripts/lib-bench.sh

runs=${RUNS:-3}
duration=${DURATION:-20s}
warmup=${WARMUP:-5s}
only=${ONLY:-}
bootstrap=${BOOTSTRAP:-}
update_benchmarks=${UPDATE_BENCHMARKS:-1}
iperf3_seconds=${IPERF3_SECONDS:-5}
fio_seconds=${FIO_SECONDS:-15}
tail_messages=${TAIL_MESSAGES:-3000000}
read -r -a bench_flags <<<"${BENCH_FLAGS:-}"
read -r -a broker_flags <<<"${BROKER_FLAGS:-}"

# Segments of 128 MiB and at most 2 GiB kept per partition, checked every second: a run as fast
# as possible writes tens of GB, more than a laptop's free disk. Retention must stay above what a
# lagging consumer still has to read: with 512 MiB a 100 B run's consumers fell 7 s behind and
# were answered OFFSET_OUT_OF_RANGE (odradek-bench stops on it).
broker_settings=(--set log.segment.bytes=134217728 --set log.retention.bytes=2147483648
    --set log.retention.check.interval.ms=1000)
# Free space the scratch directory needs: fio's 4 GiB file, or one run's retained log (six
# partitions of 2 GiB, plus the segment being written in each).
scratch_bytes_min=$((14 << 30))

check_settings() {
    local duration_re='^[0-9]+(\.[0-9]+)?(ms|s|m|min|h)?$'
    [[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS=$runs: expected a whole number of at least 1"
    [[ "$duration" =~ $duration_re ]] || die "DURATION=$duration: expected a duration such as 20s, 500ms, 2m"
    [[ "$warmup" =~ $duration_re ]] || die "WARMUP=$warmup: expected a duration such as 5s, 0s"
    [[ "$update_benchmarks" =~ ^[01]$ ]] || die "UPDATE_BENCHMARKS=$update_benchmarks: expected 0 or 1"
    [[ "$iperf3_seconds" =~ ^[1-9][0-9]*$ ]] || die "IPERF3_SECONDS=$iperf3_seconds: expected whole seconds"
    [[ "$fio_seconds" =~ ^[1-9][0-9]*$ ]] || die "FIO_SECONDS=$fio_seconds: expected whole seconds"
    [[ -z "$bootstrap" || "$bootstrap" =~ ^[^:]+:[0-9]+$ ]] || die "BOOTSTRAP=$bootstrap: expected host:port"
    if ! [[ "$tail_messages" =~ ^[1-9][0-9]*$ ]] || ((tail_messages > 3500000)); then
        die "TAIL_MESSAGES=$tail_messages: expected a whole number from 1 to 3500000 (the tail cache must hold them all)"
    fi
    ((${#workloads[@]} > 0 || run_tail)) || die "ONLY=$only matches no workload; names look like 1kb-6p-acksall"
}

# The matrix, as `name size partitions acks producers consumers`; ONLY filters it.
list_workloads() {
    local size label partitions acks
    for size in 1024 100; do
        label=100b
        if ((size == 1024)); then label=1kb; fi
        for partitions in 1 6; do
            for acks in 1 all; do
                # As in bench/workloads/: two producers and a consumer for one partition, four
                # and two for six.
                if ((partitions == 1)); then
                    echo "$label-${partitions}p-acks$acks $size $partitions $acks 2 1"
                else
                    echo "$label-${partitions}p-acks$acks $size $partitions $acks 4 2"
                fi
            done
        done
    done | grep -E -- "${only:-.}" || true
}

build() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) and retry"
    local packages=(-p odradek-bench)
    if [[ -z "$bootstrap" ]]; then packages+=(-p odradek-broker); fi
    echo "== cargo build --release ${packages[*]}"
    cargo build --release "${packages[@]}" >"$out/build.log" 2>&1 ||
        die "cargo build --release failed: see $out/build.log"
    local target=${CARGO_TARGET_DIR:-target}
    bench_bin=$target/release/odradek-bench
    broker_bin=$target/release/odradek
}

check_scratch_space() {
    local free_bytes
    free_bytes=$(df --output=avail -B1 "$scratch" | tail -1)
    ((free_bytes >= scratch_bytes_min)) ||
        die "$scratch has $((free_bytes >> 20)) MiB free, runs need $((scratch_bytes_min >> 20)): set TMPDIR to a bigger disk"
}

# run_once NAME SIZE PARTITIONS ACKS PRODUCERS CONSUMERS RATE RUN: one run of odradek-bench
# (with a fresh local broker unless BOOTSTRAP), its JSON in OUT/NAME-rRUN.json; appends its
# figures to OUT/NAME.tsv and prints a line.
run_once() {
    local name=$1 size=$2 partitions=$3 acks=$4 producers=$5 consumers=$6 rate=$7 run=$8
    local base=$out/$name-r$run addr=$bootstrap data=
    if [[ -z "$bootstrap" ]]; then
        data=$(mktemp -d "$scratch/broker.XXXXXX")
        local broker_cmd=("$broker_bin" --listen 127.0.0.1:0 --data-dir "$data" "${broker_settings[@]}"
            "${broker_flags[@]}")
        log_command "${broker_cmd[@]}"
        start_broker "$base.broker.log" "${broker_cmd[@]}"
        addr=$broker_addr
    fi
    local cmd=("$bench_bin" --bootstrap "$addr" --topic "bench-$stamp-$name-r$run"
        --partitions "$partitions" --message-size "$size" --acks "$acks" --producers "$producers"
        --consumers "$consumers" --rate "$rate" --duration "$duration" --warmup "$warmup"
        --json "$base.json" "${bench_flags[@]}")
    log_command "${cmd[@]}"
    local status=0
    "${cmd[@]}" >"$base.txt" 2>"$base.log" || status=$?
    stop_broker
    if [[ -n "$data" ]]; then rm -rf "$data"; fi
    ((status == 0)) || die "odradek-bench failed (exit $status) in $name run $run: see $base.log"
    # Columns: publish MB/s, publish msgs/s, consume MB/s, publish p50 p99 p99.9 µs, e2e p50 p99 µs.
    python3 - "$base.json" >>"$out/$name.tsv" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
p, e = r["publish_latency_us"], r["e2e_latency_us"]
print(r["publish_mb_per_s"], r["publish_msgs_per_s"], r["consume_mb_per_s"],
      p["p50"], p["p99"], p["p999"], e["p50"], e["p99"])
EOF
    echo "   $name run $run/$runs: $(tail -1 "$out/$name.tsv" |
        awk '{printf "publish %.1f MB/s (%.0f msgs/s), consume %.1f MB/s, publish p99 %.2f ms", $1, $2, $3, $5/1e3}')"
}

# tail_once RUN: one tail-consume run: a fresh local broker (unless BOOTSTRAP) whose tail cache
# holds every record, TAIL_MESSAGES x 1 KiB written with acks=1, then read from the start by two
# consumers. Appends consume MB/s and the broker's device reads during the read to
# OUT/1kb-6p-tail.tsv.
tail_once() {
    local run=$1 name=1kb-6p-tail addr=$bootstrap data=
    local base=$out/$name-r$run topic="bench-$stamp-$name-r$run"
    if [[ -z "$bootstrap" ]]; then
        data=$(mktemp -d "$scratch/broker.XXXXXX")
        local broker_cmd=("$broker_bin" --listen 127.0.0.1:0 --data-dir "$data" "${broker_settings[@]}"
            --set odradek.tail.cache.bytes=4294967296 "${broker_flags[@]}")
        log_command "${broker_cmd[@]}"
        start_broker "$base.broker.log" "${broker_cmd[@]}"
        addr=$broker_addr
    fi
    local fill=("$bench_bin" --bootstrap "$addr" --topic "$topic" --partitions 6 --message-size 1024
        --acks 1 --producers 2 --consumers 0 --messages "$tail_messages" --json "$base.fill.json"
        "${bench_flags[@]}")
    local read=("$bench_bin" --bootstrap "$addr" --topic "$topic" --producers 0 --consumers 2
        --from-beginning --messages "$tail_messages" --json "$base.json" "${bench_flags[@]}")
    log_command "${fill[@]}"
    log_command "${read[@]}"
    local status=0 reads_before=0 reads=-
    "${fill[@]}" >"$base.fill.txt" 2>"$base.fill.log" || status=$?
    ((status == 0)) || die "odradek-bench failed (exit $status) filling $name run $run: see $base.fill.log"
    if [[ -n "$data" ]]; then reads_before=$(broker_read_bytes); fi
    "${read[@]}" >"$base.txt" 2>"$base.log" || status=$?
    if [[ -n "$data" && "$reads_before" != - ]]; then
        local reads_after
        reads_after=$(broker_read_bytes)
        if [[ "$reads_after" != - ]]; then reads=$((reads_after - reads_before)); fi
    fi
    stop_broker
    if [[ -n "$data" ]]; then rm -rf "$data"; fi
    ((status == 0)) || die "odradek-bench failed (exit $status) reading $name run $run: see $base.log"
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["consume_mb_per_s"], sys.argv[2])' \
        "$base.json" "$reads" >>"$out/$name.tsv"
    echo "   $name run $run/$runs: $(tail -1 "$out/$name.tsv" |
        awk '{printf "consume %.1f MB/s, broker device reads %s bytes", $1, $2}')"
}

# broker_read_bytes: the local broker's read_bytes from /proc/PID/io, or - when it is gone.
broker_read_bytes() {
    awk '/^read_bytes/ {print $2}' "/proc/$broker_pid/io" 2>/dev/null || echo -
}

# run_tail_workload: RUNS tail-consume runs and their table row.
run_tail_workload() {
    local run loopback con_mb
    echo "== 1kb-6p-tail ($tail_messages x 1 KiB written with acks=1, then read from the tail cache by 2 consumers)"
    for run in $(seq "$runs"); do tail_once "$run"; done
    loopback=$(cat "$out/iperf3.median")
    con_mb=$(column "$out/1kb-6p-tail.tsv" 1)
    printf '| 1kb-6p-tail | max | 0/2 | – | – | – | %.1f (runs: %s; device reads: %s bytes) | – | %.0f%% | – | – |\n' \
        "$con_mb" "$(awk '{printf "%s%.0f", (NR > 1 ? " " : ""), $1}' "$out/1kb-6p-tail.tsv")" \
        "$(awk '{printf "%s%s", (NR > 1 ? " / " : ""), $2}' "$out/1kb-6p-tail.tsv")" \
        "$(percent "$con_mb" "$loopback")" >>"$out/table.md"
}

# log_command ARG...: appends the command, shell-quoted, to OUT/commands.txt.
log_command() {
    local line
    printf -v line '%q ' "$@"
    echo "${line% }" >>"$out/commands.txt"
}

# column FILE N: the median of column N of FILE.
column() {
    awk -v n="$2" '{print $n}' "$1" | median
}

# run_workload NAME SIZE PARTITIONS ACKS PRODUCERS CONSUMERS: RUNS runs as fast as possible,
# then RUNS at half their median msgs/s; a table row for each.
run_workload() {
    local name=$1 run half
    shift
    echo "== $name ($1 B, $2 partitions, acks=$3, $4 producers, $5 consumers)"
    for run in $(seq "$runs"); do run_once "$name-max" "$@" 0 "$run"; done
    table_row "$name-max" "max" "$4/$5"
    half=$(column "$out/$name-max.tsv" 2 | awk '{printf "%.0f", $1 / 2}')
    ((half > 0)) || die "$name published nothing as fast as possible: see $out/$name-max-r1.log"
    for run in $(seq "$runs"); do run_once "$name-half" "$@" "$half" "$run"; done
    table_row "$name-half" "$half" "$4/$5"
}

# table_row NAME RATE TASKS: the medians of OUT/NAME.tsv as a row of OUT/table.md.
table_row() {
    local tsv=$out/$1.tsv loopback
    loopback=$(cat "$out/iperf3.median")
    local pub_mb pub_msgs con_mb
    pub_mb=$(column "$tsv" 1)
    pub_msgs=$(column "$tsv" 2)
    con_mb=$(column "$tsv" 3)
    printf '| %s | %s | %s | %.1f | %s | %.0f | %.1f | %.0f%% | %.0f%% | %s / %s / %s | %s / %s |\n' \
        "$1" "$2" "$3" "$pub_mb" "$(awk '{printf "%s%.0f", (NR > 1 ? " " : ""), $1}' "$tsv")" \
        "$pub_msgs" "$con_mb" "$(percent "$pub_mb" "$loopback")" "$(percent "$con_mb" "$loopback")" \
        "$(ms "$(column "$tsv" 4)")" "$(ms "$(column "$tsv" 5)")" "$(ms "$(column "$tsv" 6)")" \
        "$(ms "$(column "$tsv" 7)")" "$(ms "$(column "$tsv" 8)")" >>"$out/table.md"
}

# Parentheses around a comparison in awk's printf: without them `>` redirects to a file.
percent() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", (b > 0 ? 100 * a / b : 0)}'; }
ms() { awk -v us="$1" 'BEGIN {printf "%.2f", us / 1e3}'; }

write_summary() {
    local commit cpu
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    {
        echo "Sitting: $started–$(date -u +%H:%M) UTC, commit $commit, $(target_text)."
        echo "Machine: $(nproc) cores (nproc), ${cpu:-unknown CPU}, kernel $(uname -r)."
        echo "Loopback (iperf3, one stream, median of $runs × $iperf3_seconds s): **$(cat "$out/iperf3.median") MB/s**." \
            "fio O_DIRECT write (1 MiB blocks, iodepth 16): $(cat "$out/fio-fresh.median") MB/s into fresh extents" \
            "(one 4 GiB pass into a new fallocated file, as a new segment is written), $(cat "$out/fio.median") MB/s" \
            "rewriting it ($fio_seconds s)."
        echo
        echo "Medians of $runs runs of $duration after a $warmup warm-up, each column's median taken on its own." \
            "MB is 10^6 bytes of message values; latencies in **ms**. \`max\`: as fast as possible;" \
            "a number: msgs/s, half the median of the \`max\` runs. Publish latency includes the" \
            "wait for a batch to fill (at most odradek-bench's \`--linger-ms\`, default 5 ms); at a" \
            "fixed rate it counts from each message's intended send time, so a producer that falls" \
            "behind shows as latency (bench/README.md), which \`max\` runs do not count."
        if ((run_tail)); then
            echo
            echo "\`1kb-6p-tail\`: $tail_messages records of 1 KiB written with acks=1, then read from the start" \
                "by two consumers while the tail cache holds them all (the local broker runs with" \
                "\`odradek.tail.cache.bytes=4294967296\`); device reads are the broker's /proc/PID/io" \
                "read_bytes over the read."
        fi
        echo
        echo '| workload | rate (msgs/s) | producers/consumers | publish MB/s | publish MB/s per run | publish msgs/s | consume MB/s | publish % of loopback | consume % of loopback | publish p50 / p99 / p99.9 ms | e2e p50 / p99 ms |'
        echo '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'
        cat "$out/table.md"
        echo
        echo "Commands (the first run of each workload; the others differ only in topic, port, data"
        echo "directory and file names; all of them are in commands.txt of the results folder):"
        echo
        echo '```'
        echo "$invocation"
        echo "iperf3 -s -p 29193 -D; iperf3 -c 127.0.0.1 -p 29193 -t $iperf3_seconds -J   # RUNS=$runs times"
        echo "fio --name=w --filename=DIR/fio.tmp --size=4G --fallocate=native --rw=write --bs=1M --direct=1 --ioengine=io_uring --iodepth=16"
        echo "fio --name=w --filename=DIR/fio.tmp --size=4G --rw=write --bs=1M --direct=1 --ioengine=io_uring --iodepth=16 --runtime=$fio_seconds --time_based"
        grep -E -- '-r1 |broker\.[A-Za-z0-9]+ ' "$out/commands.txt" |
            sed -e "s|$scratch/broker\.[A-Za-z0-9]*|DATA|" -e "s|$out/|OUT/|" | awk '!seen[$0]++'
        echo '```'
    } >"$out/summary.md"
}

target_text() {
    if [[ -n "$bootstrap" ]]; then
        echo "against BOOTSTRAP=$bootstrap"
    else
        echo "local release \`odradek\`, a fresh one per run (\`${broker_settings[*]}${broker_flags[*]:+ ${broker_flags[*]}}\`)"
    fi
}

# update_benchmarks: the summary replaces what stands between the markers in BENCHMARKS.md.
update_benchmarks() {
    local begin='<!-- bench.sh:begin -->' end='<!-- bench.sh:end -->'
    grep -qF "$begin" BENCHMARKS.md && grep -qF "$end" BENCHMARKS.md ||
        printf '\n## Standard matrix (scripts/bench.sh)\n\n%s\n%s\n' "$begin" "$end" >>BENCHMARKS.md
    awk -v begin="$begin" -v end="$end" -v summary="$out/summary.md" '
        $0 == begin { print; print ""; while ((getline line < summary) > 0) print line; print ""; skip = 1; next }
        $0 == end { skip = 0 }
        !skip { print }' BENCHMARKS.md >"$out/BENCHMARKS.md.new"
    mv "$out/BENCHMARKS.md.new" BENCHMARKS.md
    echo "BENCHMARKS.md updated"
}

cleanup() {
    stop_broker
    stop_iperf3
    rm -rf "${scratch:-}"
}

main() {
    mapfile -t workloads < <(list_workloads)
    # The tail workload writes and reads 3 GB: it runs in a full sitting, or when ONLY names it.
    run_tail=0
    if [[ -z "$only" || ("$only" == *tail* && 1kb-6p-tail =~ $only) ]]; then run_tail=1; fi
    check_settings
    invocation="RUNS=$runs DURATION=$duration WARMUP=$warmup${only:+ ONLY=$only}${bootstrap:+ BOOTSTRAP=$bootstrap}"
    invocation+="${BENCH_FLAGS:+ BENCH_FLAGS=\"$BENCH_FLAGS\"}${BROKER_FLAGS:+ BROKER_FLAGS=\"$BROKER_FLAGS\"}"
    invocation+="${IPERF3_SECONDS:+ IPERF3_SECONDS=$iperf3_seconds}${FIO_SECONDS:+ FIO_SECONDS=$fio_seconds}"
    invocation+="${TAIL_MESSAGES:+ TAIL_MESSAGES=$tail_messages}"
    invocation+="${UPDATE_BENCHMARKS:+ UPDATE_BENCHMARKS=$update_benchmarks} bash scripts/bench.sh"
    # The settings in effect, so that a misspelt variable shows as a default.
    echo "== $invocation"
    started=$(date -u '+%Y-%m-%d %H:%M')
    out=$(results_dir)
    stamp=$(basename "$out")
    scratch=$(mktemp -d)
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    check_scratch_space
    need_tools iperf3 fio python3
    build
    measure_loopback "$out" "$runs" "$iperf3_seconds"
    measure_disk "$out" "$scratch" "$fio_seconds"
    local workload
    for workload in "${workloads[@]}"; do
        # shellcheck disable=SC2086 # the fields of a matrix line
        run_workload $workload
    done
    if ((run_tail)); then run_tail_workload; fi
    write_summary
    cat "$out/summary.md"
    if [[ -z "$bootstrap" && "$update_benchmarks" == 1 ]]; then update_benchmarks; fi
    echo "results in $out"
}

main
