//! Operators: Python semantics on scalars (evaluated now), NumPy semantics on arrays
//! (new IR nodes, with the casts and broadcasts NEP 50 promotion calls for).

use super::{ArrayVal, Evaluator, Value, R};
use crate::check::{self, Operand};
use crate::data::Buf;
use crate::diag::{codes, Diagnostic, Span};
use crate::dtype::{DType, WeakKind};
use crate::io::ome::Spatial;
use crate::ir::{ArrayType, AxisIndex, BinaryOp, CoarsenMethod, NodeId, Op, UnaryOp};
use crate::syntax::ast::{BinOp, UnOp};
use num_complex::{Complex32, Complex64};
use std::sync::Arc;

pub fn array_logic_error(op: BinOp, span: Span) -> Diagnostic {
    let (sym, alt) = match op {
        BinOp::And => ("and", "&"),
        BinOp::Or => ("or", "|"),
        _ => ("not", "~"),
    };
    Diagnostic::error(
        codes::TYPE_MISMATCH,
        format!("`{sym}` needs a scalar, but this is an array"),
    )
    .label(span, "an array has no single truth value")
    .help(format!(
        "use `{alt}` for the elementwise operation on bool arrays"
    ))
}

fn map_binop(op: BinOp) -> BinaryOp {
    match op {
        BinOp::Add => BinaryOp::Add,
        BinOp::Sub => BinaryOp::Sub,
        BinOp::Mul => BinaryOp::Mul,
        BinOp::Div => BinaryOp::Div,
        BinOp::FloorDiv => BinaryOp::FloorDiv,
        BinOp::Mod => BinaryOp::Mod,
        BinOp::Pow => BinaryOp::Pow,
        BinOp::Eq => BinaryOp::Eq,
        BinOp::Ne => BinaryOp::Ne,
        BinOp::Lt => BinaryOp::Lt,
        BinOp::Le => BinaryOp::Le,
        BinOp::Gt => BinaryOp::Gt,
        BinOp::Ge => BinaryOp::Ge,
        BinOp::BitAnd | BinOp::And => BinaryOp::And,
        BinOp::BitOr | BinOp::Or => BinaryOp::Or,
        BinOp::BitXor => BinaryOp::Xor,
    }
}

/// A weak scalar's kind, if the value is a number or bool.
pub fn weak_kind(v: &Value) -> Option<WeakKind> {
    match v {
        Value::Bool(_) => Some(WeakKind::Bool),
        Value::Int(_) => Some(WeakKind::Int),
        Value::Float(_) => Some(WeakKind::Float),
        _ => None,
    }
}

/// A scalar value converted to a one-element buffer of `dtype`, refusing Python integers
/// out of the dtype's range as NumPy 2 does.
pub fn scalar_buf(v: &Value, dtype: DType, span: Span) -> R<Buf> {
    let oob = |i: i64| {
        Diagnostic::error(
            codes::TYPE_MISMATCH,
            format!("the integer {i} is out of bounds for {dtype}"),
        )
        .label(span, format!("does not fit in {dtype}"))
        .help("cast the array first, e.g. `x.astype(\"i32\")`")
    };
    macro_rules! int {
        ($var:ident, $t:ty, $i:expr) => {{
            let i: i64 = $i;
            let x = <$t>::try_from(i).map_err(|_| oob(i))?;
            Buf::$var(vec![x])
        }};
    }
    let f = match v {
        Value::Bool(b) => {
            if *b {
                1.0
            } else {
                0.0
            }
        }
        Value::Int(i) => *i as f64,
        Value::Float(x) => *x,
        other => {
            return Err(Diagnostic::error(
                codes::TYPE_MISMATCH,
                format!("expected a number, found {}", other.a_kind()),
            )
            .label(span, "expected a number"))
        }
    };
    let as_int = match v {
        Value::Bool(b) => Some(*b as i64),
        Value::Int(i) => Some(*i),
        _ => None,
    };
    Ok(match (dtype, as_int) {
        (DType::Bool, _) => Buf::Bool(vec![f != 0.0]),
        (DType::I8, Some(i)) => int!(I8, i8, i),
        (DType::I16, Some(i)) => int!(I16, i16, i),
        (DType::I32, Some(i)) => int!(I32, i32, i),
        (DType::I64, Some(i)) => Buf::I64(vec![i]),
        (DType::U8, Some(i)) => int!(U8, u8, i),
        (DType::U16, Some(i)) => int!(U16, u16, i),
        (DType::U32, Some(i)) => int!(U32, u32, i),
        (DType::U64, Some(i)) => int!(U64, u64, i),
        (DType::F32, Some(i)) => Buf::F32(vec![i as f32]),
        (DType::F64, Some(i)) => Buf::F64(vec![i as f64]),
        (DType::C64, Some(i)) => Buf::C64(vec![Complex32::new(i as f32, 0.0)]),
        (DType::C128, Some(i)) => Buf::C128(vec![Complex64::new(i as f64, 0.0)]),
        (DType::F32, None) => Buf::F32(vec![f as f32]),
        (DType::F64, None) => Buf::F64(vec![f]),
        (DType::C64, None) => Buf::C64(vec![Complex32::new(f as f32, 0.0)]),
        (DType::C128, None) => Buf::C128(vec![Complex64::new(f, 0.0)]),
        (d, None) => {
            return Err(Diagnostic::error(
                codes::TYPE_MISMATCH,
                format!("a float cannot be stored in a {d} array"),
            )
            .label(span, "this is a float"))
        }
    })
}

