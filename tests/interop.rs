//! Storage interop: every zarr-python fixture store reads back with the expected metadata
//! and checksums; every dtype x codec x chunking round-trips exactly; the error taxonomy
//! of open/create/overwrite holds.

use std::path::{Path, PathBuf};

use num_complex::{Complex32, Complex64};
use rayon::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera::data::Buf;
use tessera::dtype::{self, DType};
use tessera::geom::{iter_box, ChunkGrid, Region};
use tessera::io::{Codec, IoError, WriteOptions, ZarrReader, ZarrWriter};

mod common;

/// The zarr-python stores of the oracle fixtures.
fn interop() -> PathBuf {
    common::fixtures().join("interop")
}

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("bad number {s}")),
        Value::Number(n) => n.as_f64().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

fn same_f64(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

fn shape_of(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn full(shape: &[u64]) -> Region {
    Region::full(shape)
}

/// Checksums as the fixture README defines them (plain left-to-right f64 sums).
fn check_checksum(name: &str, buf: &Buf, want: &Value) {
    let (mut sum, mut wsum, mut nan) = (0.0f64, 0.0f64, 0u64);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for i in 0..buf.len() {
        let v = buf.get_f64(i);
        if v.is_nan() {
            nan += 1;
            continue;
        }
        sum += v;
        wsum += v * ((i % 1009) + 1) as f64;
        min = min.min(v);
        max = max.max(v);
    }
    assert_eq!(sum, num(&want["sum"]), "{name}: sum");
    assert_eq!(wsum, num(&want["wsum"]), "{name}: wsum");
    assert_eq!(min, num(&want["min"]), "{name}: min");
    assert_eq!(max, num(&want["max"]), "{name}: max");
    assert_eq!(
        nan,
        want["nan_count"].as_u64().unwrap(),
        "{name}: nan_count"
    );
    let digest = Sha256::digest(buf.to_le_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, want["sha256_c_le"].as_str().unwrap(), "{name}: sha256");
}

/// The sub-box `r` of a dense C-order buffer of `shape`, element by element.
fn slice_bytes(buf: &Buf, shape: &[u64], r: &Region) -> Vec<u8> {
    let size = buf.dtype().size();
    let bytes = buf.to_le_bytes();
    let strides = tessera::geom::strides(shape);
    let mut out = Vec::new();
    for idx in iter_box(r) {
        let flat: usize = idx.iter().zip(&strides).map(|(i, s)| *i as usize * s).sum();
        out.extend_from_slice(&bytes[flat * size..(flat + 1) * size]);
    }
    out
}

/// The stores in `dir` with their sidecars, by name.
fn fixtures(dir: &Path) -> Vec<(String, Value)> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).expect("fixtures directory") {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".expected.json") {
            let doc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            out.push((stem.to_string(), doc));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_interop_fixture_reads_with_expected_checksums() {
    check_interop_set(&interop());
    // The same checks on an independently produced set, when there is one.
    if let Some(other) = common::crosscheck_fixtures() {
        check_interop_set(&other.join("interop"));
    }
}

fn check_interop_set(dir: &Path) {
    let all = fixtures(dir);
    assert_eq!(
        all.len(),
        11,
        "expected the 11 interop stores in {}",
        dir.display()
    );
    for (name, want) in all {
        let path = dir.join(format!("{name}.zarr"));
        let r = ZarrReader::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let m = r.meta();
        assert_eq!(m.shape, shape_of(&want["shape"]), "{name}: shape");
        assert_eq!(m.chunks, shape_of(&want["chunks"]), "{name}: chunks");
        assert_eq!(
            m.dtype.numpy_name(),
            want["dtype"].as_str().unwrap(),
            "{name}: dtype"
        );
        assert_eq!(
            m.zarr_format as u64,
            want["zarr_format"].as_u64().unwrap(),
            "{name}: format"
        );
        assert_eq!(m.fill.len(), 1);
        assert!(
            same_f64(m.fill.get_f64(0), num(&want["fill_value"])),
            "{name}: fill"
        );
        assert!(!m.codec_summary.is_empty());

        let whole = r
            .read_region(&full(&m.shape))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(whole.len() as u64, m.shape.iter().product::<u64>());
        check_checksum(&name, &whole, &want["checksum"]);
        for (i, v) in want["first10_c_order"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            assert!(same_f64(whole.get_f64(i), num(v)), "{name}: first10[{i}]");
        }

        // Chunk by chunk, the same bytes.
        let grid = ChunkGrid::new(m.shape.clone(), m.chunks.clone());
        for idx in iter_box(&Region::full(&grid.grid_shape())) {
            let c = r.read_chunk(&idx).unwrap();
            let reg = grid.chunk_region(&idx);
            assert_eq!(
                c.to_le_bytes(),
                slice_bytes(&whole, &m.shape, &reg),
                "{name}: chunk {idx:?}"
            );
        }
        // An unaligned interior region, twice into the same reused buffer.
        let inner = Region::new(
            vec![1; m.shape.len()],
            m.shape.iter().map(|n| n - 2).collect(),
        );
        let mut out = Buf::zeros(m.dtype, inner.size() as usize);
        for _ in 0..2 {
            r.read_region_into(&inner, &mut out).unwrap();
            assert_eq!(
                out.to_le_bytes(),
                slice_bytes(&whole, &m.shape, &inner),
                "{name}: inner region"
            );
        }
        // Missing chunks read as the fill value.
        if let Some(missing) = want.get("missing_chunks").and_then(Value::as_array) {
            assert!(!missing.is_empty());
            for idx in missing {
                let idx = shape_of(idx);
                let c = r.read_chunk(&idx).unwrap();
                assert!(
                    (0..c.len()).all(|i| same_f64(c.get_f64(i), m.fill.get_f64(0))),
                    "{name}: missing {idx:?}"
                );
                let file = if m.zarr_format == 3 {
                    let parts: Vec<String> = idx.iter().map(u64::to_string).collect();
                    path.join("c").join(parts.join("/"))
                } else {
                    let parts: Vec<String> = idx.iter().map(u64::to_string).collect();
                    path.join(parts.join("."))
                };
                assert!(
                    !file.exists(),
                    "{name}: chunk {idx:?} should be absent on disk"
                );
            }
        }
    }
}

#[test]
fn fixture_specifics() {
    let open = |n: &str| ZarrReader::open(&interop().join(n)).unwrap();
    // F-order v2: element [i, j] is 1000 i + j + k/4 in C order.
    let f = open("v2_orderF_f32_2d.zarr");
    let b = f.read_region(&Region::new(vec![3, 5], vec![4, 7])).unwrap();
    assert_eq!((b.get_f64(0) - 3005.0).floor(), 0.0);
    assert_eq!((b.get_f64(1) - 3006.0).floor(), 0.0);
    assert!(
        f.meta().codec_summary.contains("order F"),
        "{}",
        f.meta().codec_summary
    );
    let s = open("v3_sharded_zstd_f32_2d.zarr");
    assert!(
        s.meta().codec_summary.starts_with("sharding_indexed("),
        "{}",
        s.meta().codec_summary
    );
    assert!(matches!(&open("v2_nanfill_f32_2d.zarr").meta().fill, Buf::F32(v) if v[0].is_nan()));
    assert_eq!(
        open("v3_missing_fill_i16_2d.zarr").meta().fill,
        Buf::I16(vec![7])
    );
    let be = open("v3_raw_bigendian_f64_2d.zarr");
    assert!(
        be.meta().codec_summary.contains("endian=big"),
        "{}",
        be.meta().codec_summary
    );
}

#[test]
fn reader_is_send_and_sync_and_shares_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ZarrReader>();
    assert_send_sync::<ZarrWriter>();
    let r = std::sync::Arc::new(ZarrReader::open(&interop().join("v3_zstd_u16_3d.zarr")).unwrap());
    let whole = r.read_region(&Region::full(&r.meta().shape)).unwrap();
    let grid = ChunkGrid::new(r.meta().shape.clone(), r.meta().chunks.clone());
    (0..grid.num_chunks()).into_par_iter().for_each(|i| {
        let idx = grid.unflatten(i);
        let c = r.read_chunk(&idx).unwrap();
        assert_eq!(
            c.to_le_bytes(),
            slice_bytes(&whole, &r.meta().shape, &grid.chunk_region(&idx))
        );
    });
}

// ---------------------------------------------------------------- round trips

/// Deterministic, awkward values (extremes, NaN, infinities, -0.0) as a function of the
/// flat index, so any chunk's data can be generated on its own.
fn gen(dtype: DType, flat: impl Iterator<Item = u64>) -> Buf {
    let mix = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ (i << 3);
    let f = |i: u64| -> f64 {
        match i % 11 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => -0.0,
            _ => (mix(i) % 100_000) as f64 / 7.0 - 5000.0,
        }
    };
    let idx: Vec<u64> = flat.collect();
    match dtype {
        DType::Bool => Buf::Bool(idx.iter().map(|&i| mix(i) % 3 == 0).collect()),
        DType::I8 => Buf::I8(idx.iter().map(|&i| mix(i) as i8).collect()),
        DType::I16 => Buf::I16(idx.iter().map(|&i| mix(i) as i16).collect()),
        DType::I32 => Buf::I32(idx.iter().map(|&i| mix(i) as i32).collect()),
        DType::I64 => Buf::I64(idx.iter().map(|&i| mix(i) as i64).collect()),
        DType::U8 => Buf::U8(idx.iter().map(|&i| mix(i) as u8).collect()),
        DType::U16 => Buf::U16(idx.iter().map(|&i| mix(i) as u16).collect()),
        DType::U32 => Buf::U32(idx.iter().map(|&i| mix(i) as u32).collect()),
        DType::U64 => Buf::U64(idx.iter().map(|&i| mix(i)).collect()),
        DType::F32 => Buf::F32(idx.iter().map(|&i| f(i) as f32).collect()),
        DType::F64 => Buf::F64(idx.iter().map(|&i| f(i)).collect()),
        DType::C64 => Buf::C64(
            idx.iter()
                .map(|&i| Complex32::new(f(i) as f32, f(i + 5) as f32))
                .collect(),
        ),
        DType::C128 => Buf::C128(
            idx.iter()
                .map(|&i| Complex64::new(f(i), f(i + 5)))
                .collect(),
        ),
    }
}

