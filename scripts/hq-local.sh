#!/usr/bin/env bash
# hq-local.sh — a HyperQueue server and one worker on loopback, for the distributed tests
# (tests/cluster.rs) and bench/cluster.sh.
#
#   scripts/hq-local.sh          # start (or keep) the server; prints its server directory last
#   scripts/hq-local.sh --stop   # stop the server and its worker
#
# HyperQueue comes from PyPI (the `hyperqueue` pin of scripts/python-env.sh), whose wheel holds
# the server, the worker and the client; scripts/hq_local.py runs them in one process.
# The server directory is $HQ_SERVER_DIR (default /tmp/tessera-hq); the worker gets every
# core. Idempotent: a server that answers is left running.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
server_dir="${HQ_SERVER_DIR:-/tmp/tessera-hq}"
pidfile="$server_dir/tessera-daemon.pid"
log() { printf 'hq-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
alive() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if [[ "${1:-}" == "--stop" ]]; then
    if alive; then
        pid=$(cat "$pidfile")
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        log "stopped the server in $server_dir"
    fi
    rm -f "$pidfile"
    exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [--stop]"

py="${TESSERA_HQ_PYTHON:-}"
if [[ -z "$py" ]]; then
    py=$(bash "$repo_root/scripts/python-env.sh" | tail -n 1) || die "scripts/python-env.sh failed"
fi
"$py" -c 'import hyperqueue' 2>/dev/null || die "$py cannot import hyperqueue (scripts/python-env.sh pins it)"

ping() { "$py" -c "from hyperqueue import Client; Client('$server_dir')" >/dev/null 2>&1; }
if alive && [[ -e "$server_dir/tessera-ready" ]] && ping; then
    log "server running in $server_dir"
    echo "$server_dir"
    exit 0
fi
if alive; then kill "$(cat "$pidfile")" 2>/dev/null || true; sleep 0.5; fi
rm -f "$server_dir/tessera-ready"
mkdir -p "$server_dir"
setsid nohup "$py" "$repo_root/scripts/hq_local.py" "$server_dir" "$(nproc)" \
    >"$server_dir/daemon.log" 2>&1 </dev/null &
echo $! >"$pidfile"
for _ in $(seq 300); do
    if [[ -e "$server_dir/tessera-ready" ]] && ping; then
        log "started a server and a worker in $server_dir"
        echo "$server_dir"
        exit 0
    fi
    alive || die "the server exited: $(tail -n 5 "$server_dir/daemon.log")"
    sleep 0.1
done
die "the server did not answer within 30 s (see $server_dir/daemon.log)"
