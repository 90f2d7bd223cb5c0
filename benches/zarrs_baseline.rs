//! The floor Tessera's storage benchmark compares against: a plain zarrs program (no
//! Tessera code) that reads every chunk of a uint16 array, adds 1 (wrapping) and writes it
//! to a new zstd-3 array with the same shape and chunks, one chunk per task on a rayon pool.
//!
//! `cargo bench --bench zarrs_baseline -- --input IN.zarr --output OUT.zarr [--workers N]`
//! prints `chunks=N seconds=S MB/s=X` (MB of uncompressed array data read per second).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use zarrs::array::codec::ZstdCodec;
use zarrs::array::{data_type, Array, ArrayBuilder, CodecOptions};
use zarrs::filesystem::FilesystemStore;

struct Args {
    input: PathBuf,
    output: PathBuf,
    workers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut input = None;
    let mut output = None;
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--input" => input = it.next().map(PathBuf::from),
            "--output" => output = it.next().map(PathBuf::from),
            "--workers" => {
                let v = it.next().ok_or("--workers needs a value")?;
                workers = v.parse().map_err(|_| format!("bad --workers {v}"))?;
            }
            // cargo passes --bench (and harness flags); anything unknown is not ours.
            _ => {}
        }
    }
    Ok(Args {
        input: input.ok_or("missing --input DIR")?,
        output: output.ok_or("missing --output DIR")?,
        workers: workers.max(1),
    })
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let input = Array::open(Arc::new(FilesystemStore::new(&args.input)?), "/")?;
    if !input.data_type().is::<data_type::UInt16DataType>() {
        return Err("the baseline handles uint16 input only".into());
    }
    let chunk_shape = input
        .chunk_grid()
        .chunk_shape_u64(&vec![0; input.dimensionality()])?
        .ok_or("cannot determine the chunk shape")?;

    if args.output.exists() {
        std::fs::remove_dir_all(&args.output)?;
    }
    std::fs::create_dir_all(&args.output)?;
    let out_store = Arc::new(FilesystemStore::new(&args.output)?);
    let output = ArrayBuilder::new(
        input.shape().to_vec(),
        chunk_shape,
        data_type::uint16(),
        0u16,
    )
    .bytes_to_bytes_codecs(vec![Arc::new(ZstdCodec::new(3, false))])
    .build(out_store, "/")?;
    output.store_metadata()?;

    // One chunk per task; codec-level threads would only oversubscribe the pool.
    let opts = CodecOptions::default().with_concurrent_target(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.workers)
        .build()?;
    let chunks: Vec<Vec<u64>> = input
        .chunk_grid()
        .iter_chunk_indices()
        .map(|c| c.to_vec())
        .collect();
    let start = Instant::now();
    pool.install(|| {
        chunks.par_iter().try_for_each(|idx| {
            let mut v: Vec<u16> = input.retrieve_chunk_opt(idx, &opts)?;
            for x in &mut v {
                *x = x.wrapping_add(1);
            }
            output.store_chunk_opt(idx, v, &opts)
        })
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let bytes = input.shape().iter().product::<u64>() as f64 * 2.0;
    println!(
        "chunks={} seconds={seconds:.3} MB/s={:.1}",
        chunks.len(),
        bytes / 1e6 / seconds
    );
    Ok(())
}

/// Without `--input`/`--output` (a plain `cargo bench`, or `cargo test --all-targets`):
/// the baseline run on a small array it writes itself, its output checked element by
/// element, so the program is exercised rather than skipped.
fn self_check() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("zarrs-baseline-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (input, output) = (dir.join("in.zarr"), dir.join("out.zarr"));
    std::fs::create_dir_all(&input)?;
    let store = Arc::new(FilesystemStore::new(&input)?);
    let array = ArrayBuilder::new(vec![40, 50], vec![16, 32], data_type::uint16(), 0u16)
        .build(store, "/")?;
    array.store_metadata()?;
    let opts = CodecOptions::default();
    let value = |idx: &[u64], k: usize| (idx[0] * 7919 + idx[1] * 104_729 + k as u64 * 31) as u16;
    let chunks: Vec<Vec<u64>> = array
        .chunk_grid()
        .iter_chunk_indices()
        .map(|c| c.to_vec())
        .collect();
    for idx in &chunks {
        let v: Vec<u16> = (0..16 * 32)
            .map(|k| value(idx, k).wrapping_sub(3))
            .collect();
        array.store_chunk_opt(idx, v, &opts)?;
    }
    run(&Args {
        input,
        output: output.clone(),
        workers: 2,
    })?;
    let out = Array::open(Arc::new(FilesystemStore::new(&output)?), "/")?;
    for idx in &chunks {
        let v: Vec<u16> = out.retrieve_chunk_opt(idx, &opts)?;
        for (k, x) in v.iter().enumerate() {
            if *x != value(idx, k).wrapping_sub(2) {
                return Err(format!("chunk {idx:?} element {k}: {x} is not input + 1").into());
            }
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if let Err(err) = self_check() {
                eprintln!("zarrs_baseline: self-check failed: {err}");
                std::process::exit(1);
            }
            eprintln!(
                "zarrs_baseline: self-check on a 40x50 array passed ({e}; to measure: \
                 --input DIR --output DIR [--workers N])"
            );
            return;
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("zarrs_baseline: {e}");
        std::process::exit(1);
    }
}
