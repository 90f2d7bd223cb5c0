//! Typing rules of connected-component labelling (`label`) and region measurements
//! (`regionprops`).

use crate::diag::{codes, Diagnostic, Span};
use crate::dtype::Kind;
use crate::geom::fmt_shape;
use crate::ir::ArrayType;

/// The type of `label(mask, connectivity=c)`: the mask's shape and chunks, `int32` (or
/// `int64` past `i32::MAX` elements). The mask is bool or integer (non-zero is
/// foreground), of rank 1 to 5; `c` is in `1..=ndim`.
pub fn label_type(
    mask: &ArrayType,
    connectivity: i64,
    mask_span: Span,
    conn_span: Span,
) -> Result<ArrayType, Diagnostic> {
    let nd = mask.ndim();
    if nd == 0 || nd > MAX_NDIM {
        return Err(Diagnostic::error(
            codes::SHAPE_MISMATCH,
            format!("label needs an array of rank 1 to {MAX_NDIM}, not {nd}"),
        )
        .label(mask_span, format!("shape is {}", fmt_shape(&mask.shape))));
    }
    match mask.dtype.kind() {
        Kind::Bool | Kind::Signed | Kind::Unsigned => {}
        Kind::Float | Kind::Complex => {
            return Err(Diagnostic::error(
                codes::UNSUPPORTED_DTYPE,
                format!(
                    "label needs a bool or integer mask, not {}",
                    mask.dtype.name()
                ),
            )
            .label(mask_span, format!("this is {}", mask.dtype.name()))
            .help("use a comparison such as `x > t`"));
        }
    }
    if connectivity < 1 || connectivity > nd as i64 {
        return Err(Diagnostic::error(
            codes::BAD_VALUE,
            format!("connectivity {connectivity} is out of range for a {nd}-d mask"),
        )
        .label(conn_span, format!("valid values are 1 ..= {nd}"))
        .note(format!(
            "1 joins pixels that share a face; {nd} joins them across edges and corners too"
        )));
    }
    Ok(ArrayType {
        dtype: label_dtype(&mask.shape),
        shape: mask.shape.clone(),
        chunks: mask.chunks.clone(),
    })
}

/// Check the arguments of `regionprops(labels, intensity=)`: integer labels, and a
/// real-valued intensity of the labels' shape.
pub fn props_check(
    labels: &ArrayType,
    intensity: Option<&ArrayType>,
    labels_span: Span,
    intensity_span: Span,
) -> Result<(), Diagnostic> {
    if !matches!(labels.dtype.kind(), Kind::Signed | Kind::Unsigned) {
        return Err(Diagnostic::error(
            codes::UNSUPPORTED_DTYPE,
            format!(
                "regionprops needs an integer label array, not {}",
                labels.dtype.name()
            ),
        )
        .label(labels_span, format!("this is {}", labels.dtype.name()))
        .help("label a mask first: `regionprops(label(x > t))`"));
    }
    if labels.ndim() == 0 || labels.ndim() > MAX_NDIM {
        return Err(Diagnostic::error(
            codes::SHAPE_MISMATCH,
            format!(
                "regionprops needs labels of rank 1 to {MAX_NDIM}, not {}",
                labels.ndim()
            ),
        )
        .label(
            labels_span,
            format!("shape is {}", fmt_shape(&labels.shape)),
        ));
    }
    if let Some(i) = intensity {
        if i.shape != labels.shape {
            return Err(Diagnostic::error(
                codes::SHAPE_MISMATCH,
                format!(
                    "the intensity image has shape {} but the labels have shape {}",
                    fmt_shape(&i.shape),
                    fmt_shape(&labels.shape)
                ),
            )
            .label(intensity_span, format!("shape is {}", fmt_shape(&i.shape)))
            .label(
                labels_span,
                format!("shape is {}", fmt_shape(&labels.shape)),
            ));
        }
        if i.dtype.kind() == Kind::Complex {
            return Err(Diagnostic::error(
                codes::UNSUPPORTED_DTYPE,
                format!(
                    "the intensity image must be real-valued, not {}",
                    i.dtype.name()
                ),
            )
            .label(intensity_span, format!("this is {}", i.dtype.name()))
            .help("take `abs(x)` or `real(x)` first"));
        }
    }
    Ok(())
}

/// The highest rank `label` accepts.
pub const MAX_NDIM: usize = 5;

/// The dtype of the labels of an array of this shape: `I32` unless the array has more
/// than `i32::MAX` elements.
pub fn label_dtype(shape: &[u64]) -> crate::dtype::DType {
    let size = shape
        .iter()
        .try_fold(1u64, |acc, n| acc.checked_mul(*n))
        .unwrap_or(u64::MAX);
    if size > i32::MAX as u64 {
        crate::dtype::DType::I64
    } else {
        crate::dtype::DType::I32
    }
}
