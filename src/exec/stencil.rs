//! Stencils with scipy.ndimage's exact numerics. A task fetches its region plus the halo
//! (from as many neighbouring chunks as the halo reaches, and from the far side of the
//! array for `wrap`), extends it past the array edge with the boundary mode, then runs
//! the kernel's 1-D passes in scipy's order, rounding to the array's dtype after each
//! pass as scipy does, and keeps the centre. Every output element is computed from the
//! same values in the same order whatever the tiling, so tiled equals untiled bit for bit.

use super::eval::{eval, Ctx};
use super::layout;
use super::ExecError;
use crate::data::Buf;
use crate::dtype::DType;
use crate::geom::{strides, Region};
use crate::ir::native::{BlockIn, BlockOut, KernelArgs, NativeRef};
use crate::ir::{ArrayType, Boundary, Kernel, KernelKind, NodeId};

/// Where extended coordinates come from along one axis.
#[derive(Clone, Debug)]
struct Seg {
    /// First position in the extended block.
    dst: usize,
    len: usize,
    /// First source index and direction (+1 or -1); `None` for the constant value.
    src: Option<(i64, i64)>,
}

/// scipy.ndimage's index mapping for a coordinate outside `[0, n)`.
fn map_index(c: i64, n: i64, b: Boundary) -> Option<i64> {
    if (0..n).contains(&c) {
        return Some(c);
    }
    match b {
        Boundary::Constant(_) => None,
        Boundary::Nearest => Some(c.clamp(0, n - 1)),
        Boundary::Wrap => Some(c.rem_euclid(n)),
        Boundary::Mirror => {
            if n == 1 {
                return Some(0);
            }
            let k = c.rem_euclid(2 * n - 2);
            Some(if k < n { k } else { 2 * n - 2 - k })
        }
        // `none` pads like the kernels' own default, reflect (documented).
        Boundary::Reflect | Boundary::None => {
            let k = c.rem_euclid(2 * n);
            Some(if k < n { k } else { 2 * n - 1 - k })
        }
    }
}

fn segments(lo: i64, hi: i64, n: i64, b: Boundary) -> Vec<Seg> {
    let mut segs: Vec<Seg> = Vec::new();
    let mut prev: Option<i64> = None;
    for (k, c) in (lo..hi).enumerate() {
        let m = map_index(c, n, b);
        let extend = match (segs.last(), m, prev) {
            (Some(s), None, _) => s.src.is_none(),
            (Some(s), Some(m), Some(p)) => match s.src {
                Some((_, dir)) if s.len == 1 => (m - p).abs() == 1 || (dir == 1 && m == p + 1),
                Some((_, dir)) => m - p == dir,
                None => false,
            },
            _ => false,
        };
        if extend {
            let s = segs.last_mut().expect("segment");
            if s.len == 1 {
                if let (Some((st, _)), Some(m)) = (s.src, m) {
                    s.src = Some((st, m - st));
                }
            }
            s.len += 1;
        } else {
            segs.push(Seg {
                dst: k,
                len: 1,
                src: m.map(|m| (m, 1)),
            });
        }
        prev = m;
    }
    segs
}

/// The source index range `[a, b)` a segment reads.
fn seg_range(s: &Seg) -> Option<(i64, i64)> {
    s.src.map(|(st, dir)| {
        let end = st + dir * (s.len as i64 - 1);
        (st.min(end), st.max(end) + 1)
    })
}

/// The input extended by `halo` around `region`: values in the input's dtype, positions
/// outside the array per axis, and the extended shape.
pub(super) type Fetch<'a> = dyn Fn(&Region) -> Result<Buf, ExecError> + 'a;

/// The extended block, its shape, and per axis which positions lie outside the array.
pub(super) type Extended = (Buf, Vec<usize>, Vec<Vec<bool>>);

/// One 1-D pass of a separable kernel along an axis, consuming that axis's halo; `None`
/// when the kernel leaves the axis alone.
type PassFn<'a> = dyn Fn(&Block, usize, usize) -> Option<Block> + 'a;

pub(super) fn extended(
    fetch_region: &Fetch,
    ty: &ArrayType,
    region: &Region,
    halo: &[usize],
    boundary: Boundary,
) -> Result<Extended, ExecError> {
    let nd = ty.shape.len();
    let mut segs = Vec::with_capacity(nd);
    let mut outside = Vec::with_capacity(nd);
    let mut ext_shape = Vec::with_capacity(nd);
    for (ax, h) in halo.iter().enumerate().take(nd) {
        let n = ty.shape[ax] as i64;
        let lo = region.start[ax] as i64 - *h as i64;
        let hi = region.end[ax] as i64 + *h as i64;
        segs.push(segments(lo, hi, n, boundary));
        outside.push(
            (lo..hi)
                .map(|c| !(0..n).contains(&c))
                .collect::<Vec<bool>>(),
        );
        ext_shape.push((hi - lo) as usize);
    }
    let ext_u64: Vec<u64> = ext_shape.iter().map(|v| *v as u64).collect();
    // Fast path: every axis is one forward run inside the array.
    if segs
        .iter()
        .all(|s| s.len() == 1 && matches!(s[0].src, Some((_, 1)) | Some((_, 0))))
    {
        let start: Vec<u64> = segs
            .iter()
            .map(|s| s[0].src.expect("src").0 as u64)
            .collect();
        let end: Vec<u64> = start.iter().zip(&ext_u64).map(|(a, l)| a + l).collect();
        let b = fetch_region(&Region::new(start, end))?;
        return Ok((b, ext_shape, outside));
    }
    // Group each axis's source ranges into fetches (wrap reads the far side separately).
    let mut groups: Vec<Vec<(i64, i64)>> = Vec::with_capacity(nd);
    for ax in 0..nd {
        let mut rs: Vec<(i64, i64)> = segs[ax].iter().filter_map(seg_range).collect();
        rs.sort_unstable();
        let mut g: Vec<(i64, i64)> = Vec::new();
        for r in rs {
            match g.last_mut() {
                Some(last) if r.0 <= last.1 + ext_shape[ax] as i64 => last.1 = last.1.max(r.1),
                _ => g.push(r),
            }
        }
        groups.push(g);
    }
    let fill = match boundary {
        Boundary::Constant(c) => {
            let mut out = Buf::zeros(ty.dtype, 1);
            super::elementwise::cast(&Buf::F64(vec![c]), &mut out, 1);
            out
        }
        _ => Buf::zeros(ty.dtype, 1),
    };
    let mut ext = super::sources::filled(&fill, ext_shape.iter().product());
    let gshape: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    for gi in crate::geom::iter_box(&Region::new(
        vec![0; nd],
        gshape.iter().map(|v| *v as u64).collect(),
    )) {
        let fetch = Region::new(
            (0..nd)
                .map(|a| groups[a][gi[a] as usize].0 as u64)
                .collect(),
            (0..nd)
                .map(|a| groups[a][gi[a] as usize].1 as u64)
                .collect(),
        );
        let src = fetch_region(&fetch)?;
        let fst: Vec<isize> = strides(&fetch.shape())
            .into_iter()
            .map(|s| s as isize)
            .collect();
        // Segments of each axis that read from this fetch.
        let mine: Vec<Vec<&Seg>> = (0..nd)
            .map(|a| {
                segs[a]
                    .iter()
                    .filter(|s| {
                        seg_range(s).is_some_and(|(lo, hi)| {
                            lo >= fetch.start[a] as i64 && hi <= fetch.end[a] as i64
                        })
                    })
                    .collect()
            })
            .collect();
        let counts: Vec<u64> = mine.iter().map(|m| m.len() as u64).collect();
        for si in crate::geom::iter_box(&Region::new(vec![0; nd], counts)) {
            let parts: Vec<&Seg> = (0..nd).map(|a| mine[a][si[a] as usize]).collect();
            let mut offset = 0isize;
            let mut st = vec![0isize; nd];
            for a in 0..nd {
                let (s0, dir) = parts[a].src.expect("source segment");
                offset += (s0 - fetch.start[a] as i64) as isize * fst[a];
                st[a] = dir as isize * fst[a];
            }
            let shape: Vec<u64> = parts.iter().map(|p| p.len as u64).collect();
            let piece = layout::gather(&src, offset, &st, &shape);
            let at: Vec<u64> = parts.iter().map(|p| p.dst as u64).collect();
            layout::copy_into(&mut ext, &ext_u64, &at, &piece, &shape);
        }
    }
    Ok((ext, ext_shape, outside))
}

