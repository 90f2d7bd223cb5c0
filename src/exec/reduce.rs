//! Streaming reductions: every chunk of the input folds into per-lane partials (a lane is
//! one output element), partials of chunk groups combine in a fixed order, so the result
//! never depends on the worker count and the input is never held whole.
//!
//! Numerics (documented in docs/LANGUAGE-NOTES.md): integer `sum` wraps in 64 bits as
//! NumPy's; float sums and every `mean` accumulate in f64 with Neumaier's compensated
//! summation (correct to about one rounding of the result whatever the chunking);
//! `std`/`var` use Welford's update within a chunk and Chan's combination across
//! chunks; `min`/`max` propagate NaN; `argmin`/`argmax` return the first occurrence.

use crate::data::Buf;
use crate::dtype::DType;
use crate::geom::{strides, Region};
use crate::ir::ReduceOp;
use num_complex::{Complex32, Complex64};

/// What one reduction computes, independent of any chunk.
#[derive(Clone, Debug)]
pub struct Reduction {
    pub op: ReduceOp,
    /// Per input axis: is it reduced?
    pub reduced: Vec<bool>,
    pub ddof: u64,
    pub out: DType,
    /// The input's shape.
    pub shape: Vec<u64>,
}

impl Reduction {
    /// Strides, per input axis, of the index `argmin`/`argmax` report: the flat C-order
    /// index when every axis is reduced, else the coordinate along the one reduced axis.
    fn index_strides(&self) -> Vec<u64> {
        if self.reduced.iter().all(|r| *r) {
            strides(&self.shape).into_iter().map(|s| s as u64).collect()
        } else {
            self.reduced.iter().map(|r| u64::from(*r)).collect()
        }
    }
}

/// Per-lane accumulators.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
enum Lanes {
    /// Wrapping 64-bit integer sums (signed values sign-extended).
    Int(Vec<u64>),
    /// Neumaier sums: value and compensation (complex: re and im interleaved).
    Float(Vec<f64>, Vec<f64>),
    /// Running minimum or maximum in the input dtype.
    Extreme(Buf),
    /// Best value so far and its index.
    Arg(Buf, Vec<u64>),
    /// Welford: count, mean, sum of squared deviations.
    Moments(Vec<f64>, Vec<f64>, Vec<f64>),
}

/// The partial reduction of some chunks over one output block.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Partial {
    lanes: Lanes,
    /// Elements folded into each lane.
    count: u64,
}

trait Elem: Copy + PartialOrd + Send + Sync + 'static {
    fn f64(self) -> f64;
    fn wrap(self) -> u64;
    fn nan(self) -> bool {
        false
    }
    const LOW: Self;
    const HIGH: Self;
}

macro_rules! int_elem {
    ($($t:ty)*) => {$(
        impl Elem for $t {
            fn f64(self) -> f64 { self as f64 }
            fn wrap(self) -> u64 { self as i64 as u64 }
            const LOW: Self = <$t>::MIN;
            const HIGH: Self = <$t>::MAX;
        }
    )*};
}
int_elem!(i8 i16 i32 i64 u8 u16 u32 u64);

impl Elem for bool {
    fn f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn wrap(self) -> u64 {
        u64::from(self)
    }
    const LOW: Self = false;
    const HIGH: Self = true;
}

macro_rules! float_elem {
    ($($t:ty)*) => {$(
        impl Elem for $t {
            fn f64(self) -> f64 { self as f64 }
            fn wrap(self) -> u64 { self as u64 }
            fn nan(self) -> bool { self.is_nan() }
            const LOW: Self = <$t>::NEG_INFINITY;
            const HIGH: Self = <$t>::INFINITY;
        }
    )*};
}
float_elem!(f32 f64);

/// Neumaier's compensated addition of `v` into (s, c).
#[inline(always)]
fn neumaier(s: &mut f64, c: &mut f64, v: f64) {
    let t = *s + v;
    if s.abs() >= v.abs() {
        *c += (*s - t) + v;
    } else {
        *c += (v - t) + *s;
    }
    *s = t;
}

