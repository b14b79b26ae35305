# shellcheck shell=bash
# Shell functions shared by scripts/bench.sh and scripts/bench-rdkafka.sh: tools, the dated
# results folder, medians, the machine's loopback (iperf3) and O_DIRECT write (fio) bandwidth,
# and a local release broker. Sourced, not run; callers set `set -euo pipefail` themselves.

# die MESSAGE: one line on stderr, exit 1.
die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# need_tools TOOL...: installs the missing ones with apt-get (the package has the tool's name).
need_tools() {
    local tool missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) && return 0
    echo "== installing ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
        >/dev/null || die "${missing[*]} missing and apt-get could not install them: install them and retry"
}

# results_dir: creates and prints bench-results/<UTC timestamp> (gitignored).
results_dir() {
    local dir
    dir="bench-results/$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$dir"
    echo "$dir"
}

# median: the median of the numbers on stdin, one a line (the mean of the middle two when even).
median() {
    sort -g | awk '{a[NR]=$1} END {if (NR == 0) exit 1; print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}

# measure_loopback OUT RUNS SECONDS: iperf3 over 127.0.0.1, one stream, RUNS times; keeps each
# run's MB/s in OUT/iperf3_MBps.txt and their median in OUT/iperf3.median.
measure_loopback() {
    local out=$1 runs=$2 seconds=$3 port=29193
    iperf3_pidfile=$(mktemp)
    echo "== iperf3 loopback ($seconds s, one stream, $runs runs)"
    iperf3 -s -p "$port" -D -I "$iperf3_pidfile" >/dev/null || die "iperf3 -s could not start on port $port"
    sleep 0.5
    for _ in $(seq "$runs"); do
        iperf3 -c 127.0.0.1 -p "$port" -t "$seconds" -J | python3 -c \
            'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e6))'
    done >"$out/iperf3_MBps.txt"
    stop_iperf3
    median <"$out/iperf3_MBps.txt" | awk '{printf "%.0f\n", $1}' >"$out/iperf3.median"
    echo "   median $(cat "$out/iperf3.median") MB/s"
}

# stop_iperf3: stops the iperf3 server measure_loopback started, if any.
stop_iperf3() {
    if [[ -n "${iperf3_pidfile:-}" ]]; then
        if [[ -s "$iperf3_pidfile" ]]; then kill "$(cat "$iperf3_pidfile")" 2>/dev/null || true; fi
        rm -f "$iperf3_pidfile"
        iperf3_pidfile=
    fi
}

# measure_disk OUT DIR SECONDS: fio sequential O_DIRECT writes (1 MiB blocks, iodepth 16) to a
# file in DIR, twice: one 4 GiB pass into a new, fallocated file (fresh extents, as a new segment
# gets them: every write also converts its extent) to OUT/fio-fresh.median, then SECONDS of
# rewriting that file (written blocks) to OUT/fio.median. One run each.
measure_disk() {
    local out=$1 dir=$2 seconds=$3
    local mbps='import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"]/1e6))'
    rm -f "$dir/fio.tmp"
    echo "== fio O_DIRECT sequential write into fresh extents (1 MiB blocks, iodepth 16, 4 GiB)"
    fio --name=w --filename="$dir/fio.tmp" --size=4G --fallocate=native --rw=write --bs=1M --direct=1 \
        --ioengine=io_uring --iodepth=16 --output-format=json | python3 -c "$mbps" >"$out/fio-fresh.median"
    echo "   $(cat "$out/fio-fresh.median") MB/s"
    echo "== fio O_DIRECT sequential rewrite (1 MiB blocks, iodepth 16, $seconds s)"
    fio --name=w --filename="$dir/fio.tmp" --size=4G --rw=write --bs=1M --direct=1 --ioengine=io_uring \
        --iodepth=16 --runtime="$seconds" --time_based --output-format=json |
        python3 -c "$mbps" >"$out/fio.median"
    rm -f "$dir/fio.tmp"
    echo "   $(cat "$out/fio.median") MB/s"
}

# start_broker LOG COMMAND...: starts an odradek command line with its log in LOG and waits for
# its "listening" line; sets broker_pid and broker_addr (host:port). With `--listen
# 127.0.0.1:0` the kernel picks a free port.
start_broker() {
    local log=$1
    shift
    "$@" 2>"$log" &
    broker_pid=$!
    broker_addr=
    for _ in $(seq 100); do
        broker_addr=$(grep -o 'odradek listening on [0-9.:]*' "$log" | awk '{print $4}') || true
        [[ -n "$broker_addr" ]] && return 0
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.1
    done
    die "the broker did not start within 10 s: see $log"
}

# stop_broker: stops the broker start_broker started, if any.
stop_broker() {
    if [[ -n "${broker_pid:-}" ]]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
        broker_pid=
    fi
}
