//! Lexical look at unfinished input: when an entry needs more lines, how piped text splits
//! into entries, and what surrounds the cursor (open strings, open calls) for completion
//! and hints. It mirrors the parser's layout rules (`syntax::parse::layout`) on purpose:
//! the REPL must ask for another line exactly when the parser would join it.

use std::collections::VecDeque;

/// Deepest nesting the REPL waits on; deeper input goes to the parser, which refuses it
/// with a proper diagnostic instead of leaving the user at a `...` prompt.
const MAX_WAIT_DEPTH: usize = 200;

/// What a left-to-right scan knows at the end of some text.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Scan {
    /// Unclosed brackets: byte offset and the bracket byte.
    pub open: Vec<(usize, u8)>,
    /// Byte offset just after the opening quote when the text ends inside a string.
    pub string_start: Option<usize>,
    /// The text ends inside a comment.
    pub in_comment: bool,
    /// The last token leaves the statement unfinished (a binary operator, `=`, `.`, or a
    /// keyword such as `and`).
    pub continues: bool,
    /// A string ran into the end of its line: the parser will report it, so waiting for
    /// more input would only hide the error.
    pub broken_string: bool,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

pub(crate) fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Words after which a line cannot end a statement (as in the parser's layout pass).
fn word_continues(w: &[u8]) -> bool {
    matches!(
        w,
        b"and" | b"or" | b"not" | b"in" | b"let" | b"fn" | b"for" | b"if" | b"else"
    )
}

/// Scan `text` from the start.
pub(crate) fn scan(text: &str) -> Scan {
    let b = text.as_bytes();
    let mut s = Scan::default();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                if i >= b.len() {
                    s.in_comment = true;
                }
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                loop {
                    match b.get(i) {
                        None => {
                            s.string_start = Some(start);
                            break;
                        }
                        Some(b'\n') => {
                            s.broken_string = true;
                            break;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if b.get(i + 1).is_some_and(|&n| n != b'\n') => i += 2,
                        Some(_) => i += 1,
                    }
                }
                s.continues = false;
            }
            b'(' | b'[' | b'{' => {
                s.open.push((i, c));
                s.continues = false;
                i += 1;
            }
            b')' | b']' | b'}' => {
                s.open.pop();
                s.continues = false;
                i += 1;
            }
            b'.' if b[i..].starts_with(b"...") => {
                s.continues = false;
                i += 3;
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|' | b'^' | b'~' | b'=' | b'<' | b'>'
            | b'.' => {
                s.continues = true;
                i += 1;
            }
            b'!' => {
                s.continues = b.get(i + 1) == Some(&b'=');
                i += 1;
            }
            _ if is_ident_char(c) => {
                let start = i;
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                s.continues = word_continues(&b[start..i]);
            }
            _ => {
                s.continues = false;
                // Skip a whole UTF-8 character so offsets stay on char boundaries.
                i += text
                    .get(i..)
                    .and_then(|t| t.chars().next())
                    .map_or(1, char::len_utf8);
            }
        }
    }
    s
}

/// Does this input need more lines: an open bracket (also an unfinished `{` block) or a
/// trailing operator or keyword? An unterminated string does not: strings end at the end
/// of their line, so the parser reports it right away.
pub fn needs_more(src: &str) -> bool {
    let s = scan(src);
    if s.broken_string || s.string_start.is_some() || s.open.len() > MAX_WAIT_DEPTH {
        return false;
    }
    !s.open.is_empty() || s.continues
}

/// Is the line blank or only a comment?
pub(crate) fn is_blank(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// Does a line starting this way continue the statement before it? The parser joins a
/// method chain written one call per line (`.map(f)`), `else` after `}`, and a `{` on
/// its own line.
pub(crate) fn continues_previous(line: &str) -> bool {
    let t = line.trim_start().as_bytes();
    match t {
        [b'.', c, ..] => is_ident_start(*c),
        [b'{', ..] => true,
        _ => t.starts_with(b"else") && !t.get(4).copied().is_some_and(is_ident_char),
    }
}

/// One unit of piped input.
#[derive(Debug, PartialEq)]
pub(crate) enum Piece {
    /// A REPL command line such as `:help`.
    Command(String),
    /// Source text of one or more complete statements.
    Code(String),
}

/// Splits lines into entries the way the parser would: brackets and trailing operators
/// continue a statement, and so does a following line that starts a method chain or an
/// `else`. Reads one significant line ahead, never more.
pub(crate) struct Entries<I: Iterator<Item = String>> {
    lines: I,
    ahead: VecDeque<String>,
}

impl<I: Iterator<Item = String>> Entries<I> {
    pub(crate) fn new(lines: I) -> Self {
        Entries {
            lines,
            ahead: VecDeque::new(),
        }
    }

    fn next_line(&mut self) -> Option<String> {
        self.ahead.pop_front().or_else(|| self.lines.next())
    }

    /// The next significant line, read ahead and kept for later.
    fn peek_significant(&mut self) -> Option<&str> {
        if !self.ahead.iter().any(|l| !is_blank(l)) {
            for l in self.lines.by_ref() {
                let sig = !is_blank(&l);
                self.ahead.push_back(l);
                if sig {
                    break;
                }
            }
        }
        self.ahead.iter().find(|l| !is_blank(l)).map(|s| s.as_str())
    }
}

impl<I: Iterator<Item = String>> Iterator for Entries<I> {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        let mut buf = String::new();
        loop {
            let Some(line) = self.next_line() else {
                return (!buf.trim().is_empty()).then_some(Piece::Code(buf));
            };
            if buf.is_empty() {
                if is_blank(&line) {
                    continue;
                }
                if line.trim_start().starts_with(':') {
                    return Some(Piece::Command(line.trim().to_string()));
                }
            }
            buf.push_str(&line);
            buf.push('\n');
            if needs_more(&buf) {
                continue;
            }
            if self.peek_significant().is_some_and(continues_previous) {
                continue;
            }
            return Some(Piece::Code(buf));
        }
    }
}

