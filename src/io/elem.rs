//! Element plumbing between `Buf` and the raw native-endian bytes zarrs decodes to and
//! encodes from: byte views without copies, strided box copies, fill values.

use num_complex::{Complex32, Complex64};

use crate::data::Buf;
use crate::dtype::DType;

/// Element types with no padding bytes and no invalid bit patterns, so a `&mut [T]` may be
/// written through a byte view.
///
/// # Safety
/// Implement only for such types (`bool` is deliberately excluded: only 0 and 1 are valid).
pub(crate) unsafe trait Plain: Copy + 'static {}

unsafe impl Plain for i8 {}
unsafe impl Plain for i16 {}
unsafe impl Plain for i32 {}
unsafe impl Plain for i64 {}
unsafe impl Plain for u8 {}
unsafe impl Plain for u16 {}
unsafe impl Plain for u32 {}
unsafe impl Plain for u64 {}
unsafe impl Plain for f32 {}
unsafe impl Plain for f64 {}
// num_complex::Complex is #[repr(C)] { re, im } of one float type: no padding.
unsafe impl Plain for Complex32 {}
unsafe impl Plain for Complex64 {}

pub(crate) fn plain_bytes_mut<T: Plain>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: T is Plain (no padding, every bit pattern valid), the length covers exactly
    // the same allocation, and u8 has alignment 1.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// A box inside a dense C-order array: where it sits and how big the array is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Place<'a> {
    pub array_shape: &'a [u64],
    pub start: &'a [u64],
}

/// Copy a box of `shape` elements from `src` (placed at `from`) into `dst` (placed at `to`).
/// Trailing axes that span both arrays whole are merged, so a whole-chunk copy is a single
/// `copy_from_slice`. Callers check bounds; a violation here is a bug and panics.
pub(crate) fn copy_box<T: Copy>(src: &[T], from: Place, dst: &mut [T], to: Place, shape: &[u64]) {
    let n = shape.len();
    if shape.contains(&0) {
        return;
    }
    if n == 0 {
        dst[0] = src[0];
        return;
    }
    let src_strides = crate::geom::strides(from.array_shape);
    let dst_strides = crate::geom::strides(to.array_shape);
    // Axes k.. form one contiguous run: axis k may be partial, later axes are whole in both.
    let mut k = n - 1;
    let mut run = shape[k] as usize;
    while k > 0 && shape[k] == from.array_shape[k] && shape[k] == to.array_shape[k] {
        k -= 1;
        run *= shape[k] as usize;
    }
    let base = |strides: &[usize], start: &[u64]| -> usize {
        (0..=k).map(|d| start[d] as usize * strides[d]).sum()
    };
    let mut s_off = base(&src_strides, from.start);
    let mut d_off = base(&dst_strides, to.start);
    let mut idx = vec![0u64; k];
    loop {
        dst[d_off..d_off + run].copy_from_slice(&src[s_off..s_off + run]);
        // Odometer over the outer axes 0..k, moving both offsets incrementally.
        let mut d = k;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            s_off += src_strides[d];
            d_off += dst_strides[d];
            if idx[d] < shape[d] {
                break;
            }
            s_off -= shape[d] as usize * src_strides[d];
            d_off -= shape[d] as usize * dst_strides[d];
            idx[d] = 0;
        }
    }
}

/// Shapes and starts extended by one axis of `size` bytes, so that a byte-level copy of
/// `size`-byte elements is a plain `copy_box::<u8>`.
fn with_bytes_axis(v: &[u64], last: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(v.len() + 1);
    out.extend_from_slice(v);
    out.push(last);
    out
}

