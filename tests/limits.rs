//! Limits a hostile script or store must not get past: sizes that overflow u64 are
//! refused at check time (E0304/E0305), huge or deep programs do not overflow the stack,
//! `plan --dot` draws every example, output into a closed pipe ends quietly, and
//! untrusted text is never printed raw. Every case runs the `tessera` binary.

mod common;

use common::{example_names, TempDir};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tessera() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
}

/// Runs `tessera <cmd> script` in `dir` with the script `src`.
fn cli(dir: &Path, cmd: &[&str], src: &str) -> Output {
    let file = dir.join("job.tsr");
    std::fs::write(&file, src).unwrap();
    tessera()
        .args(cmd)
        .arg(&file)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run tessera")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_no_panic(o: &Output, what: &str) {
    let e = stderr(o);
    assert!(!e.contains("panicked"), "{what}: {e}");
    // A signal other than SIGPIPE (a stack overflow's SIGSEGV/SIGABRT) is a crash.
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = o.status.signal() {
        assert_eq!(sig, SIGPIPE, "{what}: killed by signal {sig}: {e}");
    }
}

const SIGPIPE: i32 = 13;

/// `check` and `plan` both refuse `src` with `code`, pointing at `spot` in the source.
fn refused(dir: &Path, src: &str, code: &str, spot: &str) {
    for cmd in ["check", "plan"] {
        let o = cli(dir, &[cmd], src);
        assert_no_panic(&o, src);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd} {src}: {e}");
        assert!(
            e.contains(&format!("[{code}]")),
            "{cmd} {src}: want {code}: {e}"
        );
        assert!(
            e.contains(spot),
            "{cmd} {src}: the span should show {spot:?}: {e}"
        );
    }
}

