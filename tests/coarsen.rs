//! `x.coarsen(factors, reduce=, trim=)` against `skimage.measure.block_reduce` (and
//! `scipy.stats.mode` for `mode`, `x[::f]` for `nearest`, dask's `coarsen` for trimmed
//! integer blocks): every method, 1-D to 4-D, several dtypes, factors that do and do not
//! divide the shape, with and without trim; inputs stored with two chunkings and run with
//! 1, 2 and 4 workers must all give the oracle's bytes. Every method again in 2-D and 3-D
//! with factors that divide no axis (padded and trimmed), and each bad call (a factor that
//! is not a positive integer, a factor count that is neither 1 nor the rank, an unknown
//! reduction) refused with its code and span before anything runs.
//!
//! The oracle needs `$TESSERA_PYTHON` (or `.venv/bin/python`) with numpy, scipy,
//! scikit-image, zarr and dask (`scripts/python-env.sh`); without one the test fails.

mod common;

use common::{oracle_python, read_all, TempDir};
use std::path::Path;
use std::process::Command;
use tessera::{Engine, Progress, RunOptions};

/// Writes the inputs (each shape and dtype with two chunkings) and the expected outputs,
/// and prints one line per case: `name input factors method trim dtype shape...`.
const ORACLE: &str = r#"
import sys, json, numpy as np, zarr, scipy.stats
import dask.array as da
from skimage.measure import block_reduce
from skimage.util import view_as_blocks
out = sys.argv[1]
shapes = [((37,), (4,), [(8,), (5,)]),
          ((40,), (8,), [(16,), (7,)]),
          ((23, 30), (2, 3), [(8, 8), (5, 7)]),
          ((24, 30), (4, 10), [(12, 30), (7, 9)]),
          ((20, 130), (1, 13), [(10, 64), (3, 50)]),
          ((5, 17), (5, 17), [(5, 17), (2, 4)]),
          ((7, 9, 11), (2, 3, 2), [(4, 4, 4), (3, 5, 2)]),
          ((6, 4, 40), (3, 1, 8), [(6, 4, 16), (2, 3, 9)]),
          ((3, 4, 5, 6), (2, 2, 2, 2), [(2, 2, 3, 3), (3, 1, 5, 4)])]
pairs = [(m, d) for m in ("mean", "sum", "median") for d in ("u8", "u16", "i32", "f32", "f64")]
pairs += [(m, d) for m in ("min", "max") for d in ("u8", "u16", "i32", "f32", "f64", "bool")]
pairs += [("mode", d) for d in ("u8", "u16", "i32")]
pairs += [("nearest", d) for d in ("u8", "u16", "i32", "f32", "f64", "bool")]
npd = {"u8": np.uint8, "u16": np.uint16, "i32": np.int32, "f32": np.float32, "f64": np.float64, "bool": np.bool_}
name = {np.dtype(v).name: k for k, v in npd.items()}
name.update({"int64": "i64", "uint64": "u64"})
funcs = {"mean": np.mean, "sum": np.sum, "median": np.median, "min": np.min, "max": np.max}
made = {}
def data(si, d, labels):
    key = (si, d, labels)
    if key not in made:
        shape = shapes[si][0]
        rng = np.random.default_rng(1000 * si + len(made))
        if d == "bool":
            x = rng.random(shape) < 0.5
        elif labels:
            x = rng.integers(0, 4, shape).astype(npd[d])
        elif d in ("f32", "f64"):
            x = rng.uniform(-500, 1000, shape).astype(npd[d])
        elif d == "i32":
            x = rng.integers(-10**6, 10**6, shape).astype(np.int32)
        else:
            x = rng.integers(0, np.iinfo(npd[d]).max, shape, endpoint=True).astype(npd[d])
        tag = f"in{si}_{d}{'_lab' if labels else ''}"
        for k, ch in enumerate(shapes[si][2]):
            a = zarr.create_array(f"{out}/{tag}_c{k}.zarr", shape=shape, chunks=ch, dtype=x.dtype)
            a[...] = x
        made[key] = (tag, x)
    return made[key]
def mode(x, f):
    pad = [(0, (-n) % k) for n, k in zip(x.shape, f)]
    b = view_as_blocks(np.pad(x, pad), tuple(f))
    b = b.reshape(b.shape[:x.ndim] + (-1,))
    return scipy.stats.mode(b, axis=-1, keepdims=False).mode.astype(x.dtype)
