//! Indexing with NumPy's basic-indexing semantics (ints, slices with steps and negative
//! bounds, `none`, `...`), on arrays and on tuples and lists.

use super::{ArrayVal, Evaluator, Value, R};
use crate::diag::{codes, Diagnostic, Span};
use crate::ir::{ArrayType, AxisIndex, Op};

/// Python's `slice.indices(n)`: (start, step, len).
pub fn slice_indices(
    start: Option<i64>,
    stop: Option<i64>,
    step: Option<i64>,
    n: u64,
) -> Option<(i64, i64, u64)> {
    let n = n as i64;
    let step = step.unwrap_or(1);
    if step == 0 {
        return None;
    }
    let (lower, upper) = if step > 0 { (0, n) } else { (-1, n - 1) };
    let norm = |v: Option<i64>, default: i64| match v {
        None => default,
        Some(v) if v < 0 => (v + n).max(lower),
        Some(v) => v.min(upper),
    };
    let s = norm(start, if step > 0 { lower } else { upper });
    let e = norm(stop, if step > 0 { upper } else { lower });
    // In i128: `e - s + step` overflows i64 for steps near 2^63.
    let (s128, e128, st) = (s as i128, e as i128, step as i128);
    let len = if step > 0 {
        if e128 > s128 {
            (e128 - s128 + st - 1) / st
        } else {
            0
        }
    } else if s128 > e128 {
        (s128 - e128 - st - 1) / -st
    } else {
        0
    };
    Some((s, step, len as u64))
}

fn zero_step(span: Span) -> Diagnostic {
    Diagnostic::error(codes::BAD_VALUE, "slice step cannot be zero").label(span, "step is 0")
}

