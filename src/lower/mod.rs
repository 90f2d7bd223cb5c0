//! Lowering: evaluates a script's AST into the array IR. Scalars, strings, tuples, lists,
//! regions and functions are evaluated right away (they are small and known before
//! running); every array operation adds a typed node to the IR instead of computing.
//! Loops unroll and user functions inline, so the IR holds only array ops and sinks.
//! Every node is typed when it is made (by `check`), so errors carry the span at fault.

pub mod builtins;
mod coarsen;
mod index;
pub(crate) mod kernels;
mod label;
mod ome;
mod ops;
pub mod paths;
pub mod registry;
mod rois;
pub mod script_args;
mod shape_ops;
pub mod user_code;
pub mod value;

use crate::diag::{codes, Diagnostic, Span};
use crate::io::ZarrReader;
use crate::ir::Program;
use crate::syntax::ast::{Block, Expr, ExprKind, Stmt, StmtKind};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
pub use value::{ArrayVal, Closure, ClosureBody, OverlapSpec, TableVal, Value};

pub type R<T> = Result<T, Diagnostic>;

/// Immutable, shareable scope chain (rebinding shadows; closures capture it cheaply).
#[derive(Clone, Debug, Default)]
pub struct Env(Option<Rc<EnvNode>>);

#[derive(Debug)]
pub struct EnvNode {
    name: String,
    value: Value,
    parent: Env,
}

impl Env {
    pub fn bind(&self, name: impl Into<String>, value: Value) -> Env {
        Env(Some(Rc::new(EnvNode {
            name: name.into(),
            value,
            parent: self.clone(),
        })))
    }

    pub fn lookup(&self, name: &str) -> Option<&Value> {
        let mut cur = self.0.as_ref();
        while let Some(n) = cur {
            if n.name == name {
                return Some(&n.value);
            }
            cur = n.parent.0.as_ref();
        }
        None
    }

    /// Every visible name, innermost first, without duplicates.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut cur = self.0.as_ref();
        while let Some(n) = cur {
            if seen.insert(n.name.as_str()) {
                out.push(n.name.clone());
            }
            cur = n.parent.0.as_ref();
        }
        out
    }
}

/// A scope chain is a linked list as long as the script has bindings; dropping it node by
/// node in a loop keeps a script of a million `let`s from overflowing the stack.
impl Drop for Env {
    fn drop(&mut self) {
        let mut cur = self.0.take();
        while let Some(rc) = cur {
            match Rc::try_unwrap(rc) {
                Ok(mut node) => cur = node.parent.0.take(),
                // Still shared (a closure or another scope holds it): not ours to drop.
                Err(_) => break,
            }
        }
    }
}

/// How deeply evaluation may nest (expressions inside expressions, calls inside calls):
/// each level is a few frames of the evaluator, so this bounds the stack a script can
/// use whatever its shape (100 recursive calls of a 256-deep expression would be 25,600).
const MAX_NESTING: usize = 4_000;
/// Evaluation stops with a diagnostic when less than this much stack is left, for
/// threads smaller than the command line's (an embedding program's, a test's).
const STACK_RESERVE: usize = 256 * 1024;

/// Bytes of stack left below the current frame on this thread, when the platform says.
fn stack_left() -> Option<usize> {
    thread_local! {
        static LOW: Option<usize> = stack_low();
    }
    let here = 0u8;
    let here = std::ptr::addr_of!(here) as usize;
    LOW.with(|low| low.map(|l| here.saturating_sub(l)))
}

/// The lowest address of this thread's stack.
#[cfg(target_os = "linux")]
fn stack_low() -> Option<usize> {
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread, which is then read
    // with pthread_attr_getstack and destroyed; no pointer outlives the calls.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        // The lowest page is a guard page.
        ok.then_some(addr as usize + 4096)
    }
}

#[cfg(not(target_os = "linux"))]
fn stack_low() -> Option<usize> {
    None
}

/// How deep user function calls may nest before the evaluator gives up.
const MAX_DEPTH: usize = 200;
/// Calls plus loop iterations one program may take while being checked.
const MAX_STEPS: u64 = 2_000_000;
/// IR nodes one program may create.
const MAX_NODES: usize = 2_000_000;

