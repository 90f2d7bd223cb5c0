//! Reductions, broadcasting against them, transpose, reshape, rechunk, stack/concat and
//! FFT against NumPy's results (the oracle fixtures in `reductions/`), under
//! several input chunkings and worker counts.

mod common;

use common::{fixtures, read_all, TempDir};
use tessera::data::Buf;
use tessera::{Engine, Progress, RunOptions};

fn opts(workers: usize) -> RunOptions {
    RunOptions {
        workers,
        progress: Progress::None,
    }
}

fn run(engine: &mut Engine, src: &str, workers: usize) {
    if let Err(d) = engine.run("t.tsr", src, &opts(workers)) {
        panic!("{}\n{src}", engine.render(&d, false));
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    let p = fixtures().join("reductions").join(name);
    assert!(
        p.exists(),
        "{} is missing from the oracle fixtures",
        p.display()
    );
    p
}

fn as_f64(b: &Buf) -> Vec<f64> {
    (0..b.len()).map(|i| b.get_f64(i)).collect()
}

/// Copies of the fixture volume with other chunkings (including 1-element chunks and
/// chunks that do not divide the shape).
fn volumes(engine: &mut Engine, input: &std::path::Path) -> Vec<String> {
    let mut names = vec![input.display().to_string()];
    for (k, c) in ["(3, 5, 7)", "(11, 21, 26)", "(1, 4, 26)", "(4, 21, 1)"]
        .iter()
        .enumerate()
    {
        let name = format!("vol{k}.zarr");
        run(
            engine,
            &format!(
                "zarr(\"{}\").rechunk({c}).write(\"{name}\", overwrite=true)",
                input.display()
            ),
            2,
        );
        names.push(name);
    }
    names
}

#[test]
fn numpy_reductions_of_the_fixture_volume() {
    let input = fixture("vol_u16.zarr");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("vol_u16.reductions.json")).unwrap())
            .unwrap();
    let dir = TempDir::new("reductions");
    let mut engine = Engine::new().with_base_dir(dir.path());
    let vols = volumes(&mut engine, &input);
    let mut checked = 0;
    for (name, res) in json["results"].as_object().unwrap() {
        let (op, axes) = name.split_once('_').unwrap();
        let axis = match axes {
            "axis0" => "axis=0",
            "axes12" => "axis=(1, 2)",
            _ => "keepdims=true",
        };
        let want: Vec<f64> = res["values_c_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse::<f64>().unwrap())
            .collect();
        let dtype = res["dtype"].as_str().unwrap();
        for (k, vol) in vols.iter().enumerate() {
            let workers = [1, 2, 4][k % 3];
            run(
                &mut engine,
                &format!("zarr(\"{vol}\").{op}({axis}).write(\"r.zarr\", overwrite=true)"),
                workers,
            );
            let (got, _) = read_all(&dir.path().join("r.zarr"));
            assert_eq!(got.dtype().numpy_name(), dtype, "{name} dtype");
            let got = as_f64(&got);
            assert_eq!(got.len(), want.len(), "{name}");
            for (g, w) in got.iter().zip(&want) {
                if dtype.starts_with("float") {
                    assert!(
                        (g - w).abs() <= 1e-12 * w.abs(),
                        "{name} on {vol}: {g} vs numpy {w}"
                    );
                } else {
                    assert_eq!(g, w, "{name} on {vol}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 15 * vols.len());
}

#[test]
fn broadcasts_against_reductions_transpose_and_slices_equal_numpy() {
    let input = fixture("vol_u16.zarr");
    let dir = TempDir::new("reductions-arrays");
    let mut engine = Engine::new().with_base_dir(dir.path());
    let vols = volumes(&mut engine, &input);
    let cases = [
        (
            "x / x.max(axis=(1, 2), keepdims=true)",
            "vol_u16.div_max_axes12.zarr",
        ),
        (
            "x / x.max(axis=(1, 2))[:, none, none]",
            "vol_u16.div_max_axes12.zarr",
        ),
        (
            "x.astype(\"f32\") - x.mean(axis=0)",
            "vol_u16.center_f32_minus_mean_axis0.zarr",
        ),
        ("x[:, ::2, 3:-2]", "vol_u16.slice.zarr"),
        ("x.transpose(2, 0, 1)", "vol_u16.transpose_201.zarr"),
        (
            "x.transpose((2, 0, 1)).rechunk((5, 5, 5))",
            "vol_u16.transpose_201.zarr",
        ),
    ];
    for (expr, reference) in cases {
        let (want, wshape) = read_all(&fixture(reference));
        for (k, vol) in vols.iter().enumerate() {
            run(
                &mut engine,
                &format!("let x = zarr(\"{vol}\")\n({expr}).write(\"o.zarr\", overwrite=true)"),
                1 + k % 3,
            );
            let (got, shape) = read_all(&dir.path().join("o.zarr"));
            assert_eq!(shape, wshape, "{expr}");
            assert_eq!(got, want, "{expr} on {vol}: not bit-identical to NumPy");
        }
    }
}

#[test]
fn fft_power_equals_numpy() {
    let input = fixture("fft_in_f32.zarr");
    let (want, wshape) = read_all(&fixture("fft_in_f32.power_fft_axis0.zarr"));
    let want = as_f64(&want);
    let max = want.iter().cloned().fold(0.0, f64::max);
    let dir = TempDir::new("fft");
    let mut engine = Engine::new().with_base_dir(dir.path());
    for chunks in ["(8, 10, 8)", "(1, 3, 3)", "(12, 10, 8)"] {
        run(
            &mut engine,
            &format!(
                "let x = zarr(\"{}\").rechunk({chunks})\n(abs(fft(x, axis=0)) ** 2).astype(\"f32\").write(\"p.zarr\", overwrite=true)",
                input.display()
            ),
            2,
        );
        let (got, shape) = read_all(&dir.path().join("p.zarr"));
        assert_eq!(shape, wshape);
        assert_eq!(got.dtype().name(), "f32");
        for (g, w) in as_f64(&got).iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * max, "{g} vs {w}");
        }
    }
}

#[test]
fn transforms_round_trip_and_rfft_keeps_half() {
    let dir = TempDir::new("fft-round-trip");
    let mut engine = Engine::new().with_base_dir(dir.path());
    run(
        &mut engine,
        "let x = random((6, 20, 5), dtype=\"f64\", chunks=(2, 7, 5), seed=3)\n\
         real(ifft(fft(x, axis=1), axis=1)).write(\"back.zarr\")\n\
         x.write(\"x.zarr\")\n\
         let r = rfft(x, axis=1)\n\
         abs(r - fft(x, axis=1)[:, 0:11, :]).max(keepdims=true).write(\"diff.zarr\")",
        2,
    );
    let (x, _) = read_all(&dir.path().join("x.zarr"));
    let (back, _) = read_all(&dir.path().join("back.zarr"));
    for (a, b) in as_f64(&x).iter().zip(as_f64(&back)) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    let (d, shape) = read_all(&dir.path().join("diff.zarr"));
    assert_eq!(shape, vec![1, 1, 1]);
    assert!(as_f64(&d)[0] < 1e-12);
}

/// Float reductions do not depend on the chunking beyond the last bits, and never on the
/// worker count; integer ones are exact.
#[test]
fn reductions_independent_of_chunking_and_workers() {
    let dir = TempDir::new("reduce-invariance");
    let mut engine = Engine::new().with_base_dir(dir.path());
    let exprs = [
        "x.sum(axis=1)",
        "x.mean(axis=(0, 2))",
        "x.std(axis=0, ddof=1)",
        "x.var()",
        "x.min(axis=2)",
        "x.argmax(axis=1)",
        "x.argmin()",
        "(x * 1000).astype(\"i32\").sum(axis=(0, 1))",
    ];
    for expr in exprs {
        let mut first: Option<Vec<f64>> = None;
        for chunks in ["(37, 41, 9)", "(5, 3, 9)", "(37, 1, 2)", "(64, 64, 64)"] {
            let mut per_chunking: Option<Buf> = None;
            for workers in [1, 2] {
                run(
                    &mut engine,
                    &format!(
                        "let x = random((37, 41, 9), dtype=\"f64\", chunks={chunks}, seed=11) * 2 - 1\n\
                         ({expr}).write(\"o.zarr\", overwrite=true)"
                    ),
                    workers,
                );
                let (got, _) = read_all(&dir.path().join("o.zarr"));
                match &per_chunking {
                    None => per_chunking = Some(got),
                    Some(p) => assert_eq!(p, &got, "{expr} {chunks}: workers changed the result"),
                }
            }
            let got = as_f64(per_chunking.as_ref().unwrap());
            match &first {
                None => first = Some(got),
                Some(f) => {
                    for (a, b) in f.iter().zip(&got) {
                        assert!(
                            (a - b).abs() <= 1e-12 * a.abs().max(1e-300),
                            "{expr} with chunks {chunks}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn reshape_stack_concat_match_direct_indexing() {
    let dir = TempDir::new("reshape");
    let mut engine = Engine::new().with_base_dir(dir.path());
    run(
        &mut engine,
        "let x = arange(720, chunks=(50,)).reshape(6, 10, 12).rechunk((4, 3, 5))\n\
         x.write(\"x.zarr\")\n\
         x.reshape(60, 12).write(\"a.zarr\")\n\
         x.reshape(6, -1).rechunk((2, 7)).write(\"b.zarr\")\n\
         x.reshape(3, 2, 5, 2, 12).write(\"c.zarr\")\n\
         stack([x[0], x[1] * 2], axis=1).write(\"s.zarr\")\n\
         concat([x, x[:, 0:3, :]], axis=1).write(\"k.zarr\")",
        3,
    );
    let flat: Vec<f64> = (0..720).map(|i| i as f64).collect();
    for name in ["x.zarr", "a.zarr", "b.zarr", "c.zarr"] {
        let (got, _) = read_all(&dir.path().join(name));
        assert_eq!(as_f64(&got), flat, "{name} keeps C order");
    }
    let at = |i: usize, j: usize, k: usize| (i * 120 + j * 12 + k) as f64;
    let (s, shape) = read_all(&dir.path().join("s.zarr"));
    assert_eq!(shape, vec![10, 2, 12]);
    let s = as_f64(&s);
    for j in 0..10 {
        for k in 0..12 {
            assert_eq!(s[j * 24 + k], at(0, j, k));
            assert_eq!(s[j * 24 + 12 + k], at(1, j, k) * 2.0);
        }
    }
    let (c, shape) = read_all(&dir.path().join("k.zarr"));
    assert_eq!(shape, vec![6, 13, 12]);
    let c = as_f64(&c);
    for i in 0..6 {
        for j in 0..13 {
            for k in 0..12 {
                let want = if j < 10 {
                    at(i, j, k)
                } else {
                    at(i, j - 10, k)
                };
                assert_eq!(c[(i * 13 + j) * 12 + k], want);
            }
        }
    }
}

#[test]
fn scalar_results_print_and_feed_later_expressions() {
    let dir = TempDir::new("scalars");
    let mut engine = Engine::new().with_base_dir(dir.path());
    let report = engine
        .eval(
            "let x = arange(10).astype(\"u16\")\n\
             let m = x.max()\n\
             print(m, x.mean(), x.sum())\n\
             print(((x - x.min()) * m).sum())",
        )
        .unwrap_or_else(|d| panic!("{}", engine.render(&d, false)));
    assert_eq!(report.printed, vec!["9 4.5 45", "405"]);
}

#[test]
fn rechunks_too_big_for_memory_go_through_an_intermediate_array() {
    let dir = TempDir::new("staged-rechunk");
    let mut engine = Engine::new().with_base_dir(dir.path());
    // 256 chunks of 16 × 64 × 64 to pixel series 4096 × 8 × 8 (512 KiB): a block aligned
    // to both holds 32 MiB, above a 16 MiB run's block limit (8 MiB for one worker, 4 MiB
    // each for two, both including the chunk being made). Blocks that fit would cut each
    // input chunk into 8 (one worker) or 32 pieces, so the rechunk is staged.
    run(
        &mut engine,
        "random((4096, 64, 64), dtype=\"u16\", chunks=(16, 64, 64), seed=5).write(\"in.zarr\")",
        2,
    );
    let script = "zarr(\"in.zarr\").rechunk((4096, 8, 8)).write(\"out.zarr\", overwrite=true)";
    let guards = tessera::exec::Safeguards {
        memory_limit: Some(16 << 20),
        memory_explicit: true,
        ..Default::default()
    };
    engine.set_memory(guards.memory_limit, 2);
    let planned = engine
        .plan("t.tsr", script)
        .unwrap_or_else(|d| panic!("{}", engine.render(&d, false)));
    let summary = tessera::plan::summary(&planned.plan, 2);
    assert_eq!(planned.plan.stages.len(), 2, "{summary}");
    // Chunks of the intermediate array, which each stage reads in blocks.
    let mid_chunks = |plan: &tessera::plan::Plan| -> u64 {
        let summary = tessera::plan::summary(plan, 2);
        let mid = plan
            .stages
            .iter()
            .find(|s| s.name.contains("out.zarr.tessera-tmp/rechunk-0-"))
            .unwrap_or_else(|| panic!("no intermediate stage:\n{summary}"));
        let tessera::plan::StageKind::Write { grid, .. } = &mid.kind else {
            panic!("{summary}");
        };
        assert_eq!(
            summary.matches("each input chunk read once").count(),
            2,
            "{summary}"
        );
        assert!(
            grid.num_chunks() < 1024,
            "fewer, larger chunks than the input: {summary}"
        );
        grid.num_chunks()
    };
    mid_chunks(&planned.plan);
    let (input, _) = read_all(&dir.path().join("in.zarr"));
    let mut outputs = Vec::new();
    for workers in [1, 2] {
        engine.set_memory(guards.memory_limit, workers);
        let staged = engine.plan("t.tsr", script).unwrap();
        assert_eq!(staged.plan.stages.len(), 2, "{workers} workers");
        let mid_chunks = mid_chunks(&staged.plan);
        let report = engine
            .run_with("t.tsr", script, &opts(workers), &guards)
            .unwrap_or_else(|d| panic!("{}", engine.render(&d, false)));
        // Every chunk of the input and of the intermediate is decoded exactly once.
        assert_eq!(report.chunks_decoded, 256 + mid_chunks, "{workers} workers");
        assert!(
            !dir.path().join("out.zarr.tessera-tmp").exists(),
            "the intermediate is removed after the run"
        );
        let (got, shape) = read_all(&dir.path().join("out.zarr"));
        assert_eq!(shape, vec![4096, 64, 64]);
        assert!(
            got == input,
            "staged rechunk changed values ({workers} workers)"
        );
        outputs.push(std::fs::read(dir.path().join("out.zarr/c/0/3/5")).unwrap());
    }
    assert_eq!(outputs[0], outputs[1], "chunk bytes independent of workers");
    // Without a limit the same rechunk runs directly, in one stage.
    engine.set_memory(None, 2);
    let direct = engine.plan("t.tsr", script).unwrap();
    assert_eq!(direct.plan.stages.len(), 1);
}