/// A non-zero fill per dtype, so edge padding and missing chunks are visible.
fn fill_for(dtype: DType) -> Buf {
    match dtype {
        DType::Bool => Buf::Bool(vec![true]),
        DType::F32 => Buf::F32(vec![f32::NAN]),
        DType::F64 => Buf::F64(vec![-1.5]),
        DType::C64 => Buf::C64(vec![Complex32::new(1.0, -2.0)]),
        DType::C128 => Buf::C128(vec![Complex64::new(f64::NAN, 3.0)]),
        d => {
            let mut b = Buf::zeros(d, 1);
            // 3 in every integer type.
            match &mut b {
                Buf::I8(v) => v[0] = 3,
                Buf::I16(v) => v[0] = 3,
                Buf::I32(v) => v[0] = 3,
                Buf::I64(v) => v[0] = 3,
                Buf::U8(v) => v[0] = 3,
                Buf::U16(v) => v[0] = 3,
                Buf::U32(v) => v[0] = 3,
                Buf::U64(v) => v[0] = 3,
                _ => unreachable!(),
            }
            b
        }
    }
}

fn flat_indices(shape: &[u64], r: &Region) -> Vec<u64> {
    let strides = tessera::geom::strides(shape);
    iter_box(r)
        .map(|idx| idx.iter().zip(&strides).map(|(i, s)| i * *s as u64).sum())
        .collect()
}