/// `check` and `plan` accept `src`; returns plan's stdout.
fn accepted(dir: &Path, src: &str) -> String {
    let o = cli(dir, &["check"], src);
    assert_no_panic(&o, src);
    assert_eq!(o.status.code(), Some(0), "check {src}: {}", stderr(&o));
    let o = cli(dir, &["plan"], src);
    assert_no_panic(&o, src);
    assert_eq!(o.status.code(), Some(0), "plan {src}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn sizes_past_the_limit_are_refused_at_check_time() {
    let dir = TempDir::new("sizes-over");
    let d = dir.path();
    for (src, spot) in [
        // 2^64 elements: wrapped to 0 before.
        (
            "let x = ones((4294967296, 4294967296), dtype=\"u8\")\nlet m = x.mean()",
            "ones((4294967296, 4294967296), dtype=\"u8\")",
        ),
        (
            "ones((2**62, 2**62), dtype=\"u8\").write(\"o.zarr\")",
            "ones((2**62, 2**62)",
        ),
        ("zeros((2**32, 2**32, 2**32))", "zeros("),
        // Elements fit, bytes do not.
        ("let a = arange(9223372036854775807)\nlet s = a.shape", "arange(9223372036854775807)"),
        ("let a = arange(-2**62, 2**62)", "arange(-2**62, 2**62)"),
        ("let a = arange(1e30)", "arange(1e30)"),
        ("let a = zeros((2**31, 2**31), dtype=\"f64\")", "zeros("),
        ("let a = full((2**61, 4), 1.5)", "full("),
        ("let a = random((2**62, 2), dtype=\"f32\")", "random("),
        // Growth by an operation on arrays that fit.
        (
            "let a = zeros((2**62,), dtype=\"u8\")\nlet b = a.astype(\"f64\")",
            "a.astype(\"f64\")",
        ),
        (
            "let a = zeros((2**32, 1), dtype=\"u8\")\nlet b = zeros((1, 2**32), dtype=\"u8\")\nlet c = a + b",
            "a + b",
        ),
        (
            "let a = zeros((2**40, 1), dtype=\"u8\")\nlet c = a * zeros((1, 2**40), dtype=\"u8\")",
            "a * zeros",
        ),
        (
            "let a = zeros((16,))\nlet b = a.reshape((2**40, 2**40, -1))",
            "(2**40, 2**40, -1)",
        ),
        (
            "let a = zeros((16,))\nlet b = a.reshape((2**62, 2**62, 4))",
            "(2**62, 2**62, 4)",
        ),
        (
            "let a = zeros((2**62,), dtype=\"u8\")\nlet c = concat([a, a, a])",
            "a, a, a",
        ),
        (
            "let a = zeros((2**62,), dtype=\"u8\")\nlet c = stack([a, a])",
            "stack([a, a])",
        ),
    ] {
        refused(d, src, "E0304", spot);
    }
}

#[test]
fn sizes_just_below_the_limit_still_check_and_plan() {
    let dir = TempDir::new("sizes-under");
    let d = dir.path();
    for src in [
        "ones((2**31, 2**31), dtype=\"u8\").write(\"o.zarr\")",
        "ones((2**32, 2**31 - 1), dtype=\"u8\").mean().write(\"m.zarr\")",
        "zeros((2**30, 2**30), dtype=\"f32\").sum(axis=0).write(\"s.zarr\")",
        "zeros((2**30, 2**30 - 1), dtype=\"f64\").write(\"f.zarr\")",
        "arange(2**59).write(\"a.zarr\")",
        "let a = zeros((2**31, 1), dtype=\"u8\")\n(a + zeros((1, 2**31), dtype=\"u8\")).write(\"b.zarr\")",
        "zeros((2**62,), dtype=\"u8\")[::2**61].write(\"i.zarr\")",
        "let a = zeros((2**61,), dtype=\"u8\")\nconcat([a, a, a]).write(\"c.zarr\")",
        "zeros((2**40,), dtype=\"u8\").reshape((2**20, -1)).rechunk((1024, 2**20)).write(\"r.zarr\")",
    ] {
        let out = accepted(d, src);
        assert!(!out.contains(" 0 tasks"), "{src}: {out}");
    }
    // `.size` and `.shape` stay exact ints at the limit.
    let o = cli(
        d,
        &["run"],
        "let a = zeros((2**62, 1), dtype=\"u8\")\nprint(a.size, a.shape[0], a.nbytes)",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let n = (1u64 << 62).to_string();
    assert_eq!(out.trim(), format!("{n} {n} {n}"), "{out}");
}

#[test]
fn values_of_a_huge_array_is_refused_not_a_panic() {
    let dir = TempDir::new("sizes-values");
    let o = cli(
        dir.path(),
        &["check"],
        "let v = ones((2**31, 2**31), dtype=\"u8\").values()",
    );
    assert_no_panic(&o, "values");
    assert!(stderr(&o).contains("[E0501]"), "{}", stderr(&o));
    refused(
        dir.path(),
        "let v = ones((2**32, 2**32), dtype=\"u8\").values()",
        "E0304",
        "ones(",
    );
}

/// A Zarr v3 array with the given metadata fields and no chunks.
fn zarr_meta(dir: &Path, name: &str, shape: &str, chunks: &str, dtype: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).unwrap();
    let meta = format!(
        r#"{{"zarr_format": 3, "node_type": "array", "shape": {shape},
        "data_type": "{dtype}", "chunk_grid": {{"name": "regular",
        "configuration": {{"chunk_shape": {chunks}}}}},
        "chunk_key_encoding": {{"name": "default", "configuration": {{"separator": "/"}}}},
        "fill_value": 0, "codecs": [{{"name": "bytes", "configuration": {{"endian": "little"}}}}]}}"#
    );
    std::fs::write(p.join("zarr.json"), meta).unwrap();
}

#[test]
fn stored_arrays_with_huge_shapes_are_refused() {
    let dir = TempDir::new("sizes-zarr");
    let d = dir.path();
    zarr_meta(
        d,
        "wide.zarr",
        "[4294967296, 4294967296]",
        "[1024, 1024]",
        "uint8",
    );
    zarr_meta(
        d,
        "long.zarr",
        "[9223372036854775807]",
        "[1048576]",
        "float32",
    );
    zarr_meta(d, "ok.zarr", "[4611686018427387904]", "[1048576]", "uint8");
    zarr_meta(
        d,
        "fatchunk.zarr",
        "[4]",
        "[4611686018427387904]",
        "float64",
    );
    for (src, code) in [
        ("let x = zarr(\"wide.zarr\")\nlet m = x.mean()", "E0304"),
        ("let x = zarr(\"long.zarr\")", "E0304"),
        ("let x = zarr(\"fatchunk.zarr\")", "E0305"),
    ] {
        refused(d, src, code, "zarr(\"");
    }
    let out = accepted(d, "(zarr(\"ok.zarr\") + 1).write(\"o.zarr\")");
    assert!(out.contains("4398046511104 tasks"), "{out}");
}

