//! Source text → spanned AST. Three steps: the layout pass (`layout`) decides which
//! newlines end statements and refuses unterminated strings and absurd nesting; pest
//! parses with `grammar/tessera.pest`; `build` turns the pairs into `ast` nodes, applying
//! operator precedence. pest failures become readable diagnostics in `errors`.

mod build;
pub(crate) mod errors;
mod layout;

use pest::Parser;
use pest_derive::Parser;

use super::ast::Script;
use crate::diag::{codes, Diagnostic, SourceId, Span};

// The path is resolved from the crate root first (pest_derive looks in
// `CARGO_MANIFEST_DIR` before `src/`), so it cannot pick up a stray file outside it.
#[derive(Parser)]
#[grammar = "grammar/tessera.pest"]
struct TesseraParser;

/// Bracket depth above which parsing moves to a thread with a large stack. pest and the
/// tree builder recurse once per bracket level, with large frames in debug builds;
/// ordinary scripts stay well below this and parse on the caller's thread.
const INLINE_DEPTH: usize = 12;
const BIG_STACK: usize = 64 * 1024 * 1024;

/// Parses one source text. On failure returns at least one diagnostic; every label
/// lies inside `src`.
pub fn parse(src: &str, id: SourceId) -> Result<Script, Vec<Diagnostic>> {
    if u32::try_from(src.len()).is_err() {
        // Spans are 32-bit.
        let first = Span::new(id, 0, src.chars().next().map_or(0, char::len_utf8));
        return Err(vec![Diagnostic::error(
            codes::PARSE,
            "source text is larger than 4 GiB",
        )
        .label(first, "in this file")]);
    }
    let layout = layout::layout(src).map_err(|e| vec![errors::layout_error(e, id)])?;
    if layout.max_depth <= INLINE_DEPTH {
        return parse_laid_out(src, &layout, id);
    }
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("tessera-parse".into())
            .stack_size(BIG_STACK)
            .spawn_scoped(scope, || parse_laid_out(src, &layout, id));
        let first = Span::new(id, 0, src.chars().next().map_or(0, char::len_utf8));
        match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(vec![Diagnostic::error(
                    codes::PARSE,
                    "internal error: the parser crashed on this input",
                )
                .label(first, "while parsing this file")])
            }),
            // No thread to be had: refuse rather than risk the caller's stack.
            Err(_) => Err(vec![errors::too_deep(first)]),
        }
    })
}