/// Copy a box out of decoded native-endian chunk bytes into a typed buffer.
/// Fails (instead of creating invalid bools) when a bool chunk holds bytes other than 0/1.
pub(crate) fn copy_bytes_into_buf(
    src: &[u8],
    from: Place,
    out: &mut Buf,
    to: Place,
    shape: &[u64],
) -> Result<(), String> {
    let size = out.dtype().size() as u64;
    let src_shape = with_bytes_axis(from.array_shape, size);
    let src_start = with_bytes_axis(from.start, 0);
    let dst_shape = with_bytes_axis(to.array_shape, size);
    let dst_start = with_bytes_axis(to.start, 0);
    let box_shape = with_bytes_axis(shape, size);
    let from = Place {
        array_shape: &src_shape,
        start: &src_start,
    };
    let to = Place {
        array_shape: &dst_shape,
        start: &dst_start,
    };
    let dst: &mut [u8] = match out {
        Buf::Bool(v) => {
            if let Some(bad) = src.iter().find(|b| **b > 1) {
                return Err(format!("invalid bool byte {bad} in decoded chunk"));
            }
            // SAFETY: every byte that will be copied in is 0 or 1 (checked above), so the
            // bools stay valid; the view covers exactly the vector's elements.
            unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len()) }
        }
        Buf::I8(v) => plain_bytes_mut(v),
        Buf::I16(v) => plain_bytes_mut(v),
        Buf::I32(v) => plain_bytes_mut(v),
        Buf::I64(v) => plain_bytes_mut(v),
        Buf::U8(v) => v,
        Buf::U16(v) => plain_bytes_mut(v),
        Buf::U32(v) => plain_bytes_mut(v),
        Buf::U64(v) => plain_bytes_mut(v),
        Buf::F32(v) => plain_bytes_mut(v),
        Buf::F64(v) => plain_bytes_mut(v),
        Buf::C64(v) => plain_bytes_mut(v),
        Buf::C128(v) => plain_bytes_mut(v),
    };
    copy_box(src, from, dst, to, &box_shape);
    Ok(())
}

/// A typed vector holding a copy of native-endian bytes, written once (no zero fill).
fn vec_from_ne_bytes<T: Plain>(src: &[u8]) -> Vec<T> {
    let size = std::mem::size_of::<T>();
    assert_eq!(src.len() % size, 0, "bytes are not whole elements");
    let n = src.len() / size;
    let mut v: Vec<T> = Vec::with_capacity(n);
    // SAFETY: the vector has room for n elements, i.e. src.len() bytes, and does not
    // overlap src; after the copy all n elements are initialised, and since T is Plain
    // every bit pattern is a valid T.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), v.as_mut_ptr().cast::<u8>(), src.len());
        v.set_len(n);
    }
    v
}

/// A whole buffer of `dtype` from decoded native-endian bytes (one copy, nothing zeroed).
/// Fails (instead of creating invalid bools) on bool bytes other than 0/1.
pub(crate) fn buf_from_ne_bytes(dtype: DType, src: &[u8]) -> Result<Buf, String> {
    Ok(match dtype {
        DType::Bool => {
            if let Some(bad) = src.iter().find(|b| **b > 1) {
                return Err(format!("invalid bool byte {bad} in decoded chunk"));
            }
            Buf::Bool(src.iter().map(|b| *b == 1).collect())
        }
        DType::I8 => Buf::I8(vec_from_ne_bytes(src)),
        DType::I16 => Buf::I16(vec_from_ne_bytes(src)),
        DType::I32 => Buf::I32(vec_from_ne_bytes(src)),
        DType::I64 => Buf::I64(vec_from_ne_bytes(src)),
        DType::U8 => Buf::U8(src.to_vec()),
        DType::U16 => Buf::U16(vec_from_ne_bytes(src)),
        DType::U32 => Buf::U32(vec_from_ne_bytes(src)),
        DType::U64 => Buf::U64(vec_from_ne_bytes(src)),
        DType::F32 => Buf::F32(vec_from_ne_bytes(src)),
        DType::F64 => Buf::F64(vec_from_ne_bytes(src)),
        DType::C64 => Buf::C64(vec_from_ne_bytes(src)),
        DType::C128 => Buf::C128(vec_from_ne_bytes(src)),
    })
}

/// Run `$body` on the inner vectors of two buffers of the same dtype; `$other` otherwise.
macro_rules! zip_bufs {
    ($a:expr, $b:expr, $x:ident, $y:ident => $body:expr, else $other:expr) => {
        match ($a, $b) {
            (Buf::Bool($x), Buf::Bool($y)) => $body,
            (Buf::I8($x), Buf::I8($y)) => $body,
            (Buf::I16($x), Buf::I16($y)) => $body,
            (Buf::I32($x), Buf::I32($y)) => $body,
            (Buf::I64($x), Buf::I64($y)) => $body,
            (Buf::U8($x), Buf::U8($y)) => $body,
            (Buf::U16($x), Buf::U16($y)) => $body,
            (Buf::U32($x), Buf::U32($y)) => $body,
            (Buf::U64($x), Buf::U64($y)) => $body,
            (Buf::F32($x), Buf::F32($y)) => $body,
            (Buf::F64($x), Buf::F64($y)) => $body,
            (Buf::C64($x), Buf::C64($y)) => $body,
            (Buf::C128($x), Buf::C128($y)) => $body,
            _ => $other,
        }
    };
}