#[test]
fn plan_dot_draws_every_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let names = example_names();
    assert!(names.len() >= 4, "{names:?}");
    for name in names {
        let dir = TempDir::new("dot");
        let dot = dir.path().join("plan.dot");
        let o = tessera()
            .arg("plan")
            .arg("--dot")
            .arg(&dot)
            .arg(root.join("examples").join(format!("{name}.tsr")))
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_no_panic(&o, &name);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let text = std::fs::read_to_string(&dot).unwrap();
        assert!(text.starts_with("digraph "), "{name}: {text}");
        assert!(text.trim_end().ends_with('}'), "{name}");
        assert_eq!(
            text.matches('{').count(),
            text.matches('}').count(),
            "{name}"
        );
    }
}

/// Reductions and labels in small plans (one node per chunk task) and large ones.
#[test]
fn plan_dot_draws_reductions_and_labels() {
    for src in [
        "let x = random((64, 64), chunks=(16, 16))\n(x / x.max()).write(\"n.zarr\")",
        "let x = random((64, 64), chunks=(16, 16))\nx.sum(axis=0).write(\"s.zarr\")",
        "let x = random((64, 64), chunks=(16, 16))\nlabel(x > 0.5).write(\"l.zarr\")",
        "let x = random((4096, 4096), chunks=(64, 64))\nx.mean(axis=1).write(\"m.zarr\")\nlabel(x > 0.9).write(\"l.zarr\")",
    ] {
        let dir = TempDir::new("dot-reduce");
        let dot = dir.path().join("plan.dot");
        let file = dir.path().join("job.tsr");
        std::fs::write(&file, src).unwrap();
        let o = tessera()
            .arg("plan")
            .arg("--dot")
            .arg(&dot)
            .arg(&file)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_no_panic(&o, src);
        assert_eq!(o.status.code(), Some(0), "{src}: {}", stderr(&o));
        let text = std::fs::read_to_string(&dot).unwrap();
        assert!(text.contains("stage 1"), "{src}: {text}");
    }
}

#[test]
fn a_script_of_300k_lets_checks_without_overflowing() {
    let dir = TempDir::new("many-lets");
    let mut src = String::from("let v0 = 1\n");
    for i in 1..300_000 {
        src.push_str(&format!("let v{i} = v{} + 1\n", i - 1));
    }
    src.push_str("let a = zeros((4,)) + v299999\n");
    let o = cli(dir.path(), &["check"], &src);
    assert_no_panic(&o, "300k lets");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("v299999: int = 300000"),
        "{}",
        &out[out.len() - 200..]
    );
}

#[test]
fn deep_recursion_with_nested_expressions_is_a_diagnostic() {
    let dir = TempDir::new("deep-rec");
    // `1 + (1 + (... inner ...))`: one binary node per level, inside the parser's limit.
    let deep = |k: usize, inner: &str| format!("{}{inner}{}", "1 + (".repeat(k), ")".repeat(k));
    let rec = |body: String, n: u32| {
        format!("fn f(n) {{\n  if n == 0 {{ 0 }} else {{ {body} }}\n}}\nlet r = f({n})")
    };
    for (src, ok) in [
        // Inside the call limit (200), but 150 calls of a 120-deep expression.
        (rec(deep(120, "f(n - 1)"), 150), false),
        (rec(deep(60, "f(n - 1) + 1"), 199), false),
        (rec("f(n - 1) + 1".to_string(), 150), true),
        (rec(deep(120, "f(n - 1)"), 10), true),
        (format!("fn g(n) = {}\nlet r = g(3)", deep(200, "n")), true),
    ] {
        let o = cli(dir.path(), &["check"], &src);
        assert_no_panic(&o, &src[..40]);
        let e = stderr(&o);
        if ok {
            assert_eq!(o.status.code(), Some(0), "{e}");
        } else {
            assert_eq!(o.status.code(), Some(1), "{e}");
            assert!(e.contains("[E0502]"), "{e}");
        }
    }
}

