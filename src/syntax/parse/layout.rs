//! The layout pass: a light scan over the source that runs before pest and decides which
//! newlines end a statement. pest has no notion of "inside brackets", so instead of
//! teaching the grammar bracket context, every newline that merely continues an
//! expression is rewritten to `\r`, which the grammar treats as whitespace. The
//! replacement has the same byte length, so every pest position is a source position.
//!
//! A newline continues the current statement when
//! - it is inside `(...)` or `[...]` (but not directly inside a `{...}` block),
//! - the line so far ends with a binary operator, `=`, `.`, `~`, or one of the keywords
//!   `and or not in let fn for if else` (nothing can end there),
//! - or the next non-blank, non-comment line starts with `.name` (a method chain written
//!   one call per line), `else` (`}` and `else` on separate lines) or `{`.
//!
//! The scan also finds the problems pest reports badly: unterminated strings and bracket
//! nesting deep enough to threaten the stack. It records every bracket pair so that
//! errors can point back at an unclosed opener.

/// Deepest bracket nesting accepted; deeper input is refused before pest runs.
pub(super) const MAX_NESTING: usize = 200;

/// One opening bracket and where it is closed, if anywhere.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bracket {
    pub open: usize,
    pub close: Option<usize>,
    pub kind: u8,
}

pub(super) struct Layout {
    /// The source with continuation newlines replaced by `\r`.
    pub text: String,
    /// Every opening bracket, in source order.
    pub brackets: Vec<Bracket>,
    /// The deepest bracket nesting seen.
    pub max_depth: usize,
    /// Byte ranges of comments, in order (pest spans can end in one; see `trim_end`).
    pub comments: Vec<(usize, usize)>,
}