/// Sum of a run with eight accumulators per 128-element block, blocks added pairwise
/// (NumPy's pairwise scheme; exact for integers below 2^53).
fn run_sum<T: Elem>(run: &[T]) -> f64 {
    if run.len() <= 128 {
        let mut acc = [0.0f64; 8];
        let mut it = run.chunks_exact(8);
        for c in &mut it {
            for k in 0..8 {
                acc[k] += c[k].f64();
            }
        }
        let mut s =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for v in it.remainder() {
            s += v.f64();
        }
        s
    } else {
        let half = (run.len() / 2) & !7;
        run_sum(&run[..half]) + run_sum(&run[half..])
    }
}

/// Is `v` a better extreme than `best` (NaN wins and stays)?
#[inline(always)]
fn better<T: Elem>(v: T, best: T, max: bool) -> bool {
    if best.nan() {
        return false;
    }
    v.nan() || if max { v > best } else { v < best }
}

/// One axis of a chunk, collapsed: length, lane stride (0 when reduced), index stride.
#[derive(Clone, Copy, Debug)]
struct Dim {
    len: u64,
    lane: u64,
    index: u64,
}

/// Visit the chunk's elements as C-order runs along its last (collapsed) axis:
/// `f(first element, run length, first lane, lane step (0 or 1), first index, index step)`.
fn for_each_run(
    dims: &[Dim],
    lane0: u64,
    index0: u64,
    mut f: impl FnMut(usize, usize, u64, u64, u64, u64),
) {
    let nd = dims.len();
    let last = dims[nd - 1];
    let run = last.len as usize;
    let outer: u64 = dims[..nd - 1].iter().map(|d| d.len).product();
    let mut pos = vec![0u64; nd - 1];
    let (mut lane, mut index) = (lane0, index0);
    for r in 0..outer {
        f(r as usize * run, run, lane, last.lane, index, last.index);
        // Advance the odometer over the outer axes.
        for a in (0..nd - 1).rev() {
            pos[a] += 1;
            lane += dims[a].lane;
            index += dims[a].index;
            if pos[a] < dims[a].len {
                break;
            }
            lane -= dims[a].lane * dims[a].len;
            index -= dims[a].index * dims[a].len;
            pos[a] = 0;
        }
    }
}

/// The chunk's axes with lane and index strides, neighbours merged where they walk
/// memory, lanes and indices alike.
fn dims_of(red: &Reduction, region: &Region, block: &Region) -> (Vec<Dim>, u64, u64) {
    let shape = region.shape();
    let bshape = block.shape();
    let bst = strides(&bshape);
    let ist = red.index_strides();
    let mut dims = Vec::new();
    let mut lane0 = 0;
    let mut index0 = 0;
    let mut k = 0;
    for (a, len) in shape.iter().enumerate() {
        let lane = if red.reduced[a] {
            0
        } else {
            let s = bst[k] as u64;
            lane0 += (region.start[a] - block.start[k]) * s;
            k += 1;
            s
        };
        index0 += region.start[a] * ist[a];
        dims.push(Dim {
            len: *len,
            lane,
            index: ist[a],
        });
    }
    if dims.is_empty() {
        dims.push(Dim {
            len: 1,
            lane: 0,
            index: 0,
        });
    }
    let mut merged: Vec<Dim> = Vec::with_capacity(dims.len());
    for d in dims {
        if d.len == 1 && !merged.is_empty() {
            continue;
        }
        if let Some(p) = merged.last_mut() {
            if p.len == 1 || (p.lane == d.lane * d.len && p.index == d.index * d.len) {
                let len = p.len * d.len;
                *p = Dim { len, ..d };
                continue;
            }
        }
        merged.push(d);
    }
    (merged, lane0, index0)
}