fn leftover_temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(leftover_temp_files(&p));
        } else if p.file_name().unwrap().to_string_lossy().contains(".tmp.") {
            out.push(p);
        }
    }
    out
}

fn opts(codec: Codec) -> WriteOptions {
    WriteOptions {
        codec,
        level: None,
        overwrite: false,
        dimension_names: None,
    }
}

/// Write `shape`/`chunks` of generated data chunk by chunk, then check everything reads back.
fn round_trip(dir: &Path, dtype: DType, codec: Codec, shape: &[u64], chunks: &[u64]) {
    let name = format!("{}_{}_{:?}_{:?}", dtype, codec, shape, chunks);
    let path = dir.join(format!("{name}.zarr"));
    let fill = fill_for(dtype);
    let w = ZarrWriter::create(&path, shape, chunks, dtype, &fill, &opts(codec))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let grid = ChunkGrid::new(shape.to_vec(), chunks.to_vec());
    for idx in iter_box(&Region::full(&grid.grid_shape())) {
        let reg = grid.chunk_region(&idx);
        let data = gen(dtype, flat_indices(shape, &reg).into_iter());
        w.write_chunk(&idx, &data)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            w.read_chunk(&idx).unwrap().to_le_bytes(),
            data.to_le_bytes(),
            "{name}: writer read_chunk {idx:?}"
        );
    }
    w.finish().unwrap();
    assert!(
        leftover_temp_files(&path).is_empty(),
        "{name}: temp files left"
    );
    // zarr-python 3.1 rejects the bare-string codec form ("bytes") that zarrs would write.
    let doc: Value =
        serde_json::from_slice(&std::fs::read(path.join("zarr.json")).unwrap()).unwrap();
    for c in doc["codecs"].as_array().unwrap() {
        assert!(c.is_object() && c["name"].is_string(), "{name}: codec {c}");
    }
    assert_eq!(doc["data_type"], dtype.numpy_name());

    let r = ZarrReader::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let m = r.meta();
    assert_eq!(
        (
            m.shape.as_slice(),
            m.chunks.as_slice(),
            m.dtype,
            m.zarr_format
        ),
        (shape, chunks, dtype, 3)
    );
    assert_eq!(m.fill.to_le_bytes(), fill.to_le_bytes(), "{name}: fill");
    let expect_codec = match codec {
        Codec::None => "bytes",
        c => c.name(),
    };
    assert!(
        m.codec_summary.contains(expect_codec),
        "{name}: {}",
        m.codec_summary
    );
    let n = shape.iter().product::<u64>();
    let whole = r.read_region(&full(shape)).unwrap();
    assert_eq!(
        whole.to_le_bytes(),
        gen(dtype, 0..n).to_le_bytes(),
        "{name}: whole array"
    );
    let odd = Region::new(
        shape.iter().map(|s| s / 3).collect(),
        shape.iter().map(|s| s - s / 4).collect(),
    );
    let part = r.read_region(&odd).unwrap();
    assert_eq!(
        part.to_le_bytes(),
        gen(dtype, flat_indices(shape, &odd).into_iter()).to_le_bytes(),
        "{name}: {odd}"
    );
}