#[test]
fn deeply_nested_source_is_a_parse_error() {
    let dir = TempDir::new("deep-parse");
    for src in [
        format!("let x = {}1{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("let x = {}1{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("let x = {}1", "-".repeat(100_000)),
        format!("let x = 1{}", " + 1".repeat(100_000)),
        format!("let x = {}", "(".repeat(100_000)),
    ] {
        let o = cli(dir.path(), &["check"], &src);
        assert_no_panic(&o, &src[..20]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("[E0001]"), "{}", stderr(&o));
    }
}

/// The first line of stdout, then the pipe is closed while tessera still writes.
fn read_one_line_then_close(dir: &Path, cmd: &[&str], src: &str) -> (String, Output) {
    let file = dir.join("job.tsr");
    std::fs::write(&file, src).unwrap();
    let mut child = tessera()
        .args(cmd)
        .arg(&file)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        let mut r = BufReader::new(child.stdout.take().unwrap());
        r.read_line(&mut first).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    (first, o)
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = TempDir::new("pipe");
    let mut many = String::new();
    for i in 0..40_000 {
        many.push_str(&format!("let value_number_{i} = {i}\n"));
    }
    let mut prints = String::new();
    for i in 0..40_000 {
        prints.push_str(&format!(
            "print({i}, \"a line long enough to fill the pipe\")\n"
        ));
    }
    let big_plan = "let x = random((64, 64), chunks=(1, 1))\n(x + 1).write(\"o.zarr\")\n";
    for (cmd, src) in [
        (&["check"][..], many.as_str()),
        (&["run"][..], prints.as_str()),
        (&["plan"][..], big_plan),
        (&["plan", "--explain"][..], big_plan),
    ] {
        let (first, o) = read_one_line_then_close(dir.path(), cmd, src);
        assert!(!first.is_empty(), "{cmd:?}");
        assert_no_panic(&o, &format!("{cmd:?}"));
        assert!(
            stderr(&o).is_empty() || !stderr(&o).contains("error"),
            "{cmd:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn untrusted_text_is_escaped_in_diagnostics() {
    let dir = TempDir::new("escape");
    let d = dir.path();
    // JSON escapes: the stored name holds a raw ESC and a right-to-left override.
    zarr_meta(d, "evil.zarr", "[4]", "[4]", "\\u001b[31mred\\u202e");
    let nl = "new\nline.zarr";
    std::fs::create_dir_all(d.join(nl)).unwrap();
    std::fs::write(d.join(nl).join("junk.txt"), "x").unwrap();
    for (src, shown) in [
        ("let x = zarr(\"evil.zarr\")", "\\u{1b}[31mred\\u{202e}"),
        ("let x = zarr(\"new\\nline.zarr\")", "new\\nline.zarr"),
        // Raw control characters in the script's own text.
        (
            "let x = zarr(\"gone\u{1b}]0;x\u{7}.zarr\")",
            "gone\\u{1b}]0;x\\u{7}.zarr",
        ),
        ("let x = rois(\"no\\rfile.json\")", "no\\rfile.json"),
    ] {
        for cmd in ["check", "run"] {
            let o = cli(d, &[cmd], src);
            assert_eq!(o.status.code(), Some(1), "{src}");
            let raw = &o.stderr;
            for bad in [0x1bu8, b'\r', 0, 7] {
                assert!(
                    !raw.contains(&bad),
                    "{src}: raw byte {bad:#x} in {:?}",
                    stderr(&o)
                );
            }
            let e = stderr(&o);
            assert!(!e.contains('\u{202e}') && !e.contains("new\nline"), "{e}");
            assert!(e.contains(shown), "{src}: want {shown:?} in {e}");
        }
    }
}
