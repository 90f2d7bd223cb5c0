//! `x.coarsen(factors, reduce="mean", trim=false)`: argument checks with spans, then one
//! `Op::Coarsen` node (typing rule in `check::coarsen`).

use super::builtins::{expected, get_bool, get_str, Args};
use super::{ArrayVal, Evaluator, Value, R};
use crate::check::coarsen as rules;
use crate::diag::{closest, codes, Diagnostic, Span};
use crate::ir::{CoarsenMethod, Op};

impl Evaluator {
    pub(super) fn coarsen(&mut self, x: ArrayVal, a: &Args, span: Span) -> R<Value> {
        let t = self.arr(&x).clone();
        let f = a.required("factors")?;
        let given = factor_ints(&f.value, f.span)?;
        let factors = rules::coarsen_factors(&given, t.ndim(), f.span)?;
        let (method, method_span) = match a.get("reduce") {
            None => (CoarsenMethod::Mean, span),
            Some(m) => {
                let Value::Str(_) = &m.value else {
                    return Err(expected("a reduction name", m));
                };
                let name = get_str(m)?;
                let Some(method) = CoarsenMethod::parse(&name) else {
                    let names: Vec<&str> = CoarsenMethod::ALL.iter().map(|m| m.name()).collect();
                    let mut d = Diagnostic::error(
                        codes::COARSEN_METHOD,
                        format!("unknown coarsen reduction {name:?}"),
                    )
                    .label(m.span, "not a reduction")
                    .note(format!("reductions: {}", names.join(" ")));
                    if let Some(c) = closest(&name, names.iter().copied()) {
                        d = d.help(format!("did you mean \"{c}\"?"));
                    }
                    return Err(d);
                };
                (method, m.span)
            }
        };
        let trim = match a.get("trim") {
            Some(v) => get_bool(v)?,
            None => false,
        };
        let ty = rules::coarsen_type(&t, &factors, method, trim, method_span, f.span)?;
        let id = self.node(
            Op::Coarsen {
                x: x.node,
                factors,
                method,
                trim,
            },
            ty,
            span,
        )?;
        Ok(Value::Array(ArrayVal::new(id)))
    }
}

/// The factors as written: an int or a tuple/list of ints; anything else (a float, a
/// string) is E0215 naming it.
fn factor_ints(v: &Value, span: Span) -> R<Vec<i64>> {
    let one = |v: &Value| match v {
        Value::Int(i) => Ok(*i),
        Value::Float(x) => Err(Diagnostic::error(
            codes::COARSEN_FACTOR_TYPE,
            format!("coarsen factor {x} is not an integer"),
        )
        .label(span, "factors are whole numbers of elements per block")
        .help(
            "coarsen reduces blocks of whole elements; to resample by other factors, interpolate",
        )),
        other => Err(Diagnostic::error(
            codes::COARSEN_FACTOR_TYPE,
            format!("coarsen factors must be integers, found {}", other.a_kind()),
        )
        .label(span, "an int, or a tuple of one int per axis")),
    };
    match v {
        Value::Tuple(t) | Value::List(t) => t.iter().map(one).collect(),
        other => one(other).map(|i| vec![i]),
    }
}
