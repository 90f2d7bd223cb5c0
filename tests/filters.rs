//! Filters against scipy.ndimage: every reference in the oracle fixtures (`filters/`) is
//! reproduced under several chunkings (including chunks smaller than the halo), and for
//! every kernel × boundary mode the tiled result equals the untiled one bit for bit.

mod common;

use common::{fixtures, read_all, TempDir};
use tessera::data::Buf;
use tessera::exec::stencil::filter_array;
use tessera::ir::{Boundary, Kernel, KernelKind};
use tessera::{Engine, Progress, RunOptions};

fn opts(workers: usize) -> RunOptions {
    RunOptions {
        workers,
        progress: Progress::None,
    }
}

fn run(dir: &std::path::Path, src: &str) {
    thread_local! {
        static ENGINES: std::cell::RefCell<Vec<(std::path::PathBuf, Engine)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    ENGINES.with(|es| {
        let mut es = es.borrow_mut();
        if !es.iter().any(|(d, _)| d == dir) {
            es.push((dir.to_path_buf(), Engine::new().with_base_dir(dir)));
        }
        let e = &mut es.iter_mut().find(|(d, _)| d == dir).unwrap().1;
        if let Err(d) = e.run("filters.tsr", src, &opts(2)) {
            panic!("{}\n{src}", e.render(&d, false));
        }
    });
}

/// Tessera's expression for a fixture's scipy call.
fn expression(params: &serde_json::Value) -> String {
    let op = params["op"].as_str().unwrap();
    let num = |k: &str| params[k].as_f64().unwrap();
    let mode = params["mode"].as_str().unwrap_or("reflect");
    let kernel = match op {
        "gaussian_filter" => format!("gaussian({}, truncate={})", num("sigma"), num("truncate")),
        "uniform_filter" => format!("uniform({})", num("size")),
        "median_filter" => format!("median({})", num("size")),
        "minimum_filter" => format!("minimum({})", num("size")),
        "maximum_filter" => format!("maximum({})", num("size")),
        "sobel" => format!("sobel({})", params["axis"].as_i64().unwrap()),
        "laplace" => "laplace()".to_string(),
        "gaussian_gradient_magnitude" => format!(
            "gaussian_gradient_magnitude({}, truncate={})",
            num("sigma"),
            params["truncate"].as_f64().unwrap_or(4.0)
        ),
        other => panic!("unknown op {other}"),
    };
    if mode == "reflect" {
        // The default: halo inferred from the footprint.
        format!("x.map({kernel})")
    } else {
        let cval = params["cval"].as_f64().unwrap_or(0.0);
        let r = params["radius"].as_u64().expect("radius");
        format!("x.overlap({r}, boundary=\"{mode}\", cval={cval}).map({kernel})")
    }
}

fn compare(name: &str, got: &Buf, want: &Buf) -> Result<(), String> {
    if got.dtype() != want.dtype() || got.len() != want.len() {
        return Err(format!(
            "{name}: dtype/len {} {} vs {} {}",
            got.dtype(),
            got.len(),
            want.dtype(),
            want.len()
        ));
    }
    let float = got.dtype().is_float();
    for i in 0..got.len() {
        let (a, b) = (got.get_f64(i), want.get_f64(i));
        let ok = if float {
            a == b || (a - b).abs() <= 1e-5 * b.abs().max(1e-30)
        } else {
            a == b
        };
        if !ok {
            return Err(format!("{name}: element {i}: got {a}, want {b}"));
        }
    }
    Ok(())
}

#[test]
fn scipy_fixtures_reproduced_under_many_chunkings() {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest"),
    )
    .unwrap();
    let dir = TempDir::new("filters");
    let mut failures = Vec::new();
    let mut exact = 0;
    let mut total = 0;
    for f in manifest["fixtures"].as_array().unwrap() {
        if f["category"] != "filters" || f["role"] != "output" {
            continue;
        }
        let out_path = f["path"].as_str().unwrap();
        let input = fixtures().join(f["inputs"][0].as_str().unwrap());
        let expr = expression(&f["params"]);
        let (want, shape) = read_all(&fixtures().join(out_path));
        let nd = shape.len();
        let chunkings: Vec<Vec<u64>> = vec![
            shape.clone(),
            vec![5; nd],
            shape.iter().map(|s| s.div_ceil(2) + 1).collect(),
            (0..nd).map(|i| [7, 16, 9][i % 3]).collect(),
        ];
        let mut first: Option<Buf> = None;
        for (ci, ch) in chunkings.iter().enumerate() {
            let chunks: Vec<String> = ch.iter().map(|c| c.to_string()).collect();
            let src = format!(
                "let x = zarr({:?})\n{expr}.write(\"o{ci}.zarr\", chunks=({},), overwrite=true)\n",
                input.display().to_string(),
                chunks.join(", ")
            );
            run(dir.path(), &src);
            let (got, _) = read_all(&dir.path().join(format!("o{ci}.zarr")));
            total += 1;
            if got == want {
                exact += 1;
            }
            if let Err(e) = compare(&format!("{out_path} chunks {ch:?} ({expr})"), &got, &want) {
                failures.push(e);
            }
            match &first {
                None => first = Some(got),
                Some(b) => assert_eq!(&got, b, "{out_path}: chunks {ch:?} differ from untiled"),
            }
        }
    }
    eprintln!("{exact}/{total} fixture runs bit-identical to scipy");
    assert!(total >= 200, "only {total} runs");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Deterministic test data with negative values and a few large ones.
fn data(dtype: &str, shape: &[u64]) -> Buf {
    let n: u64 = shape.iter().product();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let vals: Vec<f64> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) % 20000) as f64 / 100.0 - 50.0
        })
        .collect();
    match dtype {
        "f32" => Buf::F32(vals.iter().map(|v| *v as f32).collect()),
        "f64" => Buf::F64(vals),
        "u8" => Buf::U8(vals.iter().map(|v| (v.abs() * 2.5) as u8).collect()),
        "i16" => Buf::I16(vals.iter().map(|v| (v * 100.0) as i16).collect()),
        _ => unreachable!(),
    }
}