/// How values are rounded into the array's dtype after each pass (C casts, as scipy).
#[derive(Clone, Copy)]
enum Quant {
    F32,
    F64,
    Int(DType),
}

impl Quant {
    fn of(d: DType) -> Quant {
        match d {
            DType::F32 => Quant::F32,
            DType::F64 => Quant::F64,
            d => Quant::Int(d),
        }
    }

    #[inline]
    fn q(self, v: f64) -> f64 {
        match self {
            Quant::F64 => v,
            Quant::F32 => v as f32 as f64,
            Quant::Int(d) => {
                // Truncate toward zero, then wrap into the type (x86-64 C behaviour).
                let t = v as i64;
                match d {
                    DType::U8 => t as u8 as f64,
                    DType::I8 => t as i8 as f64,
                    DType::U16 => t as u16 as f64,
                    DType::I16 => t as i16 as f64,
                    DType::U32 => t as u32 as f64,
                    DType::I32 => t as i32 as f64,
                    DType::U64 => {
                        if v >= 9.223_372_036_854_776e18 {
                            v.trunc()
                        } else {
                            t as u64 as f64
                        }
                    }
                    _ => t as f64,
                }
            }
        }
    }

    fn quantize(self, b: &mut [f64]) {
        if let Quant::F64 = self {
            return;
        }
        b.iter_mut().for_each(|v| *v = self.q(*v));
    }

    /// a + b computed in the dtype.
    fn add(self, a: f64, b: f64) -> f64 {
        match self {
            Quant::F32 => (a as f32 + b as f32) as f64,
            Quant::F64 => a + b,
            Quant::Int(_) => self.q(wrap_i(a).wrapping_add(wrap_i(b)) as f64),
        }
    }

    /// a * a computed in the dtype.
    fn square(self, a: f64) -> f64 {
        match self {
            Quant::F32 => (a as f32 * a as f32) as f64,
            Quant::F64 => a * a,
            Quant::Int(_) => self.q(wrap_i(a).wrapping_mul(wrap_i(a)) as f64),
        }
    }
}

fn wrap_i(v: f64) -> i64 {
    if v >= 9.223_372_036_854_776e18 {
        v as u64 as i64
    } else {
        v as i64
    }
}

fn to_f64(b: &Buf) -> Vec<f64> {
    let n = b.len();
    let mut out = Buf::zeros(DType::F64, n);
    super::elementwise::cast(b, &mut out, n);
    match out {
        Buf::F64(v) => v,
        _ => unreachable!(),
    }
}

/// Elements `[at, at + len)` of a buffer, widened to f64.
fn to_f64_range(b: &Buf, at: usize, len: usize) -> Vec<f64> {
    match b {
        // Fast paths for the common image dtypes (get_f64 dispatches per element).
        Buf::F32(v) => v[at..at + len].iter().map(|x| *x as f64).collect(),
        Buf::F64(v) => v[at..at + len].to_vec(),
        Buf::U8(v) => v[at..at + len].iter().map(|x| *x as f64).collect(),
        Buf::U16(v) => v[at..at + len].iter().map(|x| *x as f64).collect(),
        _ => (at..at + len).map(|i| b.get_f64(i)).collect(),
    }
}

fn from_f64(v: Vec<f64>, d: DType) -> Buf {
    let n = v.len();
    if d == DType::F64 {
        return Buf::F64(v);
    }
    let mut out = Buf::zeros(d, n);
    if d.is_integer() {
        // Values are already quantized; go through i64 so u64 above 2^63 survives.
        let ints: Vec<i64> = v.iter().map(|x| wrap_i(*x)).collect();
        super::elementwise::cast(&Buf::I64(ints), &mut out, n);
    } else {
        super::elementwise::cast(&Buf::F64(v), &mut out, n);
    }
    out
}

/// Append values already rounded to `out`'s dtype (what `from_f64` makes of them).
fn append_f64(out: &mut Buf, v: Vec<f64>) {
    match out {
        Buf::F32(o) => o.extend(v.iter().map(|x| *x as f32)),
        Buf::F64(o) => o.extend_from_slice(&v),
        _ => {
            let part = from_f64(v, out.dtype());
            out.extend_from(&part, 0, part.len());
        }
    }
}

/// A dense f64 block with its shape.
struct Block {
    v: Vec<f64>,
    shape: Vec<usize>,
}

impl Block {
    fn dims(&self, axis: usize) -> (usize, usize, usize) {
        let outer: usize = self.shape[..axis].iter().product();
        let inner: usize = self.shape[axis + 1..].iter().product();
        (outer, self.shape[axis], inner)
    }

    /// Keep positions `[lo, lo + len)` along `axis`.
    fn crop(&self, axis: usize, lo: usize, len: usize) -> Block {
        let (outer, n, inner) = self.dims(axis);
        if lo == 0 && len == n {
            return Block {
                v: self.v.clone(),
                shape: self.shape.clone(),
            };
        }
        let mut v = Vec::with_capacity(outer * len * inner);
        for o in 0..outer {
            let base = (o * n + lo) * inner;
            v.extend_from_slice(&self.v[base..base + len * inner]);
        }
        let mut shape = self.shape.clone();
        shape[axis] = len;
        Block { v, shape }
    }

