//! The labelling engine (`exec::label`) and region measurements (`exec::regionprops`):
//! scipy's references in the oracle fixtures (`label/`), random masks against an independent
//! flood fill, tiled against untiled for many chunk shapes, and objects that cross many
//! chunks.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use tessera::data::Buf;
use tessera::exec::label::{self, label_in_memory, label_region, resolve, scan_chunk};
use tessera::exec::layout::extract;
use tessera::exec::regionprops::{accumulate_chunk, merge_in_order};
use tessera::geom::{ChunkGrid, Region};
use tessera::io::ZarrReader;

mod common;

/// splitmix64: small and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn as_i64(b: &Buf) -> Vec<i64> {
    match b {
        Buf::I32(v) => v.iter().map(|x| *x as i64).collect(),
        Buf::I64(v) => v.clone(),
        other => panic!("labels of dtype {:?}", other.dtype()),
    }
}

/// The three steps driven one chunk at a time, sequentially.
fn chunked(mask: &Buf, shape: &[u64], chunks: &[u64], conn: usize) -> (Vec<i64>, u64) {
    let grid = ChunkGrid::new(shape.to_vec(), chunks.to_vec());
    let n = grid.num_chunks();
    // Scans in reverse order: resolve must not depend on it.
    let scans: Vec<_> = (0..n)
        .rev()
        .map(|i| {
            let r = grid.chunk_region(&grid.unflatten(i));
            scan_chunk(shape, &r, &extract(mask, shape, &r), conn)
        })
        .collect();
    let table = resolve(&grid, scans, conn);
    let whole = Region::full(shape);
    let out = label_region(&table, &grid, &whole, |r| {
        Ok::<_, ()>(extract(mask, shape, r))
    })
    .unwrap();
    (as_i64(&out), label::count(&table))
}

/// Independent reference: breadth-first flood fill started from each unlabelled
/// foreground pixel in C order.
fn flood_fill(mask: &[bool], shape: &[usize], conn: usize) -> (Vec<i64>, u64) {
    let d = shape.len();
    let mut st = vec![1usize; d];
    for k in (0..d.saturating_sub(1)).rev() {
        st[k] = st[k + 1] * shape[k + 1];
    }
    let mut offs = Vec::new();
    for k in 0..3usize.pow(d as u32) {
        let mut e = vec![0i64; d];
        let mut t = k;
        for ax in (0..d).rev() {
            e[ax] = (t % 3) as i64 - 1;
            t /= 3;
        }
        let nnz = e.iter().filter(|v| **v != 0).count();
        if nnz >= 1 && nnz <= conn {
            offs.push(e);
        }
    }
    let mut out = vec![0i64; mask.len()];
    let mut n = 0;
    let mut q = VecDeque::new();
    for p in 0..mask.len() {
        if !mask[p] || out[p] != 0 {
            continue;
        }
        n += 1;
        out[p] = n;
        q.push_back(p);
        while let Some(x) = q.pop_front() {
            let idx: Vec<i64> = (0..d).map(|k| ((x / st[k]) % shape[k]) as i64).collect();
            for e in &offs {
                let mut y = 0usize;
                let mut ok = true;
                for k in 0..d {
                    let c = idx[k] + e[k];
                    if c < 0 || c >= shape[k] as i64 {
                        ok = false;
                        break;
                    }
                    y += c as usize * st[k];
                }
                if ok && mask[y] && out[y] == 0 {
                    out[y] = n;
                    q.push_back(y);
                }
            }
        }
    }
    (out, n as u64)
}

fn read_whole(path: &Path) -> (Buf, Vec<u64>, Vec<u64>) {
    let r = ZarrReader::open(path).unwrap();
    let m = r.meta().clone();
    let b = r.read_region(&Region::full(&m.shape)).unwrap();
    (b, m.shape, m.chunks)
}

