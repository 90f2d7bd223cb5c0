//! Robustness of `tessera::syntax::parse`: random and mangled scripts must never panic
//! and must either parse or come back with diagnostics that point inside the source;
//! generated valid scripts must parse to exactly the tree they were generated from.
//! Deterministic (a fixed-seed PRNG written here), and quick in debug builds.

use std::panic::{catch_unwind, AssertUnwindSafe};

use tessera::diag::{SourceId, Span};
use tessera::syntax::ast::*;
use tessera::syntax::parse;

const ID: SourceId = SourceId(3);

/// SplitMix64: tiny, deterministic, good enough to drive a fuzzer.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// pest rule names that must never show up in a message (those that are not also
/// ordinary English words).
const RULE_WORDS: &[&str] = &[
    "stmt",
    "stmt_end",
    "stmt_seq",
    "let_stmt",
    "fn_stmt",
    "for_stmt",
    "if_stmt",
    "expr",
    "expr_stmt",
    "infix",
    "unary_op",
    "postfix_expr",
    "call_args",
    "call_close",
    "paren_close",
    "list_close",
    "index_close",
    "block_close",
    "block_open",
    "params_close",
    "lambda_head",
    "lambda_close",
    "slice_rest",
    "slice_stop",
    "slice_step",
    "kw_let",
    "kw_in",
    "kw_not",
    "let_eq",
    "kwarg_eq",
    "ident",
    "kwarg",
    "EOI",
    "SOI",
];

fn label_ok(src: &str, span: Span) -> bool {
    let (s, e) = (span.start as usize, span.end as usize);
    span.src == ID && s <= e && e <= src.len() && src.get(s..e).is_some()
}

/// Parses without panicking and checks the shape of any error.
fn check(src: &str) -> Option<Script> {
    let result = catch_unwind(AssertUnwindSafe(|| parse(src, ID)));
    let result = match result {
        Ok(r) => r,
        Err(_) => panic!("parse panicked on {src:?}"),
    };
    match result {
        Ok(script) => Some(script),
        Err(diags) => {
            assert!(!diags.is_empty(), "no diagnostics for {src:?}");
            for d in &diags {
                let primary = d
                    .span()
                    .unwrap_or_else(|| panic!("no label on {d:?} for {src:?}"));
                for l in &d.labels {
                    assert!(label_ok(src, l.span), "bad span {l:?} for {src:?}");
                }
                if !src.is_empty() {
                    assert!(primary.start < primary.end, "empty span {d:?} for {src:?}");
                }
                for word in d
                    .message
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .chain(d.labels.iter().flat_map(|l| l.message.split(' ')))
                {
                    assert!(
                        !RULE_WORDS.contains(&word),
                        "rule name in {:?} for {src:?}",
                        d.message
                    );
                }
            }
            None
        }
    }
}

// ------------------------------------------------------------ a generator of valid code

/// Binding strength of printed forms, weakest first, for minimal parenthesisation.
const LAMBDA: u8 = 0;
const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;
const CMP: u8 = 4;
const UNARY: u8 = 10;
const POW: u8 = 11;
const POSTFIX: u8 = 12;

fn binop_level(op: BinOp) -> u8 {
    match op {
        BinOp::Or => OR,
        BinOp::And => AND,
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => CMP,
        BinOp::BitOr => 5,
        BinOp::BitXor => 6,
        BinOp::BitAnd => 7,
        BinOp::Add | BinOp::Sub => 8,
        BinOp::Mul | BinOp::Div | BinOp::FloorDiv | BinOp::Mod => 9,
        BinOp::Pow => POW,
    }
}

/// Generates an expression and prints it with as few parentheses as the precedence
/// rules allow (sometimes more), so that parsing it back exercises precedence. Returns
/// the text and the expected tree in the same notation as `sx`.
struct Gen {
    rng: Rng,
}

