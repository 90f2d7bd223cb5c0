//! Typing rules of the ops that change an array's shape: reductions, transpose, reshape,
//! rechunk, concatenation and Fourier transforms (NumPy 2's dtypes and shapes).

use super::default_chunks;
use crate::diag::{codes, Diagnostic, Span};
use crate::dtype::{DType, Kind};
use crate::geom::{fmt_shape, Shape};
use crate::ir::{ArrayType, FftKind, ReduceOp};

/// Normalise one axis (negative counts from the end).
pub fn normalize_axis(axis: i64, ndim: usize, span: Span) -> Result<usize, Diagnostic> {
    let n = ndim as i64;
    if axis < -n || axis >= n {
        let valid = if ndim == 0 {
            "a 0-d array has no axes".to_string()
        } else {
            format!("valid axes are {} ..= {}", -n, n - 1)
        };
        return Err(Diagnostic::error(
            codes::OUT_OF_BOUNDS,
            format!("axis {axis} is out of range for a {ndim}-d array"),
        )
        .label(span, valid));
    }
    Ok(if axis < 0 { axis + n } else { axis } as usize)
}

/// Normalise `axis=` of a reduction: `None` is every axis; sorted, distinct.
pub fn normalize_axes(
    axes: Option<&[i64]>,
    ndim: usize,
    span: Span,
) -> Result<Vec<usize>, Diagnostic> {
    let Some(axes) = axes else {
        return Ok((0..ndim).collect());
    };
    let mut out = Vec::with_capacity(axes.len());
    for a in axes {
        let k = normalize_axis(*a, ndim, span)?;
        if out.contains(&k) {
            return Err(Diagnostic::error(
                codes::BAD_VALUE,
                format!("axis {k} is repeated in `axis=`"),
            )
            .label(span, "each axis may appear once"));
        }
        out.push(k);
    }
    out.sort_unstable();
    Ok(out)
}

/// The dtype NumPy 2 (64-bit Linux) gives a reduction of `d`.
pub fn reduce_dtype(op: ReduceOp, d: DType, span: Span) -> Result<DType, Diagnostic> {
    let refuse = |what: &str| {
        Diagnostic::error(
            codes::UNSUPPORTED_DTYPE,
            format!("`{}` of a {d} array is not supported", op.name()),
        )
        .label(span, what.to_string())
    };
    Ok(match op {
        ReduceOp::Sum => match d.kind() {
            Kind::Bool | Kind::Signed => DType::I64,
            Kind::Unsigned => DType::U64,
            _ => d,
        },
        ReduceOp::Mean => match d.kind() {
            Kind::Bool | Kind::Signed | Kind::Unsigned => DType::F64,
            _ => d,
        },
        ReduceOp::Min | ReduceOp::Max | ReduceOp::Argmin | ReduceOp::Argmax => {
            if d.is_complex() {
                return Err(refuse("complex numbers have no order; reduce `abs(x)`"));
            }
            if matches!(op, ReduceOp::Argmin | ReduceOp::Argmax) {
                DType::I64
            } else {
                d
            }
        }
        ReduceOp::Std | ReduceOp::Var => match d.kind() {
            Kind::Bool | Kind::Signed | Kind::Unsigned => DType::F64,
            Kind::Complex => return Err(refuse("take `abs(x)` or `real(x)` first")),
            _ => d,
        },
    })
}

/// The type of `op(x, axis=axes, keepdims=keepdims)`.
pub fn reduce_type(
    op: ReduceOp,
    x: &ArrayType,
    axes: &[usize],
    keepdims: bool,
    span: Span,
) -> Result<ArrayType, Diagnostic> {
    let dtype = reduce_dtype(op, x.dtype, span)?;
    let empty = axes.iter().any(|a| x.shape[*a] == 0) || (axes.is_empty() && x.size() == 0);
    if empty && !matches!(op, ReduceOp::Sum | ReduceOp::Mean) {
        return Err(Diagnostic::error(
            codes::SHAPE_MISMATCH,
            format!(
                "`{}` of a zero-size array {} has no identity",
                op.name(),
                fmt_shape(&x.shape)
            ),
        )
        .label(span, "nothing to reduce"));
    }
    let mut shape = Vec::new();
    let mut chunks = Vec::new();
    for a in 0..x.ndim() {
        if axes.contains(&a) {
            if keepdims {
                shape.push(1);
                chunks.push(1);
            }
        } else {
            shape.push(x.shape[a]);
            chunks.push(x.chunks[a]);
        }
    }
    Ok(ArrayType {
        dtype,
        shape,
        chunks,
    })
}

