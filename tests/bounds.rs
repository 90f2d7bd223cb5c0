//! Bounded work: kernels longer than the array (scipy's results, work bounded by the
//! array), absurd kernel parameters refused at check time, oversized results refused by
//! the default memory limit, `--workers` checked, decompression bombs refused before
//! decoding, and regions files read strictly.
//!
//! The scipy oracle needs `$TESSERA_PYTHON` (or `.venv/bin/python`) with numpy and scipy;
//! without one the tests fail.

mod common;

use common::TempDir;
use std::path::Path;
use std::process::Command;
use tessera::data::Buf;
use tessera::exec::stencil::filter_array;
use tessera::ir::{Boundary, Kernel, KernelKind};
use tessera::{Engine, RunOptions};

use common::oracle_python as python;

fn run_py(script: &str) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn tessera() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
}

// ---------------------------------------------------------------------------------------
// Kernels longer than the array: scipy's results
// ---------------------------------------------------------------------------------------

/// (tessera kernel, scipy call with `x`, `mode`, `cval`)
const KERNELS: &[(&str, &[f64], &str)] = &[
    (
        "uniform",
        &[9.0],
        "ndi.uniform_filter(x, 9, mode=mode, cval=cval)",
    ),
    (
        "uniform",
        &[10.0],
        "ndi.uniform_filter(x, 10, mode=mode, cval=cval)",
    ),
    (
        "uniform",
        &[3.0, 13.0],
        "ndi.uniform_filter(x, (3, 13), mode=mode, cval=cval)",
    ),
    (
        "gaussian",
        &[3.0],
        "ndi.gaussian_filter(x, 3, mode=mode, cval=cval)",
    ),
    (
        "gaussian",
        &[0.5, 7.0],
        "ndi.gaussian_filter(x, (0.5, 7), mode=mode, cval=cval)",
    ),
    (
        "median",
        &[7.0],
        "ndi.median_filter(x, 7, mode=mode, cval=cval)",
    ),
    (
        "median",
        &[12.0],
        "ndi.median_filter(x, 12, mode=mode, cval=cval)",
    ),
    (
        "median",
        &[3.0, 11.0],
        "ndi.median_filter(x, (3, 11), mode=mode, cval=cval)",
    ),
    (
        "minimum",
        &[9.0],
        "ndi.minimum_filter(x, 9, mode=mode, cval=cval)",
    ),
    (
        "maximum",
        &[2.0, 15.0],
        "ndi.maximum_filter(x, (2, 15), mode=mode, cval=cval)",
    ),
    (
        "gaussian_gradient_magnitude",
        &[2.5],
        "ndi.gaussian_gradient_magnitude(x, 2.5, mode=mode, cval=cval)",
    ),
];

const MODES: &[(&str, Boundary)] = &[
    ("reflect", Boundary::Reflect),
    ("mirror", Boundary::Mirror),
    ("nearest", Boundary::Nearest),
    ("wrap", Boundary::Wrap),
    ("constant", Boundary::Constant(1.5)),
];

const SHAPES: &[&[u64]] = &[&[4, 4], &[3, 5], &[1, 4], &[2, 1]];

fn kernel(name: &str, params: &[f64]) -> Kernel {
    let kind = match name {
        "uniform" => KernelKind::Uniform,
        "gaussian" => KernelKind::Gaussian,
        "median" => KernelKind::Median,
        "minimum" => KernelKind::Minimum,
        "maximum" => KernelKind::Maximum,
        "gaussian_gradient_magnitude" => KernelKind::GaussianGradientMagnitude,
        _ => unreachable!(),
    };
    Kernel {
        kind,
        params: params.to_vec(),
        truncate: 4.0,
        axis: -1,
        unit: None,
    }
}