#[test]
fn every_dtype_and_codec_round_trips_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let layouts: &[(&[u64], &[u64])] = &[
        (&[23, 17], &[8, 8]),   // edge chunks on both axes
        (&[24, 16], &[8, 8]),   // exact tiling
        (&[23, 17], &[32, 32]), // one chunk larger than the array
        (&[7, 5, 6], &[3, 2, 4]),
        (&[50], &[7]),
    ];
    let jobs: Vec<(DType, Codec, usize)> = dtype::ALL
        .iter()
        .flat_map(|d| [Codec::Zstd, Codec::Blosc, Codec::Gzip, Codec::None].map(|c| (*d, c)))
        .flat_map(|(d, c)| (0..layouts.len()).map(move |l| (d, c, l)))
        .collect();
    assert_eq!(jobs.len(), 13 * 4 * 5);
    jobs.par_iter()
        .for_each(|&(d, c, l)| round_trip(tmp.path(), d, c, layouts[l].0, layouts[l].1));
}

#[test]
fn compression_levels_and_zero_dim_edge_cases() {
    let tmp = tempfile::tempdir().unwrap();
    for (codec, level) in [
        (Codec::Zstd, 1),
        (Codec::Zstd, 19),
        (Codec::Gzip, 9),
        (Codec::Blosc, 9),
    ] {
        let p = tmp.path().join(format!("{codec}{level}.zarr"));
        let o = WriteOptions {
            codec,
            level: Some(level),
            overwrite: false,
            dimension_names: None,
        };
        let w = ZarrWriter::create(&p, &[10], &[4], DType::U16, &Buf::U16(vec![0]), &o).unwrap();
        w.write_chunk(&[2], &Buf::U16(vec![9, 8])).unwrap();
        w.finish().unwrap();
        let r = ZarrReader::open(&p).unwrap();
        assert!(
            r.meta().codec_summary.contains(&level.to_string()),
            "{}",
            r.meta().codec_summary
        );
        assert_eq!(
            r.read_region(&Region::new(vec![7], vec![10])).unwrap(),
            Buf::U16(vec![0, 9, 8])
        );
    }
    let bad = WriteOptions {
        codec: Codec::Zstd,
        level: Some(99),
        overwrite: false,
        dimension_names: None,
    };
    let p = tmp.path().join("bad.zarr");
    let e = ZarrWriter::create(&p, &[10], &[4], DType::U16, &Buf::U16(vec![0]), &bad).unwrap_err();
    assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
    assert!(!p.exists(), "a rejected create must not touch disk");
    // Empty arrays and empty regions are fine.
    let p = tmp.path().join("empty.zarr");
    let w = ZarrWriter::create(
        &p,
        &[0, 5],
        &[4, 4],
        DType::F32,
        &Buf::F32(vec![0.0]),
        &opts(Codec::Zstd),
    )
    .unwrap();
    w.finish().unwrap();
    let r = ZarrReader::open(&p).unwrap();
    assert_eq!(
        r.read_region(&Region::full(&[0, 5])).unwrap(),
        Buf::F32(vec![])
    );
}

