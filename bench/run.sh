#!/usr/bin/env bash
# run.sh — Tessera's reproducible benchmark table (see bench/README.md).
#
#   bench/run.sh                   # every workload at full size (add1, gaussian, regions,
#                                  # on a u16 stack: normalize, mean0, mean12, fftpower; label)
#   bench/run.sh add1              # selected workloads
#   bench/run.sh --quick           # small sizes: a smoke run of the whole pipeline
#
# Builds tessera (release) and the plain-zarrs baseline, sets up the Python venv
# (scripts/python-env.sh), then runs bench/bench.py, which generates inputs under
# bench/work/ (git-ignored; inputs are cached there between runs), times each tool and
# prints the table. Options: --workers N (default 2), --repeat N (default 2).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
}

quick=()
workers=2
repeat=2
workloads=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=(--quick) ;;
        --workers) workers="${2:?--workers needs a value}"; shift ;;
        --repeat) repeat="${2:?--repeat needs a value}"; shift ;;
        -h|--help) usage; exit 0 ;;
        add1|gaussian|regions|normalize|mean0|mean12|fftpower|label) workloads+=("$1") ;;
        *) echo "run.sh: unknown argument '$1' (workloads: add1 gaussian regions normalize mean0 mean12 fftpower label)" >&2; exit 2 ;;
    esac
    shift
done
[[ ${#workloads[@]} -gt 0 ]] || workloads=(add1 gaussian regions normalize mean0 mean12 fftpower label)

step() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not on PATH"
command -v python3 >/dev/null || die "python3 is not on PATH"

step "building tessera (cargo build --release)"
cargo build --release --bin tessera >&2 || die "cargo build --release failed"
tessera="$repo_root/target/release/tessera"
[[ -x "$tessera" ]] || die "no executable at $tessera"

baseline=""
if [[ " ${workloads[*]} " == *" add1 "* ]]; then
    step "building the zarrs baseline (cargo bench --no-run --bench zarrs_baseline)"
    messages="$(mktemp)"
    cargo bench --no-run --bench zarrs_baseline --message-format=json >"$messages" \
        || { rm -f "$messages"; die "building benches/zarrs_baseline.rs failed"; }
    baseline="$(python3 - "$messages" <<'EOF'
import json, sys
exe = ""
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "zarrs_baseline" \
            and m.get("executable"):
        exe = m["executable"]
print(exe)
EOF
)"
    rm -f "$messages"
    if [[ -z "$baseline" ]]; then
        # Fall back to the newest built binary in target/release/deps.
        baseline="$(find "$repo_root/target/release/deps" -maxdepth 1 -type f -executable \
            -name 'zarrs_baseline-*' -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n1 | cut -d' ' -f2-)"
    fi
    [[ -n "$baseline" && -x "$baseline" ]] || die "cannot find the zarrs_baseline executable"
    # A bench target built with the libtest harness ignores main() and rejects --input.
    usage_text="$("$baseline" 2>&1 || true)"
    if [[ "$usage_text" != *--input* ]]; then
        die "$baseline is not the zarrs baseline CLI (is [[bench]] name = \"zarrs_baseline\" harness = false in Cargo.toml?)"
    fi
    printf 'baseline: %s\n' "$baseline" >&2
fi

step "python environment (scripts/python-env.sh)"
python="$("$repo_root/scripts/python-env.sh" | tail -n1)"
[[ -x "$python" ]] || die "scripts/python-env.sh did not yield a python ($python)"

mkdir -p "$repo_root/bench/work"
mode="full size"
[[ ${#quick[@]} -eq 0 ]] || mode="quick size"
step "running: ${workloads[*]} ($mode)"
exec "$python" "$repo_root/bench/bench.py" \
    --tessera "$tessera" --baseline "$baseline" --work "$repo_root/bench/work" \
    --workers "$workers" --repeat "$repeat" "${quick[@]}" "${workloads[@]}"
