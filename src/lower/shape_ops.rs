//! Builtins that change an array's shape: reductions, transpose, reshape, rechunk,
//! stack/concat and Fourier transforms. Typing rules live in `check::shape_ops`.

use super::builtins::{expected, get_bool, get_int, get_ints, ArgVal, Args};
use super::{ArrayVal, Evaluator, Value, R};
use crate::check::shape_ops as rules;
use crate::diag::{codes, Diagnostic, Span};
use crate::geom::fmt_shape;
use crate::ir::{ArrayType, FftKind, Op, ReduceOp};

/// `x.transpose(2, 0, 1)` and `x.reshape(4, 5)` take their axes as separate arguments
/// too (NumPy's spelling): several positional arguments become one tuple
/// (`registry::Binding::PackPositional`).
pub(super) fn pack_positional(args: Vec<ArgVal>) -> Vec<ArgVal> {
    let positional = args.iter().filter(|a| a.name.is_none()).count();
    if positional < 2 {
        return args;
    }
    let (pos, named): (Vec<ArgVal>, Vec<ArgVal>) = args.into_iter().partition(|a| a.name.is_none());
    let span = pos[0].span.to(pos[pos.len() - 1].span);
    let tuple = ArgVal {
        name: None,
        value: Value::Tuple(pos.into_iter().map(|a| a.value).collect::<Vec<_>>().into()),
        span,
    };
    std::iter::once(tuple).chain(named).collect()
}

impl Evaluator {
    fn array_node(&mut self, op: Op, ty: ArrayType, span: Span) -> R<Value> {
        let id = self.node(op, ty, span)?;
        Ok(Value::Array(ArrayVal::new(id)))
    }

