//! Image stacks: `tiff(...)` and `png(...)` over files written by tifffile and imageio from
//! the oracle venv. Every read equals what tifffile (or imageio) reads, bit for bit, in
//! natural file order; `write` converts to a Zarr array zarr-python reads back equal;
//! multi-page and OME-TIFF files get their axes; every bad stack is refused with its code
//! and the file's name before anything is written; a file changed after the check is a
//! runtime error naming it; a failed conversion resumes.

mod common;

use common::{oracle_python, read_all, report_counts, run_cli, run_python, sha256, TempDir};
use std::path::Path;
use std::process::Command;

/// Run a Python snippet in `dir` with the oracle interpreter; its stdout.
fn py(dir: &Path, code: &str) -> String {
    run_python(&oracle_python(), dir, &format!("{PY_PRELUDE}\n{code}"))
}

const PY_PRELUDE: &str = r#"
import glob, hashlib, os, re, sys
import numpy as np, tifffile, zarr
rng = np.random.default_rng(7)

def natural(name):
    return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', name)]

def data(shape, dtype):
    dt = np.dtype(dtype)
    if dt.kind == 'f':
        return (rng.standard_normal(shape) * 1000).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)

def describe(a):
    a = np.ascontiguousarray(a)
    return f"{a.dtype.str[1:]} {list(a.shape)} {hashlib.sha256(a.astype(a.dtype.newbyteorder('<')).tobytes()).hexdigest()}"
"#;

/// `dtype shape sha256` of an array Tessera wrote, as `describe` prints it.
fn describe(path: &Path) -> String {
    let (b, shape) = read_all(path);
    let dt = match b.dtype().to_string().as_str() {
        "u8" => "u1",
        "u16" => "u2",
        "u32" => "u4",
        "u64" => "u8",
        "i8" => "i1",
        "i16" => "i2",
        "i32" => "i4",
        "i64" => "i8",
        "f32" => "f4",
        "f64" => "f8",
        other => panic!("unexpected dtype {other}"),
    };
    format!("{dt} {shape:?} {}", sha256(&b))
}

