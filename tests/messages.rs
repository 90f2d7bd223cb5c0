//! Messages around failures and printing: read errors in `values()`/`preview()` are E0406
//! naming the chunk, `--resume` is suggested exactly when there is something to resume,
//! and `print` of a large array gives NumPy's summary (checked against numpy's `str()`).

mod common;

use common::TempDir;
use std::path::Path;
use std::process::{Command, Output};

use common::run_cli as tessera;

fn run(dir: &Path, script: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("job.tsr"), script).unwrap();
    let mut a = vec!["run", "job.tsr"];
    a.extend(extra);
    tessera(dir, &a)
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An 8×8 u8 input of 4×4 chunks whose chunk [0, 1] cannot be decoded.
fn damaged_input(d: &Path) {
    let o = run(
        d,
        "full((8, 8), 5, dtype=\"u8\", chunks=(4, 4)).write(\"in.zarr\")\n",
        &[],
    );
    assert!(o.status.success(), "{}", err(&o));
    std::fs::write(d.join("in.zarr/c/0/1"), b"definitely not zstd").unwrap();
}

#[test]
fn read_errors_in_values_and_preview_are_read_errors() {
    let dir = TempDir::new("msg-e0406");
    let d = dir.path();
    damaged_input(d);
    for script in [
        "print(zarr(\"in.zarr\").values())",
        "print(zarr(\"in.zarr\")[2:6, 2:6].values())",
        "print(zarr(\"in.zarr\")[0:4, 4:8].values())",
        "print((zarr(\"in.zarr\") * 2).sum())",
        "zarr(\"in.zarr\").preview(\"p.png\")",
        "zarr(\"in.zarr\")[1:7, 3:5].preview(\"q.png\")",
    ] {
        let o = run(d, &format!("{script}\n"), &["--workers", "1"]);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{script}: {e}");
        assert!(e.contains("E0406"), "{script}: {e}");
        assert!(!e.contains("E0599"), "{script}: {e}");
        assert!(
            e.contains("error reading in.zarr chunk [0, 1]"),
            "{script}: {e}"
        );
    }
    // The embedding API (and so the REPL) reports the same.
    let mut engine = tessera::Engine::new().with_base_dir(d);
    let errs = engine
        .eval("print(zarr(\"in.zarr\")[2:6, 2:6].values())")
        .unwrap_err();
    assert_eq!(errs[0].code, "E0406", "{:?}", errs[0]);
}

#[test]
fn resume_is_suggested_only_when_chunks_are_finished() {
    let dir = TempDir::new("msg-resume");
    let d = dir.path();
    damaged_input(d);
    // Nothing finished (the only chunk fails): no hint to resume.
    let one = "zarr(\"in.zarr\")[0:4, 4:8].write(\"one.zarr\")\n";
    let o = run(d, one, &["--workers", "1"]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("E0406"), "{e}");
    assert!(!e.contains("--resume"), "{e}");
    let o = run(d, one, &["--workers", "1"]);
    assert!(!err(&o).contains("--resume"), "{}", err(&o));
    // Chunk [0, 0] finishes before [0, 1] fails: the failure and a rerun both say so.
    let two = "(zarr(\"in.zarr\") + 1).write(\"two.zarr\")\n";
    let o = run(d, two, &["--workers", "1"]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("rerun with --resume"), "{e}");
    let o = run(d, two, &["--workers", "1"]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("E0404"), "{e}");
    assert!(
        e.contains("an interrupted run finished 1 chunk of it"),
        "{e}"
    );
    assert!(
        e.contains("rerun with --resume to compute only the missing chunks"),
        "{e}"
    );
    // A finished output has nothing to resume.
    let ok = "full((8, 8), 1, dtype=\"u8\", chunks=(4, 4)).write(\"ok.zarr\")\n";
    assert!(run(d, ok, &[]).status.success());
    let o = run(d, ok, &[]);
    let e = err(&o);
    assert!(e.contains("E0404"), "{e}");
    assert!(!e.contains("--resume"), "{e}");
    // Also after a resumed run finished it.
    assert!(run(d, ok, &["--resume"]).status.success());
    assert!(!err(&run(d, ok, &[])).contains("--resume"));
}

use common::oracle_python as python;

#[test]
fn print_of_large_arrays_matches_numpy_str() {
    let py = python();
    // (Tessera expression, the NumPy expression of the same array)
    let cases = [
        ("arange(2000)", "np.arange(2000)"),
        ("arange(1001)", "np.arange(1001)"),
        ("arange(1000)[0:12]", "np.arange(1000)[0:12]"),
        (
            "arange(10000).reshape((100, 100))",
            "np.arange(10000).reshape(100, 100)",
        ),
        (
            "arange(24000).reshape((20, 30, 40))",
            "np.arange(24000).reshape(20, 30, 40)",
        ),
        ("arange(2000) / 2", "np.arange(2000) / 2"),
        ("(arange(1200) % 50) / 4", "(np.arange(1200) % 50) / 4"),
        (
            "(arange(2000) * 0.25).astype(\"f32\")",
            "(np.arange(2000) * 0.25).astype(np.float32)",
        ),
        (
            "(arange(3000) % 7 - 3).astype(\"i8\")",
            "(np.arange(3000) % 7 - 3).astype(np.int8)",
        ),
        (
            "arange(4000).reshape((2, 2, 1000)) > 1500",
            "np.arange(4000).reshape(2, 2, 1000) > 1500",
        ),
        (
            "ones((40, 40), dtype=\"u16\")",
            "np.ones((40, 40), dtype=np.uint16)",
        ),
    ];
    let dir = TempDir::new("msg-print");
    let d = dir.path();
    let script: String = cases
        .iter()
        .map(|(t, _)| format!("print(({t}).values())\n"))
        .collect();
    let o = run(d, &script, &["--quiet"]);
    assert!(o.status.success(), "{}", err(&o));
    let ours = String::from_utf8_lossy(&o.stdout).into_owned();
    let sep = "<<end>>";
    let prog: String = std::iter::once("import numpy as np\n".to_string())
        .chain(
            cases
                .iter()
                .map(|(_, n)| format!("print(str({n}))\nprint({sep:?})\n")),
        )
        .collect();
    let want = Command::new(&py).args(["-c", &prog]).output().unwrap();
    assert!(
        want.status.success(),
        "{}",
        String::from_utf8_lossy(&want.stderr)
    );
    let want = String::from_utf8_lossy(&want.stdout).into_owned();
    let want: Vec<&str> = want
        .split(&format!("{sep}\n"))
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(want.len(), cases.len());
    // Our prints are one line each per `print`, joined by newlines; split by case.
    let mut rest = ours.as_str();
    for ((t, _), w) in cases.iter().zip(&want) {
        assert!(
            rest.starts_with(w),
            "{t}:\nnumpy:\n{w}\ntessera:\n{}",
            &rest[..rest.len().min(w.len() + 200)]
        );
        rest = &rest[w.len()..];
    }
    assert_eq!(rest, "");
}
