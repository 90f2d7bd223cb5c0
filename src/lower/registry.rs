//! The builtin registry: one descriptor per builtin function, kernel and array method.
//! Lowering (argument binding and the node a call makes), checking, the REPL's completion
//! and `:help`, and the builtin reference (`docs/BUILTINS.md`) all read it. The table is
//! a value owned by the evaluator: the standard builtins (`builtins::standard`) plus the
//! entries a host program or a script registers at run time (`Registry::add`).

use super::builtins::Args;
use super::{ArrayVal, Evaluator, Value, R};
use crate::ir::Kernel;
use std::fmt;
use std::rc::Rc;

/// What a descriptor is: a function (`zeros(...)`), a kernel constructor (`gaussian(2)`,
/// called like a function, giving a kernel for `map`) or an array method (`x.sum()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Function,
    Kernel,
    Method,
}

/// The kind of value a call gives, as far as it is known without evaluating it (the
/// REPL completes methods after a call that gives an array).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returns {
    Array,
    Kernel,
    /// A scalar, string, list or table, depending on the arguments.
    Value,
    /// An effect (printing, writing): the call's value is `none`.
    Nothing,
}

/// The type a parameter expects (checked by the lowering; shown in the reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    Any,
    Array,
    Int,
    Float,
    Bool,
    Str,
    /// An int or a tuple of ints (a shape, axes, sizes per axis).
    Ints,
    /// A number or a tuple of numbers (sigma per axis).
    Numbers,
    DType,
    /// A kernel or a function of one block.
    Callable,
}

impl ParamType {
    pub fn name(self) -> &'static str {
        match self {
            ParamType::Any => "any",
            ParamType::Array => "array",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::Str => "str",
            ParamType::Ints => "int or tuple of ints",
            ParamType::Numbers => "number or tuple of numbers",
            ParamType::DType => "dtype",
            ParamType::Callable => "kernel or function",
        }
    }

    fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "any" => ParamType::Any,
            "array" => ParamType::Array,
            "int" => ParamType::Int,
            "float" => ParamType::Float,
            "bool" => ParamType::Bool,
            "str" => ParamType::Str,
            "ints" => ParamType::Ints,
            "numbers" => ParamType::Numbers,
            "dtype" => ParamType::DType,
            "callable" => ParamType::Callable,
            _ => return None,
        })
    }
}

/// One parameter: its name, type and the default shown in signatures (`None`: required,
/// or optional without a simple default).
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub ty: ParamType,
    pub default: Option<String>,
}

impl Param {
    pub fn new(name: impl Into<String>, ty: ParamType, default: Option<&str>) -> Param {
        Param {
            name: name.into(),
            ty,
            default: default.map(str::to_string),
        }
    }

    /// `"name"`, `"name: int"`, `"name: str = \"f32\""` or `"name = auto"`.
    pub fn parse(spec: &str) -> Param {
        let (head, default) = match spec.split_once('=') {
            Some((h, d)) => (h.trim(), Some(d.trim())),
            None => (spec.trim(), None),
        };
        let (name, ty) = match head.split_once(':') {
            Some((n, t)) => (
                n.trim(),
                ParamType::parse(t.trim()).unwrap_or_else(|| panic!("bug: parameter type {t}")),
            ),
            None => (head, ParamType::Any),
        };
        Param::new(name, ty, default)
    }
}

/// `f(ev, args)`: lower a function call with bound arguments.
pub type FunctionFn = fn(&mut Evaluator, &Args) -> R<Value>;
/// `f(ev, receiver, args)`: lower a method call on an array.
pub type MethodFn = fn(&mut Evaluator, ArrayVal, &Args) -> R<Value>;
/// `f(args)`: build the kernel a kernel constructor's call gives (its footprint is
/// `Kernel::radius`; the stencil runtime runs it).
pub type KernelFn = fn(&Args) -> R<Kernel>;
/// A lowering registered at run time (a host program's kernel, a script's Python
/// function): the receiver for methods, `None` for functions.
pub type DynamicFn = Rc<dyn Fn(&mut Evaluator, Option<ArrayVal>, &Args) -> R<Value>>;

