//! The spanned abstract syntax tree. Produced by `syntax::parse`, consumed by the lowering
//! stage. No pest types appear here.

use crate::diag::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    pub stmts: Vec<Stmt>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `let name = value`
    Let { name: Ident, value: Expr },
    /// `fn name(a, b=1) = expr` or `fn name(a) { ... }`
    Fn {
        name: Ident,
        params: Vec<Param>,
        body: Block,
    },
    /// `for var in iter { ... }`
    For { var: Ident, iter: Expr, body: Block },
    /// `if cond { ... } else { ... }`; `else if` nests an `If` statement inside `els`.
    If {
        cond: Expr,
        then: Block,
        els: Option<Block>,
    },
    /// An expression evaluated for its effect or value.
    Expr(Expr),
}

/// A brace block or a `= expr` function body (then `stmts` holds one `Expr` statement).
/// Its value is the value of its last statement when that is an expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `+x`
    Pos,
    /// `not x` (scalars)
    Not,
    /// `~x` (bool arrays: elementwise not; integers: bitwise not)
    Invert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `and` (scalars, short-circuit)
    And,
    /// `or` (scalars, short-circuit)
    Or,
    /// `&` elementwise and
    BitAnd,
    /// `|` elementwise or
    BitOr,
    /// `^` elementwise xor
    BitXor,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::Pow => "**",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// `Some` for keyword arguments `k=v`.
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
    /// `...` (only meaningful inside an index)
    Ellipsis,
    Name(String),
    Unary {
        op: UnOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `f(a, k=v)`; a method call is a `Call` whose `func` is an `Attr`.
    Call {
        func: Box<Expr>,
        args: Vec<Arg>,
    },
    /// `x.name` (property or method)
    Attr {
        recv: Box<Expr>,
        name: Ident,
    },
    /// `x[i, a:b, ...]`
    Index {
        recv: Box<Expr>,
        items: Vec<Expr>,
    },
    /// `a:b:c` with any part omitted; appears in index items and region tuples.
    Slice {
        start: Option<Box<Expr>>,
        stop: Option<Box<Expr>>,
        step: Option<Box<Expr>>,
    },
    /// `(a, b)` (also `(a,)`); a tuple containing slices is a region.
    Tuple(Vec<Expr>),
    /// `[a, b]`
    List(Vec<Expr>),
    /// `|a, b| body`
    Lambda {
        params: Vec<Ident>,
        body: Box<Expr>,
    },
}
