//! Session evaluation for the REPL, as `impl Engine` blocks: an entry evaluator that also
//! returns the final value (and its elements when small), throwaway lowering of one
//! expression for commands (`:type`, `:plan`, `:show`), and running a program built
//! for one array. Everything undoes its traces in the session when it is done.

use super::complete::{Kind, Names};
use crate::data::Buf;
use crate::diag::{codes, Diagnostic, Span};
use crate::exec::{RunOptions, RunOutput, Safeguards};
use crate::ir::{Program, Sink, SinkKind};
use crate::lower::{ArrayVal, Value};
use crate::syntax::ast::StmtKind;
use crate::Engine;

/// Arrays with at most this many elements print their values.
pub(crate) const SMALL: u64 = 1000;
/// A small result that needs more than this read from storage prints a summary
/// instead; `values()` computes it anyway.
pub(crate) const AUTO_READ_LIMIT: u64 = 1 << 30;

/// What evaluating one entry produced.
pub(crate) struct Outcome {
    /// Lines printed by `print`.
    pub printed: Vec<String>,
    pub warnings: Vec<Diagnostic>,
    /// The value of a final expression statement.
    pub value: Option<Value>,
    /// Its elements, when it is an array small enough to show (or `values()`).
    pub elements: Option<Buf>,
    pub tasks: u64,
}

/// One expression lowered for a command, before the session forgets it.
pub(crate) struct Lowered {
    pub value: Value,
    pub span: Span,
    /// Sinks the expression added (`x.write(...)`, `print(x.values())`).
    pub sinks: Vec<Sink>,
}

/// Python-like text of a value: strings quoted, everything else as the language prints.
pub(crate) fn repr(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("{:?}", &**s),
        other => other.to_string(),
    }
}

