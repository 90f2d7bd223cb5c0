//! Chunk-level chaining: a stage reading an array another stage of the same run writes
//! starts each task once the chunks it reads (halo included) are written. The result is
//! the stage-by-stage run's, byte for byte, for 1, 2 and 4 workers, under region writes
//! and after kill -9 + `--resume`; scipy is the oracle of the values.

mod common;

use common::{
    array_files, kill_when, oracle_python, report_counts, run_python, run_reported, succeeded,
    TempDir,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use tessera::exec::Safeguards;
use tessera::{Engine, Progress, RunOptions};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// 6 planes of 192² f32 in 1 × 48 × 48 chunks: 96 chunks per array.
const GEN: &str = "random((6, 192, 192), dtype=\"f32\", chunks=(1, 48, 48), seed=5).write(\"in.zarr\", overwrite=true)";

/// Filter → write → read back → label and filter → write: three stages chained.
const PIPELINE: &str = "let x = zarr(\"in.zarr\")\n\
    x.map(gaussian((0, 2, 2))).write(\"b.zarr\", overwrite=true)\n\
    let b = zarr(\"b.zarr\")\n\
    label(b > 0.5).write(\"labels.zarr\", overwrite=true)\n\
    b.map(gaussian((0, 1.5, 1.5))).write(\"c.zarr\", overwrite=true)\n";

const OUTPUTS: [&str; 3] = ["b.zarr", "labels.zarr", "c.zarr"];

fn opts(workers: usize) -> RunOptions {
    RunOptions {
        workers,
        progress: Progress::None,
    }
}

fn guards(stage_by_stage: bool) -> Safeguards {
    Safeguards {
        stage_by_stage,
        ..Default::default()
    }
}

fn outputs(dir: &Path) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    OUTPUTS
        .iter()
        .map(|o| (o.to_string(), array_files(&dir.join(o))))
        .collect()
}

fn engine(dir: &Path) -> Engine {
    let mut e = Engine::new().with_base_dir(dir);
    e.run("gen.tsr", GEN, &opts(2))
        .unwrap_or_else(|d| panic!("{}", e.render(&d, false)));
    e
}

/// Runs `src` and returns how many tasks started before the stages they read had finished.
fn run(e: &mut Engine, src: &str, workers: usize, stage_by_stage: bool) -> u64 {
    let r = e
        .run_with("job.tsr", src, &opts(workers), &guards(stage_by_stage))
        .unwrap_or_else(|d| panic!("{}", e.render(&d, false)));
    r.chained_early
}

