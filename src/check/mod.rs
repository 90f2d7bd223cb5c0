//! Typing rules: the dtype, shape and chunk shape every array op produces, or a diagnostic
//! that says why it cannot. The lowering stage asks these rules for each node it creates,
//! so every error is found before anything runs, with the span of the expression at fault.

use crate::diag::{codes, Diagnostic, Span};
use crate::dtype::{self, DType, Kind, WeakKind};
use crate::geom::{fmt_shape, Shape};
use crate::ir::{ArrayType, BinaryOp, UnaryOp};

pub mod coarsen;
pub mod label;
pub mod shape_ops;
pub mod sizes;

/// One operand of a binary operation, as far as typing is concerned.
#[derive(Clone, Debug)]
pub enum Operand<'a> {
    Array(&'a ArrayType),
    /// A Python-style scalar literal (NEP 50 weak).
    Weak(WeakKind),
}

/// The typing of a binary op: cast both operands to `compute`, result has `result`.
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryTyping {
    pub compute: DType,
    pub result: DType,
    pub shape: Shape,
}

/// NumPy broadcasting of two shapes (aligned at the right).
pub fn broadcast_shapes(a: &[u64], b: &[u64]) -> Option<Shape> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// Both shapes right-aligned, one per line, for broadcast errors.
pub fn aligned_shapes(a: &[u64], b: &[u64]) -> String {
    let fa = fmt_shape(a);
    let fb = fmt_shape(b);
    let w = fa.len().max(fb.len());
    format!("{fa:>w$}\n{fb:>w$}")
}

fn dtype_of(o: &Operand) -> Option<DType> {
    match o {
        Operand::Array(t) => Some(t.dtype),
        Operand::Weak(_) => None,
    }
}

/// The common dtype of two operands under NEP 50.
pub fn common_dtype(a: &Operand, b: &Operand) -> DType {
    match (a, b) {
        (Operand::Array(x), Operand::Array(y)) => dtype::promote(x.dtype, y.dtype),
        (Operand::Array(x), Operand::Weak(w)) | (Operand::Weak(w), Operand::Array(x)) => {
            dtype::promote_weak(x.dtype, *w)
        }
        (Operand::Weak(x), Operand::Weak(y)) => {
            let k = if *x == WeakKind::Float || *y == WeakKind::Float {
                WeakKind::Float
            } else if *x == WeakKind::Int || *y == WeakKind::Int {
                WeakKind::Int
            } else {
                WeakKind::Bool
            };
            dtype::weak_default(k)
        }
    }
}

/// Type a binary op between two operands (at least one an array).
pub fn binary(
    op: BinaryOp,
    a: &Operand,
    b: &Operand,
    span: Span,
) -> Result<BinaryTyping, Diagnostic> {
    let shape_of = |o: &Operand| match o {
        Operand::Array(t) => t.shape.clone(),
        Operand::Weak(_) => vec![],
    };
    let (sa, sb) = (shape_of(a), shape_of(b));
    let shape = broadcast_shapes(&sa, &sb).ok_or_else(|| {
        let da = dtype_of(a).map(|d| d.to_string()).unwrap_or_default();
        let db = dtype_of(b).map(|d| d.to_string()).unwrap_or_default();
        Diagnostic::error(
            codes::SHAPE_MISMATCH,
            format!(
                "shape mismatch: {da}{} {} {db}{}",
                fmt_shape(&sa),
                op_symbol(op),
                fmt_shape(&sb)
            ),
        )
        .label(span, "these shapes do not broadcast together")
        .note(format!(
            "shapes aligned at the right:\n{}",
            aligned_shapes(&sa, &sb)
        ))
        .help("each axis must have equal lengths, or length 1 on one side")
    })?;
    let common = common_dtype(a, b);
    let bad = |what: &str| {
        Diagnostic::error(
            codes::TYPE_MISMATCH,
            format!("`{}` is not defined for {what}", op_symbol(op)),
        )
        .label(span, format!("operands have dtype {common}"))
    };
    let (compute, result) = match op {
        BinaryOp::Div => {
            let d = dtype::true_divide(common);
            (d, d)
        }
        BinaryOp::Add | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min => (common, common),
        BinaryOp::Sub => {
            if common == DType::Bool {
                return Err(bad("bool arrays").help("use `^` for the difference of two masks"));
            }
            (common, common)
        }
        BinaryOp::FloorDiv | BinaryOp::Mod => {
            if common.is_complex() {
                return Err(bad("complex arrays"));
            }
            let d = if common == DType::Bool {
                DType::I8
            } else {
                common
            };
            (d, d)
        }
        BinaryOp::Pow => {
            let d = if common == DType::Bool {
                DType::I8
            } else {
                common
            };
            (d, d)
        }
        BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => {
            if !(common.is_integer() || common == DType::Bool) {
                return Err(bad(&format!("{common} arrays")).help(
                    "`&`, `|` and `^` combine bool masks or integers; compare first, e.g. `(x > 0) & (y > 0)`",
                ));
            }
            (common, common)
        }
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            (common, DType::Bool)
        }
    };
    Ok(BinaryTyping {
        compute,
        result,
        shape,
    })
}