    /// Extend by `p` on both sides of `axis` by reflection of the block itself (used only
    /// when an explicit overlap is smaller than the kernel's footprint).
    fn pad_reflect(&self, axis: usize, p: usize) -> Block {
        let (outer, n, inner) = self.dims(axis);
        let m = n + 2 * p;
        let mut v = vec![0.0; outer * m * inner];
        for o in 0..outer {
            for k in 0..m {
                let c = k as i64 - p as i64;
                let s = map_index(c, n as i64, Boundary::Reflect).expect("reflect") as usize;
                let src = (o * n + s) * inner;
                let dst = (o * m + k) * inner;
                v[dst..dst + inner].copy_from_slice(&self.v[src..src + inner]);
            }
        }
        let mut shape = self.shape.clone();
        shape[axis] = m;
        Block { v, shape }
    }

    /// Set every position that lies outside the array along any axis in `axes` to `c`.
    fn set_outside(&mut self, axes: &[usize], outside: &[Vec<bool>], offset: &[usize], c: f64) {
        for &ax in axes {
            if !outside[ax].iter().any(|o| *o) {
                continue;
            }
            let (outer, n, inner) = self.dims(ax);
            for o in 0..outer {
                for k in 0..n {
                    if outside[ax][k + offset[ax]] {
                        let base = (o * n + k) * inner;
                        self.v[base..base + inner].iter_mut().for_each(|v| *v = c);
                    }
                }
            }
        }
    }
}

mod simd {
    //! The correlation inner loop, compiled for AVX-512 and AVX2 as well as the baseline
    //! and chosen at run time. Each lane block keeps its accumulator in registers across
    //! all taps. The operation order per element is scipy's (centre times its weight, then
    //! pairs from the outermost tap inwards), with no fused multiply-add, so results match
    //! scipy bit for bit.

    /// Output lanes per block: 32 f64 keep four AVX-512 (eight AVX2) accumulators in
    /// flight, enough to hide the add latency of the chain through the taps.
    const L: usize = 32;
    /// The narrower block used for what is left of a run before the scalar tail.
    const S: usize = 8;

    /// `B` outputs starting at `src[at]`; the taps reach `r·s` either side.
    ///
    /// # Safety
    /// `at >= r·s` and `at + r·s + B <= src.len()`.
    #[inline(always)]
    unsafe fn block<const SYM: bool, const B: usize>(
        src: &[f64],
        at: usize,
        s: usize,
        w: &[f64],
    ) -> [f64; B] {
        let r = (w.len() - 1) / 2;
        let p = src.as_ptr();
        let mut acc = [0.0f64; B];
        let w0 = w[r];
        for (l, a) in acc.iter_mut().enumerate() {
            // SAFETY: at + l < at + B <= src.len() (caller's contract).
            *a = unsafe { *p.add(at + l) } * w0;
        }
        for (t, &wt) in w[..r].iter().enumerate() {
            let d = (r - t) * s;
            // SAFETY: at - d >= at - r·s >= 0 and at + d + B <= at + r·s + B <= src.len().
            let (lo, hi) = unsafe { (p.add(at - d), p.add(at + d)) };
            for (l, a) in acc.iter_mut().enumerate() {
                // SAFETY: l < B, within the ranges above.
                let (x, y) = unsafe { (*lo.add(l), *hi.add(l)) };
                if SYM {
                    *a += (x + y) * wt;
                } else {
                    *a += (x - y) * wt;
                }
            }
        }
        acc
    }

    /// Append `n` values `src[c+k]·w[r] + Σ_{j=r..1} (src[c+k-j·s] ± src[c+k+j·s])·w[r-j]`
    /// to `dst` (appending avoids zero-filling outputs that are overwritten anyway).
    #[inline(always)]
    fn corr_impl<const SYM: bool>(
        dst: &mut Vec<f64>,
        n: usize,
        src: &[f64],
        c: usize,
        s: usize,
        w: &[f64],
    ) {
        if n == 0 {
            return;
        }
        let r = (w.len() - 1) / 2;
        // Every tap of every output lies inside `src`: checked once for the whole run.
        assert!(
            c >= r * s && c + n + r * s <= src.len(),
            "taps outside the block"
        );
        dst.reserve(n);
        let mut k = 0;
        while k + L <= n {
            // SAFETY: c + k >= r·s and c + k + r·s + L <= c + n + r·s <= src.len().
            dst.extend_from_slice(&unsafe { block::<SYM, L>(src, c + k, s, w) });
            k += L;
        }
        while k + S <= n {
            // SAFETY: as above with S <= n - k.
            dst.extend_from_slice(&unsafe { block::<SYM, S>(src, c + k, s, w) });
            k += S;
        }
        while k < n {
            // SAFETY: as above with one lane.
            dst.extend_from_slice(&unsafe { block::<SYM, 1>(src, c + k, s, w) });
            k += 1;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn corr_avx512<const SYM: bool>(
        dst: &mut Vec<f64>,
        n: usize,
        src: &[f64],
        c: usize,
        s: usize,
        w: &[f64],
    ) {
        corr_impl::<SYM>(dst, n, src, c, s, w)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn corr_avx2<const SYM: bool>(
        dst: &mut Vec<f64>,
        n: usize,
        src: &[f64],
        c: usize,
        s: usize,
        w: &[f64],
    ) {
        corr_impl::<SYM>(dst, n, src, c, s, w)
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Level {
        Base,
        Avx2,
        Avx512,
    }

    fn level() -> Level {
        use std::sync::OnceLock;
        static L: OnceLock<Level> = OnceLock::new();
        *L.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    return Level::Avx512;
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    return Level::Avx2;
                }
            }
            Level::Base
        })
    }

    /// Correlate one output run (see `corr_impl`); `sym` picks (a + b) or (a − b).
    pub fn corr(
        dst: &mut Vec<f64>,
        n: usize,
        src: &[f64],
        c: usize,
        s: usize,
        w: &[f64],
        sym: bool,
    ) {
        match (level(), sym) {
            // SAFETY: the CPU supports the instruction set (checked by `level`).
            #[cfg(target_arch = "x86_64")]
            (Level::Avx512, true) => unsafe { corr_avx512::<true>(dst, n, src, c, s, w) },
            #[cfg(target_arch = "x86_64")]
            (Level::Avx512, false) => unsafe { corr_avx512::<false>(dst, n, src, c, s, w) },
            #[cfg(target_arch = "x86_64")]
            (Level::Avx2, true) => unsafe { corr_avx2::<true>(dst, n, src, c, s, w) },
            #[cfg(target_arch = "x86_64")]
            (Level::Avx2, false) => unsafe { corr_avx2::<false>(dst, n, src, c, s, w) },
            (_, true) => corr_impl::<true>(dst, n, src, c, s, w),
            (_, false) => corr_impl::<false>(dst, n, src, c, s, w),
        }
    }
}

