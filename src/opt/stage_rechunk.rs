//! Stages a rechunk through storage when doing it directly would not fit in memory.
//!
//! A whole-array write that reads `x.rechunk(t)` runs in blocks aligned to both chunkings
//! (the planner's rechunk blocks), so every input chunk is decoded once. Such a block can
//! be huge: from time-slab chunks `(10, 512, 512)` to pixel series `(10000, 16, 16)` it
//! spans the whole time axis and 512² pixels. When the aligned block holds more than
//! `Program::block_limit` bytes, the planner uses smaller blocks, which cut input chunks
//! that are then decoded once per block. When that would decode an input chunk more than
//! `MAX_REREADS` times, this pass splits the rechunk in two, as rechunker and cubed do:
//! `x` is first written to an intermediate Zarr array with chunks `m`, and the output
//! reads that array rechunked to `t`. With `m` the greatest common divisor of the two
//! chunkings per axis, the first stage's blocks are single input chunks and the second's
//! single output chunks; `m` then grows (by factors that keep it dividing the
//! larger of the two chunks) while both stages' block tasks (the block plus the output
//! chunk being made) still fit, so the intermediate has as few chunks as the limit
//! allows. Each stage reads every chunk it reads once.
//!
//! The intermediate lives beside the output (`<output>.tessera-tmp/rechunk-<k>-<chunks>.zarr`,
//! named by its chunks so that a run resumed with another memory limit or worker count
//! does not write into one chunked differently), is a write stage like any other
//! (completion records, `--resume`), and is removed once the run succeeds. Rechunks whose single chunks already exceed the limit are left alone.

use super::Pass;
use crate::data::Buf;
use crate::geom::{aligned_box, block_rereads, fmt_shape, gcd, rechunk_blocks};
use crate::ir::{ArrayType, NodeId, Op, Program, Sink, SinkKind, WriteSpec};

pub struct StageRechunk;

/// Besides its block, a block task holds about this many copies of the output chunk it is
/// making (the planner's working set of a rechunk read: the region, the decoded input and
/// the assembled copy, plus the encoded chunk and its write buffer).
const CHUNK_COPIES: u64 = 5;

/// Blocks small enough to fit may cut input chunks, which are then decoded once per
/// block. Staging costs about one encode and one decode of the data more than a direct
/// rechunk; decoding an input chunk this many times costs about as much. Measured on
/// the benchmark stack (u16 200×1024², zstd 3, to (200, 16, 16), 2 workers, CPU
/// seconds): read by up to 8 blocks, direct 4.6 s vs staged 3.0 s; up to 4 blocks, direct
/// 2.8 s vs staged 3.6 s.
const MAX_REREADS: u64 = 5;

/// The intermediate is rewritten once and read once; a fast zstd level keeps its size
/// down without costing much.
const INTERMEDIATE_LEVEL: i32 = 1;