/// Every kernel in every mode on small arrays, against scipy: box statistics exactly,
/// weighted sums (folded onto the array) within 1e-12 relative.
#[test]
fn footprints_longer_than_the_axis_match_scipy() {
    let mut script = String::from(
        "import numpy as np, scipy.ndimage as ndi, struct\n\
         bits = lambda a: ' '.join(str(struct.unpack('<Q', struct.pack('<d', float(v)))[0]) for v in a.ravel())\n",
    );
    for (si, shape) in SHAPES.iter().enumerate() {
        script +=
            &format!("x = np.random.default_rng({si}).uniform(-4, 9, {shape:?})\nprint(bits(x))\n");
        for (_, _, call) in KERNELS {
            for (mode, b) in MODES {
                let cval = match b {
                    Boundary::Constant(c) => *c,
                    _ => 0.0,
                };
                script += &format!("mode, cval = {mode:?}, {cval}\nprint(bits({call}))\n");
            }
        }
    }
    let out = run_py(&script);
    let mut lines = out.lines().map(|l| {
        l.split_whitespace()
            .map(|v| f64::from_bits(v.parse().expect("bits")))
            .collect::<Vec<f64>>()
    });
    let mut checked = 0;
    for shape in SHAPES {
        let x = lines.next().expect("input");
        let data = Buf::F64(x);
        for (name, params, _) in KERNELS {
            for (mode, b) in MODES {
                let want = lines.next().expect("scipy result");
                let got = filter_array(&kernel(name, params), &data, shape, *b);
                let got: Vec<f64> = (0..got.len()).map(|i| got.get_f64(i)).collect();
                assert_eq!(got.len(), want.len());
                let exact = matches!(*name, "median" | "minimum" | "maximum");
                for (g, w) in got.iter().zip(&want) {
                    let ok = if exact {
                        g == w
                    } else {
                        (g - w).abs() <= 1e-12 * w.abs().max(1.0)
                    };
                    assert!(
                        ok,
                        "{name}{params:?} mode {mode} on {shape:?}: got {got:?}, scipy {want:?}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, SHAPES.len() * KERNELS.len() * MODES.len());
}

/// Integer input of a long uniform filter is exact (counts are whole numbers).
#[test]
fn long_uniform_on_integers_is_exact() {
    let out = run_py(
        "import numpy as np, scipy.ndimage as ndi\n\
         x = np.arange(20, dtype=np.int32).reshape(4, 5) * 7 - 30\n\
         for m in ['reflect', 'mirror', 'nearest', 'wrap', 'constant']:\n\
         \x20   print(' '.join(map(str, ndi.uniform_filter(x, 11, mode=m, cval=2).ravel())))\n",
    );
    let data = Buf::I32((0..20).map(|v| v * 7 - 30).collect());
    for (line, (mode, b)) in out.lines().zip(MODES) {
        let b = match b {
            Boundary::Constant(_) => Boundary::Constant(2.0),
            b => *b,
        };
        let got = filter_array(&kernel("uniform", &[11.0]), &data, &[4, 5], b);
        let got: Vec<i64> = (0..got.len()).map(|i| got.get_f64(i) as i64).collect();
        let want: Vec<i64> = line.split(' ').map(|v| v.parse().unwrap()).collect();
        assert_eq!(got, want, "mode {mode}");
    }
}

/// Footprints far longer than the array run through the whole pipeline (planner estimate,
/// tasks, write) with the array's cost: the results equal the in-memory filter's.
#[test]
fn huge_footprints_on_a_tiny_array_run() {
    let dir = TempDir::new("bounds-huge");
    let data: Vec<f64> = (0..16).map(|v| ((v * 37) % 11) as f64 - 3.0).collect();
    for (k, kern, b, mode) in [
        (
            "median(100001)",
            kernel("median", &[100001.0]),
            Boundary::Reflect,
            "",
        ),
        (
            "uniform(200000)",
            kernel("uniform", &[200000.0]),
            Boundary::Wrap,
            "wrap",
        ),
        (
            "maximum((1, 999999))",
            kernel("maximum", &[1.0, 999999.0]),
            Boundary::Constant(40.0),
            "constant",
        ),
        (
            "gaussian(100000)",
            kernel("gaussian", &[100000.0]),
            Boundary::Mirror,
            "mirror",
        ),
    ] {
        let out = dir.path().join(format!("o{}.zarr", k.len()));
        let src = if mode.is_empty() {
            format!(
                "let x = ((arange(16) * 37) % 11 - 3).astype(\"f64\").reshape((4, 4))\n\
                 x.map({k}).write({:?})\n",
                out.display()
            )
        } else {
            format!(
                "let x = ((arange(16) * 37) % 11 - 3).astype(\"f64\").reshape((4, 4))\n\
                 x.overlap(4, boundary=\"{mode}\", cval=40).map({k}).write({:?})\n",
                out.display()
            )
        };
        let mut e = Engine::new();
        e.run("huge.tsr", &src, &RunOptions::default())
            .unwrap_or_else(|d| panic!("{k}: {d:?}"));
        let (got, _) = common::read_all(&out);
        let want = filter_array(&kern, &Buf::F64(data.clone()), &[4, 4], b);
        let g: Vec<f64> = (0..16).map(|i| got.get_f64(i)).collect();
        let w: Vec<f64> = (0..16).map(|i| want.get_f64(i)).collect();
        for (a, c) in g.iter().zip(&w) {
            assert!(
                (a - c).abs() <= 1e-12 * c.abs().max(1.0),
                "{k}: {g:?} vs {w:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Absurd kernel parameters: refused at check time
// ---------------------------------------------------------------------------------------

fn check_error(src: &str) -> tessera::Diagnostic {
    let mut e = Engine::new();
    let errs = e.check("t.tsr", src).expect_err(src);
    errs.into_iter()
        .next()
        .unwrap_or_else(|| panic!("no diagnostic for {src}"))
}

#[test]
fn absurd_kernel_parameters_are_refused() {
    for (k, code, span) in [
        ("gaussian(1e9)", "E0206", "1e9"),
        ("gaussian(2, truncate=1e18)", "E0206", "1e18"),
        ("gaussian((1, 1e300))", "E0206", "(1, 1e300)"),
        ("gaussian_gradient_magnitude(5e5)", "E0206", "5e5"),
        ("median(9007199254740993)", "E0206", "9007199254740993"),
        ("uniform((3, 2097154))", "E0206", "(3, 2097154)"),
        ("maximum(1e30)", "E0206", "1e30"),
        (
            "minimum(9223372036854775807)",
            "E0206",
            "9223372036854775807",
        ),
        ("gaussian(1e400)", "E0002", "1e400"),
        ("gaussian(2, truncate=1e400)", "E0002", "1e400"),
        ("gaussian(0.0, truncate=1e18)", "E0203", "0.0"),
        ("uniform(-5)", "E0203", "-5"),
    ] {
        let src = format!("let x = zeros((4, 4))\nx.map({k}).write(\"never.zarr\")\n");
        let d = check_error(&src);
        assert_eq!(d.code, code, "{k}: {d:?}");
        if let Some(l) = d.labels.first() {
            assert_eq!(
                &src[l.span.start as usize..l.span.end as usize],
                span,
                "{k}"
            );
        }
    }
    // The largest accepted radius, and a footprint longer than the array, are legal.
    for k in [
        "gaussian(262143)",
        "median(2097153)",
        "uniform(100001)",
        "gaussian(2, truncate=500000)",
    ] {
        let src = format!("let x = zeros((4, 4))\nx.map({k}).write(\"never.zarr\")\n");
        Engine::new()
            .check("t.tsr", &src)
            .unwrap_or_else(|d| panic!("{k}: {d:?}"));
    }
}

// ---------------------------------------------------------------------------------------
// The default memory limit and --workers
// ---------------------------------------------------------------------------------------

#[test]
fn oversized_results_are_refused_by_the_default_limit() {
    let dir = TempDir::new("bounds-mem");
    for (src, name) in [
        ("ones((10, 100000000000), dtype=\"u8\").sum(axis=0).write(\"o.zarr\")\n", "sum"),
        ("print(ones((3, 200000000000), dtype=\"f32\").mean(axis=0).values())\n", "values"),
        (
            "ones((4, 1000000000000), dtype=\"f64\", chunks=(4, 1000000000000)).write(\"o.zarr\")\n",
            "chunk",
        ),
    ] {
        let f = dir.path().join(format!("{name}.tsr"));
        std::fs::write(&f, src).unwrap();
        let out = tessera()
            .current_dir(dir.path())
            .args(["run", "--quiet"])
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains("E0504") || err.contains("E0501"),
            "{name}: {err}"
        );
        assert!(!dir.path().join("o.zarr").exists(), "{name}: output created");
    }
}

#[test]
fn workers_are_checked() {
    let dir = TempDir::new("bounds-workers");
    let f = dir.path().join("w.tsr");
    std::fs::write(&f, "arange(10).write(\"o.zarr\", overwrite=true)\n").unwrap();
    for cmd in ["run", "plan"] {
        let out = tessera()
            .current_dir(dir.path())
            .args([cmd, "--workers", "0"])
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--workers 0"));
    }
    for n in ["100000", "18446744073709551615"] {
        let out = tessera()
            .current_dir(dir.path())
            .args(["run", "--quiet", "--workers", n])
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{n}: {err}");
        assert!(
            err.contains(&format!("note: --workers {n} is capped at")),
            "{err}"
        );
    }
    let out = tessera()
        .current_dir(dir.path())
        .args(["run", "--quiet", "--workers", "-1"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------
// Decompression bombs
// ---------------------------------------------------------------------------------------

/// A zstd frame that decodes to `size` zero bytes, made of RLE blocks of 128 KiB (4
/// stored bytes each), with or without the content size in its header.
fn zstd_bomb(size: u64, content_size: bool) -> Vec<u8> {
    let mut v = vec![0x28, 0xb5, 0x2f, 0xfd];
    if content_size {
        // Single segment, 8-byte content size.
        v.push(0xe0);
        v.extend_from_slice(&size.to_le_bytes());
    } else {
        // No content size; a window of 128 KiB (exponent 7 + 10).
        v.push(0x00);
        v.push(7 << 3);
    }
    let block = 128 * 1024u64;
    let mut left = size;
    while left > 0 {
        let n = left.min(block);
        left -= n;
        let last = u32::from(left == 0);
        let h = last | (1 << 1) | ((n as u32) << 3);
        v.extend_from_slice(&h.to_le_bytes()[..3]);
        v.push(0);
    }
    v
}

#[test]
fn decompression_bombs_are_refused_before_decoding() {
    let dir = TempDir::new("bounds-bomb");
    // Valid bombs: python's zstd decodes them to the size they claim.
    let probe = dir.path().join("probe.zst");
    std::fs::write(&probe, zstd_bomb(300_000, true)).unwrap();
    let n = run_py(&format!(
        "import numcodecs\nprint(len(numcodecs.Zstd().decode(open({:?}, 'rb').read())))",
        probe.display()
    ));
    assert_eq!(n.trim(), "300000");
    for (i, (size, with_size, codecs)) in [
        (4u64 << 30, true, "zstd"),
        (1u64 << 30, false, "zstd"),
        (64u64 << 20, true, "zstd+crc"),
        (16 + (1 << 20), true, "zstd"),
    ]
    .into_iter()
    .enumerate()
    {
        let arr = dir.path().join(format!("in{i}.zarr"));
        let chain = if codecs == "zstd+crc" {
            "[{\"name\": \"bytes\", \"configuration\": {\"endian\": \"little\"}}, {\"name\": \"zstd\", \"configuration\": {\"level\": 3, \"checksum\": false}}, {\"name\": \"crc32c\"}]"
        } else {
            "[{\"name\": \"bytes\", \"configuration\": {\"endian\": \"little\"}}, {\"name\": \"zstd\", \"configuration\": {\"level\": 3, \"checksum\": false}}]"
        };
        std::fs::create_dir_all(arr.join("c/0")).unwrap();
        std::fs::write(
            arr.join("zarr.json"),
            format!(
                "{{\"zarr_format\": 3, \"node_type\": \"array\", \"shape\": [4, 4], \"data_type\": \"uint8\", \
                 \"chunk_grid\": {{\"name\": \"regular\", \"configuration\": {{\"chunk_shape\": [4, 4]}}}}, \
                 \"chunk_key_encoding\": {{\"name\": \"default\", \"configuration\": {{\"separator\": \"/\"}}}}, \
                 \"fill_value\": 0, \"codecs\": {chain}}}"
            ),
        )
        .unwrap();
        let mut chunk = zstd_bomb(size, with_size);
        if codecs == "zstd+crc" {
            chunk.extend_from_slice(&[0, 0, 0, 0]);
        }
        std::fs::write(arr.join("c/0/0"), &chunk).unwrap();
        let f = dir.path().join("b.tsr");
        std::fs::write(
            &f,
            format!(
                "zarr({:?}).map(gaussian(1)).write(\"o{i}.zarr\")\nprint(zarr({:?}).values())\n",
                arr.display(),
                arr.display()
            ),
        )
        .unwrap();
        let out = tessera()
            .current_dir(dir.path())
            .args(["run", "--quiet"])
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{i}: {err}");
        assert!(err.contains("E0508"), "{i}: {err}");
        assert!(
            err.contains(&format!("in{i}.zarr chunk [0, 0]"))
                && (err.contains("but the chunk holds 16 bytes")
                    || (codecs == "zstd+crc" && err.contains("are not valid zstd frames"))),
            "{i}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Regions files
// ---------------------------------------------------------------------------------------

fn rois_of(dir: &Path, name: &str, text: &[u8]) -> Result<Vec<String>, tessera::Diagnostic> {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    let src = format!(
        "for r in rois({:?}) {{ print(r) }}\n",
        f.display().to_string()
    );
    let mut e = Engine::new();
    match e.run("r.tsr", &src, &RunOptions::default()) {
        Ok(r) => Ok(r.printed),
        Err(d) => Err(d.into_iter().next().expect("a diagnostic")),
    }
}

#[test]
fn csv_spellings_read_the_same_regions() {
    let dir = TempDir::new("bounds-csv");
    let plain = "offset_y,offset_x,shape_y,shape_x\n1,2,3,4\n0,0,5,6\n";
    let want = rois_of(dir.path(), "plain.csv", plain.as_bytes()).unwrap();
    assert_eq!(want, vec!["(1:4, 2:6)", "(0:5, 0:6)"]);
    let spellings: &[&str] = &[
        "\u{feff}offset_y,offset_x,shape_y,shape_x\n1,2,3,4\n0,0,5,6\n",
        "offset_y;offset_x;shape_y;shape_x\n1;2;3;4\n0;0;5;6\n",
        "offset_y\toffset_x\tshape_y\tshape_x\n1\t2\t3\t4\n0\t0\t5\t6\n",
        "offset_y,offset_x,shape_y,shape_x,\n1,2,3,4,\n0,0,5,6,\n",
        "offset_y,offset_x,shape_y,shape_x\n1,2,3,4,\n0,0,5,6\n",
        "shape_x,offset_x,shape_y,offset_y\n4,2,3,1\n6,0,5,0\n",
        "Shape_Y , OFFSET_X, offset_y ,shape_x\r\n3,2,1,4\r\n5,0,0,6\r\n",
        "\"offset_y\",\"offset_x\",\"shape_y\",\"shape_x\"\n1,2,3,4\n\n# comment\n0,0,5,6\n",
        "offset0,offset1,shape0,shape1\n1,2,3,4\n0,0,5,6\n",
        "start_y,stop_y,start_x,stop_x\n1,4,2,6\n0,5,0,6\n",
        "stop_x,start_x,stop_y,start_y\n6,2,4,1\n6,0,5,0\n",
        "start0;end0;start1;end1;\n1;4;2;6;\n0;5;0;6;\n",
        "\u{feff}1,4,2,6\n0,5,0,6\n",
        "1;4;2;6\n0;5;0;6\n",
        "1,4,2,6,\n0,5,0,6,\n",
    ];
    for (i, s) in spellings.iter().enumerate() {
        let got = rois_of(dir.path(), &format!("s{i}.csv"), s.as_bytes())
            .unwrap_or_else(|d| panic!("{s:?}: {}", d.message));
        assert_eq!(got, want, "{s:?}");
    }
}

#[test]
fn bad_regions_files_name_the_row() {
    let dir = TempDir::new("bounds-csvbad");
    for (text, needle) in [
        (
            "offset_y,offset_x,shape_y,shape_x\n1,2,3,4\n1,2,-3,4\n",
            "line 3, column 3 (shape_y): shape -3 is negative",
        ),
        (
            "offset_y,offset_x,shape_y,shape_x\n1,2,3\n",
            "line 2: 3 cells, but the header has 4",
        ),
        (
            "offset_y,offset_x,shape_y,shape_x\n1,2,x,4\n",
            "line 2, column 3 (shape_y): \"x\" is not an integer",
        ),
        (
            "offset_y,offset_x,shape_y,shape_x\n1,,3,4\n",
            "line 2, column 2 (offset_x): the cell is empty",
        ),
        (
            "offset_y,offsetx,shape_y,size_x\n1,2,3,4\n",
            "line 1, column 4 (\"size_x\"): not a regions column",
        ),
        (
            "y,x,h,w\n1,2,3,4\n",
            "line 1, column 1 (\"y\"): not a regions column",
        ),
        (
            "offset_y,offset_x,shape_y\n1,2,3\n",
            "column 2 (\"offset_x\"): its axis has no matching shape column",
        ),
        (
            "offset_y,start_x,shape_y,stop_x\n1,2,3,4\n",
            "cannot be mixed",
        ),
        ("offset_y,offset_y,shape_y\n1,2,3\n", "appears twice"),
        (
            "start0,stop0\n5,2\n",
            "line 2, column 2 (stop0): stop 2 is before start 5",
        ),
        ("0,5\n1,2,3,4\n", "line 2: 4 cells, but the first row has 2"),
        (
            "0,5,1\n",
            "line 1: expected two numbers (start, stop) per axis, found 3",
        ),
        ("offset,shape\n-1,3\n", "offset -1 is negative"),
        ("offset,shape\n9223372036854775807,3\n", "overflows"),
        (
            "[{\"offset\": [1, 2], \"shape\": [3, -4]}]",
            "region #0: shape -4 is negative",
        ),
        (
            "[[[0, 4]], [[0, 4], [7, 1]]]",
            "region #1: stop 1 is before start 7",
        ),
        ("[{\"offset\": [1], \"shape\": [2]}] x", "trailing"),
    ] {
        let name = if text.starts_with('[') {
            "bad.json"
        } else {
            "bad.csv"
        };
        let d = rois_of(dir.path(), name, text.as_bytes()).expect_err(text);
        assert_eq!(d.code, "E0207", "{text:?}: {}", d.message);
        assert!(d.message.contains(name), "{text:?}: {}", d.message);
        assert!(d.message.contains(needle), "{text:?}: {}", d.message);
    }
}
