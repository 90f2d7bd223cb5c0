//! pest pairs → AST. The grammar delivers each expression as one flat sequence of
//! operands and operators; this module applies precedence and associativity, decodes
//! literals, attaches spans and reports the errors that are easier to judge here than in
//! the grammar (chained comparisons, a misplaced `not`, positional arguments after
//! keyword ones, bad literals).
//!
//! Every node's depth is tracked and capped at `MAX_DEPTH`: flat sequences such as
//! `- - - … x` or `a + a + … + a` build trees as deep as the input is long, and a tree
//! that deep would overflow the stack of whoever walks it next (or just drops it).
//! Recursion here follows bracket nesting only, which the layout pass bounds.

use pest::iterators::Pair;

use super::layout::Layout;
use super::Rule;
use crate::diag::{codes, Diagnostic, SourceId, Span};
use crate::syntax::ast::*;

/// Deepest expression/statement tree accepted.
pub(super) const MAX_DEPTH: u32 = 256;

/// Building stopped because the tree got too deep (the diagnostic is already recorded).
pub(super) struct Abort;

type B<T> = Result<T, Abort>;

/// An `if` or `else if` arm before nesting: where its `if` starts, the condition and the
/// block, each with its depth.
type Arm = (usize, (Expr, u32), (Block, u32));

pub(super) struct Builder<'s> {
    id: SourceId,
    src: &'s str,
    layout: &'s Layout,
    pub errors: Vec<Diagnostic>,
}

/// One operand of an expression: leading `not`s, then arithmetic prefix operators (each
/// with its start offset), then the postfix expression they apply to, not built yet so
/// that `-<int>` can be folded into one literal.
struct Operand<'i> {
    nots: Vec<usize>,
    prefix: Vec<(UnOp, usize)>,
    base: Pair<'i, Rule>,
}

/// An operator waiting on the precedence climber's stack.
enum Pending {
    Binary(BinOp, Span),
    /// A prefix `not` starting at this offset.
    Not(usize),
}

impl Pending {
    fn precedence(&self) -> u8 {
        match self {
            Pending::Binary(op, _) => precedence(*op),
            Pending::Not(_) => NOT_PRECEDENCE,
        }
    }
}

/// Whether a value on the climber's output stack is a bare comparison, so that a second
/// comparison applied to it is recognised as a chain (and reported once).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmp {
    No,
    Single,
    Reported,
}

struct Value {
    expr: Expr,
    depth: u32,
    cmp: Cmp,
}

fn bin_op(text: &str) -> BinOp {
    match text {
        "**" => BinOp::Pow,
        "//" => BinOp::FloorDiv,
        "*" => BinOp::Mul,
        "/" => BinOp::Div,
        "%" => BinOp::Mod,
        "+" => BinOp::Add,
        "-" => BinOp::Sub,
        "&" => BinOp::BitAnd,
        "|" => BinOp::BitOr,
        "^" => BinOp::BitXor,
        "and" => BinOp::And,
        "or" => BinOp::Or,
        "==" => BinOp::Eq,
        "!=" => BinOp::Ne,
        "<=" => BinOp::Le,
        ">=" => BinOp::Ge,
        "<" => BinOp::Lt,
        // Only `>` is left; the grammar admits nothing else here.
        _ => BinOp::Gt,
    }
}

/// Binding strength, Python's order: higher binds tighter. Unary `- + ~` (between `*`
/// and `**`) and `**` itself are handled by `pow_group` before this table is used.
fn precedence(op: BinOp) -> u8 {
    match op {
        BinOp::Or => 1,
        BinOp::And => 2,
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => CMP_PRECEDENCE,
        BinOp::BitOr => 5,
        BinOp::BitXor => 6,
        BinOp::BitAnd => 7,
        BinOp::Add | BinOp::Sub => 8,
        BinOp::Mul | BinOp::Div | BinOp::FloorDiv | BinOp::Mod => 9,
        BinOp::Pow => 11,
    }
}

/// Prefix `not` binds tighter than `and` and looser than the comparisons.
const NOT_PRECEDENCE: u8 = 3;
const CMP_PRECEDENCE: u8 = 4;