impl Layout {
    /// pest lets a rule that ends in an optional or repeated part absorb the whitespace
    /// and comments before the part it did not find. This moves `end` back over them so
    /// spans end at the last real token.
    pub fn trim_end(&self, start: usize, mut end: usize) -> usize {
        let b = self.text.as_bytes();
        loop {
            while end > start && matches!(b.get(end - 1), Some(b' ' | b'\t' | b'\r')) {
                end -= 1;
            }
            let i = self.comments.partition_point(|&(_, e)| e < end);
            match self.comments.get(i) {
                Some(&(s, e)) if e == end && s >= start => end = s,
                _ => return end,
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum LayoutError {
    /// A string starting at `start` that runs into the end of its line at `end`.
    Unterminated { start: usize, end: usize },
    /// The bracket at `pos` is nested more than `MAX_NESTING` deep.
    TooDeep { pos: usize },
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Words after which a line cannot end a statement.
fn word_continues(word: &[u8]) -> bool {
    matches!(
        word,
        b"and" | b"or" | b"not" | b"in" | b"let" | b"fn" | b"for" | b"if" | b"else"
    )
}

/// Whether the first token after `from` (skipping blank lines and comments) makes the
/// preceding newline a continuation. Returns that answer and where the token starts, so
/// the caller can reuse it for every newline in between.
fn next_line_continues(b: &[u8], from: usize) -> (bool, usize) {
    let mut k = from;
    while k < b.len() {
        match b[k] {
            b' ' | b'\t' | b'\r' | b'\n' => k += 1,
            b'#' => {
                while k < b.len() && b[k] != b'\n' && b[k] != b'\r' {
                    k += 1;
                }
            }
            _ => break,
        }
    }
    let rest = &b[k.min(b.len())..];
    let answer = match rest {
        [b'.', c, ..] => is_ident_start(*c),
        [b'{', ..] => true,
        _ => rest.starts_with(b"else") && !rest.get(4).copied().is_some_and(is_ident_char),
    };
    (answer, k)
}

pub(super) fn layout(src: &str) -> Result<Layout, LayoutError> {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut brackets: Vec<Bracket> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut max_depth = 0;
    let mut comments = Vec::new();
    // Does the last significant token leave the expression unfinished?
    let mut continues = false;
    // The look-ahead answer for a run of blank lines: (valid up to, answer).
    let mut lookahead: Option<(usize, bool)> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' => {
                let start = i;
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
                comments.push((start, i));
            }
            b'\n' => {
                let in_parens = open.last().is_some_and(|&k| brackets[k].kind != b'{');
                let cont = in_parens
                    || continues
                    || match lookahead {
                        Some((upto, answer)) if i < upto => answer,
                        _ => {
                            let (answer, upto) = next_line_continues(b, i + 1);
                            lookahead = Some((upto, answer));
                            answer
                        }
                    };
                if cont {
                    out[i] = b'\r';
                }
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match b.get(i) {
                        None | Some(b'\n') => {
                            return Err(LayoutError::Unterminated { start, end: i })
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if b.get(i + 1).is_some_and(|&n| n != b'\n') => i += 2,
                        Some(_) => i += 1,
                    }
                }
                continues = false;
            }
            b'(' | b'[' | b'{' => {
                if open.len() >= MAX_NESTING {
                    return Err(LayoutError::TooDeep { pos: i });
                }
                open.push(brackets.len());
                brackets.push(Bracket {
                    open: i,
                    close: None,
                    kind: c,
                });
                max_depth = max_depth.max(open.len());
                continues = false;
                i += 1;
            }
            b')' | b']' | b'}' => {
                if let Some(k) = open.pop() {
                    brackets[k].close = Some(i);
                }
                continues = false;
                i += 1;
            }
            b'.' if b[i..].starts_with(b"...") => {
                continues = false;
                i += 3;
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|' | b'^' | b'~' | b'=' | b'<' | b'>'
            | b'.' => {
                continues = true;
                i += 1;
            }
            // `!=` is an operator; a lone `!` is an error pest will report.
            b'!' => {
                continues = b.get(i + 1) == Some(&b'=');
                i += 1;
            }
            _ if is_ident_char(c) => {
                let start = i;
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                continues = word_continues(&b[start..i]);
            }
            _ => {
                continues = false;
                i += 1;
            }
        }
    }
    // Only ASCII bytes were replaced by ASCII bytes, so this cannot fail; fall back to
    // the original text rather than panic if it somehow did.
    let text = String::from_utf8(out).unwrap_or_else(|_| src.to_owned());
    Ok(Layout {
        text,
        brackets,
        max_depth,
        comments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(src: &str) -> String {
        layout(src).unwrap().text.replace('\r', "~")
    }

    #[test]
    fn newlines_inside_parens_continue() {
        assert_eq!(text("f(a,\n b)\nx"), "f(a,~ b)\nx");
        assert_eq!(text("for r in x {\n a(\n)\n}"), "for r in x {\n a(~)\n}");
    }

    #[test]
    fn operators_and_leading_dots_continue() {
        assert_eq!(text("a +\n b\nc"), "a +~ b\nc");
        assert_eq!(text("x\n  # note\n  .map(f)\ny"), "x~  # note~  .map(f)\ny");
        assert_eq!(text("}\nelse {"), "}~else {");
        assert_eq!(text("x\n...\n"), "x\n...\n");
        assert_eq!(text("a\n.5"), "a\n.5");
    }

    #[test]
    fn strings_and_comments_hide_brackets() {
        assert_eq!(text("f(\"(\")\nx # (\ny"), "f(\"(\")\nx # (\ny");
        assert_eq!(
            layout("let s = \"abc\nx").err(),
            Some(LayoutError::Unterminated { start: 8, end: 12 })
        );
    }

    #[test]
    fn trim_end_skips_trailing_blanks_and_comments() {
        let src = "let x = 1  # one\t# two\n";
        let l = layout(src).unwrap();
        assert_eq!(l.trim_end(0, 22), 9);
        // A comment that starts before the span is not the span's to drop.
        assert_eq!(l.trim_end(12, 16), 16);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "(".repeat(MAX_NESTING + 1);
        assert_eq!(
            layout(&deep).err(),
            Some(LayoutError::TooDeep { pos: MAX_NESTING })
        );
        assert!(layout(&"(".repeat(MAX_NESTING)).is_ok());
    }
}