/// Validate a permutation of `0..ndim` (negative axes count from the end).
pub fn transpose_perm(perm: &[i64], ndim: usize, span: Span) -> Result<Vec<usize>, Diagnostic> {
    if perm.len() != ndim {
        return Err(Diagnostic::error(
            codes::BAD_VALUE,
            format!(
                "transpose needs {ndim} axes for a {ndim}-d array, got {}",
                perm.len()
            ),
        )
        .label(span, "give every axis once, e.g. `x.transpose(2, 0, 1)`"));
    }
    let mut out = Vec::with_capacity(ndim);
    for a in perm {
        let k = normalize_axis(*a, ndim, span)?;
        if out.contains(&k) {
            return Err(Diagnostic::error(
                codes::BAD_VALUE,
                format!("axis {k} is repeated in the transpose"),
            )
            .label(span, "each axis may appear once"));
        }
        out.push(k);
    }
    Ok(out)
}

pub fn transpose_type(x: &ArrayType, perm: &[usize]) -> ArrayType {
    ArrayType {
        dtype: x.dtype,
        shape: perm.iter().map(|a| x.shape[*a]).collect(),
        chunks: perm.iter().map(|a| x.chunks[*a]).collect(),
    }
}

/// The new shape of `reshape` (one `-1` is inferred) and chunks that keep each output
/// chunk one box of the input where the input's chunking allows it.
pub fn reshape_type(x: &ArrayType, shape: &[i64], span: Span) -> Result<ArrayType, Diagnostic> {
    let size = x.size();
    let unknown = shape.iter().filter(|d| **d == -1).count();
    if unknown > 1 || shape.iter().any(|d| *d < -1) {
        return Err(Diagnostic::error(
            codes::BAD_VALUE,
            "a reshape may leave one dimension as -1; others must be zero or more",
        )
        .label(span, "invalid shape"));
    }
    let given: Shape = shape
        .iter()
        .filter(|d| **d >= 0)
        .map(|d| *d as u64)
        .collect();
    let Some(known) = crate::geom::checked_size(&given) else {
        return Err(super::sizes::too_large(&given, x.dtype, span));
    };
    let to: Shape = if unknown == 1 {
        if known == 0 || !size.is_multiple_of(known) {
            return Err(Diagnostic::error(
                codes::SHAPE_MISMATCH,
                format!(
                    "cannot reshape {} elements {} into a shape with a multiple of {known}",
                    size,
                    fmt_shape(&x.shape)
                ),
            )
            .label(span, "sizes differ"));
        }
        shape
            .iter()
            .map(|d| if *d == -1 { size / known } else { *d as u64 })
            .collect()
    } else {
        shape.iter().map(|d| *d as u64).collect()
    };
    let Some(to_size) = crate::geom::checked_size(&to) else {
        return Err(super::sizes::too_large(&to, x.dtype, span));
    };
    if to_size != size {
        return Err(Diagnostic::error(
            codes::SHAPE_MISMATCH,
            format!(
                "cannot reshape {} ({size} elements) into {} ({to_size} elements)",
                fmt_shape(&x.shape),
                fmt_shape(&to),
            ),
        )
        .label(span, "the number of elements must stay the same"));
    }
    let mut chunks = vec![1u64; to.len()];
    for (ins, outs) in crate::geom::reshape_groups(&x.shape, &to) {
        if outs.is_empty() {
            continue;
        }
        if ins.len() == 1 && outs.len() == 1 {
            chunks[outs.start] = x.chunks[ins.start];
            continue;
        }
        // Rows of the group's flat range that one input chunk covers.
        let full_inner = ins.clone().skip(1).all(|a| x.chunks[a] == x.shape[a]);
        let inner_in: u64 = ins.clone().skip(1).map(|a| x.shape[a]).product();
        let len = if ins.is_empty() {
            1
        } else if full_inner {
            x.chunks[ins.start].saturating_mul(inner_in)
        } else {
            crate::geom::saturating_product(&x.chunks[ins.clone()])
        };
        // Fill output axes from the innermost while whole axes fit in `len`.
        let mut left = len.max(1);
        for a in outs.clone().rev() {
            if left >= to[a] && left.is_multiple_of(to[a]) {
                chunks[a] = to[a];
                left /= to[a];
            } else {
                chunks[a] = left.clamp(1, to[a]);
                left = 1;
            }
        }
    }
    Ok(ArrayType {
        dtype: x.dtype,
        shape: to,
        chunks,
    })
}

/// The type of concatenating `inputs` (already one dtype) along `axis`.
pub fn concat_type(
    inputs: &[&ArrayType],
    axis: usize,
    spans: &[Span],
) -> Result<ArrayType, Diagnostic> {
    let first = inputs[0];
    let mut len: u64 = 0;
    for (t, sp) in inputs.iter().zip(spans) {
        let mismatch = t.ndim() != first.ndim()
            || (0..first.ndim()).any(|a| a != axis && t.shape[a] != first.shape[a]);
        if mismatch {
            return Err(Diagnostic::error(
                codes::SHAPE_MISMATCH,
                format!(
                    "cannot join {} and {} along axis {axis}",
                    fmt_shape(&first.shape),
                    fmt_shape(&t.shape)
                ),
            )
            .label(*sp, "every other axis must have the same length")
            .label(
                spans[0],
                format!("the first array is {}", fmt_shape(&first.shape)),
            ));
        }
        len = match len.checked_add(t.shape[axis]) {
            Some(l) if l <= crate::geom::MAX_ELEMENTS => l,
            _ => return Err(super::sizes::overflow("the joined axis", *sp)),
        };
    }
    let mut shape = first.shape.clone();
    shape[axis] = len;
    let mut chunks = first.chunks.clone();
    chunks[axis] = chunks[axis].min(len.max(1));
    Ok(ArrayType {
        dtype: first.dtype,
        shape,
        chunks,
    })
}