/// How a call of a descriptor becomes a value or IR nodes.
#[derive(Clone)]
pub enum Lowering {
    Function(FunctionFn),
    Method(MethodFn),
    Kernel(KernelFn),
    Dynamic(DynamicFn),
}

impl fmt::Debug for Lowering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lowering::Function(_) => "Function",
            Lowering::Method(_) => "Method",
            Lowering::Kernel(_) => "Kernel",
            Lowering::Dynamic(_) => "Dynamic",
        })
    }
}

/// How a call's arguments reach the lowering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Positional and keyword arguments matched to `params` (E0104 / E0103).
    Params,
    /// Several positional arguments are packed into one tuple for the first parameter
    /// (`x.transpose(2, 0, 1)`), then matched as `Params`.
    PackPositional,
    /// Any number of positional arguments, no keywords (`print`): `Args::rest`.
    Variadic,
    /// The lowering binds its own arguments, positional and keyword, all in `Args::rest`
    /// (`python(spec, **kwargs)`, `x.map_blocks(...)`); `params` only document them.
    Custom,
}

/// One builtin: everything lowering, checking, the REPL and the docs know about it.
#[derive(Clone, Debug)]
pub struct Builtin {
    pub name: String,
    pub category: Category,
    pub params: Vec<Param>,
    /// As shown in `:help` and the reference (`zeros(shape, dtype="f32", chunks=auto)`).
    pub signature: String,
    /// One line of documentation.
    pub doc: String,
    pub returns: Returns,
    pub binding: Binding,
    pub lowering: Lowering,
}

impl Builtin {
    /// A descriptor from parameter specs (`Param::parse`); the signature is generated
    /// (`name(a, b=1)` or `x.name(a)`) unless set with `with_signature`.
    pub fn new(
        name: &str,
        category: Category,
        params: &[&str],
        returns: Returns,
        doc: &str,
        lowering: Lowering,
    ) -> Builtin {
        let params: Vec<Param> = params.iter().map(|p| Param::parse(p)).collect();
        let mut b = Builtin {
            name: name.to_string(),
            category,
            params,
            signature: String::new(),
            doc: doc.to_string(),
            returns,
            binding: Binding::Params,
            lowering,
        };
        b.signature = b.generated_signature();
        b
    }

    pub fn with_signature(mut self, signature: &str) -> Builtin {
        self.signature = signature.to_string();
        self
    }

    pub fn with_binding(mut self, binding: Binding) -> Builtin {
        self.binding = binding;
        self
    }

    /// `name(a, b=1)`, or `x.name(a, b=1)` for a method.
    pub fn generated_signature(&self) -> String {
        let ps: Vec<String> = self
            .params
            .iter()
            .map(|p| match &p.default {
                Some(d) => format!("{}={d}", p.name),
                None => p.name.clone(),
            })
            .collect();
        let recv = if self.category == Category::Method {
            "x."
        } else {
            ""
        };
        format!("{recv}{}({})", self.name, ps.join(", "))
    }

    /// The parameter names in order.
    pub fn param_names(&self) -> Vec<&str> {
        self.params.iter().map(|p| p.name.as_str()).collect()
    }

    pub fn is_method(&self) -> bool {
        self.category == Category::Method
    }
}

/// Why `Registry::add` refused an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryError(pub String);

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RegistryError {}

/// Every builtin the evaluator knows, in the order they are documented. Cloning is
/// cheap (entries are shared), so the REPL can keep a snapshot for completion.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    entries: Vec<Rc<Builtin>>,
}

/// Array properties (`x.shape`): read by attribute access, not called.
pub const PROPERTIES: &[&str] = &[
    "shape",
    "dtype",
    "chunks",
    "ndim",
    "size",
    "nbytes",
    "axes",
    "scale",
    "translation",
    "units",
];

