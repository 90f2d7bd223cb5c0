//! `label(mask, connectivity=1)` and `regionprops(labels, intensity=)`. Typing rules
//! live in `check::label`; the work is done by `exec::label` and `exec::regionprops`.

use super::builtins::{bind_args, expected, get_bool, get_int, get_str, ArgVal, Args};
use super::{ArrayVal, Evaluator, TableVal, Value, R};
use crate::check::label as rules;
use crate::diag::{closest, codes, Diagnostic, Span};
use crate::ir::{Op, Sink, SinkKind};
use crate::syntax::ast::Ident;
use std::rc::Rc;

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
        )?;
        Ok(Value::Array(ArrayVal::new(id)))
    }

    pub(super) fn regionprops(&mut self, a: &Args, span: Span) -> R<Value> {
        let l = a.required("labels")?;
        let Value::Array(labels) = &l.value else {
            return Err(expected("a label array", l));
        };
        let lt = self.arr(labels).clone();
        let intensity = match a.get("intensity") {
            None
            | Some(ArgVal {
                value: Value::None, ..
            }) => None,
            Some(i) => match &i.value {
                Value::Array(x) => Some((x.node, i.span)),
                _ => return Err(expected("an array", i)),
            },
        };
        let it = intensity.map(|(n, _)| self.program.ty(n).clone());
        rules::props_check(
            &lt,
            it.as_ref(),
            l.span,
            intensity.map(|(_, s)| s).unwrap_or(span),
        )?;
        Ok(Value::Table(Rc::new(TableVal {
            labels: labels.node,
            intensity: intensity.map(|(n, _)| n),
            label: self.sources_snippet(span),
        })))
    }

    /// Add the sinks that measure `t` (printed, or written to `csv`); returns the index
    /// of the `Props` sink.
    pub(super) fn props_sinks(
        &mut self,
        t: &TableVal,
        csv: Option<(String, std::path::PathBuf)>,
        span: Span,
    ) -> usize {
        self.props_sinks_as(t, csv, false, span)
    }

    pub(super) fn props_sinks_as(
        &mut self,
        t: &TableVal,
        csv: Option<(String, std::path::PathBuf)>,
        anndata: bool,
        span: Span,
    ) -> usize {
        self.program.sinks.push(Sink {
            kind: SinkKind::Props {
                label: t.label.clone(),
                intensity: t.intensity.is_some(),
                csv,
                anndata,
            },
            node: t.labels,
            span,
        });
        let si = self.program.sinks.len() - 1;
        if let Some(i) = t.intensity {
            self.program.sinks.push(Sink {
                kind: SinkKind::PropsIntensity,
                node: i,
                span,
            });
        }
        si
    }

    pub(super) fn table_attr(&mut self, recv: Value, name: &Ident) -> R<Value> {
        match name.name.as_str() {
            "write_csv" => Ok(Value::Method(Rc::new(recv), "write_csv".into())),
            "write_table" => Ok(Value::Method(Rc::new(recv), "write_table".into())),
            other => {
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_METHOD,
                    format!("a table has no method `{other}`"),
                )
                .label(name.span, "unknown method");
                if let Some(c) = closest(other, ["write_csv", "write_table"]) {
                    d = d.help(format!("did you mean `{c}`?"));
                } else {
                    d = d.note("a table has: write_csv, write_table");
                }
                Err(d)
            }
        }
    }

    pub(super) fn table_method(
        &mut self,
        t: &Rc<TableVal>,
        name: &str,
        args: Vec<ArgVal>,
        callee_span: Span,
        call_span: Span,
    ) -> R<Value> {
        let params: &[&str] = &["path", "overwrite"];
        let slots = bind_args(name, params, args, callee_span)?;
        let a = Args {
            fname: name,
            params: params.to_vec(),
            slots,
            rest: vec![],
            callee_span,
            call_span,
        };
        let p = a.required("path")?;
        let path = get_str(p)?.to_string();
        let overwrite = match a.get("overwrite") {
            Some(o) => get_bool(o)?,
            None => false,
        };
        self.check_file_output(&path, p.span, overwrite)?;
        let resolved = self.resolve(&path);
        if let Some(dir) = resolved.parent().filter(|_| name == "write_csv") {
            if !dir.as_os_str().is_empty() && !dir.is_dir() {
                return Err(Diagnostic::error(
                    codes::PATH_NOT_FOUND,
                    format!(
                        "{}: the directory does not exist",
                        crate::diag::escape(&path)
                    ),
                )
                .label(p.span, "cannot write here"));
            }
        }
        self.props_sinks_as(t, Some((path, resolved)), name == "write_table", call_span);
        Ok(Value::None)
    }
}