#[test]
fn fill_chunks_are_erased_and_missing_chunks_read_as_fill() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("a.zarr");
    let w = ZarrWriter::create(
        &p,
        &[8, 8],
        &[4, 4],
        DType::U16,
        &Buf::U16(vec![5]),
        &opts(Codec::Zstd),
    )
    .unwrap();
    let chunk_file = p.join("c").join("0").join("1");
    w.write_chunk(&[0, 1], &Buf::U16((0..16).collect()))
        .unwrap();
    assert!(chunk_file.is_file());
    w.write_chunk(&[0, 1], &Buf::U16(vec![5; 16])).unwrap();
    assert!(
        !chunk_file.exists(),
        "a chunk equal to the fill value is erased"
    );
    w.write_chunk(&[1, 1], &Buf::U16(vec![5; 16])).unwrap();
    assert!(!p.join("c/1/1").exists());
    w.finish().unwrap();
    let r = ZarrReader::open(&p).unwrap();
    assert_eq!(
        r.read_region(&Region::full(&[8, 8])).unwrap(),
        Buf::U16(vec![5; 64])
    );
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("a.zarr");
    let w = ZarrWriter::create(
        &p,
        &[8, 6],
        &[4, 4],
        DType::I32,
        &Buf::I32(vec![0]),
        &opts(Codec::Zstd),
    )
    .unwrap();
    let err = |r: Result<(), IoError>| r.unwrap_err();
    assert!(matches!(
        err(w.write_chunk(&[2, 0], &Buf::I32(vec![0; 16]))),
        IoError::Write { chunk: Some(_), .. }
    ));
    assert!(
        matches!(
            err(w.write_chunk(&[0, 1], &Buf::I32(vec![0; 16]))),
            IoError::Write { .. }
        ),
        "edge chunk is 4x2"
    );
    assert!(matches!(
        err(w.write_chunk(&[0, 0], &Buf::U8(vec![0; 16]))),
        IoError::Write { .. }
    ));
    assert!(matches!(
        err(w.write_chunk(&[0], &Buf::I32(vec![0; 16]))),
        IoError::Write { .. }
    ));
    w.write_chunk(&[0, 1], &Buf::I32(vec![1; 8])).unwrap();
    w.finish().unwrap();
    let r = ZarrReader::open(&p).unwrap();
    assert!(matches!(r.read_chunk(&[0, 2]), Err(IoError::Read { .. })));
    assert!(r.read_region(&Region::new(vec![0, 0], vec![9, 1])).is_err());
    let mut wrong = Buf::I32(vec![0; 3]);
    assert!(r
        .read_region_into(&Region::new(vec![0, 0], vec![2, 2]), &mut wrong)
        .is_err());
    let mut wrong_type = Buf::F32(vec![0.0; 4]);
    assert!(r
        .read_region_into(&Region::new(vec![0, 0], vec![2, 2]), &mut wrong_type)
        .is_err());
    assert_eq!(r.read_chunk(&[0, 1]).unwrap(), Buf::I32(vec![1; 8]));
}

#[test]
fn corrupt_chunk_is_a_read_error_naming_path_and_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("a.zarr");
    let w = ZarrWriter::create(
        &p,
        &[8, 8],
        &[4, 4],
        DType::F64,
        &Buf::F64(vec![0.0]),
        &opts(Codec::Zstd),
    )
    .unwrap();
    w.write_chunk(&[0, 1], &Buf::F64((0..16).map(f64::from).collect()))
        .unwrap();
    w.finish().unwrap();
    std::fs::write(p.join("c/0/1"), b"definitely not zstd").unwrap();
    let r = ZarrReader::open(&p).unwrap();
    let e = r.read_region(&Region::full(&[8, 8])).unwrap_err();
    match &e {
        IoError::Read { chunk, path, .. } => {
            assert_eq!(chunk.as_deref(), Some(&[0u64, 1][..]));
            assert!(path.ends_with("a.zarr"));
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("a.zarr") && msg.contains("chunk [0, 1]") && !msg.contains('\n'),
        "{msg}"
    );
    // A raw (uncompressed) chunk of the wrong size too.
    let q = tmp.path().join("raw.zarr");
    let w = ZarrWriter::create(
        &q,
        &[8],
        &[4],
        DType::U16,
        &Buf::U16(vec![0]),
        &opts(Codec::None),
    )
    .unwrap();
    w.write_chunk(&[1], &Buf::U16(vec![1, 2, 3, 4])).unwrap();
    w.finish().unwrap();
    std::fs::write(q.join("c/1"), [1u8, 2, 3]).unwrap();
    let r = ZarrReader::open(&q).unwrap();
    assert!(matches!(
        r.read_chunk(&[1]),
        Err(IoError::Read { chunk: Some(_), .. })
    ));
    assert!(matches!(
        r.read_region(&Region::new(vec![5], vec![6])),
        Err(IoError::Read { chunk: Some(_), .. })
    ));
    // A bool chunk holding a 2.
    let b = tmp.path().join("bool.zarr");
    let w = ZarrWriter::create(
        &b,
        &[4],
        &[4],
        DType::Bool,
        &Buf::Bool(vec![false]),
        &opts(Codec::None),
    )
    .unwrap();
    w.write_chunk(&[0], &Buf::Bool(vec![true, false, true, true]))
        .unwrap();
    w.finish().unwrap();
    std::fs::write(b.join("c/0"), [1u8, 2, 0, 1]).unwrap();
    assert!(matches!(
        ZarrReader::open(&b).unwrap().read_chunk(&[0]),
        Err(IoError::Read { .. })
    ));
}