/// scipy's `correlate1d` for an odd symmetric or antisymmetric kernel along `axis`; the
/// block carries `h` extra positions on each side of that axis, which are consumed.
fn correlate(b: &Block, axis: usize, w: &[f64], h: usize, q: Quant) -> Block {
    let r = (w.len() - 1) / 2;
    if h < r {
        return correlate(&b.pad_reflect(axis, r - h), axis, w, r, q);
    }
    let sym = (1..=r).all(|j| w[r - j] == w[r + j]);
    let (outer, n, inner) = b.dims(axis);
    let out_len = n - 2 * h;
    let mut v: Vec<f64> = Vec::with_capacity(outer * out_len * inner);
    for o in 0..outer {
        let src = &b.v[o * n * inner..(o + 1) * n * inner];
        // Runs are produced in output order; each is rounded to the dtype while it is
        // still in cache.
        if inner == 1 {
            // Along the contiguous axis: one run per line, taps one element apart.
            let at = v.len();
            simd::corr(&mut v, out_len, src, h, 1, w, sym);
            q.quantize(&mut v[at..]);
        } else {
            // Across rows: one run per output row, taps one row apart.
            for i in 0..out_len {
                let at = v.len();
                simd::corr(&mut v, inner, src, (i + h) * inner, inner, w, sym);
                q.quantize(&mut v[at..]);
            }
        }
    }
    let mut shape = b.shape.clone();
    shape[axis] = out_len;
    Block { v, shape }
}

/// scipy's `uniform_filter1d`: the mean of `size` samples, window `[i - size/2, ...)`.
/// scipy keeps a running sum along the whole line; a tile cannot know that sum's rounding
/// history, so each window is summed directly, left to right, in double. That is exactly
/// scipy's value for integer and float32 input (the sums are exact in double) and for
/// the first window of every line; for float64 input later windows can differ from
/// scipy in the last bit, but never with the chunking.
fn uniform(b: &Block, axis: usize, size: usize, h: usize, q: Quant) -> Block {
    let s1 = size / 2;
    if h < s1 {
        return uniform(&b.pad_reflect(axis, s1 - h), axis, size, s1, q);
    }
    let (outer, n, inner) = b.dims(axis);
    let out_len = n - 2 * h;
    let mut v = vec![0.0; outer * out_len * inner];
    let sz = size as f64;
    for o in 0..outer {
        for l in 0..out_len {
            let p0 = l + h - s1;
            let d0 = (o * out_len + l) * inner;
            let dst = &mut v[d0..d0 + inner];
            dst.iter_mut().for_each(|x| *x = 0.0);
            for s in 0..size {
                let src = &b.v[(o * n + p0 + s) * inner..(o * n + p0 + s + 1) * inner];
                for (d, x) in dst.iter_mut().zip(src) {
                    *d += *x;
                }
            }
            dst.iter_mut().for_each(|x| *x /= sz);
            q.quantize(dst);
        }
    }
    let mut shape = b.shape.clone();
    shape[axis] = out_len;
    Block { v, shape }
}

/// Minimum or maximum over `size` samples (window `[i - size/2, i - size/2 + size)`).
fn min_max(b: &Block, axis: usize, size: usize, h: usize, max: bool) -> Block {
    let s1 = size / 2;
    if h < s1 {
        return min_max(&b.pad_reflect(axis, s1 - h), axis, size, s1, max);
    }
    let (outer, n, inner) = b.dims(axis);
    let out_len = n - 2 * h;
    let mut v = vec![0.0; outer * out_len * inner];
    for o in 0..outer {
        for l in 0..out_len {
            let p0 = l + h - s1;
            let d0 = (o * out_len + l) * inner;
            let dst = &mut v[d0..d0 + inner];
            let first = (o * n + p0) * inner;
            dst.copy_from_slice(&b.v[first..first + inner]);
            for s in 1..size {
                let src = &b.v[(o * n + p0 + s) * inner..(o * n + p0 + s + 1) * inner];
                for (d, x) in dst.iter_mut().zip(src) {
                    // scipy replaces only on a strict comparison.
                    if (max && *x > *d) || (!max && *x < *d) {
                        *d = *x;
                    }
                }
            }
        }
    }
    let mut shape = b.shape.clone();
    shape[axis] = out_len;
    Block { v, shape }
}

/// Median over a full box footprint (scipy's rank filter with rank = count // 2).
fn median(b: &Block, size: &[usize], halo: &[usize], out_shape: &[usize]) -> Vec<f64> {
    let nd = b.shape.len();
    let st = strides(&b.shape.iter().map(|v| *v as u64).collect::<Vec<_>>());
    // Window offsets relative to the window's first corner.
    let wshape: Vec<u64> = size.iter().map(|s| *s as u64).collect();
    let offs: Vec<usize> = crate::geom::iter_box(&Region::full(&wshape))
        .map(|idx| idx.iter().zip(&st).map(|(i, s)| *i as usize * s).sum())
        .collect();
    let rank = offs.len() / 2;
    let mut win = vec![0.0; offs.len()];
    let oshape: Vec<u64> = out_shape.iter().map(|v| *v as u64).collect();
    let mut out = Vec::with_capacity(out_shape.iter().product());
    for idx in crate::geom::iter_box(&Region::full(&oshape)) {
        let corner: usize = (0..nd)
            .map(|a| (idx[a] as usize + halo[a] - size[a] / 2) * st[a])
            .sum();
        for (w, o) in win.iter_mut().zip(&offs) {
            *w = b.v[corner + o];
        }
        let (_, m, _) = win.select_nth_unstable_by(rank, |a, b| {
            a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal)
        });
        out.push(*m);
    }
    out
}

/// numpy's pairwise summation (`np.sum` of a contiguous float64 array).
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut s = 0.0;
        for x in a {
            s += x;
        }
        s
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            s += a[i];
            i += 1;
        }
        s
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// scipy's `_gaussian_kernel1d` (order 0 or 1), reversed for correlation as scipy does.
pub fn gaussian_weights(sigma: f64, truncate: f64, order: u32) -> Vec<f64> {
    let r = (truncate * sigma + 0.5) as i64;
    let c = -0.5 / (sigma * sigma);
    let phi: Vec<f64> = (-r..=r).map(|x| (c * (x * x) as f64).exp()).collect();
    let s = 0.0 + pairwise_sum(&phi);
    let phi: Vec<f64> = phi.iter().map(|p| p / s).collect();
    if order == 0 {
        return phi;
    }
    let q = 1.0 / -(sigma * sigma);
    let mut k: Vec<f64> = (-r..=r)
        .zip(&phi)
        .map(|(x, p)| (x as f64 * q) * p)
        .collect();
    k.reverse();
    k
}

pub fn eval_stencil(
    ctx: &Ctx,
    x: NodeId,
    kernel: &Kernel,
    halo: &[u64],
    boundary: Boundary,
    ty: &ArrayType,
    region: &Region,
) -> Result<Buf, ExecError> {
    let fetch = |r: &Region| eval(ctx, x, r);
    if let KernelKind::Native(n) = &kernel.kind {
        let input = &ctx.program.node(x).ty;
        return native_block(&fetch, n, kernel, halo, boundary, input, ty, region);
    }
    stencil(&fetch, kernel, halo, boundary, ty, region)
}