const NAMES: &[&str] = &[
    "x", "y", "roi", "gaussian", "a_1", "_t", "nothing", "inner", "lets",
];
const BINOPS: &[BinOp] = &[
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::FloorDiv,
    BinOp::Mod,
    BinOp::Pow,
    BinOp::Eq,
    BinOp::Ne,
    BinOp::Lt,
    BinOp::Le,
    BinOp::Gt,
    BinOp::Ge,
    BinOp::And,
    BinOp::Or,
    BinOp::BitAnd,
    BinOp::BitOr,
    BinOp::BitXor,
];

impl Gen {
    fn space(&mut self) -> &'static str {
        self.rng.pick(&["", " ", " ", "  "])
    }

    /// Whitespace allowed inside brackets: may include newlines and comments.
    fn bspace(&mut self) -> &'static str {
        self.rng
            .pick(&["", " ", "\n  ", " # note (\n", "\r\n", "\n\n"])
    }

    /// (text, expected sexpr, level of the printed form)
    fn expr(&mut self, depth: u32) -> (String, String, u8) {
        if depth == 0 || self.rng.chance(25) {
            return self.atom();
        }
        match self.rng.below(10) {
            0..=3 => {
                let op = self.rng.pick(BINOPS);
                let level = binop_level(op);
                let (lmin, rmin) = match level {
                    POW => (POSTFIX, UNARY),
                    CMP => (CMP + 1, CMP + 1),
                    l => (l, l + 1),
                };
                let (lt, ls) = self.operand(depth - 1, lmin);
                let (rt, rs) = self.operand(depth - 1, rmin);
                let (s1, s2) = (self.space(), self.space());
                let sym = op.symbol();
                // Word operators need a space; others may be glued.
                let (s1, s2) = if matches!(op, BinOp::And | BinOp::Or) {
                    (" ", " ")
                } else {
                    (s1, s2)
                };
                (
                    format!("{lt}{s1}{sym}{s2}{rt}"),
                    format!("({sym} {ls} {rs})"),
                    level,
                )
            }
            4 => {
                let (op, sym, name, level) = self.rng.pick(&[
                    ("-", "-", "neg", UNARY),
                    ("+", "+", "pos", UNARY),
                    ("~", "~", "inv", UNARY),
                    ("not", "not ", "not", NOT),
                ]);
                let (t, s) = self.operand(depth - 1, level);
                // `-<int>` would fold into a literal; keep the operator visible.
                let t = if op != "not" && t.starts_with(|c: char| c.is_ascii_digit()) {
                    format!("({t})")
                } else {
                    t
                };
                (format!("{sym}{t}"), format!("({name} {s})"), level)
            }
            5 => {
                let (rt, rs) = self.operand(depth - 1, POSTFIX);
                let n = self.rng.below(4);
                let mut texts = Vec::new();
                let mut sexprs = Vec::new();
                for i in 0..n {
                    let (t, s) = self.operand(depth - 1, LAMBDA);
                    if i + 1 == n && self.rng.chance(40) {
                        let k = self.rng.pick(&["region", "k", "like"]);
                        texts.push(format!("{k}={t}"));
                        sexprs.push(format!("{k}={s}"));
                    } else {
                        texts.push(t);
                        sexprs.push(s);
                    }
                }
                let sep = format!(",{}", self.bspace());
                let trail = if n > 0 && self.rng.chance(20) {
                    ","
                } else {
                    ""
                };
                let mut sx = format!("(call {rs}");
                for s in &sexprs {
                    sx.push(' ');
                    sx.push_str(s);
                }
                sx.push(')');
                (format!("{rt}({}{trail})", texts.join(&sep)), sx, POSTFIX)
            }
            6 => {
                let (rt, rs) = self.operand(depth - 1, POSTFIX);
                let name = self.rng.pick(&["map", "shape", "write", "overlap"]);
                let dot = if self.rng.chance(20) { "\n  ." } else { "." };
                (
                    format!("{rt}{dot}{name}"),
                    format!("(. {rs} {name})"),
                    POSTFIX,
                )
            }
            7 => {
                let (rt, rs) = self.operand(depth - 1, POSTFIX);
                let n = 1 + self.rng.below(3);
                let mut texts = Vec::new();
                let mut sexprs = Vec::new();
                for _ in 0..n {
                    let (t, s) = self.item(depth - 1);
                    texts.push(t);
                    sexprs.push(s);
                }
                (
                    format!("{rt}[{}]", texts.join(", ")),
                    format!("(index {rs} {})", sexprs.join(" ")),
                    POSTFIX,
                )
            }
            8 => {
                let n = self.rng.below(4);
                let mut texts = Vec::new();
                let mut sexprs = Vec::new();
                for _ in 0..n {
                    let (t, s) = if self.rng.chance(50) {
                        self.item(depth - 1)
                    } else {
                        self.operand(depth - 1, LAMBDA)
                    };
                    texts.push(t);
                    sexprs.push(s);
                }
                let lead = self.bspace();
                let body = texts.join(&format!(",{}", self.bspace()));
                let bracket_list = self.rng.chance(40);
                if bracket_list {
                    // Lists take plain expressions only.
                    let mut texts = Vec::new();
                    let mut sexprs = Vec::new();
                    for _ in 0..n {
                        let (t, s) = self.operand(depth - 1, LAMBDA);
                        texts.push(t);
                        sexprs.push(s);
                    }
                    let inner = if sexprs.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", sexprs.join(" "))
                    };
                    return (
                        format!("[{lead}{}]", texts.join(", ")),
                        format!("(list{inner})"),
                        POSTFIX,
                    );
                }
                let inner = if sexprs.is_empty() {
                    String::new()
                } else {
                    format!(" {}", sexprs.join(" "))
                };
                let trail = if n == 1 { "," } else { "" };
                (
                    format!("({lead}{body}{trail})"),
                    format!("(tuple{inner})"),
                    POSTFIX,
                )
            }
            _ => {
                let n = self.rng.below(3);
                let params: Vec<&str> = (0..n).map(|_| self.rng.pick(NAMES)).collect();
                let (bt, bs) = self.operand(depth - 1, LAMBDA);
                (
                    format!("|{}| {bt}", params.join(", ")),
                    format!("(lambda |{}| {bs})", params.join(" ")),
                    LAMBDA,
                )
            }
        }
    }

    /// An expression printed at binding strength `min` or stronger, parenthesised if
    /// needed (and now and then when not).
    fn operand(&mut self, depth: u32, min: u8) -> (String, String) {
        let (t, s, level) = self.expr(depth);
        if level < min || self.rng.chance(5) {
            let (a, b) = (self.bspace(), self.bspace());
            (format!("({a}{t}{b})"), s)
        } else {
            (t, s)
        }
    }

    fn item(&mut self, depth: u32) -> (String, String) {
        match self.rng.below(6) {
            0 => ("...".into(), "...".into()),
            1 => ("none".into(), "none".into()),
            2 | 3 => self.operand(depth, OR),
            _ => {
                let part = |g: &mut Gen| {
                    if g.rng.chance(50) {
                        g.operand(depth, OR)
                    } else {
                        (String::new(), "_".into())
                    }
                };
                let (a, sa) = part(self);
                let (b, sb) = part(self);
                let (c, sc) = part(self);
                let step = self.rng.chance(40) || !c.is_empty();
                let text = if step {
                    format!("{a}:{b}:{c}")
                } else {
                    format!("{a}:{b}")
                };
                (text, format!("(slice {sa} {sb} {sc})"))
            }
        }
    }

    fn atom(&mut self) -> (String, String, u8) {
        match self.rng.below(8) {
            0 | 1 => {
                let n = self.rng.pick(NAMES);
                (n.into(), n.into(), POSTFIX)
            }
            2 => {
                let v = self.rng.below(100_000) as i64;
                let text = if v > 999 && self.rng.chance(30) {
                    format!("{}_{:03}", v / 1000, v % 1000)
                } else {
                    v.to_string()
                };
                (text, v.to_string(), POSTFIX)
            }
            3 => {
                let v = -(self.rng.below(1000) as i64) - 1;
                (v.to_string(), v.to_string(), UNARY)
            }
            4 => {
                let (t, v) = self.rng.pick(&[
                    ("1.5", 1.5),
                    ("2e-3", 2e-3),
                    ("0.25", 0.25),
                    ("1E3", 1e3),
                    (".5", 0.5),
                ]);
                (t.into(), format!("{v:?}"), POSTFIX)
            }
            5 => {
                let (t, v) = self.rng.pick(&[
                    (r#""a.zarr""#, "a.zarr"),
                    (r#""say \"hi\"""#, "say \"hi\""),
                    (r#""tab\tnew\nline\\""#, "tab\tnew\nline\\"),
                    (r#""ünï # ( [""#, "ünï # ( ["),
                    (r#""""#, ""),
                ]);
                (t.into(), format!("{v:?}"), POSTFIX)
            }
            6 => {
                let w = self.rng.pick(&["true", "false", "none"]);
                (w.into(), w.into(), POSTFIX)
            }
            _ => {
                let v = i64::MIN;
                (v.to_string(), v.to_string(), UNARY)
            }
        }
    }

    fn block(&mut self, depth: u32) -> (String, String) {
        let n = self.rng.below(3);
        let mut texts = Vec::new();
        let mut sexprs = Vec::new();
        for _ in 0..n {
            let (t, s) = self.stmt(depth);
            texts.push(t);
            sexprs.push(s);
        }
        let text = if self.rng.chance(50) {
            format!("{{ {} }}", texts.join("; "))
        } else {
            format!("{{\n  {}\n}}", texts.join("\n  # comment\n  "))
        };
        (text, format!("{{{}}}", sexprs.join("; ")))
    }

    fn stmt(&mut self, depth: u32) -> (String, String) {
        let sub = depth.saturating_sub(1);
        match self.rng.below(7) {
            0 | 1 => {
                let name = self.rng.pick(NAMES);
                let (t, s) = self.operand(depth, LAMBDA);
                (format!("let {name} = {t}"), format!("(let {name} {s})"))
            }
            2 => {
                let name = self.rng.pick(NAMES);
                let n = self.rng.below(3);
                let mut pt = Vec::new();
                let mut ps = Vec::new();
                for i in 0..n {
                    let p = self.rng.pick(NAMES);
                    if i + 1 == n && self.rng.chance(50) {
                        let (t, s) = self.operand(sub, LAMBDA);
                        pt.push(format!("{p}={t}"));
                        ps.push(format!("{p}={s}"));
                    } else {
                        pt.push(p.to_owned());
                        ps.push(p.to_owned());
                    }
                }
                let (body_t, body_s) = if self.rng.chance(50) {
                    let (t, s) = self.operand(sub, LAMBDA);
                    (format!("= {t}"), format!("{{{s}}}"))
                } else {
                    self.block(sub)
                };
                (
                    format!("fn {name}({}) {body_t}", pt.join(", ")),
                    format!("(fn {name} ({}) {body_s})", ps.join(" ")),
                )
            }
            3 => {
                let v = self.rng.pick(NAMES);
                let (it, is) = self.operand(sub, LAMBDA);
                let (bt, bs) = self.block(sub);
                (
                    format!("for {v} in {it} {bt}"),
                    format!("(for {v} {is} {bs})"),
                )
            }
            4 => {
                let (ct, cs) = self.operand(sub, LAMBDA);
                let (tt, ts) = self.block(sub);
                match self.rng.below(3) {
                    0 => (format!("if {ct} {tt}"), format!("(if {cs} {ts})")),
                    1 => {
                        let (et, es) = self.block(sub);
                        (
                            format!("if {ct} {tt} else {et}"),
                            format!("(if {cs} {ts} {es})"),
                        )
                    }
                    _ => {
                        let (c2t, c2s) = self.operand(sub, LAMBDA);
                        let (t2t, t2s) = self.block(sub);
                        let (et, es) = self.block(sub);
                        (
                            format!("if {ct} {tt}\nelse if {c2t} {t2t} else {et}"),
                            format!("(if {cs} {ts} {{(if {c2s} {t2s} {es})}})"),
                        )
                    }
                }
            }
            _ => {
                let (t, s, _) = self.expr(depth);
                // A statement cannot start with `.name` on its own line, and a lambda
                // or parenthesis first is fine.
                (t, s)
            }
        }
    }

    fn script(&mut self) -> (String, String) {
        let n = 1 + self.rng.below(5);
        let mut text = String::new();
        let mut sexprs = Vec::new();
        for _ in 0..n {
            let (t, s) = self.stmt(3);
            text.push_str(&t);
            text.push_str(self.rng.pick(&["\n", ";", "\n\n", " # c\n", ";\n", "\r\n"]));
            sexprs.push(s);
        }
        (text, sexprs.join("\n"))
    }
}

// ------------------------------------------------------------ AST → notation

fn sx(e: &Expr) -> String {
    let list = |items: &[Expr]| -> String { items.iter().map(|i| format!(" {}", sx(i))).collect() };
    match &e.kind {
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Float(v) => format!("{v:?}"),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::None => "none".into(),
        ExprKind::Ellipsis => "...".into(),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Unary { op, expr } => {
            let op = match op {
                UnOp::Neg => "neg",
                UnOp::Pos => "pos",
                UnOp::Not => "not",
                UnOp::Invert => "inv",
            };
            format!("({op} {})", sx(expr))
        }
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", op.symbol(), sx(lhs), sx(rhs))
        }
        ExprKind::Call { func, args } => {
            let mut s = format!("(call {}", sx(func));
            for a in args {
                s.push(' ');
                if let Some(n) = &a.name {
                    s.push_str(&n.name);
                    s.push('=');
                }
                s.push_str(&sx(&a.value));
            }
            s + ")"
        }
        ExprKind::Attr { recv, name } => format!("(. {} {})", sx(recv), name.name),
        ExprKind::Index { recv, items } => format!("(index {}{})", sx(recv), list(items)),
        ExprKind::Slice { start, stop, step } => {
            let part = |p: &Option<Box<Expr>>| p.as_deref().map_or("_".into(), sx);
            format!("(slice {} {} {})", part(start), part(stop), part(step))
        }
        ExprKind::Tuple(items) => format!("(tuple{})", list(items)),
        ExprKind::List(items) => format!("(list{})", list(items)),
        ExprKind::Lambda { params, body } => {
            let ps: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            format!("(lambda |{}| {})", ps.join(" "), sx(body))
        }
    }
}

fn sx_block(b: &Block) -> String {
    let stmts: Vec<String> = b.stmts.iter().map(sx_stmt).collect();
    format!("{{{}}}", stmts.join("; "))
}

fn sx_stmt(s: &Stmt) -> String {
    match &s.kind {
        StmtKind::Let { name, value } => format!("(let {} {})", name.name, sx(value)),
        StmtKind::Fn { name, params, body } => {
            let ps: Vec<String> = params
                .iter()
                .map(|p| match &p.default {
                    Some(d) => format!("{}={}", p.name.name, sx(d)),
                    None => p.name.name.clone(),
                })
                .collect();
            format!("(fn {} ({}) {})", name.name, ps.join(" "), sx_block(body))
        }
        StmtKind::For { var, iter, body } => {
            format!("(for {} {} {})", var.name, sx(iter), sx_block(body))
        }
        StmtKind::If { cond, then, els } => match els {
            Some(e) => format!("(if {} {} {})", sx(cond), sx_block(then), sx_block(e)),
            None => format!("(if {} {})", sx(cond), sx_block(then)),
        },
        StmtKind::Expr(e) => sx(e),
    }
}

/// Every span in the tree lies inside the source, and children inside their parents.
fn check_spans(src: &str, script: &Script) {
    fn expr(src: &str, e: &Expr, outer: Span) {
        assert!(label_ok(src, e.span), "span {:?} in {src:?}", e.span);
        assert!(
            outer.start <= e.span.start && e.span.end <= outer.end,
            "span {:?} escapes {outer:?} in {src:?}",
            e.span
        );
        let mut kids: Vec<&Expr> = Vec::new();
        match &e.kind {
            ExprKind::Unary { expr, .. } => kids.push(expr),
            ExprKind::Binary { lhs, rhs, .. } => kids.extend([&**lhs, &**rhs]),
            ExprKind::Call { func, args } => {
                kids.push(func);
                kids.extend(args.iter().map(|a| &a.value));
            }
            ExprKind::Attr { recv, .. } => kids.push(recv),
            ExprKind::Index { recv, items } => {
                kids.push(recv);
                kids.extend(items);
            }
            ExprKind::Slice { start, stop, step } => {
                kids.extend([start, stop, step].into_iter().flatten().map(|b| &**b))
            }
            ExprKind::Tuple(items) | ExprKind::List(items) => kids.extend(items),
            ExprKind::Lambda { body, .. } => kids.push(body),
            _ => {}
        }
        for k in kids {
            expr(src, k, e.span);
        }
    }
    fn block(src: &str, b: &Block) {
        for s in &b.stmts {
            stmt(src, s);
        }
    }
    fn stmt(src: &str, s: &Stmt) {
        assert!(label_ok(src, s.span), "stmt span {:?} in {src:?}", s.span);
        let text = &src[s.span.range()];
        assert_eq!(text.trim(), text, "statement span has blanks: {text:?}");
        match &s.kind {
            StmtKind::Let { value, .. } => expr(src, value, s.span),
            StmtKind::Fn { params, body, .. } => {
                for p in params.iter().filter_map(|p| p.default.as_ref()) {
                    expr(src, p, s.span);
                }
                block(src, body);
            }
            StmtKind::For { iter, body, .. } => {
                expr(src, iter, s.span);
                block(src, body);
            }
            StmtKind::If { cond, then, els } => {
                expr(src, cond, s.span);
                block(src, then);
                if let Some(e) = els {
                    block(src, e);
                }
            }
            StmtKind::Expr(e) => expr(src, e, s.span),
        }
    }
    for s in &script.stmts {
        stmt(src, s);
    }
}

// ------------------------------------------------------------ the tests

fn valid_scripts(seed: u64, n: usize) -> Vec<(String, String)> {
    let mut g = Gen { rng: Rng(seed) };
    (0..n).map(|_| g.script()).collect()
}

#[test]
fn generated_scripts_parse_to_their_trees() {
    for (src, expected) in valid_scripts(1, 400) {
        let script = check(&src).unwrap_or_else(|| {
            let d = parse(&src, ID).err().unwrap_or_default();
            panic!("valid script rejected:\n{src}\n{d:#?}")
        });
        let got: Vec<String> = script.stmts.iter().map(sx_stmt).collect();
        assert_eq!(got.join("\n"), expected, "for script:\n{src}");
        check_spans(&src, &script);
    }
}

#[test]
fn the_canonical_example_parses() {
    let src = "# blur.tsr\nlet x = zarr(\"a.zarr\")\nlet roi = (0:512, 256:768)\n\
               x.overlap(20).map(gaussian(5)).write(\"b.zarr\", region=roi)\n";
    let script = check(src).expect("blur.tsr parses");
    assert_eq!(script.stmts.len(), 3);
    check_spans(src, &script);
}

const TOKENS: &[&str] = &[
    "let",
    "fn",
    "for",
    "in",
    "if",
    "else",
    "and",
    "or",
    "not",
    "true",
    "false",
    "none",
    "x",
    "y",
    "f",
    "1",
    "2.5",
    "1_000",
    "9223372036854775808",
    "\"s\"",
    "\"\\q\"",
    "\"",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ";",
    "\n",
    ".",
    "...",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "&",
    "|",
    "^",
    "~",
    "!",
    "#",
    "@",
    "é",
    "漢",
    "\t",
    " ",
    " ",
    "\r\n",
    "\\",
    "`",
    "$",
    "1e",
    "0x1",
    "|x|",
    "||",
];

#[test]
fn token_soup_never_panics() {
    let mut rng = Rng(2);
    for _ in 0..1500 {
        let n = rng.below(24);
        let mut src = String::new();
        for _ in 0..n {
            src.push_str(rng.pick(TOKENS));
            if rng.chance(60) {
                src.push(' ');
            }
        }
        check(&src);
    }
}

#[test]
fn mangled_scripts_never_panic() {
    let mut rng = Rng(3);
    let scripts = valid_scripts(4, 150);
    for (src, _) in &scripts {
        // Truncations, at arbitrary bytes (the cut text is made valid UTF-8 again).
        for _ in 0..4 {
            let cut = rng.below(src.len() + 1);
            check(&String::from_utf8_lossy(&src.as_bytes()[..cut]));
        }
        // Byte mutations: replace, delete, insert, duplicate a range.
        for _ in 0..6 {
            let mut b = src.as_bytes().to_vec();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(b.len() + 1);
                match rng.below(4) {
                    0 if i < b.len() => b[i] = rng.below(256) as u8,
                    1 if i < b.len() => {
                        b.remove(i);
                    }
                    2 => {
                        let t = rng.pick(TOKENS).as_bytes();
                        b.splice(i..i, t.iter().copied());
                    }
                    _ => {
                        let j = (i + rng.below(12)).min(b.len());
                        let dup = b[i..j].to_vec();
                        b.splice(j..j, dup);
                    }
                }
            }
            check(&String::from_utf8_lossy(&b));
        }
    }
}

#[test]
fn deep_and_odd_inputs_never_panic() {
    let mut inputs: Vec<String> = vec![
        String::new(),
        " ".into(),
        "\n\n\n".into(),
        "# just a comment".into(),
        "\u{feff}let x = 1".into(),
        "let x = 1\0".into(),
        "\"".into(),
        "\"\\".into(),
        "\"\\\n\"".into(),
        "é".into(),
        "let 漢 = 1".into(),
        "x\r".into(),
        "\r".into(),
        ";".into(),
        "{".into(),
        "}".into(),
        "(".repeat(500),
        ")".repeat(500),
        "[".repeat(500),
        "{".repeat(500),
        format!("{}x{}", "(".repeat(500), ")".repeat(500)),
        format!("{}x{}", "f(".repeat(199), ")".repeat(199)),
        format!("{}x{}", "[(".repeat(100), ")]".repeat(100)),
        format!("{}x", "-".repeat(10_000)),
        format!("{}x", "not ".repeat(5_000)),
        format!("{}x", "|a| ".repeat(5_000)),
        format!("x{}", " ** 2".repeat(5_000)),
        format!("x{}", " + 1".repeat(5_000)),
        format!("x{}", ".a".repeat(5_000)),
        format!("x{}", "(1)".repeat(5_000)),
        format!("if a {{}}{}", " else if a {}".repeat(2_000)),
        format!("for a in b {{{}", "\n".repeat(5_000)),
        "\n".repeat(20_000) + ".x",
        "let x = (\n".repeat(150),
        "x = 1; ".repeat(2_000),
    ];
    for depth in [150, 199, 200, 201] {
        inputs.push(format!(
            "let v = {}1{}",
            "(".repeat(depth),
            ")".repeat(depth)
        ));
    }
    for src in &inputs {
        check(src);
    }
    // Nesting up to the limit is fine.
    let ok = format!("let v = {}1{}", "(".repeat(199), ")".repeat(199));
    assert!(check(&ok).is_some());
}
