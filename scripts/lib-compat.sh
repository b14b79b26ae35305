# Shared by scripts/compat.sh and scripts/compat_go.sh (sourced; `log` and `fail` come from the
# caller): the broker binary to test, and free loopback ports.

# Sets ODRADEK_BIN: as given, or built with cargo's COMPAT_PROFILE (default: dev).
resolve_odradek_bin() {
    if [[ -z "${ODRADEK_BIN:-}" ]]; then
        local profile="${COMPAT_PROFILE:-dev}" target_dir out
        log "building odradek (profile $profile)"
        cargo build --profile "$profile" --workspace --bin odradek >&2
        target_dir="$(cargo metadata --format-version 1 --no-deps |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
        if [[ "$profile" == "dev" ]]; then out="debug"; else out="$profile"; fi
        ODRADEK_BIN="$target_dir/$out/odradek"
    fi
    [[ -x "$ODRADEK_BIN" ]] || fail "no broker binary at $ODRADEK_BIN"
}

# A loopback port nothing listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
