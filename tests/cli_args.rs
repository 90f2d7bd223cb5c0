//! Script parameters (`--arg name=value` read by `arg(name, default)`), the per-output
//! summary `tessera run` ends with, and the messages around resuming.

mod common;

use common::{read_all, TempDir};
use std::path::Path;
use std::process::Output;

use common::run_cli as tessera;

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const JOB: &str = "let n = arg(\"n\", 4)\n\
                   let v = arg(\"v\", 1.5)\n\
                   let out = arg(\"out\", \"o.zarr\")\n\
                   let neg = arg(\"neg\", false)\n\
                   let x = full((n, n + 1), v, dtype=\"f64\", chunks=(2, 2))\n\
                   if neg { (0 - x).write(out) } else { x.write(out) }\n";

fn setup(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::write(dir.path().join("job.tsr"), JOB).unwrap();
    dir
}

fn values(p: &Path) -> (Vec<f64>, Vec<u64>) {
    let (b, s) = read_all(p);
    ((0..b.len()).map(|i| b.get_f64(i)).collect(), s)
}

#[test]
fn args_are_typed_from_their_defaults() {
    let dir = setup("args-typed");
    let d = dir.path();
    let o = tessera(d, &["run", "job.tsr"]);
    assert!(o.status.success(), "{}", err(&o));
    let (v, s) = values(&d.join("o.zarr"));
    assert_eq!(s, [4, 5]);
    assert!(v.iter().all(|x| *x == 1.5));
    for (given, n, val, path) in [
        (vec!["n=3", "v=2"], 3, 2.0, "o2.zarr"),
        (vec!["n= 6", "v=-0.25", "neg=true"], 6, -0.25, "o3.zarr"),
        (vec!["n=1_0", "v=1e1", "neg=0"], 10, 10.0, "o4.zarr"),
        (
            vec!["v=inf", "n=2", "neg=FALSE"],
            2,
            f64::INFINITY,
            "o5.zarr",
        ),
    ] {
        let mut a = vec!["run", "job.tsr"];
        for g in &given {
            a.extend(["--arg", g]);
        }
        let outp = format!("out={path}");
        a.extend(["--arg", &outp]);
        let o = tessera(d, &a);
        assert!(o.status.success(), "{given:?}: {}", err(&o));
        let (v, s) = values(&d.join(path));
        assert_eq!(s, [n, n + 1], "{given:?}");
        let neg = given.contains(&"neg=true");
        let want = if neg { -val } else { val };
        assert!(v.iter().all(|x| *x == want), "{given:?}: {v:?}");
    }
}

#[test]
fn a_value_that_does_not_parse_names_the_arg() {
    let dir = setup("args-bad");
    let d = dir.path();
    for (given, ty) in [
        ("n=abc", "an int"),
        ("n=2.5", "an int"),
        ("n=99999999999999999999", "an int"),
        ("v=fast", "a float"),
        ("neg=maybe", "a bool"),
    ] {
        let o = tessera(d, &["run", "job.tsr", "--arg", given]);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{given}: {e}");
        assert!(e.contains("E0105"), "{e}");
        assert!(e.contains(&format!("--arg {given} is not {ty}")), "{e}");
        // The span points at the arg(...) call that reads it.
        let name = given.split('=').next().unwrap();
        assert!(
            e.contains(&format!("argument \"{name}\" is read here")),
            "{e}"
        );
        assert!(!e.contains("never reads"), "{e}");
        assert!(!d.join("o.zarr").exists());
    }
}

#[test]
fn an_arg_the_script_never_reads_is_refused_listing_those_it_reads() {
    let dir = setup("args-unread");
    let d = dir.path();
    for cmd in ["run", "check", "plan"] {
        let o = tessera(d, &[cmd, "job.tsr", "--arg", "sigma=3", "--arg", "nn=2"]);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {e}");
        assert!(e.contains("E0105"), "{e}");
        assert!(
            e.contains("--arg sigma is given but the script never reads it"),
            "{e}"
        );
        assert!(e.contains("the script reads: n, v, out, neg"), "{e}");
        assert!(e.contains("did you mean --arg n=...?"), "{e}");
    }
    std::fs::write(d.join("none.tsr"), "ones((2, 2)).write(\"p.zarr\")\n").unwrap();
    let o = tessera(d, &["run", "none.tsr", "--arg", "x=1"]);
    assert!(
        err(&o).contains("the script reads no arguments"),
        "{}",
        err(&o)
    );
    assert!(!d.join("p.zarr").exists());
}

