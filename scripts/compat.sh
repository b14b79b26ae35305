#!/usr/bin/env bash
# Client compatibility run: Debian's kcat (librdkafka 2.0.2), PyPI's confluent-kafka, and PyPI's
# kafka-python pinned to old broker versions (the request versions older than the codec) against
# a real `odradek` on loopback.
#
#   bash scripts/compat.sh
#
# Needs: kcat (apt-get install -y kcat), python3 with venv/pip (confluent-kafka and kafka-python
# are installed into a virtualenv under the target directory). Environment knobs:
#   ODRADEK_BIN      use this broker binary instead of building one
#   COMPAT_PROFILE   cargo profile to build when ODRADEK_BIN is unset (default: dev)
#   COMPAT_VENV      where the Python clients' virtualenv lives (default: target/compat-venv)
#
# Exits non-zero with a message naming the first mismatch. The broker is always stopped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[compat] %s\n' "$*" >&2; }
fail() {
    printf '[compat] FAIL: %s\n' "$*" >&2
    exit 1
}

command -v kcat >/dev/null || fail "kcat not found: apt-get install -y kcat"
command -v python3 >/dev/null || fail "python3 not found"

# --- the broker ----------------------------------------------------------------------------------
# shellcheck source=scripts/lib-compat.sh
source "$ROOT/scripts/lib-compat.sh"
resolve_odradek_bin

WORK="$(mktemp -d -t odradek-compat-XXXXXX)"
DATA="$WORK/data"
BROKER_LOG="$WORK/broker.log"
BROKER_PID=""
PORT="$(free_port)"
BOOT="127.0.0.1:$PORT"
mkdir -p "$DATA"
: >"$BROKER_LOG"

cleanup() {
    local status=$?
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -f "$BROKER_LOG" ]]; then
        printf '[compat] --- last broker log lines ---\n' >&2
        tail -n 60 "$BROKER_LOG" >&2 || true
    fi
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT

start_broker() {
    log "starting $ODRADEK_BIN on $BOOT, data in $DATA"
    # Only this start's lines count: the log keeps the previous starts' lines too.
    local skip
    skip=$(($(wc -l <"$BROKER_LOG") + 1))
    "$ODRADEK_BIN" --listen "$BOOT" --data-dir "$DATA" --cores 2 "$@" >>"$BROKER_LOG" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 1 300); do
        if tail -n +"$skip" "$BROKER_LOG" | grep -q "odradek listening on $BOOT"; then
            return 0
        fi
        kill -0 "$BROKER_PID" 2>/dev/null || fail "the broker exited before listening"
        sleep 0.1
    done
    fail "the broker printed no 'odradek listening on $BOOT' within 30 s"
}

stop_broker() {
    kill -TERM "$BROKER_PID"
    local status=0
    wait "$BROKER_PID" || status=$?
    BROKER_PID=""
    [[ $status -eq 0 ]] || fail "the broker exited with status $status after SIGTERM (want 0)"
}

KCAT=(kcat -b "$BOOT" -X socket.timeout.ms=20000 -m 20)

expect_eq() { # what, want, got
    if [[ "$2" != "$3" ]]; then
        fail "$1: want
$2
got
$3"
    fi
}

start_broker

# --- kcat: metadata --------------------------------------------------------------------------------
log "kcat -L"
meta="$("${KCAT[@]}" -L)" || fail "kcat -L failed"
grep -q "1 brokers:" <<<"$meta" || fail "kcat -L: want exactly one broker, got: $meta"
grep -q "at $BOOT" <<<"$meta" || fail "kcat -L: the broker does not advertise $BOOT: $meta"

# --- kcat: produce and consume round trip on an auto-created topic, every codec ---------------------
for codec in none gzip snappy lz4 zstd; do
    topic="compat-kcat-$codec"
    want="$(for i in $(seq 1 200); do printf 'key-%d\tvalue %s %d %s\n' $((i % 7)) "$codec" "$i" "$(printf 'x%.0s' $(seq 1 $((i % 30))))"; done)"
    log "kcat produce 200 records to auto-created topic $topic (compression $codec, acks=all)"
    zflag=()
    [[ "$codec" != none ]] && zflag=(-X "compression.codec=$codec")
    printf '%s\n' "$want" | "${KCAT[@]}" -P -t "$topic" -p 0 -K $'\t' -H "codec=$codec" -H "origin=kcat" \
        -X request.required.acks=-1 "${zflag[@]}" ||
        fail "kcat produce to $topic failed"
    got="$("${KCAT[@]}" -C -t "$topic" -p 0 -o beginning -e -q -f '%k\t%s\n')" ||
        fail "kcat consume from $topic failed"
    expect_eq "kcat round trip ($codec) keys and values" "$want" "$got"
    headers="$("${KCAT[@]}" -C -t "$topic" -p 0 -o beginning -c 1 -e -q -f '%h\n')" ||
        fail "kcat consume headers from $topic failed"
    expect_eq "kcat round trip ($codec) headers" "codec=$codec,origin=kcat" "$headers"
    offsets="$("${KCAT[@]}" -C -t "$topic" -p 0 -o -3 -e -q -f '%o\n' | tr '\n' ' ')"
    expect_eq "kcat offsets of the last 3 records ($codec)" "197 198 199 " "$offsets"
done
"${KCAT[@]}" -L -t compat-kcat-zstd | grep -q 'topic "compat-kcat-zstd" with' ||
    fail "kcat -L does not show the auto-created topic compat-kcat-zstd"

# Reading from an offset inside a compressed batch: the broker returns the containing batch and
# the client skips to the offset.
got="$("${KCAT[@]}" -C -t compat-kcat-zstd -p 0 -o 150 -c 1 -e -q -f '%o %k\n')"
expect_eq "first record read from offset 150 of a zstd batch" "150 key-$((151 % 7))" "$got"

