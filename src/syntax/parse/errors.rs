//! Turns pest failures and layout problems into user-facing diagnostics. pest reports
//! the rules it tried at the furthest position it reached; this module maps those rules
//! to words ("an expression", "`)`"), picks the few that matter, names the token that
//! was found instead and adds context such as the bracket left open. Rule names never
//! reach the user.

use pest::error::{Error, ErrorVariant, InputLocation};

use super::layout::{Layout, LayoutError, MAX_NESTING};
use super::Rule;
use crate::diag::{codes, Diagnostic, SourceId, Span};

/// A token of the source as the user would name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Token {
    start: usize,
    end: usize,
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A rough tokenizer, good enough to name tokens in messages. Newlines are tokens;
/// comments and other whitespace are not.
fn tokens(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        match b[i] {
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' && b.get(i + 1).is_some_and(|&c| c != b'\n') {
                        2
                    } else {
                        1
                    };
                }
                if i < b.len() && b[i] == b'"' {
                    i += 1;
                }
            }
            c if is_ident_char(c) => {
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                // `1.5` and `1e-3` are one token.
                if c.is_ascii_digit() {
                    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                        while i < b.len() && is_ident_char(b[i]) {
                            i += 1;
                        }
                    }
                    if matches!(b[i - 1], b'e' | b'E')
                        && matches!(b.get(i), Some(b'+' | b'-'))
                        && b.get(i + 1).is_some_and(u8::is_ascii_digit)
                    {
                        i += 1;
                        while i < b.len() && is_ident_char(b[i]) {
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                let rest = &b[i..];
                let long = [
                    "...", "**", "//", "==", "!=", "<=", ">=", "&&", "||", "->", "=>",
                ]
                .iter()
                .find(|op| rest.starts_with(op.as_bytes()));
                i += match long {
                    Some(op) => op.len(),
                    None => src[i..].chars().next().map_or(1, char::len_utf8),
                };
            }
        }
        out.push(Token { start, end: i });
    }
    out
}

/// What the parser wanted, in words. Several rules share a description.
fn describe(rule: Rule) -> Option<&'static str> {
    use Rule::*;
    Some(match rule {
        expr | lambda_head | operand | postfix_expr | unary_op | float | int | string | kw_true
        | kw_false | kw_none | kw_not | ellipsis | paren | list | item | slice_stop | arg
        | kwarg | expr_stmt => "an expression",
        ident => "a name",
        param => "a parameter name",
        script | let_stmt | fn_stmt | for_stmt | if_stmt => "a statement",
        let_eq | fn_eq | default_eq | kwarg_eq => "`=`",
        params => "`(`",
        block | block_open => "`{`",
        block_close => "`}`",
        lambda_close => "`|`",
        params_close | call_close | paren_close => "`)`",
        index_close | list_close => "`]`",
        kw_in => "`in`",
        kw_if => "`if`",
        kw_else | else_if | else_block => "`else`",
        kw_let => "`let`",
        kw_fn => "`fn`",
        kw_for => "`for`",
        infix => "an operator",
        call_args | attr | index => "`(`, `.` or `[`",
        comma => "`,`",
        slice_rest | slice_step => "`:`",
        stmt_end => "a newline or `;`",
        EOI => "end of input",
        _ => return None,
    })
}

/// For a closing-bracket rule: the bracket and what it closes.
fn closer(rule: Rule) -> Option<(&'static str, &'static str)> {
    Some(match rule {
        Rule::call_close => ("`)`", "this call"),
        Rule::params_close => ("`)`", "the parameter list"),
        Rule::paren_close => ("`)`", "these parentheses"),
        Rule::index_close => ("`]`", "this index"),
        Rule::list_close => ("`]`", "this list"),
        Rule::block_close => ("`}`", "this block"),
        _ => return None,
    })
}

pub(crate) const KEYWORDS: [&str; 12] = [
    "let", "fn", "if", "else", "for", "in", "true", "false", "none", "and", "or", "not",
];

/// The context an error is reported in: the source, its tokens and the bracket pairs.
struct Ctx<'a> {
    src: &'a str,
    id: SourceId,
    tokens: Vec<Token>,
    layout: &'a Layout,
}

impl Ctx<'_> {
    fn text(&self, t: Token) -> &str {
        self.src.get(t.start..t.end).unwrap_or("")
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.id, start, end)
    }

    /// The first token at or after `pos`.
    fn token_at(&self, pos: usize) -> Option<Token> {
        let i = self.tokens.partition_point(|t| t.end <= pos);
        self.tokens.get(i).copied()
    }

    /// The last token before `pos` that is not a newline.
    fn token_before(&self, pos: usize) -> Option<Token> {
        let i = self.tokens.partition_point(|t| t.end <= pos);
        self.tokens[..i]
            .iter()
            .rev()
            .find(|t| self.text(**t) != "\n")
            .copied()
    }

    /// A span for "here" at the end of the input: the last character, or an empty span
    /// for empty input.
    fn end_span(&self) -> Span {
        let len = self.src.len();
        let start = self.src.char_indices().next_back().map_or(len, |(i, _)| i);
        self.span(start, len)
    }

    /// The innermost bracket of `kind` that is open at `pos`.
    fn open_bracket(&self, pos: usize, kind: u8) -> Option<(usize, bool)> {
        self.layout
            .brackets
            .iter()
            .filter(|b| b.kind == kind && b.open < pos && b.close.is_none_or(|c| c >= pos))
            .map(|b| (b.open, b.close.is_none()))
            .next_back()
    }
}