/// Run a host program's kernel on one output block: its input grown by the halo
/// (neighbouring chunks, then the boundary mode past the array's edge) in the input's
/// dtype, and the output block in the output's. An error or a panic of the
/// implementation, or an output it replaced by one of another length or dtype, is an
/// error naming the kernel (the task adds the chunk).
#[allow(clippy::too_many_arguments)]
fn native_block(
    fetch: &Fetch,
    n: &NativeRef,
    kernel: &Kernel,
    halo: &[u64],
    boundary: Boundary,
    input_ty: &ArrayType,
    ty: &ArrayType,
    region: &Region,
) -> Result<Buf, ExecError> {
    let h: Vec<usize> = halo.iter().map(|v| *v as usize).collect();
    let (ext, ext_shape, _) = extended(fetch, input_ty, region, &h, boundary)?;
    let rshape: Vec<usize> = region.shape().iter().map(|v| *v as usize).collect();
    let len: usize = rshape.iter().product();
    let mut out = Buf::zeros(ty.dtype, len);
    let input = BlockIn {
        data: &ext,
        shape: &ext_shape,
        halo: &h,
        origin: &region.start,
        args: KernelArgs::new(n.0.params(), &kernel.params),
    };
    let mut output = BlockOut {
        data: &mut out,
        shape: &rshape,
    };
    let fail = |message: String| ExecError::Kernel {
        kernel: n.0.name().to_string(),
        message,
    };
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        n.0.run(&input, &mut output)
    }));
    match ran {
        Ok(Ok(())) => {}
        Ok(Err(m)) => return Err(fail(m)),
        Err(p) => {
            let m = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            return Err(fail(format!("it panicked: {m}")));
        }
    }
    if out.dtype() != ty.dtype || out.len() != len {
        return Err(fail(format!(
            "it left {} {} values in an output block of {len} {} values",
            out.len(),
            out.dtype(),
            ty.dtype
        )));
    }
    Ok(out)
}

/// Filter a whole in-memory array (the untiled reference, and the kernel benchmark).
pub fn filter_array(kernel: &Kernel, data: &Buf, shape: &[u64], boundary: Boundary) -> Buf {
    let mut k = kernel.clone();
    if let Some(p) = k.params_for(shape.len()) {
        k.params = p;
    }
    if k.kind == KernelKind::Sobel {
        k.axis = k.axis.rem_euclid(shape.len() as i64);
    }
    let halo = k.radius(shape.len());
    let ty = ArrayType {
        dtype: data.dtype(),
        shape: shape.to_vec(),
        chunks: shape.to_vec(),
    };
    let fetch = |r: &Region| Ok(layout::extract(data, shape, r));
    stencil(&fetch, &k, &halo, boundary, &ty, &Region::full(shape))
        .expect("in-memory fetches do not fail")
}

