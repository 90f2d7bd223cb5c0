//! The runtime under real conditions, through the `tessera` binary in a subprocess:
//! resuming after `kill -9` and Ctrl-C, refusing to resume another plan, retries of
//! injected faults, and peak memory under `--memory`.

mod common;

use common::{report_counts as counts, TempDir};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const RECORD: &str = ".tessera-resume.log";

fn tessera(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.current_dir(dir).args(args).env("TESSERA_REPORT", "1");
    c.env_remove("TESSERA_FAULT_INJECT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run tessera")
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tessera failed:\n{err}");
    err
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    common::array_files(dir)
}

fn temp_files(dir: &Path) -> Vec<String> {
    files(dir)
        .into_keys()
        .filter(|k| k.contains(".tmp."))
        .collect()
}

/// Distinct chunks a record lists as finished (complete lines only).
fn recorded(out: &Path) -> u64 {
    common::recorded_in(&out.join(RECORD))
}

/// 16 planes of 1024 x 1024 f32, 256 chunks; the job blurs each plane (a few seconds
/// with one worker in a debug build).
const TASKS: u64 = 256;
const GEN: &str = r#"random((16, 1024, 1024), dtype="f32", chunks=(1, 256, 256), seed=7).write("in.zarr", overwrite=true)
"#;
const JOB: &str = r#"let x = zarr("in.zarr")
x.map(gaussian((0, 3, 3))).write("out.zarr", overwrite=true)
"#;

/// A workspace with the input, the job script, and the job's uninterrupted output.
fn workspace(tag: &str) -> (TempDir, BTreeMap<String, Vec<u8>>) {
    let ws = TempDir::new(tag);
    std::fs::write(ws.path().join("gen.tsr"), GEN).unwrap();
    std::fs::write(ws.path().join("job.tsr"), JOB).unwrap();
    ok(&tessera(ws.path(), &["run", "gen.tsr", "--quiet"], &[]));
    let err = ok(&tessera(ws.path(), &["run", "job.tsr", "--quiet"], &[]));
    assert_eq!(counts(&err), (TASKS, 0));
    let reference = files(&ws.path().join("out.zarr"));
    std::fs::remove_dir_all(ws.path().join("out.zarr")).unwrap();
    (ws, reference)
}