impl<'s> Builder<'s> {
    pub fn new(src: &'s str, layout: &'s Layout, id: SourceId) -> Builder<'s> {
        Builder {
            id,
            src,
            layout,
            errors: Vec::new(),
        }
    }

    fn text(&self, span: Span) -> &'s str {
        self.src.get(span.range()).unwrap_or("")
    }

    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        let end = self.layout.trim_end(s.start(), s.end());
        Span::new(self.id, s.start(), end)
    }

    /// The depth of a new node over children of depth `child`, refusing trees that are
    /// too deep.
    fn deeper(&mut self, child: u32, span: Span) -> B<u32> {
        let depth = child + 1;
        if depth > MAX_DEPTH {
            self.errors.push(
                Diagnostic::error(codes::PARSE, "nesting too deep")
                    .label(
                        span,
                        format!("this is nested more than {MAX_DEPTH} levels deep"),
                    )
                    .help("split the expression into smaller pieces with `let` bindings"),
            );
            return Err(Abort);
        }
        Ok(depth)
    }

    fn node(&mut self, kind: ExprKind, span: Span, child: u32) -> B<(Expr, u32)> {
        let depth = self.deeper(child, span)?;
        Ok((Expr { kind, span }, depth))
    }

    fn ident(&self, pair: &Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_owned(),
            span: self.span(pair),
        }
    }

    // ------------------------------------------------------------ statements

    pub fn script(&mut self, pair: Pair<'_, Rule>) -> B<Script> {
        let mut stmts = Vec::new();
        for p in pair.into_inner() {
            if let Some((s, _)) = self.stmt(p)? {
                stmts.push(s);
            }
        }
        Ok(Script { stmts })
    }

    /// A statement, or `None` for separators and end of input.
    fn stmt(&mut self, pair: Pair<'_, Rule>) -> B<Option<(Stmt, u32)>> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut it = pair.into_inner();
        let (kind, depth) = match rule {
            Rule::let_stmt => {
                let _kw = it.next();
                let name = it.next().map(|p| self.ident(&p));
                let _eq = it.next();
                let (value, d) = self.expr_opt(it.next(), span)?;
                let name = name.unwrap_or_else(|| self.missing_ident(span));
                (StmtKind::Let { name, value }, d)
            }
            Rule::fn_stmt => {
                let _kw = it.next();
                let name = it.next().map(|p| self.ident(&p));
                let name = name.unwrap_or_else(|| self.missing_ident(span));
                let mut params = Vec::new();
                let mut depth = 0;
                let mut body = None;
                for p in it {
                    match p.as_rule() {
                        Rule::params => {
                            let (ps, d) = self.params(p)?;
                            params = ps;
                            depth = depth.max(d);
                        }
                        Rule::expr => {
                            let (e, d) = self.expr(p)?;
                            let espan = e.span;
                            let stmt = Stmt {
                                kind: StmtKind::Expr(e),
                                span: espan,
                            };
                            let d = self.deeper(d, espan)?;
                            body = Some(Block {
                                stmts: vec![stmt],
                                span: espan,
                            });
                            depth = depth.max(self.deeper(d, espan)?);
                        }
                        Rule::block => {
                            let (b, d) = self.block(p)?;
                            body = Some(b);
                            depth = depth.max(d);
                        }
                        _ => {}
                    }
                }
                let body = body.unwrap_or(Block {
                    stmts: Vec::new(),
                    span,
                });
                (StmtKind::Fn { name, params, body }, depth)
            }
            Rule::for_stmt => {
                let _kw = it.next();
                let var = it.next().map(|p| self.ident(&p));
                let var = var.unwrap_or_else(|| self.missing_ident(span));
                let _in = it.next();
                let (iter, d1) = self.expr_opt(it.next(), span)?;
                let (body, d2) = self.block_opt(it.next(), span)?;
                (StmtKind::For { var, iter, body }, d1.max(d2))
            }
            Rule::if_stmt => return self.if_stmt(span, it).map(Some),
            Rule::expr_stmt => {
                let (e, d) = self.expr_opt(it.next(), span)?;
                (StmtKind::Expr(e), d)
            }
            _ => return Ok(None),
        };
        let depth = self.deeper(depth, span)?;
        Ok(Some((Stmt { kind, span }, depth)))
    }

    /// `if c { } else if d { } … else { }`: the grammar gives the `else if` arms as a flat
    /// list; they nest from the last one outwards.
    fn if_stmt<'i>(
        &mut self,
        span: Span,
        it: impl Iterator<Item = Pair<'i, Rule>>,
    ) -> B<(Stmt, u32)> {
        // (span start of the arm's `if`, condition, block)
        let mut arms: Vec<Arm> = Vec::new();
        let mut els: Option<(Block, u32)> = None;
        let mut cond = None;
        for p in it {
            match p.as_rule() {
                Rule::expr => cond = Some(self.expr(p)?),
                Rule::block => {
                    let b = self.block(p)?;
                    let c = cond.take().unwrap_or_else(|| (self.placeholder(span), 0));
                    arms.push((span.start as usize, c, b));
                }
                Rule::else_if => {
                    let start = p
                        .clone()
                        .into_inner()
                        .find(|q| q.as_rule() == Rule::kw_if)
                        .map_or(span.start as usize, |q| q.as_span().start());
                    let mut c = None;
                    let mut b = None;
                    for q in p.into_inner() {
                        match q.as_rule() {
                            Rule::expr => c = Some(self.expr(q)?),
                            Rule::block => b = Some(self.block(q)?),
                            _ => {}
                        }
                    }
                    let c = c.unwrap_or_else(|| (self.placeholder(span), 0));
                    let b = b.unwrap_or_else(|| (self.empty_block(span), 0));
                    arms.push((start, c, b));
                }
                Rule::else_block => {
                    if let Some(q) = p.into_inner().find(|q| q.as_rule() == Rule::block) {
                        els = Some(self.block(q)?);
                    }
                }
                _ => {}
            }
        }
        let end = span.end as usize;
        let mut tail: Option<(Stmt, u32)> = None;
        while let Some((start, (cond, dc), (then, dt))) = arms.pop() {
            let els_block = match tail.take() {
                Some((stmt, ds)) => {
                    let bspan = stmt.span;
                    let d = self.deeper(ds, bspan)?;
                    Some((
                        Block {
                            stmts: vec![stmt],
                            span: bspan,
                        },
                        d,
                    ))
                }
                None => els.take(),
            };
            let de = els_block.as_ref().map_or(0, |(_, d)| *d);
            let sspan = Span::new(self.id, start, end);
            let depth = self.deeper(dc.max(dt).max(de), sspan)?;
            tail = Some((
                Stmt {
                    kind: StmtKind::If {
                        cond,
                        then,
                        els: els_block.map(|(b, _)| b),
                    },
                    span: sspan,
                },
                depth,
            ));
        }
        Ok(tail.unwrap_or_else(|| {
            (
                Stmt {
                    kind: StmtKind::Expr(self.placeholder(span)),
                    span,
                },
                0,
            )
        }))
    }

    fn params(&mut self, pair: Pair<'_, Rule>) -> B<(Vec<Param>, u32)> {
        let mut params = Vec::new();
        let mut depth = 0;
        for p in pair.into_inner().filter(|p| p.as_rule() == Rule::param) {
            let mut name = None;
            let mut default = None;
            for q in p.into_inner() {
                match q.as_rule() {
                    Rule::ident => name = Some(self.ident(&q)),
                    Rule::expr => {
                        let (e, d) = self.expr(q)?;
                        depth = depth.max(d);
                        default = Some(e);
                    }
                    _ => {}
                }
            }
            if let Some(name) = name {
                params.push(Param { name, default });
            }
        }
        Ok((params, depth))
    }

    fn block(&mut self, pair: Pair<'_, Rule>) -> B<(Block, u32)> {
        let span = self.span(&pair);
        let mut stmts = Vec::new();
        let mut depth = 0;
        for p in pair.into_inner() {
            if let Some((s, d)) = self.stmt(p)? {
                depth = depth.max(d);
                stmts.push(s);
            }
        }
        let depth = self.deeper(depth, span)?;
        Ok((Block { stmts, span }, depth))
    }

    fn block_opt(&mut self, pair: Option<Pair<'_, Rule>>, span: Span) -> B<(Block, u32)> {
        match pair {
            Some(p) => self.block(p),
            None => Ok((self.empty_block(span), 0)),
        }
    }

    // The grammar guarantees the children these stand in for; they only keep a broken
    // invariant from becoming a panic.
    fn placeholder(&self, span: Span) -> Expr {
        Expr {
            kind: ExprKind::None,
            span,
        }
    }

    fn empty_block(&self, span: Span) -> Block {
        Block {
            stmts: Vec::new(),
            span,
        }
    }

    fn missing_ident(&self, span: Span) -> Ident {
        Ident {
            name: String::new(),
            span,
        }
    }

    fn expr_opt(&mut self, pair: Option<Pair<'_, Rule>>, span: Span) -> B<(Expr, u32)> {
        match pair {
            Some(p) => self.expr(p),
            None => Ok((self.placeholder(span), 0)),
        }
    }

    // ------------------------------------------------------------ expressions

    /// `expr = lambda_head* operand (infix operand)*`: the operator sequence is folded by
    /// `climb`, then each lambda head takes everything to its right.
    pub fn expr(&mut self, pair: Pair<'_, Rule>) -> B<(Expr, u32)> {
        let span = self.span(&pair);
        let mut heads: Vec<(usize, Vec<Ident>)> = Vec::new();
        let mut operands: Vec<Operand<'_>> = Vec::new();
        let mut ops: Vec<(BinOp, Span)> = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::lambda_head => {
                    let start = p.as_span().start();
                    let params = p
                        .into_inner()
                        .filter(|q| q.as_rule() == Rule::ident)
                        .map(|q| self.ident(&q))
                        .collect();
                    heads.push((start, params));
                }
                Rule::infix => ops.push((bin_op(p.as_str()), self.span(&p))),
                _ => {
                    if let Some(operand) = self.operand(p) {
                        operands.push(operand);
                    }
                }
            }
        }
        let (mut acc, mut depth) = if operands.len() == ops.len() + 1 {
            self.climb(operands, ops)?
        } else {
            // Cannot happen for text the grammar accepted.
            (self.placeholder(span), 0)
        };
        while let Some((start, params)) = heads.pop() {
            let lspan = Span::new(self.id, start, acc.span.end as usize);
            (acc, depth) = self.node(
                ExprKind::Lambda {
                    params,
                    body: Box::new(acc),
                },
                lspan,
                depth,
            )?;
        }
        Ok((acc, depth))
    }

    /// Splits an operand's prefix operators into leading `not`s and arithmetic ones.
    fn operand<'i>(&mut self, pair: Pair<'i, Rule>) -> Option<Operand<'i>> {
        let mut nots = Vec::new();
        let mut prefix: Vec<(UnOp, usize)> = Vec::new();
        let mut base = None;
        for q in pair.into_inner() {
            let start = q.as_span().start();
            match q.as_rule() {
                Rule::kw_not => match prefix.last() {
                    // `-not x`: Python refuses it, and so do we.
                    Some(&(op, _)) => {
                        let symbol = match op {
                            UnOp::Neg => "-",
                            UnOp::Pos => "+",
                            _ => "~",
                        };
                        self.not_too_loose(start, symbol);
                        prefix.push((UnOp::Not, start));
                    }
                    None => nots.push(start),
                },
                Rule::unary_op => {
                    let op = match q.as_str() {
                        "-" => UnOp::Neg,
                        "+" => UnOp::Pos,
                        _ => UnOp::Invert,
                    };
                    prefix.push((op, start));
                }
                _ => base = Some(q),
            }
        }
        base.map(|base| Operand { nots, prefix, base })
    }

    fn not_too_loose(&mut self, start: usize, after: &str) {
        let span = Span::new(self.id, start, start + 3);
        self.errors.push(
            Diagnostic::error(
                codes::PARSE,
                format!("`not` cannot follow `{after}` without parentheses"),
            )
            .label(span, format!("`not` binds more loosely than `{after}`"))
            .help("put the negation in parentheses: `(not ...)`"),
        );
    }

    /// Operator-precedence folding of `operand (op operand)*` with explicit stacks (no
    /// recursion, whatever the length). `**` groups are folded first (they bind tighter
    /// than the unary operators written before them); leading `not`s act as prefix
    /// operators between `and` and the comparisons.
    fn climb(&mut self, operands: Vec<Operand<'_>>, ops: Vec<(BinOp, Span)>) -> B<(Expr, u32)> {
        for (operand, (op, _)) in operands.iter().skip(1).zip(&ops) {
            if let Some(&start) = operand.nots.first() {
                if precedence(*op) > NOT_PRECEDENCE {
                    self.not_too_loose(start, op.symbol());
                }
            }
        }

        // Fold each `**` group into one term, keeping the group's leading `not`s.
        let mut terms: Vec<(Vec<usize>, (Expr, u32))> = Vec::new();
        let mut term_ops: Vec<(BinOp, Span)> = Vec::new();
        let mut group: Vec<Operand<'_>> = Vec::new();
        let mut ops_it = ops.into_iter();
        for operand in operands {
            group.push(operand);
            let next = ops_it.next();
            if matches!(next, Some((BinOp::Pow, _))) {
                continue;
            }
            let nots = std::mem::take(&mut group[0].nots);
            terms.push((nots, self.pow_group(std::mem::take(&mut group))?));
            term_ops.extend(next);
        }

        let mut out: Vec<Value> = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut term_ops = term_ops.into_iter();
        for (i, (nots, (expr, depth))) in terms.into_iter().enumerate() {
            if i > 0 {
                let Some((op, span)) = term_ops.next() else {
                    break;
                };
                let p = precedence(op);
                while pending.last().is_some_and(|top| top.precedence() >= p) {
                    self.reduce(&mut out, &mut pending)?;
                }
                pending.push(Pending::Binary(op, span));
            }
            pending.extend(nots.into_iter().map(Pending::Not));
            out.push(Value {
                expr,
                depth,
                cmp: Cmp::No,
            });
        }
        while !pending.is_empty() {
            self.reduce(&mut out, &mut pending)?;
        }
        let span = Span::new(self.id, 0, 0);
        Ok(out
            .pop()
            .map_or_else(|| (self.placeholder(span), 0), |v| (v.expr, v.depth)))
    }

    fn reduce(&mut self, out: &mut Vec<Value>, pending: &mut Vec<Pending>) -> B<()> {
        match pending.pop() {
            Some(Pending::Binary(op, op_span)) => {
                let (Some(rhs), Some(lhs)) = (out.pop(), out.pop()) else {
                    return Ok(());
                };
                let comparison = precedence(op) == CMP_PRECEDENCE;
                let mut cmp = if comparison { Cmp::Single } else { Cmp::No };
                if comparison && lhs.cmp != Cmp::No {
                    if lhs.cmp == Cmp::Single {
                        self.chained_comparison(&lhs.expr, op, op_span, &rhs.expr);
                    }
                    cmp = Cmp::Reported;
                }
                let (expr, depth) = self.binary(op, lhs.expr, lhs.depth, rhs.expr, rhs.depth)?;
                out.push(Value { expr, depth, cmp });
            }
            Some(Pending::Not(start)) => {
                if let Some(v) = out.pop() {
                    let (expr, depth) = self.unary(UnOp::Not, start, v.expr, v.depth)?;
                    out.push(Value {
                        expr,
                        depth,
                        cmp: Cmp::No,
                    });
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Comparisons do not chain: `a < b < c` means different things in Python and in
    /// NumPy-style code, so it is refused with the pairwise form spelled out.
    fn chained_comparison(&mut self, lhs: &Expr, op: BinOp, op_span: Span, rhs: &Expr) {
        let ExprKind::Binary {
            op: first_op,
            lhs: a,
            rhs: b,
        } = &lhs.kind
        else {
            return;
        };
        let (a, b, c) = (self.text(a.span), self.text(b.span), self.text(rhs.span));
        let help = format!(
            "compare pairwise: `({a} {} {b}) & ({b} {} {c})`",
            first_op.symbol(),
            op.symbol()
        );
        self.errors.push(
            Diagnostic::error(codes::PARSE, "chained comparisons are not supported")
                .label(op_span, "a second comparison in a row")
                .label(lhs.span.to(rhs.span), "in this chain")
                .help(help),
        );
    }

    fn binary(&mut self, op: BinOp, lhs: Expr, dl: u32, rhs: Expr, dr: u32) -> B<(Expr, u32)> {
        let span = lhs.span.to(rhs.span);
        self.node(
            ExprKind::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
            span,
            dl.max(dr),
        )
    }

    fn unary(&mut self, op: UnOp, start: usize, e: Expr, d: u32) -> B<(Expr, u32)> {
        let span = Span::new(self.id, start, e.span.end as usize);
        self.node(
            ExprKind::Unary {
                op,
                expr: Box::new(e),
            },
            span,
            d,
        )
    }

    /// Operands joined by `**`: `u₀ p₀ ** u₁ p₁ ** … ** uₙ pₙ` is
    /// `u₀(p₀ ** u₁(p₁ ** … uₙ(pₙ)))`, where `uᵢ` are the prefix operators written
    /// before `pᵢ`. So `-x**2` is `-(x**2)` and `2**-1` is `2**(-1)`.
    fn pow_group(&mut self, mut group: Vec<Operand<'_>>) -> B<(Expr, u32)> {
        let Some(last) = group.pop() else {
            let span = Span::new(self.id, 0, 0);
            return Ok((self.placeholder(span), 0));
        };
        let (mut acc, mut depth) = self.operand_alone(last)?;
        while let Some(Operand { prefix, base, .. }) = group.pop() {
            let (b, db) = self.postfix_expr(base)?;
            (acc, depth) = self.binary(BinOp::Pow, b, db, acc, depth)?;
            (acc, depth) = self.apply_prefix(prefix, acc, depth)?;
        }
        Ok((acc, depth))
    }

    /// An operand with its own prefix operators applied; `-<int literal>` becomes a
    /// negative literal so that `-9223372036854775808` is representable.
    fn operand_alone(&mut self, operand: Operand<'_>) -> B<(Expr, u32)> {
        let Operand {
            mut prefix, base, ..
        } = operand;
        let bare_int = {
            let mut inner = base.clone().into_inner();
            match (inner.next(), inner.next()) {
                (Some(p), None) if p.as_rule() == Rule::int => Some(p),
                _ => None,
            }
        };
        let built = match (prefix.last(), bare_int) {
            (Some(&(UnOp::Neg, start)), Some(lit)) => {
                prefix.pop();
                let span = Span::new(self.id, start, lit.as_span().end());
                let value = self.int_value(lit.as_str(), true, span);
                (
                    Expr {
                        kind: ExprKind::Int(value),
                        span,
                    },
                    1,
                )
            }
            _ => self.postfix_expr(base)?,
        };
        self.apply_prefix(prefix, built.0, built.1)
    }

    fn apply_prefix(
        &mut self,
        mut prefix: Vec<(UnOp, usize)>,
        mut acc: Expr,
        mut depth: u32,
    ) -> B<(Expr, u32)> {
        while let Some((op, start)) = prefix.pop() {
            (acc, depth) = self.unary(op, start, acc, depth)?;
        }
        Ok((acc, depth))
    }

    /// `primary (call_args | attr | index)*`, folded left to right.
    fn postfix_expr(&mut self, pair: Pair<'_, Rule>) -> B<(Expr, u32)> {
        let span = self.span(&pair);
        let mut acc: Option<(Expr, u32)> = None;
        for p in pair.into_inner() {
            let rule = p.as_rule();
            let Some((recv, dr)) = acc.take() else {
                acc = Some(self.primary(p)?);
                continue;
            };
            let end = p.as_span().end();
            let pspan = Span::new(self.id, recv.span.start as usize, end);
            acc = Some(match rule {
                Rule::call_args => {
                    let (args, da) = self.call_args(p)?;
                    self.node(
                        ExprKind::Call {
                            func: Box::new(recv),
                            args,
                        },
                        pspan,
                        dr.max(da),
                    )?
                }
                Rule::attr => {
                    let name = p
                        .into_inner()
                        .find(|q| q.as_rule() == Rule::ident)
                        .map(|q| self.ident(&q))
                        .unwrap_or_else(|| self.missing_ident(pspan));
                    self.node(
                        ExprKind::Attr {
                            recv: Box::new(recv),
                            name,
                        },
                        pspan,
                        dr,
                    )?
                }
                _ => {
                    let mut items = Vec::new();
                    let mut di = 0;
                    for q in p.into_inner().filter(|q| q.as_rule() == Rule::item) {
                        let (e, d) = self.item(q)?;
                        di = di.max(d);
                        items.push(e);
                    }
                    self.node(
                        ExprKind::Index {
                            recv: Box::new(recv),
                            items,
                        },
                        pspan,
                        dr.max(di),
                    )?
                }
            });
        }
        Ok(acc.unwrap_or_else(|| (self.placeholder(span), 0)))
    }

    fn call_args(&mut self, pair: Pair<'_, Rule>) -> B<(Vec<Arg>, u32)> {
        let mut args = Vec::new();
        let mut depth = 0;
        let mut first_keyword: Option<Span> = None;
        for p in pair.into_inner().filter(|p| p.as_rule() == Rule::arg) {
            let Some(q) = p.into_inner().next() else {
                continue;
            };
            let arg = if q.as_rule() == Rule::kwarg {
                let mut name = None;
                let mut value = None;
                for r in q.into_inner() {
                    match r.as_rule() {
                        Rule::ident => name = Some(self.ident(&r)),
                        Rule::expr => value = Some(self.expr(r)?),
                        _ => {}
                    }
                }
                let Some(((value, d), name)) = value.zip(name) else {
                    continue;
                };
                depth = depth.max(d);
                first_keyword.get_or_insert(name.span.to(value.span));
                Arg {
                    name: Some(name),
                    value,
                }
            } else {
                let (value, d) = self.expr(q)?;
                depth = depth.max(d);
                if let Some(kw) = first_keyword {
                    self.errors.push(
                        Diagnostic::error(
                            codes::PARSE,
                            "positional argument after a keyword argument",
                        )
                        .label(value.span, "this positional argument")
                        .label(kw, "comes after this keyword argument")
                        .help("put positional arguments first, or give this one a name"),
                    );
                }
                Arg { name: None, value }
            };
            args.push(arg);
        }
        Ok((args, depth))
    }

    /// An index or tuple item: an expression or a slice `start:stop:step`.
    fn item(&mut self, pair: Pair<'_, Rule>) -> B<(Expr, u32)> {
        let span = self.span(&pair);
        let mut start = None;
        let mut rest = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::expr => start = Some(self.expr(p)?),
                Rule::slice_rest => rest = Some(p),
                _ => {}
            }
        }
        let Some(rest) = rest else {
            return Ok(start.unwrap_or_else(|| (self.placeholder(span), 0)));
        };
        let mut depth = start.as_ref().map_or(0, |(_, d)| *d);
        let mut stop = None;
        let mut step = None;
        for p in rest.into_inner() {
            let slot = match p.as_rule() {
                Rule::slice_stop => &mut stop,
                Rule::slice_step => &mut step,
                _ => continue,
            };
            if let Some(e) = p.into_inner().find(|q| q.as_rule() == Rule::expr) {
                let (e, d) = self.expr(e)?;
                depth = depth.max(d);
                *slot = Some(Box::new(e));
            }
        }
        self.node(
            ExprKind::Slice {
                start: start.map(|(e, _)| Box::new(e)),
                stop,
                step,
            },
            span,
            depth,
        )
    }

    fn primary(&mut self, pair: Pair<'_, Rule>) -> B<(Expr, u32)> {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::int => ExprKind::Int(self.int_value(pair.as_str(), false, span)),
            Rule::float => ExprKind::Float(self.float_value(pair.as_str(), span)),
            Rule::string => {
                let body = pair.into_inner().next();
                let (text, offset) = body
                    .map(|b| (b.as_str(), b.as_span().start()))
                    .unwrap_or(("", span.start as usize));
                ExprKind::Str(self.string_value(text, offset))
            }
            Rule::kw_true => ExprKind::Bool(true),
            Rule::kw_false => ExprKind::Bool(false),
            Rule::kw_none => ExprKind::None,
            Rule::ellipsis => ExprKind::Ellipsis,
            Rule::ident => ExprKind::Name(pair.as_str().to_owned()),
            Rule::paren => return self.paren(pair),
            Rule::list => {
                let mut items = Vec::new();
                let mut depth = 0;
                for p in pair.into_inner().filter(|p| p.as_rule() == Rule::expr) {
                    let (e, d) = self.expr(p)?;
                    depth = depth.max(d);
                    items.push(e);
                }
                return self.node(ExprKind::List(items), span, depth);
            }
            _ => ExprKind::None,
        };
        Ok((Expr { kind, span }, 1))
    }

    /// `()` is the empty tuple, `(a)` is `a`, `(a,)` and `(a, b)` are tuples, and a lone
    /// slice `(0:10)` is a one-element region.
    fn paren(&mut self, pair: Pair<'_, Rule>) -> B<(Expr, u32)> {
        let span = self.span(&pair);
        let mut items = Vec::new();
        let mut depth = 0;
        let mut comma = false;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::item => {
                    let (e, d) = self.item(p)?;
                    depth = depth.max(d);
                    items.push(e);
                }
                Rule::comma => comma = true,
                _ => {}
            }
        }
        if items.len() == 1 && !comma && !matches!(items[0].kind, ExprKind::Slice { .. }) {
            // The parentheses only group; keep them in the span so that a binary
            // expression over them spans its visible text.
            let mut e = items.remove(0);
            e.span = span;
            return Ok((e, depth));
        }
        self.node(ExprKind::Tuple(items), span, depth)
    }

    // ------------------------------------------------------------ literals

    fn int_value(&mut self, text: &str, negative: bool, span: Span) -> i64 {
        let digits: String = text
            .chars()
            .filter(|c| c.is_ascii_digit())
            .collect::<String>();
        let signed = if negative {
            format!("-{digits}")
        } else {
            digits
        };
        match signed.parse::<i64>() {
            Ok(v) => v,
            Err(_) => {
                self.errors.push(
                    Diagnostic::error(codes::BAD_LITERAL, "integer literal is too large")
                        .label(span, "this does not fit in a 64-bit integer")
                        .note(format!("integers range from {} to {}", i64::MIN, i64::MAX))
                        .help("write it as a float (e.g. `1e20`) if an approximate value will do"),
                );
                0
            }
        }
    }

    fn float_value(&mut self, text: &str, span: Span) -> f64 {
        let cleaned: String = text.chars().filter(|&c| c != '_').collect();
        match cleaned.parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => {
                self.errors.push(
                    Diagnostic::error(codes::BAD_LITERAL, "float literal is out of range")
                        .label(span, "this is too large for a 64-bit float"),
                );
                0.0
            }
        }
    }

    /// Decodes escapes; `offset` is where `text` starts in the source, for error spans.
    fn string_value(&mut self, text: &str, offset: usize) -> String {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((j, e)) = chars.next() else {
                break;
            };
            match e {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                _ => {
                    let span = Span::new(self.id, offset + i, offset + j + e.len_utf8());
                    self.errors.push(
                        Diagnostic::error(
                            codes::BAD_LITERAL,
                            format!("unknown escape `\\{e}` in string"),
                        )
                        .label(span, "unknown escape")
                        .help(r#"the escapes are `\"`, `\\`, `\n`, `\t` and `\r`; write `\\` for a backslash"#),
                    );
                    out.push(e);
                }
            }
        }
        out
    }
}
