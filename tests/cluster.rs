//! The cluster executors against real engines: a one-node Slurm (scripts/slurm-local.sh)
//! and a HyperQueue server on loopback (scripts/hq-local.sh), both started here when not
//! running. Every example and the seed workloads give, through `--executor slurm` and
//! `--executor hyperqueue`, outputs byte-identical to `--executor local`; a worker killed
//! with SIGKILL mid-stage is retried and the result is identical; a cancelled run resumes
//! to the identical result; a changed script refuses to resume; engines that are missing,
//! down or that reject the job fail with the command named, exit 1, nothing written.

mod common;

use common::{example_names, oracle_python, TempDir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Start both engines once per test process; the HyperQueue server directory.
fn engines() -> &'static PathBuf {
    static HQ: OnceLock<PathBuf> = OnceLock::new();
    HQ.get_or_init(|| {
        let slurm = Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/slurm-local.sh"))
            .output()
            .expect("run scripts/slurm-local.sh");
        assert!(
            slurm.status.success(),
            "scripts/slurm-local.sh failed: {}",
            String::from_utf8_lossy(&slurm.stderr)
        );
        let hq = Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/hq-local.sh"))
            .env("TESSERA_HQ_PYTHON", oracle_python())
            .output()
            .expect("run scripts/hq-local.sh");
        assert!(
            hq.status.success(),
            "scripts/hq-local.sh failed: {}",
            String::from_utf8_lossy(&hq.stderr)
        );
        let dir = String::from_utf8_lossy(&hq.stdout)
            .lines()
            .last()
            .expect("hq-local.sh names its server directory")
            .to_string();
        PathBuf::from(dir)
    })
}

fn tessera(dir: &Path, args: &[&str]) -> Output {
    let hq = engines();
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir)
        .env_remove("TESSERA_REPORT")
        .env("TESSERA_HQ_PYTHON", oracle_python())
        .env("HQ_SERVER_DIR", hq)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file a run wrote (outside the plan directory, the script and run records), with
/// its bytes.
fn written(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, p: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".plan") || name.ends_with(".tsr") || name.starts_with(".tessera") {
                continue;
            }
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Run `script` locally and through `executor` in two fresh directories; the files
/// written must be the same, byte for byte.
fn same_as_local(tag: &str, script: &str, executor: &str, extra: &[&str]) {
    let local = TempDir::new(&format!("cl-{tag}-local"));
    let remote = TempDir::new(&format!("cl-{tag}-{executor}"));
    for d in [&local, &remote] {
        std::fs::write(d.path().join("job.tsr"), script).unwrap();
    }
    let l = tessera(local.path(), &["run", "job.tsr", "--quiet"]);
    assert!(l.status.success(), "local run of {tag}: {}", text(&l));
    let mut args = vec!["run", "job.tsr", "--executor", executor, "--jobs", "2"];
    args.extend_from_slice(extra);
    let r = tessera(remote.path(), &args);
    assert!(r.status.success(), "{executor} run of {tag}: {}", text(&r));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains(&format!("tasks done on {executor}")), "{err}");
    let (a, b) = (written(local.path()), written(remote.path()));
    assert!(!a.is_empty(), "{tag} wrote nothing");
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{tag}: the {executor} run wrote other files"
    );
    for (k, v) in &a {
        assert!(
            v == &b[k],
            "{tag}: {k} differs between local and {executor}"
        );
    }
}

/// The seed workloads: filters with halos, 50 regions sharing chunks, a reduction and its
/// broadcast, label and regionprops, rechunk and FFT.
fn workloads() -> Vec<(&'static str, String)> {
    let mut regions = Vec::new();
    for i in 0..50u64 {
        let (r, c) = ((i * 37) % 300, (i * 53) % 300);
        regions.push(format!("({r}:{}, {c}:{})", r + 40 + i % 7, c + 30 + i % 11));
    }
    vec![
        (
            "filters",
            "random((300, 300), dtype=\"f32\", chunks=(100, 100), seed=1).write(\"in.zarr\")\n\
             let x = zarr(\"in.zarr\")\n\
             x.map(gaussian(3)).write(\"g.zarr\")\n\
             x.overlap(4).map(uniform(5)).write(\"u.zarr\")\n"
                .to_string(),
        ),
        (
            "regions",
            format!(
                "let x = random((400, 400), dtype=\"f32\", chunks=(64, 64), seed=2)\n\
                 x.map(gaussian(2)).write(\"r.zarr\", regions=[{}])\n",
                regions.join(", ")
            ),
        ),
        (
            "reduce",
            "let x = random((8, 120, 120), dtype=\"f32\", chunks=(2, 60, 60), seed=3)\n\
             (x / x.max(axis=(1, 2), keepdims=true)).write(\"n.zarr\")\n\
             (x - x.mean()).write(\"c.zarr\")\n"
                .to_string(),
        ),
        (
            "label",
            "let m = random((240, 240), chunks=(80, 80), seed=4) > 0.6\n\
             let l = label(m)\n\
             l.write(\"l.zarr\")\n\
             regionprops(l).write_csv(\"props.csv\")\n"
                .to_string(),
        ),
        (
            "fft",
            "let x = random((16, 40, 40), dtype=\"f32\", chunks=(4, 20, 20), seed=5)\n\
             (abs(fft(x.rechunk((16, 10, 10)), axis=0)) ** 2).astype(\"f32\").write(\"f.zarr\")\n"
                .to_string(),
        ),
    ]
}