thread_local! {
    static STANDARD: Registry = Registry::from_entries(super::builtins::standard());
}

impl Registry {
    /// The standard builtins (shared per thread; adding to a clone copies the list).
    pub fn standard() -> Registry {
        STANDARD.with(|r| r.clone())
    }

    fn from_entries(entries: Vec<Builtin>) -> Registry {
        let mut r = Registry::default();
        for b in entries {
            if let Err(e) = r.add(b) {
                panic!("bug: the standard builtins clash: {e}");
            }
        }
        r
    }

    /// Add an entry. A name is refused when a function or kernel (for functions and
    /// kernels) or a method (for methods) of that name exists, or is not an identifier.
    pub fn add(&mut self, b: Builtin) -> Result<(), RegistryError> {
        let ident = b
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && b.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident || crate::syntax::is_keyword(&b.name) {
            return Err(RegistryError(format!(
                "{:?} is not a name a script can call",
                b.name
            )));
        }
        let clash = if b.is_method() {
            self.method(&b.name).is_some() || PROPERTIES.contains(&b.name.as_str())
        } else {
            self.function(&b.name).is_some()
        };
        if clash {
            return Err(RegistryError(format!(
                "a builtin {} `{}` exists already",
                if b.is_method() { "method" } else { "function" },
                b.name
            )));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(p) = b.params.iter().find(|p| !seen.insert(p.name.as_str())) {
            return Err(RegistryError(format!(
                "`{}` names the parameter `{}` twice",
                b.name, p.name
            )));
        }
        self.entries.push(Rc::new(b));
        Ok(())
    }

    /// Every entry, functions, kernels and methods, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Rc<Builtin>> {
        self.entries.iter()
    }

    /// Functions and kernel constructors (what a bare name can call).
    pub fn functions(&self) -> impl Iterator<Item = &Rc<Builtin>> {
        self.entries.iter().filter(|b| !b.is_method())
    }

    pub fn methods(&self) -> impl Iterator<Item = &Rc<Builtin>> {
        self.entries.iter().filter(|b| b.is_method())
    }

    pub fn function(&self, name: &str) -> Option<&Rc<Builtin>> {
        self.functions().find(|b| b.name == name)
    }

    pub fn method(&self, name: &str) -> Option<&Rc<Builtin>> {
        self.methods().find(|b| b.name == name)
    }

    /// The builtin reference in Markdown (`docs/BUILTINS.md` is this text).
    pub fn reference_markdown(&self) -> String {
        let mut s = String::from(
            "# Builtin reference\n\n\
             Generated from the builtin registry (`src/lower/builtins.rs`); \
             `tests/registry.rs` checks that this file is up to date.\n",
        );
        for (title, cat) in [
            ("Functions", Category::Function),
            ("Kernels", Category::Kernel),
            ("Array methods", Category::Method),
        ] {
            s.push_str(&format!("\n## {title}\n\n"));
            if cat == Category::Kernel {
                s.push_str(
                    "A kernel is applied with `x.map(k)` (or `k(x)`); its footprint sets the halo \
                     read from neighbouring chunks.\n\n",
                );
            }
            for b in self.entries.iter().filter(|b| b.category == cat) {
                s.push_str(&format!("- `{}` — {}\n", b.signature, b.doc));
                let typed: Vec<String> = b
                    .params
                    .iter()
                    .filter(|p| p.ty != ParamType::Any)
                    .map(|p| format!("`{}`: {}", p.name, p.ty.name()))
                    .collect();
                if !typed.is_empty() {
                    s.push_str(&format!("  ({})\n", typed.join("; ")));
                }
            }
        }
        s.push_str(&format!(
            "\n## Array properties\n\n{}\n",
            PROPERTIES
                .iter()
                .map(|p| format!("`x.{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        s
    }
}