impl Pass for StageRechunk {
    fn name(&self) -> &'static str {
        "stage_rechunk"
    }

    fn run(&self, p: &mut Program) -> bool {
        let limit = p.block_limit();
        // (rechunk, the whole-array write that reads it) for rechunks of the output's shape.
        let mut found: Vec<(NodeId, usize)> = Vec::new();
        for (si, s) in p.sinks.iter().enumerate() {
            let SinkKind::Write(w) = &s.kind else {
                continue;
            };
            if !w.regions.is_empty() {
                continue;
            }
            let mut seen = vec![false; p.nodes.len()];
            let mut order = Vec::new();
            p.post_order(s.node, &mut seen, &mut order);
            for id in order {
                if matches!(p.node(id).op, Op::Rechunk { .. })
                    && p.ty(id).shape == w.shape
                    && !found.iter().any(|(r, _)| *r == id)
                {
                    found.push((id, si));
                }
            }
        }
        let mut changed = false;
        for (id, si) in found {
            let Op::Rechunk { x } = p.node(id).op else {
                continue;
            };
            let (xt, t) = (p.ty(x).clone(), p.ty(id).clone());
            let itemsize = t.dtype.size() as u64;
            // Done directly, in blocks that fit, how often would input chunks be read?
            let direct = rechunk_blocks(&xt.chunks, &t.chunks, &t.shape, |per| {
                let block: Vec<u64> = per.iter().zip(&t.chunks).map(|(p, c)| p * c).collect();
                task_bytes(&block, &t.chunks, itemsize) <= limit
            });
            if let Some(per) = direct {
                if block_rereads(&xt.chunks, &t.chunks, &t.shape, &per) <= MAX_REREADS {
                    continue;
                }
            }
            let Some(m) = intermediate(&xt.chunks, &t.chunks, &t.shape, itemsize, limit) else {
                continue;
            };
            let SinkKind::Write(w) = &p.sinks[si].kind else {
                continue;
            };
            // An object store has no directories to stage an intermediate in (and no
            // rename to clean one up): a remote output rechunks directly.
            if crate::io::is_url(&w.path) {
                continue;
            }
            let k = p.temporaries.len();
            let dir = format!("{}.tessera-tmp", w.path);
            // Named by its chunks, which depend on the memory limit and worker count: a
            // run resumed with other settings starts a new intermediate instead of
            // writing into one chunked differently.
            let name = format!(
                "rechunk-{k}-{}.zarr",
                m.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join("x")
            );
            let path = format!("{dir}/{name}");
            let resolved_dir =
                std::path::PathBuf::from(format!("{}.tessera-tmp", w.resolved.display()));
            let resolved = resolved_dir.join(&name);
            let span = p.node(id).span;
            let mid_ty = ArrayType {
                chunks: m.clone(),
                ..xt.clone()
            };
            let mid = p.add(Op::Rechunk { x }, mid_ty.clone(), span);
            let spec = WriteSpec {
                path: path.clone(),
                resolved,
                staging: None,
                shape: t.shape.clone(),
                chunks: m,
                codec: "zstd".into(),
                level: Some(INTERMEDIATE_LEVEL),
                overwrite: true,
                existing: false,
                regions: vec![],
                int_axes: vec![],
                placed: false,
                fill: Buf::zeros(t.dtype, 1),
                in_place: false,
                dimension_names: None,
            };
            p.sinks.push(Sink {
                kind: SinkKind::Write(spec),
                node: mid,
                span,
            });
            let z = p.add(Op::Zarr { path }, mid_ty, span);
            let again = p.add(Op::Rechunk { x: z }, t, span);
            super::replace_uses(p, id, again);
            p.temporaries.push(resolved_dir);
            changed = true;
        }
        if changed {
            let live = p.live_nodes();
            super::renumber(p, &live);
        }
        changed
    }

    fn describe(&self, p: &Program) -> Option<String> {
        let mut out = crate::ir::print_program(p);
        for s in &p.sinks {
            if let SinkKind::Write(w) = &s.kind {
                if p.temporaries.iter().any(|t| w.resolved.starts_with(t)) {
                    out.push_str(&format!(
                        "; {} is an intermediate with chunks {} (removed after the run)\n",
                        w.path,
                        fmt_shape(&w.chunks)
                    ));
                }
            }
        }
        Some(out)
    }
}

/// Bytes a block task holds: the block of input and the output chunk it makes.
fn task_bytes(block: &[u64], chunk: &[u64], itemsize: u64) -> u64 {
    let elems = |b: &[u64]| b.iter().product::<u64>();
    (elems(block) + CHUNK_COPIES * elems(chunk)).saturating_mul(itemsize)
}