fn stencil(
    fetch: &Fetch,
    kernel: &Kernel,
    halo: &[u64],
    boundary: Boundary,
    ty: &ArrayType,
    region: &Region,
) -> Result<Buf, ExecError> {
    let nd = ty.shape.len();
    let radius = kernel.radius(nd);
    let deep: Vec<bool> = (0..nd)
        .map(|a| ty.shape[a] >= 1 && radius[a] > ty.shape[a])
        .collect();
    if deep.iter().any(|d| *d) {
        return deep_stencil(fetch, kernel, halo, boundary, ty, region, &deep);
    }
    let h: Vec<usize> = halo.iter().map(|v| *v as usize).collect();
    let (ext, ext_shape, outside) = extended(fetch, ty, region, &h, boundary)?;
    let q = Quant::of(ty.dtype);
    let cval = match boundary {
        Boundary::Constant(c) => Some(c),
        _ => None,
    };
    let rshape: Vec<usize> = region.shape().iter().map(|v| *v as usize).collect();
    let params = &kernel.params;
    let all: Vec<usize> = (0..nd).collect();
    // Run 1-D passes along every axis in order; `pass(block, axis, h)` consumes the halo.
    // `outside` and `rshape` describe the block given (a band or the whole tile).
    let separable = |b: &Block, outside: &[Vec<bool>], rshape: &[usize], pass: &PassFn| -> Block {
        let mut cur: Option<Block> = None;
        for ax in 0..nd {
            let src = cur.as_ref().unwrap_or(b);
            let mut next = match pass(src, ax, h[ax]) {
                Some(out) => out,
                None => src.crop(ax, h[ax], rshape[ax]),
            };
            if let Some(c) = cval {
                let later: Vec<usize> = (ax + 1..nd).collect();
                next.set_outside(&later, outside, &vec![0; nd], c);
            }
            cur = Some(next);
        }
        cur.unwrap_or_else(|| b.crop(0, 0, b.shape.first().copied().unwrap_or(0)))
    };
    let separable_pass: Option<Box<PassFn>> = match kernel.kind {
        KernelKind::Gaussian => Some(Box::new(|b: &Block, ax: usize, hh: usize| {
            (params[ax] > 1e-15).then(|| {
                correlate(
                    b,
                    ax,
                    &gaussian_weights(params[ax], kernel.truncate, 0),
                    hh,
                    q,
                )
            })
        })),
        KernelKind::Uniform => Some(Box::new(|b: &Block, ax: usize, hh: usize| {
            let s = params[ax] as usize;
            (s > 1).then(|| uniform(b, ax, s, hh, q))
        })),
        KernelKind::Minimum | KernelKind::Maximum => {
            let max = kernel.kind == KernelKind::Maximum;
            Some(Box::new(move |b: &Block, ax: usize, hh: usize| {
                let s = params[ax] as usize;
                (s > 1).then(|| min_max(b, ax, s, hh, max))
            }))
        }
        _ => None,
    };
    if let Some(pass) = separable_pass {
        // Work in bands along the first axis so every intermediate fits in cache and no
        // tile-sized temporary is allocated: a band needs only its own halo rows.
        let inner: usize = ext_shape[1..].iter().product();
        let band = if nd >= 2 {
            ((256 << 10) / (8 * inner.max(1))).max(8)
        } else {
            rshape[0].max(1)
        };
        // Each band's result is appended to the output in its dtype.
        let total: usize = rshape.iter().product();
        let mut out = Buf::with_capacity(ty.dtype, total);
        let mut b0 = 0;
        while b0 < rshape[0] {
            let b1 = (b0 + band).min(rshape[0]);
            let rows = b1 - b0 + 2 * h[0];
            let mut block = Block {
                v: to_f64_range(&ext, b0 * inner, rows * inner),
                shape: std::iter::once(rows)
                    .chain(ext_shape[1..].iter().copied())
                    .collect(),
            };
            let mut outside_b = outside.clone();
            outside_b[0] = outside[0][b0..b0 + rows].to_vec();
            if let Some(c) = cval {
                block.set_outside(&all, &outside_b, &vec![0; nd], c);
            }
            let mut rs = rshape.clone();
            rs[0] = b1 - b0;
            append_f64(&mut out, separable(&block, &outside_b, &rs, &*pass).v);
            b0 = b1;
        }
        debug_assert_eq!(out.len(), total);
        return Ok(out);
    }
    let mut base = Block {
        v: to_f64(&ext),
        shape: ext_shape,
    };
    if let Some(c) = cval {
        base.set_outside(&all, &outside, &vec![0; nd], c);
    }
    let out: Vec<f64> = match kernel.kind {
        KernelKind::Gaussian | KernelKind::Uniform | KernelKind::Minimum | KernelKind::Maximum => {
            unreachable!("separable kernels run in bands")
        }
        KernelKind::Native(_) => {
            return Err(ExecError::internal(
                "a native kernel reached the scipy stencil",
            ))
        }
        KernelKind::Median => {
            let size: Vec<usize> = params.iter().map(|s| *s as usize).collect();
            // Pad axes whose halo is below the footprint (explicit small overlap).
            let mut b = base;
            let mut hh = h.clone();
            for ax in 0..nd {
                if hh[ax] < size[ax] / 2 {
                    b = b.pad_reflect(ax, size[ax] / 2 - hh[ax]);
                    hh[ax] = size[ax] / 2;
                }
            }
            median(&b, &size, &hh, &rshape)
        }
        KernelKind::Sobel => {
            let axis = kernel.axis as usize;
            // Derivative along `axis` first, then smoothing along the others ascending.
            let mut cur = correlate(&base, axis, &[-1.0, 0.0, 1.0], h[axis], q);
            if let Some(c) = cval {
                let others: Vec<usize> = (0..nd).filter(|a| *a != axis).collect();
                let offs: Vec<usize> = vec![0; nd];
                cur.set_outside(&others, &outside, &offs, c);
            }
            let mut off: Vec<usize> = vec![0; nd];
            for ax in (0..nd).filter(|a| *a != axis) {
                cur = correlate(&cur, ax, &[1.0, 2.0, 1.0], h[ax], q);
                off[ax] = h[ax];
                if let Some(c) = cval {
                    let later: Vec<usize> = (ax + 1..nd).filter(|a| *a != axis).collect();
                    cur.set_outside(&later, &outside, &vec![0; nd], c);
                }
            }
            // Crop the derivative axis' remaining halo is already consumed; crop others
            // that were never filtered (none: every axis is filtered in sobel).
            cur.v
        }
        KernelKind::Laplace => {
            let mut acc: Option<Vec<f64>> = None;
            for ax in 0..nd {
                // Crop the other axes to the region, then the second derivative along ax.
                let mut b = Block {
                    v: base.v.clone(),
                    shape: base.shape.clone(),
                };
                for o in (0..nd).filter(|o| *o != ax) {
                    b = b.crop(o, h[o], rshape[o]);
                }
                let t = correlate(&b, ax, &[1.0, -2.0, 1.0], h[ax], q);
                acc = Some(match acc {
                    None => t.v,
                    Some(a) => a.iter().zip(&t.v).map(|(x, y)| q.add(*x, *y)).collect(),
                });
            }
            acc.unwrap_or_default()
        }
        KernelKind::GaussianGradientMagnitude => gradient_magnitude(nd, q, ty.dtype, |d| {
            separable(&base, &outside, &rshape, &|b, ax, hh| {
                (params[ax] > 1e-15).then(|| {
                    let order = u32::from(ax == d);
                    correlate(
                        b,
                        ax,
                        &gaussian_weights(params[ax], kernel.truncate, order),
                        hh,
                        q,
                    )
                })
            })
        }),
    };
    Ok(from_f64(out, ty.dtype))
}

/// A footprint folded onto one axis of `n` samples: for each output position `x`, the
/// total weight of every source sample (`m[x * n + j]`) and of the constant outside the
/// array (`cw[x]`). Output `x` reads `sum_k w[k] * ext(x + lo + k)`, where `ext` is the
/// signal extended by the boundary mode as often as the footprint needs; folding costs
/// `O(len(w) + outputs * n)` and `outputs * n` values, whatever the footprint's length.
struct Fold {
    n: usize,
    m: Vec<f64>,
    cw: Vec<f64>,
}

impl Fold {
    fn new(w: &[f64], lo: i64, n: usize, out: std::ops::Range<u64>, b: Boundary) -> Fold {
        let len = (out.end - out.start) as usize;
        let mut m = vec![0.0; len * n];
        let mut cw = vec![0.0; len];
        let ni = n as i64;
        let period = match b {
            Boundary::Wrap => Some(ni),
            Boundary::Mirror => Some((2 * ni - 2).max(1)),
            Boundary::Reflect | Boundary::None => Some(2 * ni),
            Boundary::Nearest | Boundary::Constant(_) => None,
        };
        if let Some(p) = period {
            // The extension is periodic: sum the weights per residue once, then map
            // each residue to its source sample.
            let mut g = vec![0.0; p as usize];
            for (k, wk) in w.iter().enumerate() {
                g[(lo + k as i64).rem_euclid(p) as usize] += wk;
            }
            for (i, x) in out.clone().enumerate() {
                let row = &mut m[i * n..(i + 1) * n];
                for r in 0..p {
                    let j = map_index(r, ni, b).expect("periodic modes map every index");
                    row[j as usize] += g[(r - x as i64).rem_euclid(p) as usize];
                }
            }
        } else {
            // Outside the array the extension is one value per side (nearest) or the
            // constant: prefix sums give each side's total weight.
            let mut pre = Vec::with_capacity(w.len() + 1);
            pre.push(0.0);
            for wk in w {
                pre.push(pre.last().copied().unwrap_or(0.0) + wk);
            }
            let l = w.len() as i64;
            for (i, x) in out.clone().enumerate() {
                let x = x as i64;
                let k0 = (-x - lo).clamp(0, l);
                let k1 = (ni - x - lo).clamp(0, l);
                let row = &mut m[i * n..(i + 1) * n];
                for k in k0..k1.max(k0) {
                    row[(x + lo + k) as usize] += w[k as usize];
                }
                let left = pre[k0 as usize];
                let right = pre[l as usize] - pre[k1.max(k0) as usize];
                if matches!(b, Boundary::Nearest) {
                    row[0] += left;
                    row[n - 1] += right;
                } else {
                    cw[i] = left + right;
                }
            }
        }
        Fold { n, m, cw }
    }

    fn len(&self) -> usize {
        self.cw.len()
    }
}