impl Partial {
    /// Empty accumulators for `lanes` output elements.
    pub fn new(red: &Reduction, input: DType, lanes: usize) -> Partial {
        let lanes = match red.op {
            ReduceOp::Sum if !input.is_float() && !input.is_complex() => Lanes::Int(vec![0; lanes]),
            ReduceOp::Sum | ReduceOp::Mean => {
                let n = if input.is_complex() { 2 * lanes } else { lanes };
                Lanes::Float(vec![0.0; n], vec![0.0; n])
            }
            ReduceOp::Min | ReduceOp::Max => {
                Lanes::Extreme(extreme_init(input, lanes, red.op == ReduceOp::Min))
            }
            ReduceOp::Argmin | ReduceOp::Argmax => Lanes::Arg(
                extreme_init(input, lanes, red.op == ReduceOp::Argmin),
                vec![u64::MAX; lanes],
            ),
            ReduceOp::Std | ReduceOp::Var => {
                Lanes::Moments(vec![0.0; lanes], vec![0.0; lanes], vec![0.0; lanes])
            }
        };
        Partial { lanes, count: 0 }
    }

    /// Fold the input's values over `region` (in input coordinates, inside `block` on
    /// the kept axes) into the lanes of `block`.
    pub fn fold(&mut self, red: &Reduction, data: &Buf, region: &Region, block: &Region) {
        let (dims, lane0, index0) = dims_of(red, region, block);
        let per_lane: u64 = region
            .shape()
            .iter()
            .zip(&red.reduced)
            .filter(|(_, r)| **r)
            .map(|(n, _)| *n)
            .product();
        self.count += per_lane;
        let max = matches!(red.op, ReduceOp::Max | ReduceOp::Argmax);
        macro_rules! real {
            ($($v:ident)*) => {
                match data {
                    $(Buf::$v(x) => fold_real(&mut self.lanes, x, &dims, lane0, index0, max),)*
                    Buf::C64(x) => fold_complex(&mut self.lanes, x.iter().map(|c| (c.re as f64, c.im as f64)), &dims, lane0),
                    Buf::C128(x) => fold_complex(&mut self.lanes, x.iter().map(|c| (c.re, c.im)), &dims, lane0),
                }
            };
        }
        real!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64)
    }

    /// Add `other` (partials of later chunks) into `self`.
    pub fn combine(&mut self, red: &Reduction, other: Partial) {
        let max = matches!(red.op, ReduceOp::Max | ReduceOp::Argmax);
        match (&mut self.lanes, other.lanes) {
            (Lanes::Int(a), Lanes::Int(b)) => a
                .iter_mut()
                .zip(b)
                .for_each(|(x, y)| *x = x.wrapping_add(y)),
            (Lanes::Float(s, c), Lanes::Float(s2, c2)) => {
                for i in 0..s.len() {
                    neumaier(&mut s[i], &mut c[i], s2[i]);
                    c[i] += c2[i];
                }
            }
            (Lanes::Extreme(a), Lanes::Extreme(b)) => combine_extreme(a, &b, None, max),
            (Lanes::Arg(a, ia), Lanes::Arg(b, ib)) => combine_extreme(a, &b, Some((ia, &ib)), max),
            (Lanes::Moments(n, m, q), Lanes::Moments(n2, m2, q2)) => {
                for i in 0..n.len() {
                    chan(&mut n[i], &mut m[i], &mut q[i], n2[i], m2[i], q2[i]);
                }
            }
            _ => unreachable!("partials of one reduction have one kind"),
        }
        self.count += other.count;
    }

    /// The finished lanes in the output dtype.
    pub fn finish(self, red: &Reduction) -> Buf {
        let count = self.count as f64;
        let total = |s: f64, c: f64| if s.is_finite() { s + c } else { s };
        match self.lanes {
            Lanes::Int(v) => match red.out {
                DType::U64 => Buf::U64(v),
                _ => Buf::I64(v.into_iter().map(|x| x as i64).collect()),
            },
            Lanes::Float(s, c) => {
                let scale = if red.op == ReduceOp::Mean { count } else { 1.0 };
                let vals: Vec<f64> = s
                    .iter()
                    .zip(&c)
                    .map(|(s, c)| total(*s, *c) / scale)
                    .collect();
                match red.out {
                    DType::F32 => Buf::F32(vals.iter().map(|v| *v as f32).collect()),
                    DType::C64 => Buf::C64(
                        vals.chunks(2)
                            .map(|p| Complex32::new(p[0] as f32, p[1] as f32))
                            .collect(),
                    ),
                    DType::C128 => {
                        Buf::C128(vals.chunks(2).map(|p| Complex64::new(p[0], p[1])).collect())
                    }
                    _ => Buf::F64(vals),
                }
            }
            Lanes::Extreme(b) => b,
            Lanes::Arg(_, idx) => Buf::I64(idx.into_iter().map(|i| i as i64).collect()),
            Lanes::Moments(n, _, q) => {
                let vals: Vec<f64> = n
                    .iter()
                    .zip(&q)
                    .map(|(n, q)| {
                        let var = q / (n - red.ddof as f64).max(0.0);
                        if red.op == ReduceOp::Std {
                            var.sqrt()
                        } else {
                            var
                        }
                    })
                    .collect();
                match red.out {
                    DType::F32 => Buf::F32(vals.iter().map(|v| *v as f32).collect()),
                    _ => Buf::F64(vals),
                }
            }
        }
    }
}