fn parse_laid_out(
    src: &str,
    layout: &layout::Layout,
    id: SourceId,
) -> Result<Script, Vec<Diagnostic>> {
    let mut pairs = TesseraParser::parse(Rule::script, &layout.text)
        .map_err(|e| vec![errors::pest_error(&e, src, layout, id)])?;
    let Some(script) = pairs.next() else {
        return Ok(Script { stmts: Vec::new() });
    };
    let mut builder = build::Builder::new(src, layout, id);
    match builder.script(script) {
        Ok(script) if builder.errors.is_empty() => Ok(script),
        // An abort always records its reason, so `errors` is not empty here.
        _ => Err(builder.errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::*;

    const ID: SourceId = SourceId(7);

    /// A compact, span-free rendering of an expression, for precedence assertions.
    fn sx(e: &Expr) -> String {
        let list = |items: &[Expr]| items.iter().map(sx).collect::<Vec<_>>().join(" ");
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
            ExprKind::Index { recv, items } => format!("(index {} {})", sx(recv), list(items)),
            ExprKind::Slice { start, stop, step } => {
                let part = |p: &Option<Box<Expr>>| p.as_deref().map_or("_".into(), sx);
                format!("(slice {} {} {})", part(start), part(stop), part(step))
            }
            ExprKind::Tuple(items) => format!("(tuple {})", list(items)).replace(" )", ")"),
            ExprKind::List(items) => format!("(list {})", list(items)).replace(" )", ")"),
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

    fn script(src: &str) -> Script {
        match parse(src, ID) {
            Ok(s) => s,
            Err(d) => panic!("{src:?} failed: {d:#?}"),
        }
    }

    fn stmts(src: &str) -> String {
        let s = script(src);
        s.stmts.iter().map(sx_stmt).collect::<Vec<_>>().join("\n")
    }

    fn expr(src: &str) -> Expr {
        let s = script(src);
        assert_eq!(s.stmts.len(), 1, "{src:?}");
        match &s.stmts[0].kind {
            StmtKind::Expr(e) => e.clone(),
            other => panic!("not an expression: {other:?}"),
        }
    }

    fn ex(src: &str) -> String {
        sx(&expr(src))
    }

    fn errs(src: &str) -> Vec<Diagnostic> {
        match parse(src, ID) {
            Ok(s) => panic!("{src:?} parsed: {s:#?}"),
            Err(d) => {
                assert!(!d.is_empty());
                d
            }
        }
    }

    fn err(src: &str) -> String {
        errs(src)[0].message.clone()
    }

    fn text(src: &str, span: Span) -> &str {
        &src[span.range()]
    }

    #[test]
    fn precedence_follows_python() {
        assert_eq!(ex("1 + 2 * 3 ** 2"), "(+ 1 (* 2 (** 3 2)))");
        assert_eq!(ex("-x**2"), "(neg (** x 2))");
        assert_eq!(ex("-2 ** 2"), "(neg (** 2 2))");
        assert_eq!(ex("2**-1"), "(** 2 -1)");
        assert_eq!(ex("2 ** -x ** 2"), "(** 2 (neg (** x 2)))");
        assert_eq!(ex("2 ** 3 ** 2"), "(** 2 (** 3 2))");
        assert_eq!(ex("a < b and not c"), "(and (< a b) (not c))");
        assert_eq!(ex("x & y | z"), "(| (& x y) z)");
        assert_eq!(ex("a | b ^ c & d"), "(| a (^ b (& c d)))");
        assert_eq!(ex("a or b and c"), "(or a (and b c))");
        assert_eq!(ex("not a == b"), "(not (== a b))");
        assert_eq!(ex("not not a"), "(not (not a))");
        assert_eq!(ex("not -a ** 2 + 1"), "(not (+ (neg (** a 2)) 1))");
        assert_eq!(ex("a and not b or c"), "(or (and a (not b)) c)");
        assert_eq!(ex("a == (not b)"), "(== a (not b))");
        assert_eq!(ex("1 - 2 - 3"), "(- (- 1 2) 3)");
        assert_eq!(ex("a // b % c * d / e"), "(/ (* (% (// a b) c) d) e)");
        assert_eq!(ex("~x + -y * +z"), "(+ (inv x) (* (neg y) (pos z)))");
        assert_eq!(ex("a + b == c * d"), "(== (+ a b) (* c d))");
        assert_eq!(ex("(a + b) * c"), "(* (+ a b) c)");
        assert_eq!(ex("x.f(1)[2] ** 2"), "(** (index (call (. x f) 1) 2) 2)");
    }

    #[test]
    fn negative_literals_fold() {
        assert_eq!(ex("-3"), "-3");
        assert_eq!(ex("- 3"), "-3");
        assert_eq!(ex("-(3)"), "(neg 3)");
        assert_eq!(ex("- -3"), "(neg -3)");
        assert_eq!(ex("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(ex("x - 1"), "(- x 1)");
        assert_eq!(ex("-1.5"), "(neg 1.5)");
    }

    #[test]
    fn literals() {
        assert_eq!(ex("1_000"), "1000");
        assert_eq!(
            ex("[1.5, 2e-3, .5, 1E3, 1_0.2_5]"),
            "(list 1.5 0.002 0.5 1000.0 10.25)"
        );
        assert_eq!(ex(r#""a\"b\\c\nd\te""#), r#""a\"b\\c\nd\te""#);
        assert_eq!(ex("[true, false, none, ...]"), "(list true false none ...)");
        assert_eq!(ex("nothing"), "nothing");
        assert_eq!(ex("not_a_keyword"), "not_a_keyword");
        let e = errs("9223372036854775808");
        assert_eq!(e[0].code, codes::BAD_LITERAL);
        assert_eq!(e[0].span().map(Span::range), Some(0..19));
        let e = errs(r#"let s = "a\qb""#);
        assert_eq!(e[0].code, codes::BAD_LITERAL);
        assert_eq!(e[0].message, r"unknown escape `\q` in string");
        assert_eq!(e[0].span().map(Span::range), Some(10..12));
        assert_eq!(errs("1e999")[0].code, codes::BAD_LITERAL);
    }

    #[test]
    fn calls_attributes_and_keyword_args() {
        assert_eq!(ex("x.f(a)"), "(call (. x f) a)");
        assert_eq!(ex("x.shape"), "(. x shape)");
        assert_eq!(
            ex("write(\"b.zarr\", region=roi, like=x,)"),
            "(call write \"b.zarr\" region=roi like=x)"
        );
        assert_eq!(ex("f()"), "(call f)");
        assert_eq!(ex("f(a == b)"), "(call f (== a b))");
        let d = errs("f(k=1, 2)");
        assert_eq!(d[0].message, "positional argument after a keyword argument");
        assert_eq!(d[0].span().map(Span::range), Some(7..8));
    }

    #[test]
    fn method_chains_across_lines() {
        let src = "x.overlap(20)\n  # blur it\n  .map(gaussian(5))\n\n  .write(\"b.zarr\", region=roi)\nprint(1)";
        let s = script(src);
        assert_eq!(s.stmts.len(), 2);
        assert_eq!(
            sx_stmt(&s.stmts[0]),
            "(call (. (call (. (call (. x overlap) 20) map) (call gaussian 5)) write) \"b.zarr\" region=roi)"
        );
        let StmtKind::Expr(e) = &s.stmts[0].kind else {
            panic!()
        };
        assert_eq!(e.span.range(), 0..src.find("\nprint").unwrap());
        let ExprKind::Call { func, .. } = &e.kind else {
            panic!()
        };
        assert!(text(src, func.span).ends_with(".write"));
        // A trailing `.` continues too.
        assert_eq!(stmts("x.\n  shape"), "(. x shape)");
    }

    #[test]
    fn newlines_continue_inside_brackets_and_after_operators() {
        assert_eq!(
            stmts("let x = f(\n  a,\n  b,\n)\ny"),
            "(let x (call f a b))\ny"
        );
        assert_eq!(stmts("let x = 1 +\n  2\nx"), "(let x (+ 1 2))\nx");
        assert_eq!(stmts("let x = a and\n b"), "(let x (and a b))");
        assert_eq!(stmts("[\n1, # one\n2 # two\n]"), "(list 1 2)");
        assert_eq!(stmts("a\n-b"), "a\n(neg b)");
        assert_eq!(stmts("a\r\nb\r\n"), "a\nb");
    }

    #[test]
    fn regions_slices_and_index_forms() {
        assert_eq!(
            stmts("let roi = (0:512, 256:768)"),
            "(let roi (tuple (slice 0 512 _) (slice 256 768 _)))"
        );
        assert_eq!(ex("(0:10)"), "(tuple (slice 0 10 _))");
        assert_eq!(ex("(a)"), "a");
        assert_eq!(ex("(a,)"), "(tuple a)");
        assert_eq!(ex("()"), "(tuple)");
        assert_eq!(
            ex("(0, 100:1100, 200:1200)"),
            "(tuple 0 (slice 100 1100 _) (slice 200 1200 _))"
        );
        assert_eq!(
            ex("x[i, a:b, ::2, -1, ..., none, :, :-1, 1:2:3, 1:]"),
            "(index x i (slice a b _) (slice _ _ 2) -1 ... none (slice _ _ _) (slice _ -1 _) (slice 1 2 3) (slice 1 _ _))"
        );
        assert_eq!(ex("x[roi]"), "(index x roi)");
        assert_eq!(ex("x[1,]"), "(index x 1)");
        assert_eq!(ex("[]"), "(list)");
        assert_eq!(ex("[a, b,]"), "(list a b)");
        let src = "x[ 1 : 2 ]";
        let ExprKind::Index { items, .. } = expr(src).kind else {
            panic!()
        };
        assert_eq!(text(src, items[0].span), "1 : 2");
    }

    #[test]
    fn lambdas() {
        assert_eq!(ex("|b| b * 2 + 1"), "(lambda |b| (+ (* b 2) 1))");
        assert_eq!(ex("|a, b| a + b"), "(lambda |a b| (+ a b))");
        assert_eq!(ex("|| 1"), "(lambda || 1)");
        assert_eq!(ex("|x| |y| x or y"), "(lambda |x| (lambda |y| (or x y)))");
        assert_eq!(
            ex("x.map(|b| b * 2, k=|c| c)"),
            "(call (. x map) (lambda |b| (* b 2)) k=(lambda |c| c))"
        );
        assert_eq!(ex("(|x| x)(1)"), "(call (lambda |x| x) 1)");
        assert_eq!(ex("a | b"), "(| a b)");
    }

    #[test]
    fn function_forms() {
        let src = "fn f(a, b, c=1.0) = a + b\nfn g(a) {\n  let y = a\n  y * 2\n}\nfn h() = 0";
        assert_eq!(
            stmts(src),
            "(fn f (a b c=1.0) {(+ a b)})\n(fn g (a) {(let y a); (* y 2)})\n(fn h () {0})"
        );
        let s = script(src);
        let StmtKind::Fn { body, .. } = &s.stmts[0].kind else {
            panic!()
        };
        assert_eq!(text(src, body.span), "a + b");
        assert_eq!(text(src, body.stmts[0].span), "a + b");
        assert_eq!(text(src, s.stmts[0].span), "fn f(a, b, c=1.0) = a + b");
        assert_eq!(stmts("fn f(a)\n{\n a\n}"), "(fn f (a) {a})");
        assert_eq!(stmts("fn f(a,) = a"), "(fn f (a) {a})");
    }

    #[test]
    fn for_and_if() {
        assert_eq!(
            stmts("for r in rois(\"fovs.json\") { x[r].write(\"o.zarr\", region=r) }"),
            "(for r (call rois \"fovs.json\") {(call (. (index x r) write) \"o.zarr\" region=r)})"
        );
        assert_eq!(stmts("if a { 1 }"), "(if a {1})");
        assert_eq!(stmts("if a { 1 } else { 2 }"), "(if a {1} {2})");
        let src = "if a { 1 } else if b { 2 } else if c { 3 } else { 4 }";
        assert_eq!(stmts(src), "(if a {1} {(if b {2} {(if c {3} {4})})})");
        let s = script(src);
        let StmtKind::If { els: Some(els), .. } = &s.stmts[0].kind else {
            panic!()
        };
        assert_eq!(
            text(src, els.stmts[0].span),
            &src[src.find("if b").unwrap()..]
        );
        assert_eq!(stmts("if a {\n  1\n}\nelse {\n  2\n}"), "(if a {1} {2})");
        assert_eq!(stmts("for r in x {\n}\n"), "(for r x {})");
    }

    #[test]
    fn comments_semicolons_and_blank_lines() {
        assert_eq!(stmts(""), "");
        assert_eq!(stmts("# only a comment"), "");
        assert_eq!(stmts("\n\n;;\n"), "");
        assert_eq!(stmts("a;;b;\n\n;c # done"), "a\nb\nc");
        assert_eq!(stmts("let x = 1 # one\nlet y = 2"), "(let x 1)\n(let y 2)");
        let src = "let x = 1   # trailing\n";
        assert_eq!(text(src, script(src).stmts[0].span), "let x = 1");
        assert_eq!(stmts("for r in x { a; b }"), "(for r x {a; b})");
    }

    #[test]
    fn spans() {
        let src = "let y = a.b(1) + c[2]";
        let s = script(src);
        assert_eq!(text(src, s.stmts[0].span), src);
        let StmtKind::Let { value, name } = &s.stmts[0].kind else {
            panic!()
        };
        assert_eq!(text(src, name.span), "y");
        assert_eq!(text(src, value.span), "a.b(1) + c[2]");
        let ExprKind::Binary { lhs, rhs, .. } = &value.kind else {
            panic!()
        };
        assert_eq!(text(src, lhs.span), "a.b(1)");
        assert_eq!(text(src, rhs.span), "c[2]");
        let ExprKind::Call { func, .. } = &lhs.kind else {
            panic!()
        };
        assert_eq!(text(src, func.span), "a.b");
        assert!(s.stmts.iter().all(|s| s.span.src == ID));
    }

    #[test]
    fn error_messages() {
        assert_eq!(err("f(1 +)"), "expected an expression, found `)`");
        assert_eq!(
            err("f(1, 2"),
            "unexpected end of input: expected `)` to close this call"
        );
        assert_eq!(err("f(1 2)"), "expected `)` to close this call, found `2`");
        assert_eq!(
            err("for r in x { a"),
            "unexpected end of input: expected `}` to close this block"
        );
        assert_eq!(err("let = 3"), "expected a name after `let`, found `=`");
        assert_eq!(err("let x 3"), "expected `=` after `let x`, found `3`");
        assert_eq!(err("let s = \"abc"), "unterminated string");
        assert_eq!(err(")"), "expected a statement, found `)`");
        assert_eq!(
            err("let x = 1 2"),
            "expected the end of the statement (a newline or `;`), found `2`"
        );
        assert_eq!(
            err("if x > 1 then { }"),
            "expected `{` after the condition, found `then`"
        );
        assert_eq!(
            err("x."),
            "unexpected end of input: expected a method or property name after `.`"
        );
        assert_eq!(
            err("a + not b"),
            "`not` cannot follow `+` without parentheses"
        );
        assert_eq!(err("-not b"), "`not` cannot follow `-` without parentheses");
        assert_eq!(
            err("a ** not b"),
            "`not` cannot follow `**` without parentheses"
        );
        assert_eq!(err("let ü = 1"), "expected a name after `let`, found `ü`");
    }

    #[test]
    fn error_labels() {
        let d = &errs("f(1, 2")[0];
        assert_eq!(d.code, codes::PARSE);
        let spans: Vec<_> = d.labels.iter().map(|l| l.span.range()).collect();
        assert_eq!(spans, vec![5..6, 1..2]);
        assert_eq!(d.labels[1].message, "this `(` is never closed");
        let d = &errs("f(1 2)")[0];
        assert_eq!(d.help.as_deref(), Some("perhaps a `,` is missing?"));
        let d = &errs("let in = 2")[0];
        assert_eq!(d.span().map(Span::range), Some(4..6));
        assert_eq!(
            d.help.as_deref(),
            Some("`in` is a keyword and cannot be used as a name")
        );
        let d = &errs("let x = zeros((4, 4)\nx.write(\"o\")")[0];
        assert_eq!(
            d.help.as_deref(),
            Some("an unclosed `(` makes the following lines part of it")
        );
        let d = &errs("let y = x *\n")[0];
        assert_eq!(d.span().map(Span::range), Some(10..11));
        assert_eq!(d.labels[0].message, "expected an expression after this");
        let d = &errs("let s = \"abc\nx")[0];
        assert_eq!(d.span().map(Span::range), Some(8..12));
    }

    #[test]
    fn chained_comparisons_are_refused() {
        let d = &errs("a < b < c")[0];
        assert_eq!(d.message, "chained comparisons are not supported");
        assert_eq!(
            d.help.as_deref(),
            Some("compare pairwise: `(a < b) & (b < c)`")
        );
        assert!(parse("(a < b) & (b < c)", ID).is_ok());
        assert!(parse("(a < b) < c", ID).is_ok());
        let d = errs("a < b + 1 == c < d");
        assert_eq!(d.len(), 1, "one report per chain");
        assert_eq!(
            d[0].help.as_deref(),
            Some("compare pairwise: `(a < b + 1) & (b + 1 == c)`")
        );
        assert_eq!(
            errs("not a < b < c")[0].message,
            "chained comparisons are not supported"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}x{}", "(".repeat(150), ")".repeat(150));
        assert!(parse(&ok, ID).is_ok());
        for src in [
            "(".repeat(500),
            format!("{}x{}", "[".repeat(300), "]".repeat(300)),
            format!("{}x", "-".repeat(100_000)),
            format!("{}x", "not ".repeat(20_000)),
            format!("x{}", " + x".repeat(20_000)),
            format!("x{}", ".a".repeat(20_000)),
            format!("{}1", "|a| ".repeat(20_000)),
            format!("if a {{}}{}", " else if a {}".repeat(5_000)),
        ] {
            let d = errs(&src);
            assert_eq!(d[0].message, "nesting too deep", "{}", &src[..20]);
            let span = d[0].span().unwrap();
            assert!(span.end as usize <= src.len());
        }
    }
}
