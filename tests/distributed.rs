//! Exported plans run by `tessera worker` processes: every stage's tasks split at random
//! over several processes running at once give the bytes of `tessera run`, barriers
//! included; a killed worker's task rerun completes identically; changed scripts and
//! inputs are refused with what changed.

mod common;

use common::{run_cli, Rng, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn tessera() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.env_remove("TESSERA_REPORT");
    c
}

/// Every file of every array (and CSV) under `dir`, with its bytes, sorted by path;
/// the local run's completion records, locks and plan directories left out.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with(".tessera") || name == "plan" || name.ends_with(".tsr") {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

fn assert_same_tree(local: &Path, dist: &Path, what: &str) {
    let (a, b) = (tree(local), tree(dist));
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "{what}: different files");
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{what}: {n} differs from the local run");
    }
    assert!(!a.is_empty(), "{what}: nothing written");
}

/// The stages of `DIR/plan.json`: (id, tasks).
fn stages(plan: &Path) -> Vec<(usize, u64)> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plan.join("plan.json")).unwrap()).unwrap();
    v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_u64().unwrap() as usize,
                s["tasks"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn worker(plan: &Path, stage: usize, a: u64, b: u64) -> Child {
    tessera()
        .arg("worker")
        .arg(plan)
        .args([
            "--stage",
            &stage.to_string(),
            "--tasks",
            &format!("{a}-{b}"),
        ])
        .args(["--workers", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Run every stage in order, its tasks split at random into up to `procs` ranges run by
/// concurrent worker processes (from another working directory). Returns what the
/// processes printed on stdout.
fn run_plan(plan: &Path, rng: &mut Rng, procs: usize) -> String {
    let elsewhere = std::env::temp_dir();
    let mut printed = String::new();
    for (id, tasks) in stages(plan) {
        let mut cuts: Vec<u64> = (0..rng.below(procs))
            .map(|_| rng.next() % tasks)
            .filter(|c| *c > 0)
            .collect();
        cuts.push(0);
        cuts.push(tasks);
        cuts.sort_unstable();
        cuts.dedup();
        let children: Vec<Child> = cuts
            .windows(2)
            .map(|w| {
                let mut c = worker(plan, id, w[0], w[1] - 1);
                let _ = &elsewhere;
                c.stdin.take();
                c
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "stage {id} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            printed.push_str(&String::from_utf8_lossy(&out.stdout));
        }
    }
    printed
}

/// Run `script` locally in one directory and through an export and worker processes in
/// another; the files written must be byte-identical and the printed lines equal.
fn check_distributed(name: &str, script: &str, setup: impl Fn(&Path), seed: u64, k: Option<u64>) {
    let local = TempDir::new(&format!("dist-local-{name}"));
    let dist = TempDir::new(&format!("dist-workers-{name}"));
    for d in [local.path(), dist.path()] {
        setup(d);
        std::fs::write(d.join("s.tsr"), script).unwrap();
    }
    let out = run_cli(local.path(), &["run", "s.tsr", "--quiet"]);
    assert!(
        out.status.success(),
        "{name}: local run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local_printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut args = vec!["plan", "s.tsr", "--export", "plan"];
    let ks;
    if let Some(k) = k {
        ks = k.to_string();
        args.extend(["--chunks-per-task", &ks]);
    }
    let out = run_cli(dist.path(), &args);
    assert!(
        out.status.success(),
        "{name}: export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rng = Rng(seed);
    let printed = run_plan(&dist.path().join("plan"), &mut rng, 3);
    assert_eq!(printed, local_printed, "{name}: printed lines differ");
    assert_same_tree(local.path(), dist.path(), name);
}

#[test]
fn blur_split_over_three_workers_matches_the_local_run() {
    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/blur.tsr"))
            .unwrap();
    for (seed, k) in [(11, Some(5)), (12, Some(1)), (13, None)] {
        check_distributed("blur", &script, |_| {}, seed, k);
    }
}

/// Barriers across processes: reductions, label (scan, resolve, relabel), regionprops,
/// a staged rechunk and a Python block function, every stage split at random over up to
/// three concurrent worker processes, give the local run's bytes and printed lines.
#[test]
fn barriers_split_over_processes_match_the_local_run() {
    let script =
        "random((6, 90, 90), dtype=\"f32\", chunks=(2, 30, 30), seed=7).write(\"in.zarr\")\n\
                  let x = zarr(\"in.zarr\")\n\
                  (x / x.max(axis=(1, 2), keepdims=true)).write(\"norm.zarr\")\n\
                  (x - x.mean()).write(\"centred.zarr\")\n\
                  print(x.sum(), x.std())\n\
                  let l = label(x[0] > 0.7)\n\
                  l.write(\"labels.zarr\")\n\
                  regionprops(l, intensity=x[0]).write_csv(\"props.csv\")\n\
                  x.rechunk((6, 10, 10)).map(python(\"f.py:double\")).write(\"py.zarr\")\n";
    let setup = |d: &Path| {
        std::fs::write(d.join("f.py"), "def double(block):\n    return block * 2\n").unwrap();
    };
    for (seed, k) in [(21, Some(1)), (22, Some(3)), (23, None)] {
        check_distributed("barriers", script, setup, seed, k);
    }
}

/// A worker that cannot find an input names its path; one whose input changed since the
/// export refuses, naming the input; nothing is recorded as done.
#[test]
fn missing_or_changed_inputs_are_refused_by_the_worker() {
    let d = TempDir::new("dist-inputs");
    std::fs::write(
        d.path().join("gen.tsr"),
        "random((40, 40), dtype=\"f32\", chunks=(10, 10), seed=3).write(\"in.zarr\")\n",
    )
    .unwrap();
    let out = run_cli(d.path(), &["run", "gen.tsr", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        d.path().join("s.tsr"),
        "zarr(\"in.zarr\").map(gaussian(2)).write(\"out.zarr\")\n",
    )
    .unwrap();
    let out = run_cli(d.path(), &["plan", "s.tsr", "--export", "plan"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = d.path().join("plan");
    let create = worker(&plan, 0, 0, 0).wait_with_output().unwrap();
    assert!(
        create.status.success(),
        "{}",
        String::from_utf8_lossy(&create.stderr)
    );
    let (write_stage, tasks) = stages(&plan)[1];

    std::fs::rename(d.path().join("in.zarr"), d.path().join("moved.zarr")).unwrap();
    let out = worker(&plan, write_stage, 0, tasks - 1)
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("[E0704]"), "{e}");
    assert!(
        e.contains(&d.path().join("in.zarr").display().to_string()),
        "{e}"
    );
    assert!(!plan
        .join("done")
        .join(write_stage.to_string())
        .join("0")
        .exists());

    // The same path, another array: refused as changed.
    std::fs::write(
        d.path().join("gen2.tsr"),
        "random((40, 40), dtype=\"f32\", chunks=(20, 20), seed=3).write(\"in.zarr\")\n",
    )
    .unwrap();
    let out = run_cli(d.path(), &["run", "gen2.tsr", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = worker(&plan, write_stage, 0, tasks - 1)
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("[E0703]"), "{e}");
    assert!(e.contains("in.zarr"), "{e}");
    assert!(!plan
        .join("done")
        .join(write_stage.to_string())
        .join("0")
        .exists());
}

/// Two workers given the same tasks by mistake, at the same time: both succeed or one
/// finds the tasks done, and the output is the local run's, byte for byte.
#[test]
fn two_workers_running_the_same_tasks_write_the_same_bytes() {
    let script = "let x = random((120, 120), dtype=\"f32\", chunks=(20, 20), seed=5)\n\
                  x.overlap(3).map(gaussian(1.5)).write(\"g.zarr\")\n\
                  (x - x.mean()).write(\"c.zarr\")\n";
    let local = TempDir::new("dist-dup-local");
    let dist = TempDir::new("dist-dup-workers");
    for d in [local.path(), dist.path()] {
        std::fs::write(d.join("s.tsr"), script).unwrap();
    }
    let out = run_cli(local.path(), &["run", "s.tsr", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_cli(
        dist.path(),
        &[
            "plan",
            "s.tsr",
            "--export",
            "plan",
            "--chunks-per-task",
            "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = dist.path().join("plan");
    for (id, tasks) in stages(&plan) {
        let a = worker(&plan, id, 0, tasks - 1);
        let b = worker(&plan, id, 0, tasks - 1);
        for c in [a, b] {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "stage {id}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert_same_tree(local.path(), dist.path(), "duplicated workers");
}