fn extreme_init(d: DType, lanes: usize, min: bool) -> Buf {
    macro_rules! arms {
        ($($v:ident $t:ty),*) => {
            match d {
                $(DType::$v => Buf::$v(vec![if min { <$t as Elem>::HIGH } else { <$t as Elem>::LOW }; lanes]),)*
                _ => Buf::zeros(d, lanes),
            }
        };
    }
    arms!(Bool bool, I8 i8, I16 i16, I32 i32, I64 i64, U8 u8, U16 u16, U32 u32, U64 u64, F32 f32, F64 f64)
}

/// Chan et al.'s combination of two (count, mean, M2) triples.
#[inline(always)]
fn chan(n: &mut f64, m: &mut f64, q: &mut f64, n2: f64, m2: f64, q2: f64) {
    if n2 == 0.0 {
        return;
    }
    if *n == 0.0 {
        (*n, *m, *q) = (n2, m2, q2);
        return;
    }
    let t = *n + n2;
    let d = m2 - *m;
    *m += d * n2 / t;
    *q += q2 + d * d * *n * n2 / t;
    *n = t;
}

fn fold_real<T: Elem>(
    lanes: &mut Lanes,
    x: &[T],
    dims: &[Dim],
    lane0: u64,
    index0: u64,
    max: bool,
) {
    match lanes {
        Lanes::Int(acc) => for_each_run(dims, lane0, index0, |at, n, lane, step, _, _| {
            let run = &x[at..at + n];
            let l = lane as usize;
            if step == 0 {
                let s = run.iter().fold(0u64, |s, v| s.wrapping_add(v.wrap()));
                acc[l] = acc[l].wrapping_add(s);
            } else {
                for (a, v) in acc[l..l + n].iter_mut().zip(run) {
                    *a = a.wrapping_add(v.wrap());
                }
            }
        }),
        Lanes::Float(s, c) => for_each_run(dims, lane0, index0, |at, n, lane, step, _, _| {
            let run = &x[at..at + n];
            let l = lane as usize;
            if step == 0 {
                neumaier(&mut s[l], &mut c[l], run_sum(run));
            } else {
                for (k, v) in run.iter().enumerate() {
                    neumaier(&mut s[l + k], &mut c[l + k], v.f64());
                }
            }
        }),
        Lanes::Extreme(b) => {
            let acc = typed_mut::<T>(b);
            for_each_run(dims, lane0, index0, |at, n, lane, step, _, _| {
                let run = &x[at..at + n];
                let l = lane as usize;
                if step == 0 {
                    let mut best = acc[l];
                    for v in run {
                        if better(*v, best, max) {
                            best = *v;
                        }
                    }
                    acc[l] = best;
                } else {
                    for (a, v) in acc[l..l + n].iter_mut().zip(run) {
                        if better(*v, *a, max) {
                            *a = *v;
                        }
                    }
                }
            })
        }
        Lanes::Arg(b, idx) => {
            let acc = typed_mut::<T>(b);
            for_each_run(dims, lane0, index0, |at, n, lane, step, i0, istep| {
                let run = &x[at..at + n];
                let l = lane as usize;
                for (k, v) in run.iter().enumerate() {
                    let j = l + k * step as usize;
                    let i = i0 + k as u64 * istep;
                    let tie = !v.nan() && !acc[j].nan() && *v == acc[j] && i < idx[j];
                    if idx[j] == u64::MAX || better(*v, acc[j], max) || tie {
                        acc[j] = *v;
                        idx[j] = i;
                    }
                }
            })
        }
        Lanes::Moments(cnt, mean, q) => {
            for_each_run(dims, lane0, index0, |at, n, lane, step, _, _| {
                let run = &x[at..at + n];
                let l = lane as usize;
                if step == 0 {
                    // Two passes over the run, then Chan's combination.
                    let m = run_sum(run) / n as f64;
                    let mut s2 = 0.0;
                    let mut s1 = 0.0;
                    for v in run {
                        let d = v.f64() - m;
                        s1 += d;
                        s2 += d * d;
                    }
                    let q2 = s2 - s1 * s1 / n as f64;
                    chan(
                        &mut cnt[l],
                        &mut mean[l],
                        &mut q[l],
                        n as f64,
                        m + s1 / n as f64,
                        q2,
                    );
                } else {
                    for (k, v) in run.iter().enumerate() {
                        let j = l + k;
                        cnt[j] += 1.0;
                        let d = v.f64() - mean[j];
                        mean[j] += d / cnt[j];
                        q[j] += d * (v.f64() - mean[j]);
                    }
                }
            })
        }
    }
}