#[test]
fn parallel_chunk_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("par.zarr");
    let shape = [64u64, 70];
    let chunks = [8u64, 9];
    let w = ZarrWriter::create(
        &p,
        &shape,
        &chunks,
        DType::F32,
        &Buf::F32(vec![0.0]),
        &opts(Codec::Blosc),
    )
    .unwrap();
    let grid = ChunkGrid::new(shape.to_vec(), chunks.to_vec());
    (0..grid.num_chunks()).into_par_iter().for_each(|i| {
        let idx = grid.unflatten(i);
        let reg = grid.chunk_region(&idx);
        w.write_chunk(
            &idx,
            &gen(DType::F32, flat_indices(&shape, &reg).into_iter()),
        )
        .unwrap();
    });
    w.finish().unwrap();
    let r = ZarrReader::open(&p).unwrap();
    let n = shape.iter().product();
    assert_eq!(
        r.read_region(&full(&shape)).unwrap().to_le_bytes(),
        gen(DType::F32, 0..n).to_le_bytes()
    );
}

#[test]
fn open_existing_read_modify_write() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("a.zarr");
    let w = ZarrWriter::create(
        &p,
        &[6, 6],
        &[4, 4],
        DType::I64,
        &Buf::I64(vec![0]),
        &opts(Codec::Gzip),
    )
    .unwrap();
    w.write_chunk(&[1, 1], &Buf::I64(vec![1, 2, 3, 4])).unwrap();
    w.finish().unwrap();
    drop(w);
    let w = ZarrWriter::open_existing(&p).unwrap();
    assert_eq!(w.meta().shape, vec![6, 6]);
    let mut c = w.read_chunk(&[1, 1]).unwrap();
    if let Buf::I64(v) = &mut c {
        v[3] = 40;
    }
    w.write_chunk(&[1, 1], &c).unwrap();
    w.finish().unwrap();
    let r = ZarrReader::open(&p).unwrap();
    assert_eq!(
        r.read_region(&Region::new(vec![4, 4], vec![6, 6])).unwrap(),
        Buf::I64(vec![1, 2, 3, 40])
    );
    // Also a v2 fixture copy can be rewritten in place.
    let src = interop().join("v2_gzip_i16_2d.zarr");
    let dst = tmp.path().join("v2copy.zarr");
    std::fs::create_dir(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let w = ZarrWriter::open_existing(&dst).unwrap();
    assert_eq!(w.meta().zarr_format, 2);
    let reg = ChunkGrid::new(w.meta().shape.clone(), w.meta().chunks.clone()).chunk_region(&[1, 1]);
    w.write_chunk(&[1, 1], &Buf::I16(vec![-3; reg.size() as usize]))
        .unwrap();
    w.finish().unwrap();
    assert_eq!(
        ZarrReader::open(&dst).unwrap().read_chunk(&[1, 1]).unwrap(),
        Buf::I16(vec![-3; reg.size() as usize])
    );
}

// ---------------------------------------------------------------- errors