fn chunkings(shape: &[u64], own: &[u64]) -> Vec<Vec<u64>> {
    let d = shape.len();
    let mut v = vec![
        own.to_vec(),
        shape.to_vec(),
        vec![1; d],
        shape.iter().map(|n| n.div_ceil(2)).collect(),
        shape.iter().map(|n| n.div_ceil(3) + 1).collect(),
    ];
    for ax in 0..d {
        // One-pixel slabs along each axis.
        let mut c = shape.to_vec();
        c[ax] = 1;
        v.push(c);
        let mut c = own.to_vec();
        c[ax] = 1;
        v.push(c);
    }
    v.push(
        (0..d as u64)
            .map(|k| [7, 5, 3, 9][k as usize % 4])
            .collect(),
    );
    v.push(
        (0..d as u64)
            .map(|k| [2, 11, 4, 13][k as usize % 4])
            .collect(),
    );
    v
}

#[test]
fn fixtures_match_scipy_for_every_chunking() {
    check_label_fixtures(&common::fixtures().join("label"));
    // The same checks on an independently produced set, when there is one.
    if let Some(other) = common::crosscheck_fixtures() {
        check_label_fixtures(&other.join("label"));
    }
}

/// Every mask in `dir` against both of scipy's labellings: as many components as scipy
/// found (its largest label), and the same numbering, whatever the chunking.
fn check_label_fixtures(dir: &Path) {
    for name in ["mask2d_u8", "mask3d_u8"] {
        let (mask, shape, own) = read_whole(&dir.join(format!("{name}.zarr")));
        let d = shape.len();
        for (suffix, conn) in [("label_conn1", 1), ("label_full", d)] {
            let (want, _, _) = read_whole(&dir.join(format!("{name}.{suffix}.zarr")));
            let want = as_i64(&want);
            let n = *want.iter().max().unwrap() as u64;
            assert!(n > 1, "{name} {suffix}: scipy found {n} objects");
            for chunks in chunkings(&shape, &own) {
                let (got, count) = chunked(&mask, &shape, &chunks, conn);
                assert_eq!(count, n, "{name} {suffix} chunks {chunks:?}");
                assert!(got == want, "{name} {suffix} chunks {chunks:?}");
            }
            // Parallel driver, and pass 2 reading straight from the store.
            let (par, count) = label_in_memory(&mask, &shape, &[3; 3][..d], conn);
            assert_eq!((as_i64(&par), count), (want.clone(), n));
            let reader = ZarrReader::open(&dir.join(format!("{name}.zarr"))).unwrap();
            let grid = ChunkGrid::new(shape.clone(), own.clone());
            let scans: Vec<_> = (0..grid.num_chunks())
                .map(|i| {
                    let r = grid.chunk_region(&grid.unflatten(i));
                    scan_chunk(&shape, &r, &reader.read_region(&r).unwrap(), conn)
                })
                .collect();
            let table = resolve(&grid, scans, conn);
            let got = label_region(&table, &grid, &Region::full(&shape), |r| {
                reader.read_region(r)
            })
            .unwrap();
            assert!(as_i64(&got) == want, "{name} {suffix} from the store");
        }
    }
}

fn random_mask(rng: &mut Rng, shape: &[u64], density: f64) -> Vec<bool> {
    let n: u64 = shape.iter().product();
    (0..n).map(|_| rng.unit() < density).collect()
}