impl Evaluator {
    pub(super) fn arr(&self, v: &ArrayVal) -> &ArrayType {
        self.program.ty(v.node)
    }

    /// Add a typed node; refuses types whose sizes do not fit (`check::sizes`).
    pub(super) fn node(&mut self, op: Op, ty: ArrayType, span: Span) -> R<NodeId> {
        crate::check::sizes::check(&ty, span)?;
        // Chunks derived from a chosen chunking stay chosen (broadcasts pick their own).
        let chosen = !matches!(op, Op::Broadcast { .. } | Op::Fill { .. })
            && op.inputs().iter().any(|i| self.chosen_chunks.contains(i));
        let space = self.derived_space(&op, &ty);
        let id = self.program.add(op, ty, span);
        self.program.nodes[id.index()].space = space;
        if chosen {
            self.chosen_chunks.insert(id);
        }
        Ok(id)
    }

    /// The physical frame a new node inherits from its inputs: elementwise ops, filters,
    /// casts, rechunks and labelling keep it; indexing moves the translation (and a step
    /// multiplies the scale; an int index drops its axis); a reduction drops its axes;
    /// `coarsen` multiplies the scale (and moves the origin to the first block's centre,
    /// except for `nearest`). Anything else (transpose, reshape, ...) has none.
    fn derived_space(&self, op: &Op, ty: &ArrayType) -> Option<Arc<Spatial>> {
        let of = |x: &NodeId| self.program.space(*x).cloned();
        match op {
            Op::Unary { .. }
            | Op::Binary { .. }
            | Op::Where { .. }
            | Op::Cast { .. }
            | Op::Stencil { .. }
            | Op::Fused { .. }
            | Op::Rechunk { .. }
            | Op::Label { .. }
            | Op::PyBlock(_) => op
                .inputs()
                .iter()
                .find(|x| {
                    self.program.space(**x).is_some() && self.program.ty(**x).shape == ty.shape
                })
                .and_then(of),
            Op::Index { x, axes } => {
                let s = of(x)?;
                let mut out = Spatial {
                    axes: Vec::new(),
                    scale: Vec::new(),
                    translation: Vec::new(),
                };
                let mut k = 0;
                for a in axes {
                    match a {
                        AxisIndex::Range { start, step, .. } => {
                            if *step < 1 {
                                return None;
                            }
                            out.axes.push(s.axes.get(k)?.clone());
                            out.scale.push(s.scale[k] * *step as f64);
                            out.translation
                                .push(s.translation[k] + *start as f64 * s.scale[k]);
                            k += 1;
                        }
                        AxisIndex::Int(_) => k += 1,
                        AxisIndex::NewAxis => return None,
                    }
                }
                while k < s.axes.len() {
                    out.axes.push(s.axes[k].clone());
                    out.scale.push(s.scale[k]);
                    out.translation.push(s.translation[k]);
                    k += 1;
                }
                (out.axes.len() == ty.ndim()).then(|| Arc::new(out))
            }
            Op::Reduce { x, axes, .. } => {
                let s = of(x)?;
                let keep: Vec<usize> = (0..s.axes.len()).filter(|i| !axes.contains(i)).collect();
                let out = Spatial {
                    axes: keep.iter().map(|i| s.axes[*i].clone()).collect(),
                    scale: keep.iter().map(|i| s.scale[*i]).collect(),
                    translation: keep.iter().map(|i| s.translation[*i]).collect(),
                };
                (!out.axes.is_empty() && out.axes.len() == ty.ndim()).then(|| Arc::new(out))
            }
            Op::Coarsen {
                x, factors, method, ..
            } => {
                let s = of(x)?;
                let centre = *method != CoarsenMethod::Nearest;
                let mut out = (*s).clone();
                for (i, f) in factors.iter().enumerate() {
                    let f = *f as f64;
                    if centre {
                        out.translation[i] += (f - 1.0) / 2.0 * s.scale[i];
                    }
                    out.scale[i] *= f;
                }
                Some(Arc::new(out))
            }
            _ => None,
        }
    }