case = 0
for i, (method, d) in enumerate(pairs):
    for trim in (False, True):
        si = (i * 7 + int(trim) * 4) % len(shapes)
        shape, f, _ = shapes[si]
        tag, x = data(si, d, method == "mode")
        if trim:
            x = x[tuple(slice(0, (n // k) * k) for n, k in zip(shape, f))]
        if method == "nearest":
            want = x[tuple(slice(None, None, k) for k in f)]
        elif method == "mode":
            want = mode(x, f)
        else:
            want = block_reduce(x, f, funcs[method])
            if trim and d not in ("f32", "f64") and method in ("sum", "min", "max"):
                dk = da.coarsen(funcs[method], da.from_array(x, chunks=shapes[si][2][0]), dict(enumerate(f)), trim_excess=True).compute()
                assert dk.dtype == want.dtype and np.array_equal(dk, want), (method, d, shape, f)
        want = np.ascontiguousarray(want)
        want.tofile(f"{out}/want{case}.bin")
        print(case, tag, ",".join(map(str, f)), method, "true" if trim else "false", name[want.dtype.name], *want.shape)
        case += 1
"#;

struct Case {
    id: usize,
    input: String,
    factors: String,
    method: String,
    trim: String,
    dtype: String,
    shape: Vec<u64>,
}

/// Run an oracle script with `dir` as its argument: the lines it printed.
fn run_oracle(script: &str, dir: &Path) -> Vec<String> {
    let out = Command::new(oracle_python())
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

fn oracle(dir: &Path) -> Vec<Case> {
    run_oracle(ORACLE, dir)
        .iter()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Case {
                id: w[0].parse().unwrap(),
                input: w[1].into(),
                factors: w[2].into(),
                method: w[3].into(),
                trim: w[4].into(),
                dtype: w[5].into(),
                shape: w[6..].iter().map(|s| s.parse().unwrap()).collect(),
            }
        })
        .collect()
}

#[test]
fn every_method_matches_block_reduce_across_chunkings_and_workers() {
    let dir = TempDir::new("coarsen");
    let cases = oracle(dir.path());
    assert_eq!(cases.len(), 72);
    let mut engine = Engine::new().with_base_dir(dir.path());
    let mut runs = 0;
    for (chunking, workers) in [(0, 1), (0, 4), (1, 2)] {
        let mut src = String::new();
        for c in &cases {
            src += &format!(
                "zarr(\"{}_c{chunking}.zarr\").coarsen(({}), reduce=\"{}\", trim={}).write(\"out{}.zarr\", overwrite=true)\n",
                c.input, c.factors, c.method, c.trim, c.id
            );
        }
        let opts = RunOptions {
            workers,
            progress: Progress::None,
        };
        if let Err(d) = engine.run("coarsen.tsr", &src, &opts) {
            panic!("{}", engine.render(&d, false));
        }
        for c in &cases {
            let (got, shape) = read_all(&dir.path().join(format!("out{}.zarr", c.id)));
            let what = format!(
                "case {} ({} by ({}) reduce={} trim={}, chunking {chunking}, {workers} workers)",
                c.id, c.input, c.factors, c.method, c.trim
            );
            assert_eq!(got.dtype().name(), c.dtype, "{what}: dtype");
            assert_eq!(shape, c.shape, "{what}: shape");
            let want = std::fs::read(dir.path().join(format!("want{}.bin", c.id))).unwrap();
            assert!(
                got.to_le_bytes() == want,
                "{what}: values differ from the oracle"
            );
        }
        runs += 1;
    }
    assert_eq!(runs, 3);
}

/// Every reduction over 2-D and 3-D arrays whose factors divide no axis, padded as
/// `block_reduce` pads (with zeros) and trimmed (`trim=true`), on chunks that do not line
/// up with the blocks. `mode` is `scipy.stats.mode` over `block_reduce`'s padded blocks
/// (the smallest of equally common values, as `block_reduce(x, f, mode)` picks), and
/// `nearest` the first element of each block (`x[::f]`).
const ORACLE_RANKS: &str = r#"
import sys, numpy as np, zarr, scipy.stats
from skimage.measure import block_reduce
out = sys.argv[1]
cases = [((13, 22), (3, 4), (5, 7)), ((7, 10, 9), (2, 3, 4), (3, 4, 4))]
funcs = {"mean": np.mean, "sum": np.sum, "median": np.median, "min": np.min, "max": np.max}
def mode_of(x, f):
    return scipy.stats.mode(x.reshape(-1), keepdims=False).mode
rng = np.random.default_rng(17)
k = 0
for r, (shape, f, chunks) in enumerate(cases):
    # Whole numbers in f64: every sum is exact, whatever the order of the additions.
    vals = rng.integers(-1000, 1000, shape).astype(np.float64)
    labels = rng.integers(0, 4, shape).astype(np.uint16)
    for tag, x in (("vals", vals), ("labels", labels)):
        a = zarr.create_array(f"{out}/{tag}{r}.zarr", shape=shape, chunks=chunks, dtype=x.dtype)
        a[...] = x
    for method in ("mean", "sum", "median", "min", "max", "mode", "nearest"):
        for trim in (False, True):
            x = labels if method == "mode" else vals
            if trim:
                x = x[tuple(slice(0, (n // b) * b) for n, b in zip(shape, f))]
            if method == "nearest":
                want = x[tuple(slice(None, None, b) for b in f)]
            elif method == "mode":
                want = block_reduce(x, f, lambda b, axis: np.apply_along_axis(
                    lambda v: mode_of(v, f), -1, b.reshape(b.shape[:x.ndim] + (-1,))))
                want = want.astype(x.dtype)
            else:
                want = block_reduce(x, f, funcs[method])
            np.ascontiguousarray(want).tofile(f"{out}/rank_want{k}.bin")
            src = "labels" if method == "mode" else "vals"
            print(k, f"{src}{r}", ",".join(map(str, f)), method, "true" if trim else "false", want.dtype.name, *want.shape)
            k += 1
"#;

#[test]
fn every_method_matches_block_reduce_in_2d_and_3d_padded_and_trimmed() {
    let dir = TempDir::new("coarsen-ranks");
    let lines = run_oracle(ORACLE_RANKS, dir.path());
    assert_eq!(
        lines.len(),
        2 * 7 * 2,
        "2 ranks, 7 methods, padded and trimmed"
    );
    let mut src = String::new();
    for l in &lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        src += &format!(
            "zarr(\"{}.zarr\").coarsen(({}), reduce=\"{}\", trim={}).write(\"rank_out{}.zarr\")\n",
            w[1], w[2], w[3], w[4], w[0]
        );
    }
    let mut engine = Engine::new().with_base_dir(dir.path());
    let opts = RunOptions {
        workers: 2,
        progress: Progress::None,
    };
    if let Err(d) = engine.run("ranks.tsr", &src, &opts) {
        panic!("{}", engine.render(&d, false));
    }
    let numpy_name = |t: &str| match t {
        "f64" => "float64",
        "u16" => "uint16",
        other => panic!("unexpected dtype {other}"),
    };
    for l in &lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        let what = format!("{} by ({}) reduce={} trim={}", w[1], w[2], w[3], w[4]);
        let (got, shape) = read_all(&dir.path().join(format!("rank_out{}.zarr", w[0])));
        assert_eq!(numpy_name(got.dtype().name()), w[5], "{what}: dtype");
        let want_shape: Vec<u64> = w[6..].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(shape, want_shape, "{what}: shape");
        let want = std::fs::read(dir.path().join(format!("rank_want{}.bin", w[0]))).unwrap();
        assert!(
            got.to_le_bytes() == want,
            "{what}: values differ from block_reduce"
        );
    }
}

/// Each mistake in a `coarsen` call is a diagnostic with its code, pointing at the
/// argument, found while checking: the valid write before it never runs.
#[test]
fn bad_coarsen_calls_are_diagnosed_before_anything_runs() {
    let dir = TempDir::new("coarsen-bad");
    let cases: [(&str, &str, &str, &str); 9] = [
        (
            "(2, 1.5)",
            "",
            "E0215",
            "coarsen factor 1.5 is not an integer",
        ),
        ("2.0", "", "E0215", "coarsen factor 2 is not an integer"),
        (
            "(2, \"a\")",
            "",
            "E0215",
            "coarsen factors must be integers, found a str",
        ),
        (
            "(2, 0)",
            "",
            "E0216",
            "coarsen factor 0 (axis 1) is not positive",
        ),
        (
            "-3",
            "",
            "E0216",
            "coarsen factor -3 (axis 0) is not positive",
        ),
        (
            "(2, 2, 2)",
            "",
            "E0217",
            "coarsen has 3 factors but the array has 2 axes",
        ),
        (
            "(2, 2)",
            ", reduce=\"avg\"",
            "E0218",
            "unknown coarsen reduction \"avg\"",
        ),
        (
            "(2, 2)",
            ", reduce=\"maen\"",
            "E0218",
            "did you mean \"mean\"?",
        ),
        ("(7, 2)", ", trim=true", "E0216", ""),
    ];
    for (factors, more, code, message) in cases {
        let call = format!("x.coarsen({factors}{more})");
        let src = format!(
            "ones((4, 6)).write(\"first.zarr\")\nlet x = arange(24).reshape(4, 6)\nlet y = {call}\ny.write(\"o.zarr\")\n"
        );
        let mut engine = Engine::new().with_base_dir(dir.path());
        let d = match engine.run("bad.tsr", &src, &RunOptions::default()) {
            Ok(_) => panic!("{call}: accepted"),
            Err(d) => d,
        };
        let text = engine.render(&d, false);
        assert_eq!(d[0].code, code, "{call}: {text}");
        assert!(text.contains(message), "{call}: {text}");
        // The label points into the call, on line 3.
        let label = d[0]
            .labels
            .first()
            .unwrap_or_else(|| panic!("{call}: no span"));
        let line3 = src.lines().take(2).map(|l| l.len() + 1).sum::<usize>();
        let (start, end) = (label.span.start as usize, label.span.end as usize);
        let call_at = line3 + "let y = ".len();
        assert!(
            start >= call_at && end <= call_at + call.len(),
            "{call}: the label {start}..{end} is outside the call: {text}"
        );
        assert!(
            !dir.path().join("first.zarr").exists(),
            "{call}: the script ran"
        );
        assert!(
            !dir.path().join("o.zarr").exists(),
            "{call}: the script ran"
        );
    }
}