/// Chunks of the intermediate array for a rechunk from `s` to `t`, or `None` when even
/// single chunks of the two stages exceed `limit` bytes.
fn intermediate(
    s: &[u64],
    t: &[u64],
    shape: &[u64],
    itemsize: u64,
    limit: u64,
) -> Option<Vec<u64>> {
    let clip = |c: &[u64]| -> Vec<u64> {
        c.iter()
            .zip(shape)
            .map(|(c, n)| (*c).min(*n).max(1))
            .collect()
    };
    let (s, t) = (clip(s), clip(t));
    // The larger of the two stages' block tasks, in bytes.
    let cost = |m: &[u64]| -> u64 {
        let a = task_bytes(&aligned_box(&s, m, shape), m, itemsize);
        let b = task_bytes(&aligned_box(m, &t, shape), &t, itemsize);
        a.max(b)
    };
    let mut m: Vec<u64> = s.iter().zip(&t).map(|(a, b)| gcd(*a, *b)).collect();
    if cost(&m) > limit {
        return None;
    }
    loop {
        // Grow one axis to the next size that still divides the larger chunk (or spans the
        // axis), choosing the growth that keeps the larger task smallest.
        let best = (0..m.len())
            .filter_map(|a| {
                let big = s[a].max(t[a]);
                let next = (2..)
                    .map(|f| m[a] * f)
                    .find(|v| big % v == 0 || *v >= shape[a])?
                    .min(shape[a]);
                if next <= m[a] || next > big {
                    return None;
                }
                let mut c = m.clone();
                c[a] = next;
                let k = cost(&c);
                (k <= limit).then_some((k, a, c))
            })
            .min_by_key(|(k, a, _)| (*k, *a));
        match best {
            Some((_, _, c)) => m = c,
            None => return Some(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcd_chunks_make_single_chunk_blocks() {
        // Time slabs (5 MiB) to pixel series; an input chunk fits, a slab of two does not.
        let limit = 8 << 20;
        let m = intermediate(
            &[10, 512, 512],
            &[200, 16, 16],
            &[200, 1024, 1024],
            2,
            limit,
        );
        let m = m.expect("single chunks fit");
        assert_eq!(m[0], 10);
        assert!(
            m[1] >= 16 && 512u64.is_multiple_of(m[1]) && m[2] >= 16 && 512u64.is_multiple_of(m[2])
        );
        let a: u64 = aligned_box(&[10, 512, 512], &m, &[200, 1024, 1024])
            .iter()
            .product();
        let b: u64 = aligned_box(&m, &[200, 16, 16], &[200, 1024, 1024])
            .iter()
            .product();
        assert!(a * 2 <= limit && b * 2 <= limit, "{m:?}");
        assert!(intermediate(
            &[10, 512, 512],
            &[200, 16, 16],
            &[200, 1024, 1024],
            2,
            1 << 20
        )
        .is_none());
    }

    #[test]
    fn intermediate_grows_while_blocks_fit() {
        // Time slabs to pixel series of the benchmark stack under two limits.
        let stack = |limit: u64| {
            intermediate(
                &[10, 512, 512],
                &[200, 16, 16],
                &[200, 1024, 1024],
                2,
                limit,
            )
            .expect("fits")
        };
        let (small, large) = (stack(6 << 20), stack(64 << 20));
        let n = |m: &[u64]| -> u64 { m.iter().product() };
        assert!(n(&large) > n(&small), "{small:?} {large:?}");
        for m in [&small, &large] {
            for (a, c) in m.iter().enumerate() {
                let big = [200u64, 512, 512][a];
                assert!(big.is_multiple_of(*c), "{m:?}");
            }
        }
    }

    #[test]
    fn chunks_above_the_limit_are_left_alone() {
        assert_eq!(
            intermediate(&[1000, 1000], &[10, 10], &[1000, 1000], 8, 1 << 20),
            None
        );
        // Co-prime chunkings stage through 1-wide chunks when the aligned box (15, plus 5
        // copies of the output chunk: 40) is over the limit.
        assert_eq!(intermediate(&[3], &[5], &[15], 1, 39), Some(vec![1]));
    }
}