/// The lowering state; kept across REPL lines.
pub struct Evaluator {
    pub program: Program,
    /// Opened inputs by the path as written in the script.
    pub inputs: BTreeMap<String, Arc<ZarrReader>>,
    /// Everything reported so far (errors and warnings).
    pub diags: Vec<Diagnostic>,
    /// Top-level `let` bindings in order, for `tessera check`.
    pub bindings: Vec<(String, Value)>,
    pub env: Env,
    depth: usize,
    /// Nested `eval` calls now (bounded by `MAX_NESTING` and the stack left).
    nesting: usize,
    /// Calls and loop iterations so far in this program (bounded, so no script can
    /// make checking run forever).
    steps: u64,
    /// Output paths written by sinks so far, with the span of the write.
    pub(crate) outputs: BTreeMap<String, (Span, usize)>,
    /// Every input's identity, with the spelling it is known by and where it was opened.
    pub(crate) input_ids: Vec<(crate::io::ArrayId, String, Span)>,
    /// Every output's identity, with the spelling of its first write and that write's span.
    pub(crate) output_ids: Vec<(crate::io::ArrayId, String, Span)>,
    /// Every source text evaluated so far (spans point into it).
    pub sources: crate::diag::SourceMap,
    /// Nodes whose chunks were chosen by the data or the script (a stored array, or
    /// `chunks=`) rather than defaulted; an elementwise result takes its chunks from such an
    /// operand first, so defaults never override a chunking someone chose.
    pub(crate) chosen_chunks: std::collections::HashSet<crate::ir::NodeId>,
    /// Relative paths are resolved against this directory (the process's by default).
    pub base_dir: Option<std::path::PathBuf>,
    /// The run resumes interrupted outputs: an existing output with a completion record
    /// is not an error here (the runtime checks the record belongs to this plan).
    pub(crate) resuming: bool,
    /// Existing outputs are those of the exported run being resumed (`Engine::set_resuming_export`).
    pub(crate) resuming_export: bool,
    /// Values given for `arg(name, ...)` (`--arg name=value`), in the order given.
    pub script_args: Vec<(String, String)>,
    /// The arguments the program read so far, in the order first read.
    pub args_read: Vec<script_args::ScriptArg>,
    /// Every builtin function, kernel and method the program can call.
    pub registry: registry::Registry,
    /// The interpreter for Python block functions (`--python`); else `TESSERA_PYTHON`,
    /// else `python3`.
    pub python: Option<std::path::PathBuf>,
    /// The worker that makes check-time calls of Python functions, kept for the session.
    pub(crate) py_probe: Option<std::sync::Arc<crate::io::python::Pool>>,
    /// Python workers the run being planned will use (`Engine::run_with`); the first
    /// check-time call starts them all at once, so the run finds them running. Zero when
    /// only checking.
    pub(crate) py_prestart: usize,
    /// What those calls found.
    pub(crate) probes: user_code::ProbeCache,
}

impl Default for Evaluator {
    fn default() -> Self {
        Self::new()
    }
}

/// Result of running one statement.
enum Flow {
    Value(Option<Value>),
}

impl Evaluator {
    pub fn new() -> Evaluator {
        Evaluator {
            program: Program::default(),
            inputs: BTreeMap::new(),
            diags: Vec::new(),
            bindings: Vec::new(),
            env: Env::default(),
            depth: 0,
            nesting: 0,
            steps: 0,
            outputs: BTreeMap::new(),
            input_ids: Vec::new(),
            output_ids: Vec::new(),
            base_dir: None,
            resuming: false,
            resuming_export: false,
            script_args: Vec::new(),
            args_read: Vec::new(),
            python: None,
            py_probe: None,
            py_prestart: 0,
            probes: Default::default(),
            chosen_chunks: Default::default(),
            sources: crate::diag::SourceMap::default(),
            registry: registry::Registry::standard(),
        }
    }

    /// A script path as the file system sees it. Rebuilt from its components, so a
    /// trailing `/` or an inner `.` is gone and `OUTPUT.tessera-tmp` lands beside it.
    pub fn resolve(&self, path: &str) -> std::path::PathBuf {
        if crate::io::is_url(path) {
            // A URL is its own, normalised, location; never relative to the script.
            return std::path::PathBuf::from(crate::io::remote::normalise(path));
        }
        let p = std::path::Path::new(path);
        let p: std::path::PathBuf = p.components().collect();
        match &self.base_dir {
            Some(b) if p.is_relative() => b.join(p),
            _ => p,
        }
    }

