//! Diagnostics: source spans, the `Diagnostic` value every stage returns, and rendering
//! (the only place that uses ariadne).

pub mod codes;

use std::fmt;
use std::ops::Range;

/// Identifies one source text (a script, a stdlib file, a REPL line).
#[derive(
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
)]
pub struct SourceId(pub u32);

/// A byte range inside one source.
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default,
)]
pub struct Span {
    pub src: SourceId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(src: SourceId, start: usize, end: usize) -> Span {
        Span {
            src,
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both (they must come from the same source).
    pub fn to(self, other: Span) -> Span {
        if self.src != other.src {
            return self;
        }
        Span {
            src: self.src,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// All sources a program was built from, so spans can be rendered.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<(String, String)>,
}

impl SourceMap {
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> SourceId {
        self.files.push((name.into(), text.into()));
        SourceId(self.files.len() as u32 - 1)
    }

    pub fn name(&self, id: SourceId) -> &str {
        &self.files[id.0 as usize].0
    }

    pub fn text(&self, id: SourceId) -> &str {
        &self.files[id.0 as usize].1
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The source text a span points at.
    pub fn snippet(&self, span: Span) -> &str {
        let t = self.text(span.src);
        t.get(span.range()).unwrap_or("")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// A user-facing problem with a stable code, a primary span and optional extra labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The first label is the primary one; it may be absent for errors with no location
    /// (e.g. a failure while writing a chunk).
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{kind}[{}]: {}", self.code, self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Is `c` unsafe to print raw: a control character (C0 including newline, DEL, C1) or a
/// character that reorders or hides text (bidirectional controls, line separators, zero
/// width)? Such characters in a path or a stored name could move the cursor, recolour
/// the terminal or make one name look like another.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

fn escape_where(s: &str, keep: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| unsafe_char(c) && !keep(c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c) || keep(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c => {
                use fmt::Write as _;
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Untrusted text (a path, a dtype or codec name from zarr.json, an attribute) as it is
/// quoted in a diagnostic: every control or bidirectional character, newlines included,
/// becomes a visible escape (`\n`, `\u{1b}`), so what is printed is one line of plain
/// text. Every message that quotes such text uses this.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    escape_where(s, |_| false)
}

/// `escape` keeping newlines and tabs, which lay out multi-line notes: applied by
/// `render` to every message, label, note and help, so no raw control character from
/// any source reaches the terminal even where a message forgot `escape`.
fn escape_text(s: &str) -> std::borrow::Cow<'_, str> {
    escape_where(s, |c| c == '\n' || c == '\t')
}

/// Source text for display, each unsafe character (but line breaks and tabs) replaced
/// by `?` per byte, so byte spans still point at the same text.
fn display_source(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if unsafe_char(c) && !matches!(c, '\n' | '\r' | '\t') {
            out.extend(std::iter::repeat_n('?', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    out
}

/// Several diagnostics, e.g. everything the checker found.
pub type Diagnostics = Vec<Diagnostic>;

/// Render diagnostics to text. `color` is off for snapshots and when stderr is not a terminal.
pub fn render(sources: &SourceMap, diags: &[Diagnostic], color: bool) -> String {
    use ariadne::{Config, IndexType, Label as ALabel, Report, ReportKind};

    let mut out = Vec::new();
    for d in diags {
        let kind = match d.severity {
            Severity::Error => ReportKind::Error,
            Severity::Warning => ReportKind::Warning,
        };
        let config = Config::default()
            .with_color(color)
            .with_index_type(IndexType::Byte);
        match d.labels.first() {
            Some(primary) if (primary.span.src.0 as usize) < sources.len() => {
                let name = escape(sources.name(primary.span.src)).into_owned();
                let mut report = Report::build(kind, (name, primary.span.range()))
                    .with_code(d.code)
                    .with_message(escape_text(&d.message))
                    .with_config(config);
                for l in &d.labels {
                    if (l.span.src.0 as usize) >= sources.len() {
                        continue;
                    }
                    let lname = escape(sources.name(l.span.src)).into_owned();
                    let mut label = ALabel::new((lname, l.span.range()));
                    if !l.message.is_empty() {
                        label = label.with_message(escape_text(&l.message));
                    }
                    report = report.with_label(label);
                }
                for n in &d.notes {
                    report = report.with_note(escape_text(n));
                }
                if let Some(h) = &d.help {
                    report = report.with_help(escape_text(h));
                }
                let cache = ariadne::sources(
                    (0..sources.len())
                        .map(|i| {
                            let id = SourceId(i as u32);
                            (
                                escape(sources.name(id)).into_owned(),
                                display_source(sources.text(id)),
                            )
                        })
                        .collect::<Vec<_>>(),
                );
                let _ = report.finish().write(cache, &mut out);
            }
            _ => {
                // No location: a plain one-paragraph message.
                let kind = match d.severity {
                    Severity::Error => "Error",
                    Severity::Warning => "Warning",
                };
                let message = escape_text(&d.message);
                out.extend_from_slice(format!("[{}] {kind}: {message}\n", d.code).as_bytes());
                for n in &d.notes {
                    out.extend_from_slice(format!("  note: {}\n", escape_text(n)).as_bytes());
                }
                if let Some(h) = &d.help {
                    out.extend_from_slice(format!("  help: {}\n", escape_text(h)).as_bytes());
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The closest candidate by edit distance, for "did you mean" hints.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(name, c);
        let limit = (name.len().max(c.len()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance counting a swap of two neighbours as one edit (typos like `imgae`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, v) in d[0].iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_is_escaped() {
        assert_eq!(escape("plain/a.zarr"), "plain/a.zarr");
        assert_eq!(escape("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(escape("a\nb\r\0\t"), "a\\nb\\r\\0\\t");
        assert_eq!(
            escape("x\u{202e}y\u{9b}z\u{7f}"),
            "x\\u{202e}y\\u{9b}z\\u{7f}"
        );
        assert_eq!(escape_text("line\nnext\u{1b}"), "line\nnext\\u{1b}");
        let src = "a\u{1b}\u{202e}b\nc";
        assert_eq!(display_source(src), "a????b\nc");
        assert_eq!(display_source(src).len(), src.len());
    }

    #[test]
    fn rendering_prints_no_raw_control_characters() {
        let mut sources = SourceMap::default();
        let id = sources.add("evil\u{1b}[2J.tsr", "let x = \"\u{1b}[31m\"\n");
        let d = Diagnostic::error("E0000", "bad \u{1b}[31m thing\r")
            .label(Span::new(id, 8, 15), "label \u{1b}]0;title\u{7}")
            .note("note \u{202e}")
            .help("help \u{0}");
        let plain = Diagnostic::error("E0000", "no span \u{1b}").note("\u{9b}2J");
        for color in [false, true] {
            let out = render(&sources, &[d.clone(), plain.clone()], color);
            let bad: Vec<char> = out
                .chars()
                .filter(|c| unsafe_char(*c) && *c != '\n' && !(color && *c == '\u{1b}'))
                .collect();
            assert!(bad.is_empty(), "{bad:?} in {out}");
            if !color {
                assert!(!out.contains('\u{1b}'), "{out}");
                assert!(out.contains("bad \\u{1b}[31m thing\\r"), "{out}");
            }
        }
    }

    #[test]
    fn closest_finds_typos() {
        assert_eq!(closest("gausian", ["gaussian", "median"]), Some("gaussian"));
        assert_eq!(
            closest("reflct", ["reflect", "mirror", "wrap"]),
            Some("reflect")
        );
        assert_eq!(closest("zzz", ["gaussian", "median"]), None);
        assert_eq!(closest("imgae", ["image", "x"]), Some("image"));
    }
}
