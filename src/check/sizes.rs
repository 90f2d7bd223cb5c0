//! Size rules: every array type must have an element count and a byte size that fit the
//! limits in `geom` (2^63 - 1 each), and so must its chunks. Checked on every node the
//! lowering makes, so no later stage can meet a size that wraps.

use crate::diag::{codes, Diagnostic, Span};
use crate::geom::{checked_nbytes, checked_size, fmt_shape, MAX_BYTES, MAX_ELEMENTS};
use crate::ir::ArrayType;

/// The array's size and its chunks' size fit the limits, or an E0304 / E0305 at `span`.
pub fn check(ty: &ArrayType, span: Span) -> Result<(), Diagnostic> {
    let item = ty.dtype.size();
    if checked_nbytes(&ty.shape, item).is_none() {
        return Err(too_large(&ty.shape, ty.dtype, span));
    }
    // Chunks never matter past the array's own extent, but a stored chunk shape can be
    // larger than the array: it is decoded whole, so it must fit too.
    if checked_nbytes(&ty.chunks, item).is_none() {
        return Err(Diagnostic::error(
            codes::CHUNK_TOO_LARGE,
            format!(
                "chunks of {} {} elements are too large",
                fmt_shape(&ty.chunks),
                ty.dtype
            ),
        )
        .label(span, "this array's chunks do not fit in memory arithmetic")
        .note(limits_note())
        .help("give smaller chunks with `chunks=` or `.rechunk(...)`"));
    }
    Ok(())
}

/// The diagnostic for an array of `shape` and `dtype` past the limits.
pub fn too_large(shape: &[u64], dtype: crate::dtype::DType, span: Span) -> Diagnostic {
    let what = match checked_size(shape) {
        None => format!("{} elements", describe_product(shape)),
        Some(n) => format!("{n} elements of {} bytes", dtype.size()),
    };
    Diagnostic::error(
        codes::ARRAY_TOO_LARGE,
        format!(
            "an array of shape {} ({what}) is too large",
            fmt_shape(shape)
        ),
    )
    .label(
        span,
        format!("this makes a {dtype} array of shape {}", fmt_shape(shape)),
    )
    .note(limits_note())
}

/// A shape computation (a sum of axis lengths, a product of dimensions) that overflows.
pub fn overflow(what: &str, span: Span) -> Diagnostic {
    Diagnostic::error(codes::ARRAY_TOO_LARGE, format!("{what} is too large"))
        .label(span, "this shape does not fit")
        .note(limits_note())
}

/// The element count as text even when it does not fit in u64 (as a product).
fn describe_product(shape: &[u64]) -> String {
    let exact = shape
        .iter()
        .try_fold(1u128, |acc, d| acc.checked_mul(*d as u128));
    match exact {
        Some(n) => n.to_string(),
        None => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            parts.join(" x ")
        }
    }
}

fn limits_note() -> String {
    format!("an array may have at most {MAX_ELEMENTS} (2^63 - 1) elements and {MAX_BYTES} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::SourceId;
    use crate::dtype::DType;

    fn ty(shape: &[u64], dtype: DType) -> ArrayType {
        ArrayType {
            dtype,
            shape: shape.to_vec(),
            chunks: shape.iter().map(|d| (*d).clamp(1, 1024)).collect(),
        }
    }

    #[test]
    fn limits_are_exact() {
        let span = Span::new(SourceId(0), 0, 1);
        let code = |s: &[u64], d| check(&ty(s, d), span).err().map(|d| d.code);
        assert_eq!(code(&[1 << 32, 1 << 32], DType::U8), Some("E0304"));
        assert_eq!(code(&[1 << 62, 1 << 62], DType::U8), Some("E0304"));
        assert_eq!(code(&[1 << 31, 1 << 31], DType::F64), Some("E0304"));
        assert_eq!(code(&[i64::MAX as u64], DType::I64), Some("E0304"));
        assert_eq!(code(&[i64::MAX as u64], DType::U8), None);
        assert_eq!(code(&[1 << 31, 1 << 31], DType::U8), None);
        assert_eq!(code(&[1 << 30, (1 << 30) - 1], DType::F64), None);
        assert_eq!(code(&[1 << 30, 1 << 30], DType::F64), Some("E0304"));
        assert_eq!(code(&[0, u64::MAX, u64::MAX], DType::F64), None);
        let mut t = ty(&[4], DType::F64);
        t.chunks = vec![1 << 61];
        assert_eq!(check(&t, span).err().map(|d| d.code), Some("E0305"));
    }
}
