#!/usr/bin/env bash
# s3-local.sh — start (or reuse) a local S3 server (moto's server mode) on 127.0.0.1 for
# the object-store tests (tests/remote.rs) and the benchmark (bench/s3.sh).
#
#   scripts/s3-local.sh           # start it unless running; last stdout line: endpoint URL
#   scripts/s3-local.sh --stop    # stop it
#
# The server listens on a free port; its pid, port and log live in $TESSERA_S3_STATE
# (default <repo>/target/s3-local). Idempotent and safe to call concurrently: a running,
# answering server is reused. Python: $TESSERA_PYTHON, else scripts/python-env.sh's venv
# (which pins moto[server] and boto3).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${TESSERA_S3_STATE:-$repo_root/target/s3-local}"
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
setsid "$py" -m moto.server -H 127.0.0.1 -p "$port" >"$state/server.log" 2>&1 </dev/null 9>&- &
echo $! >"$state/pid"
for _ in $(seq 1 150); do
    if answers "$endpoint"; then
        echo "$endpoint" >"$state/endpoint"
        log "moto S3 server at $endpoint (pid $(cat "$state/pid"))"
        echo "$endpoint"
        exit 0
    fi
    alive || die "the server exited; see $state/server.log"
    sleep 0.2
done
stop
die "the server did not answer within 30 s; see $state/server.log"
