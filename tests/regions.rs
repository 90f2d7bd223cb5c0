//! Region writes: the rois fixtures are reproduced exactly, many unaligned regions sharing
//! chunks give the same bytes as writing them one at a time, whatever the worker count and
//! chunking, overlapping regions resolve by list order, and bad regions are refused
//! before anything is written.

mod common;

use common::{fixtures, read_all, TempDir};
use tessera::{Engine, Progress, RunOptions};

fn run(dir: &std::path::Path, src: &str, workers: usize) {
    let mut e = Engine::new().with_base_dir(dir);
    let opts = RunOptions {
        workers,
        progress: Progress::None,
    };
    if let Err(d) = e.run("regions.tsr", src, &opts) {
        panic!("{}\n{src}", e.render(&d, false));
    }
}

#[test]
fn rois_fixture_reproduced() {
    let dir = TempDir::new("rois");
    let f = fixtures().join("rois");
    for (expr, reference) in [
        ("x.map(gaussian(2))", "img_u16.gaussian_s2_rois.zarr"),
        (
            "x.astype(\"f32\").map(gaussian(2))",
            "img_u16.gaussian_s2_rois_f32.zarr",
        ),
    ] {
        for workers in [1, 2] {
            let src = format!(
                "let x = zarr({:?})\n{expr}.write(\"out.zarr\", regions=rois({:?}), overwrite=true)\n",
                f.join("img_u16.zarr").display().to_string(),
                f.join("rois.json").display().to_string()
            );
            run(dir.path(), &src, workers);
            let got = read_all(&dir.path().join("out.zarr")).0;
            let want = read_all(&f.join(reference)).0;
            assert!(got == want, "{reference} differs ({workers} workers)");
        }
    }
    // The plan touches exactly the chunks the regions (plus halos) need.
    let mut e = Engine::new().with_base_dir(dir.path());
    let src = format!(
        "let x = zarr({:?})\nx.map(gaussian(2)).write(\"p.zarr\", regions=rois({:?}), overwrite=true)\n",
        f.join("img_u16.zarr").display().to_string(),
        f.join("rois.json").display().to_string()
    );
    let planned = e.plan("plan.tsr", &src).unwrap();
    assert_eq!(
        planned.plan.total_tasks() as usize,
        chunks_touched(&f.join("rois.json"), 64)
    );
}

/// How many distinct `chunk` x `chunk` tiles the regions of a rois file touch.
fn chunks_touched(rois: &std::path::Path, chunk: u64) -> usize {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rois).unwrap()).unwrap();
    let mut tiles = std::collections::BTreeSet::new();
    for roi in doc.as_array().unwrap() {
        let axis = |k: usize| {
            let o = roi["offset"][k].as_u64().unwrap();
            let n = roi["shape"][k].as_u64().unwrap();
            o / chunk..=(o + n - 1) / chunk
        };
        for i in axis(0) {
            for j in axis(1) {
                tiles.insert((i, j));
            }
        }
    }
    assert!(tiles.len() > 1);
    tiles.len()
}

#[test]
fn bad_rois_rejected_naming_the_region() {
    let dir = TempDir::new("rois-bad");
    let f = fixtures().join("rois");
    let src = format!(
        "let x = zarr({:?})\nx.write(\"out.zarr\", regions=rois({:?}))\n",
        f.join("img_u16.zarr").display().to_string(),
        f.join("rois_bad.json").display().to_string()
    );
    let mut e = Engine::new().with_base_dir(dir.path());
    let err = e
        .run("bad.tsr", &src, &RunOptions::default())
        .expect_err("out-of-bounds region must be refused");
    let text = e.render(&err, false);
    assert!(text.contains("region #8"), "{text}");
    assert!(!dir.path().join("out.zarr").exists());
}

/// 50 unaligned regions on a 4-D array, many sharing chunks, some overlapping.
fn regions_4d() -> Vec<String> {
    let mut s = 12345u64;
    let mut next = |n: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % n
    };
    (0..50)
        .map(|_| {
            let t = next(3);
            let c = next(4);
            let y = next(90);
            let x = next(100);
            let h = 3 + next(25);
            let w = 3 + next(30);
            format!(
                "({t}:{}, {c}:{}, {y}:{}, {x}:{})",
                t + 1,
                c + 1 + next(2),
                y + h,
                x + w
            )
        })
        .collect()
}

