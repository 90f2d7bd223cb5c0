//! The schedule never changes results: one elementwise-and-indexing pipeline over inputs
//! stored with three different chunkings, written with three output chunkings, run with
//! 1, 2 and 4 workers, gives byte-identical arrays every time.

mod common;

use common::{read_all, TempDir};
use tessera::{Engine, Progress, RunOptions};

#[test]
fn byte_identical_across_chunkings_and_workers() {
    let dir = TempDir::new("invariance");
    let mut engine = Engine::new().with_base_dir(dir.path());
    let opts = |workers| RunOptions {
        workers,
        progress: Progress::None,
    };
    let pipeline = |input: &str, out: &str, chunks: &str| {
        format!(
            "let x = zarr(\"{input}\")\n\
             let y = where(x > 30000, x // 3, x * 2 + 1)\n\
             let z = (sqrt(y.astype(\"f32\")) / 7 - x[::-1, :] % 5).astype(\"f32\")\n\
             (z[1:-1, ::2] + abs(z[1:-1, 1::2])).write(\"{out}\", chunks={chunks}, overwrite=true)\n"
        )
    };
    let mut reference = None;
    let mut runs = 0;
    for (k, in_chunks) in ["(64, 64)", "(17, 300)", "(200, 7)"].iter().enumerate() {
        let input = format!("in{k}.zarr");
        let setup = format!(
            "random((211, 300), dtype=\"u16\", chunks={in_chunks}, seed=4).write(\"{input}\", overwrite=true)"
        );
        engine.run("setup.tsr", &setup, &opts(2)).expect("setup");
        for out_chunks in ["(209, 150)", "(13, 29)", "(64, 1)"] {
            for workers in [1, 2, 4] {
                let src = pipeline(&input, "out.zarr", out_chunks);
                if let Err(d) = engine.run("p.tsr", &src, &opts(workers)) {
                    panic!("{}", engine.render(&d, false));
                }
                let got = read_all(&dir.path().join("out.zarr")).0;
                match &reference {
                    None => reference = Some(got),
                    Some(r) => assert!(
                        &got == r,
                        "input chunks {in_chunks}, output chunks {out_chunks}, {workers} workers: output differs"
                    ),
                }
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 27);
}