#[test]
fn workloads_on_slurm_match_local() {
    for (tag, script) in workloads() {
        same_as_local(tag, &script, "slurm", &[]);
    }
}

#[test]
fn workloads_on_hyperqueue_match_local() {
    for (tag, script) in workloads() {
        same_as_local(tag, &script, "hyperqueue", &[]);
    }
}

#[test]
fn examples_on_both_engines_match_local() {
    for name in example_names() {
        let src =
            std::fs::read_to_string(Path::new(ROOT).join(format!("examples/{name}.tsr"))).unwrap();
        // Batched: every example through few tasks per stage.
        same_as_local(&name, &src, "slurm", &["--chunks-per-task", "16"]);
        same_as_local(&name, &src, "hyperqueue", &["--chunks-per-task", "16"]);
    }
}

/// A workload whose tasks take long enough to be caught running.
const SLOW: &str = "let x = random((8, 256, 256), dtype=\"f32\", chunks=(1, 128, 128), seed=9)\n\
                    x.map(gaussian(6)).map(median(5)).write(\"slow.zarr\")\n";

/// pids of `tessera worker` processes working on the plan directory `plan`.
fn workers_of(plan: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.len() > 2 && args[1] == "worker" && Path::new(&args[2]) == plan {
            out.push(pid);
        }
    }
    out
}

fn wait_for_worker(plan: &Path) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(&pid) = workers_of(plan).first() {
            return pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no worker of {} started",
            plan.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn killed_worker_is_retried(executor: &str) {
    let local = TempDir::new(&format!("cl-kill-local-{executor}"));
    let remote = TempDir::new(&format!("cl-kill-{executor}"));
    for d in [&local, &remote] {
        std::fs::write(d.path().join("job.tsr"), SLOW).unwrap();
    }
    let l = tessera(local.path(), &["run", "job.tsr", "--quiet"]);
    assert!(l.status.success(), "{}", text(&l));
    let sub = tessera(
        remote.path(),
        &[
            "run",
            "job.tsr",
            "--executor",
            executor,
            "--chunks-per-task",
            "4",
            "--detach",
        ],
    );
    assert!(sub.status.success(), "{}", text(&sub));
    let plan = remote.path().join("job.plan");
    let pid = wait_for_worker(&plan);
    // SAFETY: sends SIGKILL to a worker process this test's run started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let f = tessera(
        remote.path(),
        &["status", plan.to_str().unwrap(), "--follow"],
    );
    assert!(f.status.success(), "{}", text(&f));
    let logs = std::fs::read_dir(plan.join("logs/1"))
        .map(|it| {
            it.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect::<String>()
        })
        .unwrap_or_default()
        + &std::fs::read_dir(plan.join("logs"))
            .unwrap()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
    assert!(
        logs.contains("the worker exited with status 137") && logs.contains("attempt 2"),
        "no retry after the kill in the logs:\n{logs}"
    );
    assert_eq!(written(local.path()), written(remote.path()));
}

#[test]
fn a_killed_slurm_worker_is_retried_and_the_result_is_identical() {
    killed_worker_is_retried("slurm");
}

#[test]
fn a_killed_hyperqueue_worker_is_retried_and_the_result_is_identical() {
    killed_worker_is_retried("hyperqueue");
}