#[test]
fn parallel_region_writes_equal_one_at_a_time() {
    let dir = TempDir::new("regions4d");
    let regions = regions_4d();
    let list = format!("[{}]", regions.join(", "));
    let setup = "random((3, 6, 120, 130), dtype=\"u16\", chunks=(1, 2, 32, 32), seed=5).write(\"in.zarr\", overwrite=true)";
    run(dir.path(), setup, 2);
    // Reference: one region per run, each a read-modify-write of the existing output.
    let f = "let x = zarr(\"in.zarr\").astype(\"f32\")\nlet y = x.map(gaussian((0, 0, 1.5, 1))) * 2 + 1\n";
    run(
        dir.path(),
        "zeros((3, 6, 120, 130), dtype=\"f32\", chunks=(1, 2, 32, 32)).write(\"ref.zarr\", overwrite=true)",
        1,
    );
    for r in &regions {
        run(
            dir.path(),
            &format!("{f}y.write(\"ref.zarr\", region={r})"),
            1,
        );
    }
    let reference = read_all(&dir.path().join("ref.zarr")).0;
    let mut runs = 0;
    for chunks in ["(1, 2, 32, 32)", "(2, 3, 17, 50)", "(1, 1, 64, 13)"] {
        for workers in [1, 2, 4, 8] {
            for rep in 0..2 {
                let out = format!("out_{runs}.zarr");
                run(
                    dir.path(),
                    &format!(
                        "{f}zeros((3, 6, 120, 130), dtype=\"f32\", chunks={chunks}).write(\"{out}\", overwrite=true)"
                    ),
                    2,
                );
                run(
                    dir.path(),
                    &format!("{f}y.write(\"{out}\", regions={list})"),
                    workers,
                );
                let got = read_all(&dir.path().join(&out)).0;
                assert!(
                    got == reference,
                    "chunks {chunks}, {workers} workers, repeat {rep}: differs from one-at-a-time"
                );
                runs += 1;
                std::fs::remove_dir_all(dir.path().join(&out)).unwrap();
            }
        }
    }
    assert!(runs >= 20);
}

#[test]
fn region_shaped_writes_in_a_loop_equal_sequential_writes() {
    let dir = TempDir::new("loop");
    let x = "let x = random((4, 100, 120), dtype=\"f32\", chunks=(2, 32, 32), seed=2)\n";
    let rs = "[(0, 0:40, 0:50), (1:3, 30:90, 40:120), (3, 95:100, 0:10), (0, 20:60, 30:80)]";
    run(
        dir.path(),
        &format!(
            "{x}for r in {rs} {{ x[r].map(gaussian(1)).write(\"loop.zarr\", region=r, like=x) }}"
        ),
        2,
    );
    for k in 0..4 {
        run(
            dir.path(),
            &format!(
                "{x}let r = {rs}[{k}]\nx[r].map(gaussian(1)).write(\"seq.zarr\", region=r, like=x)"
            ),
            1,
        );
    }
    let a = read_all(&dir.path().join("loop.zarr")).0;
    let b = read_all(&dir.path().join("seq.zarr")).0;
    assert!(a == b, "loop writes differ from sequential writes");
}

#[test]
fn overlapping_regions_resolve_by_order() {
    let dir = TempDir::new("overlap");
    let src = "let rs = [(0:10, 0:10), (5:15, 5:15), (8:12, 0:20)]\n\
               for i in range(3) { full((20, 20), i + 1, dtype=\"u8\")[rs[i]].write(\"o.zarr\", region=rs[i], like=zeros((20, 20), chunks=(8, 8))) }";
    for workers in [1, 2, 4] {
        run(dir.path(), &format!("{src}\n"), workers);
        let (b, _) = read_all(&dir.path().join("o.zarr"));
        let at = |r: usize, c: usize| b.get_f64(r * 20 + c);
        assert_eq!(at(0, 0), 1.0);
        assert_eq!(at(7, 7), 2.0);
        assert_eq!(at(9, 9), 3.0);
        assert_eq!(at(14, 14), 2.0);
        assert_eq!(at(19, 19), 0.0);
        std::fs::remove_dir_all(dir.path().join("o.zarr")).unwrap();
    }
}