/// The call whose arguments the cursor is in.
#[derive(Debug, PartialEq)]
pub(crate) struct CallSite {
    /// The callee as written: `gaussian`, or `x.map` for a method.
    pub callee: String,
    /// Byte offset of the `(`.
    pub open: usize,
    /// Top-level commas between the `(` and the cursor.
    pub commas: usize,
    /// Keyword arguments already given (`name=` at the call's top level).
    pub keywords: Vec<String>,
    /// The cursor is where an argument starts (after `(` or `,` and blanks).
    pub at_arg_start: bool,
}

/// The innermost unclosed call around the end of `text`, if the text is not inside a
/// string or comment.
pub(crate) fn call_site(text: &str) -> Option<CallSite> {
    let s = scan(text);
    if s.string_start.is_some() || s.in_comment {
        return None;
    }
    let &(open, kind) = s.open.last()?;
    if kind != b'(' {
        return None;
    }
    let callee = callee_before(&text[..open])?;
    // Walk the arguments at the call's own depth.
    let args = &text[open + 1..];
    let b = args.as_bytes();
    let mut depth = 0i32;
    let mut commas = 0;
    let mut keywords = Vec::new();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' | b'\n' => in_str = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => commas += 1,
            b'=' if depth == 0 && b.get(i + 1) != Some(&b'=') => {
                let before = args[..i].trim_end();
                let prev = before.as_bytes().last().copied();
                if !matches!(prev, Some(b'=' | b'!' | b'<' | b'>')) {
                    let w = trailing_word(before);
                    if !w.is_empty() {
                        keywords.push(w.to_string());
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    let before_word = text[..text.len() - trailing_word(text).len()].trim_end();
    // The innermost open bracket is this call's, so a `(` or `,` right before the word
    // belongs to it.
    let at_arg_start = matches!(before_word.as_bytes().last(), Some(b'(' | b','));
    Some(CallSite {
        callee,
        open,
        commas,
        keywords,
        at_arg_start,
    })
}

/// The identifier characters at the end of `text`.
pub(crate) fn trailing_word(text: &str) -> &str {
    let b = text.as_bytes();
    let mut i = b.len();
    while i > 0 && is_ident_char(b[i - 1]) {
        i -= 1;
    }
    &text[i..]
}

/// The callee written right before a `(`: `name` or `recv.name` (receiver kept as text).
fn callee_before(text: &str) -> Option<String> {
    let t = text.trim_end();
    let name = trailing_word(t);
    if name.is_empty() || !is_ident_start(name.as_bytes()[0]) {
        return None;
    }
    let rest = &t[..t.len() - name.len()];
    if let Some(recv) = rest.strip_suffix('.') {
        let start = receiver_start(recv)?;
        return Some(format!("{}.{name}", recv[start..].trim()));
    }
    Some(name.to_string())
}

/// Where the postfix expression ending `text` starts: a name followed by calls, indexes
/// and attributes, or a parenthesised group. `None` when it is not such an expression.
pub(crate) fn receiver_start(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = text.trim_end().len();
    loop {
        if i == 0 {
            return None;
        }
        match b[i - 1] {
            b')' | b']' => {
                // Back to the matching opener; strings in between are rare enough in a
                // receiver that a plain bracket count is good enough.
                let mut depth = 0i32;
                let mut j = i;
                loop {
                    if j == 0 {
                        return None;
                    }
                    j -= 1;
                    match b[j] {
                        b')' | b']' => depth += 1,
                        b'(' | b'[' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                i = j;
                // A group with nothing callable before it is the whole receiver.
                let before = &text[..i];
                if trailing_word(before).is_empty() && !before.ends_with(')') {
                    return if b[i] == b'(' { Some(i) } else { None };
                }
            }
            c if is_ident_char(c) => {
                let w = trailing_word(&text[..i]);
                i -= w.len();
                if w.as_bytes()[0].is_ascii_digit() {
                    return None;
                }
                if i > 0 && b[i - 1] == b'.' {
                    i -= 1;
                } else {
                    return Some(i);
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_brackets_and_blocks_continue() {
        assert!(needs_more("let x = (1,\n"));
        assert!(needs_more("let x = zeros((4, 4),\n"));
        assert!(needs_more("fn f(a) {\n"));
        assert!(needs_more("for r in [1, 2] {\n  print(r)\n"));
        assert!(!needs_more("for r in [1, 2] {\n  print(r)\n}\n"));
        assert!(!needs_more("let y = x[1]\n"));
    }

    #[test]
    fn trailing_operators_and_keywords_continue() {
        assert!(needs_more("let y = 1 +\n"));
        assert!(needs_more("let y = x.\n"));
        assert!(needs_more("let y = a and\n"));
        assert!(needs_more("let y =\n"));
        assert!(needs_more("let y = 1 != # comment\n"));
        assert!(!needs_more("let y = 1 + 2\n"));
        assert!(!needs_more("let color = 1\n"), "`or` inside a word");
        assert!(!needs_more("let band = 1 # and\n"));
        assert!(!needs_more("x[...]\n"));
    }

    #[test]
    fn strings_and_comments_hide_brackets() {
        assert!(!needs_more("print(\"(\")\n"));
        assert!(!needs_more("print(1) # (\n"));
        assert!(!needs_more("print(\"a\\\"(\")\n"));
        // An unterminated string is the parser's to report, not a reason to wait.
        assert!(!needs_more("print(\"abc\n"));
        assert!(!needs_more("let s = \"abc\n"));
    }

    #[test]
    fn stray_closers_and_blank_input_do_not_wait() {
        assert!(!needs_more(")\n"));
        assert!(!needs_more(""));
        assert!(!needs_more("\n\n"));
        assert!(!needs_more(&"(".repeat(MAX_WAIT_DEPTH + 1)));
        assert!(needs_more("f(\"é\", \u{1F600}"));
        assert!(!needs_more("let é = \u{1F600}"));
    }

    #[test]
    fn scan_reports_open_string() {
        let s = scan("zarr(\"data/a");
        assert_eq!(s.string_start, Some(6));
        assert_eq!(s.open, vec![(4, b'(')]);
        assert!(scan("x # note").in_comment);
    }

    fn pieces(src: &str) -> Vec<Piece> {
        Entries::new(src.lines().map(String::from)).collect()
    }

    #[test]
    fn entries_join_multi_line_statements() {
        let p = pieces("let a = (1,\n 2)\n\n# note\nprint(a)\n:help zeros\nlet b = 1 +\n  2\n");
        assert_eq!(
            p,
            vec![
                Piece::Code("let a = (1,\n 2)\n".into()),
                Piece::Code("print(a)\n".into()),
                Piece::Command(":help zeros".into()),
                Piece::Code("let b = 1 +\n  2\n".into()),
            ]
        );
    }

    #[test]
    fn entries_join_method_chains_and_else() {
        let p = pieces("let y = x\n  # c\n  .map(f)\nif a { 1 }\nelse { 2 }\nz");
        assert_eq!(
            p,
            vec![
                Piece::Code("let y = x\n  # c\n  .map(f)\n".into()),
                Piece::Code("if a { 1 }\nelse { 2 }\n".into()),
                Piece::Code("z\n".into()),
            ]
        );
        assert_eq!(pieces("\n# only a comment\n"), vec![]);
        assert_eq!(
            pieces("let x = (1,"),
            vec![Piece::Code("let x = (1,\n".into())]
        );
    }

    #[test]
    fn call_sites() {
        let c = call_site("zeros((4, 4), dt").unwrap();
        assert_eq!(c.callee, "zeros");
        assert_eq!(c.commas, 1);
        assert!(c.at_arg_start);
        let c = call_site("x.overlap(2, boundary=\"wrap\", ").unwrap();
        assert_eq!(c.callee, "x.overlap");
        assert_eq!(c.keywords, vec!["boundary"]);
        assert_eq!(c.commas, 2);
        let c = call_site("zarr(\"a\").map(gaussian(").unwrap();
        assert_eq!(c.callee, "gaussian");
        assert!(c.at_arg_start);
        let c = call_site("f(a == b").unwrap();
        assert!(c.keywords.is_empty());
        assert!(!c.at_arg_start);
        assert_eq!(call_site("zarr(\"a").map(|c| c.callee), None);
        assert_eq!(call_site("(1 + "), None);
        assert_eq!(call_site("x[1, "), None);
        let c = call_site("x[0:2].astype(").unwrap();
        assert_eq!(c.callee, "x[0:2].astype");
    }

    #[test]
    fn receivers() {
        assert_eq!(receiver_start("let y = x"), Some(8));
        assert_eq!(receiver_start("let y = x[0].map(f)"), Some(8));
        assert_eq!(receiver_start("(x + 1)"), Some(0));
        assert_eq!(receiver_start("1"), None);
        assert_eq!(receiver_start("f(1"), None);
        assert_eq!(receiver_start(""), None);
    }
}