    pub(super) fn cast_node(&mut self, id: NodeId, dtype: DType, span: Span) -> R<NodeId> {
        let t = self.program.ty(id).clone();
        if t.dtype == dtype {
            return Ok(id);
        }
        // A constant is recast by converting its value, not with a node.
        if let Op::Fill { value } = &self.program.node(id).op {
            let mut out = Buf::zeros(dtype, 1);
            crate::exec::elementwise::cast(value, &mut out, 1);
            return self.node(Op::Fill { value: out }, ArrayType { dtype, ..t }, span);
        }
        self.node(Op::Cast { x: id }, ArrayType { dtype, ..t }, span)
    }

    pub(super) fn broadcast_node(
        &mut self,
        id: NodeId,
        shape: &[u64],
        chunks: &[u64],
        span: Span,
    ) -> R<NodeId> {
        let t = self.program.ty(id).clone();
        if t.shape == shape {
            return Ok(id);
        }
        let ty = ArrayType {
            dtype: t.dtype,
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
        };
        if let Op::Fill { value } = &self.program.node(id).op {
            let value = value.clone();
            return self.node(Op::Fill { value }, ty, span);
        }
        self.node(Op::Broadcast { x: id }, ty, span)
    }

    /// A constant array of `shape` holding one scalar.
    pub(super) fn const_node(
        &mut self,
        v: &Value,
        dtype: DType,
        shape: &[u64],
        chunks: &[u64],
        span: Span,
    ) -> R<NodeId> {
        let value = scalar_buf(v, dtype, span)?;
        self.node(
            Op::Fill { value },
            ArrayType {
                dtype,
                shape: shape.to_vec(),
                chunks: chunks.to_vec(),
            },
            span,
        )
    }

    pub(super) fn unary(&mut self, op: UnOp, v: Value, span: Span) -> R<Value> {
        match (&v, op) {
            (Value::Poison, _) => Ok(Value::Poison),
            (Value::Array(_), UnOp::Not) => Err(array_logic_error(BinOp::And, span)
                .help("use `~` to invert a bool array elementwise")),
            (Value::Array(_), UnOp::Pos) => Ok(v),
            (Value::Array(a), UnOp::Neg) => self.arr_unary(UnaryOp::Neg, a.clone(), span),
            (Value::Array(a), UnOp::Invert) => self.arr_unary(UnaryOp::Invert, a.clone(), span),
            (Value::Int(i), UnOp::Neg) => i.checked_neg().map(Value::Int).ok_or_else(|| {
                Diagnostic::error(codes::BAD_VALUE, "integer overflow").label(span, "here")
            }),
            (Value::Float(f), UnOp::Neg) => Ok(Value::Float(-f)),
            (Value::Bool(b), UnOp::Neg) => Ok(Value::Int(-(*b as i64))),
            (Value::Int(_) | Value::Float(_), UnOp::Pos) => Ok(v),
            (Value::Int(i), UnOp::Invert) => Ok(Value::Int(!i)),
            (Value::Bool(b), UnOp::Invert) => Ok(Value::Bool(!b)),
            (_, UnOp::Not) => match self.truthy(&v, span)? {
                Some(b) => Ok(Value::Bool(!b)),
                None => Ok(Value::Poison),
            },
            (other, _) => Err(Diagnostic::error(
                codes::TYPE_MISMATCH,
                format!("this operator is not defined for {}", other.a_kind()),
            )
            .label(span, format!("this is {}", other.a_kind()))),
        }
    }

