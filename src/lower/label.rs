//! `label(mask, connectivity=1)` and `regionprops(labels, intensity=)`. Typing rules
//! live in `check::label`; the work is done by `exec::label` and `exec::regionprops`.

use super::builtins::{expected, get_int, Args};
use super::{ArrayVal, Evaluator, Value, R};
use crate::check::label as rules;
use crate::diag::Span;
use crate::ir::Op;

impl Evaluator {
    pub(super) fn label(&mut self, a: &Args, span: Span) -> R<Value> {
        let m = a.required("mask")?;
        let Value::Array(mask) = &m.value else {
            return Err(expected("an array", m));
        };
        let t = self.arr(mask).clone();
        let (conn, conn_span) = match a.get("connectivity") {
            Some(c) => (get_int(c)?, c.span),
            None => (1, m.span),
        };
        let ty = rules::label_type(&t, conn, m.span, conn_span)?;
        let id = self.node(
            Op::Label {
                x: mask.node,
                connectivity: conn as usize,
            },
            ty,
            span,
        );
        Ok(Value::Array(ArrayVal::new(id)))
    }
}