/// Run `script` with `tessera run` in `dir`; panics with stderr on failure.
fn run_ok(dir: &Path, script: &str) -> String {
    std::fs::write(dir.join("s.tsr"), script).unwrap();
    let out = run_cli(dir, &["run", "s.tsr", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{script}\nfailed:\n{err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `script`, which must fail; its stderr.
fn run_err(dir: &Path, script: &str) -> String {
    std::fs::write(dir.join("s.tsr"), script).unwrap();
    let out = run_cli(dir, &["run", "s.tsr", "--quiet"]);
    assert!(!out.status.success(), "{script} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// zarr-python's view of `zarr_path` must equal tifffile's (or imageio's) stack of the files
/// `pattern` matches, in natural order.
fn zarr_equals_stack(dir: &Path, zarr_path: &str, pattern: &str, reader: &str) {
    let got = py(
        dir,
        &format!(
            "import imageio.v3 as iio\n\
             files = sorted(glob.glob({pattern:?}), key=natural)\n\
             ref = np.stack([{reader}(f) for f in files])\n\
             z = zarr.open_array({zarr_path:?}, mode='r')[...]\n\
             assert z.dtype == ref.dtype, (z.dtype, ref.dtype)\n\
             assert z.shape == ref.shape, (z.shape, ref.shape)\n\
             assert z.tobytes() == ref.tobytes()\n\
             print(describe(ref))"
        ),
    );
    assert_eq!(describe(&dir.join(zarr_path)), got.trim(), "{pattern}");
}

#[test]
fn tiff_globs_equal_tifffile_in_natural_order() {
    let d = TempDir::new("img-glob");
    // Twelve frames named frame_1 .. frame_12, so that a byte-wise sort would put
    // frame_10 second; every dtype, uncompressed and deflate with a predictor.
    py(
        d.path(),
        "for dt in ['uint8', 'uint16', 'int16', 'uint32', 'float32', 'int32', 'float64']:\n\
         \x20   os.makedirs(dt)\n\
         \x20   for i in range(1, 13):\n\
         \x20       tifffile.imwrite(f'{dt}/frame_{i}.tif', data((5, 7), dt))\n\
         os.makedirs('zlib')\n\
         for i in range(1, 13):\n\
         \x20   tifffile.imwrite(f'zlib/frame_{i}.tif', data((9, 6), 'uint16'), compression='zlib', predictor=True)\n\
         os.makedirs('rgb')\n\
         for i in range(3):\n\
         \x20   tifffile.imwrite(f'rgb/im{i}.tif', data((4, 5, 3), 'uint8'), photometric='rgb')",
    );
    for dt in [
        "uint8", "uint16", "int16", "uint32", "float32", "int32", "float64", "zlib", "rgb",
    ] {
        run_ok(
            d.path(),
            &format!("tiff(\"{dt}/*.tif\").write(\"{dt}.zarr\")\n"),
        );
        zarr_equals_stack(
            d.path(),
            &format!("{dt}.zarr"),
            &format!("{dt}/*.tif"),
            "tifffile.imread",
        );
    }
    // The order really is natural: frame_2 is the second plane, frame_10 the tenth.
    let (b, shape) = read_all(&d.path().join("uint16.zarr"));
    assert_eq!(shape, vec![12, 5, 7]);
    let planes = py(
        d.path(),
        "for i in (2, 10):\n\
         \x20   print(describe(tifffile.imread(f'uint16/frame_{i}.tif')[None]))",
    );
    let planes: Vec<&str> = planes.lines().collect();
    for (k, want) in [(1usize, planes[0]), (9, planes[1])] {
        let one = tessera::data::Buf::U16(match &b {
            tessera::data::Buf::U16(v) => v[k * 35..(k + 1) * 35].to_vec(),
            _ => unreachable!(),
        });
        assert_eq!(format!("u2 [1, 5, 7] {}", sha256(&one)), want, "plane {k}");
    }
    // One chunk per file, and a computation reads the stack lazily like any array.
    let z = tessera::io::ZarrReader::open(&d.path().join("uint16.zarr")).unwrap();
    assert_eq!(z.meta().chunks, vec![1, 5, 7]);
    let printed = run_ok(
        d.path(),
        "print(tiff(\"int16/frame_*.tif\").astype(\"f64\").sum())\n",
    );
    let want = py(
        d.path(),
        "files = sorted(glob.glob('int16/frame_*.tif'), key=natural)\n\
         print(repr(float(np.stack([tifffile.imread(f) for f in files]).astype('f8').sum())))",
    );
    let got: f64 = printed.trim().parse().unwrap();
    assert_eq!(got, want.trim().parse::<f64>().unwrap(), "sum vs numpy");
}

#[test]
fn multipage_and_ome_axes_equal_tifffile() {
    let d = TempDir::new("img-pages");
    py(
        d.path(),
        "tifffile.imwrite('pages.tif', data((6, 5, 7), 'uint16'))\n\
         tifffile.imwrite('plain.tif', data((5, 6, 7), 'float32'), metadata=None)\n\
         tifffile.imwrite('planar.tif', data((3, 6, 7), 'uint16'), photometric='minisblack', planarconfig='separate')\n\
         tifffile.imwrite('tczyx.ome.tif', data((2, 3, 4, 5, 6), 'uint16'), ome=True, metadata={'axes': 'TCZYX'})\n\
         tifffile.imwrite('tzcyx.ome.tif', data((2, 4, 3, 5, 6), 'int16'), ome=True, metadata={'axes': 'TZCYX'})\n\
         tifffile.imwrite('single.ome.tif', data((1, 3, 1, 5, 6), 'uint8'), ome=True, metadata={'axes': 'TCZYX'})",
    );
    let refs = py(
        d.path(),
        "for f in sorted(glob.glob('*.tif')):\n\
         \x20   a = tifffile.imread(f)\n\
         \x20   print(f, describe(a[None] if f == 'planar.tif' else a))",
    );
    for line in refs.lines() {
        let (file, want) = line.split_once(' ').unwrap();
        let out = format!("{file}.zarr");
        run_ok(d.path(), &format!("tiff(\"{file}\").write(\"{out}\")\n"));
        assert_eq!(describe(&d.path().join(&out)), want, "{file}");
    }
    // The shapes themselves: pages, then OME's axes in DimensionOrder, singletons dropped.
    for (file, shape) in [
        ("pages.tif", vec![6u64, 5, 7]),
        ("planar.tif", vec![1, 3, 6, 7]),
        ("tczyx.ome.tif", vec![2, 3, 4, 5, 6]),
        ("tzcyx.ome.tif", vec![2, 4, 3, 5, 6]),
        ("single.ome.tif", vec![3, 5, 6]),
    ] {
        assert_eq!(read_all(&d.path().join(format!("{file}.zarr"))).1, shape);
    }
    // squeeze=false keeps the length-1 axes (t, c, z, y, x).
    run_ok(
        d.path(),
        "tiff(\"single.ome.tif\", squeeze=false).write(\"kept.zarr\")\n",
    );
    let want = py(
        d.path(),
        "print(describe(tifffile.imread('single.ome.tif').reshape(1, 3, 1, 5, 6)))",
    );
    assert_eq!(describe(&d.path().join("kept.zarr")), want.trim());
    // A region read decodes only the pages it needs and cuts them.
    run_ok(
        d.path(),
        "tiff(\"tczyx.ome.tif\")[1, 1:3, 2, 1:4, ::2].write(\"part.zarr\")\n",
    );
    let want = py(
        d.path(),
        "print(describe(tifffile.imread('tczyx.ome.tif')[1, 1:3, 2, 1:4, ::2]))",
    );
    assert_eq!(describe(&d.path().join("part.zarr")), want.trim());
}

#[test]
fn png_stacks_equal_imageio() {
    let d = TempDir::new("img-png");
    py(
        d.path(),
        "import imageio.v3 as iio\n\
         for name, shape, dt in [('gray8', (6, 5), 'uint8'), ('gray16', (6, 5), 'uint16'), ('rgb', (4, 3, 3), 'uint8'), ('rgba', (4, 3, 4), 'uint8')]:\n\
         \x20   os.makedirs(name)\n\
         \x20   for i in range(1, 12):\n\
         \x20       iio.imwrite(f'{name}/p{i}.png', data(shape, dt))",
    );
    for name in ["gray8", "gray16", "rgb", "rgba"] {
        run_ok(
            d.path(),
            &format!("png(\"{name}/p*.png\").write(\"{name}.zarr\")\n"),
        );
        zarr_equals_stack(
            d.path(),
            &format!("{name}.zarr"),
            &format!("{name}/p*.png"),
            "iio.imread",
        );
    }
}

/// The script `tiff(pattern).write("out.zarr")` fails with `code`, its message naming each
/// of `names`, and nothing is written.
fn refused(dir: &Path, call: &str, code: &str, names: &[&str]) {
    let err = run_err(dir, &format!("{call}.write(\"out.zarr\")\n"));
    assert!(err.contains(code), "{call}: expected {code}:\n{err}");
    for n in names {
        assert!(
            err.contains(n),
            "{call}: the message does not name {n}:\n{err}"
        );
    }
    assert!(
        !dir.join("out.zarr").exists(),
        "{call}: something was written"
    );
}

#[test]
fn bad_stacks_are_refused_naming_the_file() {
    let d = TempDir::new("img-bad");
    py(
        d.path(),
        "for i in range(1, 5):\n\
         \x20   os.makedirs(f'mixed{i}', exist_ok=True)\n\
         for i in range(1, 12):\n\
         \x20   tifffile.imwrite(f'mixed1/f{i}.tif', data((5, 7) if i < 10 else (6, 7), 'uint16'))\n\
         \x20   tifffile.imwrite(f'mixed2/f{i}.tif', data((5, 7), 'uint16' if i != 3 else 'uint8'))\n\
         \x20   tifffile.imwrite(f'mixed3/f{i}.tif', data((5, 7), 'uint16'))\n\
         \x20   tifffile.imwrite(f'mixed4/f{i}.tif', data((5, 7), 'float16' if i == 11 else 'float32'))\n\
         open('mixed3/f4.tif', 'wb').write(b'not a tiff at all')\n\
         tifffile.imwrite('complex.tif', np.zeros((3, 4), 'complex64'))\n\
         with tifffile.TiffWriter('pages.tif') as t:\n\
         \x20   t.write(data((4, 4), 'uint8'))\n\
         \x20   t.write(data((4, 5), 'uint8'))\n\
         import imageio.v3 as iio\n\
         os.makedirs('pngs')\n\
         iio.imwrite('pngs/a1.png', data((4, 4), 'uint8'))\n\
         iio.imwrite('pngs/a2.png', data((4, 4, 3), 'uint8'))",
    );
    refused(
        d.path(),
        "tiff(\"nothing/*.tif\")",
        "E0430",
        &["nothing/*.tif"],
    );
    // The first offending file in natural order (f10, not f11) and both shapes.
    refused(
        d.path(),
        "tiff(\"mixed1/*.tif\")",
        "E0431",
        &["mixed1/f10.tif", "[6, 7]", "[5, 7]", "mixed1/f1.tif"],
    );
    refused(
        d.path(),
        "tiff(\"mixed2/*.tif\")",
        "E0431",
        &["mixed2/f3.tif", "u8 [5, 7]", "u16 [5, 7]"],
    );
    refused(
        d.path(),
        "tiff(\"mixed3/*.tif\")",
        "E0432",
        &["mixed3/f4.tif"],
    );
    refused(
        d.path(),
        "tiff(\"mixed3/f99.tif\")",
        "E0432",
        &["mixed3/f99.tif"],
    );
    refused(
        d.path(),
        "tiff(\"mixed4/*.tif\")",
        "E0433",
        &["mixed4/f11.tif", "16-bit float"],
    );
    refused(d.path(), "tiff(\"complex.tif\")", "E0433", &["complex.tif"]);
    refused(
        d.path(),
        "tiff(\"pages.tif\")",
        "E0431",
        &["pages.tif", "page 1"],
    );
    refused(
        d.path(),
        "png(\"pngs/*.png\")",
        "E0431",
        &["pngs/a2.png", "[4, 4, 3]"],
    );
    refused(
        d.path(),
        "tiff(\"mixed1/[*.tif\")",
        "E0435",
        &["mixed1/[*.tif"],
    );
    // `tessera check` reports the same without running.
    std::fs::write(
        d.path().join("c.tsr"),
        "tiff(\"mixed1/*.tif\").write(\"out.zarr\")\n",
    )
    .unwrap();
    let out = run_cli(d.path(), &["check", "c.tsr"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("E0431"));
}

/// `n` uint16 frames `f/x1.tif ..` of `shape` and the script `s.tsr` converting them.
fn conversion(dir: &Path, n: usize, shape: (u64, u64)) {
    py(
        dir,
        &format!(
            "os.makedirs('f')\n\
             for i in range(1, {}):\n\
             \x20   tifffile.imwrite(f'f/x{{i}}.tif', data({shape:?}, 'uint16'))",
            n + 1
        ),
    );
    std::fs::write(dir.join("s.tsr"), "tiff(\"f/*.tif\").write(\"out.zarr\")\n").unwrap();
}

#[test]
fn a_file_changed_after_the_check_is_a_runtime_error() {
    let d = TempDir::new("img-changed");
    conversion(d.path(), 8, (5, 7));
    let out = run_cli(d.path(), &["plan", "s.tsr", "--export", "plan"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Rewritten with another shape after the plan was made.
    py(
        d.path(),
        "tifffile.imwrite('f/x5.tif', data((5, 8), 'uint16'))",
    );
    let worker = |stage: &str, tasks: &str| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .current_dir(d.path())
            .env_remove("TESSERA_REPORT")
            .args(["worker", "plan", "--stage", stage, "--tasks", tasks])
            .output()
            .unwrap()
    };
    let out = worker("0", "0-0");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = worker("1", "0-7");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the changed file was read: {err}");
    assert!(err.contains("E0434") && err.contains("f/x5.tif"), "{err}");
}

#[test]
fn an_interrupted_conversion_resumes() {
    let d = TempDir::new("img-resume");
    conversion(d.path(), 20, (16, 9));
    let run = |args: &[&str], fault: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
        c.current_dir(d.path())
            .env("TESSERA_REPORT", "1")
            .args(["run", "s.tsr", "--quiet", "--workers", "1"])
            .args(args);
        match fault {
            Some(f) => c.env("TESSERA_FAULT_INJECT", f),
            None => c.env_remove("TESSERA_FAULT_INJECT"),
        };
        c.output().unwrap()
    };
    let out = run(&[], Some("write:12:always"));
    assert!(
        !out.status.success(),
        "the injected fault did not stop the run"
    );
    let out = run(&["--resume"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let (computed, skipped) = report_counts(&err);
    assert!(skipped >= 1 && computed + skipped == 20, "{err}");
    zarr_equals_stack(d.path(), "out.zarr", "f/*.tif", "tifffile.imread");
}
