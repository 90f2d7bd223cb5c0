//! `label` against scipy.ndimage.label (the oracle fixtures in `label/`), bit
//! for bit, under several mask chunkings and worker counts; component counts through
//! `max()`; objects that cross many tiny chunks; `regionprops` against measurements
//! computed here from the labels.

mod common;

use common::{fixtures, read_all, TempDir};
use tessera::data::Buf;
use tessera::dtype::DType;
use tessera::{Engine, Progress, RunOptions};

fn opts(workers: usize) -> RunOptions {
    RunOptions {
        workers,
        progress: Progress::None,
    }
}

fn run(engine: &mut Engine, src: &str, workers: usize) -> Vec<String> {
    match engine.run("t.tsr", src, &opts(workers)) {
        Ok(r) => r.printed,
        Err(d) => panic!("{}\n{src}", engine.render(&d, false)),
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    let p = fixtures().join("label").join(name);
    assert!(
        p.exists(),
        "{} is missing from the oracle fixtures",
        p.display()
    );
    p
}

/// How many objects scipy found: its largest label.
fn objects(labels: &Buf) -> i64 {
    ints(labels).into_iter().max().unwrap()
}

fn ints(b: &Buf) -> Vec<i64> {
    (0..b.len()).map(|i| b.get_f64(i) as i64).collect()
}

/// Label the fixture mask with every chunking and worker count and compare with scipy's
/// labels; the count printed by `max()` must match too.
fn check_fixture(mask: &str, conns: &[(usize, &str)], chunkings: &[&str]) {
    let input = fixture(mask);
    let dir = TempDir::new("label");
    let mut e = Engine::new().with_base_dir(dir.path());
    for (conn, reference) in conns {
        let (want, want_shape) = read_all(&fixture(reference));
        let count = objects(&want);
        for chunks in chunkings {
            for workers in [1, 2, 4] {
                let src = format!(
                    "let m = zarr(\"{}\"){}\n\
                     let l = label(m, connectivity={conn})\n\
                     l.write(\"out.zarr\", overwrite=true)\n\
                     print(l.max())",
                    input.display(),
                    if chunks.is_empty() {
                        String::new()
                    } else {
                        format!(".rechunk({chunks})")
                    }
                );
                let printed = run(&mut e, &src, workers);
                assert_eq!(printed, vec![count.to_string()], "{src}");
                let (got, shape) = read_all(&dir.path().join("out.zarr"));
                assert_eq!(shape, want_shape);
                assert_eq!(got.dtype(), DType::I32, "{src}");
                assert_eq!(
                    got.to_le_bytes(),
                    want.to_le_bytes(),
                    "{src} ({workers} workers)"
                );
            }
        }
    }
}

#[test]
fn labels_2d_match_scipy() {
    check_fixture(
        "mask2d_u8.zarr",
        &[
            (1, "mask2d_u8.label_conn1.zarr"),
            (2, "mask2d_u8.label_full.zarr"),
        ],
        &["", "(1, 1)", "(7, 9)", "(16, 60)", "(56, 1)", "-1"],
    );
}

#[test]
fn labels_3d_match_scipy() {
    check_fixture(
        "mask3d_u8.zarr",
        &[
            (1, "mask3d_u8.label_conn1.zarr"),
            (3, "mask3d_u8.label_full.zarr"),
        ],
        &["", "(3, 5, 7)", "(1, 1, 26)", "(14, 1, 1)", "(2, 2, 2)"],
    );
}

/// A comparison as the mask, labels streamed from a bool expression, and a read of a
/// region of the labels that does not start at a chunk.
#[test]
fn labels_of_an_expression_and_a_slice() {
    let input = fixture("mask2d_u8.zarr");
    let (want, shape) = read_all(&fixture("mask2d_u8.label_conn1.zarr"));
    let dir = TempDir::new("label-slice");
    let mut e = Engine::new().with_base_dir(dir.path());
    let src = format!(
        "let m = zarr(\"{}\").rechunk((5, 6)) > 0\n\
         label(m)[3:50, 7:41].write(\"part.zarr\")",
        input.display()
    );
    run(&mut e, &src, 2);
    let (got, _) = read_all(&dir.path().join("part.zarr"));
    let w = ints(&want);
    let g = ints(&got);
    let mut k = 0;
    for y in 3..50 {
        for x in 7..41 {
            assert_eq!(g[k], w[y * shape[1] as usize + x], "({y}, {x})");
            k += 1;
        }
    }
}

/// A spiral one pixel wide through 1-pixel chunks is one component; a diagonal line is
/// one component with connectivity 2 and one per pixel with connectivity 1.
#[test]
fn objects_spanning_many_tiny_chunks() {
    let n = 21usize;
    let mut mask = vec![0u8; n * n];
    // A square spiral from the outside in, with a gap of one pixel between turns.
    let (mut top, mut left, mut bottom, mut right) = (0i64, 0i64, n as i64 - 1, n as i64 - 1);
    let mut pixels = 0;
    while top <= bottom && left <= right {
        for x in left..=right {
            mask[top as usize * n + x as usize] = 1;
            pixels += 1;
        }
        for y in top + 1..=bottom {
            mask[y as usize * n + right as usize] = 1;
            pixels += 1;
        }
        if top + 2 > bottom {
            break;
        }
        for x in (left..right).rev() {
            mask[bottom as usize * n + x as usize] = 1;
            pixels += 1;
        }
        for y in (top + 2..bottom).rev() {
            mask[y as usize * n + left as usize] = 1;
            pixels += 1;
        }
        mask[(top + 2) as usize * n + (left + 1) as usize] = 1;
        pixels += 1;
        top += 2;
        left += 2;
        bottom -= 2;
        right -= 2;
    }
    let dir = TempDir::new("label-spiral");
    let path = dir.path().join("spiral.zarr");
    write_u8(&path, &mask, &[n as u64, n as u64], &[1, 1]);
    let mut e = Engine::new().with_base_dir(dir.path());
    for workers in [1, 4] {
        let printed = run(
            &mut e,
            "let l = label(zarr(\"spiral.zarr\"))\n\
             l.write(\"l.zarr\", overwrite=true)\n\
             print(l.max(), (l == 1).sum())",
            workers,
        );
        assert_eq!(printed, vec![format!("1 {pixels}")]);
        let (got, _) = read_all(&dir.path().join("l.zarr"));
        assert_eq!(
            ints(&got),
            mask.iter().map(|v| *v as i64).collect::<Vec<_>>()
        );
    }
    // A diagonal line through 1-pixel chunks.
    let mut diag = vec![0u8; n * n];
    for i in 0..n {
        diag[i * n + i] = 1;
    }
    write_u8(
        &dir.path().join("diag.zarr"),
        &diag,
        &[n as u64, n as u64],
        &[1, 1],
    );
    let printed = run(
        &mut e,
        "let m = zarr(\"diag.zarr\")\nprint(label(m, connectivity=2).max(), label(m).max())",
        2,
    );
    assert_eq!(printed, vec![format!("1 {n}")]);
}

fn write_u8(path: &std::path::Path, data: &[u8], shape: &[u64], chunks: &[u64]) {
    use tessera::geom::{ChunkGrid, Region};
    use tessera::io::{Codec, WriteOptions, ZarrWriter};
    let o = WriteOptions {
        codec: Codec::None,
        level: None,
        overwrite: true,
        dimension_names: None,
    };
    let w =
        ZarrWriter::create(path, shape, chunks, DType::U8, &Buf::U8(vec![0]), &o).expect("create");
    let grid = ChunkGrid::new(shape.to_vec(), chunks.to_vec());
    let full = Buf::U8(data.to_vec());
    for flat in 0..grid.num_chunks() {
        let idx = grid.unflatten(flat);
        let r: Region = grid.chunk_region(&idx);
        let part = tessera::exec::layout::extract(&full, shape, &r);
        w.write_chunk(&idx, &part).expect("write");
    }
    w.finish().expect("finish");
}

/// Region measurements against values computed here from the labels and the intensity.
#[test]
fn regionprops_match_direct_measurements() {
    let input = fixture("mask2d_u8.zarr");
    let count = objects(&read_all(&fixture("mask2d_u8.label_full.zarr")).0);
    let dir = TempDir::new("label-props");
    let mut e = Engine::new().with_base_dir(dir.path());
    let src = format!(
        "let m = zarr(\"{}\")\n\
         let l = label(m, connectivity=2)\n\
         let x = random((56, 60), chunks=(32, 32), seed=3).astype(\"f64\")\n\
         l.write(\"l.zarr\")\n\
         x.write(\"x.zarr\")\n\
         regionprops(l.rechunk((9, 11)), intensity=x.rechunk((9, 11))).write_csv(\"props.csv\")\n\
         print(regionprops(l))",
        input.display()
    );
    for workers in [1, 3] {
        let _ = std::fs::remove_dir_all(dir.path().join("l.zarr"));
        let _ = std::fs::remove_dir_all(dir.path().join("x.zarr"));
        let _ = std::fs::remove_file(dir.path().join("props.csv"));
        let printed = run(&mut e, &src, workers);
        assert!(
            printed[0].contains(&format!("[{count} rows x 8 columns]")),
            "{}",
            printed[0]
        );
        let (l, shape) = read_all(&dir.path().join("l.zarr"));
        let (x, _) = read_all(&dir.path().join("x.zarr"));
        let l = ints(&l);
        let w = shape[1] as usize;
        let csv = std::fs::read_to_string(dir.path().join("props.csv")).unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "label,area,centroid-0,centroid-1,bbox-0,bbox-1,bbox-2,bbox-3,\
             mean_intensity,min_intensity,max_intensity"
        );
        let rows: Vec<Vec<f64>> = lines
            .map(|r| r.split(',').map(|v| v.parse().unwrap()).collect())
            .collect();
        assert_eq!(rows.len() as i64, count);
        for (k, row) in rows.iter().enumerate() {
            let lab = k as i64 + 1;
            assert_eq!(row[0], lab as f64);
            let px: Vec<usize> = (0..l.len()).filter(|i| l[*i] == lab).collect();
            let area = px.len() as f64;
            let cy = px.iter().map(|i| (i / w) as f64).sum::<f64>() / area;
            let cx = px.iter().map(|i| (i % w) as f64).sum::<f64>() / area;
            let y0 = px.iter().map(|i| i / w).min().unwrap() as f64;
            let y1 = px.iter().map(|i| i / w).max().unwrap() as f64 + 1.0;
            let x0 = px.iter().map(|i| i % w).min().unwrap() as f64;
            let x1 = px.iter().map(|i| i % w).max().unwrap() as f64 + 1.0;
            let vals: Vec<f64> = px.iter().map(|i| x.get_f64(*i)).collect();
            let mean = vals.iter().sum::<f64>() / area;
            let mn = vals.iter().cloned().fold(f64::INFINITY, f64::min);
            let mx = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let want = [lab as f64, area, cy, cx, y0, x0, y1, x1, mean, mn, mx];
            for (g, w) in row.iter().zip(want) {
                assert!(
                    (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                    "label {lab}: {row:?} vs {want:?}"
                );
            }
        }
    }
}
