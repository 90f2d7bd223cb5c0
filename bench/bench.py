"""Benchmark runner behind bench/run.sh: generates inputs, times every tool, prints the table.

Every measured command runs as a direct child of this process and is reaped with
os.wait4(), which returns that child's own resource usage: wall time comes from a
monotonic clock around the run, CPU time from ru_utime + ru_stime and peak RSS from
ru_maxrss (KiB on Linux). Nothing else (no /usr/bin/time) is needed.

Protocol per workload: each tool runs once on the quick-size input as a warm-up (page
cache, lazy imports, CPU frequency), then twice on the measured input, and the better
(lower wall time) of the two is reported. Outputs are deleted before every run. The page
cache is not dropped: inputs are read warm, so the figures measure decode, compute, encode
and write, not the disk.

The "regions" workload also times `tessera plan` on a metadata-only (500, 100000, 100000)
array with 50 regions, and on a trivial script (process start-up), printed under the table.

Usage: python bench/bench.py --tessera BIN --baseline BIN --work DIR [--quick] [WORKLOAD...]
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rois as roislib  # noqa: E402  (bench/rois.py: standard library only)

# Input sizes. "full" is what the README's figures use; "quick" is the smoke-test size and
# also the warm-up input of a full run.
SIZES = {
    "full": {
        # u16, 9 x 8000 x 8000 = 1.152e9 bytes (1.07 GiB), 144 chunks of 8 MB.
        "add1": {"shape": (9, 8000, 8000), "chunks": (1, 2000, 2000)},
        # f32, 8192 x 8192 = 268 MB (256 MiB), 64 chunks of 4 MiB.
        "gaussian": {"shape": (8192, 8192), "chunks": (1024, 1024)},
        # u16, 2 x 8 x 8000 x 8000 = 2.048e9 bytes (1.91 GiB), 256 chunks of 8 MB; 50 regions
        # of 900..1100 x 900..1100 px filtered into a new f32 array.
        "regions": {"shape": (2, 8, 8000, 8000), "chunks": (1, 1, 2000, 2000), "rois": 50},
        # u8 4096 x 4096 blob image, 64 chunks of 512 x 512.
        "label": {"shape": (4096, 4096), "chunks": (512, 512)},
        # u16 time-lapse stack, 200 x 1024 x 1024 = 419 MB, 80 chunks of 5 MB.
        "stack": {"shape": (200, 1024, 1024), "chunks": (10, 512, 512)},
    },
    "quick": {
        "add1": {"shape": (2, 4000, 4000), "chunks": (1, 2000, 2000)},
        "gaussian": {"shape": (2048, 2048), "chunks": (1024, 1024)},
        "regions": {"shape": (1, 2, 4000, 4000), "chunks": (1, 1, 2000, 2000), "rois": 10},
        "stack": {"shape": (40, 512, 512), "chunks": (10, 256, 256)},
        "label": {"shape": (1024, 1024), "chunks": (256, 256)},
    },
}
# Workloads over one shared u16 stack (its input is made once).
STACK = ("normalize", "mean0", "mean12", "fftpower")
for _size in SIZES.values():
    for _w in STACK:
        _size[_w] = _size["stack"]
WORKLOADS = ("add1", "gaussian", "regions", *STACK, "label")
DTYPES = {"add1": "u16", "gaussian": "f32", "regions": "u16", **{w: "u16" for w in STACK}, "label": "u8"}
# What Tessera runs for each stack workload (dask_stack.py computes the same).
STACK_SCRIPTS = {
    "normalize": 'let x = zarr("in.zarr")\n'
                 '(x / x.max(axis=(1, 2), keepdims=true)).astype("f32").write("out_tessera.zarr", overwrite=true)\n',
    "mean0": 'zarr("in.zarr").mean(axis=0).write("out_tessera.zarr", overwrite=true)\n',
    "mean12": 'zarr("in.zarr").mean(axis=(1, 2)).write("out_tessera.zarr", overwrite=true)\n',
    "fftpower": 'let x = zarr("in.zarr")\n'
                'let r = x.rechunk((x.shape[0], 16, 16))\n'
                '(abs(fft(r, axis=0)) ** 2).astype("f32").write("out_tessera.zarr", overwrite=true)\n',
}
SIGMA = 5
# regions: per-axis sigma (t, c, y, x), i.e. a 2-D gaussian on every (t, c) plane; halo 8 px.
REGIONS_SIGMA = (0, 0, 2, 2)
# The plan measurement: a metadata-only input (no chunk on disk) and 50 regions.
PLAN_SHAPE = (500, 100000, 100000)
PLAN_CHUNKS = (1, 2000, 2000)
PLAN_ROIS = 50
PLAN_REPEAT = 7


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class ToolError(Exception):
    pass


def cpu_busy_seconds():
    """CPU seconds spent busy by the whole machine so far (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(max_wait, threshold=0.25):
    """Wait (up to max_wait s) until other processes use less than `threshold` of one core,
    so that a measurement does not share the machine with, e.g., a concurrent build."""
    waited = 0.0
    while True:
        b0, t0 = cpu_busy_seconds(), time.perf_counter()
        time.sleep(1.0)
        b1, t1 = cpu_busy_seconds(), time.perf_counter()
        if b0 is None or b1 is None:
            return None
        load = (b1 - b0) / (t1 - t0)
        if load < threshold or waited >= max_wait:
            if load >= threshold:
                log(f"  machine still busy ({load:.2f} cores used by others) after {waited:.0f} s; measuring anyway")
            return load
        if waited == 0:
            log(f"  machine busy ({load:.2f} cores used by other processes); waiting up to {max_wait} s")
        time.sleep(4.0)
        waited += 5.0


def measure(cmd, cwd, label):
    """Run cmd; return wall/user/sys seconds, peak RSS (MB), the CPU used meanwhile by other
    processes (bg_pct, % of one core) and its stdout. Fails loudly."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy0 = cpu_busy_seconds()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        busy1 = cpu_busy_seconds()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        raise ToolError(f"{label} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    cpu = ru.ru_utime + ru.ru_stime
    bg = None
    if busy0 is not None and busy1 is not None and wall > 0:
        bg = max(0.0, 100.0 * ((busy1 - busy0) - cpu) / wall)
    return {
        "wall": wall,
        "user": ru.ru_utime,
        "sys": ru.ru_stime,
        "cpu_pct": 100.0 * cpu / wall if wall > 0 else 0.0,
        "rss_mb": ru.ru_maxrss * 1024 / 1e6,
        "bg_pct": bg,
        "stdout": stdout,
    }


def rm(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def tsr_tuple(t):
    return "(" + ", ".join(str(v) for v in t) + ("," if len(t) == 1 else "") + ")"


def input_script(workload, spec):
    """Tessera script that writes the workload's input to in.zarr (relative to its dir)."""
    shape, chunks = spec["shape"], spec["chunks"]
    if workload == "regions":
        # The add1 content on 4 axes: per-(t, c) plane offset + a diagonal ramp stepping every
        # 16 px + 6 bits of uniform noise (about 2:1 with zstd 3).
        n0, n1, n2, n3 = shape
        c0, c1, c2, c3 = chunks
        return (
            f"let t = arange({n0}, chunks={c0})[:, none, none, none]\n"
            f"let c = arange({n1}, chunks={c1})[none, :, none, none]\n"
            f"let r = arange({n2}, chunks={c2})[none, none, :, none]\n"
            f"let k = arange({n3}, chunks={c3})[none, none, none, :]\n"
            f"let noise = (random({tsr_tuple(shape)}, dtype=\"f32\", chunks={tsr_tuple(chunks)}, seed=3) * 64).astype(\"u16\")\n"
            f"(t * 400 + c * 50 + 400 + (r + k) // 16 + noise).astype(\"u16\")"
            f".write(\"in.zarr\", codec=\"zstd\", level=3, chunks={tsr_tuple(chunks)}, overwrite=true)\n"
        )
    if workload == "label":
        # u8 blobs: smoothed noise stretched around 128, so `x > 128` holds about half the
        # pixels in objects of every size, many crossing chunk borders.
        return (
            f"let n = random({tsr_tuple(shape)}, chunks={tsr_tuple(chunks)}, seed=9).map(gaussian(4))\n"
            f"((n - 0.5) * 3000 + 120).clip(0, 255).astype(\"u8\")"
            f".write(\"in.zarr\", codec=\"zstd\", level=3, overwrite=true)\n"
        )
    if workload in STACK or workload == "add1":
        # Microscopy-like uint16: a smooth ramp background (per plane offset + a diagonal
        # gradient that steps every 16 pixels) plus 6 bits of uniform noise. zstd-3 compresses
        # it about 2:1, like typical fluorescence data; pure random u16 would not compress.
        n0, n1, n2 = shape
        c0, c1, c2 = chunks
        return (
            f"let z = arange({n0}, chunks={c0})[:, none, none]\n"
            f"let r = arange({n1}, chunks={c1})[none, :, none]\n"
            f"let c = arange({n2}, chunks={c2})[none, none, :]\n"
            f"let noise = (random({tsr_tuple(shape)}, dtype=\"f32\", chunks={tsr_tuple(chunks)}, seed=1) * 64).astype(\"u16\")\n"
            f"(z * 50 + 400 + (r + c) // 16 + noise).astype(\"u16\")"
            f".write(\"in.zarr\", codec=\"zstd\", level=3, chunks={tsr_tuple(chunks)}, overwrite=true)\n"
        )
    # gaussian: float32 tiles of a 64-level staircase pattern (32-pixel squares) plus uniform
    # noise of amplitude 50 — edges and noise for the filter to act on.
    n0, n1 = shape
    c0, c1 = chunks
    return (
        f"let r = arange({n0}, chunks={c0})[:, none]\n"
        f"let c = arange({n1}, chunks={c1})[none, :]\n"
        f"let noise = random({tsr_tuple(shape)}, dtype=\"f32\", chunks={tsr_tuple(chunks)}, seed=2) * 50\n"
        f"(noise + ((r // 32 + c // 32) % 64 * 10).astype(\"f32\") + 100)"
        f".write(\"in.zarr\", codec=\"zstd\", level=3, overwrite=true)\n"
    )


def ensure_input(args, workload, size):
    """Generate (once) and return the directory holding the workload's in.zarr."""
    spec = SIZES[size][workload]
    d = os.path.join(args.work, f"{'stack' if workload in STACK else workload}-{size}")
    os.makedirs(d, exist_ok=True)
    script = input_script(workload, spec)
    if workload == "regions":
        # The regions are cheap to make and deterministic: (re)written on every run.
        roislib.dump(roislib.make_rois(spec["shape"], spec["rois"], spec["chunks"]), os.path.join(d, "rois.json"))
    stamp = os.path.join(d, "in.stamp")
    if os.path.exists(os.path.join(d, "in.zarr", "zarr.json")) and os.path.exists(stamp):
        with open(stamp) as f:
            if f.read() == script:
                return d
    log(f"generating {workload} input ({size}: shape {spec['shape']}, chunks {spec['chunks']}) with tessera")
    rm(os.path.join(d, "in.zarr"))
    rm(stamp)
    with open(os.path.join(d, "gen_input.tsr"), "w") as f:
        f.write(script)
    r = measure([args.tessera, "run", "gen_input.tsr", "--workers", str(args.workers), "--quiet"], d,
                f"tessera (input generation for {workload})")
    log(f"  generated in {r['wall']:.1f} s")
    with open(stamp, "w") as f:
        f.write(script)
    return d


def tools_for(args, workload):
    """(name, is_reference, output dir name, command builder taking the workload dir)."""
    w = str(args.workers)
    if workload == "add1":
        with_script = "tessera_add1.tsr"
        return [
            ("zarrs baseline", True, "out_baseline.zarr",
             lambda d: [args.baseline, "--input", "in.zarr", "--output", "out_baseline.zarr", "--workers", w],
             None),
            ("tessera", False, "out_tessera.zarr",
             lambda d: [args.tessera, "run", with_script, "--workers", w, "--quiet"],
             (with_script, '(zarr("in.zarr") + 1).write("out_tessera.zarr", overwrite=true)\n')),
        ]
    if workload == "regions":
        sigma = ",".join(str(s) for s in REGIONS_SIGMA)
        with_script = "tessera_regions.tsr"
        return [
            ("zarr-python loop", True, "out_zarr.zarr",
             lambda d: [sys.executable, os.path.join(HERE, "regions_zarr_loop.py"), "--input", "in.zarr",
                        "--rois", "rois.json", "--output", "out_zarr.zarr", "--sigma", sigma],
             None),
            ("dask regions", False, "out_dask.zarr",
             lambda d: [sys.executable, os.path.join(HERE, "regions_dask.py"), "--input", "in.zarr",
                        "--rois", "rois.json", "--output", "out_dask.zarr", "--sigma", sigma, "--workers", w],
             None),
            ("tessera", False, "out_tessera.zarr",
             lambda d: [args.tessera, "run", with_script, "--workers", w, "--quiet"],
             (with_script,
              'let x = zarr("in.zarr").astype("f32")\n'
              f'x.map(gaussian({tsr_tuple(REGIONS_SIGMA)})).write("out_tessera.zarr", regions=rois("rois.json"), '
              'overwrite=true)\n')),
        ]
    if workload == "label":
        with_script = "tessera_label.tsr"
        return [
            ("dask-image", True, "out_dask.zarr",
             lambda d: [sys.executable, os.path.join(HERE, "label_tools.py"), "dask", "--input", "in.zarr",
                        "--output", "out_dask.zarr", "--workers", w],
             None),
            ("scipy (in memory)", False, "out_scipy.zarr",
             lambda d: [sys.executable, os.path.join(HERE, "label_tools.py"), "scipy", "--input", "in.zarr",
                        "--output", "out_scipy.zarr"],
             None),
            ("tessera", False, "out_tessera.zarr",
             lambda d: [args.tessera, "run", with_script, "--workers", w, "--quiet"],
             (with_script, 'label(zarr("in.zarr") > 128).write("out_tessera.zarr", overwrite=true)\n')),
        ]
    if workload in STACK:
        with_script = f"tessera_{workload}.tsr"
        return [
            ("dask", True, "out_dask.zarr",
             lambda d: [sys.executable, os.path.join(HERE, "dask_stack.py"), "--op", workload,
                        "--input", "in.zarr", "--output", "out_dask.zarr", "--workers", w],
             None),
            ("tessera", False, "out_tessera.zarr",
             lambda d: [args.tessera, "run", with_script, "--workers", w, "--quiet"],
             (with_script, STACK_SCRIPTS[workload])),
        ]
    with_script = "tessera_gaussian.tsr"
    return [
        ("dask-image", True, "out_dask.zarr",
         lambda d: [sys.executable, os.path.join(HERE, "dask_gaussian.py"), "--input", "in.zarr",
                    "--output", "out_dask.zarr", "--sigma", str(SIGMA), "--workers", w],
         None),
        ("tessera", False, "out_tessera.zarr",
         lambda d: [args.tessera, "run", with_script, "--workers", w, "--quiet"],
         (with_script, f'zarr("in.zarr").map(gaussian({SIGMA})).write("out_tessera.zarr", overwrite=true)\n')),
    ]


def run_tool(d, tool, label):
    name, _, out, cmd, script = tool
    if script:
        with open(os.path.join(d, script[0]), "w") as f:
            f.write(script[1])
    rm(os.path.join(d, out))
    r = measure(cmd(d), d, label)
    if name == "zarrs baseline" and "chunks=" not in r["stdout"]:
        raise ToolError(
            "zarrs_baseline ran but did not print 'chunks=N seconds=S MB/s=X' — it was probably "
            "built with the libtest harness (Cargo.toml needs [[bench]] name = \"zarrs_baseline\", "
            f"harness = false). Its output:\n{r['stdout'][-800:]}")
    return r


def verify(workload, d):
    """Compare the tools' outputs (bench/verify.py, in its own process so that this runner
    stays small: a child's peak RSS counts from its parent's at fork time)."""
    cmd = [sys.executable, os.path.join(HERE, "verify.py"), workload, d]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise ToolError(f"{workload}: output check failed: {(p.stderr or p.stdout).strip()}")
    return p.stdout.strip().splitlines()


def input_bytes(workload, spec, d):
    """Uncompressed bytes the MB/s column divides by: the whole input, or for "regions" the
    input pixels inside the regions (what the tools actually process)."""
    itemsize = 2 if DTYPES[workload] == "u16" else 4
    if workload == "regions":
        px = 0
        for r in roislib.load(os.path.join(d, "rois.json")):
            n = 1
            for s in r["shape"]:
                n *= s
            px += n
        return itemsize * px
    n = itemsize
    for s in spec["shape"]:
        n *= s
    return n


def measure_plan(args):
    """`tessera plan` on a metadata-only PLAN_SHAPE array with PLAN_ROIS regions, and on a
    trivial script (the process start-up floor); best and median of PLAN_REPEAT runs."""
    d = os.path.join(args.work, "regions-plan")
    os.makedirs(d, exist_ok=True)
    big = os.path.join(d, "big.zarr")
    want = {"shape": list(PLAN_SHAPE), "chunk": list(PLAN_CHUNKS)}
    have = None
    try:
        with open(os.path.join(big, "zarr.json")) as f:
            m = json.load(f)
        have = {"shape": m["shape"], "chunk": m["chunk_grid"]["configuration"]["chunk_shape"]}
    except (OSError, ValueError, KeyError):
        pass
    if have != want:
        rm(big)
        p = subprocess.run([sys.executable, os.path.join(HERE, "regions_plan_input.py"), big,
                            "--shape", ",".join(map(str, PLAN_SHAPE)), "--chunks", ",".join(map(str, PLAN_CHUNKS))],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise ToolError(f"regions_plan_input.py failed: {p.stderr.strip()}")
    stored = sorted(os.listdir(big))
    if stored != ["zarr.json"]:
        raise ToolError(f"{big} should hold only zarr.json, has {stored}")
    regions = roislib.make_rois(PLAN_SHAPE, PLAN_ROIS, PLAN_CHUNKS)
    roislib.dump(regions, os.path.join(d, "rois.json"))
    sigma = tsr_tuple((0,) * (len(PLAN_SHAPE) - 2) + REGIONS_SIGMA[-2:])
    with open(os.path.join(d, "plan.tsr"), "w") as f:
        f.write('let x = zarr("big.zarr").astype("f32")\n'
                f'x.map(gaussian({sigma})).write("out_plan.zarr", regions=rois("rois.json"), overwrite=true)\n')
    with open(os.path.join(d, "trivial.tsr"), "w") as f:
        f.write('zeros((10,), chunks=(10,)).write("out_trivial.zarr", overwrite=true)\n')
    res = {}
    wait_until_quiet(args.max_wait)
    for name in ("plan.tsr", "trivial.tsr"):
        runs = []
        for _ in range(PLAN_REPEAT):
            runs.append(measure([args.tessera, "plan", name, "--workers", str(args.workers)], d,
                                f"tessera plan {name}"))
        walls = sorted(r["wall"] for r in runs)
        best = min(runs, key=lambda r: r["wall"])
        res[name] = {"best_ms": 1e3 * walls[0], "median_ms": 1e3 * walls[len(walls) // 2],
                     "cpu_ms": 1e3 * (best["user"] + best["sys"]), "rss_mb": best["rss_mb"],
                     "stdout": best["stdout"]}
    for out in ("out_plan.zarr", "out_trivial.zarr"):
        if os.path.exists(os.path.join(d, out)):
            raise ToolError(f"`tessera plan` wrote {os.path.join(d, out)}: plan must not write")
    tasks = next((ln.strip() for ln in res["plan.tsr"]["stdout"].splitlines() if ln.startswith("total:")), "?")
    p, t = res["plan.tsr"], res["trivial.tsr"]
    lines = [
        f"plan: `tessera plan` of `x.map(gaussian({sigma})).write(..., regions=rois(...))` on a metadata-only "
        f"u16{list(PLAN_SHAPE)} array (chunks {list(PLAN_CHUNKS)}, {count_chunks(PLAN_SHAPE, PLAN_CHUNKS):,} chunks, "
        f"none on disk) with {PLAN_ROIS} regions of 900..1100 px: whole process {p['best_ms']:.1f} ms best, "
        f"{p['median_ms']:.1f} ms median of {PLAN_REPEAT} (CPU {p['cpu_ms']:.0f} ms, peak RSS {p['rss_mb']:.0f} MB); "
        f"plan says \"{tasks}\"",
        f"plan: process start-up (`tessera plan` of a one-chunk `zeros((10,)).write(...)`): {t['best_ms']:.1f} ms best, "
        f"{t['median_ms']:.1f} ms median; so planning itself takes about {max(0.0, p['best_ms'] - t['best_ms']):.1f} ms "
        f"(best minus best) — target < 50 ms: {'met' if p['best_ms'] - t['best_ms'] < 50 else 'NOT met'}",
    ]
    return lines, {"plan": {k: {kk: vv for kk, vv in v.items() if kk != "stdout"} for k, v in res.items()},
                   "plan_tasks": tasks}


def count_chunks(shape, chunks):
    n = 1
    for s, c in zip(shape, chunks):
        n *= -(-s // c)
    return n


def fmt_row(cols, widths):
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cols, widths)) + " |"


def main():
    ap = argparse.ArgumentParser(description="Tessera benchmark runner (see bench/README.md)")
    ap.add_argument("--tessera", required=True)
    ap.add_argument("--baseline", default="")
    ap.add_argument("--work", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--max-wait", type=float, default=300,
                    help="seconds to wait for other processes to go quiet before each measured run")
    ap.add_argument("workloads", nargs="*")
    args = ap.parse_args()
    workloads = args.workloads or list(WORKLOADS)
    for w in workloads:
        if w not in WORKLOADS:
            sys.exit(f"bench: unknown workload {w!r} (choose from {', '.join(WORKLOADS)})")
    if "add1" in workloads and not args.baseline:
        sys.exit("bench: add1 needs --baseline (the zarrs_baseline executable)")
    args.tessera = os.path.abspath(args.tessera)
    args.baseline = os.path.abspath(args.baseline) if args.baseline else ""
    args.work = os.path.abspath(args.work)
    size = "quick" if args.quick else "full"

    rows, notes, extra, plan_lines = [], [], {}, []
    # Linux carries a parent's peak RSS over into a child across fork+exec, so every figure
    # is at least this runner's own RSS at spawn time; measure that floor and print it.
    floor_mb = measure(["true"], args.work, "true")["rss_mb"]
    try:
        for w in workloads:
            spec = SIZES[size][w]
            warm_dir = ensure_input(args, w, "quick")
            d = warm_dir if size == "quick" else ensure_input(args, w, size)
            tools = tools_for(args, w)
            for tool in tools:
                log(f"{w}: warm-up {tool[0]} (quick size)")
                run_tool(warm_dir, tool, f"{tool[0]} ({w} warm-up)")
                rm(os.path.join(warm_dir, tool[2]))
            nbytes = input_bytes(w, spec, d)
            results = {}
            for tool in tools:
                best = None
                for k in range(args.repeat):
                    log(f"{w}: {tool[0]} run {k + 1}/{args.repeat} ({size} size)")
                    wait_until_quiet(args.max_wait)
                    r = run_tool(d, tool, f"{tool[0]} ({w})")
                    bg = "?" if r["bg_pct"] is None else f"{r['bg_pct']:.0f}%"
                    log(f"  wall {r['wall']:.2f} s, cpu {r['cpu_pct']:.0f}%, rss {r['rss_mb']:.0f} MB, "
                        f"others' cpu {bg}")
                    if best is None or r["wall"] < best["wall"]:
                        best = r
                results[tool[0]] = best
            log(f"{w}: verifying outputs")
            notes.extend(f"{w}: {line}" for line in verify(w, d))
            for tool in tools:
                rm(os.path.join(d, tool[2]))
            ref = next(t[0] for t in tools if t[1])
            for tool in tools:
                r = results[tool[0]]
                rows.append({
                    "workload": w, "tool": tool[0] + (" (ref)" if tool[1] else ""),
                    "wall_s": r["wall"], "cpu_pct": r["cpu_pct"], "rss_mb": r["rss_mb"], "bg_pct": r["bg_pct"],
                    "mb_s": nbytes / 1e6 / r["wall"],
                    "ratio": r["wall"] / results[ref]["wall"],
                    "stdout": r["stdout"].strip().splitlines()[-1:] if r["stdout"].strip() else [],
                })
                if tool[0] != "tessera" and r["stdout"].strip():
                    notes.append(f"{w}: {tool[0]} self-reported: {r['stdout'].strip().splitlines()[-1]}")
            if w == "regions":
                notes.extend(regions_notes(results, spec, d, nbytes))
            elif w == "label":
                t, k, sp = results["tessera"], results["dask-image"], results["scipy (in memory)"]
                notes.append(f"label: tessera is {k['wall'] / t['wall']:.1f}x faster than dask-image "
                             f"(target >= 20x) and takes {t['wall'] / sp['wall']:.2f}x scipy's in-memory time "
                             f"(target <= 3x)")
            else:
                notes.append(f"{w}: input {spec['shape']} {DTYPES[w]} chunks {spec['chunks']}, "
                             f"{nbytes / 1e6:.0f} MB uncompressed, "
                             f"{dir_size(os.path.join(d, 'in.zarr')) / 1e6:.0f} MB on disk (zstd 3)")
            if w == "regions":
                log("regions: timing `tessera plan` on a metadata-only (500, 100000, 100000) array")
                plan_lines, plan_json = measure_plan(args)
                extra.update(plan_json)
    except ToolError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        sys.exit(1)

    header = ["workload", "tool", "wall s", "CPU %", "peak RSS MB", "MB/s", "wall vs ref", "others' CPU %"]
    table = [[r["workload"], r["tool"], f"{r['wall_s']:.2f}", f"{r['cpu_pct']:.0f}",
              f"{r['rss_mb']:.0f}", f"{r['mb_s']:.0f}", f"{r['ratio']:.2f}x",
              "?" if r["bg_pct"] is None else f"{r['bg_pct']:.0f}"] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        f"Tessera benchmark ({size} size, {args.workers} workers, best of {args.repeat}) — {when}, "
        f"{os.cpu_count()} cores, {platform.machine()} Linux {platform.release()}",
        "",
        fmt_row(header, widths),
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        *[fmt_row(t, widths) for t in table],
        "",
        *[f"- {n}" for n in notes],
        "",
        *([*[f"- {n}" for n in plan_lines], ""] if plan_lines else []),
        "MB/s = uncompressed input MB / whole-process wall time; CPU % = (user+sys)/wall "
        f"(max {100 * (os.cpu_count() or 1)}%); wall vs ref = wall / reference tool's wall (lower is faster); "
        f"peak RSS includes a floor of {floor_mb:.0f} MB (the runner's own RSS, inherited across fork; `true` measures that); "
        "others' CPU % = CPU used by other processes during the run (% of one core; above ~10 the row is disturbed).",
    ]
    text = "\n".join(lines)
    print(text)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(args.work, f"results-{size}-{stamp}.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.work, f"results-{size}-{stamp}.json"), "w") as f:
        json.dump({"size": size, "when": when, "rows": rows, "notes": notes + plan_lines, **extra}, f, indent=1)


def regions_notes(results, spec, d, nbytes):
    """Ratios against both references, the issue's targets, and the input/regions description."""
    t, z, k = results["tessera"], results["zarr-python loop"], results["dask regions"]
    st = roislib.stats(roislib.load(os.path.join(d, "rois.json")), spec["chunks"])
    n = 1
    for s in spec["shape"]:
        n *= s
    speed_z, speed_d = z["wall"] / t["wall"], k["wall"] / t["wall"]
    ok_speed = speed_z >= 2.5 and speed_d >= 2.5
    ok_rss = t["rss_mb"] <= z["rss_mb"] and t["rss_mb"] <= k["rss_mb"]
    return [
        f"regions: tessera wall vs dask regions: {t['wall'] / k['wall']:.2f}x ({speed_d:.1f}x faster); "
        f"vs the zarr-python loop: {t['wall'] / z['wall']:.2f}x ({speed_z:.1f}x faster)",
        f"regions: target >= 2.5x faster than both: {'met' if ok_speed else 'NOT met'}; "
        f"peak RSS no higher than both ({t['rss_mb']:.0f} vs {z['rss_mb']:.0f} / {k['rss_mb']:.0f} MB): "
        f"{'met' if ok_rss else 'NOT met'}",
        f"regions: input {spec['shape']} u16 chunks {spec['chunks']}, {2 * n / 1e6:.0f} MB uncompressed "
        f"({2 * n / 2**30:.2f} GiB), {dir_size(os.path.join(d, 'in.zarr')) / 1e6:.0f} MB on disk (zstd 3); "
        f"{spec['rois']} regions (rois.json) of {nbytes / 1e6:.0f} MB of input in all (the MB/s column's numerator), "
        f"touching {st['chunks']} output chunks, {st['shared_chunks']} of them shared by 2+ regions "
        f"({st['regions_sharing']} regions share a chunk), {st['overlapping_pairs']} overlapping pair(s); "
        f"output f32, gaussian sigma {REGIONS_SIGMA}, zstd 3, fill 0",
    ]


def dir_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


if __name__ == "__main__":
    main()