#[test]
fn a_chained_pipeline_equals_the_stage_by_stage_run_and_scipy() {
    let ws = TempDir::new("chain-pipeline");
    let d = ws.path();
    let mut e = engine(d);
    let planned = e
        .plan("job.tsr", PIPELINE)
        .unwrap_or_else(|d| panic!("{}", e.render(&d, false)));
    // write b, then (label scan of b, write c) chained to it; the label write waits for
    // the label table.
    let chains = planned.plan.chains(&planned.program);
    assert!(chains.len() >= 2, "{chains:?}");
    assert_eq!(run(&mut e, PIPELINE, 2, true), 0);
    let waved = outputs(d);
    for workers in [1, 2, 4] {
        let early = run(&mut e, PIPELINE, workers, false);
        assert!(early > 0, "{workers} workers: no task started early");
        assert!(
            outputs(d) == waved,
            "{workers} workers: the chained run differs from the stage-by-stage run"
        );
    }
    let out = run_python(
        &oracle_python(),
        d,
        "import numpy as np, zarr\n\
         from scipy import ndimage as ndi\n\
         x = zarr.open_array('in.zarr', mode='r')[:]\n\
         b = ndi.gaussian_filter(x, (0, 2, 2), mode='reflect', truncate=4.0)\n\
         assert np.array_equal(zarr.open_array('b.zarr', mode='r')[:], b)\n\
         c = ndi.gaussian_filter(b, (0, 1.5, 1.5), mode='reflect', truncate=4.0)\n\
         assert np.array_equal(zarr.open_array('c.zarr', mode='r')[:], c)\n\
         want, n = ndi.label(b > 0.5)\n\
         got = zarr.open_array('labels.zarr', mode='r')[:]\n\
         assert got.max() == n and n > 10, (got.max(), n)\n\
         assert np.array_equal(got, want)\n\
         print('ok')",
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn chunks_a_chained_stage_writes_reach_their_readers_without_a_decode() {
    let ws = TempDir::new("chain-hand-off");
    let d = ws.path();
    let mut e = engine(d);
    let job = "zarr(\"in.zarr\").map(gaussian((0, 2, 2))).write(\"b.zarr\", overwrite=true)\n\
        zarr(\"b.zarr\").map(gaussian((0, 1, 1))).write(\"c.zarr\", overwrite=true)\n";
    let decoded = |e: &mut Engine, stage_by_stage: bool| {
        e.run_with("job.tsr", job, &opts(2), &guards(stage_by_stage))
            .unwrap_or_else(|d| panic!("{}", e.render(&d, false)))
            .chunks_decoded
    };
    // Stage by stage, each of the 96 chunks of in.zarr and of b.zarr is decoded once (the
    // cache holds these small arrays whole); chained, b.zarr's chunks are handed to the
    // cache as they are written, so only in.zarr's are decoded.
    assert_eq!(decoded(&mut e, true), 192);
    let want = array_files(&d.join("c.zarr"));
    assert_eq!(decoded(&mut e, false), 96);
    assert!(
        array_files(&d.join("c.zarr")) == want,
        "the chained run differs"
    );
}

/// With a pin budget (`TESSERA_PIN_MB`), written chunks are held for their readers even
/// where the LRU cache holds nothing (`TESSERA_CACHE_MB=0`): b.zarr is never decoded.
#[test]
fn pinned_chunks_wait_for_their_readers() {
    let ws = TempDir::new("chain-pins");
    let d = ws.path();
    engine(d);
    std::fs::write(
        d.join("job.tsr"),
        "zarr(\"in.zarr\").map(gaussian((0, 2, 2))).write(\"b.zarr\", overwrite=true)\n\
         zarr(\"b.zarr\").map(gaussian((0, 1, 1))).write(\"c.zarr\", overwrite=true)\n",
    )
    .unwrap();
    let decoded = |pin: &str| {
        let out = Command::new(BIN)
            .current_dir(d)
            .args(["run", "job.tsr", "--quiet", "--workers", "2"])
            .env("TESSERA_REPORT", "1")
            .env("TESSERA_CACHE_MB", "0")
            .env("TESSERA_PIN_MB", pin)
            .env_remove("TESSERA_CHAIN")
            .output()
            .expect("run tessera");
        let err = succeeded(&out);
        let line = err
            .lines()
            .find(|l| l.starts_with("tessera-report:"))
            .unwrap();
        let n: u64 = line
            .split_whitespace()
            .find_map(|t| t.strip_prefix("decoded="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no decoded= in {line}"));
        (n, array_files(&d.join("c.zarr")))
    };
    let (unpinned, want) = decoded("0");
    let (pinned, got) = decoded("8");
    assert!(got == want, "the pinned run differs");
    // Every stage-2 task reads its b.zarr chunk and 8 halo pieces: unpinned, nearly each
    // is a decode; pinned, none is.
    assert!(
        pinned + 2 * 96 <= unpinned,
        "pinned {pinned} vs unpinned {unpinned} decodes"
    );
}

#[test]
fn chaining_to_a_region_write_reads_untouched_chunks_as_they_are() {
    let ws = TempDir::new("chain-regions");
    let d = ws.path();
    let mut e = engine(d);
    let job = "let x = zarr(\"in.zarr\")\n\
        x.map(gaussian((0, 2, 2))).write(\"b.zarr\", regions=[(0:6, 10:70, 20:100), (2:4, 100:192, 0:192)], overwrite=true)\n\
        zarr(\"b.zarr\").map(gaussian((0, 3, 3))).write(\"c.zarr\", overwrite=true)\n";
    run(&mut e, job, 2, true);
    let waved: BTreeMap<_, _> = ["b.zarr", "c.zarr"]
        .iter()
        .map(|o| (o.to_string(), array_files(&d.join(o))))
        .collect();
    for workers in [1, 2, 4] {
        let early = run(&mut e, job, workers, false);
        assert!(early > 0, "{workers} workers");
        let got: BTreeMap<_, _> = ["b.zarr", "c.zarr"]
            .iter()
            .map(|o| (o.to_string(), array_files(&d.join(o))))
            .collect();
        assert!(
            got == waved,
            "{workers} workers: differs from the stage-by-stage run"
        );
    }
}

#[test]
fn explain_names_the_stages_that_overlap() {
    let ws = TempDir::new("chain-explain");
    let d = ws.path();
    engine(d);
    std::fs::write(d.join("job.tsr"), PIPELINE).unwrap();
    let out = tessera(d, &["plan", "job.tsr", "--explain"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let overlaps: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("overlaps stage"))
        .collect();
    assert!(overlaps.len() >= 2, "{text}");
}

fn tessera(dir: &Path, args: &[&str]) -> Output {
    run_reported(dir, args)
}

fn ok(out: &Output) -> String {
    succeeded(out)
}

/// Chunk files written so far under `dir` (any array of the pipeline).
fn chunk_files(dir: &Path) -> usize {
    OUTPUTS
        .iter()
        .map(|o| {
            let c = dir.join(o).join("c");
            if c.exists() {
                walk(&c)
            } else {
                0
            }
        })
        .sum()
}

fn walk(d: &Path) -> usize {
    std::fs::read_dir(d)
        .map(|it| {
            it.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn kill_9_then_resume_of_a_chained_pipeline_gives_the_uninterrupted_bytes() {
    let ws = TempDir::new("chain-kill");
    let d = ws.path();
    std::fs::write(d.join("gen.tsr"), GEN).unwrap();
    std::fs::write(d.join("job.tsr"), PIPELINE).unwrap();
    ok(&tessera(d, &["run", "gen.tsr", "--quiet"]));
    let err = ok(&tessera(d, &["run", "job.tsr", "--quiet"]));
    let (tasks, _) = report_counts(&err);
    let reference = outputs(d);
    for o in OUTPUTS {
        std::fs::remove_dir_all(d.join(o)).unwrap();
    }
    // Kill at rising counts of written chunk files (of all three arrays), then resume.
    let mut kills = 0;
    let mut at = 20;
    loop {
        let mut args = vec!["run", "job.tsr", "--quiet", "--workers", "2"];
        if kills > 0 {
            args.push("--resume");
        }
        let mut cmd = Command::new(BIN);
        cmd.current_dir(d).args(&args).env_remove("TESSERA_CHAIN");
        if kill_when(&mut cmd, || chunk_files(d) >= at) {
            break;
        }
        kills += 1;
        at += 25;
    }
    assert!(kills >= 3, "only {kills} kills before the run finished");
    let err = ok(&tessera(d, &["run", "job.tsr", "--resume"]));
    let (computed, skipped) = report_counts(&err);
    assert!(computed + skipped <= tasks, "{err}");
    assert!(outputs(d) == reference, "the resumed pipeline differs");
}