/// Start the job with one worker and stop it with `signal` once `at_least` chunks are
/// recorded; returns how many chunks the record then lists.
fn interrupt(ws: &Path, signal: i32, at_least: u64) -> u64 {
    let mut child = Command::new(BIN)
        .current_dir(ws)
        .args(["run", "job.tsr", "--quiet", "--workers", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = ws.join("out.zarr");
    loop {
        if recorded(&out) >= at_least {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the job ended ({status}) before it could be interrupted");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the job finished before the signal");
    let n = recorded(&out);
    assert!(n < TASKS, "every chunk was done before the signal");
    n
}

#[test]
fn resume_after_kill_9_recomputes_only_missing_chunks() {
    let (ws, reference) = workspace("kill9");
    let done = interrupt(ws.path(), libc::SIGKILL, 20);
    let err = ok(&tessera(ws.path(), &["run", "job.tsr", "--resume"], &[]));
    assert_eq!(counts(&err), (TASKS - done, done), "{err}");
    assert!(err.contains(&format!("{done} already complete")), "{err}");
    let out = ws.path().join("out.zarr");
    assert!(files(&out) == reference, "resumed output differs");
    assert_eq!(temp_files(&out), Vec::<String>::new());
    // Resuming a finished run computes nothing.
    let err = ok(&tessera(ws.path(), &["run", "job.tsr", "--resume"], &[]));
    assert_eq!(counts(&err), (0, TASKS));
}

#[test]
fn ctrl_c_leaves_a_resumable_output() {
    let (ws, reference) = workspace("sigint");
    let done = interrupt(ws.path(), libc::SIGINT, 10);
    let err = ok(&tessera(ws.path(), &["run", "job.tsr", "--resume"], &[]));
    let (computed, skipped) = counts(&err);
    assert_eq!((computed, skipped), (TASKS - done, done), "{err}");
    assert!(files(&ws.path().join("out.zarr")) == reference);
}

#[test]
fn a_changed_plan_refuses_to_resume_and_no_resume_starts_over() {
    let (ws, reference) = workspace("changed");
    interrupt(ws.path(), libc::SIGKILL, 5);
    let saved = files(&ws.path().join("out.zarr"));
    // The script changed.
    std::fs::write(ws.path().join("job.tsr"), format!("{JOB}# edited\n")).unwrap();
    let out = tessera(ws.path(), &["run", "job.tsr", "--resume"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("E0505"), "{err}");
    assert!(
        err.contains("cannot resume out.zarr: the script changed"),
        "{err}"
    );
    assert!(err.contains("run without --resume"), "{err}");
    assert!(
        files(&ws.path().join("out.zarr")) == saved,
        "a refused resume wrote"
    );
    std::fs::write(ws.path().join("job.tsr"), JOB).unwrap();
    // An input's metadata changed (its chunking).
    let regen = GEN.replace("(1, 256, 256)", "(2, 256, 256)");
    std::fs::write(ws.path().join("gen2.tsr"), regen).unwrap();
    ok(&tessera(ws.path(), &["run", "gen2.tsr", "--quiet"], &[]));
    let out = tessera(ws.path(), &["run", "job.tsr", "--resume"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the metadata of input \"in.zarr\" changed"),
        "{err}"
    );
    // Without --resume the record is discarded and everything is recomputed (the new
    // input's chunks are two planes deep, so the output's are too).
    let err = ok(&tessera(ws.path(), &["run", "job.tsr"], &[]));
    assert_eq!(counts(&err), (TASKS / 2, 0));
    ok(&tessera(ws.path(), &["run", "gen.tsr", "--quiet"], &[]));
    let err = ok(&tessera(ws.path(), &["run", "job.tsr"], &[]));
    assert_eq!(counts(&err), (TASKS, 0));
    assert!(files(&ws.path().join("out.zarr")) == reference);
}

#[test]
fn a_transient_write_fault_is_retried() {
    let (ws, reference) = workspace("retry");
    let err = ok(&tessera(
        ws.path(),
        &["run", "job.tsr", "--workers", "1"],
        &[("TESSERA_FAULT_INJECT", "write:3")],
    ));
    assert_eq!(counts(&err), (TASKS, 0));
    assert!(files(&ws.path().join("out.zarr")) == reference);
    let err = ok(&tessera(
        ws.path(),
        &["run", "job.tsr", "--workers", "2"],
        &[("TESSERA_FAULT_INJECT", "read:5")],
    ));
    assert_eq!(counts(&err), (TASKS, 0));
    assert!(files(&ws.path().join("out.zarr")) == reference);
}

#[test]
fn a_persistent_write_fault_stops_the_run_cleanly_and_resumes() {
    let (ws, reference) = workspace("persistent");
    let out = tessera(
        ws.path(),
        &["run", "job.tsr", "--workers", "1"],
        &[("TESSERA_FAULT_INJECT", "write:40:always")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("E0407"), "{err}");
    // The message names the output, the chunk, its region and the cause.
    let at = err.find("error writing out.zarr chunk [").expect(&err) + 30;
    let idx: Vec<u64> = err[at..at + err[at..].find(']').unwrap()]
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    let region = format!(
        "(region ({}:{}, {}:{}, {}:{}))",
        idx[0],
        idx[0] + 1,
        idx[1] * 256,
        idx[1] * 256 + 256,
        idx[2] * 256,
        idx[2] * 256 + 256
    );
    assert!(err.contains(&region), "{region} not in {err}");
    assert!(err.contains("Input/output error"), "{err}");
    assert!(err.contains("failed 4 times"), "{err}");
    assert!(err.contains("rerun with --resume"), "{err}");
    let outp = ws.path().join("out.zarr");
    assert_eq!(recorded(&outp), 39);
    assert_eq!(temp_files(&outp), Vec::<String>::new());
    let err = ok(&tessera(ws.path(), &["run", "job.tsr", "--resume"], &[]));
    assert_eq!(counts(&err), (TASKS - 39, 39));
    assert!(files(&outp) == reference);
}

fn peak_rss(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("tessera-report:"))
        .unwrap();
    line.split_whitespace()
        .find_map(|t| t.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap()
        * 1024
}

#[test]
fn memory_limit_bounds_peak_rss() {
    let ws = TempDir::new("memory");
    // f64 chunks of 8 MiB; an elementwise chain holds a few of them per task.
    std::fs::write(
        ws.path().join("gen.tsr"),
        r#"random((16, 1024, 1024), dtype="f64", chunks=(1, 1024, 1024), seed=1).write("in.zarr", overwrite=true)
"#,
    )
    .unwrap();
    std::fs::write(
        ws.path().join("job.tsr"),
        r#"let x = zarr("in.zarr")
(sqrt(x * 3.0 + 1.0) - x / 2.0).write("out.zarr", overwrite=true, codec="none")
"#,
    )
    .unwrap();
    ok(&tessera(ws.path(), &["run", "gen.tsr", "--quiet"], &[]));
    let mib = 1u64 << 20;
    std::fs::write(
        ws.path().join("idle.tsr"),
        "let x = zarr(\"in.zarr\")\nprint(x.shape)\n",
    )
    .unwrap();
    let base = peak_rss(&ok(&tessera(ws.path(), &["run", "idle.tsr"], &[])));
    let limit = 96 * mib;
    let err = ok(&tessera(
        ws.path(),
        &["run", "job.tsr", "--workers", "8", "--memory", "96MiB"],
        &[],
    ));
    let limited = peak_rss(&err);
    let err = ok(&tessera(
        ws.path(),
        &["run", "job.tsr", "--workers", "8", "--memory", "64GiB"],
        &[],
    ));
    let free = peak_rss(&err);
    eprintln!(
        "peak RSS: {} MiB idle, {} MiB under --memory 96MiB, {} MiB unlimited (8 workers)",
        base / mib,
        limited / mib,
        free / mib
    );
    // The interpreter itself (code, stdlib, allocator arenas, thread stacks) is `base`.
    assert!(
        limited <= limit + base + 16 * mib,
        "peak {} MiB above the 96 MiB limit",
        limited / mib
    );
    // Without the limit the same run holds far more: the bound above is the limit's doing.
    assert!(
        free > limit + base + 16 * mib,
        "unlimited peak {} MiB: the job does not exercise the limit",
        free / mib
    );
}

#[test]
fn a_staged_rechunk_resumes_in_either_stage() {
    // Under --memory 4MiB with one worker the rechunk runs through an intermediate array
    // of 256 chunks, then writes the 256 output chunks.
    let ws = TempDir::new("staged-resume");
    let gen =
        r#"random((2048, 64, 64), dtype="u16", chunks=(16, 64, 64), seed=5).write("in.zarr")"#;
    let job = r#"zarr("in.zarr").rechunk((2048, 4, 4)).write("out.zarr", overwrite=true)"#;
    std::fs::write(ws.path().join("gen.tsr"), gen).unwrap();
    std::fs::write(ws.path().join("job.tsr"), job).unwrap();
    ok(&tessera(ws.path(), &["run", "gen.tsr", "--quiet"], &[]));
    let args = ["run", "job.tsr", "--memory", "4MiB", "--workers", "1"];
    let plan = tessera(
        ws.path(),
        &["plan", "job.tsr", "--memory", "4MiB", "--workers", "1"],
        &[],
    );
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        plan.contains("write out.zarr.tessera-tmp/rechunk-0-"),
        "{plan}"
    );
    ok(&tessera(ws.path(), &args, &[]));
    let out = ws.path().join("out.zarr");
    let mid = ws.path().join("out.zarr.tessera-tmp");
    assert!(
        !mid.exists(),
        "the intermediate is removed after a successful run"
    );
    let reference = files(&out);
    let (input, _) = common::read_all(&ws.path().join("in.zarr"));
    let (values, _) = common::read_all(&out);
    assert!(values == input, "the staged rechunk changed values");
    // Stop at the 100th chunk write (inside the intermediate) and at the 300th (inside
    // the output), then resume without the fault.
    for (at, mid_done, out_done) in [(100, 99, 0), (300, 256, 43)] {
        std::fs::remove_dir_all(&out).unwrap();
        let fault = format!("write:{at}:always");
        let failed = tessera(
            ws.path(),
            &args,
            &[("TESSERA_FAULT_INJECT", fault.as_str())],
        );
        let err = String::from_utf8_lossy(&failed.stderr);
        assert_eq!(failed.status.code(), Some(1), "{err}");
        assert!(err.contains("rerun with --resume"), "{err}");
        let staged = std::fs::read_dir(&mid)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "zarr"))
            .unwrap();
        assert_eq!(recorded(&staged), mid_done, "{err}");
        assert_eq!(recorded(&out), out_done, "{err}");
        let mut resume = args.to_vec();
        resume.push("--resume");
        let err = ok(&tessera(ws.path(), &resume, &[]));
        // Progress counts chunks of both stages: 256 + 256.
        let skipped = mid_done + out_done;
        assert_eq!(counts(&err), (512 - skipped, skipped), "{err}");
        assert!(
            files(&out) == reference,
            "resumed output differs (fault at write {at})"
        );
        assert!(
            !mid.exists(),
            "the intermediate is removed after the resumed run"
        );
    }
}
