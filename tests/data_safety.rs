//! Data safety through the `tessera` binary: no spelling of a path lets a run change an
//! array it reads, a group around it, the working directory or a user's file. Every test
//! hashes the files it protects before and after, whether the run succeeds or is refused.

mod common;

use common::{copy_tree, Rng, TempDir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn tessera(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("TESSERA_FAULT_INJECT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run tessera")
}

/// Run `src` as `job.tsr` in `dir`: (exit code, stderr).
fn run_script(dir: &Path, src: &str) -> (i32, String) {
    run_script_env(dir, src, &[])
}

fn run_script_env(dir: &Path, src: &str, env: &[(&str, &str)]) -> (i32, String) {
    std::fs::write(dir.join("job.tsr"), src).unwrap();
    let out = tessera(dir, &["run", "job.tsr", "--quiet", "--workers", "2"], env);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    assert!(!err.contains("panicked"), "tessera panicked:\n{err}");
    (code, err)
}

fn run_ok(dir: &Path, src: &str) {
    let (code, err) = run_script(dir, src);
    assert_eq!(code, 0, "{src}\n{err}");
}

/// Every regular file below `dir` (symlinks recorded as their target, never followed),
/// with a hash of its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    use sha2::{Digest, Sha256};
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            if e.file_name() == "job.tsr" {
                // The script each run is given, rewritten by the test itself.
                continue;
            }
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("-> {}", target.display()));
            } else if t.is_dir() {
                out.insert(rel.clone(), "dir".into());
                walk(base, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(rel, format!("{:x}", Sha256::digest(&bytes)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The entries of `snap` below `prefix` (the files of one protected array).
fn under(snap: &BTreeMap<PathBuf, String>, prefix: &str) -> BTreeMap<PathBuf, String> {
    snap.iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .map(|(p, h)| (p.clone(), h.clone()))
        .collect()
}

/// A workspace: `a.zarr` (8x8 f32, chunks 4x4), a group `grp` holding `grp/inner`, a user
/// file `notes.txt`, a directory `sub`, and symlinks `link.zarr -> a.zarr`, `up -> .`
/// (the workspace itself, absolute) and `sub/back -> ..`.
fn workspace(tag: &str) -> TempDir {
    let ws = TempDir::new(tag);
    let d = ws.path();
    run_ok(
        d,
        "random((8, 8), chunks=(4, 4), seed=1).write(\"a.zarr\")\n\
         random((6, 6), chunks=(3, 3), seed=2).write(\"grp/inner\")\n",
    );
    std::fs::write(
        d.join("grp/zarr.json"),
        r#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#,
    )
    .unwrap();
    std::fs::write(d.join("notes.txt"), "my notes\n").unwrap();
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::os::unix::fs::symlink(d.join("a.zarr"), d.join("link.zarr")).unwrap();
    std::os::unix::fs::symlink(d, d.join("up")).unwrap();
    std::os::unix::fs::symlink("..", d.join("sub/back")).unwrap();
    std::fs::remove_file(d.join("job.tsr")).unwrap();
    ws
}

/// The spellings of `a.zarr` in a workspace.
fn spellings_of_a(d: &Path) -> Vec<String> {
    vec![
        "a.zarr".into(),
        "./a.zarr".into(),
        "a.zarr/".into(),
        ".//a.zarr//".into(),
        "sub/../a.zarr".into(),
        "grp/inner/../../a.zarr".into(),
        d.join("a.zarr").display().to_string(),
        format!("{}/./a.zarr/", d.display()),
        "link.zarr".into(),
        "link.zarr/".into(),
        "up/a.zarr".into(),
        "sub/back/a.zarr".into(),
        "up/link.zarr".into(),
    ]
}

fn code_of(err: &str) -> Option<String> {
    let i = err.find("[E")?;
    Some(err[i + 1..i + 6].to_string())
}

#[test]
fn the_same_array_under_another_name_is_one_array() {
    let ws = workspace("same");
    let d = ws.path();
    let before = snapshot(d);
    // Written over the input, whole, without `overwrite`: refused, nothing touched.
    for s in spellings_of_a(d) {
        for src in [
            format!("let x = zarr(\"a.zarr\")\nx.map(gaussian(2)).write(\"{s}\")\n"),
            format!("let x = zarr(\"{s}\")\n(x * 2).write(\"./a.zarr\")\n"),
        ] {
            let (code, err) = run_script(d, &src);
            assert_eq!(code, 1, "{src}\n{err}");
            assert_eq!(code_of(&err).as_deref(), Some("E0408"), "{src}\n{err}");
            assert!(err.contains("job.tsr:2:"), "no span: {err}");
            assert!(err.contains("overwrite=true"), "{err}");
        }
    }
    assert_eq!(snapshot(d), before);
    // With `overwrite=true` or a region it is an update in place, under every spelling:
    // the array named (never a symlink to it) ends as the out-of-place run leaves a copy.
    run_ok(
        d,
        "let x = zarr(\"a.zarr\")\nx.map(gaussian(2)).write(\"whole.zarr\")\n(x + 1).write(\"part.zarr\", region=(0:4, 0:4), like=x)\n",
    );
    let reference = |name: &str| -> BTreeMap<PathBuf, String> {
        under(&snapshot(d), name)
            .into_iter()
            .filter(|(p, _)| !p.ends_with(".tessera-resume.log"))
            .filter_map(|(p, h)| Some((p.strip_prefix(name).ok()?.to_path_buf(), h)))
            .collect()
    };
    let whole = reference("whole.zarr");
    // The region reference: the input with the region replaced.
    std::fs::remove_dir_all(d.join("part.zarr")).unwrap();
    copy_tree(&d.join("a.zarr"), &d.join("part.zarr"));
    run_ok(
        d,
        "let x = zarr(\"a.zarr\")\n(x + 1).write(\"part.zarr\", region=(0:4, 0:4))\n",
    );
    let part = reference("part.zarr");
    let pristine = d.join("pristine.zarr");
    copy_tree(&d.join("a.zarr"), &pristine);
    for s in spellings_of_a(d) {
        for (src, want) in [
            (
                format!(
                    "let x = zarr(\"a.zarr\")\nx.map(gaussian(2)).write(\"{s}\", overwrite=true)\n"
                ),
                &whole,
            ),
            (
                format!("let x = zarr(\"{s}\")\n(x + 1).write(\"./a.zarr\", region=(0:4, 0:4))\n"),
                &part,
            ),
        ] {
            run_ok(d, &src);
            assert!(
                std::fs::symlink_metadata(d.join("link.zarr"))
                    .unwrap()
                    .file_type()
                    .is_symlink(),
                "{src}: the symlink was replaced"
            );
            assert_eq!(&reference("a.zarr"), want, "{src}");
            std::fs::remove_dir_all(d.join("a.zarr")).unwrap();
            copy_tree(&pristine, &d.join("a.zarr"));
        }
    }
    for extra in ["whole.zarr", "part.zarr", "pristine.zarr"] {
        std::fs::remove_dir_all(d.join(extra)).unwrap();
    }
    let after = snapshot(d);
    assert_eq!(
        after
            .iter()
            .filter(|(p, _)| !p.ends_with(".tessera-resume.log"))
            .collect::<Vec<_>>(),
        before
            .iter()
            .filter(|(p, _)| !p.ends_with(".tessera-resume.log"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn nested_arrays_are_refused_both_ways() {
    let ws = workspace("nested");
    let d = ws.path();
    let before = snapshot(d);
    let read_then_write = |input: &str, output: &str, overwrite: bool| {
        format!("let x = zarr(\"{input}\")\n(x + 1).write(\"{output}\", overwrite={overwrite})\n")
    };
    let cases = [
        // An output that is a group around the input.
        read_then_write("grp/inner", "grp", true),
        read_then_write("./grp/inner/", "grp/", true),
        read_then_write("grp/inner", "up/grp", true),
        read_then_write("grp//inner", "sub/../grp", false),
        read_then_write("grp/inner", "sub/back/grp", true),
        // An output inside the input.
        read_then_write("grp/inner", "grp/inner/x.zarr", false),
        read_then_write("a.zarr", "link.zarr/more.zarr", false),
        read_then_write("a.zarr", "a.zarr/c/new.zarr", true),
        // An input inside (or around) an output written earlier.
        "zeros((2, 2)).write(\"grp\", overwrite=true)\nprint(zarr(\"grp/inner\").shape)\n"
            .to_string(),
        "zeros((2, 2)).write(\"a.zarr/x.zarr\")\nprint(zarr(\"./a.zarr\").shape)\n".to_string(),
    ];
    for src in cases {
        let (code, err) = run_script(d, &src);
        assert_eq!(code, 1, "{src}\n{err}");
        assert_eq!(code_of(&err).as_deref(), Some("E0409"), "{src}\n{err}");
    }
    // Two outputs, one inside the other, in either order.
    for (a, b) in [
        ("o.zarr", "o.zarr/inner"),
        ("o.zarr/inner", "./o.zarr"),
        ("o.zarr", "o.zarr.tessera-tmp/x"),
    ] {
        let src = format!("zeros((2, 2)).write(\"{a}\")\nones((2, 2)).write(\"{b}\")\n");
        let (code, err) = run_script(d, &src);
        assert_eq!(code, 1, "{src}\n{err}");
        assert_eq!(code_of(&err).as_deref(), Some("E0409"), "{src}\n{err}");
    }
    assert_eq!(snapshot(d), before);
}

#[test]
fn the_working_directory_and_its_ancestors_are_never_outputs() {
    let ws = workspace("cwd");
    let d = ws.path();
    // A Zarr array as the working directory: overwriting "." would delete the script too.
    let b = d.join("b.zarr");
    run_ok(d, "zeros((4, 4)).write(\"b.zarr\")\n");
    std::fs::write(b.join("script.tsr"), "").unwrap();
    let before = snapshot(d);
    let parent = d.parent().unwrap().display().to_string();
    let here = d.display().to_string();
    for (cwd, out) in [
        (d, "."),
        (d, "./"),
        (d, ""),
        (d, ".."),
        (d, "../.."),
        (d, "b.zarr/."),
        (d, "b.zarr/.."),
        (d, "sub/.."),
        (d, here.as_str()),
        (d, parent.as_str()),
        (d, "up"),
        (d, "/"),
        (b.as_path(), "."),
        (b.as_path(), "../b.zarr"),
        (b.as_path(), ".."),
    ] {
        for overwrite in [true, false] {
            let src = format!("zeros((4, 4)).write(\"{out}\", overwrite={overwrite})\n");
            let (code, err) = run_script(cwd, &src);
            assert_eq!(code, 1, "{out:?} in {}\n{err}", cwd.display());
            assert_eq!(code_of(&err).as_deref(), Some("E0410"), "{out:?}\n{err}");
            std::fs::remove_file(cwd.join("job.tsr")).unwrap();
        }
    }
    assert_eq!(snapshot(d), before);
}

#[test]
fn overwrite_never_deletes_a_users_files() {
    let ws = workspace("owned");
    let d = ws.path();
    run_ok(d, "zeros((4, 4)).write(\"b.zarr\")\n");
    std::fs::write(d.join("b.zarr/notes.txt"), "keep me\n").unwrap();
    std::fs::create_dir_all(d.join("b.zarr/c/mine")).unwrap();
    let before = snapshot(d);
    for out in ["b.zarr", "./b.zarr/", "sub/../b.zarr"] {
        let src = format!("ones((4, 4)).write(\"{out}\", overwrite=true)\n");
        let (code, err) = run_script(d, &src);
        assert_eq!(code, 1, "{err}");
        assert_eq!(code_of(&err).as_deref(), Some("E0411"), "{err}");
        assert!(err.contains("notes.txt") || err.contains("mine"), "{err}");
    }
    std::fs::remove_file(d.join("job.tsr")).unwrap();
    assert_eq!(snapshot(d), before);
    // Without the user's files the array is replaced, and only the array changes.
    std::fs::remove_file(d.join("b.zarr/notes.txt")).unwrap();
    std::fs::remove_dir(d.join("b.zarr/c/mine")).unwrap();
    let others = snapshot(d);
    run_ok(d, "ones((4, 4)).write(\"b.zarr\", overwrite=true)\n");
    let (ones, _) = common::read_all(&d.join("b.zarr"));
    assert!((0..ones.len()).all(|i| ones.get_f64(i) == 1.0));
    assert!(!d.join("b.zarr.tessera-tmp").exists());
    let after = snapshot(d);
    for (p, h) in &others {
        if !p.starts_with("b.zarr") {
            assert_eq!(after.get(p), Some(h), "{} changed", p.display());
        }
    }
}

#[test]
fn a_failed_overwrite_leaves_the_old_array_intact() {
    let ws = workspace("failed");
    let d = ws.path();
    run_ok(
        d,
        "random((8, 8), chunks=(2, 2), seed=5).write(\"b.zarr\")\n",
    );
    let before = under(&snapshot(d), "b.zarr");
    for fault in [
        "write:1:always",
        "write:3:always",
        "write:16:always",
        "read:2:always",
    ] {
        let (code, err) = run_script_env(
            d,
            "(zarr(\"a.zarr\") * 3).write(\"b.zarr\", chunks=(2, 2), overwrite=true)\n",
            &[("TESSERA_FAULT_INJECT", fault)],
        );
        assert_eq!(code, 1, "{fault}: {err}");
        assert_eq!(under(&snapshot(d), "b.zarr"), before, "{fault}: {err}");
    }
    // `--resume` continues the replacement beside the old array, then swaps it in.
    let staged = d.join("b.zarr.tessera-tmp/output.zarr/.tessera-resume.log");
    assert!(
        staged.is_file(),
        "the interrupted replacement keeps its record"
    );
    let out = tessera(d, &["run", "job.tsr", "--quiet", "--resume"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, _) = common::read_all(&d.join("a.zarr"));
    let (b, _) = common::read_all(&d.join("b.zarr"));
    assert!((0..a.len()).all(|i| b.get_f64(i) == (a.get_f64(i) as f32 * 3.0) as f64));
    assert!(!d.join("b.zarr.tessera-tmp").exists());
}

#[test]
fn a_temporary_directory_tessera_did_not_create_is_never_used() {
    let ws = workspace("foreign-tmp");
    let d = ws.path();
    std::fs::create_dir_all(d.join("o.zarr.tessera-tmp")).unwrap();
    std::fs::write(d.join("o.zarr.tessera-tmp/thesis.tex"), "years of work\n").unwrap();
    run_ok(d, "zeros((4, 4)).write(\"b.zarr\")\n");
    std::fs::create_dir_all(d.join("b.zarr.tessera-tmp")).unwrap();
    let before = snapshot(d);
    for src in [
        "zeros((4, 4)).write(\"o.zarr\")\n",
        "zeros((4, 4)).write(\"./o.zarr/\", overwrite=true)\n",
        "zeros((4, 4)).write(\"b.zarr\", overwrite=true)\n",
        "ones((2, 2)).write(\"b.zarr\", region=(0:2, 0:2))\n",
    ] {
        let (code, err) = run_script(d, src);
        assert_eq!(code, 1, "{src}\n{err}");
        assert_eq!(code_of(&err).as_deref(), Some("E0411"), "{src}\n{err}");
        assert!(err.contains(".tessera-tmp"), "{err}");
    }
    std::fs::remove_file(d.join("job.tsr")).unwrap();
    assert_eq!(snapshot(d), before);
}

#[test]
fn region_writes_never_follow_a_symlink_out_of_the_store() {
    let ws = workspace("symlink");
    let d = ws.path();
    run_ok(d, "zeros((4, 4), chunks=(2, 2)).write(\"o.zarr\")\n");
    run_ok(d, "ones((4, 4), chunks=(2, 2)).write(\"elsewhere.zarr\")\n");
    // The chunk directory of o.zarr is a link into another array.
    std::fs::remove_dir_all(d.join("o.zarr/c")).ok();
    std::os::unix::fs::symlink(d.join("elsewhere.zarr/c"), d.join("o.zarr/c")).unwrap();
    let before = snapshot(d);
    for out in ["o.zarr", "./o.zarr", "o.zarr/"] {
        let src = format!("full((2, 2), 7.0).write(\"{out}\", region=(0:2, 0:2))\n");
        let (code, err) = run_script(d, &src);
        assert_eq!(code, 1, "{err}");
        assert_eq!(code_of(&err).as_deref(), Some("E0412"), "{err}");
        assert!(err.contains("its entry c is a symbolic link"), "{err}");
    }
    std::fs::remove_file(d.join("job.tsr")).unwrap();
    assert_eq!(snapshot(d), before);
}

#[test]
fn two_spellings_of_one_output_merge_into_one_output() {
    let py = std::env::var("TESSERA_PYTHON").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".venv/bin/python")
            .display()
            .to_string()
    });
    let ws = workspace("merge");
    let d = ws.path();
    let abs = d.join("o.zarr").display().to_string();
    let pairs = [
        ("o.zarr", "./o.zarr"),
        ("./o.zarr/", "sub/../o.zarr"),
        ("o.zarr", abs.as_str()),
        ("up/o.zarr", "o.zarr"),
    ];
    for (first, second) in pairs {
        let _ = std::fs::remove_dir_all(d.join("o.zarr"));
        let src = format!(
            "let x = zarr(\"a.zarr\")\n\
             (x * 2).write(\"{first}\", region=(0:4, 0:8), like=x)\n\
             (x + 1).write(\"{second}\", region=(4:8, 2:6), like=x)\n\
             x[0:2, 0:2].write(\"{first}\", region=(6:8, 6:8), like=x)\n"
        );
        run_ok(d, &src);
        let code = r#"
import sys, numpy as np, zarr
a = np.asarray(zarr.open_array("a.zarr", mode="r")[...])
o = np.asarray(zarr.open_array("o.zarr", mode="r")[...])
e = np.zeros_like(a)
e[0:4, 0:8] = (a * 2)[0:4, 0:8]
e[4:8, 2:6] = (a + 1)[4:8, 2:6]
e[6:8, 6:8] = a[0:2, 0:2]
assert o.dtype == a.dtype, (o.dtype, a.dtype)
np.testing.assert_array_equal(o, e)
print("merged ok")
"#;
        std::fs::write(d.join("oracle.py"), code).unwrap();
        let out = Command::new(&py)
            .arg("oracle.py")
            .current_dir(d)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("the numpy oracle needs TESSERA_PYTHON ({py}): {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("merged ok"),
            "{first} + {second}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(d.join("oracle.py")).unwrap();
    }
}

#[test]
fn file_outputs_replace_an_existing_file_only_with_overwrite() {
    let ws = workspace("files");
    let d = ws.path();
    std::fs::write(d.join("p.png"), "old picture").unwrap();
    std::fs::write(d.join("t.csv"), "old table").unwrap();
    let before = snapshot(d);
    let refused = [
        ("zarr(\"a.zarr\").preview(\"p.png\")\n", "E0404"),
        (
            "zarr(\"a.zarr\").preview(\"./p.png\", overwrite=false)\n",
            "E0404",
        ),
        (
            "regionprops(zarr(\"a.zarr\") > 0.5).write_csv(\"t.csv\")\n",
            "E0404",
        ),
        (
            "regionprops(zarr(\"a.zarr\") > 0.5).write_csv(\"sub/../t.csv\")\n",
            "E0404",
        ),
        // Never inside an array the program reads.
        (
            "zarr(\"a.zarr\").preview(\"a.zarr/zarr.json\", overwrite=true)\n",
            "E0409",
        ),
        (
            "zarr(\"a.zarr\").preview(\"link.zarr/c/0/0\", overwrite=true)\n",
            "E0409",
        ),
        (
            "regionprops(zarr(\"a.zarr\") > 0.5).write_csv(\"a.zarr/zarr.json\", overwrite=true)\n",
            "E0409",
        ),
        (
            "zarr(\"a.zarr\").preview(\"sub\", overwrite=true)\n",
            "E0405",
        ),
        ("zarr(\"a.zarr\").preview(\".\", overwrite=true)\n", "E0410"),
    ];
    for (src, want) in refused {
        let src = src.replace(
            "regionprops(zarr(\"a.zarr\") > 0.5)",
            "regionprops(label(zarr(\"a.zarr\") > 0.5))",
        );
        let (code, err) = run_script(d, &src);
        assert_eq!(code, 1, "{src}\n{err}");
        assert_eq!(code_of(&err).as_deref(), Some(want), "{src}\n{err}");
        std::fs::remove_file(d.join("job.tsr")).unwrap();
    }
    assert_eq!(snapshot(d), before);
    run_ok(d, "zarr(\"a.zarr\").preview(\"p.png\", overwrite=true)\n");
    run_ok(
        d,
        "regionprops(label(zarr(\"a.zarr\") > 0.5)).write_csv(\"t.csv\", overwrite=true)\n",
    );
    assert!(std::fs::read(d.join("p.png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
    assert!(std::fs::read_to_string(d.join("t.csv"))
        .unwrap()
        .starts_with("label"));
}

/// A random spelling of the workspace path `p` (relative, like "grp/inner").
fn respell(rng: &mut Rng, d: &Path, p: &str) -> String {
    let mut s = p.to_string();
    for _ in 0..(rng.next() % 3 + 1) {
        s = match rng.next() % 9 {
            0 => format!("./{s}"),
            1 => format!("{s}/"),
            2 => format!("sub/../{s}"),
            3 if !s.starts_with('/') => format!("{}/{s}", d.display()),
            4 if !s.starts_with('/') => format!("up/{s}"),
            5 if !s.starts_with('/') => format!("sub/back/{s}"),
            6 => s.replacen('/', "//", 1),
            7 => s.replacen("a.zarr", "link.zarr", 1),
            _ => s.replacen('/', "/./", 1),
        };
    }
    s
}

#[test]
fn fuzz_path_spellings_never_modify_an_input() {
    let mut ws = workspace("fuzz");
    let inputs = ["a.zarr", "grp/inner"];
    let outputs = [
        "a.zarr",
        "grp",
        "grp/inner",
        "grp/inner/x.zarr",
        "a.zarr/c",
        "new.zarr",
        "grp/new.zarr",
        ".",
        "..",
        "sub",
        "",
    ];
    let regions = ["", ", region=(0:2, 0:2)", ", region=(1:3, :)"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut refused = 0;
    let mut ran = 0;
    for case in 0..120 {
        let d = ws.path().to_path_buf();
        let d = d.as_path();
        let input = *rng.pick(&inputs);
        let output = *rng.pick(&outputs);
        let ispell = respell(&mut rng, d, input);
        let ospell = if output.is_empty() {
            String::new()
        } else {
            respell(&mut rng, d, output)
        };
        let overwrite = rng.next().is_multiple_of(2);
        let region = *rng.pick(&regions);
        let protected: Vec<&str> = vec![input, "notes.txt", "up", "link.zarr", "sub"];
        let before = snapshot(d);
        let src = format!(
            "let x = zarr(\"{ispell}\")\n(x[0:4, 0:4] + 1).write(\"{ospell}\", overwrite={overwrite}{region})\n"
        );
        let (code, err) = run_script(d, &src);
        assert!(
            code == 0 || code == 1,
            "case {case}: {src}\nexit {code}\n{err}"
        );
        if code == 0 {
            ran += 1;
        } else {
            refused += 1;
            assert!(code_of(&err).is_some(), "case {case}: no code\n{err}");
        }
        let after = snapshot(d);
        // Writing the array it reads, whole with `overwrite` or a region of it, is an
        // update in place: the input changes, as the script asked.
        let in_place = output == input && (overwrite || !region.is_empty());
        for p in protected.iter().filter(|p| !(in_place && **p == input)) {
            assert_eq!(
                under(&after, p),
                under(&before, p),
                "case {case}: {src}\nchanged {p}; exit {code}\n{err}"
            );
        }
        // Nested arrays, or reading and writing one array other than as an update in
        // place, are never allowed.
        let nested = |o: &str, i: &str| {
            o == i
                || i.starts_with(&format!("{o}/"))
                || o.starts_with(&format!("{i}/"))
                || o.is_empty()
                || o == "."
                || o == ".."
        };
        if nested(output, input) && !in_place {
            assert_eq!(code, 1, "case {case}: {src} ran\n{err}");
        }
        if in_place && region.is_empty() {
            // (A region of another shape than the (4, 4) data is refused.)
            assert_eq!(code, 0, "case {case}: {src} was refused\n{err}");
        }
        // Outputs made by this case go, so the next starts from the same workspace.
        for o in ["new.zarr", "grp/new.zarr", "new.zarr.tessera-tmp"] {
            let _ = std::fs::remove_dir_all(d.join(o));
        }
        if code == 0 && (in_place || ["a.zarr", "grp", "grp/inner"].contains(&output)) {
            // An array the case did not read was legitimately replaced: start afresh.
            ws = workspace("fuzz");
        }
    }
    eprintln!("fuzz: {ran} runs succeeded, {refused} refused");
    assert!(ran > 0 && refused > 0, "{ran} ran, {refused} refused");
}
