//! Python block functions (`python(...)` with `map`, `overlap(...).map` and `map_blocks`)
//! against dask running the same Python functions on the same data, for 1, 2 and 4
//! workers; and every way user code can fail: a diagnostic before anything runs where
//! the check-time call can know, else a runtime error naming the function and the block,
//! with the finished chunks kept for `--resume`.
//!
//! They need the oracle Python with numpy, scipy, zarr, dask and scikit-image
//! (`$TESSERA_PYTHON`, made by `scripts/python-env.sh`).

mod common;

use common::{oracle_python, read_all, run_cli, run_python, TempDir};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The seeds' functions, and a few that go wrong on purpose.
const SEEDS: &str = r#"
import os
import numpy as np
import scipy.ndimage as ndi

with open(os.path.join(os.path.dirname(__file__), "imports.log"), "a") as log:
    log.write("%d\n" % os.getpid())

def shift_img(img):
    return img.copy() + 1

def count_nuclei(tile, threshold=100):
    from skimage.measure import label
    return np.array([[label(tile > threshold).max()]], dtype=np.int64)

def recentre(stack, size=16):
    img = stack[0].astype(np.float64)
    total = img.sum()
    ys, xs = np.indices(img.shape)
    cy = int(round((ys * img).sum() / total))
    cx = int(round((xs * img).sum() / total))
    h = size // 2
    cy = min(max(cy, h), img.shape[0] - h)
    cx = min(max(cx, h), img.shape[1] - h)
    return stack[:, cy - h:cy + h, cx - h:cx + h].astype(np.float32)

def smooth(block, sigma=2.0):
    return ndi.gaussian_filter(block, sigma, mode="reflect")

def slow_median(block):
    return ndi.median_filter(block, size=3)

def sum_planes(block):
    return block.sum(axis=0, dtype=np.uint32)

def add_axis(block):
    return block[None, :, :]

def two_args(block, other):
    return block

def not_an_array(block):
    return 3

def halve(block):
    return block[::2]

def raise_on_bright(block):
    if block.max() > 60000:
        raise ValueError("too bright: %d" % block.max())
    return block

def crash_on_bright(block):
    if block.max() > 60000 and not os.path.exists(os.path.join(os.path.dirname(__file__), "fixed")):
        os._exit(3)
    return block

def sleep_on_bright(block):
    import time
    if block.max() > 60000:
        time.sleep(60)
    return block

def shape_on_bright(block):
    return block[:1] if block.max() > 60000 else block

def dtype_on_bright(block):
    return block.astype(np.float64) if block.max() > 60000 else block

def identity(block):
    return block

def add_in_place(block):
    block += 1
    return block

NOT_A_FUNCTION = 3
"#;

struct Setup {
    dir: TempDir,
    py: PathBuf,
}

fn setup(tag: &str) -> Setup {
    let dir = TempDir::new(tag);
    std::fs::write(dir.path().join("seeds.py"), SEEDS).unwrap();
    Setup {
        dir,
        py: oracle_python(),
    }
}

impl Setup {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Run Python code in the test directory; it must succeed.
    fn python(&self, code: &str) {
        run_python(&self.py, self.path(), code);
    }

    /// `tessera CMD script --python <oracle> extra...` on a script written from `src`.
    fn tessera(&self, cmd: &str, src: &str, extra: &[&str]) -> Output {
        std::fs::write(self.path().join("s.tsr"), src).unwrap();
        let py = self.py.display().to_string();
        let mut args = vec![cmd, "s.tsr", "--python", py.as_str()];
        args.extend_from_slice(extra);
        run_cli(self.path(), &args)
    }

