//! One read per input: when stages of two waves read the same stored array (a reduction,
//! then the map that divides by its result), the decoded chunks of the first wave are kept
//! for the second while memory allows, so each chunk is decoded once; under a tighter limit
//! some are decoded again, and the result never changes. NumPy is the oracle.

mod common;

use common::{oracle_python, run_python, TempDir};
use tessera::exec::Safeguards;
use tessera::{Engine, Progress, RunOptions};

fn opts(workers: usize) -> RunOptions {
    RunOptions {
        workers,
        progress: Progress::None,
    }
}

fn guards(limit: u64) -> Safeguards {
    Safeguards {
        memory_limit: Some(limit),
        memory_explicit: true,
        ..Default::default()
    }
}

/// 64 frames of 256² u16 in 4 × 128 × 128 chunks (zstd): 64 chunks, 8 MiB decoded.
const CHUNKS: u64 = 64;

fn setup(name: &str) -> (TempDir, Engine) {
    let dir = TempDir::new(name);
    let mut engine = Engine::new().with_base_dir(dir.path());
    engine
        .run(
            "t.tsr",
            "(random((64, 256, 256), dtype=\"u16\", chunks=(4, 128, 128), seed=3) // 7 + 1).write(\"in.zarr\")",
            &opts(2),
        )
        .unwrap_or_else(|d| panic!("{}", engine.render(&d, false)));
    (dir, engine)
}

const NORMALISE: &str = "let x = zarr(\"in.zarr\")\n\
                         (x / x.max(axis=(1, 2), keepdims=true)).write(\"out.zarr\", overwrite=true)";

/// NumPy's normalisation of the input equals what Tessera wrote, element for element.
fn assert_numpy_equal(dir: &std::path::Path) {
    let out = run_python(
        &oracle_python(),
        dir,
        "import numpy as np, zarr\n\
         x = zarr.open_array('in.zarr', mode='r')[:]\n\
         y = zarr.open_array('out.zarr', mode='r')[:]\n\
         want = x / x.max(axis=(1, 2), keepdims=True)\n\
         assert y.dtype == want.dtype, (y.dtype, want.dtype)\n\
         assert np.array_equal(y, want), np.abs(y - want).max()\n\
         print('ok')",
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn a_reduction_and_the_map_using_it_decode_each_input_chunk_once() {
    let (dir, mut engine) = setup("shared-once");
    let planned = engine
        .plan("n.tsr", NORMALISE)
        .unwrap_or_else(|d| panic!("{}", engine.render(&d, false)));
    assert_eq!(
        planned.plan.shared_inputs.len(),
        1,
        "{:?}",
        planned.plan.shared_inputs
    );
    assert_eq!(planned.plan.shared_inputs[0].bytes, 64 * 256 * 256 * 2);
    for workers in [1, 2, 4] {
        let report = engine
            .run_with("n.tsr", NORMALISE, &opts(workers), &guards(1 << 30))
            .unwrap_or_else(|d| panic!("{}", engine.render(&d, false)));
        assert_eq!(report.chunks_decoded, CHUNKS, "{workers} workers");
        assert_numpy_equal(dir.path());
    }
}

#[test]
fn under_a_tight_limit_some_chunks_are_decoded_again_and_the_result_is_the_same() {
    let (dir, mut engine) = setup("shared-tight");
    let report = engine
        .run_with("n.tsr", NORMALISE, &opts(2), &guards(20 << 20))
        .unwrap_or_else(|d| panic!("{}", engine.render(&d, false)));
    assert!(
        report.chunks_decoded > CHUNKS && report.chunks_decoded < 2 * CHUNKS,
        "{} decodes: the limit keeps part of the input",
        report.chunks_decoded
    );
    assert_numpy_equal(dir.path());
}

#[test]
fn an_input_read_in_one_wave_only_is_not_kept() {
    let (_dir, mut engine) = setup("shared-none");
    let planned = engine
        .plan(
            "g.tsr",
            "let x = zarr(\"in.zarr\")\n(x + x.astype(\"f32\")).write(\"o.zarr\", overwrite=true)",
        )
        .unwrap_or_else(|d| panic!("{}", engine.render(&d, false)));
    assert!(planned.plan.shared_inputs.is_empty());
}

/// A value computed from a reduction (`print(x.sum())`) reads only the reduction's
/// result: the input is read by one wave and its chunks are not kept (they were, holding
/// the whole input in memory until the end of the run).
#[test]
fn a_value_of_a_reduction_does_not_keep_the_input() {
    let (_dir, mut engine) = setup("shared-value");
    for src in [
        "print(zarr(\"in.zarr\").sum())",
        "let x = zarr(\"in.zarr\")\nprint(x.max() - x.min())",
        "let m = zarr(\"in.zarr\").max(axis=0)\nm.write(\"m.zarr\", overwrite=true)\nprint(m.sum())",
    ] {
        let planned = engine
            .plan("v.tsr", src)
            .unwrap_or_else(|d| panic!("{}", engine.render(&d, false)));
        assert!(
            planned.plan.shared_inputs.is_empty(),
            "{src}: {:?}",
            planned.plan.shared_inputs
        );
    }
    // The map that divides by the maximum still reads the input itself: kept.
    let planned = engine
        .plan("n.tsr", NORMALISE)
        .unwrap_or_else(|d| panic!("{}", engine.render(&d, false)));
    assert_eq!(planned.plan.shared_inputs.len(), 1);
}