/// `data` (the clipped chunk region, shape `data_shape`) placed at the origin of a full
/// chunk of `chunk_shape`, the rest set to the fill value. `None` when dtypes differ.
pub(crate) fn pad_to_chunk(
    data: &Buf,
    data_shape: &[u64],
    fill: &Buf,
    chunk_shape: &[u64],
) -> Option<Buf> {
    fn pad<T: Copy>(d: &[T], ds: &[u64], f: T, cs: &[u64]) -> Vec<T> {
        let mut out = vec![f; cs.iter().product::<u64>() as usize];
        let zero = vec![0; cs.len()];
        let from = Place {
            array_shape: ds,
            start: &zero,
        };
        let to = Place {
            array_shape: cs,
            start: &zero,
        };
        copy_box(d, from, &mut out, to, ds);
        out
    }
    zip_bufs!(data, fill, d, f => {
        let first = *f.first()?;
        Some(wrap(pad(d, data_shape, first, chunk_shape)))
    }, else None)
}

/// Put a typed vector back into its `Buf` variant.
pub(crate) trait IntoBuf {
    fn into_buf(self) -> Buf;
}

macro_rules! into_buf_impl {
    ($t:ty, $v:ident) => {
        impl IntoBuf for Vec<$t> {
            fn into_buf(self) -> Buf {
                Buf::$v(self)
            }
        }
    };
}
into_buf_impl!(bool, Bool);
into_buf_impl!(i8, I8);
into_buf_impl!(i16, I16);
into_buf_impl!(i32, I32);
into_buf_impl!(i64, I64);
into_buf_impl!(u8, U8);
into_buf_impl!(u16, U16);
into_buf_impl!(u32, U32);
into_buf_impl!(u64, U64);
into_buf_impl!(f32, F32);
into_buf_impl!(f64, F64);
into_buf_impl!(Complex32, C64);
into_buf_impl!(Complex64, C128);

fn wrap<V: IntoBuf>(v: V) -> Buf {
    v.into_buf()
}

/// A one-element buffer from the native-endian bytes of a fill value.
pub(crate) fn fill_from_ne_bytes(dtype: DType, b: &[u8]) -> Option<Buf> {
    if b.len() != dtype.size() {
        return None;
    }
    let mut out = Buf::zeros(dtype, 1);
    if dtype == DType::Bool {
        return Some(Buf::Bool(vec![b[0] != 0]));
    }
    let shape = [1u64];
    let zero = [0u64];
    let place = Place {
        array_shape: &shape,
        start: &zero,
    };
    copy_bytes_into_buf(b, place, &mut out, place, &shape).ok()?;
    Some(out)
}

/// A float as Zarr v3 JSON: a number, or "NaN" / "Infinity" / "-Infinity".
fn float_json(x: f64) -> serde_json::Value {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        serde_json::json!(x)
    }
}