#[test]
fn an_arg_without_default_must_be_given() {
    let dir = TempDir::new("args-required");
    let d = dir.path();
    std::fs::write(
        d.join("job.tsr"),
        "let src = arg(\"input\")\nzarr(src).write(arg(\"output\", \"b.zarr\"))\n",
    )
    .unwrap();
    let o = tessera(d, &["run", "job.tsr"]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("E0105"), "{e}");
    assert!(
        e.contains("argument \"input\" has no default and was not given"),
        "{e}"
    );
    std::fs::write(
        d.join("mk.tsr"),
        "ones((3, 3), dtype=\"u8\").write(\"a.zarr\")\n",
    )
    .unwrap();
    assert!(tessera(d, &["run", "mk.tsr"]).status.success());
    let o = tessera(d, &["run", "job.tsr", "--arg", "input=a.zarr"]);
    assert!(o.status.success(), "{}", err(&o));
    let (v, s) = values(&d.join("b.zarr"));
    assert_eq!((v, s), (vec![1.0; 9], vec![3, 3]));
    // Malformed options are usage errors.
    for bad in ["input", "=a.zarr"] {
        let o = tessera(d, &["run", "job.tsr", "--arg", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", err(&o));
        assert!(err(&o).contains("E0105"), "{}", err(&o));
    }
    let o = tessera(
        d,
        &["run", "job.tsr", "--arg", "input=a", "--arg", "input=b"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("given twice"), "{}", err(&o));
    // A default that is not a scalar.
    std::fs::write(d.join("bad.tsr"), "let s = arg(\"s\", (1, 2))\n").unwrap();
    let o = tessera(d, &["check", "bad.tsr"]);
    assert!(err(&o).contains("E0105"), "{}", err(&o));
}

#[test]
fn check_lists_the_args() {
    let dir = setup("args-check");
    let d = dir.path();
    let o = tessera(
        d,
        &["check", "job.tsr", "--arg", "v=3", "--arg", "out=x.zarr"],
    );
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let args: Vec<&str> = text.lines().filter(|l| l.starts_with("arg ")).collect();
    assert_eq!(
        args,
        [
            "arg n: int = 4 (default)",
            "arg v: float = 3.0 (given; default 1.5)",
            "arg out: str = \"x.zarr\" (given; default \"o.zarr\")",
            "arg neg: bool = false (default)",
        ],
        "{text}"
    );
    let o = tessera(d, &["plan", "job.tsr", "--arg", "n=8"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("[8, 9]"), "{}", out(&o));
}

#[test]
fn run_ends_with_one_line_per_output() {
    let dir = TempDir::new("args-summary");
    let d = dir.path();
    std::fs::write(
        d.join("job.tsr"),
        "let x = ones((64, 48), dtype=\"f32\", chunks=(16, 16))\n\
         x.write(\"b.zarr\")\n\
         (x * 2).astype(\"u16\").write(\"c.zarr\", region=(0:16, 0:16))\n\
         arange(5).write(\"d.zarr\")\n",
    )
    .unwrap();
    let o = tessera(d, &["run", "job.tsr"]);
    assert!(o.status.success(), "{}", err(&o));
    let e = err(&o);
    let wrote: Vec<&str> = e.lines().filter(|l| l.starts_with("wrote ")).collect();
    assert_eq!(
        wrote,
        [
            "wrote b.zarr  float32 (64, 48)  12 chunks",
            "wrote c.zarr  uint16 (64, 48)  1 chunk",
            "wrote d.zarr  int64 (5,)  1 chunk",
        ],
        "{e}"
    );
    let o = tessera(d, &["run", "job.tsr", "--quiet"]);
    // Existing outputs: refused, and nothing but the error.
    assert_eq!(o.status.code(), Some(1));
    let o = tessera(d, &["run", "job.tsr", "--quiet", "--resume"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(err(&o), "");
    let o = tessera(d, &["run", "job.tsr", "--resume"]);
    let e = err(&o);
    assert!(
        e.contains("wrote b.zarr  float32 (64, 48)  0 chunks (12 already complete)"),
        "{e}"
    );
}

#[test]
fn a_changed_arg_refuses_to_resume() {
    let dir = setup("args-resume");
    let d = dir.path();
    let o = tessera(d, &["run", "job.tsr", "--arg", "v=2"]);
    assert!(o.status.success(), "{}", err(&o));
    // Same args (given or the same default value): resumes, nothing left to compute.
    let o = tessera(d, &["run", "job.tsr", "--resume", "--arg", "v=2.0"]);
    assert!(o.status.success(), "{}", err(&o));
    for changed in [vec!["--arg", "v=3"], vec![]] {
        let mut a = vec!["run", "job.tsr", "--resume"];
        a.extend(changed.iter().copied());
        let o = tessera(d, &a);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains("E0505"), "{e}");
        assert!(
            e.contains("the script's arguments changed since the interrupted run"),
            "{e}"
        );
        assert!(e.contains("v=2.0 then"), "{e}");
    }
    let (v, _) = values(&d.join("o.zarr"));
    assert!(v.iter().all(|x| *x == 2.0));
}

#[test]
fn the_engine_and_repl_read_args_through_the_same_path() {
    let mut e = tessera::Engine::new();
    e.set_args([("k".to_string(), "7".to_string())]);
    let r = e.eval("print(arg(\"k\", 1) * 2)").unwrap();
    assert_eq!(r.printed, ["14"]);
    let r = e.eval("print(arg(\"other\", \"d\"))").unwrap();
    assert_eq!(r.printed, ["d"]);
    let names: Vec<&str> = e.args_read().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["k", "other"]);
    let c = e.check("s.tsr", "let a = arg(\"k\", 0.5)\n").unwrap();
    assert_eq!(c.args.len(), 1);
    assert_eq!(c.args[0].value, "7.0");
    let errs = e.check("s.tsr", "let a = 1\n").unwrap_err();
    assert!(errs.iter().any(|d| d.code == "E0105"));
    assert!(tessera::lower::registry::Registry::standard()
        .function("arg")
        .is_some());
}