    pub(super) fn reduce_method(
        &mut self,
        x: ArrayVal,
        name: &str,
        a: &Args,
        span: Span,
    ) -> R<Value> {
        let op = ReduceOp::parse(name).expect("a reduction");
        let t = self.arr(&x).clone();
        let axis_arg = a.get("axis");
        let axes = match axis_arg {
            None => None,
            Some(v) => Some(get_ints(v)?),
        };
        let at = axis_arg.map(|v| v.span).unwrap_or(span);
        if matches!(op, ReduceOp::Argmin | ReduceOp::Argmax) {
            if let (Some(v), Some(ax)) = (axis_arg, &axes) {
                if ax.len() != 1 || matches!(v.value, Value::Tuple(_) | Value::List(_)) {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("`{name}` takes one axis or none, not a tuple"),
                    )
                    .label(v.span, "one int, or leave it out for the flat index"));
                }
            }
        }
        let axes = rules::normalize_axes(axes.as_deref(), t.ndim(), at)?;
        let keepdims = match a.get("keepdims") {
            Some(k) => get_bool(k)?,
            None => false,
        };
        let ddof = match a.get("ddof") {
            Some(d) => {
                let v = get_int(d)?;
                if v < 0 {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("ddof {v} is negative"),
                    )
                    .label(d.span, "ddof must be zero or more"));
                }
                v as u64
            }
            None => 0,
        };
        let ty = rules::reduce_type(op, &t, &axes, false, span)?;
        let kept = rules::reduce_type(op, &t, &axes, true, span)?;
        let id = self.node(
            Op::Reduce {
                x: x.node,
                op,
                axes,
                ddof,
            },
            ty,
            span,
        )?;
        if keepdims && kept.shape != self.program.ty(id).shape {
            return self.array_node(Op::Reshape { x: id }, kept, span);
        }
        Ok(Value::Array(ArrayVal::new(id)))
    }

    pub(super) fn transpose(&mut self, x: ArrayVal, a: &Args, span: Span) -> R<Value> {
        let t = self.arr(&x).clone();
        let perm = match a.get("axes") {
            None => (0..t.ndim()).rev().collect(),
            Some(v) => rules::transpose_perm(&get_ints(v)?, t.ndim(), v.span)?,
        };
        if perm.iter().enumerate().all(|(i, p)| i == *p) {
            return Ok(Value::Array(ArrayVal::new(x.node)));
        }
        let ty = rules::transpose_type(&t, &perm);
        self.array_node(Op::Transpose { x: x.node, perm }, ty, span)
    }

    pub(super) fn reshape(&mut self, x: ArrayVal, a: &Args, span: Span) -> R<Value> {
        let t = self.arr(&x).clone();
        let s = a.required("shape")?;
        let shape = get_ints(s)?;
        let ty = rules::reshape_type(&t, &shape, s.span)?;
        if ty.shape == t.shape {
            return Ok(Value::Array(ArrayVal::new(x.node)));
        }
        self.array_node(Op::Reshape { x: x.node }, ty, span)
    }

    pub(super) fn rechunk(&mut self, x: ArrayVal, a: &Args, span: Span) -> R<Value> {
        let t = self.arr(&x).clone();
        let c = a.required("chunks")?;
        let mut given = get_ints(c)?;
        if given.len() == 1 && t.ndim() != 1 {
            given = vec![given[0]; t.ndim()];
        }
        // -1 is the whole axis, as in dask.
        let given: Vec<i64> = given
            .iter()
            .zip(&t.shape)
            .map(|(g, n)| if *g == -1 { (*n).max(1) as i64 } else { *g })
            .collect();
        let chunks = crate::check::check_chunks(&given, &t.shape, c.span)?;
        if chunks == t.chunks {
            return Ok(Value::Array(ArrayVal::new(x.node)));
        }
        let id = self.node(Op::Rechunk { x: x.node }, ArrayType { chunks, ..t }, span)?;
        self.chosen_chunks.insert(id);
        Ok(Value::Array(ArrayVal::new(id)))
    }

    /// `stack(arrays, axis)` and `concat(arrays, axis)`: NumPy's result dtype of all
    /// inputs, then one join.
    pub(super) fn join(&mut self, stack: bool, a: &Args, span: Span) -> R<Value> {
        let fname = if stack { "stack" } else { "concat" };
        let list = a.required("arrays")?;
        let items = match &list.value {
            Value::List(v) | Value::Tuple(v) => v.clone(),
            _ => return Err(expected("a list of arrays", list)),
        };
        if items.is_empty() {
            return Err(
                Diagnostic::error(codes::BAD_VALUE, format!("`{fname}` of no arrays"))
                    .label(list.span, "give at least one array"),
            );
        }
        let mut arrays = Vec::new();
        for v in items.iter() {
            match v {
                Value::Array(x) => arrays.push(x.node),
                Value::Poison => return Ok(Value::Poison),
                other => {
                    return Err(Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        format!("`{fname}` joins arrays, found {}", other.a_kind()),
                    )
                    .label(list.span, "every item must be an array"))
                }
            }
        }
        let first = self.program.ty(arrays[0]).clone();
        let ndim = first.ndim() + usize::from(stack);
        let axis = match a.get("axis") {
            Some(v) => rules::normalize_axis(get_int(v)?, ndim, v.span)?,
            None => 0,
        };
        if !stack && first.ndim() == 0 {
            return Err(
                Diagnostic::error(codes::SHAPE_MISMATCH, "`concat` of 0-d arrays")
                    .label(list.span, "use `stack` to join scalars along a new axis"),
            );
        }
        let dtype = arrays
            .iter()
            .map(|i| self.program.ty(*i).dtype)
            .reduce(crate::dtype::promote)
            .expect("at least one array");
        let mut joined = Vec::new();
        for id in arrays {
            let mut id = self.cast_node(id, dtype, span)?;
            if stack {
                let t = self.program.ty(id).clone();
                if t.shape != first.shape {
                    return Err(Diagnostic::error(
                        codes::SHAPE_MISMATCH,
                        format!(
                            "`stack` needs arrays of one shape: {} and {}",
                            fmt_shape(&first.shape),
                            fmt_shape(&t.shape)
                        ),
                    )
                    .label(list.span, "shapes differ"));
                }
                let mut shape = t.shape.clone();
                shape.insert(axis, 1);
                let mut chunks = t.chunks.clone();
                chunks.insert(axis, 1);
                id = self.node(
                    Op::Reshape { x: id },
                    ArrayType {
                        dtype,
                        shape,
                        chunks,
                    },
                    span,
                )?;
            }
            joined.push(id);
        }
        let types: Vec<ArrayType> = joined.iter().map(|i| self.program.ty(*i).clone()).collect();
        let refs: Vec<&ArrayType> = types.iter().collect();
        let spans = vec![list.span; refs.len()];
        let ty = rules::concat_type(&refs, axis, &spans)?;
        if joined.len() == 1 {
            return Ok(Value::Array(ArrayVal::new(joined[0])));
        }
        self.array_node(
            Op::Concat {
                inputs: joined,
                axis,
            },
            ty,
            span,
        )
    }

    /// `fft(x, axis)`, `ifft`, `rfft`. An axis split across chunks is first rechunked
    /// to one chunk along it (the plan shows the `rechunk` node).
    pub(super) fn fft(&mut self, name: &str, a: &Args, span: Span) -> R<Value> {
        let kind = match name {
            "fft" => FftKind::Forward,
            "ifft" => FftKind::Inverse,
            _ => FftKind::Real,
        };
        let xv = a.required("x")?;
        let Value::Array(x) = &xv.value else {
            return Err(expected("an array", xv));
        };
        let t = self.arr(x).clone();
        if t.ndim() == 0 {
            return Err(Diagnostic::error(
                codes::SHAPE_MISMATCH,
                format!("`{name}` of a 0-d array"),
            )
            .label(xv.span, "has no axis to transform"));
        }
        let axis = match a.get("axis") {
            Some(v) => rules::normalize_axis(get_int(v)?, t.ndim(), v.span)?,
            None => t.ndim() - 1,
        };
        if t.shape[axis] == 0 {
            return Err(Diagnostic::error(
                codes::BAD_VALUE,
                format!("`{name}` along axis {axis} of length 0"),
            )
            .label(xv.span, "no data points to transform"));
        }
        let dtype = rules::fft_dtype(kind, t.dtype, xv.span)?;
        let mut input = x.node;
        let mut chunks = t.chunks.clone();
        if t.chunks[axis] < t.shape[axis] {
            chunks = rules::whole_axis_chunks(&t, axis, t.dtype.size());
            input = self.node(
                Op::Rechunk { x: x.node },
                ArrayType {
                    chunks: chunks.clone(),
                    ..t.clone()
                },
                xv.span,
            )?;
        }
        let mut shape = t.shape.clone();
        if kind == FftKind::Real {
            shape[axis] = t.shape[axis] / 2 + 1;
            chunks[axis] = shape[axis];
        }
        self.array_node(
            Op::Fft {
                x: input,
                axis,
                kind,
            },
            ArrayType {
                dtype,
                shape,
                chunks,
            },
            span,
        )
    }
}
