#!/usr/bin/env bash
# s3.sh — read throughput from an object store against the local filesystem.
#
#   bash bench/s3.sh              # BENCH_MB=256 by default; BENCH_MB=1024 for the 1 GB run
#   BENCH_S3_SERVER=moto bash bench/s3.sh     # against moto instead of s3s-fs
#
# Writes one float32 array of BENCH_MB megabytes (chunks of 1 x 256 x 256, 256 KiB) locally
# and to a local S3 server (scripts/s3-local.sh; BENCH_S3_SERVER, default s3s-fs: the Rust
# server from crates.io, installed on first use), then times `zarr(...).sum()`:
#   local      the local filesystem
#   s3         the loopback S3 server
#   s3+50ms    the same server behind `tests/fault_proxy.py --tcp` holding every request
#              50 ms before passing it on
# Each is run BENCH_REPEAT times (default 2) and the fastest kept. Prints each throughput,
# its ratio to the local one (targets: s3 >= 50 %, s3+50ms >= 25 %), the CPU seconds that
# Tessera and the server spent on it, and the server's ceiling: what boto3 GETs of the same
# chunks from 32 threads (bench/s3_ceiling.py) reach. Figures are from one machine whose
# cores the client, the server and the proxy share; compare ratios, not MB/s.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
mb="${BENCH_MB:-256}"
repeat="${BENCH_REPEAT:-2}"
planes=$((mb / 4))
work="$repo/bench/work/s3"
rm -rf "$work"
mkdir -p "$work"

py=$(bash scripts/python-env.sh | tail -n 1)
export TESSERA_PYTHON="$py"
export TESSERA_S3_SERVER="${BENCH_S3_SERVER:-s3s-fs}"
endpoint=$(bash scripts/s3-local.sh | tail -n 1)
case "$TESSERA_S3_SERVER" in
    moto) state="$repo/target/s3-local"; key=bench ;;
    *) state="$repo/target/s3-local-s3s-fs"; key="${TESSERA_S3_KEY:-tessera}" ;;
esac
state="${TESSERA_S3_STATE:-$state}"
server_pid=$(cat "$state/pid")
export AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$key" AWS_REGION=us-east-1
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

"$py" tests/fault_proxy.py "$endpoint" --latency-ms 50 --tcp >"$work/proxy.url" 2>/dev/null &
proxy_pid=$!
trap 'kill $proxy_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do [[ -s "$work/proxy.url" ]] && break; sleep 0.1; done
proxy=$(head -n 1 "$work/proxy.url")

cpu_ticks() { # pid -> user + system clock ticks so far
    awk '{print $14 + $15}' "/proc/$1/stat"
}
tick=$(getconf CLK_TCK)

time_read() { # name src endpoint -> "seconds tessera-cpu-seconds server-cpu-seconds" (fastest run)
    echo "print(zarr(\"$2\").sum())" >"$work/read-$1.tsr"
    local best="" i c0 c1 wall cpu
    for ((i = 0; i < repeat; i++)); do
        c0=$(cpu_ticks "$server_pid")
        AWS_ENDPOINT_URL="$3" /usr/bin/time -f "%e %U %S" -o "$work/time-$1" \
            "$tessera" run "$work/read-$1.tsr" --quiet >"$work/read-$1.out"
        c1=$(cpu_ticks "$server_pid")
        read -r wall user sys <"$work/time-$1"
        cpu=$(echo "$user + $sys" | bc -l)
        if [[ -z "$best" ]] || (($(echo "$wall < ${best%% *}" | bc -l))); then
            best="$wall $cpu $(echo "($c1 - $c0) / $tick" | bc -l)"
        fi
    done
    echo "$best"
}

read -r t_local cpu_local _ <<<"$(time_read local "$work/in.zarr" "$endpoint")"
read -r t_s3 cpu_s3 srv_s3 <<<"$(time_read s3 "s3://$bucket/in.zarr" "$endpoint")"
read -r t_lat cpu_lat srv_lat <<<"$(time_read lat "s3://$bucket/in.zarr" "$proxy")"
cmp -s "$work/read-local.out" "$work/read-s3.out" || { echo "s3 read differs from local" >&2; exit 1; }
cmp -s "$work/read-local.out" "$work/read-lat.out" || { echo "s3+50ms read differs from local" >&2; exit 1; }
ceiling=$("$py" bench/s3_ceiling.py "$endpoint" "$bucket" --prefix in.zarr/c/ \
    --objects 1024 --threads 32 | awk '{print $(NF-1)}')

report() { # name seconds tessera-cpu server-cpu
    local mbs ratio
    mbs=$(echo "$mb / $2" | bc -l)
    ratio=$(echo "100 * $t_local / $2" | bc -l)
    printf '%-8s %6.2f s  %8.1f MB/s  %5.1f %% of local   cpu: tessera %5.2f s, server %5.2f s\n' \
        "$1" "$2" "$mbs" "$ratio" "$3" "$4"
}
echo "reading $mb MB ($((planes * 16)) chunks of 256 KiB), sum of all elements, S3 server $TESSERA_S3_SERVER, best of $repeat:"
report local "$t_local" "$cpu_local" 0
report s3 "$t_s3" "$cpu_s3" "$srv_s3"
report s3+50ms "$t_lat" "$cpu_lat" "$srv_lat"
echo "server ceiling: boto3 GETs of the first 1024 chunks from 32 threads: $ceiling MB/s"
