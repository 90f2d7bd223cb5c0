//! Oracle tests against the Python ecosystem: zarr-python must read what Tessera writes,
//! and Tessera's elementwise arithmetic must equal NumPy 2's bit for bit.
//!
//! They need a Python with numpy >= 2 and zarr >= 3: `$TESSERA_PYTHON`, else `.venv/bin/python`
//! in the crate root (make it with `scripts/python-env.sh`; `scripts/test.sh` does). Without
//! one each test fails, saying why: an oracle test never passes without its oracle.

mod common;

use common::TempDir;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use tessera::{Engine, Progress, RunOptions};

// ---------------------------------------------------------------------------------------
// Finding and calling Python
// ---------------------------------------------------------------------------------------

/// The oracle interpreter, or why there is none.
fn find_python() -> Result<PathBuf, String> {
    let (py, origin) = match std::env::var_os("TESSERA_PYTHON") {
        // Absolute, because the helpers run in temporary directories (not canonicalised:
        // a venv's python must keep its own path).
        Some(p) if !p.is_empty() => (
            std::env::current_dir()
                .map(|d| d.join(&p))
                .unwrap_or_else(|_| PathBuf::from(&p)),
            "$TESSERA_PYTHON",
        ),
        _ => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
            "the default .venv",
        ),
    };
    let probe = "import sys, numpy, zarr\n\
                 np_major = int(numpy.__version__.split('.')[0])\n\
                 z_major = int(zarr.__version__.split('.')[0])\n\
                 print('numpy', numpy.__version__, 'zarr', zarr.__version__)\n\
                 sys.exit(0 if np_major >= 2 and z_major >= 3 else 3)\n";
    let out = Command::new(&py)
        .arg("-c")
        .arg(probe)
        .output()
        .map_err(|e| format!("cannot run {} ({origin}): {e}", py.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(py),
        Some(3) => Err(format!(
            "{} ({origin}) has {stdout}; numpy >= 2 and zarr >= 3 are needed",
            py.display()
        )),
        _ => Err(format!(
            "{} ({origin}) cannot import numpy and zarr: {}",
            py.display(),
            last_line(&String::from_utf8_lossy(&out.stderr))
        )),
    }
}

/// The python to use; without one the test fails, naming what is missing and the fix.
fn python(test: &str) -> PathBuf {
    find_python().unwrap_or_else(|why| {
        panic!("{test}: no Python oracle: {why} (run scripts/python-env.sh or set TESSERA_PYTHON)")
    })
}

fn last_line(s: &str) -> &str {
    s.trim().lines().last().unwrap_or("")
}

/// Run a python program (written to `dir`) with `args`; its last stdout line is JSON.
fn run_python(py: &Path, dir: &Path, name: &str, code: &str, args: &[&str]) -> Value {
    let file = dir.join(name);
    std::fs::write(&file, code).expect("write python helper");
    let out = Command::new(py)
        .arg(&file)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed ({}):\n{stderr}",
        out.status
    );
    serde_json::from_str(last_line(&stdout))
        .unwrap_or_else(|e| panic!("{name}: bad JSON output ({e}):\n{stdout}\n{stderr}"))
}

// ---------------------------------------------------------------------------------------
// Running Tessera
// ---------------------------------------------------------------------------------------

/// Run a script with relative paths resolved against `dir`; Err is the rendered diagnostics
/// or the panic message.
fn run_tessera(dir: &Path, name: &str, src: &str) -> Result<(), String> {
    let opts = RunOptions {
        workers: 2,
        progress: Progress::None,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut engine = Engine::new().with_base_dir(dir);
        engine
            .run(name, src, &opts)
            .map(|_| ())
            .map_err(|diags| engine.render(&diags, false))
    }));
    match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(non-string panic)".to_string());
            Err(format!("tessera panicked: {msg}"))
        }
    }
}

const DTYPES: [&str; 11] = [
    "bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64",
];

