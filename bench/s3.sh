#!/usr/bin/env bash
# s3.sh — read throughput from an object store against the local filesystem.
#
#   bash bench/s3.sh              # BENCH_MB=256 by default; BENCH_MB=1024 for the 1 GB run
#
# Writes one float32 array of BENCH_MB megabytes (chunks of 1 x 256 x 256, 256 KiB) locally
# and to the local S3 server (scripts/s3-local.sh, moto), then times `zarr(...).sum()`:
#   local      the local filesystem
#   s3         the loopback S3 server
#   s3+50ms    the same server behind tests/fault_proxy.py adding 50 ms to every request
# and prints each throughput and its ratio to the local one (targets: s3 >= 50 %,
# s3+50ms >= 25 %). Figures are from one run on one machine; compare ratios, not MB/s.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
mb="${BENCH_MB:-256}"
planes=$((mb / 4))
work="$repo/bench/work/s3"
rm -rf "$work"
mkdir -p "$work"

py=$(bash scripts/python-env.sh | tail -n 1)
export TESSERA_PYTHON="$py"
endpoint=$(bash scripts/s3-local.sh | tail -n 1)
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="$endpoint"
bucket="bench-$$"
"$py" tests/s3_tool.py "$endpoint" mkbucket "$bucket"

cargo build --quiet
tessera="${CARGO_TARGET_DIR:-$repo/target}/debug/tessera"
gen="random(($planes, 1024, 1024), dtype=\"f32\", chunks=(1, 256, 256), seed=1)"
echo "$gen.write(\"$work/in.zarr\")" >"$work/gen-local.tsr"
echo "$gen.write(\"s3://$bucket/in.zarr\")" >"$work/gen-s3.tsr"
"$tessera" run "$work/gen-local.tsr" --quiet
"$tessera" run "$work/gen-s3.tsr" --quiet

"$py" tests/fault_proxy.py "$endpoint" --latency-ms 50 >"$work/proxy.url" 2>/dev/null &
proxy_pid=$!
trap 'kill $proxy_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do [[ -s "$work/proxy.url" ]] && break; sleep 0.1; done
proxy=$(head -n 1 "$work/proxy.url")

time_read() { # name src endpoint -> seconds
    echo "print(zarr(\"$2\").sum())" >"$work/read-$1.tsr"
    local t0 t1
    t0=$(date +%s.%N)
    AWS_ENDPOINT_URL="$3" "$tessera" run "$work/read-$1.tsr" --quiet >"$work/read-$1.out"
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

t_local=$(time_read local "$work/in.zarr" "$endpoint")
t_s3=$(time_read s3 "s3://$bucket/in.zarr" "$endpoint")
t_lat=$(time_read lat "s3://$bucket/in.zarr" "$proxy")
cmp -s "$work/read-local.out" "$work/read-s3.out" || { echo "s3 read differs from local" >&2; exit 1; }
cmp -s "$work/read-local.out" "$work/read-lat.out" || { echo "s3+50ms read differs from local" >&2; exit 1; }

report() { # name seconds
    local mbs ratio
    mbs=$(echo "$mb / $2" | bc -l)
    ratio=$(echo "100 * $t_local / $2" | bc -l)
    printf '%-8s %6.2f s  %8.1f MB/s  %5.1f %% of local\n' "$1" "$2" "$mbs" "$ratio"
}
echo "reading $mb MB ($((planes * 16)) chunks of 256 KiB), sum of all elements:"
report local "$t_local"
report s3 "$t_s3"
report s3+50ms "$t_lat"