#[test]
fn random_masks_match_flood_fill_and_every_tiling() {
    let mut rng = Rng(0x5eed);
    let mut cases = 0;
    for ndim in 1..=4usize {
        let max_side = [40u64, 14, 8, 5][ndim - 1];
        for trial in 0..12 {
            let shape: Vec<u64> = (0..ndim).map(|_| 1 + rng.below(max_side)).collect();
            let density = [0.2, 0.45, 0.6, 0.8][trial % 4];
            let m = random_mask(&mut rng, &shape, density);
            let us: Vec<usize> = shape.iter().map(|n| *n as usize).collect();
            let mask = Buf::U8(m.iter().map(|b| *b as u8).collect());
            for conn in 1..=ndim {
                let (want, n) = flood_fill(&m, &us, conn);
                let (untiled, count) = chunked(&mask, &shape, &shape, conn);
                assert_eq!(count, n, "shape {shape:?} conn {conn}");
                assert!(untiled == want, "untiled shape {shape:?} conn {conn}");
                let mut tilings: Vec<Vec<u64>> = vec![vec![1; ndim]];
                for _ in 0..5 {
                    tilings.push(shape.iter().map(|s| 1 + rng.below(*s)).collect());
                }
                for chunks in tilings {
                    let (got, count) = chunked(&mask, &shape, &chunks, conn);
                    assert_eq!(count, n, "shape {shape:?} chunks {chunks:?} conn {conn}");
                    assert!(got == want, "shape {shape:?} chunks {chunks:?} conn {conn}");
                    cases += 1;
                }
            }
        }
    }
    assert!(cases > 300);
}

#[test]
fn any_region_and_any_mask_dtype() {
    let mut rng = Rng(7);
    let shape = [13u64, 17, 6];
    let m = random_mask(&mut rng, &shape, 0.55);
    let us: Vec<usize> = shape.iter().map(|n| *n as usize).collect();
    let (want, n) = flood_fill(&m, &us, 2);
    // The same foreground in several dtypes: non-zero is foreground.
    let masks = [
        Buf::Bool(m.clone()),
        Buf::I16(m.iter().map(|b| if *b { -3 } else { 0 }).collect()),
        Buf::F32(m.iter().map(|b| if *b { 0.5 } else { 0.0 }).collect()),
        Buf::I8(m.iter().map(|b| if *b { -1 } else { 0 }).collect()),
        Buf::U64(m.iter().map(|b| *b as u64 * 1000).collect()),
    ];
    let grid = ChunkGrid::new(shape.to_vec(), vec![4, 5, 4]);
    for mask in &masks {
        let (got, count) = chunked(mask, &shape, &[4, 5, 4], 2);
        assert_eq!((got.clone(), count), (want.clone(), n));
        let scans: Vec<_> = (0..grid.num_chunks())
            .map(|i| {
                let r = grid.chunk_region(&grid.unflatten(i));
                scan_chunk(&shape, &r, &extract(mask, &shape, &r), 2)
            })
            .collect();
        let table = resolve(&grid, scans, 2);
        for _ in 0..20 {
            let start: Vec<u64> = shape.iter().map(|s| rng.below(*s)).collect();
            let end: Vec<u64> = start
                .iter()
                .zip(&shape)
                .map(|(a, s)| a + 1 + rng.below(s - a))
                .collect();
            let r = Region::new(start, end);
            let got =
                label_region(&table, &grid, &r, |c| Ok::<_, ()>(extract(mask, &shape, c))).unwrap();
            let want_r = extract(&Buf::I64(want.clone()), &shape, &r);
            assert_eq!(as_i64(&got), as_i64(&want_r), "region {r}");
        }
    }
}

/// A one-pixel-wide square spiral in an n × n image.
fn spiral(n: usize) -> Vec<bool> {
    let mut m = vec![false; n * n];
    let (mut top, mut left, mut bottom, mut right) = (0i64, 0i64, n as i64 - 1, n as i64 - 1);
    let set = |m: &mut Vec<bool>, r: i64, c: i64| m[r as usize * n + c as usize] = true;
    while top <= bottom && left <= right {
        for c in left..=right {
            set(&mut m, top, c);
        }
        for r in top..=bottom {
            set(&mut m, r, right);
        }
        if bottom - top >= 2 {
            for c in left..=right {
                set(&mut m, bottom, c);
            }
        }
        if right - left >= 2 && bottom - top >= 4 {
            for r in top + 2..=bottom {
                set(&mut m, r, left);
            }
            set(&mut m, top + 2, left + 1);
        }
        top += 2;
        left += 2;
        bottom -= 2;
        right -= 2;
    }
    m
}