fn numpy_name(d: &str) -> &'static str {
    match d {
        "bool" => "bool",
        "i8" => "int8",
        "i16" => "int16",
        "i32" => "int32",
        "i64" => "int64",
        "u8" => "uint8",
        "u16" => "uint16",
        "u32" => "uint32",
        "u64" => "uint64",
        "f32" => "float32",
        "f64" => "float64",
        other => panic!("no numpy name for {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// a. zarr-python reads what Tessera writes
// ---------------------------------------------------------------------------------------

const CODECS: [&str; 4] = ["zstd", "blosc", "gzip", "none"];
const INTEROP_SHAPE: [u64; 3] = [5, 37, 45];
const INTEROP_CHUNKS: [u64; 3] = [2, 16, 20];

/// Reads every store named on the command line with zarr-python and reports its metadata
/// and the SHA-256 of its C-order little-endian bytes (also dumped to `<store>.le`).
const PY_READ_STORES: &str = r#"
import hashlib, json, sys
import numpy as np
import zarr

report = {}
for path in sys.argv[1:]:
    try:
        a = zarr.open_array(path, mode="r")
        data = a[...]
        le = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"), copy=False)
        raw = le.tobytes()
        with open(path + ".le", "wb") as f:
            f.write(raw)
        fill = a.fill_value
        fill = fill.item() if hasattr(fill, "item") else fill
        report[path] = {
            "zarr_format": a.metadata.zarr_format,
            "shape": list(a.shape),
            "chunks": list(a.chunks),
            "dtype": str(a.dtype),
            "fill_value": fill,
            "compressors": [type(c).__name__ for c in a.compressors],
            "sha256": hashlib.sha256(raw).hexdigest(),
        }
    except Exception as e:  # reported per store, so one bad store does not hide the rest
        report[path] = {"error": f"{type(e).__name__}: {e}"}
print(json.dumps(report))
"#;

fn expected_compressor(codec: &str) -> Option<&'static str> {
    match codec {
        "zstd" => Some("ZstdCodec"),
        "blosc" => Some("BloscCodec"),
        "gzip" => Some("GzipCodec"),
        _ => None,
    }
}

/// The first differing element of two little-endian buffers of `itemsize`-byte elements.
fn first_difference(a: &[u8], b: &[u8], itemsize: usize) -> String {
    if a.len() != b.len() {
        return format!("byte lengths differ: {} vs {}", a.len(), b.len());
    }
    let i = a
        .chunks(itemsize)
        .zip(b.chunks(itemsize))
        .position(|(x, y)| x != y);
    match i {
        Some(i) => {
            let flat = i as u64;
            let (s1, s2) = (INTEROP_SHAPE[1], INTEROP_SHAPE[2]);
            format!(
                "first differing element flat {flat} = [{}, {}, {}]: tessera bytes {:02x?}, zarr-python bytes {:02x?}",
                flat / (s1 * s2),
                flat / s2 % s1,
                flat % s2,
                &a[i * itemsize..(i + 1) * itemsize],
                &b[i * itemsize..(i + 1) * itemsize]
            )
        }
        None => "bytes equal".to_string(),
    }
}

#[test]
fn zarr_python_reads_tessera_output() {
    let py = python("zarr_python_reads_tessera_output");
    let tmp = TempDir::new("pyoracle-interop");
    let dir = tmp.path();

    // Content: full-range random values, with one whole chunk and a scattered set of
    // elements equal to the fill value (so a writer that skips empty chunks is exercised).
    let (s0, s1, s2) = (INTEROP_SHAPE[0], INTEROP_SHAPE[1], INTEROP_SHAPE[2]);
    let (c0, c1, c2) = (INTEROP_CHUNKS[0], INTEROP_CHUNKS[1], INTEROP_CHUNKS[2]);
    let mut src = format!(
        "let k = arange({s0}, chunks={c0})[:, none, none]\n\
         let r = arange({s1}, chunks={c1})[none, :, none]\n\
         let c = arange({s2}, chunks={c2})[none, none, :]\n\
         let blank = ((k < {c0}) & (r < {c1}) & (c < {c2})) | ((k * {s1} * {s2} + r * {s2} + c) % 29 == 0)\n"
    );
    let mut stores = Vec::new();
    for (di, dt) in DTYPES.iter().enumerate() {
        let zero = if *dt == "bool" { "false" } else { "0" };
        // Floats: spread over a wide signed range, not only [0, 1).
        let scale = if dt.starts_with('f') {
            " * 2e6 - 1e6"
        } else {
            ""
        };
        writeln!(
            src,
            "let v_{dt} = where(blank, {zero}, random(({s0}, {s1}, {s2}), dtype=\"{dt}\", chunks=({c0}, {c1}, {c2}), seed={}){scale})",
            di + 1
        )
        .unwrap();
        for codec in CODECS {
            let name = format!("w_{dt}_{codec}.zarr");
            let level = match codec {
                "zstd" => ", level=5",
                "gzip" => ", level=6",
                _ => "",
            };
            writeln!(
                src,
                "v_{dt}.write(\"{name}\", codec=\"{codec}\"{level}, overwrite=true)"
            )
            .unwrap();
            stores.push((dt.to_string(), codec.to_string(), name));
        }
    }
    if let Err(e) = run_tessera(dir, "interop_write.tsr", &src) {
        panic!("tessera failed to write the interop stores:\n{e}\nscript:\n{src}");
    }

    let names: Vec<&str> = stores.iter().map(|(_, _, n)| n.as_str()).collect();
    let report = run_python(&py, dir, "read_stores.py", PY_READ_STORES, &names);

    let mut failures = Vec::new();
    println!(
        "{:<6} {:<6} {:<10} {:<18} sha256 (zarr-python)",
        "dtype", "codec", "result", "compressors"
    );
    for (dt, codec, name) in &stores {
        let path = dir.join(name);
        let r = &report[name.as_str()];
        let mut problems = Vec::new();
        if let Some(err) = r.get("error") {
            problems.push(format!("zarr-python cannot read it: {err}"));
        } else {
            let (buf, shape) = common::read_all(&path);
            let ts_sha = common::sha256(&buf);
            let ts_bytes = buf.to_le_bytes();
            let want_shape: Vec<u64> = INTEROP_SHAPE.to_vec();
            let got_shape: Vec<u64> = json_u64s(&r["shape"]);
            let got_chunks: Vec<u64> = json_u64s(&r["chunks"]);
            if shape != want_shape {
                problems.push(format!(
                    "tessera reads shape {shape:?}, wrote {want_shape:?}"
                ));
            }
            if got_shape != want_shape {
                problems.push(format!("shape {got_shape:?}, expected {want_shape:?}"));
            }
            if got_chunks != INTEROP_CHUNKS.to_vec() {
                problems.push(format!(
                    "chunks {got_chunks:?}, expected {INTEROP_CHUNKS:?}"
                ));
            }
            if r["zarr_format"] != 3 {
                problems.push(format!("zarr_format {}, expected 3", r["zarr_format"]));
            }
            let want_dtype = numpy_name(dt);
            if r["dtype"] != want_dtype {
                problems.push(format!("dtype {}, expected {want_dtype}", r["dtype"]));
            }
            let fill_ok = match &r["fill_value"] {
                Value::Bool(b) => *dt == "bool" && !b,
                Value::Number(n) => *dt != "bool" && n.as_f64() == Some(0.0),
                _ => false,
            };
            if !fill_ok {
                problems.push(format!(
                    "fill_value {}, expected {}",
                    r["fill_value"],
                    if *dt == "bool" { "false" } else { "0" }
                ));
            }
            let comps: Vec<&str> = r["compressors"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let comp_ok = match expected_compressor(codec) {
                Some(c) => comps == [c],
                None => comps.is_empty(),
            };
            if !comp_ok {
                problems.push(format!("compressors {comps:?} for codec=\"{codec}\""));
            }
            if r["sha256"] != ts_sha.as_str() {
                let py_bytes = std::fs::read(dir.join(format!("{name}.le"))).unwrap_or_default();
                problems.push(format!(
                    "content differs: tessera sha256 {ts_sha}, zarr-python {}; {}",
                    r["sha256"],
                    first_difference(&ts_bytes, &py_bytes, buf.dtype().size())
                ));
            }
        }
        let sha = r["sha256"].as_str().unwrap_or("-");
        println!(
            "{:<6} {:<6} {:<10} {:<18} {}",
            dt,
            codec,
            if problems.is_empty() {
                "ok"
            } else {
                "MISMATCH"
            },
            r["compressors"].to_string(),
            &sha[..sha.len().min(16)]
        );
        for p in problems {
            failures.push(format!("{dt} codec={codec} ({name}): {p}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} stores do not round-trip through zarr-python:\n{}",
        failures.len(),
        stores.len(),
        failures.join("\n")
    );
}

fn json_u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// b. NumPy elementwise parity
// ---------------------------------------------------------------------------------------

/// All parity inputs are 256 x 256 in 100 x 96 chunks (the chunking does not divide the
/// shape). For u8 and i8 the first operand is the row index and the second the column index,
/// so every binary operation sees every pair of values (exhaustive). Wider integers mix full
/// range random values, small values around zero and the dtype's min and max; the second
/// operand has -1 opposite the first operand's min (MIN // -1 overflows). Floats mix uniform
/// values in [-100, 100) with NaN, +-inf, +-0, +-max, the smallest subnormal and exact halves.
/// `n_T` is `b_T` with zeros replaced by 1 (a divisor without zeros); `r_T` is the plain random
/// float input (no specials) for casts to integers, which are undefined on NaN/inf/overflow.
const PAR_SHAPE: u64 = 256;
const PAR_CHUNKS: (u64, u64) = (100, 96);

struct IntSpec {
    dt: &'static str,
    signed: bool,
    min: &'static str,
    max: &'static str,
}

const WIDE_INTS: [IntSpec; 6] = [
    IntSpec {
        dt: "i16",
        signed: true,
        min: "-32768",
        max: "32767",
    },
    IntSpec {
        dt: "u16",
        signed: false,
        min: "0",
        max: "65535",
    },
    IntSpec {
        dt: "i32",
        signed: true,
        min: "-2147483648",
        max: "2147483647",
    },
    IntSpec {
        dt: "u32",
        signed: false,
        min: "0",
        max: "4294967295",
    },
    IntSpec {
        dt: "i64",
        signed: true,
        min: "(-9223372036854775807 - 1)",
        max: "9223372036854775807",
    },
    IntSpec {
        dt: "u64",
        signed: false,
        min: "0",
        // 2^64 - 1 has no literal: all ones.
        max: "~zeros(S, dtype=\"u64\", chunks=C)",
    },
];

const INTS: [&str; 8] = ["u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"];
const FLOATS: [&str; 2] = ["f32", "f64"];

/// The script that writes every parity input to `in/NAME.zarr`.
fn parity_inputs_script() -> String {
    let (c0, c1) = PAR_CHUNKS;
    let n = PAR_SHAPE;
    let mut s = String::new();
    // `S`/`C` are substituted textually below, to keep the lines short.
    writeln!(s, "let row = arange({n}, chunks={c0})[:, none]").unwrap();
    writeln!(s, "let col = arange({n}, chunks={c1})[none, :]").unwrap();
    writeln!(s, "let i = row * {n} + col").unwrap();
    // Exhaustive 8-bit pairs.
    writeln!(s, "let a_u8 = (row + col * 0).astype(\"u8\")").unwrap();
    writeln!(s, "let b_u8 = (col + row * 0).astype(\"u8\")").unwrap();
    writeln!(s, "let a_i8 = (row + col * 0 - 128).astype(\"i8\")").unwrap();
    writeln!(s, "let b_i8 = (col + row * 0 - 128).astype(\"i8\")").unwrap();
    let mut seed = 100;
    for t in &WIDE_INTS {
        let dt = t.dt;
        let (small_a, small_b) = if t.signed {
            ("(i * 7) % 41 - 20", "(i * 11) % 37 - 18")
        } else {
            ("(i * 7) % 41", "(i * 11) % 37")
        };
        seed += 1;
        writeln!(
            s,
            "let a_{dt} = where(i % 97 == 1, {max}, where(i % 97 == 2, {min}, where(i % 3 == 0, ({small_a}).astype(\"{dt}\"), random(S, dtype=\"{dt}\", chunks=C, seed={seed}))))",
            max = t.max,
            min = t.min
        )
        .unwrap();
        seed += 1;
        let opposite_min = if t.signed { "-1" } else { "0" };
        writeln!(
            s,
            "let b_{dt} = where(i % 97 == 2, {opposite_min}, where(i % 89 == 1, {max}, where(i % 89 == 2, {min}, where(i % 89 == 3, 0, where(i % 3 == 1, ({small_b}).astype(\"{dt}\"), random(S, dtype=\"{dt}\", chunks=C, seed={seed}))))))",
            max = t.max,
            min = t.min
        )
        .unwrap();
    }
    for dt in INTS {
        writeln!(s, "let n_{dt} = where(b_{dt} == 0, 1, b_{dt})").unwrap();
    }
    for dt in FLOATS {
        let (max, tiny) = if dt == "f32" {
            ("3.4028234663852886e38", "1e-45")
        } else {
            ("1.7976931348623157e308", "5e-324")
        };
        seed += 1;
        writeln!(
            s,
            "let r_{dt} = random(S, dtype=\"{dt}\", chunks=C, seed={seed}) * 200 - 100"
        )
        .unwrap();
        writeln!(s, "let nan_{dt} = zeros(S, dtype=\"{dt}\", chunks=C) / 0.0").unwrap();
        writeln!(s, "let inf_{dt} = ones(S, dtype=\"{dt}\", chunks=C) / 0.0").unwrap();
        // (modulus, value) pairs planted into the random input.
        let specials = |m: u32, shift: u32| {
            let vals = [
                format!("nan_{dt}"),
                format!("inf_{dt}"),
                format!("-inf_{dt}"),
                "0.0".to_string(),
                "-0.0".to_string(),
                max.to_string(),
                format!("-{max}"),
                tiny.to_string(),
                "0.5".to_string(),
                "-0.5".to_string(),
                "1.5".to_string(),
                "2.5".to_string(),
                "-2.5".to_string(),
                "1.0".to_string(),
                "-1.0".to_string(),
                "1e10".to_string(),
                "3.0".to_string(),
            ];
            let mut e = String::new();
            let mut close = String::new();
            for (k, v) in vals.iter().enumerate() {
                write!(e, "where(i % {m} == {}, {v}, ", k as u32 + shift).unwrap();
                close.push(')');
            }
            (e, close)
        };
        let (open_a, close_a) = specials(53, 1);
        writeln!(s, "let a_{dt} = {open_a}r_{dt}{close_a}").unwrap();
        seed += 1;
        let (open_b, close_b) = specials(59, 3);
        writeln!(
            s,
            "let b_{dt} = {open_b}random(S, dtype=\"{dt}\", chunks=C, seed={seed}) * 200 - 100{close_b}"
        )
        .unwrap();
    }
    writeln!(s, "let m = random(S, dtype=\"bool\", chunks=C, seed=7)").unwrap();
    writeln!(s, "let m2 = random(S, dtype=\"bool\", chunks=C, seed=8)").unwrap();
    for name in parity_input_names() {
        writeln!(
            s,
            "{name}.write(\"in/{name}.zarr\", codec=\"none\", overwrite=true)"
        )
        .unwrap();
    }
    s.replace("S,", &format!("({n}, {n}),"))
        .replace("chunks=C", &format!("chunks=({c0}, {c1})"))
}

fn parity_input_names() -> Vec<String> {
    let mut v = Vec::new();
    for dt in INTS {
        v.push(format!("a_{dt}"));
        v.push(format!("b_{dt}"));
        v.push(format!("n_{dt}"));
    }
    for dt in FLOATS {
        v.push(format!("a_{dt}"));
        v.push(format!("b_{dt}"));
        v.push(format!("r_{dt}"));
    }
    v.push("m".to_string());
    v.push("m2".to_string());
    v
}

/// One expression, written in the common subset of Tessera and Python+NumPy syntax
/// (`abs sqrt exp log clip where` map to NumPy's; `.astype("u8")` to `.astype("uint8")`).
struct Case {
    expr: String,
    /// What NumPy evaluates instead of `expr`, when that differs (same result dtype).
    numpy: Option<String>,
    /// 0: exact bytes. 1: at most one unit in the last place — only for `exp` and `log`,
    /// which no libm rounds correctly in every case, so NumPy's loops and Rust's libm may
    /// legitimately differ in the last bit.
    ulps: u32,
}

fn exact(expr: impl Into<String>) -> Case {
    Case {
        expr: expr.into(),
        numpy: None,
        ulps: 0,
    }
}

fn parity_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for t in INTS {
        let (a, b, n) = (format!("a_{t}"), format!("b_{t}"), format!("n_{t}"));
        for e in [
            format!("{a} + {b}"),
            format!("{a} - {b}"),
            format!("{a} * {b}"),
            format!("{a} / {n}"),
            format!("{a} / {b}"),
            format!("{a} // {n}"),
            format!("{a} % {n}"),
            // NumPy defines integer division by zero as 0 (with a warning).
            format!("{a} // {b}"),
            format!("{a} % {b}"),
            format!("{a} ** 2"),
            format!("{a} ** ({b} % 5)"),
            format!("{a} + 1"),
            format!("{a} - 1"),
            format!("{a} * 3"),
            format!("7 - {a}"),
            format!("{a} // 3"),
            format!("{a} % 3"),
            format!("-{a}"),
            format!("~{a}"),
            format!("{a} & {b}"),
            format!("{a} | {b}"),
            format!("{a} ^ {b}"),
            format!("{a} & 12"),
            format!("{a} < {b}"),
            format!("{a} <= {b}"),
            format!("{a} == {b}"),
            format!("{a} != 3"),
            format!("{a} > 5"),
            format!("abs({a})"),
            format!("clip({a}, 5, 100)"),
            format!("where(m, {a}, {b})"),
            format!("where(m, {a}, 0)"),
            format!("{a}.astype(\"f32\")"),
            format!("{a}.astype(\"f64\")"),
            format!("{a}.astype(\"bool\")"),
            // int -> int casts wrap (C semantics) in NumPy.
            format!("{a}.astype(\"u8\")"),
            format!("{a}.astype(\"i16\")"),
            format!("{a}.astype(\"i64\")"),
        ] {
            v.push(exact(e));
        }
        // NumPy computes sqrt of 8-bit integers in float16, which Tessera does not have.
        if !t.ends_with('8') {
            v.push(exact(format!("sqrt({a})")));
        }
    }
    for t in FLOATS {
        let (a, b, r) = (format!("a_{t}"), format!("b_{t}"), format!("r_{t}"));
        let other = if t == "f32" { "f64" } else { "f32" };
        for e in [
            format!("{a} + {b}"),
            format!("{a} - {b}"),
            format!("{a} * {b}"),
            format!("{a} / {b}"),
            format!("{a} // {b}"),
            format!("{a} % {b}"),
            format!("{r} // {b}"),
            format!("{r} % {b}"),
            format!("{a} ** 2"),
            format!("{r} ** 0.5"),
            format!("{a} ** 1"),
            format!("{a} ** 0"),
            format!("{a} ** -1"),
            format!("{a} ** 2.0"),
            format!("{a} + 1"),
            format!("{a} - 1"),
            format!("1 - {a}"),
            format!("{a} * 2.5"),
            format!("{a} / 3"),
            format!("{a} // 0.5"),
            format!("{a} % 2.5"),
            format!("-{a}"),
            format!("abs({a})"),
            format!("sqrt({a})"),
            format!("{a} < {b}"),
            format!("{a} <= {b}"),
            format!("{a} == {b}"),
            format!("{a} != {b}"),
            format!("{a} == {a}"),
            format!("{a} > 0.5"),
            format!("clip({a}, -50.0, 50.0)"),
            format!("clip({a}, -50, 50)"),
            format!("where(m, {a}, {b})"),
            format!("where({a} > 0, {a}, 0.0)"),
            format!("{a}.astype(\"{other}\")"),
            format!("{a}.astype(\"bool\")"),
            format!("{r}.astype(\"i32\")"),
            format!("{r}.astype(\"i64\")"),
            format!("{r}.astype(\"i8\")"),
            format!("abs({r}).astype(\"u8\")"),
            format!("abs({r}).astype(\"u16\")"),
        ] {
            v.push(exact(e));
        }
        // Transcendentals, within 1 ulp: exp, log and a general power (NumPy's `x ** 2`,
        // `** 0.5`, `** 1`, `** 0` and `** -1` are exact fast paths — square, sqrt, copy, ones,
        // reciprocal — and are tested exactly above). No libm rounds these correctly in every
        // case, and NumPy dispatches them to SIMD loops chosen by the CPU (AVX512F / SVML on
        // x86-64), so the last bit is no fixed target. For float32 the reference is NumPy's
        // float64 loop rounded to float32: NumPy's own float32 SIMD exp/log are documented at
        // up to 2.52 / 3.83 ulp, while the float64 loops are accurate to < 1 ulp.
        for (f, x) in [
            ("exp({})", format!("{r} / 10")),
            ("log({})", format!("abs({a})")),
            ("({}) ** 3", a.clone()),
        ] {
            let numpy = (t == "f32").then(|| {
                let widened = f.replace("{}", &format!("({x}).astype(\"f64\")"));
                format!("({widened}).astype(\"f32\")")
            });
            v.push(Case {
                expr: f.replace("{}", &x),
                numpy,
                ulps: 1,
            });
        }
    }
    for e in [
        "m & m2",
        "m | m2",
        "m ^ m2",
        "~m",
        "m == m2",
        "m != m2",
        "m + m2",
        "m * m2",
        "m + 1",
        "m * a_f32",
        "m.astype(\"u8\")",
        "m.astype(\"f32\")",
        "where(m, 1, 0)",
        "where(m, 1.5, 0)",
        "where(m, m2, false)",
        // mixed-dtype promotion
        "a_u8 + a_i8",
        "a_u8 * b_i8",
        "a_u8 - b_i8",
        "a_u8 + 1.0",
        "a_u8 / 2",
        "a_i8 // n_u8",
        "a_u16 + a_f32",
        "a_i16 * b_f32",
        "a_i32 + a_f32",
        "a_i32 * 2.5",
        "a_f32 + 1",
        "a_f32 + a_f64",
        "a_i64 + a_u64",
        "a_u32 * a_i32",
        "a_u64 + 1",
        "a_u64 > a_i64",
        "a_u64 == b_i64",
        "a_u8 == a_i8",
        "a_i16 / a_u16",
        "a_u32 % n_i8",
        "a_u16 & b_i16",
        "where(m, a_u8, a_i8)",
        "where(m, a_f32, 1)",
        "where(m, a_i32, a_f32)",
        "clip(a_i16, 0.5, 10.5)",
        "clip(a_u8, -5, 300)",
        "(a_u8 + b_u8) // 2",
        "sqrt(a_u8.astype(\"f32\"))",
    ] {
        v.push(exact(e));
    }
    v
}

/// Reads the inputs and Tessera's outputs with zarr-python, evaluates every expression with
/// NumPy 2 (NEP 50: Python scalars are weak) and compares dtype and bytes.
const PY_PARITY: &str = r#"
import json, re, sys
import numpy as np
import zarr

spec = json.load(open(sys.argv[1]))
ns = {name: zarr.open_array(f"in/{name}.zarr", mode="r")[...] for name in spec["inputs"]}
ns.update(abs=np.abs, sqrt=np.sqrt, exp=np.exp, log=np.log, clip=np.clip, where=np.where)
NP = {"bool": "bool", "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64",
      "u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64",
      "f32": "float32", "f64": "float64"}

def to_numpy(expr):
    expr = re.sub(r'\.astype\("(\w+)"\)', lambda m: f'.astype("{NP[m.group(1)]}")', expr)
    return expr.replace("false", "False").replace("true", "True")

# The inputs must really contain the edge values the cases are designed around.
problems = []
for name, a in ns.items():
    if not isinstance(a, np.ndarray) or not name.startswith("a_"):
        continue
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        for want in (info.min, info.max, 0):
            if not (a == want).any():
                problems.append(f"input {name} lacks {want}")
    elif a.dtype.kind == "f":
        checks = {"nan": np.isnan(a).any(), "inf": (a == np.inf).any(), "-inf": (a == -np.inf).any(),
                  "-0.0": ((a == 0) & np.signbit(a)).any(), "max": (a == np.finfo(a.dtype).max).any()}
        problems += [f"input {name} lacks {k}" for k, ok in checks.items() if not ok]
for t in ("i16", "i32", "i64"):
    a, b = ns[f"a_{t}"], ns[f"b_{t}"]
    if not ((a == np.iinfo(a.dtype).min) & (b == -1)).any():
        problems.append(f"inputs a_{t}, b_{t} never pair min with -1")

def uint_view(x):
    return x.view(f"u{x.dtype.itemsize}") if x.dtype != np.bool_ else x.view("u1")

def ordered(bits, itemsize):
    # float bit patterns -> integers ordered like the floats (for ulp distances)
    s = int(bits)
    sign = 1 << (itemsize * 8 - 1)
    return s if s < sign else sign - s

def fmt(x):
    return repr(x.item()) if hasattr(x, "item") else repr(x)

results = []
for case in spec["cases"]:
    r = {"id": case["id"], "expr": case["expr"]}
    results.append(r)
    try:
        with np.errstate(all="ignore"):
            want = np.asarray(eval(to_numpy(case["numpy"] or case["expr"]), {"__builtins__": {}}, ns))
    except Exception as e:
        r.update(status="numpy-error", detail=f"{type(e).__name__}: {e}")
        continue
    r["np_dtype"] = str(want.dtype)
    try:
        got = zarr.open_array(case["out"], mode="r")[...]
    except Exception as e:
        r.update(status="missing", detail=f"no readable output: {type(e).__name__}: {e}")
        continue
    r["ts_dtype"] = str(got.dtype)
    if got.dtype != want.dtype:
        r.update(status="dtype", detail=f"dtype {got.dtype}, numpy gives {want.dtype}")
        continue
    if got.shape != want.shape:
        r.update(status="shape", detail=f"shape {got.shape}, numpy gives {want.shape}")
        continue
    gv, wv = uint_view(np.ascontiguousarray(got)), uint_view(np.ascontiguousarray(want))
    diff = np.flatnonzero(gv.ravel() != wv.ravel())
    note = ""
    if diff.size and want.dtype.kind == "f":
        g, w = got.ravel()[diff], want.ravel()[diff]
        both_nan = np.isnan(g) & np.isnan(w)
        if both_nan.any():
            # IEEE leaves the sign and payload of a NaN result unspecified; count as equal
            # but say so in the table.
            note = f"{int(both_nan.sum())} NaN bit patterns differ"
            diff = diff[~both_nan]
        if diff.size and case["ulps"]:
            size = want.dtype.itemsize
            gb, wb = gv.ravel()[diff], wv.ravel()[diff]
            dist = np.array([abs(ordered(x, size) - ordered(y, size)) for x, y in zip(gb, wb)])
            close = dist <= case["ulps"]
            if close.any():
                note = (note + "; " if note else "") + f"{int(close.sum())} within {case['ulps']} ulp"
            diff = diff[~close]
    if diff.size == 0:
        r.update(status="match", detail=note)
        continue
    k = int(diff[0])
    idx = np.unravel_index(k, want.shape)
    idx = tuple(int(j) for j in idx)
    names = sorted(set(re.findall(r"\b(?:[abnr]_[uif]\d+|m2?)\b", case["expr"])))
    operands = ", ".join(f"{n}={fmt(ns[n][idx])}" for n in names)
    r.update(status="mismatch",
             detail=f"{diff.size} of {want.size} elements differ; first at {list(idx)} ({operands}): "
                    f"tessera {fmt(got[idx])}, numpy {fmt(want[idx])}" + (f" [{note}]" if note else ""))
print(json.dumps({"problems": problems, "results": results}))
"#;

#[test]
fn numpy_elementwise_parity() {
    let py = python("numpy_elementwise_parity");
    let tmp = TempDir::new("pyoracle-parity");
    let dir = tmp.path();

    let inputs = parity_inputs_script();
    if let Err(e) = run_tessera(dir, "parity_inputs.tsr", &inputs) {
        panic!("tessera failed to write the parity inputs:\n{e}\nscript:\n{inputs}");
    }

    let cases = parity_cases();
    let header: String = parity_input_names()
        .iter()
        .map(|n| format!("let {n} = zarr(\"in/{n}.zarr\")\n"))
        .collect();
    let line = |k: usize, c: &Case| {
        format!(
            "({}).write(\"out/e{k}.zarr\", codec=\"none\", overwrite=true)\n",
            c.expr
        )
    };
    // One script with every case; if it is rejected or panics, each case on its own, so
    // one unsupported expression does not hide the others.
    let mut tessera_errors: Vec<Option<String>> = vec![None; cases.len()];
    let all: String = cases.iter().enumerate().map(|(k, c)| line(k, c)).collect();
    if run_tessera(dir, "parity_all.tsr", &format!("{header}{all}")).is_err() {
        for (k, c) in cases.iter().enumerate() {
            let src = format!("{header}{}", line(k, c));
            if let Err(e) = run_tessera(dir, &format!("parity_e{k}.tsr"), &src) {
                tessera_errors[k] = Some(e);
            }
        }
    }

    let spec = serde_json::json!({
        "inputs": parity_input_names(),
        "cases": cases.iter().enumerate().map(|(k, c)| serde_json::json!({
            "id": k,
            "expr": c.expr,
            "numpy": c.numpy,
            "ulps": c.ulps,
            "out": format!("out/e{k}.zarr"),
        })).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("parity.json"), spec.to_string()).expect("write spec");
    let report = run_python(&py, dir, "parity.py", PY_PARITY, &["parity.json"]);

    let mut failures: Vec<String> = report["problems"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|s| format!("input design: {}", s.as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    println!(
        "{:>4}  {:<34} {:<8} {:<8} {:<9} detail",
        "#", "expression", "numpy", "tessera", "result"
    );
    let empty = Vec::new();
    let results = report["results"].as_array().unwrap_or(&empty);
    let mut matched = 0;
    for (k, r) in results.iter().enumerate() {
        let expr = r["expr"].as_str().unwrap_or("?");
        let np_dtype = r["np_dtype"].as_str().unwrap_or("-");
        let mut status = r["status"].as_str().unwrap_or("?").to_string();
        let mut detail = r["detail"].as_str().unwrap_or("").to_string();
        if let Some(Some(err)) = tessera_errors.get(k) {
            status = "rejected".to_string();
            detail = format!("tessera: {}", first_error_line(err));
        }
        let ts_dtype = if status == "rejected" {
            "-"
        } else {
            r["ts_dtype"].as_str().unwrap_or("-")
        };
        println!("{k:>4}  {expr:<34} {np_dtype:<8} {ts_dtype:<8} {status:<9} {detail}");
        if status == "match" {
            matched += 1;
        } else {
            failures.push(format!(
                "`{expr}` (numpy dtype {np_dtype}, tessera {ts_dtype}): {status}: {detail}"
            ));
        }
    }
    println!("{matched} of {} expressions match NumPy", cases.len());
    assert_eq!(results.len(), cases.len(), "python reported on every case");
    assert!(
        failures.is_empty(),
        "{} NumPy parity failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The headline of a rendered diagnostic (or a panic message).
fn first_error_line(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Reductions against NumPy
// ---------------------------------------------------------------------------------------

const PY_REDUCE: &str = r#"
import json, sys
import numpy as np
import zarr

spec = json.load(open(sys.argv[1]))
bad = []
for c in spec["cases"]:
    x = zarr.open_array(c["input"], mode="r")[...]
    axis = c["axis"]
    if isinstance(axis, list):
        axis = tuple(axis)
    kw = {"axis": axis}
    if axis is None:
        kw["keepdims"] = True
    if c["op"] in ("std", "var"):
        kw["ddof"] = c["ddof"]
    want = getattr(np, c["op"])(x, **kw)
    want = np.asarray(want)
    got = zarr.open_array(c["out"], mode="r")[...]
    tag = f'{c["input"]} {c["op"]} axis={c["axis"]}'
    if got.dtype != want.dtype or got.shape != want.shape:
        bad.append(f"{tag}: tessera {got.dtype}{list(got.shape)} numpy {want.dtype}{list(want.shape)}")
        continue
    if want.dtype.kind in "fc":
        scale = float(np.nanmax(np.abs(want))) if want.size else 0.0
        tol = (2e-6 if want.dtype == np.float32 else 1e-12) * max(scale, 1e-300)
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        nan_ok = np.array_equal(np.isnan(got), np.isnan(want))
        if not nan_ok or float(np.nanmax(diff, initial=0.0)) > tol:
            bad.append(f"{tag}: max |diff| {float(np.nanmax(diff, initial=0.0))} > {tol}")
    elif not np.array_equal(got, want):
        i = np.argwhere(got != want)[0]
        bad.append(f"{tag}: at {i.tolist()} tessera {got[tuple(i)]} numpy {want[tuple(i)]}")
print(json.dumps({"checked": len(spec["cases"]), "bad": bad}))
"#;

/// Every reduction over every dtype and several axis choices equals NumPy's: dtype and
/// shape exactly, integers exactly (wrapping sums included), floats within 1e-12 of the
/// result's magnitude (2e-6 for f32, which Tessera sums in f64).
#[test]
fn numpy_reduction_parity() {
    let py = python("numpy_reduction_parity");
    let tmp = TempDir::new("pyoracle-reduce");
    let dir = tmp.path();
    let mut src = String::new();
    let mut cases = Vec::new();
    for (k, d) in DTYPES.iter().enumerate() {
        let input = format!("in_{d}.zarr");
        let make = if *d == "bool" {
            format!("random((13, 17, 11), chunks=(4, 5, 3), seed={k}) > 0.5")
        } else {
            format!("random((13, 17, 11), dtype=\"{d}\", chunks=(4, 5, 3), seed={k})")
        };
        src.push_str(&format!(
            "let x{k} = {make}\nx{k}.write(\"{input}\", codec=\"none\")\n"
        ));
        for op in [
            "sum", "mean", "min", "max", "std", "var", "argmin", "argmax",
        ] {
            let axes: &[(&str, serde_json::Value)] = &[
                ("", serde_json::Value::Null),
                ("axis=0", serde_json::json!(0)),
                ("axis=(0, 2)", serde_json::json!([0, 2])),
                ("axis=-1", serde_json::json!(-1)),
            ];
            for (arg, axis) in axes {
                if op.starts_with("arg") && arg.contains(',') {
                    continue;
                }
                let ddof = if op == "std" && arg.is_empty() { 1 } else { 0 };
                let mut call = arg.to_string();
                if arg.is_empty() {
                    call = "keepdims=true".into();
                }
                if ddof > 0 {
                    call.push_str(", ddof=1");
                }
                let out = format!("r{}.zarr", cases.len());
                src.push_str(&format!(
                    "x{k}.{op}({call}).write(\"{out}\", codec=\"none\")\n"
                ));
                cases.push(serde_json::json!({
                    "input": input, "op": op, "axis": axis, "ddof": ddof, "out": out,
                }));
            }
        }
    }
    if let Err(e) = run_tessera(dir, "reduce.tsr", &src) {
        panic!("tessera failed:\n{e}");
    }
    let spec = serde_json::json!({ "cases": cases });
    std::fs::write(dir.join("reduce.json"), spec.to_string()).expect("write spec");
    let report = run_python(&py, dir, "reduce.py", PY_REDUCE, &["reduce.json"]);
    let bad: Vec<String> = report["bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(report["checked"].as_u64().unwrap() as usize, cases.len());
    assert!(
        bad.is_empty(),
        "{} of {} reductions differ from NumPy:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}