fn fold_complex(lanes: &mut Lanes, x: impl Iterator<Item = (f64, f64)>, dims: &[Dim], lane0: u64) {
    let Lanes::Float(s, c) = lanes else {
        unreachable!("complex input reduces into float lanes");
    };
    let vals: Vec<(f64, f64)> = x.collect();
    for_each_run(dims, lane0, 0, |at, n, lane, step, _, _| {
        for (k, (re, im)) in vals[at..at + n].iter().enumerate() {
            let j = 2 * (lane as usize + k * step as usize);
            neumaier(&mut s[j], &mut c[j], *re);
            neumaier(&mut s[j + 1], &mut c[j + 1], *im);
        }
    });
}

fn typed_mut<T: 'static>(b: &mut Buf) -> &mut [T] {
    use std::any::Any;
    crate::with_buf!(b, v => (v as &mut dyn Any)
        .downcast_mut::<Vec<T>>()
        .expect("accumulator has the input's dtype")
        .as_mut_slice())
}

fn combine_extreme(a: &mut Buf, b: &Buf, idx: Option<(&mut Vec<u64>, &Vec<u64>)>, max: bool) {
    fn go<T: Elem>(a: &mut [T], b: &[T], idx: Option<(&mut Vec<u64>, &Vec<u64>)>, max: bool) {
        match idx {
            None => a.iter_mut().zip(b).for_each(|(x, y)| {
                if better(*y, *x, max) {
                    *x = *y;
                }
            }),
            Some((ia, ib)) => {
                for j in 0..a.len() {
                    if ib[j] == u64::MAX {
                        continue;
                    }
                    let tie = !a[j].nan() && !b[j].nan() && a[j] == b[j] && ib[j] < ia[j];
                    if ia[j] == u64::MAX || better(b[j], a[j], max) || tie {
                        a[j] = b[j];
                        ia[j] = ib[j];
                    }
                }
            }
        }
    }
    macro_rules! arms {
        ($($v:ident)*) => {
            match (a, b) {
                $((Buf::$v(x), Buf::$v(y)) => go(x, y, idx, max),)*
                _ => unreachable!("extremes of one dtype"),
            }
        };
    }
    arms!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::ChunkGrid;
    use crate::plan::Split;

    fn reduce_whole(
        op: ReduceOp,
        data: &Buf,
        shape: &[u64],
        reduced: &[bool],
        chunks: &[u64],
        out: DType,
    ) -> Buf {
        let red = Reduction {
            op,
            reduced: reduced.to_vec(),
            ddof: 0,
            out,
            shape: shape.to_vec(),
        };
        let grid = ChunkGrid::new(shape.to_vec(), chunks.to_vec());
        let split = Split::new(grid.clone(), reduced.to_vec(), 24, 1 << 30);
        let kept_shape: Vec<u64> = shape
            .iter()
            .zip(reduced)
            .filter(|(_, r)| !**r)
            .map(|(n, _)| *n)
            .collect();
        let mut result = Buf::zeros(out, kept_shape.iter().product::<u64>() as usize);
        let mut pending: Vec<(Region, Partial)> = Vec::new();
        for t in 0..split.tasks() {
            let (block, chunks) = split.task(t);
            let mut p = Partial::new(&red, data.dtype(), block.size() as usize);
            for c in chunks {
                let r = grid.chunk_region(&c);
                let d = crate::exec::layout::extract(data, shape, &r);
                p.fold(&red, &d, &r, &block);
            }
            if t % split.groups == 0 {
                pending.push((block, p));
            } else {
                pending.last_mut().unwrap().1.combine(&red, p);
            }
        }
        for (block, p) in pending {
            let b = p.finish(&red);
            crate::exec::layout::copy_into(
                &mut result,
                &kept_shape,
                &block.start,
                &b,
                &block.shape(),
            );
        }
        result
    }

    #[test]
    fn sums_and_extremes_match_direct_loops_for_any_chunking() {
        let shape = [5u64, 7, 6];
        let vals: Vec<u16> = (0..210u32).map(|i| ((i * 7919) % 1000) as u16).collect();
        let data = Buf::U16(vals.clone());
        for chunks in [[5u64, 7, 6], [2, 3, 4], [1, 1, 1], [5, 2, 6]] {
            let s = reduce_whole(
                ReduceOp::Sum,
                &data,
                &shape,
                &[true, false, false],
                &chunks,
                DType::U64,
            );
            let mut want = vec![0u64; 42];
            for (i, v) in vals.iter().enumerate() {
                want[i % 42] += *v as u64;
            }
            assert_eq!(s, Buf::U64(want));
            let m = reduce_whole(
                ReduceOp::Max,
                &data,
                &shape,
                &[false, true, true],
                &chunks,
                DType::U16,
            );
            let want: Vec<u16> = (0..5)
                .map(|k| *vals[k * 42..(k + 1) * 42].iter().max().unwrap())
                .collect();
            assert_eq!(m, Buf::U16(want));
            let a = reduce_whole(
                ReduceOp::Argmin,
                &data,
                &shape,
                &[true, true, true],
                &chunks,
                DType::I64,
            );
            let lo = vals.iter().min().unwrap();
            let first = vals.iter().position(|v| v == lo).unwrap();
            assert_eq!(a, Buf::I64(vec![first as i64]));
            let v = reduce_whole(
                ReduceOp::Var,
                &data,
                &shape,
                &[true, true, true],
                &chunks,
                DType::F64,
            );
            let mean = vals.iter().map(|v| *v as f64).sum::<f64>() / 210.0;
            let var = vals.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / 210.0;
            let Buf::F64(got) = v else { panic!() };
            assert!((got[0] - var).abs() <= 1e-12 * var);
        }
    }

    #[test]
    fn nan_propagates_and_argmax_takes_the_first() {
        let data = Buf::F64(vec![1.0, 5.0, f64::NAN, 5.0, 2.0, 5.0]);
        let m = reduce_whole(ReduceOp::Max, &data, &[6], &[true], &[2], DType::F64);
        let Buf::F64(m) = m else { panic!() };
        assert!(m[0].is_nan());
        let data = Buf::F64(vec![1.0, 5.0, 3.0, 5.0, 2.0, 5.0]);
        let a = reduce_whole(
            ReduceOp::Argmax,
            &data,
            &[2, 3],
            &[true, true],
            &[1, 1],
            DType::I64,
        );
        assert_eq!(a, Buf::I64(vec![1]));
        let a = reduce_whole(
            ReduceOp::Argmax,
            &data,
            &[2, 3],
            &[false, true],
            &[1, 2],
            DType::I64,
        );
        assert_eq!(a, Buf::I64(vec![1, 0]));
    }
}
