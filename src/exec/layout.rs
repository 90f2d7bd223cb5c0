//! Moving elements between dense C-order buffers: sub-box copies and strided gathers
//! (indexing with steps, broadcasting with zero strides).

use crate::data::Buf;
use crate::geom::{strides, Region};

/// Visit every row (last-axis run) of a box of `shape`, giving the row's outer index.
fn for_each_row(shape: &[u64], mut f: impl FnMut(&[u64])) {
    let nd = shape.len();
    if nd == 0 {
        f(&[]);
        return;
    }
    if shape.contains(&0) {
        return;
    }
    let outer = &shape[..nd - 1];
    let mut idx = vec![0u64; nd - 1];
    loop {
        f(&idx);
        // Increment the outer index in C order.
        let mut ax = nd - 1;
        loop {
            if ax == 0 {
                return;
            }
            ax -= 1;
            idx[ax] += 1;
            if idx[ax] < outer[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
}

fn copy_box_t<T: Copy>(dst: &mut [T], dst_shape: &[u64], at: &[u64], src: &[T], src_shape: &[u64]) {
    let ds = strides(dst_shape);
    let ss = strides(src_shape);
    let nd = src_shape.len();
    if nd == 0 {
        dst[0] = src[0];
        return;
    }
    let row = src_shape[nd - 1] as usize;
    for_each_row(src_shape, |outer| {
        let mut so = 0usize;
        let mut d = 0usize;
        for ax in 0..nd - 1 {
            so += outer[ax] as usize * ss[ax];
            d += (outer[ax] + at[ax]) as usize * ds[ax];
        }
        d += at[nd - 1] as usize;
        dst[d..d + row].copy_from_slice(&src[so..so + row]);
    });
}

/// Copy all of `src` (shape `src_shape`) into `dst` (shape `dst_shape`) at offset `at`.
pub fn copy_into(dst: &mut Buf, dst_shape: &[u64], at: &[u64], src: &Buf, src_shape: &[u64]) {
    macro_rules! arms {
        ($($v:ident)*) => {
            match (dst, src) {
                $((Buf::$v(d), Buf::$v(s)) => copy_box_t(d, dst_shape, at, s, src_shape),)*
                _ => unreachable!("copy between buffers of different dtypes"),
            }
        };
    }
    arms!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64 C64 C128)
}

fn copy_box_from_t<T: Copy>(
    dst: &mut [T],
    dst_shape: &[u64],
    at: &[u64],
    src: &[T],
    src_shape: &[u64],
    part: &Region,
) {
    let ds = strides(dst_shape);
    let ss = strides(src_shape);
    let nd = src_shape.len();
    let pshape = part.shape();
    if nd == 0 {
        dst[0] = src[0];
        return;
    }
    let row = pshape[nd - 1] as usize;
    for_each_row(&pshape, |outer| {
        let mut so = part.start[nd - 1] as usize;
        let mut d = at[nd - 1] as usize;
        for ax in 0..nd - 1 {
            so += (outer[ax] + part.start[ax]) as usize * ss[ax];
            d += (outer[ax] + at[ax]) as usize * ds[ax];
        }
        dst[d..d + row].copy_from_slice(&src[so..so + row]);
    });
}

/// Copy the sub-box `part` of `src` (shape `src_shape`) into `dst` (shape `dst_shape`)
/// at offset `at`, in one pass.
pub fn copy_box(
    dst: &mut Buf,
    dst_shape: &[u64],
    at: &[u64],
    src: &Buf,
    src_shape: &[u64],
    part: &Region,
) {
    macro_rules! arms {
        ($($v:ident)*) => {
            match (dst, src) {
                $((Buf::$v(d), Buf::$v(s)) => copy_box_from_t(d, dst_shape, at, s, src_shape, part),)*
                _ => unreachable!("copy between buffers of different dtypes"),
            }
        };
    }
    arms!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64 C64 C128)
}

fn gather_t<T: Copy>(src: &[T], offset: isize, st: &[isize], out_shape: &[u64]) -> Vec<T> {
    let n = out_shape.iter().product::<u64>() as usize;
    let mut out = Vec::with_capacity(n);
    extend_gathered(&mut out, src, offset, st, out_shape, 0, n);
    out
}

/// Append elements `start .. start + m` (flat, C order) of the strided view
/// `src[offset + Σ i_a · strides_a]` of `shape` to `out`: runs along the last axis are
/// filled with one value (stride 0), copied (stride 1) or stepped.
fn extend_gathered<T: Copy>(
    out: &mut Vec<T>,
    src: &[T],
    offset: isize,
    strides: &[isize],
    shape: &[u64],
    start: usize,
    m: usize,
) {
    let nd = shape.len();
    if nd == 0 {
        out.extend(std::iter::repeat_n(src[offset as usize], m));
        return;
    }
    // The multi-index of `start` and its offset in `src`.
    let mut idx = vec![0u64; nd];
    let mut rest = start as u64;
    for a in (0..nd).rev() {
        idx[a] = rest % shape[a].max(1);
        rest /= shape[a].max(1);
    }
    let mut off = offset
        + idx
            .iter()
            .zip(strides)
            .map(|(i, s)| *i as isize * s)
            .sum::<isize>();
    let last = nd - 1;
    let mut left = m;
    while left > 0 {
        let run = ((shape[last] - idx[last]) as usize).min(left);
        match strides[last] {
            0 => out.extend(std::iter::repeat_n(src[off as usize], run)),
            1 => out.extend_from_slice(&src[off as usize..off as usize + run]),
            st => out.extend((0..run as isize).map(|k| src[(off + k * st) as usize])),
        }
        left -= run;
        // Advance the index by `run` along the last axis, carrying into outer axes.
        off += run as isize * strides[last];
        idx[last] += run as u64;
        let mut a = last;
        while idx[a] == shape[a] && a > 0 {
            off -= shape[a] as isize * strides[a];
            idx[a] = 0;
            a -= 1;
            idx[a] += 1;
            off += strides[a];
        }
    }
}

/// Replace the contents of `dst` by elements `start .. start + m` (flat, C order) of the
/// strided view `src[Σ i_a · strides_a]` of `shape` (same dtype): a tile of a broadcast
/// read without expanding the whole view.
pub fn gather_range(
    dst: &mut Buf,
    src: &Buf,
    strides: &[isize],
    shape: &[u64],
    start: usize,
    m: usize,
) {
    macro_rules! arms {
        ($($v:ident)*) => {
            match (dst, src) {
                $((Buf::$v(d), Buf::$v(s)) => {
                    d.clear();
                    extend_gathered(d, s, 0, strides, shape, start, m)
                })*
                _ => unreachable!("gather between buffers of different dtypes"),
            }
        };
    }
    arms!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64 C64 C128)
}

