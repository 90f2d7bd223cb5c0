//! Kernels from a host program (`Engine::register_kernel`): a 3x3 box sum written in Rust
//! equals scipy.ndimage.correlate with a box of ones across chunkings, boundary modes and
//! 1/2/4 workers byte for byte; calls are checked like builtins (E0104, E0103, E0201,
//! E0203, E0202) with spans; a failing implementation is an error naming the kernel and
//! the chunk.

mod common;

use common::{oracle_python, read_all, TempDir};
use ndarray::Ix2;
use std::process::Command;
use tessera::dtype::DType;
use tessera::{Engine, NativeKernel, RunOptions};

/// Sum over a `size` x `size` box of a 2-D block, in f64.
fn box_sum() -> NativeKernel {
    NativeKernel::new("box_sum", |input, out| {
        let r = input.args().int("size") as usize / 2;
        let x = input
            .to_f64()
            .into_dimensionality::<Ix2>()
            .map_err(|e| e.to_string())?;
        let mut o = out
            .view_mut::<f64>()
            .ok_or("the output is not f64")?
            .into_dimensionality::<Ix2>()
            .map_err(|e| e.to_string())?;
        for ((i, j), v) in o.indexed_iter_mut() {
            let w = x.slice(ndarray::s![i..i + 2 * r + 1, j..j + 2 * r + 1]);
            *v = w.sum();
        }
        Ok(())
    })
    .doc("Sum over a size x size box (2-D).")
    .int_param("size", Some(3))
    .check(|a| {
        let s = a.int("size");
        if s >= 1 && s % 2 == 1 {
            Ok(())
        } else {
            Err(format!("size must be odd and positive, not {s}"))
        }
    })
    .footprint(|a, ndim| vec![a.int("size") as u64 / 2; ndim])
    .dtype(|d, _| {
        if d.is_complex() || d == DType::Bool {
            Err("it sums real numbers".into())
        } else {
            Ok(DType::F64)
        }
    })
}

fn engine(dir: &std::path::Path) -> Engine {
    let mut e = Engine::new().with_base_dir(dir);
    e.register_kernel(box_sum()).expect("register");
    e
}

fn f64s(b: &tessera::data::Buf) -> Vec<u8> {
    assert_eq!(b.dtype(), DType::F64);
    b.to_le_bytes()
}

#[test]
fn box_sum_equals_scipy_across_chunkings_and_workers() {
    let dir = TempDir::new("native");
    let mut e = engine(dir.path());
    e.run(
        "in.tsr",
        "random((61, 47), dtype=\"u16\", chunks=(16, 16), seed=7).write(\"in.zarr\")\n",
        &RunOptions::default(),
    )
    .unwrap();
    // scipy's correlate with a box of ones, exact for integer data in f64.
    let py = format!(
        "import numpy as np, scipy.ndimage as nd, zarr\n\
         x = zarr.open_array({:?}, mode='r')[...].astype('f8')\n\
         for size, mode in [(3, 'reflect'), (5, 'reflect'), (3, 'nearest')]:\n\
         \x20   y = nd.correlate(x, np.ones((size, size)), mode=mode)\n\
         \x20   open({:?} + f'/{{size}}_{{mode}}.bin', 'wb').write(y.astype('<f8').tobytes())\n",
        dir.path().join("in.zarr").to_str().unwrap(),
        dir.path().to_str().unwrap()
    );
    let out = Command::new(oracle_python())
        .arg("-c")
        .arg(&py)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases = [
        ("box_sum()", "", "3_reflect"),
        ("box_sum(size=5)", "", "5_reflect"),
        (
            "box_sum(3)",
            ".overlap(1, boundary=\"nearest\")",
            "3_nearest",
        ),
    ];
    let mut n = 0;
    for (call, overlap, oracle) in cases {
        let want = std::fs::read(dir.path().join(format!("{oracle}.bin"))).unwrap();
        for chunks in ["(7, 5)", "(16, 16)", "(61, 47)"] {
            for workers in [1, 2, 4] {
                let path = format!("o{n}.zarr");
                n += 1;
                let src = format!(
                    "let x = zarr(\"in.zarr\").rechunk({chunks})\nx{overlap}.map({call}).write({path:?})\n"
                );
                let opts = RunOptions {
                    workers,
                    ..Default::default()
                };
                if let Err(d) = e.run("k.tsr", &src, &opts) {
                    panic!("{}", e.render(&d, false));
                }
                let (got, shape) = read_all(&dir.path().join(&path));
                assert_eq!(shape, [61, 47]);
                assert!(
                    f64s(&got) == want,
                    "{call}{overlap} with chunks {chunks} and {workers} workers differs from scipy"
                );
            }
        }
    }
    // The kernel's value and the node type as `check` reports them.
    let c = e
        .check(
            "c.tsr",
            "let k = box_sum(5)\nlet y = zarr(\"in.zarr\").map(k)\n",
        )
        .unwrap();
    assert_eq!(c.bindings[0].1, "kernel box_sum(5.0)");
    assert!(
        c.bindings[1].1.starts_with("f64[61, 47]"),
        "{}",
        c.bindings[1].1
    );
    assert!(
        c.bindings[1].1.contains("halo [2, 2]"),
        "{}",
        c.bindings[1].1
    );
}