fn quote(text: &str) -> String {
    let shown: String = text.chars().take(30).collect();
    let cut = shown.len() < text.len();
    // Control characters would be invisible (or worse) in a terminal.
    let mut t: String = shown
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if cut {
        t.push('…');
    }
    if t.contains('`') {
        format!("`` {t} ``")
    } else {
        format!("`{t}`")
    }
}

fn starts_expression(text: &str) -> bool {
    text.bytes()
        .next()
        .is_some_and(|c| is_ident_char(c) || matches!(c, b'"' | b'(' | b'[' | b'|'))
        && !matches!(
            text,
            "and" | "or" | "in" | "else" | "let" | "fn" | "for" | "if"
        )
}

/// Join descriptions as "a, b or c".
fn one_of(items: &[&str]) -> String {
    match items {
        [] => "something else".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

pub(super) fn layout_error(e: LayoutError, id: SourceId) -> Diagnostic {
    match e {
        LayoutError::Unterminated { start, end } => {
            Diagnostic::error(codes::PARSE, "unterminated string")
                .label(
                    Span::new(id, start, end.max(start + 1)),
                    "this string has no closing `\"`",
                )
                .help(r#"close it with `"`; a string cannot span lines (write `\n` for a newline)"#)
        }
        LayoutError::TooDeep { pos } => too_deep(Span::new(id, pos, pos + 1)),
    }
}

pub(super) fn too_deep(span: Span) -> Diagnostic {
    Diagnostic::error(codes::PARSE, "nesting too deep")
        .label(
            span,
            format!("brackets are nested more than {MAX_NESTING} levels deep here"),
        )
        .help("split the expression into smaller pieces with `let` bindings")
}

pub(super) fn pest_error(
    err: &Error<Rule>,
    src: &str,
    layout: &Layout,
    id: SourceId,
) -> Diagnostic {
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
    .min(src.len());
    let ctx = Ctx {
        src,
        id,
        tokens: tokens(src),
        layout,
    };
    let positives = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        // pest's own guards (stack or call limits) are the only custom errors.
        ErrorVariant::CustomError { .. } => {
            let span = ctx
                .token_at(pos)
                .map_or(ctx.end_span(), |t| ctx.span(t.start, t.end));
            return too_deep(span);
        }
    };
    message(&ctx, pos, &positives)
}

/// Builds the diagnostic for a failure at `pos` where pest would have accepted one of
/// `positives`. The checks run from the most specific reading to the most generic: a
/// name or `=` or `in` the statement keyword needs, an unclosed bracket, a statement, an
/// expression, a block, the end of a statement, and finally a plain list.
fn message(ctx: &Ctx<'_>, pos: usize, positives: &[Rule]) -> Diagnostic {
    let has = |r: Rule| positives.contains(&r);
    let found_tok = ctx.token_at(pos);
    let found_text = found_tok.map(|t| ctx.text(t));
    let at_eoi = found_tok.is_none();
    let found = match found_text {
        None => "end of input".to_owned(),
        Some("\n") => "end of line".to_owned(),
        Some(t) => quote(t),
    };
    let prev = ctx.token_before(pos);
    let prev_text = prev.map_or("", |t| ctx.text(t));
    // At the end of input, point at the last token: what it lacks comes after it.
    let here = match (found_tok, prev) {
        (Some(t), _) | (None, Some(t)) => ctx.span(t.start, t.end),
        (None, None) => ctx.end_span(),
    };
    let on_new_line = match (found_tok, prev) {
        (Some(f), Some(p)) => ctx
            .src
            .get(p.end..f.start)
            .is_some_and(|gap| gap.contains('\n')),
        _ => false,
    };

    let mut descs: Vec<&str> = Vec::new();
    for d in positives.iter().filter_map(|&r| describe(r)) {
        if !descs.contains(&d) {
            descs.push(d);
        }
    }
    let wants_expr = descs.contains(&"an expression");
    let open_closer = positives
        .iter()
        .filter_map(|&r| closer(r).map(|c| (r, c)))
        .find(|(r, _)| *r != Rule::block_close || at_eoi || !has(Rule::stmt_end));

    let mut help: Option<String> = None;
    let mut extra: Option<(Span, String)> = None;
    let (what, label): (String, String) = if has(Rule::ident)
        && matches!(prev_text, "let" | "fn" | "for" | ".")
    {
        let what = match prev_text {
            "let" => "a name after `let`",
            "fn" => "a function name after `fn`",
            "for" => "a loop variable name after `for`",
            _ => "a method or property name after `.`",
        };
        if let Some(t) = found_text.filter(|t| KEYWORDS.contains(t)) {
            help = Some(format!("`{t}` is a keyword and cannot be used as a name"));
        }
        (what.to_owned(), "expected a name".to_owned())
    } else if has(Rule::ident) && (has(Rule::params_close) || has(Rule::lambda_close)) {
        let close = if has(Rule::params_close) {
            "`)`"
        } else {
            "`|`"
        };
        (
            format!("a parameter name or {close}"),
            "expected a parameter name".to_owned(),
        )
    } else if has(Rule::let_eq) {
        (
            format!("`=` after `let {prev_text}`"),
            "expected `=`".to_owned(),
        )
    } else if has(Rule::kw_in) {
        (
            format!("`in` after `for {prev_text}`"),
            "expected `in`".to_owned(),
        )
    } else if has(Rule::params) {
        help = Some("a function needs a parameter list, even an empty one: `fn f() = ...`".into());
        (
            format!("`(` after `fn {prev_text}`"),
            "expected `(`".to_owned(),
        )
    } else if has(Rule::fn_eq) {
        (
            "`=` or `{` to start the function body".to_owned(),
            "expected `=` or `{`".to_owned(),
        )
    } else if let (Some((_, (bracket, closes))), true) = (open_closer, at_eoi || !wants_expr) {
        let kind = bracket.as_bytes()[1];
        let open = match kind {
            b')' => b'(',
            b']' => b'[',
            _ => b'{',
        };
        let mut unclosed = false;
        if let Some((at, never_closed)) = ctx.open_bracket(pos, open) {
            unclosed = never_closed;
            let msg = if unclosed {
                format!("this `{}` is never closed", open as char)
            } else {
                format!("to match this `{}`", open as char)
            };
            extra = Some((ctx.span(at, at + 1), msg));
        }
        let read_on = unclosed && on_new_line && kind != b'}';
        if read_on {
            // Inside an open bracket newlines do not end statements, so the next line
            // was read as more arguments; the missing bracket is the real problem.
            help = Some(format!(
                "an unclosed `{}` makes the following lines part of it",
                open as char
            ));
        } else if !at_eoi && has(Rule::comma) && found_text.is_some_and(starts_expression) {
            help = Some("perhaps a `,` is missing?".into());
        }
        let label = if read_on {
            format!("expected {bracket} before this")
        } else {
            format!("expected {bracket}")
        };
        (format!("{bracket} to close {closes}"), label)
    } else if has(Rule::kw_let) || has(Rule::script) {
        if found_text == Some("else") {
            help = Some("`else` goes right after the `}` of an `if` block".into());
        }
        ("a statement".to_owned(), "expected a statement".to_owned())
    } else if wants_expr {
        if found_text == Some("=") {
            help = Some("`=` is not an operator; compare with `==`".into());
        }
        (
            "an expression".to_owned(),
            "expected an expression".to_owned(),
        )
    } else if has(Rule::block) || has(Rule::block_open) {
        if found_text == Some("=") {
            help = Some("compare with `==`".into());
        }
        let after = match ctx
            .tokens
            .iter()
            .rev()
            .find(|t| t.end <= pos && matches!(ctx.text(**t), "if" | "for" | "else" | "fn"))
        {
            Some(t) if ctx.text(*t) == "else" => "after `else`",
            Some(t) if ctx.text(*t) == "if" => "after the condition",
            Some(t) if ctx.text(*t) == "for" => "to start the loop body",
            _ => "to start the block",
        };
        (format!("`{{` {after}"), "expected `{`".to_owned())
    } else if has(Rule::stmt_end) || has(Rule::EOI) {
        if found_text.is_some_and(starts_expression) {
            help = Some(
                "perhaps an operator or a `,` is missing, or this belongs on a new line?".into(),
            );
        } else if found_text == Some("=") {
            help = Some("compare with `==`; to bind a name write `let name = ...`".into());
        }
        (
            "the end of the statement (a newline or `;`)".to_owned(),
            "expected a newline or `;`".to_owned(),
        )
    } else {
        let what = one_of(&descs[..descs.len().min(4)]);
        (what.clone(), format!("expected {what}"))
    };

    if help.is_none() {
        help = match found_text {
            Some("!") => Some("negation is `not x` (or `~x` elementwise)".into()),
            Some("&&") => Some("logical and is `and` (or `&` elementwise)".into()),
            Some("||") => Some("logical or is `or` (or `|` elementwise)".into()),
            _ => None,
        };
    }

    let message = if at_eoi {
        format!("unexpected end of input: expected {what}")
    } else {
        format!("expected {what}, found {found}")
    };
    let label = if at_eoi && prev.is_some() {
        format!("{label} after this")
    } else {
        label
    };
    let mut d = Diagnostic::error(codes::PARSE, message);
    d = match extra {
        // At the end of input the opener may be the very last character.
        Some((span, msg)) if span == here => d.label(span, msg),
        Some((span, msg)) => d.label(here, label).label(span, msg),
        None => d.label(here, label),
    };
    if let Some(h) = help {
        d = d.help(h);
    }
    d
}
