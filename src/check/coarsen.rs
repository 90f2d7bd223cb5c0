//! Typing rule of `x.coarsen(factors, reduce=, trim=)`: `skimage.measure.block_reduce`'s
//! shapes and NumPy's dtypes for each reduction, and output chunks that map onto whole
//! input chunks where that costs little.

use crate::diag::{codes, Diagnostic, Span};
use crate::dtype::{DType, Kind};
use crate::geom::{fmt_shape, Shape};
use crate::ir::{ArrayType, CoarsenMethod};

/// The factors per axis from the ones given (one for every axis, or one per axis); each
/// at least 1.
pub fn coarsen_factors(given: &[i64], ndim: usize, span: Span) -> Result<Vec<u64>, Diagnostic> {
    let per_axis: Vec<i64> = match given.len() {
        1 if ndim > 0 => vec![given[0]; ndim],
        n if n == ndim => given.to_vec(),
        n => {
            return Err(Diagnostic::error(
                codes::COARSEN_FACTOR_COUNT,
                format!(
                    "coarsen has {n} factor{} but the array has {ndim} ax{}",
                    if n == 1 { "" } else { "s" },
                    if ndim == 1 { "is" } else { "es" }
                ),
            )
            .label(span, "give one factor, or one per axis")
            .help("a factor of 1 leaves an axis untouched"));
        }
    };
    if let Some((a, f)) = per_axis.iter().enumerate().find(|(_, f)| **f < 1) {
        return Err(Diagnostic::error(
            codes::COARSEN_FACTOR_RANGE,
            format!("coarsen factor {f} (axis {a}) is not positive"),
        )
        .label(span, "every factor must be at least 1"));
    }
    Ok(per_axis.iter().map(|f| *f as u64).collect())
}

/// The dtype of `method` over `d`, as NumPy's `sum`, `mean`, `median` give it.
pub fn coarsen_dtype(method: CoarsenMethod, d: DType, span: Span) -> Result<DType, Diagnostic> {
    let refuse = |what: &str| {
        Diagnostic::error(
            codes::COARSEN_DTYPE,
            format!(
                "coarsen with reduce=\"{}\" of a {d} array is not supported",
                method.name()
            ),
        )
        .label(span, what.to_string())
    };
    let complex = d.kind() == Kind::Complex;
    Ok(match method {
        CoarsenMethod::Nearest => d,
        CoarsenMethod::Min | CoarsenMethod::Max if !complex => d,
        CoarsenMethod::Mode => match d.kind() {
            Kind::Bool | Kind::Signed | Kind::Unsigned => d,
            _ => {
                return Err(refuse("`mode` is for integer (label) images")
                    .help("use reduce=\"median\" or \"mean\" for floats"))
            }
        },
        CoarsenMethod::Sum if !complex => match d.kind() {
            Kind::Bool | Kind::Signed => DType::I64,
            Kind::Unsigned => DType::U64,
            _ => d,
        },
        CoarsenMethod::Mean | CoarsenMethod::Median if !complex => match d.kind() {
            Kind::Float => d,
            _ => DType::F64,
        },
        _ => {
            return Err(refuse("complex numbers")
                .help("reduce the real and imaginary parts, or use reduce=\"nearest\""))
        }
    })
}

/// Output length of an axis of length `n` coarsened by `f`: partial blocks padded
/// (`ceil`) or dropped (`floor`).
pub fn coarsen_len(n: u64, f: u64, trim: bool) -> u64 {
    if trim {
        n / f
    } else {
        n.div_ceil(f)
    }
}

/// Output chunk along an axis whose input chunk is `c` and factor `f`: `c / f` when `f`
/// divides `c`; otherwise the smallest chunk whose blocks cover whole input chunks
/// (`lcm(c, f) / f`) when it is at most 4 times `ceil(c / f)`, else `ceil(c / f)` (each
/// output chunk then reads parts of at most two input chunks per axis).
pub fn coarsen_chunk(c: u64, f: u64) -> u64 {
    let natural = c.div_ceil(f).max(1);
    let whole = c / gcd(c, f);
    if whole <= natural.saturating_mul(4) {
        whole
    } else {
        natural
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// The type of `x.coarsen(factors, reduce=method, trim=trim)` (factors already checked
/// by `coarsen_factors`); `span` is where the factors were given.
pub fn coarsen_type(
    x: &ArrayType,
    factors: &[u64],
    method: CoarsenMethod,
    trim: bool,
    method_span: Span,
    span: Span,
) -> Result<ArrayType, Diagnostic> {
    let dtype = coarsen_dtype(method, x.dtype, method_span)?;
    if trim {
        if let Some(a) = (0..x.ndim()).find(|a| factors[*a] > x.shape[*a] && x.shape[*a] > 0) {
            return Err(Diagnostic::error(
                codes::COARSEN_FACTOR_RANGE,
                format!(
                    "coarsen factor {} is longer than axis {a} (length {}): trim=true leaves nothing of it",
                    factors[a], x.shape[a]
                ),
            )
            .label(span, format!("the array's shape is {}", fmt_shape(&x.shape)))
            .help("use a smaller factor, or trim=false to pad the partial block"));
        }
    }
    let shape: Shape = x
        .shape
        .iter()
        .zip(factors)
        .map(|(n, f)| coarsen_len(*n, *f, trim))
        .collect();
    let chunks: Shape = x
        .chunks
        .iter()
        .zip(factors)
        .zip(&shape)
        .map(|((c, f), n)| coarsen_chunk(*c, *f).min(*n).max(1))
        .collect();
    Ok(ArrayType {
        dtype,
        shape,
        chunks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_whole_input_chunks_when_cheap() {
        assert_eq!(coarsen_chunk(64, 2), 32);
        assert_eq!(coarsen_chunk(64, 1), 64);
        assert_eq!(coarsen_chunk(100, 3), 100); // 3 input chunks per output chunk
        assert_eq!(coarsen_chunk(64, 128), 1); // 2 input chunks per output element
        assert_eq!(coarsen_chunk(100, 128), 1); // ceil: 25 would read 32 chunks
        assert_eq!(coarsen_chunk(6, 4), 3); // lcm 12 = 2 input chunks
        assert_eq!(coarsen_chunk(97, 2), 97); // 2 input chunks per output chunk
    }

    #[test]
    fn dtypes_follow_numpy() {
        let s = Span::default();
        use CoarsenMethod::*;
        assert_eq!(coarsen_dtype(Sum, DType::U8, s).unwrap(), DType::U64);
        assert_eq!(coarsen_dtype(Sum, DType::Bool, s).unwrap(), DType::I64);
        assert_eq!(coarsen_dtype(Sum, DType::F32, s).unwrap(), DType::F32);
        assert_eq!(coarsen_dtype(Mean, DType::U16, s).unwrap(), DType::F64);
        assert_eq!(coarsen_dtype(Mean, DType::F32, s).unwrap(), DType::F32);
        assert_eq!(coarsen_dtype(Median, DType::Bool, s).unwrap(), DType::F64);
        assert_eq!(coarsen_dtype(Max, DType::Bool, s).unwrap(), DType::Bool);
        assert!(coarsen_dtype(Mode, DType::F32, s).is_err());
        assert!(coarsen_dtype(Mean, DType::C64, s).is_err());
        assert_eq!(coarsen_dtype(Nearest, DType::C64, s).unwrap(), DType::C64);
    }
}
