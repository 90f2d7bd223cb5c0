#!/usr/bin/env bash
# s3-local.sh — start (or reuse) a local S3 server on 127.0.0.1 for the object-store tests
# (tests/remote.rs) and the benchmark (bench/s3.sh).
#
#   scripts/s3-local.sh           # start it unless running; last stdout line: endpoint URL
#   scripts/s3-local.sh --stop    # stop it
#
# Which server: $TESSERA_S3_SERVER
#   moto     (default) moto's server mode, from the venv: what the tests run against.
#   s3s-fs   the `s3s-fs` server (Rust, crate s3s-fs from crates.io, objects stored as
#            files under the state directory), much cheaper per request than moto: what
#            the throughput benchmark uses. Installed on first use with
#            `cargo install s3s-fs@$S3S_FS_VERSION --features binary --locked` into
#            <repo>/target/s3s-fs (about 4 minutes on 2 cores), reused after that.
#            Credentials: access key and secret key both `tessera` ($TESSERA_S3_KEY).
#
# The server listens on a free port; its pid, port and log live in $TESSERA_S3_STATE
# (default <repo>/target/s3-local for moto, <repo>/target/s3-local-s3s-fs for s3s-fs).
# Idempotent and safe to call concurrently: a running, answering server is reused.
# Python (for moto, and to probe the server): $TESSERA_PYTHON, else scripts/python-env.sh's
# venv (which pins moto[server] and boto3).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
server="${TESSERA_S3_SERVER:-moto}"
case "$server" in
    moto) default_state="$repo_root/target/s3-local" ;;
    s3s-fs) default_state="$repo_root/target/s3-local-s3s-fs" ;;
    *) printf 's3-local: error: TESSERA_S3_SERVER=%s: use moto or s3s-fs\n' "$server" >&2; exit 2 ;;
esac
# s3s-fs 0.14 is the newest release that builds with the toolchain of this project's machines.
S3S_FS_VERSION=0.14.1
state="${TESSERA_S3_STATE:-$default_state}"
mkdir -p "$state"

log() { printf 's3-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

alive() {
    [[ -f "$state/pid" ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

stop() {
    if alive; then
        kill "$(cat "$state/pid")" 2>/dev/null || true
        log "stopped (pid $(cat "$state/pid"))"
    fi
    rm -f "$state/pid" "$state/endpoint"
}

exec 9>"$state/lock"
flock 9

if [[ "${1:-}" == "--stop" ]]; then
    stop
    exit 0
fi

py="${TESSERA_PYTHON:-}"
if [[ -z "$py" ]] || ! "$py" -c 'import moto.server, boto3' 2>/dev/null; then
    py=$(bash "$repo_root/scripts/python-env.sh" | tail -n 1) || die "scripts/python-env.sh failed"
fi
"$py" -c 'import moto.server, boto3' 2>/dev/null || die "$py cannot import moto.server and boto3"

# The s3s-fs executable, installed from crates.io unless it is there at the pinned version.
s3s_fs() {
    local root="$repo_root/target/s3s-fs" bin="$repo_root/target/s3s-fs/bin/s3s-fs"
    if [[ ! -x "$bin" ]] || [[ "$("$bin" --version 2>/dev/null)" != "s3s-fs $S3S_FS_VERSION" ]]; then
        log "installing s3s-fs $S3S_FS_VERSION with cargo (once; a few minutes)"
        cargo install "s3s-fs@$S3S_FS_VERSION" --features binary --locked --root "$root" \
            >"$state/install.log" 2>&1 9>&- || die "cargo install s3s-fs failed; see $state/install.log"
    fi
    echo "$bin"
}

answers() {
    "$py" - "$1" <<'EOF' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=2)
except urllib.error.HTTPError:
    pass
EOF
}

if alive && [[ -f "$state/endpoint" ]] && answers "$(cat "$state/endpoint")"; then
    cat "$state/endpoint"
    exit 0
fi
stop

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"
# A session of its own: the server outlives the shell (and the test) that started it.
if [[ "$server" == moto ]]; then
    setsid "$py" -m moto.server -H 127.0.0.1 -p "$port" >"$state/server.log" 2>&1 </dev/null 9>&- &
else
    bin=$(s3s_fs)
    key="${TESSERA_S3_KEY:-tessera}"
    mkdir -p "$state/data"
    setsid "$bin" --host 127.0.0.1 --port "$port" --access-key "$key" --secret-key "$key" \
        "$state/data" >"$state/server.log" 2>&1 </dev/null 9>&- &
fi
echo $! >"$state/pid"
for _ in $(seq 1 150); do
    if answers "$endpoint"; then
        echo "$endpoint" >"$state/endpoint"
        log "$server S3 server at $endpoint (pid $(cat "$state/pid"))"
        echo "$endpoint"
        exit 0
    fi
    alive || die "the server exited; see $state/server.log"
    sleep 0.2
done
stop
die "the server did not answer within 30 s; see $state/server.log"