#[test]
fn tiled_equals_untiled_for_every_kernel_and_boundary() {
    let dir = TempDir::new("tiled");
    let kernels = [
        "gaussian(1.5)",
        "gaussian((0, 2.5, 1))",
        "uniform(4)",
        "median(3)",
        "minimum((1, 3, 2))",
        "maximum(2)",
        "sobel(1)",
        "laplace()",
        "gaussian_gradient_magnitude(1)",
    ];
    let boundaries = ["reflect", "mirror", "nearest", "wrap", "constant", "none"];
    let shape = [7u64, 23, 31];
    let mut runs = 0;
    for dtype in ["f32", "u8", "f64"] {
        let input = data(dtype, &shape);
        // Scripts cannot hold in-memory values, so the input is written through `io`.
        let in_path = dir.path().join(format!("in_{dtype}.zarr"));
        let w = tessera::io::ZarrWriter::create(
            &in_path,
            &shape,
            &[3, 8, 8],
            input.dtype(),
            &Buf::zeros(input.dtype(), 1),
            &tessera::io::WriteOptions {
                codec: tessera::io::Codec::None,
                level: None,
                overwrite: true,
                dimension_names: None,
            },
        )
        .unwrap();
        let grid = tessera::geom::ChunkGrid::new(shape.to_vec(), vec![3, 8, 8]);
        for flat in 0..grid.num_chunks() {
            let idx = grid.unflatten(flat);
            let r = grid.chunk_region(&idx);
            w.write_chunk(&idx, &tessera::exec::layout::extract(&input, &shape, &r))
                .unwrap();
        }
        w.finish().unwrap();
        for k in kernels {
            for b in boundaries {
                let mut outs = Vec::new();
                for chunks in ["(7, 23, 31)", "(2, 4, 5)", "(3, 16, 2)"] {
                    let name = format!("o_{runs}.zarr");
                    let src = format!(
                        "let x = zarr(\"in_{dtype}.zarr\")\nlet k = {k}\nlet r = x.overlap((7, 10, 10), boundary=\"{b}\", cval=3.5).map(k)\nr.write(\"{name}\", chunks={chunks}, overwrite=true)\n"
                    );
                    run(dir.path(), &src);
                    outs.push(read_all(&dir.path().join(&name)).0);
                    runs += 1;
                }
                for o in &outs[1..] {
                    assert!(o == &outs[0], "{dtype} {k} {b}: tiling changed the result");
                }
            }
        }
        // And the tiled pipeline equals the whole-array computation for default reflect.
        let kk = Kernel {
            kind: KernelKind::Gaussian,
            params: vec![1.5],
            truncate: 4.0,
            axis: -1,
            unit: None,
        };
        let whole = filter_array(&kk, &input, &shape, Boundary::Reflect);
        run(
            dir.path(),
            &format!("zarr(\"in_{dtype}.zarr\").map(gaussian(1.5)).write(\"g_{dtype}.zarr\", chunks=(2, 5, 6), overwrite=true)"),
        );
        assert!(read_all(&dir.path().join(format!("g_{dtype}.zarr"))).0 == whole);
    }
    assert!(runs >= 400);
}