#[test]
fn open_errors_have_the_right_variant() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    assert!(matches!(
        ZarrReader::open(&t.join("missing.zarr")),
        Err(IoError::NotFound { .. })
    ));

    std::fs::create_dir(t.join("plain")).unwrap();
    std::fs::write(t.join("plain/readme.txt"), "hi").unwrap();
    assert!(matches!(
        ZarrReader::open(&t.join("plain")),
        Err(IoError::NotZarr { .. })
    ));

    std::fs::write(t.join("file.zarr"), "not a dir").unwrap();
    assert!(matches!(
        ZarrReader::open(&t.join("file.zarr")),
        Err(IoError::NotZarr { .. })
    ));

    // A v3 group with arrays at two depths; the arrays themselves open fine.
    let g = t.join("g.zarr");
    std::fs::create_dir(&g).unwrap();
    std::fs::write(
        g.join("zarr.json"),
        r#"{"zarr_format":3,"node_type":"group","attributes":{}}"#,
    )
    .unwrap();
    std::fs::create_dir(g.join("sub")).unwrap();
    std::fs::write(
        g.join("sub/zarr.json"),
        r#"{"zarr_format":3,"node_type":"group","attributes":{}}"#,
    )
    .unwrap();
    for a in ["x", "sub/arr"] {
        let w = ZarrWriter::create(
            &g.join(a),
            &[4],
            &[2],
            DType::U8,
            &Buf::U8(vec![0]),
            &opts(Codec::Zstd),
        )
        .unwrap();
        w.write_chunk(&[0], &Buf::U8(vec![1, 2])).unwrap();
        w.finish().unwrap();
    }
    match ZarrReader::open(&g) {
        Err(IoError::IsGroup { arrays, .. }) => {
            assert_eq!(arrays, vec!["sub/arr".to_string(), "x".to_string()])
        }
        other => panic!("{:?}", other.err()),
    }
    let inner = ZarrReader::open(&g.join("sub/arr")).unwrap();
    assert_eq!(
        inner.read_region(&Region::full(&[4])).unwrap(),
        Buf::U8(vec![1, 2, 0, 0])
    );
    // A v2 group.
    let g2 = t.join("g2.zarr");
    std::fs::create_dir(&g2).unwrap();
    std::fs::write(g2.join(".zgroup"), r#"{"zarr_format":2}"#).unwrap();
    assert!(matches!(
        ZarrReader::open(&g2),
        Err(IoError::IsGroup { .. })
    ));
    // The metadata file itself.
    assert!(matches!(
        ZarrReader::open(&g.join("x/zarr.json")),
        Err(IoError::NotZarr { .. })
    ));
    // Broken JSON.
    let bad = t.join("bad.zarr");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("zarr.json"), "{ nope").unwrap();
    assert!(matches!(
        ZarrReader::open(&bad),
        Err(IoError::NotZarr { .. })
    ));
    // Data types Tessera does not have, and codecs zarrs does not know.
    let meta = |dtype: &str, fill: &str, codecs: &str| {
        format!(
            r#"{{"zarr_format":3,"node_type":"array","shape":[4],"data_type":"{dtype}",
            "chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[2]}}}},
            "chunk_key_encoding":{{"name":"default","configuration":{{"separator":"/"}}}},
            "fill_value":{fill},"codecs":{codecs},"attributes":{{}}}}"#
        )
    };
    let bytes = r#"[{"name":"bytes","configuration":{"endian":"little"}}]"#;
    for (name, doc) in [
        ("f16", meta("float16", "0.0", bytes)),
        ("str", meta("string", "\"\"", r#"[{"name":"vlen-utf8"}]"#)),
        (
            "codec",
            meta(
                "uint16",
                "0",
                r#"[{"name":"bytes","configuration":{"endian":"little"}},{"name":"no_such_codec"}]"#,
            ),
        ),
    ] {
        let d = t.join(format!("{name}.zarr"));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("zarr.json"), doc).unwrap();
        let e = ZarrReader::open(&d).err().unwrap();
        assert!(matches!(e, IoError::Unsupported { .. }), "{name}: {e:?}");
        assert!(!e.to_string().contains('\n'));
    }
    // A v2 structured dtype.
    let s = t.join("structured.zarr");
    std::fs::create_dir(&s).unwrap();
    std::fs::write(
        s.join(".zarray"),
        r#"{"zarr_format":2,"shape":[4],"chunks":[2],"dtype":[["a","<i4"],["b","<f8"]],"compressor":null,"fill_value":null,"order":"C","filters":null}"#,
    )
    .unwrap();
    assert!(matches!(
        ZarrReader::open(&s),
        Err(IoError::Unsupported { .. })
    ));
}