/// The Zarr v3 `fill_value` of a one-element buffer.
pub(crate) fn fill_json(fill: &Buf) -> serde_json::Value {
    use serde_json::json;
    match fill {
        Buf::Bool(v) => json!(v[0]),
        Buf::I8(v) => json!(v[0]),
        Buf::I16(v) => json!(v[0]),
        Buf::I32(v) => json!(v[0]),
        Buf::I64(v) => json!(v[0]),
        Buf::U8(v) => json!(v[0]),
        Buf::U16(v) => json!(v[0]),
        Buf::U32(v) => json!(v[0]),
        Buf::U64(v) => json!(v[0]),
        // f32 -> f64 widening is exact, and zarrs narrows it back exactly.
        Buf::F32(v) => float_json(v[0] as f64),
        Buf::F64(v) => float_json(v[0]),
        Buf::C64(v) => json!([float_json(v[0].re as f64), float_json(v[0].im as f64)]),
        Buf::C128(v) => json!([float_json(v[0].re), float_json(v[0].im)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place<'a>(array_shape: &'a [u64], start: &'a [u64]) -> Place<'a> {
        Place { array_shape, start }
    }

    /// Reference: element-by-element copy.
    fn naive(
        src: &[u32],
        ss: &[u64],
        s0: &[u64],
        dst: &mut [u32],
        ds: &[u64],
        d0: &[u64],
        shape: &[u64],
    ) {
        let r = crate::geom::Region::new(vec![0; shape.len()], shape.to_vec());
        let sst = crate::geom::strides(ss);
        let dst_st = crate::geom::strides(ds);
        for i in crate::geom::iter_box(&r) {
            let so: usize = (0..i.len()).map(|a| (s0[a] + i[a]) as usize * sst[a]).sum();
            let d: usize = (0..i.len())
                .map(|a| (d0[a] + i[a]) as usize * dst_st[a])
                .sum();
            dst[d] = src[so];
        }
    }

    #[test]
    fn copy_box_matches_naive_copy() {
        // (src shape, src start, dst shape, dst start, box shape)
        type Case<'a> = (&'a [u64], &'a [u64], &'a [u64], &'a [u64], &'a [u64]);
        let cases: &[Case] = &[
            (&[5, 6, 7], &[1, 2, 3], &[4, 6, 9], &[0, 0, 2], &[3, 4, 4]),
            (&[5, 6, 7], &[0, 0, 0], &[5, 6, 7], &[0, 0, 0], &[5, 6, 7]),
            (&[5, 6, 7], &[2, 0, 0], &[3, 6, 7], &[0, 0, 0], &[3, 6, 7]),
            (&[8], &[3], &[10], &[5], &[5]),
            (&[4, 4], &[1, 0], &[2, 4], &[0, 0], &[2, 4]),
            (
                &[3, 4, 5, 2],
                &[1, 1, 0, 0],
                &[2, 3, 5, 2],
                &[0, 0, 0, 0],
                &[2, 3, 5, 2],
            ),
        ];
        for (ss, s0, ds, d0, shape) in cases {
            let n_src = ss.iter().product::<u64>() as usize;
            let n_dst = ds.iter().product::<u64>() as usize;
            let src: Vec<u32> = (0..n_src as u32).collect();
            let mut a = vec![u32::MAX; n_dst];
            let mut b = vec![u32::MAX; n_dst];
            copy_box(&src, place(ss, s0), &mut a, place(ds, d0), shape);
            naive(&src, ss, s0, &mut b, ds, d0, shape);
            assert_eq!(
                a, b,
                "src {ss:?} at {s0:?}, dst {ds:?} at {d0:?}, box {shape:?}"
            );
        }
    }

    #[test]
    fn byte_copy_into_typed_buffers() {
        let src: Vec<u8> = 1000u16
            .to_ne_bytes()
            .iter()
            .chain(&7u16.to_ne_bytes())
            .copied()
            .collect();
        let mut out = Buf::U16(vec![0; 2]);
        copy_bytes_into_buf(&src, place(&[2], &[0]), &mut out, place(&[2], &[0]), &[2]).unwrap();
        assert_eq!(out, Buf::U16(vec![1000, 7]));
        let mut b = Buf::Bool(vec![false; 2]);
        assert!(
            copy_bytes_into_buf(&[1, 2], place(&[2], &[0]), &mut b, place(&[2], &[0]), &[2])
                .is_err()
        );
        copy_bytes_into_buf(&[1, 0], place(&[2], &[0]), &mut b, place(&[2], &[0]), &[2]).unwrap();
        assert_eq!(b, Buf::Bool(vec![true, false]));
    }

    #[test]
    fn padding_and_fill_values() {
        let d = Buf::I16(vec![1, 2, 3, 4]);
        let p = pad_to_chunk(&d, &[2, 2], &Buf::I16(vec![-1]), &[3, 3]).unwrap();
        assert_eq!(p, Buf::I16(vec![1, 2, -1, 3, 4, -1, -1, -1, -1]));
        assert!(pad_to_chunk(&d, &[2, 2], &Buf::U8(vec![0]), &[3, 3]).is_none());
        let f = fill_from_ne_bytes(DType::F32, &f32::NAN.to_ne_bytes()).unwrap();
        assert!(matches!(&f, Buf::F32(v) if v[0].is_nan()));
        assert_eq!(fill_json(&f), serde_json::json!("NaN"));
        assert_eq!(
            fill_json(&Buf::F32(vec![0.1])),
            serde_json::json!(0.10000000149011612)
        );
        assert_eq!(
            fill_json(&Buf::U64(vec![u64::MAX])),
            serde_json::json!(u64::MAX)
        );
        assert_eq!(
            fill_json(&Buf::C64(vec![Complex32::new(1.0, f32::NEG_INFINITY)])),
            serde_json::json!([1.0, "-Infinity"])
        );
    }
}
