//! A host program that adds its own kernel, written in Rust, to Tessera's scripts.
//!
//! `cargo run --example host_kernel` registers `local_range` (max - min over a box, a
//! texture measure), runs a script that applies it to a generated image across chunks, and
//! prints a few values of the result.

use ndarray::Ix2;
use tessera::dtype::DType;
use tessera::{Engine, NativeKernel, RunOptions};

fn local_range() -> NativeKernel {
    NativeKernel::new("local_range", |input, out| {
        let r = input.args().int("radius") as usize;
        let x = input
            .to_f64()
            .into_dimensionality::<Ix2>()
            .map_err(|e| e.to_string())?;
        let mut o = out
            .view_mut::<f64>()
            .ok_or("the output is f64")?
            .into_dimensionality::<Ix2>()
            .map_err(|e| e.to_string())?;
        for ((i, j), v) in o.indexed_iter_mut() {
            let w = x.slice(ndarray::s![i..=i + 2 * r, j..=j + 2 * r]);
            let (lo, hi) = w
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(*v), hi.max(*v))
                });
            *v = hi - lo;
        }
        Ok(())
    })
    .doc("Maximum minus minimum over a (2 radius + 1) square (2-D).")
    .int_param("radius", Some(1))
    .check(|a| match a.int("radius") {
        r if r >= 0 => Ok(()),
        r => Err(format!("radius must be zero or more, not {r}")),
    })
    .footprint(|a, ndim| vec![a.int("radius") as u64; ndim])
    .output_dtype(DType::F64)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("tessera-host-kernel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut engine = Engine::new().with_base_dir(&dir);
    engine.register_kernel(local_range()).expect("a new name");
    let script = "let img = random((512, 512), dtype=\"u8\", chunks=(128, 128), seed=1)\n\
                  let texture = img.map(local_range(radius=2))\n\
                  texture.write(\"texture.zarr\", overwrite=true)\n\
                  print(texture.dtype, texture.shape)\n\
                  print(texture[0:2, 0:4].values())\n";
    match engine.run("host.tsr", script, &RunOptions::default()) {
        Ok(report) => {
            for line in report.printed {
                println!("{line}");
            }
            println!("{} tasks, output in {}", report.tasks, dir.display());
        }
        Err(diags) => {
            eprint!("{}", engine.render(&diags, false));
            std::process::exit(1);
        }
    }
}
