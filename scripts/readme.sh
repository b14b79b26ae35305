#!/usr/bin/env bash
# README as a newcomer reads it: a fresh clone, the "Run a broker" command exactly as README.md
# writes it (no arguments: 127.0.0.1:9092, ./odradek-data), then every line of the "Try it" and
# "Administer it" blocks, run as written from the clone, with their output compared to what a
# user should see. The commands are read from README.md itself, so the test breaks when the
# page and the program disagree.
#
#   bash scripts/readme.sh
#
# Needs: kcat (apt-get install -y kcat), git, port 9092 free. README_TARGET_DIR (default: this
# checkout's target directory) is the cargo target directory the clone builds into (its ./target
# links there), so that dependencies already built are reused. Exits non-zero naming the first mismatch; the broker is
# always stopped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[readme] %s\n' "$*" >&2; }
fail() {
    printf '[readme] FAIL: %s\n' "$*" >&2
    exit 1
}

command -v kcat >/dev/null || fail "kcat not found: apt-get install -y kcat"
if (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
    fail "something already listens on 127.0.0.1:9092, the README's default port"
fi

# The code blocks (```sh … ```) of the README section whose heading is $1, one line each.
section_commands() {
    awk -v heading="## $1" '
        $0 == heading { in_section = 1; next }
        /^## / { in_section = 0 }
        in_section && /^```sh$/ { in_block = 1; next }
        in_section && /^```$/ { in_block = 0; next }
        in_section && in_block { print }
    ' "$ROOT/README.md"
}

WORK="$(mktemp -d -t odradek-readme-XXXXXX)"
CLONE="$WORK/odradek"
BROKER_LOG="$WORK/broker.log"
BROKER_PID=""
# `cargo run` starts the broker as its child, in a session of its own (setsid): signals go to the
# broker, found in that session, and cargo passes on its exit status.
broker_pid() { pgrep -s "$BROKER_PID" -x odradek || true; }
cleanup() {
    local status=$?
    if [[ -n "$BROKER_PID" ]]; then
        local pid
        pid="$(broker_pid)"
        [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null
        kill -KILL -- "-$BROKER_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -f "$BROKER_LOG" ]]; then
        printf '[readme] --- last broker log lines ---\n' >&2
        tail -n 40 "$BROKER_LOG" >&2 || true
    fi
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT

log "cloning into $CLONE"
git clone --quiet "$ROOT" "$CLONE"
cd "$CLONE"
# The clone's ./target is a link to an existing target directory: dependencies already built are
# reused, and the README's paths (./target/release/odradek) hold as written.
shared_target="${README_TARGET_DIR:-$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')}"
mkdir -p "$shared_target"
ln -s "$shared_target" "$CLONE/target"
unset CARGO_TARGET_DIR

run_command="$(section_commands "Run a broker" | head -n 1)"
[[ "$run_command" == cargo\ run* ]] || fail "README's first 'Run a broker' line is not a cargo run: $run_command"
# The build first, so that the wait for the broker below does not include compiling.
log "building: ${run_command/cargo run/cargo build}"
eval "${run_command/cargo run/cargo build}" >&2
log "starting, as written: $run_command"
setsid bash -c "exec $run_command" >"$BROKER_LOG" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 600); do
    grep -q "odradek listening on 127.0.0.1:9092" "$BROKER_LOG" && break
    kill -0 "$BROKER_PID" 2>/dev/null || fail "the broker exited before listening"
    sleep 0.1
done
grep -q "odradek listening on 127.0.0.1:9092" "$BROKER_LOG" || fail "no 'odradek listening' line within 60 s"
[[ -d "$CLONE/odradek-data" ]] || fail "no ./odradek-data in the working directory"

# Runs one README line as written; its output goes to $WORK/out.
run_line() {
    local line="${1%%#*}"
    [[ -n "${line// /}" ]] || return 0
    log "\$ $line"
    timeout 60 bash -c "$line" >"$WORK/out" 2>"$WORK/err" || {
        cat "$WORK/err" >&2
        fail "the README line failed: $line"
    }
    cat "$WORK/out" >&2
}

expect_out() {
    grep -qE "$1" "$WORK/out" || fail "expected /$1/ in the output of the line above"
}

mapfile -t try_lines < <(section_commands "Run a broker" | tail -n +2)
((${#try_lines[@]} >= 3)) || fail "README's kcat example has fewer than 3 lines"
for line in "${try_lines[@]}"; do
    run_line "$line"
    case "$line" in
        *" -L"*) expect_out "1 brokers:" ;;
        *" -C "*)
            printf 'k1 hello\nk2 world\n' | diff - "$WORK/out" >&2 ||
                fail "the consumed records differ from the produced ones"
            ;;
    esac
done

mapfile -t admin_lines < <(section_commands "Administer it")
((${#admin_lines[@]} >= 3)) || fail "README's admin example has fewer than 3 lines"
for line in "${admin_lines[@]}"; do
    run_line "$line"
    case "$line" in
        *"topic list"*) expect_out "^demo" ;;
        *"topic describe"*) expect_out "demo" ;;
    esac
done

log "stopping the broker with SIGTERM"
pid="$(broker_pid)"
[[ -n "$pid" ]] || fail "no odradek process under cargo run"
kill -TERM "$pid"
status=0
wait "$BROKER_PID" || status=$?
BROKER_PID=""
((status == 0)) || fail "the broker exited with $status after SIGTERM"
grep -qi "error" "$BROKER_LOG" && {
    grep -i "error" "$BROKER_LOG" >&2
    fail "the broker logged errors"
}
log "README commands work as written"