#[test]
fn a_cancelled_run_resumes_to_the_identical_result_and_a_changed_script_refuses() {
    let local = TempDir::new("cl-resume-local");
    let remote = TempDir::new("cl-resume");
    for d in [&local, &remote] {
        std::fs::write(d.path().join("job.tsr"), SLOW).unwrap();
    }
    let l = tessera(local.path(), &["run", "job.tsr", "--quiet"]);
    assert!(l.status.success(), "{}", text(&l));
    let run = [
        "run",
        "job.tsr",
        "--executor",
        "slurm",
        "--chunks-per-task",
        "2",
    ];
    let sub = tessera(remote.path(), &[&run[..], &["--detach"]].concat());
    assert!(sub.status.success(), "{}", text(&sub));
    let plan = remote.path().join("job.plan");
    let p = plan.to_str().unwrap();
    wait_for_worker(&plan);
    let c = tessera(remote.path(), &["cancel", p]);
    assert!(c.status.success(), "{}", text(&c));
    let s = tessera(remote.path(), &["status", p]);
    assert_eq!(s.status.code(), Some(1), "{}", text(&s));
    assert!(text(&s).contains("error[E0714]"), "{}", text(&s));
    // Wait for the cancelled jobs to leave the queue, then resume.
    let start = Instant::now();
    let r = loop {
        let r = tessera(remote.path(), &[&run[..], &["--resume"]].concat());
        if r.status.success() || !text(&r).contains("still queued or running") {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{}", text(&r));
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(r.status.success(), "{}", text(&r));
    assert_eq!(written(local.path()), written(remote.path()));
    // A changed script: refused, saying what changed, nothing submitted.
    std::fs::write(
        remote.path().join("job.tsr"),
        SLOW.replace("median(5)", "median(3)"),
    )
    .unwrap();
    let r = tessera(remote.path(), &[&run[..], &["--resume"]].concat());
    assert_eq!(r.status.code(), Some(1), "{}", text(&r));
    assert!(
        text(&r).contains("the plan changed since it was exported"),
        "{}",
        text(&r)
    );
}

/// A failed submission: exit 1, the message, and nothing written beside the script.
fn refused(executor: &str, extra: &[&str], env: &[(&str, &str)], want: &[&str]) {
    let d = TempDir::new(&format!("cl-bad-{executor}"));
    std::fs::write(d.path().join("job.tsr"), workloads()[0].1.clone()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.current_dir(d.path())
        .env("TESSERA_HQ_PYTHON", oracle_python())
        .env("HQ_SERVER_DIR", engines())
        .args(["run", "job.tsr", "--executor", executor])
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    for w in want {
        assert!(text(&o).contains(w), "missing {w:?} in {}", text(&o));
    }
    let left: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["job.tsr"], "{executor}: files left behind");
}

#[test]
fn missing_down_or_refusing_engines_fail_with_the_command_named() {
    engines();
    // Slurm not installed: no sbatch on PATH.
    refused(
        "slurm",
        &[],
        &[("PATH", "/nonexistent")],
        &[
            "error[E0710]",
            "`sbatch --version` failed: the command is not installed",
        ],
    );
    // Slurm not running: a configuration whose controller nobody listens on.
    let conf = TempDir::new("cl-slurm-conf");
    let c = std::fs::read_to_string("/etc/slurm/slurm.conf")
        .unwrap()
        .replace(
            "SlurmctldHost=localhost",
            "SlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=1",
        );
    std::fs::write(conf.path().join("slurm.conf"), c).unwrap();
    let conf_path = conf.path().join("slurm.conf");
    refused(
        "slurm",
        &[],
        &[("SLURM_CONF", conf_path.to_str().unwrap())],
        &["error[E0711]", "`squeue -h -o %i --me` failed"],
    );
    // Job rejected by Slurm.
    refused(
        "slurm",
        &["--slurm-args", "--partition=nosuch"],
        &[],
        &[
            "error[E0712]",
            "sbatch --parsable",
            "--partition=nosuch",
            "invalid partition",
        ],
    );
    // HyperQueue not installed: a Python without the package.
    refused(
        "hyperqueue",
        &[],
        &[("TESSERA_HQ_PYTHON", "/usr/bin/python3")],
        &[
            "error[E0710]",
            "ping",
            "the hyperqueue package cannot be imported",
        ],
    );
    // HyperQueue not running.
    refused(
        "hyperqueue",
        &["--hq-server-dir", "/nonexistent-hq"],
        &[],
        &[
            "error[E0711]",
            "no HyperQueue server answers at /nonexistent-hq",
        ],
    );
}

#[test]
fn a_unit_that_keeps_failing_stops_the_run_naming_the_stage_the_cause_and_the_log() {
    let d = TempDir::new("cl-fail");
    std::fs::write(
        d.path().join("make.tsr"),
        "random((200, 200), dtype=\"f32\", chunks=(100, 100), seed=6).write(\"in.zarr\")\n",
    )
    .unwrap();
    let m = tessera(d.path(), &["run", "make.tsr", "--quiet"]);
    assert!(m.status.success(), "{}", text(&m));
    std::fs::write(
        d.path().join("job.tsr"),
        "zarr(\"in.zarr\").map(gaussian(2)).write(\"o.zarr\")\n",
    )
    .unwrap();
    // The jobs start a few seconds late; the input disappears in between.
    let sub = tessera(
        d.path(),
        &[
            "run",
            "job.tsr",
            "--executor",
            "slurm",
            "--retries",
            "1",
            "--detach",
            "--slurm-args",
            "--begin=now+4",
        ],
    );
    assert!(sub.status.success(), "{}", text(&sub));
    std::fs::remove_dir_all(d.path().join("in.zarr")).unwrap();
    let plan = d.path().join("job.plan");
    let f = tessera(d.path(), &["status", plan.to_str().unwrap(), "--follow"]);
    assert_eq!(f.status.code(), Some(1), "{}", text(&f));
    let t = text(&f);
    assert!(t.contains("error[E0713]: stage "), "{t}");
    assert!(t.contains("failed 2 times"), "{t}");
    assert!(t.contains("in.zarr"), "the missing input is not named: {t}");
    assert!(
        t.contains(&format!("worker log: {}", plan.join("logs").display())),
        "{t}"
    );
}
