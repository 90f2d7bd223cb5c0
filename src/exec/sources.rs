//! Sources evaluated for any region: constants, `arange` and deterministic `random`
//! (values never depend on chunking), and image stacks decoded plane by plane.

use crate::data::Buf;
use crate::dtype::DType;
use crate::geom::{iter_box, strides, Region};
use crate::io::images::{ImageError, ImageStack};

/// A buffer of `len` copies of a one-element buffer.
pub fn filled(value: &Buf, len: usize) -> Buf {
    crate::with_buf!(value, v => {
        let x = v[0];
        let out = vec![x; len];
        rebuild(value, out)
    })
}

/// Wrap a Vec of the same element type as `like` into a Buf (helper for macros).
fn rebuild<T: 'static>(like: &Buf, v: Vec<T>) -> Buf {
    use std::any::Any;
    let b: Box<dyn Any> = Box::new(v);
    macro_rules! arms {
        ($($var:ident)*) => {
            match like {
                $(Buf::$var(_) => Buf::$var(*b.downcast().expect("same element type")),)*
            }
        };
    }
    arms!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64 C64 C128)
}

/// Flat C-order index in the full array of every element of `region`, in order.
fn flat_indices<'a>(shape: &'a [u64], region: &'a Region) -> impl Iterator<Item = u64> + 'a {
    let st = strides(shape);
    iter_box(region).map(move |idx| idx.iter().zip(&st).map(|(i, s)| i * *s as u64).sum::<u64>())
}

/// `start + i * step` for the elements of a 1-D region, in `dtype`.
pub fn arange(start: f64, step: f64, dtype: DType, region: &Region) -> Buf {
    let (a, b) = (region.start[0], region.end[0]);
    let n = (b - a) as usize;
    let integral = start.fract() == 0.0 && step.fract() == 0.0;
    if integral && (dtype.is_integer() || dtype == DType::Bool) {
        let (s, d) = (start as i64, step as i64);
        let v: Vec<i64> = (a..b)
            .map(|i| s.wrapping_add((i as i64).wrapping_mul(d)))
            .collect();
        let mut out = Buf::zeros(dtype, n);
        super::elementwise::cast(&Buf::I64(v), &mut out, n);
        return out;
    }
    let v: Vec<f64> = (a..b).map(|i| start + i as f64 * step).collect();
    let mut out = Buf::zeros(dtype, n);
    super::elementwise::cast(&Buf::F64(v), &mut out, n);
    out
}

/// The elements of `region` of an image stack: every plane its leading axes touch,
/// decoded whole and cut to the region's box within the plane, in C order.
pub fn images(stack: &ImageStack, region: &Region) -> Result<Buf, ImageError> {
    let k = stack.lead.len();
    let leading = Region::new(region.start[..k].to_vec(), region.end[..k].to_vec());
    let within = Region::new(region.start[k..].to_vec(), region.end[k..].to_vec());
    let whole = within.start.iter().all(|s| *s == 0) && within.end == stack.plane;
    let st = strides(&stack.lead);
    let mut out: Option<Buf> = None;
    for idx in iter_box(&leading) {
        let p: u64 = idx.iter().zip(&st).map(|(i, s)| i * *s as u64).sum();
        let plane = crate::io::images::read_plane(stack, p)?;
        let part = if whole {
            plane
        } else {
            super::layout::extract(&plane, &stack.plane, &within)
        };
        if leading.size() == 1 {
            return Ok(part);
        }
        out.get_or_insert_with(|| Buf::with_capacity(stack.dtype, region.size() as usize))
            .extend_from(&part, 0, part.len());
    }
    Ok(out.unwrap_or_else(|| Buf::zeros(stack.dtype, 0)))
}

/// SplitMix64: a bijective mix, so (seed, index) pairs give independent-looking values.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform values in [0, 1) for floats, over the whole range for integers, as a pure
/// function of (seed, flat index in the full array).
pub fn random(seed: u64, dtype: DType, shape: &[u64], region: &Region) -> Buf {
    let key = mix(seed ^ 0x5445_5353_4552_4131);
    let h = |i: u64| mix(key ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let idx = flat_indices(shape, region);
    match dtype {
        DType::F32 => Buf::F32(
            idx.map(|i| (h(i) >> 40) as f32 * (1.0 / (1u64 << 24) as f32))
                .collect(),
        ),
        DType::F64 => Buf::F64(
            idx.map(|i| (h(i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64))
                .collect(),
        ),
        DType::Bool => Buf::Bool(idx.map(|i| h(i) & 1 == 1).collect()),
        DType::I8 => Buf::I8(idx.map(|i| h(i) as i8).collect()),
        DType::I16 => Buf::I16(idx.map(|i| h(i) as i16).collect()),
        DType::I32 => Buf::I32(idx.map(|i| h(i) as i32).collect()),
        DType::I64 => Buf::I64(idx.map(|i| h(i) as i64).collect()),
        DType::U8 => Buf::U8(idx.map(|i| h(i) as u8).collect()),
        DType::U16 => Buf::U16(idx.map(|i| h(i) as u16).collect()),
        DType::U32 => Buf::U32(idx.map(|i| h(i) as u32).collect()),
        DType::U64 => Buf::U64(idx.map(h).collect()),
        DType::C64 | DType::C128 => Buf::zeros(dtype, region.size() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_independent_of_the_region_split() {
        let shape = [7, 9];
        let whole = random(3, DType::F32, &shape, &Region::full(&shape));
        let part = random(3, DType::F32, &shape, &Region::new(vec![2, 4], vec![3, 6]));
        let Buf::F32(w) = whole else { unreachable!() };
        let Buf::F32(p) = part else { unreachable!() };
        assert_eq!(p, vec![w[2 * 9 + 4], w[2 * 9 + 5]]);
        assert!(w.iter().all(|x| (0.0..1.0).contains(x)));
    }

    #[test]
    fn arange_matches_numpy() {
        let b = arange(2.0, 3.0, DType::I64, &Region::new(vec![1], vec![4]));
        assert_eq!(b, Buf::I64(vec![5, 8, 11]));
    }
}