/// The dtype a transform computes in: f32 (and c64) in single precision, as NumPy 2's
/// pocketfft; everything else in double.
pub fn fft_dtype(kind: FftKind, d: DType, span: Span) -> Result<DType, Diagnostic> {
    if kind == FftKind::Real && d.is_complex() {
        return Err(Diagnostic::error(
            codes::UNSUPPORTED_DTYPE,
            format!("`rfft` takes real input, not {d}"),
        )
        .label(span, "use `fft` for complex input"));
    }
    Ok(match d {
        DType::F32 | DType::C64 => DType::C64,
        _ => DType::C128,
    })
}

/// Chunks for a transform along `axis`: the whole axis in one chunk, other axes shrunk
/// (innermost last) so a chunk stays near the input's chunk size.
pub fn whole_axis_chunks(x: &ArrayType, axis: usize, itemsize: usize) -> Shape {
    let mut chunks = x.chunks.clone();
    if chunks[axis] >= x.shape[axis] {
        return chunks;
    }
    chunks[axis] = x.shape[axis].max(1);
    let bytes = |c: &[u64]| crate::geom::saturating_product(c).saturating_mul(itemsize as u64);
    let target = bytes(&x.chunks).max(1 << 20);
    let limit = bytes(&default_chunks(&x.shape, itemsize));
    let target = target.min(limit.max(1 << 20));
    // Halve the largest other axis until the chunk fits.
    while bytes(&chunks) > target {
        let Some((a, _)) = chunks
            .iter()
            .enumerate()
            .filter(|(a, c)| *a != axis && **c > 1)
            .max_by_key(|(a, c)| (**c, std::cmp::Reverse(*a)))
        else {
            break;
        };
        chunks[a] = chunks[a].div_ceil(2);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[u64], chunks: &[u64]) -> ArrayType {
        ArrayType {
            dtype: DType::U16,
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
        }
    }

    use crate::geom::reshape_groups;

    #[test]
    fn groups_pair_equal_products() {
        assert_eq!(
            reshape_groups(&[4, 6, 5], &[24, 5]),
            vec![(0..2, 0..1), (2..3, 1..2)]
        );
        assert_eq!(reshape_groups(&[2, 1, 3], &[6]), vec![(0..3, 0..1)]);
        assert_eq!(
            reshape_groups(&[1, 6], &[6]),
            vec![(0..1, 0..0), (1..2, 0..1)]
        );
    }

    #[test]
    fn reshape_keeps_chunks_aligned() {
        let r = reshape_type(
            &t(&[10, 8, 6], &[2, 8, 6]),
            &[80, 6],
            Span::new(crate::diag::SourceId(0), 0, 0),
        )
        .unwrap();
        assert_eq!(r.shape, vec![80, 6]);
        assert_eq!(r.chunks, vec![16, 6]);
        let r = reshape_type(
            &t(&[100], &[20]),
            &[10, 10],
            Span::new(crate::diag::SourceId(0), 0, 0),
        )
        .unwrap();
        assert_eq!(r.chunks, vec![2, 10]);
        assert!(reshape_type(
            &t(&[10], &[5]),
            &[3, 3],
            Span::new(crate::diag::SourceId(0), 0, 0)
        )
        .is_err());
        let r = reshape_type(
            &t(&[4, 6], &[4, 6]),
            &[-1],
            Span::new(crate::diag::SourceId(0), 0, 0),
        )
        .unwrap();
        assert_eq!(r.shape, vec![24]);
    }

    #[test]
    fn numpy_reduction_dtypes() {
        let s = Span::new(crate::diag::SourceId(0), 0, 0);
        assert_eq!(
            reduce_dtype(ReduceOp::Sum, DType::U16, s).unwrap(),
            DType::U64
        );
        assert_eq!(
            reduce_dtype(ReduceOp::Sum, DType::Bool, s).unwrap(),
            DType::I64
        );
        assert_eq!(
            reduce_dtype(ReduceOp::Mean, DType::U16, s).unwrap(),
            DType::F64
        );
        assert_eq!(
            reduce_dtype(ReduceOp::Mean, DType::F32, s).unwrap(),
            DType::F32
        );
        assert_eq!(
            reduce_dtype(ReduceOp::Max, DType::U16, s).unwrap(),
            DType::U16
        );
        assert_eq!(
            reduce_dtype(ReduceOp::Argmax, DType::F32, s).unwrap(),
            DType::I64
        );
        assert!(reduce_dtype(ReduceOp::Max, DType::C64, s).is_err());
    }
}
