//! Output locks: two runs never write one output at once, a second run is refused naming
//! the holder, locks of dead processes are recovered, locks of other hosts are reported,
//! and every way a run ends releases its locks.

mod common;

use common::{read_all, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn tessera() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.env_remove("TESSERA_REPORT");
    c
}

fn run_in(dir: &Path, script: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("job.tsr"), script).unwrap();
    tessera()
        .current_dir(dir)
        .arg("run")
        .arg("job.tsr")
        .args(extra)
        .output()
        .unwrap()
}

fn spawn_in(dir: &Path, name: &str, script: &str, extra: &[&str]) -> Child {
    std::fs::write(dir.join(name), script).unwrap();
    tessera()
        .current_dir(dir)
        .arg("run")
        .arg(name)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

/// A pid that belonged to a process that has exited.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn lock_text(pid: u32, host: &str) -> String {
    format!(
        "{{\"tessera_lock\":1,\"pid\":{pid},\"host\":\"{host}\",\"since\":1700000000,\"boot\":\"{}\",\"start_ticks\":1}}\n",
        boot_id()
    )
}

/// Wait (without any timed assertion) until `p` exists or the child exits.
fn wait_for(p: &Path, child: &mut Child) -> bool {
    loop {
        if p.exists() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every element of a float array equals `want` (to rounding).
fn assert_all_near(path: &Path, want: f64, shape: &[u64]) {
    let (b, s) = read_all(path);
    assert_eq!(s, shape);
    assert_eq!(b.dtype().numpy_name(), "float32");
    for i in 0..b.len() {
        let v = b.get_f64(i);
        assert!((v - want).abs() < 1e-4, "element {i} is {v}, want {want}");
    }
}

/// A slow run writing `out` (a Gaussian of a constant, so every element is `value`).
fn slow_script(n: u64, value: f64, out: &str) -> String {
    format!(
        "full(({n}, {n}), {value}, dtype=\"f32\", chunks=(64, 64)).map(gaussian(6)).write(\"{out}\")\n"
    )
}

#[test]
fn a_second_run_on_a_live_output_is_refused_and_the_first_finishes_intact() {
    // The second runs are refused as long as the first holds the lock; a bigger array
    // makes the first run longer if it ever finished before they were tried.
    for n in [768u64, 1536, 3072] {
        let dir = TempDir::new("locks-two-runs");
        let d = dir.path();
        let lock = d.join("o.zarr.tessera-lock");
        let mut first = spawn_in(
            d,
            "first.tsr",
            &slow_script(n, 3.0, "o.zarr"),
            &["--workers", "1"],
        );
        assert!(
            wait_for(&lock, &mut first),
            "the first run never took its lock"
        );
        // Other spellings of the same output, with another dtype, and a resume.
        let attempts: [(String, &[&str]); 3] = [
            (
                "full((4, 4), 7, dtype=\"i64\").write(\"o.zarr\", overwrite=true)\n".into(),
                &[],
            ),
            (
                "full((4, 4), 7, dtype=\"i64\").write(\"./o.zarr/\", overwrite=true)\n".into(),
                &[],
            ),
            (slow_script(n, 3.0, "o.zarr"), &["--resume"]),
        ];
        let mut refused = Vec::new();
        for (script, extra) in &attempts {
            refused.push(run_in(d, script, extra));
        }
        let still_running = first.try_wait().unwrap().is_none();
        let out = first.wait_with_output().unwrap();
        assert!(out.status.success(), "first run: {}", stderr(&out));
        if !still_running {
            continue;
        }
        for o in &refused {
            let e = stderr(o);
            assert_eq!(o.status.code(), Some(1), "{e}");
            assert!(e.contains("E0413"), "{e}");
            assert!(e.contains("is being written by another run: pid "), "{e}");
            assert!(e.contains(&format!(" on {} since ", hostname())), "{e}");
            assert!(e.contains("o.zarr.tessera-lock"), "{e}");
        }
        // The first run's data, whole and of its own dtype: no chunk of the refused runs.
        assert_all_near(&d.join("o.zarr"), 3.0, &[n, n]);
        assert!(!lock.exists(), "the lock outlived the run");
        // Its temporary chunk files were not removed from under it: none is left over
        // and every chunk exists.
        let chunks = std::fs::read_dir(d.join("o.zarr/c"))
            .unwrap()
            .map(|r| std::fs::read_dir(r.unwrap().path()).unwrap().count())
            .sum::<usize>();
        assert_eq!(chunks as u64, (n / 64) * (n / 64));
        return;
    }
    panic!("the first run always finished before the second started: cannot test the lock");
}

#[test]
fn a_lock_held_by_a_live_process_names_it() {
    let dir = TempDir::new("locks-live");
    let d = dir.path();
    let (held, _) = tessera::io::lock::acquire(&d.join("o.zarr")).unwrap();
    for out in ["o.zarr", "./o.zarr", "o.zarr/", "sub/../o.zarr"] {
        std::fs::create_dir_all(d.join("sub")).unwrap();
        let o = run_in(d, &format!("ones((4, 4)).write(\"{out}\")\n"), &[]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{out}: {e}");
        assert!(e.contains("E0413"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(!d.join("o.zarr").exists(), "{out}: the refused run wrote");
    }
    drop(held);
    let o = run_in(d, "ones((4, 4)).write(\"o.zarr\")\n", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!d.join("o.zarr.tessera-lock").exists());
}

#[test]
fn a_stale_lock_of_a_dead_process_is_recovered() {
    for body in [
        lock_text(dead_pid(), &hostname()),
        String::new(),
        "garbage".into(),
    ] {
        let dir = TempDir::new("locks-stale");
        let d = dir.path();
        std::fs::write(d.join("o.zarr.tessera-lock"), &body).unwrap();
        let o = run_in(
            d,
            "full((8, 8), 2.0, dtype=\"f32\", chunks=(4, 4)).write(\"o.zarr\")\n",
            &[],
        );
        let e = stderr(&o);
        assert!(o.status.success(), "{e}");
        if !body.is_empty() && body != "garbage" {
            assert!(
                e.contains("recovered the lock of o.zarr left by pid "),
                "{e}"
            );
            assert!(e.contains("no longer running"), "{e}");
        }
        assert_all_near(&d.join("o.zarr"), 2.0, &[8, 8]);
        assert!(!d.join("o.zarr.tessera-lock").exists());
    }
}

#[test]
fn a_lock_of_another_host_is_reported_with_advice_and_left_alone() {
    let dir = TempDir::new("locks-remote");
    let d = dir.path();
    let text = lock_text(4242, "compute-node-17.example");
    let lock = d.join("o.zarr.tessera-lock");
    std::fs::write(&lock, &text).unwrap();
    let o = run_in(d, "ones((4, 4)).write(\"o.zarr\")\n", &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("E0414"), "{e}");
    assert!(
        e.contains("locked by a run on another host: pid 4242 on compute-node-17.example since 2023-11-14 22:13:20 UTC"),
        "{e}"
    );
    assert!(e.contains("delete"), "{e}");
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), text);
    assert!(!d.join("o.zarr").exists());
}

#[test]
fn locks_are_released_when_a_run_fails_or_is_interrupted() {
    // A run failing at run time (a damaged input chunk).
    let dir = TempDir::new("locks-fail");
    let d = dir.path();
    let o = run_in(
        d,
        "full((8, 8), 1, dtype=\"u8\", chunks=(4, 4)).write(\"in.zarr\")\n",
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let chunk = find_chunk(&d.join("in.zarr"));
    std::fs::write(&chunk, b"not zstd at all").unwrap();
    let o = run_in(
        d,
        "(zarr(\"in.zarr\") + 1).write(\"o.zarr\")\n",
        &["--workers", "1"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("E0406"), "{}", stderr(&o));
    assert!(!d.join("o.zarr.tessera-lock").exists());

    // Ctrl-C in the middle of a run.
    let lock = d.join("slow.zarr.tessera-lock");
    let mut child = spawn_in(
        d,
        "slow.tsr",
        &slow_script(3072, 1.0, "slow.zarr"),
        &["--workers", "1"],
    );
    assert!(wait_for(&lock, &mut child));
    // SAFETY: the child is our own process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let e = stderr(&out);
    if !out.status.success() {
        assert!(e.contains("E0503"), "{e}");
    }
    assert!(!lock.exists(), "the lock outlived an interrupted run: {e}");
}

fn find_chunk(dir: &Path) -> PathBuf {
    let mut stack = vec![dir.join("c")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                stack.push(e);
            } else {
                return e;
            }
        }
    }
    panic!("no chunk in {}", dir.display());
}

#[test]
fn intermediates_are_locked_through_their_output() {
    // Under --memory 4MiB with one worker the rechunk is staged through
    // out.zarr.tessera-tmp/...; that intermediate is covered by out.zarr's lock.
    let dir = TempDir::new("locks-tmp");
    let d = dir.path();
    let gen =
        "random((2048, 64, 64), dtype=\"u16\", chunks=(16, 64, 64), seed=5).write(\"in.zarr\")\n";
    assert!(run_in(d, gen, &[]).status.success());
    let job = "zarr(\"in.zarr\").rechunk((2048, 4, 4)).write(\"out.zarr\", overwrite=true)\n";
    let args = ["--memory", "4MiB", "--workers", "1"];
    std::fs::write(d.join("job.tsr"), job).unwrap();
    let plan = tessera()
        .current_dir(d)
        .args(["plan", "job.tsr"])
        .args(args)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&plan.stdout).contains("write out.zarr.tessera-tmp/rechunk-0-"));
    let (held, _) = tessera::io::lock::acquire(&d.join("out.zarr")).unwrap();
    let o = run_in(d, job, &args);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("E0413"), "{e}");
    assert!(
        e.contains("out.zarr is being written by another run"),
        "{e}"
    );
    assert!(!d.join("out.zarr.tessera-tmp").exists());
    assert!(!d.join("out.zarr").exists());
    // No lock of its own beside the intermediate.
    drop(held);
    let o = run_in(d, job, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tessera-"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}
