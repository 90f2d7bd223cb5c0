//! Values of the evaluator: scalars, strings, tuples, lists, regions, functions, kernels and
//! lazy arrays (an IR node plus an optional overlap request).

use crate::ir::{Boundary, Kernel, NodeId};
use crate::syntax::ast::{Block, Expr};
use std::fmt;
use std::rc::Rc;

/// A halo request made by `overlap(depth, boundary=...)`, consumed by `map`.
#[derive(Clone, Debug, PartialEq)]
pub struct OverlapSpec {
    pub depth: Vec<u64>,
    pub boundary: Boundary,
}

#[derive(Clone, Debug)]
pub struct ArrayVal {
    pub node: NodeId,
    pub overlap: Option<Rc<OverlapSpec>>,
    /// Set by `values()`: printing shows the elements, not a summary.
    pub materialize: bool,
}

impl ArrayVal {
    pub fn new(node: NodeId) -> ArrayVal {
        ArrayVal {
            node,
            overlap: None,
            materialize: false,
        }
    }
}

/// `regionprops(labels, intensity=)`: what the table is measured from.
#[derive(Clone, Debug)]
pub struct TableVal {
    pub labels: NodeId,
    pub intensity: Option<NodeId>,
    /// The call as written, for plans and progress.
    pub label: String,
}

/// A user function or lambda with the environment it was defined in.
#[derive(Debug)]
pub struct Closure {
    pub name: String,
    pub params: Vec<(String, Option<Value>)>,
    pub body: ClosureBody,
    pub env: super::Env,
}

#[derive(Debug)]
pub enum ClosureBody {
    Block(Block),
    Expr(Expr),
}

#[derive(Clone, Debug)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Tuple(Rc<[Value]>),
    List(Rc<[Value]>),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Ellipsis,
    Array(ArrayVal),
    Func(Rc<Closure>),
    /// A registry entry (function or kernel constructor), waiting for its call.
    Builtin(Rc<super::registry::Builtin>),
    /// A method looked up on a receiver, waiting for its call.
    Method(Rc<Value>, Rc<str>),
    Kernel(Rc<Kernel>),
    /// A Python block function (`python("file.py:func")`).
    PyFunc(std::sync::Arc<crate::ir::PyFunc>),
    /// A table of region measurements (`regionprops`), computed when printed or written.
    Table(Rc<TableVal>),
    /// The result of an expression that already reported an error; using it reports
    /// nothing more, so one mistake gives one diagnostic.
    Poison,
}

impl Value {
    /// The kind with its article, for messages ("an int", "a region").
    pub fn a_kind(&self) -> String {
        let k = self.kind_name();
        let article = if k.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {k}")
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::None => "none",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Tuple(t) if t.iter().any(|v| matches!(v, Value::Slice(..))) => "region",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Slice(..) => "slice",
            Value::Ellipsis => "ellipsis",
            Value::Array(_) => "array",
            Value::Func(_) | Value::Builtin(_) | Value::Method(..) | Value::PyFunc(_) => "function",
            Value::Kernel(_) => "kernel",
            Value::Table(_) => "table",
            Value::Poison => "error",
        }
    }
}

fn fmt_opt(v: &Option<i64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// Python-like display of scalars and containers (arrays print via the evaluator).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => f.write_str("none"),
            Value::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{}", fmt_float(*x)),
            Value::Str(s) => f.write_str(s),
            Value::Tuple(items) => {
                f.write_str("(")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_repr(f, v)?;
                }
                if items.len() == 1 {
                    f.write_str(",")?;
                }
                f.write_str(")")
            }
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_repr(f, v)?;
                }
                f.write_str("]")
            }
            Value::Slice(a, b, c) => {
                write!(f, "{}:{}", fmt_opt(a), fmt_opt(b))?;
                if let Some(c) = c {
                    write!(f, ":{c}")?;
                }
                Ok(())
            }
            Value::Ellipsis => f.write_str("..."),
            Value::Array(a) => write!(f, "<array {}>", a.node),
            Value::Func(c) => write!(f, "<fn {}>", c.name),
            Value::Builtin(b) => write!(f, "<builtin {}>", b.name),
            Value::Method(_, n) => write!(f, "<method {n}>"),
            Value::Kernel(k) => {
                let p: Vec<String> = k.params.iter().map(|x| fmt_float(*x)).collect();
                write!(f, "{}({})", k.name(), p.join(", "))
            }
            Value::Table(t) => write!(f, "<table {}>", t.label),
            Value::PyFunc(p) => write!(f, "python({:?})", p.spec),
            Value::Poison => f.write_str("<error>"),
        }
    }
}

fn write_repr(f: &mut fmt::Formatter<'_>, v: &Value) -> fmt::Result {
    match v {
        Value::Str(s) => write!(f, "{s:?}"),
        v => write!(f, "{v}"),
    }
}

/// Floats print like Python (`1.0`, `0.1`, `1e-07`).
pub fn fmt_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{x:e}");
        // Rust prints `1e-7`; Python prints `1e-07`.
        if let Some((m, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("+", e),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
        return s;
    }
    format!("{x:?}")
}
