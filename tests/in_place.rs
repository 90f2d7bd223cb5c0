//! Updates in place with snapshot semantics: `let x = zarr("a.zarr")` written back to
//! "a.zarr" (the whole array with `overwrite=true`, or regions of it) equals the run that
//! writes the same result to a copy, under every chunking and worker count — every read,
//! halos of neighbouring chunks included, sees the array as it was before the run. A run
//! killed with SIGKILL again and again and resumed each time ends with the same bytes;
//! resuming a finished update changes nothing.

mod common;

use common::{
    array_files as files, copy_tree as copy_dir, kill_when, read_all, recorded_in as recorded,
    report_counts as counts, run_reported, succeeded, TempDir,
};
use std::path::Path;
use std::process::{Command, Output};
use tessera::{Engine, Progress, RunOptions};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const RECORD: &str = ".tessera-resume.log";

fn run(dir: &Path, src: &str, workers: usize) {
    let mut e = Engine::new().with_base_dir(dir);
    let opts = RunOptions {
        workers,
        progress: Progress::None,
    };
    e.run("t.tsr", src, &opts)
        .unwrap_or_else(|d| panic!("{src}\n{}", e.render(&d, false)));
}

const SHAPE: &str = "(6, 90, 100)";
/// Regions that overlap each other and share chunks, one of them a single plane.
const REGIONS: &str =
    "[(0:6, 10:50, 20:70), (1:5, 40:90, 0:35), (3, 0:90, 60:100), (0:2, 0:20, 0:100)]";