/// The code and the source text under the primary label of a script's only error.
fn error_of(e: &mut Engine, src: &str) -> (String, String, String) {
    let d = e.check("bad.tsr", src).expect_err("an error");
    assert_eq!(d.len(), 1, "{}", e.render(&d, false));
    let l = &d[0].labels[0];
    let text = src[l.span.start as usize..l.span.end as usize].to_string();
    (d[0].code.to_string(), text, e.render(&d, false))
}

#[test]
fn calls_are_checked_like_builtins() {
    let dir = TempDir::new("native-check");
    let mut e = engine(dir.path());
    let pre = "let x = zeros((8, 8), dtype=\"u8\")\n";
    let (code, at, _) = error_of(&mut e, &format!("{pre}let y = x.map(box_sum(3, 4))\n"));
    assert_eq!((code.as_str(), at.as_str()), ("E0104", "4"));
    let (code, at, text) = error_of(&mut e, &format!("{pre}let y = x.map(box_sum(sise=3))\n"));
    assert_eq!((code.as_str(), at.as_str()), ("E0103", "sise"));
    assert!(text.contains("did you mean `size`?"), "{text}");
    let (code, at, _) = error_of(&mut e, &format!("{pre}let y = x.map(box_sum(2.5))\n"));
    assert_eq!((code.as_str(), at.as_str()), ("E0201", "2.5"));
    let (code, at, text) = error_of(&mut e, &format!("{pre}let y = x.map(box_sum(4))\n"));
    assert_eq!((code.as_str(), at.as_str()), ("E0203", "box_sum(4)"));
    assert!(
        text.contains("size must be odd and positive, not 4"),
        "{text}"
    );
    let (code, at, text) = error_of(
        &mut e,
        "let m = zeros((8, 8), dtype=\"bool\")\nlet y = m.map(box_sum())\n",
    );
    assert_eq!((code.as_str(), at.as_str()), ("E0202", "box_sum()"));
    assert!(text.contains("it sums real numbers"), "{text}");
    // The registry refuses a second kernel of the same name, and `:help` shows it.
    let err = e.register_kernel(box_sum()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a builtin function `box_sum` exists already"
    );
    let help = tessera::repl::help_text(&e, "box_sum");
    assert_eq!(help, "box_sum(size=3)\n  Sum over a size x size box (2-D).");
}

#[test]
fn a_failing_kernel_names_itself_and_the_chunk() {
    let dir = TempDir::new("native-fail");
    let mut e = Engine::new().with_base_dir(dir.path());
    e.register_kernel(
        NativeKernel::new("picky", |input, _| {
            if input.origin()[0] >= 4 {
                Err("rows from 4 on are not mine".into())
            } else {
                Ok(())
            }
        })
        .halo(1),
    )
    .unwrap();
    let src = "zeros((8, 4), chunks=(4, 4)).map(picky()).write(\"o.zarr\")\n";
    let d = e.run("f.tsr", src, &RunOptions::default()).unwrap_err();
    let text = e.render(&d, false);
    assert_eq!(d[0].code, "E0106", "{text}");
    assert!(
        text.contains("the kernel `picky` failed: rows from 4 on are not mine"),
        "{text}"
    );
    assert!(text.contains("chunk [1, 0]"), "{text}");
    // Nothing torn: the failed chunk was never written.
    assert!(!dir.path().join("o.zarr/c/1/0").exists());
}

/// A host program's kernel lives in its process only: exporting a plan that calls it is
/// refused with a diagnostic, and no plan directory is written.
#[test]
fn a_plan_calling_a_host_kernel_is_not_exported() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let src = "random((8, 8), chunks=4).map(box_sum()).write(\"o.zarr\")\n";
    let script = dir.path().join("job.tsr");
    std::fs::write(&script, src).unwrap();
    let plan = dir.path().join("plan");
    let errs = e.export(&script, src, &plan, None).unwrap_err();
    assert_eq!(errs[0].code, "E0708", "{:?}", errs[0]);
    assert!(
        errs[0]
            .message
            .contains("`box_sum`, a kernel of the host program"),
        "{}",
        errs[0].message
    );
    assert!(!plan.join("plan.json").exists());
}
