#!/usr/bin/env bash
# Client compatibility run for Go: Debian's sarama 1.22 and segmentio kafka-go 0.2.1 against a
# real `odradek` on loopback. The programs are in scripts/compat-go/ (one directory each, their
# doc comments list the checks); they are built in GOPATH mode from Debian's /usr/share/gocode,
# since Debian packages Go libraries as sources and the module proxy is not needed.
#
#   bash scripts/compat_go.sh
#
# sarama runs three times, telling it the broker is 2.1.0 (Produce v3, Fetch v4, record
# batches), 0.10.2.0 (Produce v2, Fetch v3, message format v1) and its own default 0.8.2.0
# (Produce v0, Fetch v0, message format v0); kafka-go 0.2.1 sends Produce v2 / Fetch v2. Every
# run goes through scripts/compat-go/wiretap, a byte-for-byte relay the broker advertises, which
# prints each request's API and version: the script shows what each client really sent.
#
# Needs: golang-go, golang-github-shopify-sarama-dev and golang-github-segmentio-kafka-go-dev
# (installed with apt-get when missing and running as root), python3 (for a free port).
# Environment knobs:
#   ODRADEK_BIN      use this broker binary instead of building one
#   COMPAT_PROFILE   cargo profile to build when ODRADEK_BIN is unset (default: dev)
#   COMPAT_GO_DIR    where the Go programs and their build cache go (default: target/compat-go)
#   COMPAT_GO_VERBOSE=1  print sarama's own log
#
# Every run is made, then the script exits non-zero naming the first mismatch. The broker and
# the relay are always stopped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[compat-go] %s\n' "$*" >&2; }
fail() {
    printf '[compat-go] FAIL: %s\n' "$*" >&2
    exit 1
}

command -v python3 >/dev/null || fail "python3 not found"

# --- the Go clients (Debian's packages), built in GOPATH mode --------------------------------------
GO_PACKAGES=(golang-go golang-github-shopify-sarama-dev golang-github-segmentio-kafka-go-dev)
missing=()
for package in "${GO_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
    [[ $(id -u) -eq 0 ]] || fail "missing Debian packages: apt-get install -y ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
package_version() { dpkg-query -W -f '${Version}' "$1"; }
log "$(go version), sarama $(package_version golang-github-shopify-sarama-dev)," \
    "kafka-go $(package_version golang-github-segmentio-kafka-go-dev)"

GO_DIR="${COMPAT_GO_DIR:-$ROOT/target/compat-go}"
mkdir -p "$GO_DIR"
export GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$GO_DIR/gocache" GOFLAGS=
build_started=$SECONDS
for program in wiretap sarama kafkago; do
    # DataDog/zstd (a sarama dependency, cgo) warns that it calls a deprecated zstd function;
    # only a failed build's output matters.
    if ! build_output="$(cd "$ROOT/scripts/compat-go" && go build -o "$GO_DIR/$program" "./$program" 2>&1)"; then
        printf '%s\n' "$build_output" >&2
        fail "go build scripts/compat-go/$program failed"
    fi
done
log "built the Go programs into $GO_DIR in $((SECONDS - build_started)) s"

# --- the broker ----------------------------------------------------------------------------------
# shellcheck source=scripts/lib-compat.sh
source "$ROOT/scripts/lib-compat.sh"
resolve_odradek_bin

WORK="$(mktemp -d -t odradek-compat-go-XXXXXX)"
DATA="$WORK/data"
BROKER_LOG="$WORK/broker.log"
TAP_LOG="$WORK/requests.log"
BROKER_PID=""
TAP_PID=""
LISTEN="127.0.0.1:$(free_port)"
BOOT="127.0.0.1:$(free_port)" # the relay's: what the broker advertises and the clients use
mkdir -p "$DATA"

stop() { # pid
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

cleanup() {
    local status=$?
    [[ -n "$TAP_PID" ]] && stop "$TAP_PID"
    [[ -n "$BROKER_PID" ]] && stop "$BROKER_PID"
    if [[ $status -ne 0 && -f "$BROKER_LOG" ]]; then
        printf '[compat-go] --- last broker log lines ---\n' >&2
        tail -n 30 "$BROKER_LOG" >&2 || true
    fi
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT

log "starting $ODRADEK_BIN on $LISTEN (advertised: the relay on $BOOT), data in $DATA"
"$ODRADEK_BIN" --listen "$LISTEN" --advertise "$BOOT" --data-dir "$DATA" --cores 2 >"$BROKER_LOG" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 300); do
    grep -q "odradek listening on $LISTEN" "$BROKER_LOG" && break
    kill -0 "$BROKER_PID" 2>/dev/null || fail "the broker exited before listening"
    sleep 0.1
done
grep -q "odradek listening on $LISTEN" "$BROKER_LOG" ||
    fail "the broker printed no 'odradek listening on $LISTEN' within 30 s"

"$GO_DIR/wiretap" -listen "$BOOT" -broker "$LISTEN" >"$TAP_LOG" 2>>"$BROKER_LOG" &
TAP_PID=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/${BOOT%:*}/${BOOT#*:}") 2>/dev/null && break
    kill -0 "$TAP_PID" 2>/dev/null || fail "the wiretap relay exited before listening on $BOOT"
    sleep 0.1
done

# --- the runs ------------------------------------------------------------------------------------
# Each program makes its own topics and reports every check; a failed run does not stop the next.
# The relay's lines for a run are those with its client id (requests a run sends at another
# version, such as sarama's admin before 0.11.0.0, carry "-as-VERSION" and are not counted).
failed=()
client_run() { # name, client id, command...
    local name="$1" client_id="$2"
    shift 2
    log "--- $name"
    local status
    set +e
    timeout 90 "$@" 2>&1 | tee "$WORK/run.out" >&2
    status=${PIPESTATUS[0]}
    set -e
    log "$name sent: $(grep "^$client_id " "$TAP_LOG" | cut -d' ' -f2- | sort -V | uniq -c |
        awk '{printf "%s%s %s x%d", sep, $2, $3, $1; sep=", "}' || true)"
    if [[ $status -eq 124 ]]; then
        failed+=("$name: hung (killed after 90 s)")
    elif [[ $status -ne 0 ]]; then
        failed+=("$name: $(grep -m1 -o 'FAIL: .*' "$WORK/run.out" | cut -c7- || echo "exit $status")")
    fi
}

sarama_flags=()
[[ "${COMPAT_GO_VERBOSE:-0}" == 1 ]] && sarama_flags+=(-verbose)
for version in 2.1.0 0.10.2.0 default; do
    client_id="sarama-$version"
    [[ "$version" == default ]] && client_id="sarama-0.8.2.0" # sarama 1.22's default
    client_run "sarama 1.22, version $version" "$client_id" \
        "$GO_DIR/sarama" -bootstrap "$BOOT" -version "$version" "${sarama_flags[@]}"
done
client_run "kafka-go 0.2.1" "kafka-go-0.2.1" "$GO_DIR/kafkago" -bootstrap "$BOOT"

kill -0 "$BROKER_PID" 2>/dev/null || fail "the broker died during the run"
if ((${#failed[@]} > 0)); then
    for f in "${failed[@]}"; do log "failed: $f"; done
    fail "${failed[0]}"
fi
stop_status=0
kill -TERM "$BROKER_PID"
wait "$BROKER_PID" || stop_status=$?
BROKER_PID=""
[[ $stop_status -eq 0 ]] || fail "the broker exited with status $stop_status after SIGTERM (want 0)"
log "all Go client checks passed"