#[test]
fn in_place_updates_equal_out_of_place_runs() {
    let dir = TempDir::new("inplace-matrix");
    let d = dir.path();
    let mut cases = 0;
    for chunks in ["(1, 32, 32)", "(2, 45, 17)", "(6, 90, 100)"] {
        let gen = format!(
            "random({SHAPE}, dtype=\"f32\", chunks={chunks}, seed=11).write(\"src.zarr\", overwrite=true)"
        );
        run(d, &gen, 2);
        for workers in [1, 2, 4] {
            // Whole array: a filter whose halo reads neighbouring chunks, so a chunk
            // overwritten before its neighbours read it would change their result.
            for (name, write) in [
                ("whole", "write(\"{out}\", overwrite=true)".to_string()),
                ("regions", format!("write(\"{{out}}\", regions={REGIONS})")),
            ] {
                for out in ["a.zarr", "b.zarr"] {
                    let _ = std::fs::remove_dir_all(d.join(out));
                    copy_dir(&d.join("src.zarr"), &d.join(out));
                }
                let job = |read: &str, out: &str| {
                    format!(
                        "let x = zarr(\"{read}\")\n(x.map(gaussian(2.0)) * 0.5 + 1).{}",
                        write.replace("{out}", out)
                    )
                };
                // In place, read under another spelling of the same array.
                run(d, &job("./a.zarr", "a.zarr"), workers);
                run(d, &job("b.zarr", "b2.zarr"), workers);
                if name == "regions" {
                    // The out-of-place reference writes the regions into a copy.
                    let _ = std::fs::remove_dir_all(d.join("b2.zarr"));
                    copy_dir(&d.join("src.zarr"), &d.join("b2.zarr"));
                    run(d, &job("b.zarr", "b2.zarr"), workers);
                }
                let got = read_all(&d.join("a.zarr"));
                let want = read_all(&d.join("b2.zarr"));
                assert!(
                    got == want,
                    "{name}, chunks {chunks}, {workers} workers: in place differs from out of place"
                );
                assert!(
                    files(&d.join("a.zarr")) == files(&d.join("b2.zarr")),
                    "{name}, chunks {chunks}, {workers} workers: stored files differ"
                );
                // Nothing is left beside the array.
                assert!(!d.join("a.zarr.tessera-tmp").exists());
                assert!(!d.join("a.zarr.tessera-lock").exists());
                let _ = std::fs::remove_dir_all(d.join("b2.zarr"));
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 18);
}

#[test]
fn a_symlinked_spelling_updates_the_array_it_names() {
    let dir = TempDir::new("inplace-link");
    let d = dir.path();
    run(
        d,
        "random((4, 40, 40), dtype=\"u16\", chunks=(1, 20, 20), seed=4).write(\"a.zarr\")",
        1,
    );
    copy_dir(&d.join("a.zarr"), &d.join("b.zarr"));
    std::os::unix::fs::symlink(d.join("a.zarr"), d.join("link.zarr")).unwrap();
    run(
        d,
        "let x = zarr(\"link.zarr\")\n(x // 2).write(\"a.zarr\", overwrite=true)",
        2,
    );
    run(
        d,
        "let x = zarr(\"b.zarr\")\n(x // 2).write(\"b2.zarr\")",
        2,
    );
    assert!(read_all(&d.join("a.zarr")) == read_all(&d.join("b2.zarr")));
    // The link still names the (updated) array.
    let md = std::fs::symlink_metadata(d.join("link.zarr")).unwrap();
    assert!(md.file_type().is_symlink());
    assert!(read_all(&d.join("link.zarr")) == read_all(&d.join("b2.zarr")));
}

#[test]
fn writing_an_input_whole_without_overwrite_is_refused() {
    let dir = TempDir::new("inplace-refused");
    let d = dir.path();
    run(
        d,
        "zeros((4, 8), dtype=\"u8\", chunks=(2, 8)).write(\"a.zarr\")",
        1,
    );
    let before = files(&d.join("a.zarr"));
    let mut e = Engine::new().with_base_dir(d);
    let opts = RunOptions {
        workers: 1,
        progress: Progress::None,
    };
    let err = e
        .run(
            "t.tsr",
            "let x = zarr(\"a.zarr\")\n(x + 1).write(\"./a.zarr\")",
            &opts,
        )
        .unwrap_err();
    let shown = e.render(&err, false);
    assert!(shown.contains("E0408"), "{shown}");
    assert!(shown.contains("overwrite=true"), "{shown}");
    assert!(files(&d.join("a.zarr")) == before);
}

fn tessera(dir: &Path, args: &[&str]) -> Output {
    run_reported(dir, args)
}

fn ok(out: &Output) -> String {
    succeeded(out)
}

/// 12 planes of 512² f32 in 128² chunks (192), blurred and written back into four
/// overlapping regions of the same array.
const GEN: &str = "random((12, 512, 512), dtype=\"f32\", chunks=(1, 128, 128), seed=9).write(\"a.zarr\", overwrite=true)\n";
const JOB: &str = "let x = zarr(\"a.zarr\")\n\
                   x.map(gaussian((0, 3, 3))).write(\"a.zarr\", regions=[(0:12, 0:512, 0:300), (0:12, 200:512, 250:512), (0:6, 0:256, 0:512), (5, 0:512, 0:512)])\n";

#[test]
fn kill_9_again_and_again_then_resume_gives_the_uninterrupted_bytes() {
    let ws = TempDir::new("inplace-kill");
    let d = ws.path();
    std::fs::write(d.join("gen.tsr"), GEN).unwrap();
    std::fs::write(d.join("job.tsr"), JOB).unwrap();
    // Reference: the uninterrupted update.
    ok(&tessera(d, &["run", "gen.tsr", "--quiet"]));
    let original = files(&d.join("a.zarr"));
    let err = ok(&tessera(d, &["run", "job.tsr", "--quiet"]));
    let (tasks, none) = counts(&err);
    assert!(tasks > 150 && none == 0, "{err}");
    let reference = files(&d.join("a.zarr"));
    assert!(reference != original, "the update changed nothing");
    // Interrupted: start from the same input, kill the run at rising counts, resume.
    ok(&tessera(d, &["run", "gen.tsr", "--quiet"]));
    assert!(files(&d.join("a.zarr")) == original);
    let record = d.join("a.zarr.tessera-tmp/output.zarr").join(RECORD);
    let mut kills = 0;
    let mut at = 8;
    while kills < 12 {
        let mut args = vec!["run", "job.tsr", "--quiet", "--workers", "1"];
        if kills > 0 {
            args.push("--resume");
        }
        let mut cmd = Command::new(BIN);
        cmd.current_dir(d).args(&args);
        if kill_when(&mut cmd, || recorded(&record) >= at) {
            break;
        }
        kills += 1;
        // Until the update takes its place, the array is the original.
        if d.join("a.zarr.tessera-tmp/output.zarr").exists() {
            assert!(
                files(&d.join("a.zarr")) == original,
                "kill {kills}: the original changed"
            );
        }
        at += 13;
    }
    assert!(kills >= 10, "only {kills} kills before the run finished");
    let err = ok(&tessera(d, &["run", "job.tsr", "--resume"]));
    let (computed, skipped) = counts(&err);
    assert_eq!(computed + skipped, tasks, "{err}");
    assert!(skipped > 0, "{err}");
    assert!(
        files(&d.join("a.zarr")) == reference,
        "resumed update differs"
    );
    assert!(!d.join("a.zarr.tessera-tmp").exists());
    // Resuming a finished update changes nothing; running it again updates again.
    let err = ok(&tessera(d, &["run", "job.tsr", "--resume"]));
    assert_eq!(counts(&err), (0, tasks), "{err}");
    assert!(files(&d.join("a.zarr")) == reference);
    ok(&tessera(d, &["run", "job.tsr", "--quiet"]));
    assert!(files(&d.join("a.zarr")) != reference);
}