    pub(super) fn arr_unary(&mut self, op: UnaryOp, a: ArrayVal, span: Span) -> R<Value> {
        let t = self.arr(&a).clone();
        let (compute, result) = check::unary(op, t.dtype, span)?;
        let x = self.cast_node(a.node, compute, span)?;
        let id = self.node(Op::Unary { op, x }, ArrayType { dtype: result, ..t }, span)?;
        Ok(Value::Array(ArrayVal::new(id)))
    }

    pub(super) fn binary(
        &mut self,
        op: BinOp,
        a: Value,
        b: Value,
        sa: Span,
        sb: Span,
        span: Span,
    ) -> R<Value> {
        if matches!(a, Value::Poison) || matches!(b, Value::Poison) {
            return Ok(Value::Poison);
        }
        if matches!(a, Value::Array(_)) || matches!(b, Value::Array(_)) {
            return self.arr_binary(map_binop(op), a, b, sa, sb, span);
        }
        scalar_binary(op, a, b, span)
    }

    /// `a op b` where at least one side is an array.
    pub fn arr_binary(
        &mut self,
        op: BinaryOp,
        a: Value,
        b: Value,
        sa: Span,
        sb: Span,
        span: Span,
    ) -> R<Value> {
        // The operand class of a non-array side (arrays are typed from their node below).
        let operand = |v: &Value, s: Span| -> R<Operand<'static>> {
            match v {
                Value::Array(_) => Ok(Operand::Weak(WeakKind::Bool)),
                other => match weak_kind(other) {
                    Some(k) => Ok(Operand::Weak(k)),
                    None => Err(Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        format!(
                            "`{}` cannot combine an array with a {}",
                            check::op_symbol(op),
                            other.kind_name()
                        ),
                    )
                    .label(s, format!("this is {}", other.a_kind()))),
                },
            }
        };
        // NumPy's fast scalar powers for float and complex arrays: `x ** 2` and `x ** 2.0`
        // are `x * x`, `x ** 1` is `x`, `x ** -1` is `1 / x` and `x ** 0.5` is `sqrt(x)`
        // (not `pow`), so results match bit for bit.
        if op == BinaryOp::Pow {
            if let Value::Array(x) = &a {
                let d = self.arr(x).dtype;
                if d.is_float() || d.is_complex() {
                    match b {
                        Value::Int(2) => {
                            return self.arr_binary(BinaryOp::Mul, a.clone(), a, sa, sa, span)
                        }
                        Value::Float(2.0) => {
                            return self.arr_binary(BinaryOp::Mul, a.clone(), a, sa, sa, span)
                        }
                        // NumPy copies for `x ** 1` (NaN payloads survive).
                        Value::Int(1) => return Ok(Value::Array(ArrayVal::new(x.node))),
                        Value::Int(-1) => {
                            return self.arr_binary(BinaryOp::Div, Value::Int(1), a, sb, sa, span)
                        }
                        Value::Float(0.5) => return self.arr_unary(UnaryOp::Sqrt, x.clone(), span),
                        _ => {}
                    }
                }
            }
        }
        let ta = match &a {
            Value::Array(x) => Some(self.arr(x).clone()),
            _ => None,
        };
        let tb = match &b {
            Value::Array(x) => Some(self.arr(x).clone()),
            _ => None,
        };
        let oa = match &ta {
            Some(t) => Operand::Array(t),
            None => operand(&a, sa)?,
        };
        let ob = match &tb {
            Some(t) => Operand::Array(t),
            None => operand(&b, sb)?,
        };
        let typing = check::binary(op, &oa, &ob, span)?;
        if op == BinaryOp::Pow && typing.compute.is_integer() {
            if let Value::Int(e) = b {
                if e < 0 {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        "integers to negative integer powers are not allowed",
                    )
                    .label(sb, "negative exponent")
                    .help("cast to float first, e.g. `x.astype(\"f64\") ** -1`"));
                }
            }
        }
        // Operands whose chunking was chosen (stored, or `chunks=`) come first.
        let chosen =
            |v: &Value| matches!(v, Value::Array(x) if self.chosen_chunks.contains(&x.node));
        let mut arrays: Vec<&ArrayType> = Vec::new();
        for pass in [true, false] {
            for (v, t) in [(&a, &ta), (&b, &tb)] {
                if let Some(t) = t {
                    if chosen(v) == pass {
                        arrays.push(t);
                    }
                }
            }
        }
        let chunks = check::result_chunks(&typing.shape, &arrays);
        // The broadcast result is refused at the operator, before either side grows.
        let widest = if typing.compute.size() > typing.result.size() {
            typing.compute
        } else {
            typing.result
        };
        check::sizes::check(
            &ArrayType {
                dtype: widest,
                shape: typing.shape.clone(),
                chunks: chunks.clone(),
            },
            span,
        )?;
        let side = |ev: &mut Evaluator, v: &Value, s: Span| -> R<NodeId> {
            match v {
                Value::Array(x) => {
                    let c = ev.cast_node(x.node, typing.compute, s)?;
                    ev.broadcast_node(c, &typing.shape, &chunks, s)
                }
                other => ev.const_node(other, typing.compute, &typing.shape, &chunks, s),
            }
        };
        let na = side(self, &a, sa)?;
        let nb = side(self, &b, sb)?;
        let id = self.node(
            Op::Binary { op, a: na, b: nb },
            ArrayType {
                dtype: typing.result,
                shape: typing.shape.clone(),
                chunks: chunks.clone(),
            },
            span,
        )?;
        Ok(Value::Array(ArrayVal::new(id)))
    }
}