# ListOffsets by timestamp (old librdkafka: ListOffsets v1): records carry increasing
# CreateTime stamps; asking for the 5th one's timestamp returns offset 4.
topic="compat-times"
for i in $(seq 0 9); do
    printf 'time-%d\n' "$i" | "${KCAT[@]}" -P -t "$topic" -p 0 -X request.required.acks=-1 ||
        fail "kcat produce to $topic failed"
done
stamps="$("${KCAT[@]}" -C -t "$topic" -p 0 -o beginning -e -q -f '%T\n')"
fifth="$(sed -n 5p <<<"$stamps")"
[[ "$fifth" =~ ^[0-9]+$ ]] || fail "kcat shows no timestamps for $topic: $stamps"
first_with_fifth="$(grep -n -x "$fifth" <<<"$stamps" | head -1 | cut -d: -f1)"
want_offset=$((first_with_fifth - 1))
answer="$("${KCAT[@]}" -Q -t "$topic:0:$fifth")" || fail "kcat -Q failed"
grep -q "offset $want_offset\b" <<<"$answer" ||
    fail "kcat -Q $topic:0:$fifth: want offset $want_offset, got: $answer"

# --- kcat: a consumer group (old librdkafka's group APIs) reads everything, then resumes --------
topic="compat-group"
log "kcat -G: a consumer group reads $topic, commits, and resumes after new records"
seq 1 200 | "${KCAT[@]}" -P -t "$topic" -X request.required.acks=-1 || fail "kcat produce to $topic failed"
got="$(timeout 120 "${KCAT[@]}" -G compat-kcat-group -X auto.offset.reset=earliest -e -q -f '%s\n' "$topic" | sort -n)" ||
    fail "kcat -G on $topic failed or hung"
expect_eq "kcat -G first read of $topic" "$(seq 1 200)" "$got"
seq 201 250 | "${KCAT[@]}" -P -t "$topic" -X request.required.acks=-1 || fail "kcat produce to $topic failed"
got="$(timeout 120 "${KCAT[@]}" -G compat-kcat-group -X auto.offset.reset=earliest -e -q -f '%s\n' "$topic" | sort -n)" ||
    fail "kcat -G on $topic failed or hung"
expect_eq "kcat -G second read of $topic (from the committed offsets)" "$(seq 201 250)" "$got"

# --- kcat: a torn last batch is recovered and readable --------------------------------------------
topic="compat-torn"
log "kcat: 10 single-record batches to $topic, then tear the last one while the broker is down"
for i in $(seq 0 9); do
    printf 'torn-%d-%s\n' "$i" "$(printf 'y%.0s' $(seq 1 100))" |
        "${KCAT[@]}" -P -t "$topic" -p 0 -X request.required.acks=-1 || fail "kcat produce to $topic failed"
done
stop_broker
python3 - "$DATA/$topic-0" <<'PY' || fail "could not tear the segment of compat-torn"
import os, struct, sys
part = sys.argv[1]
segments = sorted(f for f in os.listdir(part) if f.endswith(".log"))
path = os.path.join(part, segments[-1])
data = open(path, "rb").read()
pos, batches = 0, []
while pos + 61 <= len(data):
    base, length = struct.unpack(">qi", data[pos:pos + 12])
    if length < 49 or data[pos + 16] != 2 or pos + 12 + length > len(data):
        break
    batches.append((pos, 12 + length, base))
    pos += 12 + length
assert len(batches) >= 2 and batches[-1][2] == 9, f"unexpected batches in {path}: {batches}"
start, length, _ = batches[-1]
os.truncate(path, start + length // 2)
for root, _, files in os.walk(os.path.dirname(part)):
    for f in files:
        if "clean" in f.lower():
            os.remove(os.path.join(root, f))
print(f"[compat] cut {path} at {start + length // 2}", file=sys.stderr)
PY
start_broker
got="$("${KCAT[@]}" -C -t "$topic" -p 0 -o beginning -e -q -f '%o %s\n' | cut -c1-10)"
want="$(for i in $(seq 0 8); do printf '%d torn-%d-y\n' "$i" "$i" | cut -c1-10; done)"
expect_eq "records of $topic after recovery (exactly the 9 whole batches)" "$want" "$got"

# --- confluent-kafka (PyPI) -----------------------------------------------------------------------
VENV="${COMPAT_VENV:-$ROOT/target/compat-venv}"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
    log "installing confluent-kafka into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'confluent-kafka>=2.3,<3'
fi
log "confluent-kafka $("$VENV/bin/python" -c 'import confluent_kafka as c; print(c.version()[0], "librdkafka", c.libversion()[0])')"
"$VENV/bin/python" "$ROOT/scripts/compat_confluent.py" "$BOOT" || fail "confluent-kafka round trip"

# --- kafka-python (PyPI) pinned to old broker versions ---------------------------------------------
if ! "$VENV/bin/python" -c 'import kafka, lz4, snappy, xxhash' 2>/dev/null; then
    log "installing kafka-python into $VENV"
    # lz4, python-snappy and xxhash: kafka-python's codecs for those (gzip is built in; magic-0
    # lz4 needs xxhash for its old frame checksum).
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'kafka-python>=3,<4' lz4 python-snappy xxhash
fi
log "kafka-python $("$VENV/bin/python" -c 'import kafka; print(kafka.__version__)')"
"$VENV/bin/python" "$ROOT/scripts/compat_kafka_python_old.py" "$BOOT" ||
    fail "kafka-python with old request versions"

kill -0 "$BROKER_PID" 2>/dev/null || fail "the broker died during the run"
stop_broker
log "all compatibility checks passed"