#[test]
fn objects_crossing_many_chunks() {
    let n = 41usize;
    let m = spiral(n);
    let shape = [n as u64, n as u64];
    let mask = Buf::Bool(m.clone());
    for conn in 1..=2 {
        let (want, count) = flood_fill(&m, &[n, n], conn);
        assert_eq!(count, 1, "the spiral is one object");
        for chunks in [[1, 1], [3, 3], [2, 7], [41, 1], [1, 41], [5, 40]] {
            let (got, c) = chunked(&mask, &shape, &chunks, conn);
            assert_eq!(c, 1);
            assert!(got == want, "spiral chunks {chunks:?}");
        }
    }

    // Diagonal and anti-diagonal lines touching only at corners: one object each with
    // connectivity 2, one object per pixel with connectivity 1.
    let n = 30usize;
    let mut m = vec![false; n * n];
    for i in 0..n {
        m[i * n + i] = true;
    }
    // An anti-diagonal that stops short of the diagonal.
    let anti = 12;
    for i in 0..anti {
        m[i * n + (n - 1 - i)] = true;
    }
    let mask = Buf::Bool(m.clone());
    let shape = [n as u64, n as u64];
    for chunks in [[1, 1], [2, 2], [3, 4], [7, 7], [30, 30]] {
        let (got1, c1) = chunked(&mask, &shape, &chunks, 1);
        let (got2, c2) = chunked(&mask, &shape, &chunks, 2);
        assert_eq!(c1, (n + anti) as u64);
        assert_eq!((got1, c1), flood_fill(&m, &[n, n], 1));
        assert_eq!((got2.clone(), c2), flood_fill(&m, &[n, n], 2));
        assert_eq!(c2, 2, "chunks {chunks:?}");
        assert_eq!(got2[0], 1);
        assert_eq!(got2[n - 1], 2);
    }

    // A 3-d vertex-diagonal chain through 1×1×1 chunks: connectivity 3 only.
    let n = 9usize;
    let mut m = vec![false; n * n * n];
    for i in 0..n {
        m[i * n * n + i * n + i] = true;
    }
    let mask = Buf::Bool(m);
    let shape = [n as u64; 3];
    for chunks in [[1, 1, 1], [2, 2, 2], [4, 3, 2]] {
        assert_eq!(chunked(&mask, &shape, &chunks, 1).1, n as u64);
        assert_eq!(chunked(&mask, &shape, &chunks, 2).1, n as u64);
        assert_eq!(chunked(&mask, &shape, &chunks, 3).1, 1);
    }
}

#[test]
fn empty_and_full_masks() {
    for shape in [vec![5u64], vec![4, 6], vec![3, 2, 5], vec![2, 3, 2, 2, 3]] {
        let size: u64 = shape.iter().product();
        let d = shape.len();
        for conn in 1..=d {
            let (z, c) = chunked(&Buf::U8(vec![0; size as usize]), &shape, &vec![2; d], conn);
            assert_eq!(c, 0);
            assert!(z.iter().all(|x| *x == 0));
            let (o, c) = chunked(&Buf::U8(vec![1; size as usize]), &shape, &vec![2; d], conn);
            assert_eq!(c, 1);
            assert!(o.iter().all(|x| *x == 1));
        }
    }
}

#[test]
fn five_dimensions() {
    let mut rng = Rng(99);
    let shape = [3u64, 4, 3, 4, 3];
    let m = random_mask(&mut rng, &shape, 0.3);
    let us: Vec<usize> = shape.iter().map(|n| *n as usize).collect();
    let mask = Buf::Bool(m.clone());
    for conn in 1..=5 {
        let (want, n) = flood_fill(&m, &us, conn);
        for chunks in [[1u64, 1, 1, 1, 1], [2, 3, 2, 3, 2], [3, 4, 3, 4, 3]] {
            let (got, c) = chunked(&mask, &shape, &chunks, conn);
            assert_eq!(c, n);
            assert!(got == want, "conn {conn} chunks {chunks:?}");
        }
    }
}