impl Evaluator {
    pub(super) fn index(
        &mut self,
        recv: Value,
        items: Vec<(Value, Span)>,
        recv_span: Span,
        span: Span,
    ) -> R<Value> {
        if items.iter().any(|(v, _)| matches!(v, Value::Poison)) {
            return Ok(Value::Poison);
        }
        match recv {
            Value::Poison => Ok(Value::Poison),
            Value::Array(a) => self.index_array(a, items, span),
            Value::Tuple(t) | Value::List(t) => {
                if items.len() != 1 {
                    return Err(Diagnostic::error(
                        codes::BAD_INDEX,
                        "tuples and lists take one index",
                    )
                    .label(span, format!("{} indices given", items.len())));
                }
                let (ix, ispan) = &items[0];
                let n = t.len() as u64;
                match ix {
                    Value::Int(i) => {
                        let j = if *i < 0 { *i + n as i64 } else { *i };
                        if j < 0 || j as u64 >= n {
                            return Err(Diagnostic::error(
                                codes::OUT_OF_BOUNDS,
                                format!("index {i} is out of range for a sequence of length {n}"),
                            )
                            .label(*ispan, "out of range"));
                        }
                        Ok(t[j as usize].clone())
                    }
                    Value::Slice(a, b, c) => {
                        let (s, step, len) =
                            slice_indices(*a, *b, *c, n).ok_or_else(|| zero_step(*ispan))?;
                        let v: Vec<Value> = (0..len as i64)
                            .map(|k| t[(s + k * step) as usize].clone())
                            .collect();
                        Ok(Value::Tuple(v.into()))
                    }
                    other => Err(Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        format!(
                            "a sequence index must be an int or slice, not {}",
                            other.kind_name()
                        ),
                    )
                    .label(*ispan, "expected an int")),
                }
            }
            other => Err(Diagnostic::error(
                codes::TYPE_MISMATCH,
                format!("{} cannot be indexed", other.a_kind()),
            )
            .label(recv_span, format!("this is {}", other.a_kind()))),
        }
    }

    fn index_array(&mut self, a: ArrayVal, items: Vec<(Value, Span)>, span: Span) -> R<Value> {
        // `x[roi]` with a region tuple means the same as writing its items.
        let items: Vec<(Value, Span)> = if items.len() == 1 {
            match &items[0].0 {
                Value::Tuple(t) => t.iter().map(|v| (v.clone(), items[0].1)).collect(),
                _ => items,
            }
        } else {
            items
        };
        let t = self.arr(&a).clone();
        let ndim = t.ndim();
        let mut consumed = 0;
        let mut ellipses = 0;
        for (v, s) in &items {
            match v {
                Value::Int(_) | Value::Slice(..) => consumed += 1,
                Value::None => {}
                Value::Ellipsis => {
                    ellipses += 1;
                    if ellipses > 1 {
                        return Err(Diagnostic::error(
                            codes::BAD_INDEX,
                            "an index can only have a single `...`",
                        )
                        .label(*s, "second `...`"));
                    }
                }
                other => {
                    return Err(Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        format!(
                            "an array index must be an int, slice, `none` or `...`, not {}",
                            other.a_kind()
                        ),
                    )
                    .label(*s, "unsupported index"))
                }
            }
        }
        if consumed > ndim {
            return Err(Diagnostic::error(
                codes::BAD_INDEX,
                format!("too many indices: the array has {ndim} axes but {consumed} were indexed"),
            )
            .label(
                span,
                format!("shape is {}", crate::geom::fmt_shape(&t.shape)),
            ));
        }
        let mut axes = Vec::new();
        let mut shape = Vec::new();
        let mut chunks = Vec::new();
        let mut ax = 0usize;
        let full = |ax: usize| AxisIndex::Range {
            start: 0,
            step: 1,
            len: t.shape[ax],
        };
        for (v, s) in &items {
            match v {
                Value::Ellipsis => {
                    for _ in 0..(ndim - consumed) {
                        axes.push(full(ax));
                        shape.push(t.shape[ax]);
                        chunks.push(t.chunks[ax]);
                        ax += 1;
                    }
                }
                Value::None => {
                    axes.push(AxisIndex::NewAxis);
                    shape.push(1);
                    chunks.push(1);
                }
                Value::Int(i) => {
                    let n = t.shape[ax] as i64;
                    let j = if *i < 0 { *i + n } else { *i };
                    if j < 0 || j >= n {
                        return Err(Diagnostic::error(
                            codes::OUT_OF_BOUNDS,
                            format!("index {i} is out of bounds for axis {ax} with size {n}"),
                        )
                        .label(*s, "out of bounds"));
                    }
                    axes.push(AxisIndex::Int(j as u64));
                    ax += 1;
                }
                Value::Slice(b, e, st) => {
                    let (start, step, len) =
                        slice_indices(*b, *e, *st, t.shape[ax]).ok_or_else(|| zero_step(*s))?;
                    axes.push(AxisIndex::Range {
                        start: if len == 0 { 0 } else { start as u64 },
                        step,
                        len,
                    });
                    shape.push(len);
                    let c = t.chunks[ax].div_ceil(step.unsigned_abs());
                    chunks.push(c.min(len).max(1));
                    ax += 1;
                }
                _ => unreachable!(),
            }
        }
        while ax < ndim {
            axes.push(full(ax));
            shape.push(t.shape[ax]);
            chunks.push(t.chunks[ax]);
            ax += 1;
        }
        let identity = axes.len() == ndim && axes.iter().enumerate().all(|(i, x)| *x == full(i));
        if identity {
            return Ok(Value::Array(ArrayVal::new(a.node)));
        }
        let id = self.node(
            Op::Index { x: a.node, axes },
            ArrayType {
                dtype: t.dtype,
                shape,
                chunks,
            },
            span,
        )?;
        Ok(Value::Array(ArrayVal::new(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::slice_indices;

    #[test]
    fn python_slice_semantics() {
        assert_eq!(slice_indices(None, None, None, 10), Some((0, 1, 10)));
        assert_eq!(slice_indices(Some(3), Some(-2), None, 10), Some((3, 1, 5)));
        assert_eq!(slice_indices(None, None, Some(-1), 10), Some((9, -1, 10)));
        assert_eq!(slice_indices(None, None, Some(2), 5), Some((0, 2, 3)));
        assert_eq!(
            slice_indices(Some(8), Some(2), Some(-3), 10),
            Some((8, -3, 2))
        );
        assert_eq!(slice_indices(Some(20), None, None, 10), Some((10, 1, 0)));
        assert_eq!(slice_indices(None, None, Some(0), 10), None);
    }
}