/// A weighted sum along `axis` through a fold (the block holds the whole axis), divided
/// by `div`, rounded to the dtype.
fn fold_sum(b: &Block, axis: usize, f: &Fold, cval: f64, div: f64, q: Quant) -> Block {
    let (outer, n, inner) = b.dims(axis);
    debug_assert_eq!(n, f.n);
    let len = f.len();
    let mut v = vec![0.0; outer * len * inner];
    for o in 0..outer {
        for x in 0..len {
            let d0 = (o * len + x) * inner;
            let dst = &mut v[d0..d0 + inner];
            for j in 0..n {
                let wj = f.m[x * n + j];
                if wj == 0.0 {
                    continue;
                }
                let src = &b.v[(o * n + j) * inner..(o * n + j + 1) * inner];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += wj * s;
                }
            }
            if f.cw[x] != 0.0 {
                dst.iter_mut().for_each(|d| *d += f.cw[x] * cval);
            }
            if div != 1.0 {
                dst.iter_mut().for_each(|d| *d /= div);
            }
            q.quantize(dst);
        }
    }
    let mut shape = b.shape.clone();
    shape[axis] = len;
    Block { v, shape }
}

/// Minimum or maximum along `axis` over the samples a fold reaches.
fn fold_min_max(b: &Block, axis: usize, f: &Fold, cval: f64, max: bool) -> Block {
    let (outer, n, inner) = b.dims(axis);
    let len = f.len();
    let mut v = vec![0.0; outer * len * inner];
    for o in 0..outer {
        for x in 0..len {
            let d0 = (o * len + x) * inner;
            let dst = &mut v[d0..d0 + inner];
            let mut first = true;
            let mut take = |src: &[f64], dst: &mut [f64]| {
                if first {
                    dst.copy_from_slice(src);
                    first = false;
                } else {
                    for (d, s) in dst.iter_mut().zip(src) {
                        if (max && *s > *d) || (!max && *s < *d) {
                            *d = *s;
                        }
                    }
                }
            };
            for j in (0..n).filter(|j| f.m[x * n + j] > 0.0) {
                take(&b.v[(o * n + j) * inner..(o * n + j + 1) * inner], dst);
            }
            if f.cw[x] > 0.0 {
                take(&vec![cval; inner], dst);
            }
        }
    }
    let mut shape = b.shape.clone();
    shape[axis] = len;
    Block { v, shape }
}

/// A stencil whose footprint is longer than some axis of the array ("deep" axes). Along a
/// deep axis the task reads the whole axis once and folds the footprint onto it (`Fold`):
/// every sample of the extended signal maps to a sample of the array (or to the constant),
/// so its weight is added to that sample's. Work and memory are bounded by the array's
/// size, not the footprint's. Minimum, maximum and median only count samples, so they are
/// exactly scipy's; a folded weighted sum adds the same terms in another order (within a
/// few ulps of scipy in float64, and exact for integer input of uniform, whose counts are
/// whole numbers). Other axes are extended and filtered as usual.
fn deep_stencil(
    fetch: &Fetch,
    kernel: &Kernel,
    halo: &[u64],
    boundary: Boundary,
    ty: &ArrayType,
    region: &Region,
    deep: &[bool],
) -> Result<Buf, ExecError> {
    let nd = ty.shape.len();
    let h: Vec<usize> = (0..nd)
        .map(|a| if deep[a] { 0 } else { halo[a] as usize })
        .collect();
    let mut whole = region.clone();
    for a in (0..nd).filter(|a| deep[*a]) {
        whole.start[a] = 0;
        whole.end[a] = ty.shape[a];
    }
    let (ext, ext_shape, outside) = extended(fetch, ty, &whole, &h, boundary)?;
    let q = Quant::of(ty.dtype);
    let cval = match boundary {
        Boundary::Constant(c) => Some(c),
        _ => None,
    };
    let c = cval.unwrap_or(0.0);
    let rshape: Vec<usize> = region.shape().iter().map(|v| *v as usize).collect();
    let params = &kernel.params;
    let all: Vec<usize> = (0..nd).collect();
    let mut base = Block {
        v: to_f64(&ext),
        shape: ext_shape,
    };
    if let Some(c) = cval {
        base.set_outside(&all, &outside, &vec![0; nd], c);
    }
    let out_range = |a: usize| region.start[a]..region.end[a];
    let n_of = |a: usize| ty.shape[a] as usize;
    let boxed = |size: usize| (vec![1.0; size], -((size / 2) as i64));
    // One separable filter: per axis either a fold (deep) or the usual 1-D pass.
    let separable = |pass: &dyn Fn(&Block, usize) -> Option<Block>| -> Block {
        let mut cur = Block {
            v: base.v.clone(),
            shape: base.shape.clone(),
        };
        for ax in 0..nd {
            cur = match pass(&cur, ax) {
                Some(b) => b,
                None => cur.crop(ax, h[ax], rshape[ax]),
            };
            if let Some(c) = cval {
                let later: Vec<usize> = (ax + 1..nd).collect();
                cur.set_outside(&later, &outside, &vec![0; nd], c);
            }
        }
        cur
    };
    let gauss = |b: &Block, ax: usize, order: u32| -> Option<Block> {
        (params[ax] > 1e-15).then(|| {
            let w = gaussian_weights(params[ax], kernel.truncate, order);
            if deep[ax] {
                let r = ((w.len() - 1) / 2) as i64;
                let f = Fold::new(&w, -r, n_of(ax), out_range(ax), boundary);
                fold_sum(b, ax, &f, c, 1.0, q)
            } else {
                correlate(b, ax, &w, h[ax], q)
            }
        })
    };
    let out: Vec<f64> = match kernel.kind {
        KernelKind::Gaussian => separable(&|b, ax| gauss(b, ax, 0)).v,
        KernelKind::GaussianGradientMagnitude => gradient_magnitude(nd, q, ty.dtype, |d| {
            separable(&|b, ax| gauss(b, ax, u32::from(ax == d)))
        }),
        KernelKind::Uniform => {
            separable(&|b, ax| {
                let s = params[ax] as usize;
                (s > 1).then(|| {
                    if deep[ax] {
                        let (w, lo) = boxed(s);
                        let f = Fold::new(&w, lo, n_of(ax), out_range(ax), boundary);
                        fold_sum(b, ax, &f, c, s as f64, q)
                    } else {
                        uniform(b, ax, s, h[ax], q)
                    }
                })
            })
            .v
        }
        KernelKind::Minimum | KernelKind::Maximum => {
            let max = kernel.kind == KernelKind::Maximum;
            separable(&|b, ax| {
                let s = params[ax] as usize;
                (s > 1).then(|| {
                    if deep[ax] {
                        let (w, lo) = boxed(s);
                        let f = Fold::new(&w, lo, n_of(ax), out_range(ax), boundary);
                        fold_min_max(b, ax, &f, c, max)
                    } else {
                        min_max(b, ax, s, h[ax], max)
                    }
                })
            })
            .v
        }
        KernelKind::Median => {
            let size: Vec<usize> = params.iter().map(|s| *s as usize).collect();
            let mut b = base;
            let mut hh = h.clone();
            for ax in (0..nd).filter(|a| !deep[*a]) {
                if hh[ax] < size[ax] / 2 {
                    b = b.pad_reflect(ax, size[ax] / 2 - hh[ax]);
                    hh[ax] = size[ax] / 2;
                }
            }
            let folds: Vec<Option<Fold>> = (0..nd)
                .map(|a| {
                    deep[a].then(|| {
                        let (w, lo) = boxed(size[a]);
                        Fold::new(&w, lo, n_of(a), out_range(a), boundary)
                    })
                })
                .collect();
            weighted_median(&b, &size, &hh, &folds, c, &rshape)
        }
        KernelKind::Sobel | KernelKind::Laplace => {
            unreachable!("a radius of 1 is never longer than a non-empty axis")
        }
        KernelKind::Native(_) => {
            return Err(ExecError::internal(
                "a native kernel reached the folded stencil",
            ))
        }
    };
    Ok(from_f64(out, ty.dtype))
}

