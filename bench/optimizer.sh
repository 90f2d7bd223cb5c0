#!/bin/sh
# Optimizer and planner scaling: `tessera plan` of generated programs of 8k..64k ops (a
# chain of elementwise ops that reuses earlier values, with a stencil every 64 lines).
# Prints seconds and peak RSS of `plan` and of `check` (which describes every binding)
# per size; the time per op should stay flat.
# Usage: bench/optimizer.sh [path/to/tessera]
set -eu
bin=${1:-target/release/tessera}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for n in 8000 16000 32000 64000; do
    python3 - "$n" "$dir/g$n.tsr" <<'PY'
import sys
n, out = int(sys.argv[1]), sys.argv[2]
lines = ['let x = arange(4096, chunks=1024).astype("f32")', "let y0 = x"]
for i in range(1, n + 1):
    if i % 64 == 0:
        lines.append(f"let y{i} = y{i-1}.map(gaussian(1))")
    elif i % 3 == 0:
        lines.append(f"let y{i} = y{i-1} * 1.5 + y{i-2}")
    else:
        lines.append(f"let y{i} = y{i-1} - {i % 7}.0")
lines.append(f'y{n}.write("out.zarr", overwrite=true)')
open(out, "w").write("\n".join(lines) + "\n")
PY
    /usr/bin/time -f "$n lines: plan %e s, peak %M KB" "$bin" plan "$dir/g$n.tsr" >/dev/null
    /usr/bin/time -f "$n lines: check %e s, peak %M KB" "$bin" check "$dir/g$n.tsr" >/dev/null
done
