//! The filter library written in Tessera (`stdlib/filters.tsr`) and chains of stencils:
//! every function equals the same computation on the whole array (the in-memory
//! reference built from the native kernels), under several chunkings.

mod common;

use common::{read_all, TempDir};
use tessera::data::Buf;
use tessera::exec::stencil::filter_array;
use tessera::ir::{Boundary, Kernel, KernelKind};
use tessera::{Engine, Progress, RunOptions};

const SHAPE: [u64; 2] = [70, 90];

fn k(kind: KernelKind, p: f64) -> Kernel {
    Kernel {
        kind,
        params: vec![p],
        truncate: 4.0,
        axis: -1,
        unit: None,
    }
}

fn f32s(b: &Buf) -> Vec<f32> {
    match b {
        Buf::F32(v) => v.clone(),
        other => panic!("expected f32, got {}", other.dtype()),
    }
}

fn run_all(expr: &str) -> Vec<Buf> {
    let dir = TempDir::new("stdlib");
    let mut e = Engine::new().with_base_dir(dir.path());
    let setup = "random((70, 90), dtype=\"u8\", chunks=(70, 90), seed=9).write(\"in.zarr\")";
    let opts = RunOptions {
        workers: 2,
        progress: Progress::None,
    };
    e.run("setup.tsr", setup, &opts).unwrap();
    let mut outs = Vec::new();
    for (i, chunks) in ["(70, 90)", "(16, 16)", "(7, 33)", "(1, 90)"]
        .iter()
        .enumerate()
    {
        let src =
            format!("let x = zarr(\"in.zarr\")\n({expr}).write(\"o{i}.zarr\", chunks={chunks})\n");
        if let Err(d) = e.run("t.tsr", &src, &opts) {
            panic!("{}", e.render(&d, false));
        }
        outs.push(read_all(&dir.path().join(format!("o{i}.zarr"))).0);
    }
    for o in &outs[1..] {
        assert!(o == &outs[0], "{expr}: chunking changed the result");
    }
    outs
}

fn input() -> Buf {
    let dir = TempDir::new("stdlib-in");
    let mut e = Engine::new().with_base_dir(dir.path());
    e.run(
        "setup.tsr",
        "random((70, 90), dtype=\"u8\", chunks=(70, 90), seed=9).write(\"in.zarr\")",
        &RunOptions::default(),
    )
    .unwrap();
    read_all(&dir.path().join("in.zarr")).0
}

fn to_f32(b: &Buf) -> Buf {
    Buf::F32((0..b.len()).map(|i| b.get_f64(i) as f32).collect())
}

fn gauss(b: &Buf, s: f64) -> Vec<f32> {
    f32s(&filter_array(
        &k(KernelKind::Gaussian, s),
        b,
        &SHAPE,
        Boundary::Reflect,
    ))
}

#[test]
fn dog_equals_whole_array() {
    let f = to_f32(&input());
    let want: Vec<f32> = gauss(&f, 1.0)
        .iter()
        .zip(gauss(&f, 3.0))
        .map(|(a, b)| a - b)
        .collect();
    let got = run_all("dog(x, 1, 3)");
    assert_eq!(f32s(&got[0]), want);
}

#[test]
fn background_unsharp_equal_whole_array() {
    let f = to_f32(&input());
    let fv = f32s(&f);
    let g = gauss(&f, 4.0);
    let bg: Vec<f32> = fv.iter().zip(&g).map(|(a, b)| (a - b).max(0.0)).collect();
    assert_eq!(f32s(&run_all("subtract_background(x, 4)")[0]), bg);
    let g2 = gauss(&f, 2.0);
    let um: Vec<f32> = fv
        .iter()
        .zip(&g2)
        .map(|(a, b)| a + (a - b) * 1.5f32)
        .collect();
    assert_eq!(f32s(&run_all("unsharp_mask(x, 2, amount=1.5)")[0]), um);
}

#[test]
fn white_tophat_and_stencil_chains_equal_whole_array() {
    let x = input();
    let ero = filter_array(&k(KernelKind::Minimum, 5.0), &x, &SHAPE, Boundary::Reflect);
    let open = filter_array(
        &k(KernelKind::Maximum, 5.0),
        &ero,
        &SHAPE,
        Boundary::Reflect,
    );
    let want: Vec<u8> = (0..x.len())
        .map(|i| (x.get_f64(i) - open.get_f64(i)) as u8)
        .collect();
    assert_eq!(run_all("white_tophat(x, 5)")[0], Buf::U8(want));
    // A chain of different stencils reads its input once with the summed halo and is
    // still exact.
    let g = filter_array(&k(KernelKind::Gaussian, 2.0), &x, &SHAPE, Boundary::Reflect);
    let m = filter_array(&k(KernelKind::Median, 3.0), &g, &SHAPE, Boundary::Reflect);
    assert_eq!(run_all("x.map(gaussian(2)).map(median(3))")[0], m);
}