    pub fn error_count(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }

    /// Count one unit of evaluation work, failing past the budget.
    fn step(&mut self, span: Span) -> R<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS || self.program.nodes.len() > MAX_NODES {
            return Err(Diagnostic::error(
                codes::RECURSION,
                "the script takes too many steps to check",
            )
            .label(span, "while evaluating this")
            .note(format!(
                "checking is limited to {MAX_STEPS} calls and loop iterations and {MAX_NODES} array operations"
            )));
        }
        Ok(())
    }

    /// Start a new program's budget.
    pub fn reset_budget(&mut self) {
        self.steps = 0;
    }

    /// Run top-level statements, recording bindings; returns the last expression's value.
    pub fn run_top(&mut self, stmts: &[Stmt], record: bool) -> Option<Value> {
        let mut last = None;
        for s in stmts {
            let env = self.env.clone();
            match self.exec_stmt(s, &env, record) {
                Ok((env, Flow::Value(v))) => {
                    self.env = env;
                    last = v;
                }
                Err(d) => {
                    self.diags.push(d);
                    // Keep going so every independent mistake is reported; a failed `let`
                    // binds its name to Poison so later uses stay quiet.
                    if let StmtKind::Let { name, .. } = &s.kind {
                        self.env = self.env.bind(name.name.clone(), Value::Poison);
                    }
                    last = None;
                }
            }
        }
        last
    }

    fn exec_stmt(&mut self, s: &Stmt, env: &Env, record: bool) -> R<(Env, Flow)> {
        match &s.kind {
            StmtKind::Let { name, value } => {
                let v = self.eval(value, env)?;
                if record {
                    self.bindings.push((name.name.clone(), v.clone()));
                }
                Ok((env.bind(name.name.clone(), v), Flow::Value(None)))
            }
            StmtKind::Fn { name, params, body } => {
                let mut ps = Vec::new();
                for p in params {
                    let d = match &p.default {
                        Some(e) => Some(self.eval(e, env)?),
                        None => None,
                    };
                    ps.push((p.name.name.clone(), d));
                }
                let clo = Closure {
                    name: name.name.clone(),
                    params: ps,
                    body: ClosureBody::Block(body.clone()),
                    env: env.clone(),
                };
                Ok((
                    env.bind(name.name.clone(), Value::Func(Rc::new(clo))),
                    Flow::Value(None),
                ))
            }
            StmtKind::For { var, iter, body } => {
                let it = self.eval(iter, env)?;
                let items: Rc<[Value]> = match it {
                    Value::List(v) | Value::Tuple(v) => v,
                    Value::Poison => return Ok((env.clone(), Flow::Value(None))),
                    other => {
                        return Err(Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            format!("cannot loop over {}", other.a_kind()),
                        )
                        .label(iter.span, "expected a list or tuple")
                        .help("loop over a list such as `rois(\"fovs.json\")` or `range(n)`"))
                    }
                };
                for item in items.iter() {
                    self.step(s.span)?;
                    let inner = env.bind(var.name.clone(), item.clone());
                    self.exec_block_effects(body, &inner);
                }
                Ok((env.clone(), Flow::Value(None)))
            }
            StmtKind::If { cond, then, els } => {
                let c = self.eval(cond, env)?;
                let b = self.truthy(&c, cond.span)?;
                let v = match (b, els) {
                    (Some(true), _) => self.eval_block(then, env)?,
                    (Some(false), Some(e)) => self.eval_block(e, env)?,
                    (Some(false), None) => Value::None,
                    (None, _) => Value::Poison,
                };
                Ok((env.clone(), Flow::Value(Some(v))))
            }
            StmtKind::Expr(e) => {
                let v = self.eval(e, env)?;
                Ok((env.clone(), Flow::Value(Some(v))))
            }
        }
    }

    /// Loop bodies: run for effects, reporting errors without stopping the other items.
    fn exec_block_effects(&mut self, b: &Block, env: &Env) {
        let mut env = env.clone();
        for s in &b.stmts {
            match self.exec_stmt(s, &env, false) {
                Ok((e, _)) => env = e,
                Err(d) => {
                    if !self.diags.contains(&d) {
                        self.diags.push(d);
                    }
                    return;
                }
            }
        }
    }

    /// A block's value is its last statement's value when that is an expression or `if`.
    pub fn eval_block(&mut self, b: &Block, env: &Env) -> R<Value> {
        let mut env = env.clone();
        let mut last = Value::None;
        for s in &b.stmts {
            let (e, Flow::Value(v)) = self.exec_stmt(s, &env, false)?;
            env = e;
            last = v.unwrap_or(Value::None);
        }
        Ok(last)
    }

    /// Python truthiness for scalars; `None` when the value is poisoned.
    fn truthy(&self, v: &Value, span: Span) -> R<Option<bool>> {
        Ok(Some(match v {
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::None => false,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) | Value::Tuple(l) => !l.is_empty(),
            Value::Poison => return Ok(None),
            Value::Array(_) => {
                return Err(Diagnostic::error(
                    codes::BAD_CONDITION,
                    "the truth value of an array is not known before running",
                )
                .label(span, "this is an array")
                .help("conditions must be scalars known at check time; use `where(cond, a, b)` for elementwise choice"))
            }
            other => {
                return Err(Diagnostic::error(
                    codes::BAD_CONDITION,
                    format!("{} cannot be used as a condition", other.a_kind()),
                )
                .label(span, "expected a bool"))
            }
        }))
    }

    pub fn eval(&mut self, e: &Expr, env: &Env) -> R<Value> {
        let low_stack = stack_left().is_some_and(|left| left < STACK_RESERVE);
        if self.nesting >= MAX_NESTING || low_stack {
            return Err(Diagnostic::error(
                codes::RECURSION,
                "expressions and calls nest too deeply to evaluate",
            )
            .label(e.span, "while evaluating this")
            .note(format!(
                "evaluation nests at most {MAX_NESTING} levels (each nested expression and each call is one)"
            ))
            .help("split deep expressions with `let`, or recurse less deeply"));
        }
        self.nesting += 1;
        let r = self.eval_expr(e, env);
        self.nesting -= 1;
        r
    }

    fn eval_expr(&mut self, e: &Expr, env: &Env) -> R<Value> {
        match &e.kind {
            ExprKind::Int(i) => Ok(Value::Int(*i)),
            ExprKind::Float(f) => Ok(Value::Float(*f)),
            ExprKind::Str(s) => Ok(Value::Str(s.as_str().into())),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::None => Ok(Value::None),
            ExprKind::Ellipsis => Ok(Value::Ellipsis),
            ExprKind::Name(n) => self.lookup(n, e.span, env),
            ExprKind::Unary { op, expr } => {
                let v = self.eval(expr, env)?;
                self.unary(*op, v, e.span)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                use crate::syntax::ast::BinOp;
                if matches!(op, BinOp::And | BinOp::Or) {
                    let a = self.eval(lhs, env)?;
                    if matches!(a, Value::Array(_)) {
                        return Err(ops::array_logic_error(*op, lhs.span));
                    }
                    let Some(t) = self.truthy(&a, lhs.span)? else {
                        return Ok(Value::Poison);
                    };
                    // Python: `a and b` is a when a is falsy, else b.
                    return if (*op == BinOp::And) == t {
                        let b = self.eval(rhs, env)?;
                        if matches!(b, Value::Array(_)) {
                            return Err(ops::array_logic_error(*op, rhs.span));
                        }
                        Ok(b)
                    } else {
                        Ok(a)
                    };
                }
                let a = self.eval(lhs, env)?;
                let b = self.eval(rhs, env)?;
                self.binary(*op, a, b, lhs.span, rhs.span, e.span)
            }
            ExprKind::Call { func, args } => {
                let f = self.eval(func, env)?;
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    let v = self.eval(&a.value, env)?;
                    vals.push(builtins::ArgVal {
                        name: a.name.clone(),
                        value: v,
                        span: a.value.span,
                    });
                }
                let callee_span = match &func.kind {
                    ExprKind::Attr { name, .. } => name.span,
                    _ => func.span,
                };
                self.call(f, vals, callee_span, e.span)
            }
            ExprKind::Attr { recv, name } => {
                let r = self.eval(recv, env)?;
                self.attr(r, name, recv.span)
            }
            ExprKind::Index { recv, items } => {
                let r = self.eval(recv, env)?;
                let mut vals = Vec::new();
                for it in items {
                    vals.push((self.eval(it, env)?, it.span));
                }
                self.index(r, vals, recv.span, e.span)
            }
            ExprKind::Slice { start, stop, step } => {
                let mut part = |x: &Option<Box<Expr>>| -> R<Option<i64>> {
                    match x {
                        None => Ok(None),
                        Some(x) => match self.eval(x, env)? {
                            Value::Int(i) => Ok(Some(i)),
                            Value::None => Ok(None),
                            other => Err(Diagnostic::error(
                                codes::TYPE_MISMATCH,
                                format!("slice bounds must be integers, not {}", other.kind_name()),
                            )
                            .label(x.span, "expected an int")),
                        },
                    }
                };
                let a = part(start)?;
                let b = part(stop)?;
                let c = part(step)?;
                Ok(Value::Slice(a, b, c))
            }
            ExprKind::Tuple(items) => {
                let mut v = Vec::with_capacity(items.len());
                for it in items {
                    v.push(self.eval(it, env)?);
                }
                Ok(Value::Tuple(v.into()))
            }
            ExprKind::List(items) => {
                let mut v = Vec::with_capacity(items.len());
                for it in items {
                    v.push(self.eval(it, env)?);
                }
                Ok(Value::List(v.into()))
            }
            ExprKind::Lambda { params, body } => Ok(Value::Func(Rc::new(Closure {
                name: "lambda".into(),
                params: params.iter().map(|p| (p.name.clone(), None)).collect(),
                body: ClosureBody::Expr((**body).clone()),
                env: env.clone(),
            }))),
        }
    }

    fn lookup(&self, name: &str, span: Span, env: &Env) -> R<Value> {
        if let Some(v) = env.lookup(name) {
            return Ok(v.clone());
        }
        if let Some(b) = self.registry.function(name) {
            return Ok(Value::Builtin(b.clone()));
        }
        let mut candidates = env.names();
        candidates.extend(self.registry.functions().map(|b| b.name.clone()));
        let mut d = Diagnostic::error(codes::UNKNOWN_NAME, format!("unknown name `{name}`"))
            .label(span, "not defined here");
        if let Some(c) = crate::diag::closest(name, candidates.iter().map(|s| s.as_str())) {
            d = d.help(format!("did you mean `{c}`?"));
        }
        Err(d)
    }

    /// Call a user function with already-bound arguments.
    pub fn call_closure(
        &mut self,
        clo: &Rc<Closure>,
        args: Vec<builtins::ArgVal>,
        callee_span: Span,
        call_span: Span,
    ) -> R<Value> {
        let names: Vec<&str> = clo.params.iter().map(|(n, _)| n.as_str()).collect();
        let bound = builtins::bind_args(&clo.name, &names, args, callee_span)?;
        let mut env = clo.env.clone();
        if clo.name != "lambda" {
            env = env.bind(clo.name.clone(), Value::Func(clo.clone()));
        }
        for (i, (pname, default)) in clo.params.iter().enumerate() {
            let v = match &bound[i] {
                Some(a) => a.value.clone(),
                None => match default {
                    Some(d) => d.clone(),
                    None => {
                        return Err(Diagnostic::error(
                            codes::ARITY,
                            format!("`{}` is missing the argument `{pname}`", clo.name),
                        )
                        .label(call_span, format!("`{pname}` is not given")))
                    }
                },
            };
            env = env.bind(pname.clone(), v);
        }
        self.step(call_span)?;
        if self.depth >= MAX_DEPTH {
            return Err(Diagnostic::error(
                codes::RECURSION,
                format!("calls nest deeper than {MAX_DEPTH} levels"),
            )
            .label(call_span, "in this call")
            .help("a recursive function needs a condition that stops it"));
        }
        self.depth += 1;
        let r = match &clo.body {
            ClosureBody::Block(b) => self.eval_block(b, &env),
            ClosureBody::Expr(e) => self.eval(e, &env),
        };
        self.depth -= 1;
        r
    }
}

/// Human-readable byte count (`1.50 MiB`).
pub fn human(n: u64) -> String {
    builtins::human_bytes(n)
}

/// A storage error as a diagnostic pointing at `span`.
pub fn io_diag_at(
    e: &crate::io::IoError,
    span: Span,
    shown: &str,
    resolved: &std::path::Path,
) -> Diagnostic {
    builtins::io_diag_shown(e, span, Some((shown, resolved)))
}