/// The median over a box footprint some of whose axes are folded: per axis, the samples
/// a window reaches with how often it reaches them; the footprint's multiset is their
/// product, and the median is its element of rank `count // 2`, as scipy's rank filter.
fn weighted_median(
    b: &Block,
    size: &[usize],
    halo: &[usize],
    folds: &[Option<Fold>],
    cval: f64,
    out_shape: &[usize],
) -> Vec<f64> {
    let nd = b.shape.len();
    let st = strides(&b.shape.iter().map(|v| *v as u64).collect::<Vec<_>>());
    let total: u128 = size.iter().map(|s| *s as u128).product();
    let rank = total / 2;
    let oshape: Vec<u64> = out_shape.iter().map(|v| *v as u64).collect();
    let mut out = Vec::with_capacity(out_shape.iter().product());
    let mut pairs: Vec<(f64, u128)> = Vec::new();
    for idx in crate::geom::iter_box(&Region::full(&oshape)) {
        // Per axis: (offset in the block or None for the constant, count).
        let lists: Vec<Vec<(Option<usize>, u128)>> = (0..nd)
            .map(|a| {
                let x = idx[a] as usize;
                match &folds[a] {
                    Some(f) => {
                        let mut l: Vec<(Option<usize>, u128)> = (0..f.n)
                            .filter(|j| f.m[x * f.n + j] > 0.0)
                            .map(|j| (Some(j * st[a]), f.m[x * f.n + j] as u128))
                            .collect();
                        if f.cw[x] > 0.0 {
                            l.push((None, f.cw[x] as u128));
                        }
                        l
                    }
                    None => {
                        let c0 = x + halo[a] - size[a] / 2;
                        (0..size[a]).map(|t| (Some((c0 + t) * st[a]), 1)).collect()
                    }
                }
            })
            .collect();
        pairs.clear();
        let counts: Vec<u64> = lists.iter().map(|l| l.len() as u64).collect();
        for sel in crate::geom::iter_box(&Region::full(&counts)) {
            let mut at = Some(0usize);
            let mut wgt = 1u128;
            for a in 0..nd {
                let (o, c) = lists[a][sel[a] as usize];
                at = at.zip(o).map(|(p, o)| p + o);
                wgt *= c;
            }
            pairs.push((at.map_or(cval, |p| b.v[p]), wgt));
        }
        pairs.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
        let mut cum = 0u128;
        let mut m = pairs.last().map_or(cval, |p| p.0);
        for (v, w) in &pairs {
            cum += w;
            if cum > rank {
                m = *v;
                break;
            }
        }
        out.push(m);
    }
    out
}

/// `np.sqrt(x).astype(dtype)` for a value of `dtype`: NumPy computes 8-bit integers in
/// float16, 16-bit in float32 and wider in float64, then truncates back.
/// scipy's `gaussian_gradient_magnitude`: the square root of the sum, over every axis `d`,
/// of the squared Gaussian derivative along `d` (`component(d)`), summed in axis order and
/// rounded as scipy rounds.
fn gradient_magnitude(
    nd: usize,
    q: Quant,
    dtype: DType,
    mut component: impl FnMut(usize) -> Block,
) -> Vec<f64> {
    let mut acc: Option<Vec<f64>> = None;
    for d in 0..nd {
        let sq: Vec<f64> = component(d).v.iter().map(|v| q.square(*v)).collect();
        acc = Some(match acc {
            None => sq,
            Some(a) => a.iter().zip(&sq).map(|(x, y)| q.add(*x, *y)).collect(),
        });
    }
    acc.unwrap_or_default()
        .into_iter()
        .map(|v| sqrt_in(dtype, v))
        .collect()
}

fn sqrt_in(d: DType, v: f64) -> f64 {
    let r = match d {
        DType::F32 => (v as f32).sqrt() as f64,
        DType::F64 => v.sqrt(),
        DType::U8 | DType::I8 => {
            half::f16::from_f32((half::f16::from_f64(v).to_f32()).sqrt()).to_f64()
        }
        DType::U16 | DType::I16 => (v as f32).sqrt() as f64,
        _ => v.sqrt(),
    };
    Quant::of(d).q(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_modes_match_numpy_pad() {
        let n = 4;
        let m = |b| {
            (-3..7)
                .map(|c| map_index(c, n, b).unwrap())
                .collect::<Vec<_>>()
        };
        // np.pad([0,1,2,3], 3, 'symmetric') → 2 1 0 | 0 1 2 3 | 3 2 1
        assert_eq!(m(Boundary::Reflect), vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        // 'reflect' → 3 2 1 | 0 1 2 3 | 2 1 0
        assert_eq!(m(Boundary::Mirror), vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(m(Boundary::Nearest), vec![0, 0, 0, 0, 1, 2, 3, 3, 3, 3]);
        assert_eq!(m(Boundary::Wrap), vec![1, 2, 3, 0, 1, 2, 3, 0, 1, 2]);
    }

    #[test]
    fn segments_follow_reflection() {
        let s = segments(-2, 6, 4, Boundary::Reflect);
        let ranges: Vec<_> = s.iter().map(|s| (s.dst, s.len, s.src)).collect();
        assert_eq!(
            ranges,
            vec![
                (0, 2, Some((1, -1))),
                (2, 4, Some((0, 1))),
                (6, 2, Some((3, -1)))
            ]
        );
    }

    #[test]
    fn gaussian_weights_sum_to_one() {
        let w = gaussian_weights(1.5, 4.0, 0);
        assert_eq!(w.len(), 13);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let d = gaussian_weights(2.0, 4.0, 1);
        for j in 1..=8 {
            assert_eq!(d[8 + j], -d[8 - j]);
        }
        // Reversed for correlation: the weight after the centre belongs to x = -1.
        assert!(d[9] > 0.0 && d[7] < 0.0);
    }
}