fn zero_div(span: Span) -> Diagnostic {
    Diagnostic::error(codes::BAD_VALUE, "division by zero").label(span, "the divisor is zero")
}

fn overflow(span: Span) -> Diagnostic {
    Diagnostic::error(codes::BAD_VALUE, "integer overflow").label(span, "this overflows i64")
}

/// Python semantics for scalar operators.
pub fn scalar_binary(op: BinOp, a: Value, b: Value, span: Span) -> R<Value> {
    use Value::*;
    let num = |v: &Value| match v {
        Int(i) => Some(*i as f64),
        Float(f) => Some(*f),
        Bool(b) => Some(*b as i64 as f64),
        _ => Option::None,
    };
    let int = |v: &Value| match v {
        Int(i) => Some(*i),
        Bool(b) => Some(*b as i64),
        _ => Option::None,
    };
    match op {
        BinOp::Eq | BinOp::Ne => {
            let eq = match (num(&a), num(&b)) {
                (Some(x), Some(y)) => x == y,
                _ => values_equal(&a, &b),
            };
            return Ok(Bool(eq == (op == BinOp::Eq)));
        }
        BinOp::Add => match (&a, &b) {
            (Str(x), Str(y)) => return Ok(Str(format!("{x}{y}").into())),
            (Tuple(x), Tuple(y)) => return Ok(Tuple(x.iter().chain(y.iter()).cloned().collect())),
            (List(x), List(y)) => return Ok(List(x.iter().chain(y.iter()).cloned().collect())),
            _ => {}
        },
        _ => {}
    }
    if let (Some(x), Some(y)) = (int(&a), int(&b)) {
        if !matches!((&a, &b), (Bool(_), Bool(_)))
            || matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul)
        {
            let r = match op {
                BinOp::Add => x.checked_add(y).ok_or_else(|| overflow(span))?,
                BinOp::Sub => x.checked_sub(y).ok_or_else(|| overflow(span))?,
                BinOp::Mul => x.checked_mul(y).ok_or_else(|| overflow(span))?,
                BinOp::Div => {
                    if y == 0 {
                        return Err(zero_div(span));
                    }
                    return Ok(Float(x as f64 / y as f64));
                }
                BinOp::FloorDiv => {
                    if y == 0 {
                        return Err(zero_div(span));
                    }
                    let q = x.wrapping_div(y);
                    if x.wrapping_rem(y) != 0 && ((x < 0) != (y < 0)) {
                        q - 1
                    } else {
                        q
                    }
                }
                BinOp::Mod => {
                    if y == 0 {
                        return Err(zero_div(span));
                    }
                    let r = x.wrapping_rem(y);
                    if r != 0 && ((r < 0) != (y < 0)) {
                        r + y
                    } else {
                        r
                    }
                }
                BinOp::Pow => {
                    if y < 0 {
                        return Ok(Float((x as f64).powf(y as f64)));
                    }
                    let e = u32::try_from(y).map_err(|_| overflow(span))?;
                    x.checked_pow(e).ok_or_else(|| overflow(span))?
                }
                BinOp::Lt => return Ok(Bool(x < y)),
                BinOp::Le => return Ok(Bool(x <= y)),
                BinOp::Gt => return Ok(Bool(x > y)),
                BinOp::Ge => return Ok(Bool(x >= y)),
                BinOp::BitAnd => x & y,
                BinOp::BitOr => x | y,
                BinOp::BitXor => x ^ y,
                BinOp::Eq | BinOp::Ne | BinOp::And | BinOp::Or => unreachable!(),
            };
            return Ok(Int(r));
        }
        // bool op bool for the logical operators stays bool.
        let (x, y) = (x != 0, y != 0);
        return Ok(match op {
            BinOp::BitAnd => Bool(x & y),
            BinOp::BitOr => Bool(x | y),
            BinOp::BitXor => Bool(x ^ y),
            _ => return scalar_binary(op, Int(x as i64), Int(y as i64), span),
        });
    }
    if let (Some(x), Some(y)) = (num(&a), num(&b)) {
        return Ok(match op {
            BinOp::Add => Float(x + y),
            BinOp::Sub => Float(x - y),
            BinOp::Mul => Float(x * y),
            BinOp::Div => {
                if y == 0.0 {
                    return Err(zero_div(span));
                }
                Float(x / y)
            }
            BinOp::FloorDiv | BinOp::Mod => {
                if y == 0.0 {
                    return Err(zero_div(span));
                }
                let f = if op == BinOp::FloorDiv {
                    crate::exec::elementwise::Num::floordiv(x, y)
                } else {
                    crate::exec::elementwise::Num::rem(x, y)
                };
                Float(f)
            }
            BinOp::Pow => Float(x.powf(y)),
            BinOp::Lt => Bool(x < y),
            BinOp::Le => Bool(x <= y),
            BinOp::Gt => Bool(x > y),
            BinOp::Ge => Bool(x >= y),
            _ => {
                return Err(Diagnostic::error(
                    codes::TYPE_MISMATCH,
                    format!("`{}` is not defined for floats", op.symbol()),
                )
                .label(span, "here"))
            }
        });
    }
    Err(Diagnostic::error(
        codes::TYPE_MISMATCH,
        format!(
            "`{}` is not defined between {} and {}",
            op.symbol(),
            a.a_kind(),
            b.a_kind()
        ),
    )
    .label(span, "unsupported operand types"))
}

pub fn values_equal(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (None, None) => true,
        (Bool(x), Bool(y)) => x == y,
        (Int(x), Int(y)) => x == y,
        (Float(x), Float(y)) => x == y,
        (Int(x), Float(y)) | (Float(y), Int(x)) => *x as f64 == *y,
        (Str(x), Str(y)) => x == y,
        (Tuple(x), Tuple(y)) | (List(x), List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| values_equal(p, q))
        }
        (Slice(a1, b1, c1), Slice(a2, b2, c2)) => a1 == a2 && b1 == b2 && c1 == c2,
        _ => false,
    }
}