/// `out[i] = src[offset + Σ i_a · strides_a]` over a dense output of `out_shape`.
/// Strides may be zero (broadcast) or negative (reversed slices).
pub fn gather(src: &Buf, offset: isize, strides: &[isize], out_shape: &[u64]) -> Buf {
    macro_rules! arms {
        ($($v:ident)*) => {
            match src {
                $(Buf::$v(s) => Buf::$v(gather_t(s, offset, strides, out_shape)),)*
            }
        };
    }
    arms!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64 C64 C128)
}

/// The sub-box `r` (coordinates relative to the buffer) of a dense buffer of `shape`.
pub fn extract(src: &Buf, shape: &[u64], r: &Region) -> Buf {
    if r.start.iter().all(|s| *s == 0) && r.end == shape {
        return src.clone();
    }
    let st: Vec<isize> = strides(shape).into_iter().map(|s| s as isize).collect();
    let offset: isize = r.start.iter().zip(&st).map(|(a, s)| *a as isize * s).sum();
    gather(src, offset, &st, &r.shape())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_and_extract_round_trip() {
        let src = Buf::I32((0..12).collect());
        let mut dst = Buf::zeros(crate::dtype::DType::I32, 30);
        copy_into(&mut dst, &[5, 6], &[1, 2], &src, &[3, 4]);
        let back = extract(&dst, &[5, 6], &Region::new(vec![1, 2], vec![4, 6]));
        assert_eq!(back, src);
        let Buf::I32(d) = &dst else { unreachable!() };
        assert_eq!(d[6 + 2], 0);
        assert_eq!(d[6 + 3], 1);
    }

    #[test]
    fn gather_with_negative_and_zero_strides() {
        let src = Buf::U8(vec![1, 2, 3, 4, 5, 6]); // shape [2, 3]
                                                   // Reverse the last axis.
        assert_eq!(
            gather(&src, 2, &[3, -1], &[2, 3]),
            Buf::U8(vec![3, 2, 1, 6, 5, 4])
        );
        // Broadcast row 0 twice.
        assert_eq!(
            gather(&src, 0, &[0, 1], &[2, 3]),
            Buf::U8(vec![1, 2, 3, 1, 2, 3])
        );
    }
}