impl Engine {
    /// Evaluate one entry in the session, as `eval_line` does (bindings persist, sinks run,
    /// an entry with errors is undone), returning the final expression's value too. A
    /// small array result gets its elements computed in the same run.
    pub(crate) fn eval_entry(
        &mut self,
        name: &str,
        src: &str,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> Result<Outcome, Vec<Diagnostic>> {
        let (script, last, mut program, warnings) = self.lower_entry(name, src)?;
        // An `if` at the end has a value too (`if a { "x" } else { "y" }`).
        let value = match script.stmts.last() {
            Some(s) => match &s.kind {
                StmtKind::Expr(e) => last.map(|v| (v, e.span)),
                StmtKind::If { .. } => last.map(|v| (v, s.span)),
                _ => None,
            },
            None => None,
        };
        let mut wanted = None;
        if let Some((Value::Array(a), span)) = &value {
            if self.wants_elements(a, *span, opts, guards) {
                program.sinks.push(Sink {
                    kind: SinkKind::PrintValues {
                        label: self.ev.sources.snippet(*span).to_string(),
                    },
                    node: a.node,
                    span: *span,
                });
                wanted = Some(program.sinks.len() - 1);
            }
        }
        // A table shows its rows: measure it now, as `print(table)` would.
        let mut value = value;
        if let Some((Value::Table(t), span)) = &value {
            program.sinks.push(Sink {
                kind: SinkKind::Props {
                    label: t.label.clone(),
                    intensity: t.intensity.is_some(),
                    csv: None,
                    anndata: false,
                },
                node: t.labels,
                span: *span,
            });
            let si = program.sinks.len() - 1;
            if let Some(i) = t.intensity {
                program.sinks.push(Sink {
                    kind: SinkKind::PropsIntensity,
                    node: i,
                    span: *span,
                });
            }
            program.effects.push(crate::ir::Effect {
                pieces: vec![crate::ir::PrintPiece::Values(si)],
            });
            value = None;
        }
        let mut printed = Vec::new();
        let mut elements = None;
        let mut tasks = 0;
        if !program.sinks.is_empty() || !program.effects.is_empty() {
            let (program, mut out) = self.run_program(program, src, opts, guards)?;
            tasks = out.tasks_run;
            printed = crate::driver::render_effects(&program, &out);
            elements = wanted.and_then(|i| out.values.get_mut(i).and_then(Option::take));
        }
        Ok(Outcome {
            printed,
            warnings,
            value: value.map(|(v, _)| v),
            elements,
            tasks,
        })
    }

    /// Should the REPL show this array's elements rather than a summary?
    fn wants_elements(
        &self,
        a: &ArrayVal,
        span: Span,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> bool {
        if a.materialize {
            return true;
        }
        let t = self.ev.program.ty(a.node);
        if t.size() > SMALL {
            return false;
        }
        let p = self.program_for(vec![values_sink(a, span, String::new())]);
        let c = self.compile_program(p, "", Vec::new(), opts, &plan_only(guards));
        c.plan.stages.iter().map(|s| s.bytes_read).sum::<u64>() <= AUTO_READ_LIMIT
    }

    /// The session's nodes with exactly these sinks and no effects.
    pub(crate) fn program_for(&self, sinks: Vec<Sink>) -> Program {
        let mut p = self.ev.program.clone();
        p.sinks = sinks;
        p.effects.clear();
        p
    }

    /// Compile a program of the session's nodes (`src`: the entry it comes from) and
    /// execute it against the session's opened inputs, with the safeguards of a script.
    pub(crate) fn run_program(
        &self,
        program: Program,
        src: &str,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> Result<(Program, RunOutput), Vec<Diagnostic>> {
        let compiled = self.compile_program(program, src, Vec::new(), opts, guards);
        let out = self.execute_output(&compiled)?;
        Ok((compiled.program, out))
    }

    /// Compute every element of one array.
    pub(crate) fn elements_of(
        &self,
        a: &ArrayVal,
        span: Span,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> Result<Buf, Vec<Diagnostic>> {
        let label = self.ev.sources.snippet(span).to_string();
        let p = self.program_for(vec![values_sink(a, span, label.clone())]);
        let (_, mut out) = self.run_program(p, &label, opts, guards)?;
        out.values.get_mut(0).and_then(Option::take).ok_or_else(|| {
            vec![Diagnostic::error(
                codes::INTERNAL,
                "internal error: the run returned no values",
            )]
        })
    }

    /// Lower one expression for a command and hand it to `f`; afterwards the session is
    /// as before (no new nodes, sinks, effects or outputs). Returns `f`'s result and the
    /// warnings lowering gave.
    pub(crate) fn with_expr<T>(
        &mut self,
        src: &str,
        f: impl FnOnce(&mut Engine, Lowered) -> Result<T, Vec<Diagnostic>>,
    ) -> Result<(T, Vec<Diagnostic>), Vec<Diagnostic>> {
        let n = self.ev.sources.len();
        let id = self.ev.sources.add(format!("<repl:{n}>"), src);
        let script = crate::syntax::parse(src, id)?;
        let expr = match &script.stmts[..] {
            [s] => match &s.kind {
                StmtKind::Expr(e) => e.clone(),
                _ => return Err(vec![not_an_expression().label(s.span, "not an expression")]),
            },
            [] => return Err(vec![not_an_expression()]),
            [_, s, ..] => {
                return Err(vec![not_an_expression().label(s.span, "a second statement")])
            }
        };
        let nodes0 = self.ev.program.nodes.len();
        let (sinks0, effects0) = (self.ev.program.sinks.len(), self.ev.program.effects.len());
        let outputs0 = std::mem::take(&mut self.ev.outputs);
        let env0 = self.ev.env.clone();
        self.ev.diags.clear();
        let r = self.ev.eval(&expr, &env0);
        let result = match r {
            Err(d) => {
                self.ev.diags.push(d);
                Err(std::mem::take(&mut self.ev.diags))
            }
            Ok(_) if self.ev.error_count() > 0 => Err(std::mem::take(&mut self.ev.diags)),
            Ok(value) => {
                let warnings = std::mem::take(&mut self.ev.diags);
                let sinks = self.ev.program.sinks[sinks0..].to_vec();
                let lowered = Lowered {
                    value,
                    span: expr.span,
                    sinks,
                };
                f(self, lowered).map(|t| (t, warnings))
            }
        };
        self.ev.env = env0;
        self.ev.program.sinks.truncate(sinks0);
        self.ev.program.effects.truncate(effects0);
        self.ev.program.nodes.truncate(nodes0);
        self.ev.outputs = outputs0;
        self.ev.diags.clear();
        result
    }

    /// A write sink for `a` made by the language's own `write` (so every option gets its
    /// checked default) to a scratch path that is never created; `label` replaces the
    /// path in printed plans. The session keeps no trace of it.
    pub(crate) fn scratch_write(
        &mut self,
        a: &ArrayVal,
        label: &str,
    ) -> Result<Sink, Vec<Diagnostic>> {
        let dir = std::env::temp_dir();
        let mut k = 0u32;
        let path = loop {
            let p = dir.join(format!("tessera-repl-{}-{k}.zarr", std::process::id()));
            if !p.exists() || k > 1000 {
                break p;
            }
            k += 1;
        };
        let src = "__repl_value.write(__repl_path)";
        let n = self.ev.sources.len();
        let id = self.ev.sources.add(format!("<repl:{n}>"), src);
        let script = crate::syntax::parse(src, id)?;
        let Some(StmtKind::Expr(e)) = script.stmts.first().map(|s| &s.kind) else {
            return Err(vec![Diagnostic::error(
                codes::INTERNAL,
                "internal error: cannot build the scratch write",
            )]);
        };
        let env = self
            .ev
            .env
            .bind("__repl_value", Value::Array(a.clone()))
            .bind("__repl_path", Value::Str(path.to_string_lossy().into()));
        let sinks0 = self.ev.program.sinks.len();
        let outputs0 = std::mem::take(&mut self.ev.outputs);
        let r = self.ev.eval(e, &env);
        let sink = self.ev.program.sinks.get(sinks0).cloned();
        self.ev.program.sinks.truncate(sinks0);
        self.ev.outputs = outputs0;
        if let Err(d) = r {
            return Err(vec![d]);
        }
        let mut sink = sink.ok_or_else(|| {
            vec![Diagnostic::error(
                codes::INTERNAL,
                "internal error: write made no sink",
            )]
        })?;
        if let SinkKind::Write(w) = &mut sink.kind {
            w.path = label.to_string();
        }
        Ok(sink)
    }

    /// The session's bindings for completion.
    pub(crate) fn session_names(&self) -> Names {
        let entries = self
            .ev
            .env
            .names()
            .into_iter()
            .map(|n| {
                let kind = match self.ev.env.lookup(&n) {
                    Some(Value::Array(_)) => Kind::Array,
                    Some(Value::Func(c)) => Kind::Func(
                        c.params
                            .iter()
                            .map(|(p, d)| (p.clone(), d.as_ref().map(repr)))
                            .collect(),
                    ),
                    _ => Kind::Other,
                };
                (n, kind)
            })
            .collect();
        Names {
            entries,
            registry: self.ev.registry.clone(),
        }
    }

    /// How `:type` describes a value (as `tessera check` describes bindings).
    pub(crate) fn describe(&self, v: &Value) -> String {
        match v {
            Value::Array(a) => crate::ir::type_summary(&self.ev.program, a.node),
            Value::Int(_) => format!("int = {v}"),
            Value::Float(_) => format!("float = {v}"),
            Value::Bool(_) => format!("bool = {v}"),
            Value::Str(_) => format!("str = {}", repr(v)),
            Value::None => "none".into(),
            Value::Tuple(_) => format!("{} = {v}", v.kind_name()),
            Value::List(l) => format!("list[{}] = {v}", l.len()),
            Value::Func(c) => format!("fn {}", fn_signature(c)),
            Value::Builtin(d) => format!("builtin {}", d.signature),
            Value::Kernel(_) => format!("kernel {v}"),
            Value::Poison => "error".into(),
            other => format!("{} = {other}", other.kind_name()),
        }
    }
}

/// `name(a, b=1.0)` for a user function.
pub(crate) fn fn_signature(c: &crate::lower::Closure) -> String {
    let ps: Vec<String> = c
        .params
        .iter()
        .map(|(n, d)| match d {
            Some(d) => format!("{n}={}", repr(d)),
            None => n.clone(),
        })
        .collect();
    format!("{}({})", c.name, ps.join(", "))
}

fn not_an_expression() -> Diagnostic {
    Diagnostic::error(codes::PARSE, "expected one expression")
        .help(":type, :plan, :explain and :show take one expression, e.g. `:type x[0]`")
}

fn values_sink(a: &ArrayVal, span: Span, label: String) -> Sink {
    Sink {
        kind: SinkKind::PrintValues { label },
        node: a.node,
        span,
    }
}

/// The safeguards of `guards` for a plan that is only looked at, never run: no
/// completion records to identify it for.
pub(crate) fn plan_only(guards: &Safeguards) -> Safeguards {
    Safeguards {
        record: false,
        resume: false,
        ..guards.clone()
    }
}