    /// Run `src` with `--workers n` (it must succeed).
    fn run_ok(&self, src: &str, n: usize) {
        let w = n.to_string();
        let out = self.tessera("run", src, &["--workers", &w, "--quiet"]);
        assert!(
            out.status.success(),
            "tessera failed with {n} workers:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// For 1, 2 and 4 workers, `script(out)` writes `out`; each must equal `expected`
    /// byte for byte.
    fn same_as(&self, expected: &str, script: impl Fn(&str) -> String) {
        let (want, want_shape) = read_all(&self.path().join(expected));
        for n in [1, 2, 4] {
            let out = format!("{}-{n}.zarr", expected.trim_end_matches(".zarr"));
            self.run_ok(&script(&out), n);
            let (got, shape) = read_all(&self.path().join(&out));
            assert_eq!(shape, want_shape, "{n} workers: shape");
            assert_eq!(got.dtype(), want.dtype(), "{n} workers: dtype");
            assert!(got == want, "{n} workers: values differ from {expected}");
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `seeds.shift_img` (`img.copy() + 1`) over a 4-D u16 array, as dask's `map_blocks`.
#[test]
fn shift_img_over_4d_u16_equals_dask() {
    let s = setup("py-shift");
    s.python(
        "import numpy as np, zarr, dask.array as da, seeds\n\
         rng = np.random.default_rng(1)\n\
         a = rng.integers(0, 65535, size=(2, 3, 40, 50), dtype=np.uint16)\n\
         z = zarr.create_array('in.zarr', shape=a.shape, chunks=(1, 2, 16, 32), dtype=a.dtype)\n\
         z[:] = a\n\
         x = da.from_zarr('in.zarr')\n\
         x.map_blocks(seeds.shift_img).to_zarr('dask.zarr', compute=True)\n",
    );
    s.same_as("dask.zarr", |out| {
        format!(
            "let f = python(\"seeds.py:shift_img\")\nzarr(\"in.zarr\").map(f).write(\"{out}\")\n"
        )
    });
}

/// A per-tile nucleus count with `skimage.measure.label` through `map_blocks(chunks=(1, 1))`;
/// the int64 result dtype is found by the check-time call.
#[test]
fn nucleus_count_per_tile_equals_dask() {
    let s = setup("py-count");
    s.python(
        "import numpy as np, zarr, dask.array as da, scipy.ndimage as ndi, seeds\n\
         rng = np.random.default_rng(2)\n\
         a = (ndi.gaussian_filter(rng.random((120, 150)), 3) * 40000).astype(np.uint16)\n\
         z = zarr.create_array('in.zarr', shape=a.shape, chunks=(30, 50), dtype=a.dtype)\n\
         z[:] = a\n\
         x = da.from_zarr('in.zarr')\n\
         r = x.map_blocks(seeds.count_nuclei, threshold=20500, chunks=(1, 1), dtype=np.int64)\n\
         r.to_zarr('dask.zarr', compute=True)\n\
         assert r.compute().max() > 0\n",
    );
    s.same_as("dask.zarr", |out| {
        format!(
            "let f = python(\"seeds.py:count_nuclei\", threshold=20500)\n\
             let n = zarr(\"in.zarr\").map_blocks(f, chunks=(1, 1))\n\
             n.write(\"{out}\")\n"
        )
    });
    let out = s.tessera(
        "check",
        "let n = zarr(\"in.zarr\").map_blocks(python(\"seeds.py:count_nuclei\"), chunks=(1, 1))\n",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or(""),
        "n: i64[4, 3] chunks [1, 1]"
    );
}

/// A per-slice centroid recentring through `map_blocks(chunks=(1, 16, 16), dtype="f32")`
/// (declared dtype: no check-time call, which would divide by a zero total).
#[test]
fn recentring_per_slice_equals_dask() {
    let s = setup("py-recentre");
    s.python(
        "import numpy as np, zarr, dask.array as da, seeds\n\
         rng = np.random.default_rng(3)\n\
         a = rng.integers(1, 1000, size=(5, 48, 40), dtype=np.uint16)\n\
         z = zarr.create_array('in.zarr', shape=a.shape, chunks=(1, 48, 40), dtype=a.dtype)\n\
         z[:] = a\n\
         x = da.from_zarr('in.zarr')\n\
         x.map_blocks(seeds.recentre, chunks=(1, 16, 16), dtype=np.float32).to_zarr('dask.zarr', compute=True)\n",
    );
    s.same_as("dask.zarr", |out| {
        format!(
            "let f = python(\"seeds.py:recentre\", size=16)\n\
             zarr(\"in.zarr\").map_blocks(f, chunks=(1, 16, 16), dtype=\"f32\").write(\"{out}\")\n"
        )
    });
    // Without the declaration the check-time call on zeros raises: a diagnostic that
    // shows the traceback and says how to skip the call.
    let out = s.tessera(
        "check",
        "let r = zarr(\"in.zarr\").map_blocks(python(\"seeds.py:recentre\"), chunks=(1, 16, 16))\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("[E0606]"), "{e}");
    assert!(
        e.contains("at check time, on a block of zeros of shape [1, 48, 40] (uint16)"),
        "{e}"
    );
    assert!(e.contains("ValueError"), "{e}");
    assert!(e.contains("declare it with dtype="), "{e}");
}

/// A scipy filter through `overlap(8).map(f)` equals the filter of the whole array.
#[test]
fn scipy_filter_through_overlap_equals_whole_array_filter() {
    let s = setup("py-overlap");
    s.python(
        "import numpy as np, zarr, scipy.ndimage as ndi\n\
         rng = np.random.default_rng(4)\n\
         a = rng.random((70, 90), dtype=np.float32)\n\
         z = zarr.create_array('in.zarr', shape=a.shape, chunks=(20, 25), dtype=a.dtype)\n\
         z[:] = a\n\
         w = ndi.gaussian_filter(a, 2.0, mode='reflect')\n\
         o = zarr.create_array('whole.zarr', shape=a.shape, chunks=a.shape, dtype=a.dtype)\n\
         o[:] = w\n",
    );
    s.same_as("whole.zarr", |out| {
        format!(
            "let f = python(\"seeds.py:smooth\", sigma=2.0)\n\
             zarr(\"in.zarr\").overlap(8, boundary=\"reflect\").map(f).write(\"{out}\")\n"
        )
    });
}

/// `drop_axis=` and `new_axis=` as dask's `map_blocks`.
#[test]
fn drop_axis_and_new_axis_equal_dask() {
    let s = setup("py-axes");
    s.python(
        "import numpy as np, zarr, dask.array as da, seeds\n\
         rng = np.random.default_rng(5)\n\
         a = rng.integers(0, 1000, size=(4, 30, 45), dtype=np.uint16)\n\
         z = zarr.create_array('in.zarr', shape=a.shape, chunks=(4, 10, 20), dtype=a.dtype)\n\
         z[:] = a\n\
         x = da.from_zarr('in.zarr')\n\
         x.map_blocks(seeds.sum_planes, drop_axis=0, dtype=np.uint32).to_zarr('drop.zarr', compute=True)\n\
         y = x[0]\n\
         y.map_blocks(seeds.add_axis, new_axis=0, dtype=np.uint16).to_zarr('new.zarr', compute=True)\n",
    );
    s.same_as("drop.zarr", |out| {
        format!("zarr(\"in.zarr\").map_blocks(python(\"seeds.py:sum_planes\"), drop_axis=0).write(\"{out}\")\n")
    });
    s.same_as("new.zarr", |out| {
        format!("zarr(\"in.zarr\")[0].map_blocks(python(\"seeds.py:add_axis\"), new_axis=0).write(\"{out}\")\n")
    });
}

/// A function that returns the block it was given, unchanged or changed in place (the
/// block arrives writable, as dask's do), gives what dask gives for the same function.
#[test]
fn functions_returning_their_block_equal_dask() {
    let s = setup("py-same");
    s.python(
        "import numpy as np, zarr, dask.array as da, seeds\n\
         rng = np.random.default_rng(2)\n\
         a = rng.integers(0, 60000, size=(5, 70, 90), dtype=np.uint16)\n\
         z = zarr.create_array('in.zarr', shape=a.shape, chunks=(2, 32, 32), dtype=a.dtype)\n\
         z[:] = a\n\
         x = da.from_zarr('in.zarr')\n\
         x.map_blocks(seeds.add_in_place).to_zarr('dask.zarr', compute=True)\n\
         x.map_blocks(seeds.identity).to_zarr('ident.zarr', compute=True)\n",
    );
    s.same_as("dask.zarr", |out| {
        format!("zarr(\"in.zarr\").map(python(\"seeds.py:add_in_place\")).write(\"{out}\")\n")
    });
    s.same_as("ident.zarr", |out| {
        format!("zarr(\"in.zarr\").map(python(\"seeds.py:identity\")).write(\"{out}\")\n")
    });
    // With a halo, the returned block is trimmed as map_overlap trims it.
    s.same_as("dask.zarr", |out| {
        format!(
            "zarr(\"in.zarr\").overlap(3).map(python(\"seeds.py:add_in_place\")).write(\"{out}\", overwrite=true)\n"
        )
    });
}

/// In one session (the REPL, a notebook), editing the module between two runs runs the
/// new code: the check-time worker, which the run reuses, imports the file again.
#[test]
fn an_edited_module_is_imported_again_in_a_session() {
    let s = setup("py-edit");
    s.python(
        "import numpy as np, zarr\n\
         z = zarr.create_array('in.zarr', shape=(40, 40), chunks=(16, 16), dtype='u2')\n\
         z[:] = np.arange(1600, dtype='u2').reshape(40, 40)\n",
    );
    let module = s.path().join("m.py");
    let mut engine = tessera::Engine::new().with_base_dir(s.path());
    engine.set_python(Some(s.py.clone()));
    for (k, add) in [(1, 1u16), (2, 5)] {
        std::fs::write(&module, format!("def f(b):\n    return b + {add}\n")).unwrap();
        let src = format!("zarr(\"in.zarr\").map(python(\"m.py:f\")).write(\"o{k}.zarr\")\n");
        engine
            .eval(&src)
            .unwrap_or_else(|d| panic!("run {k}: {}", engine.render(&d, false)));
        let (got, _) = read_all(&s.path().join(format!("o{k}.zarr")));
        let (input, _) = read_all(&s.path().join("in.zarr"));
        let want: Vec<u16> = match input {
            tessera::data::Buf::U16(v) => v.iter().map(|x| x + add).collect(),
            other => panic!("input dtype {:?}", other.dtype()),
        };
        assert!(
            got == tessera::data::Buf::U16(want),
            "run {k}: the old function ran"
        );
    }
}

/// Each worker imports the module once for the whole run (an expensive setup is paid
/// once per worker); the worker of the check-time call is one of them.
#[test]
fn modules_are_imported_once_per_worker() {
    let s = setup("py-once");
    s.run_ok(
        "let x = random((64, 64), dtype=\"u16\", chunks=(8, 8), seed=1)\n\
         x.map(python(\"seeds.py:shift_img\")).write(\"o.zarr\")\n",
        2,
    );
    let log = std::fs::read_to_string(s.path().join("imports.log")).unwrap();
    let pids: std::collections::BTreeSet<&str> = log.lines().collect();
    assert_eq!(
        log.lines().count(),
        pids.len(),
        "a process imported twice: {log}"
    );
    assert!(
        (1..=2).contains(&pids.len()),
        "64 blocks on 2 workers: {} imports\n{log}",
        pids.len()
    );
}

fn check_err(s: &Setup, src: &str) -> String {
    let out = s.tessera("check", src, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    stderr(&out)
}

const X: &str = "let x = random((40, 40), dtype=\"u16\", chunks=(20, 20), seed=1)\n";

#[test]
fn bad_functions_are_diagnosed_before_anything_runs() {
    let s = setup("py-bad");
    std::fs::write(
        s.path().join("broken.py"),
        "def f(block):\n    return block +\n",
    )
    .unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("x.map(python(\"nope.py:f\"))", "E0602", "nope.py: no such file"),
        ("x.map(python(\"no_such_module_xyz:f\"))", "E0602", "No module named 'no_such_module_xyz'"),
        ("x.map(python(\"seeds.py:nope\"))", "E0604", "the module `seeds` has no function `nope`"),
        ("x.map(python(\"seeds.py:NOT_A_FUNCTION\"))", "E0604", "`seeds.NOT_A_FUNCTION` is a int, not a function"),
        ("x.map(python(\"broken.py:f\"))", "E0603", "SyntaxError"),
        ("x.map(python(\"seeds.py:two_args\"))", "E0605", "cannot be called with one block"),
        ("x.map(python(\"seeds.py:shift_img\", bogus=1))", "E0605", "cannot be called with one block"),
        ("x.map(python(\"seeds.py:not_an_array\"))", "E0607", "returned a int at check time"),
        ("x.map(python(\"seeds.py:halve\"))", "E0613", "returned shape [10, 20] for a block of shape [20, 20], but map keeps the block's shape"),
        ("x.map_blocks(python(\"seeds.py:halve\"))", "E0613", "map_blocks needs chunks= when blocks change shape"),
        ("x.map_blocks(python(\"seeds.py:halve\"), chunks=(5, 20))", "E0608", "returned shape [10, 20] for a block of shape [20, 20], but chunks= says [5, 20]"),
        ("x.map(python(\"seeds.py\"))", "E0612", "there is no `:` before the function's name"),
        ("x.map(python(\"seeds.py:f\", timeout=-1))", "E0612", "timeout -1 is not a positive number of seconds"),
        ("x.map(python(\"seeds.py:shift_img\", k=x))", "E0612", "the keyword `k` is an array"),
        ("x.map_blocks(python(\"seeds.py:sum_planes\"), drop_axis=0)", "E0613", "drop_axis 0 has 2 chunks"),
    ];
    for (line, code, msg) in cases {
        let e = check_err(&s, &format!("{X}let y = {line}\n"));
        assert!(
            e.contains(&format!("[{code}]")),
            "{line}: expected {code}:\n{e}"
        );
        assert!(e.contains(msg), "{line}: expected {msg:?}:\n{e}");
    }
}

/// An interpreter without NumPy is named, with the fix.
#[test]
fn an_interpreter_without_numpy_is_a_clear_error() {
    let s = setup("py-nonumpy");
    let fake = s.path().join("fake");
    std::fs::create_dir_all(fake.join("numpy")).unwrap();
    std::fs::write(
        fake.join("numpy/__init__.py"),
        "raise ImportError('numpy is broken here')\n",
    )
    .unwrap();
    std::fs::write(
        s.path().join("s.tsr"),
        format!("{X}let y = x.map(python(\"seeds.py:shift_img\"))\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(s.path())
        .env("PYTHONPATH", &fake)
        .env("TESSERA_PYTHON", &s.py)
        .args(["check", "s.tsr"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("[E0601]")
            && e.contains("cannot import NumPy (ImportError: numpy is broken here)"),
        "{e}"
    );
    assert!(e.contains("--python PATH"), "{e}");
    let out = s.tessera(
        "check",
        &format!("{X}let y = x.map(python(\"seeds.py:shift_img\"))\n"),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let missing = run_cli(
        s.path(),
        &["check", "s.tsr", "--python", "/nonexistent/python9"],
    );
    assert!(
        stderr(&missing).contains("[E0601]")
            && stderr(&missing)
                .contains("cannot start the Python interpreter /nonexistent/python9"),
        "{}",
        stderr(&missing)
    );
}

/// Input where exactly one block (rows 20..40, columns 0..20) is bright: functions that
/// fail on bright blocks pass the check-time call and fail at run time on that block.
fn bright_input(s: &Setup) {
    s.python(
        "import numpy as np, zarr\n\
         a = np.full((40, 40), 7, dtype=np.uint16)\n\
         a[25, 5] = 65000\n\
         z = zarr.create_array('in.zarr', shape=a.shape, chunks=(20, 20), dtype=a.dtype)\n\
         z[:] = a\n",
    );
}

fn run_fails(s: &Setup, f: &str, code: &str) -> String {
    let out = s.tessera(
        "run",
        &format!("zarr(\"in.zarr\").map(python(\"seeds.py:{f}\"{})).write(\"{f}.zarr\", chunks=(20, 20))\n",
            if f == "sleep_on_bright" { ", timeout=1" } else { "" }),
        &["--workers", "1", "--quiet"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains(&format!("[{code}]")),
        "{f}: expected {code}:\n{e}"
    );
    e
}

#[test]
fn runtime_failures_name_the_function_and_the_block() {
    let s = setup("py-runtime");
    bright_input(&s);
    let e = run_fails(&s, "raise_on_bright", "E0606");
    assert!(e.contains("`seeds.py:raise_on_bright` raised an exception on block (1, 0) (input region (20:40, 0:20))"), "{e}");
    assert!(
        e.contains("Traceback") && e.contains("ValueError: too bright: 65000"),
        "{e}"
    );
    assert!(e.contains("seeds.py\", line"), "{e}");
    let e = run_fails(&s, "shape_on_bright", "E0608");
    assert!(e.contains("`seeds.py:shape_on_bright` returned shape [1, 20] on block (1, 0) (input region (20:40, 0:20)); expected [20, 20]"), "{e}");
    let e = run_fails(&s, "dtype_on_bright", "E0609");
    assert!(e.contains("`seeds.py:dtype_on_bright` returned float64 on block (1, 0) (input region (20:40, 0:20)); expected uint16"), "{e}");
    let t0 = std::time::Instant::now();
    let e = run_fails(&s, "sleep_on_bright", "E0611");
    assert!(
        e.contains(
            "`seeds.py:sleep_on_bright` took longer than its timeout of 1 s on block (1, 0)"
        ),
        "{e}"
    );
    // The sleeping worker was stopped, not waited for (it would sleep 60 s).
    assert!(t0.elapsed().as_secs() < 50);
}

/// A worker that dies mid-run stops the run cleanly; the chunks finished before are kept
/// and `--resume` computes only the rest.
#[test]
fn a_crashing_worker_stops_the_run_and_resume_continues() {
    let s = setup("py-crash");
    bright_input(&s);
    let e = run_fails(&s, "crash_on_bright", "E0610");
    assert!(e.contains("the Python worker running `seeds.py:crash_on_bright` exited with status 3 on block (1, 0)"), "{e}");
    assert!(e.contains("--resume"), "{e}");
    std::fs::write(s.path().join("fixed"), "").unwrap();
    let out = s.tessera(
        "run",
        "zarr(\"in.zarr\").map(python(\"seeds.py:crash_on_bright\")).write(\"crash_on_bright.zarr\", chunks=(20, 20))\n",
        &["--workers", "1", "--resume"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("already complete"), "{e}");
    let (got, _) = read_all(&s.path().join("crash_on_bright.zarr"));
    let (want, _) = read_all(&s.path().join("in.zarr"));
    assert!(got == want);
}

/// The module file is part of what `--resume` compares: an edited function would mix
/// chunks of two versions, so resuming after an edit is refused.
#[test]
fn an_edited_module_refuses_to_resume() {
    let s = setup("py-edited");
    bright_input(&s);
    run_fails(&s, "crash_on_bright", "E0610");
    let path = s.path().join("seeds.py");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n# edited after the interrupted run\n");
    std::fs::write(&path, text).unwrap();
    std::fs::write(s.path().join("fixed"), "").unwrap();
    let out = s.tessera(
        "run",
        "zarr(\"in.zarr\").map(python(\"seeds.py:crash_on_bright\")).write(\"crash_on_bright.zarr\", chunks=(20, 20))\n",
        &["--workers", "1", "--resume"],
    );
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("[E0505]"), "{e}");
    assert!(e.contains("a Python module it imports"), "{e}");
}