#[test]
fn create_refuses_existing_output_and_overwrite_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("out.zarr");
    let w = ZarrWriter::create(
        &p,
        &[8, 8],
        &[4, 4],
        DType::U8,
        &Buf::U8(vec![0]),
        &opts(Codec::Zstd),
    )
    .unwrap();
    for idx in [[0u64, 0], [1, 1]] {
        w.write_chunk(&idx, &Buf::U8(vec![9; 16])).unwrap();
    }
    w.finish().unwrap();

    assert!(matches!(
        ZarrWriter::check_writable(&p, false),
        Err(IoError::Exists { .. })
    ));
    let e = ZarrWriter::create(
        &p,
        &[2],
        &[2],
        DType::F64,
        &Buf::F64(vec![0.0]),
        &opts(Codec::Zstd),
    )
    .err()
    .unwrap();
    assert!(matches!(e, IoError::Exists { .. }));
    assert!(e.to_string().contains("out.zarr"));
    let r = ZarrReader::open(&p).unwrap();
    assert_eq!(
        r.meta().dtype,
        DType::U8,
        "refused create left the old array intact"
    );
    assert!(p.join("c/1/1").is_file());

    ZarrWriter::check_writable(&p, true).unwrap();
    let over = WriteOptions {
        overwrite: true,
        dimension_names: None,
        ..opts(Codec::Gzip)
    };
    let w = ZarrWriter::create(&p, &[3], &[2], DType::F64, &Buf::F64(vec![0.0]), &over).unwrap();
    w.write_chunk(&[1], &Buf::F64(vec![2.5])).unwrap();
    w.finish().unwrap();
    assert!(!p.join("c/1/1").exists(), "old chunks are gone");
    let r = ZarrReader::open(&p).unwrap();
    assert_eq!(
        (r.meta().dtype, r.meta().shape.clone()),
        (DType::F64, vec![3])
    );
    assert_eq!(
        r.read_region(&Region::full(&[3])).unwrap(),
        Buf::F64(vec![0.0, 0.0, 2.5])
    );

    // Overwrite never deletes a non-Zarr directory or a file.
    let plain = tmp.path().join("photos");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("cat.jpg"), "meow").unwrap();
    assert!(matches!(
        ZarrWriter::check_writable(&plain, true),
        Err(IoError::Unwritable { .. })
    ));
    let e = ZarrWriter::create(&plain, &[2], &[2], DType::U8, &Buf::U8(vec![0]), &over)
        .err()
        .unwrap();
    assert!(matches!(e, IoError::Unwritable { .. }), "{e}");
    assert!(plain.join("cat.jpg").is_file());
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    assert!(matches!(
        ZarrWriter::create(&file, &[2], &[2], DType::U8, &Buf::U8(vec![0]), &over),
        Err(IoError::Unwritable { .. })
    ));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    // An empty directory may be reused; missing parents are created.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ZarrWriter::create(&empty, &[2], &[2], DType::U8, &Buf::U8(vec![0]), &over).unwrap();
    let deep = tmp.path().join("a/b/c.zarr");
    ZarrWriter::check_writable(&deep, false).unwrap();
    ZarrWriter::create(
        &deep,
        &[2],
        &[2],
        DType::U8,
        &Buf::U8(vec![0]),
        &opts(Codec::None),
    )
    .unwrap()
    .finish()
    .unwrap();
    assert!(ZarrReader::open(&deep).is_ok());
    // Bad arguments.
    let q = tmp.path().join("q.zarr");
    assert!(ZarrWriter::create(&q, &[2, 2], &[2], DType::U8, &Buf::U8(vec![0]), &over).is_err());
    assert!(ZarrWriter::create(&q, &[2], &[0], DType::U8, &Buf::U8(vec![0]), &over).is_err());
    assert!(ZarrWriter::create(&q, &[2], &[2], DType::U8, &Buf::I8(vec![0]), &over).is_err());
    assert!(!q.exists());
}

#[cfg(unix)]
#[test]
fn unwritable_parent_is_refused_without_touching_disk() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let target = ro.join("out.zarr");
    let result = ZarrWriter::check_writable(&target, false);
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !is_root {
        assert!(
            matches!(result, Err(IoError::Unwritable { .. })),
            "{result:?}"
        );
    }
    // Under a file, nothing can be created.
    let f = tmp.path().join("file");
    std::fs::write(&f, "x").unwrap();
    assert!(matches!(
        ZarrWriter::check_writable(&f.join("out.zarr"), false),
        Err(IoError::Unwritable { .. })
    ));
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}