struct RefProps {
    area: u64,
    csum: Vec<f64>,
    lo: Vec<u64>,
    hi: Vec<u64>,
    vals: Vec<f64>,
}

#[test]
fn regionprops_match_direct_computation() {
    let mut rng = Rng(2024);
    for shape in [vec![37u64, 23], vec![9, 11, 7]] {
        let d = shape.len();
        let m = random_mask(&mut rng, &shape, 0.5);
        let us: Vec<usize> = shape.iter().map(|n| *n as usize).collect();
        let (labels, n) = flood_fill(&m, &us, 1);
        let inten: Vec<u16> = (0..labels.len()).map(|_| rng.below(1000) as u16).collect();

        // Direct: every pixel, in one pass.
        let mut want: BTreeMap<i64, RefProps> = BTreeMap::new();
        let whole = Region::full(&shape);
        for (p, idx) in tessera::geom::iter_box(&whole).enumerate() {
            let l = labels[p];
            if l == 0 {
                continue;
            }
            let e = want.entry(l).or_insert(RefProps {
                area: 0,
                csum: vec![0.0; d],
                lo: vec![u64::MAX; d],
                hi: vec![0; d],
                vals: Vec::new(),
            });
            e.area += 1;
            for (k, &i) in idx.iter().enumerate() {
                e.csum[k] += i as f64;
                e.lo[k] = e.lo[k].min(i);
                e.hi[k] = e.hi[k].max(i + 1);
            }
            e.vals.push(inten[p] as f64);
        }
        assert_eq!(want.len() as u64, n);

        let lbuf = Buf::I32(labels.iter().map(|x| *x as i32).collect());
        let ibuf = Buf::U16(inten);
        let mut tables = Vec::new();
        for chunks in [
            shape.clone(),
            vec![1; d],
            vec![4; d],
            vec![5, 3, 2][..d].to_vec(),
        ] {
            let grid = ChunkGrid::new(shape.clone(), chunks);
            let mut parts: Vec<_> = (0..grid.num_chunks())
                .map(|i| {
                    let r = grid.chunk_region(&grid.unflatten(i));
                    let l = extract(&lbuf, &shape, &r);
                    let v = extract(&ibuf, &shape, &r);
                    (i, accumulate_chunk(&r, &l, Some(&v)).unwrap())
                })
                .collect();
            parts.reverse();
            let t = merge_in_order(d, true, parts);
            assert_eq!(t.rows.len(), want.len());
            for (row, (l, w)) in t.rows.iter().zip(&want) {
                assert_eq!(row.label as i64, *l);
                assert_eq!(row.area, w.area);
                assert_eq!(row.bbox_min, w.lo);
                assert_eq!(row.bbox_max, w.hi);
                for k in 0..d {
                    let c = w.csum[k] / w.area as f64;
                    assert!((row.centroid[k] - c).abs() <= 1e-12 * c.abs().max(1.0));
                }
                let [mean, min, max] = row.intensity.unwrap();
                let wm = w.vals.iter().sum::<f64>() / w.area as f64;
                assert!((mean - wm).abs() <= 1e-9 * wm.abs().max(1.0));
                assert_eq!(min, w.vals.iter().cloned().fold(f64::INFINITY, f64::min));
                assert_eq!(
                    max,
                    w.vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                );
            }
            tables.push(t);
        }
        // Integer intensities sum exactly: every chunking gives the same table.
        for t in &tables[1..] {
            assert_eq!(t, &tables[0]);
        }
        let csv = tables[0].to_csv();
        assert_eq!(csv.lines().count() as u64, n + 1);
        let shown = tables[0].to_string();
        assert!(shown.contains("...") && shown.contains(&format!("[{n} rows x")));
    }
}