pub fn op_symbol(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
        BinaryOp::FloorDiv => "//",
        BinaryOp::Mod => "%",
        BinaryOp::Pow => "**",
        BinaryOp::Eq => "==",
        BinaryOp::Ne => "!=",
        BinaryOp::Lt => "<",
        BinaryOp::Le => "<=",
        BinaryOp::Gt => ">",
        BinaryOp::Ge => ">=",
        BinaryOp::And => "&",
        BinaryOp::Or => "|",
        BinaryOp::Xor => "^",
        BinaryOp::Max => "maximum",
        BinaryOp::Min => "minimum",
    }
}

/// Type a unary op: (dtype to compute in, result dtype).
pub fn unary(op: UnaryOp, d: DType, span: Span) -> Result<(DType, DType), Diagnostic> {
    let err = |what: &str| {
        Diagnostic::error(
            codes::TYPE_MISMATCH,
            format!("`{}` is not defined for {d} arrays", op.name()),
        )
        .label(span, format!("this is {d}"))
        .help(what.to_string())
    };
    Ok(match op {
        UnaryOp::Neg => {
            if d == DType::Bool {
                return Err(err("use `~` to invert a bool mask"));
            }
            (d, d)
        }
        UnaryOp::Invert => {
            if !(d.is_integer() || d == DType::Bool) {
                return Err(err("`~` inverts bool masks and the bits of integers"));
            }
            (d, d)
        }
        UnaryOp::Abs => match d.kind() {
            Kind::Complex => (d, d.real_part()),
            Kind::Bool => (d, d),
            _ => (d, d),
        },
        UnaryOp::Sqrt | UnaryOp::Exp | UnaryOp::Log => {
            let f = dtype::float_result(d);
            (f, f)
        }
        UnaryOp::Real | UnaryOp::Imag | UnaryOp::Angle => {
            if d.is_complex() {
                (d, d.real_part())
            } else if op == UnaryOp::Real {
                (d, d)
            } else {
                let f = dtype::float_result(d);
                (f, f)
            }
        }
    })
}

/// The chunk shape of an elementwise result: taken from the first operand that has the
/// result's full shape, else defaulted.
pub fn result_chunks(shape: &[u64], operands: &[&ArrayType]) -> Shape {
    // The caller lists operands whose chunks were chosen (stored or given) first.
    for t in operands {
        if t.shape == shape {
            return t.chunks.clone();
        }
    }
    // Broadcast result: per axis, the chunk of an operand that spans the axis, kept
    // within the default chunk size so a broadcast never makes huge chunks.
    let n = shape.len();
    let limit = default_chunks(shape, 8);
    let mut chunks = limit.clone();
    for (ax, c) in chunks.iter_mut().enumerate() {
        for t in operands {
            let off = n - t.shape.len();
            if ax >= off && t.shape[ax - off] == shape[ax] {
                *c = t.chunks[ax - off];
                break;
            }
        }
    }
    if crate::geom::saturating_product(&chunks) > crate::geom::saturating_product(&limit) {
        return limit;
    }
    chunks
}

/// Chunks for generated arrays when none are given: halve the longest axis until a chunk
/// holds at most 16 MiB (documented in docs/LANGUAGE-NOTES.md).
pub fn default_chunks(shape: &[u64], itemsize: usize) -> Shape {
    const TARGET: u64 = 16 << 20;
    let mut c: Vec<u64> = shape.iter().map(|d| (*d).max(1)).collect();
    while crate::geom::saturating_product(&c).saturating_mul(itemsize as u64) > TARGET {
        let (ax, _) = c
            .iter()
            .enumerate()
            .max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)))
            .unwrap();
        if c[ax] <= 1 {
            break;
        }
        c[ax] = c[ax].div_ceil(2);
    }
    c
}

/// Validate a user-given chunk shape against an array shape.
pub fn check_chunks(chunks: &[i64], shape: &[u64], span: Span) -> Result<Shape, Diagnostic> {
    if chunks.len() != shape.len() {
        return Err(Diagnostic::error(
            codes::BAD_VALUE,
            format!(
                "chunks has {} entries but the array has {} axes",
                chunks.len(),
                shape.len()
            ),
        )
        .label(span, format!("the array's shape is {}", fmt_shape(shape))));
    }
    if let Some(c) = chunks.iter().find(|c| **c <= 0) {
        return Err(
            Diagnostic::error(codes::BAD_VALUE, format!("chunk size {c} is not positive"))
                .label(span, "every chunk size must be at least 1"),
        );
    }
    Ok(chunks
        .iter()
        .zip(shape)
        .map(|(c, n)| (*c as u64).min((*n).max(1)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shapes(&[3, 1, 5], &[4, 1]), Some(vec![3, 4, 5]));
        assert_eq!(broadcast_shapes(&[3], &[4]), None);
        assert_eq!(broadcast_shapes(&[], &[2, 2]), Some(vec![2, 2]));
    }

    #[test]
    fn default_chunks_are_bounded() {
        let c = default_chunks(&[8000, 8000], 4);
        assert!(c.iter().product::<u64>() * 4 <= 16 << 20);
        assert_eq!(default_chunks(&[10], 4), vec![10]);
    }
}
