//! Tab completion and signature hints. The logic works on plain text plus a snapshot of
//! the session's names (`Names`), so it is testable without a terminal; `ReplHelper`
//! plugs it into rustyline.

use super::input::{call_site, receiver_start, scan, trailing_word};
use crate::lower::registry::{Builtin, Registry, Returns, PROPERTIES};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hint, Hinter};
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// What completion needs to know about a bound name.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Array,
    /// A user function: parameter names with their defaults as text.
    Func(Vec<(String, Option<String>)>),
    Other,
}

/// The session's bindings as completion sees them (refreshed after every entry).
#[derive(Clone, Debug, Default)]
pub(crate) struct Names {
    pub entries: Vec<(String, Kind)>,
    /// The builtins the session can call.
    pub registry: Registry,
}

impl Names {
    pub(crate) fn get(&self, name: &str) -> Option<&Kind> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, k)| k)
    }
}

const KEYWORDS: &[&str] = &[
    "let", "fn", "if", "else", "for", "in", "true", "false", "none", "and", "or", "not",
];

/// REPL commands: name, argument synopsis, description.
pub(crate) const COMMANDS: &[(&str, &str, &str)] = &[
    (
        ":help",
        "[name]",
        "list builtins and methods, or show one's signature and doc",
    ),
    (
        ":type",
        "expr",
        "the type of an expression (dtype, shape, chunks) without computing it",
    ),
    (
        ":plan",
        "expr|file.tsr",
        "the optimized program and task plan for computing an expression (or a script, as `tessera plan` shows it)",
    ),
    (
        ":explain",
        "expr|file.tsr",
        "like :plan, with the program after every optimizer pass",
    ),
    (
        ":show",
        "expr [path.png]",
        "render a 2-D array as a PNG (auto-contrast) and print its path",
    ),
    (
        ":time",
        "expr",
        "evaluate an entry and print the wall time it took",
    ),
    (
        ":load",
        "file.tsr",
        "evaluate a script in this session (its bindings stay)",
    ),
    (
        ":save",
        "file.tsr [overwrite=true]",
        "write this session's successful entries as a script (an existing file only with overwrite=true)",
    ),
    (":quit", "", "leave (also Ctrl-D)"),
];

/// What the expression before a `.` is, as far as the text tells.
#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Array,
    Builtin(Returns),
    Method(Returns),
    Unknown,
}

/// Index of the bracket closing the one at `open` (same kind of count as the parser's,
/// strings included), or the end of the text.
fn matching(b: &[u8], open: usize) -> usize {
    let mut depth = 0i32;
    let mut i = open;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    b.len()
}

/// Follow a postfix chain (`x[0].astype("f4")`, `zeros(s).map(f)`, `(x + 1)`) and tell
/// whether it ends in an array. Unknown callees (user functions) give `false`: offering
/// array methods on a value that may not be one would mislead.
fn is_array_expr(expr: &str, names: &Names) -> bool {
    let b = expr.as_bytes();
    let mut i = 0;
    let mut shape;
    if b.first() == Some(&b'(') {
        let close = matching(b, 0);
        let inner = &expr[1..close.min(expr.len())];
        // A group mixing an array with anything gives an array (broadcasting).
        let mut any = false;
        let mut j = 0;
        let ib = inner.as_bytes();
        while j < ib.len() {
            if super::input::is_ident_char(ib[j]) {
                let start = j;
                while j < ib.len() && super::input::is_ident_char(ib[j]) {
                    j += 1;
                }
                let w = &inner[start..j];
                any |= names.get(w) == Some(&Kind::Array)
                    || (names.get(w).is_none()
                        && names
                            .registry
                            .function(w)
                            .is_some_and(|d| d.returns == Returns::Array));
            } else {
                j += 1;
            }
        }
        shape = if any { Shape::Array } else { Shape::Unknown };
        i = close + 1;
    } else {
        let w = trailing_word_forward(expr);
        i += w.len();
        shape = match names.get(w) {
            Some(Kind::Array) => Shape::Array,
            Some(_) => Shape::Unknown,
            None => match names.registry.function(w) {
                Some(d) => Shape::Builtin(d.returns),
                None => Shape::Unknown,
            },
        };
    }
    while i < b.len() {
        match b[i] {
            b'(' => {
                shape = match shape {
                    Shape::Builtin(Returns::Array) | Shape::Method(Returns::Array) => Shape::Array,
                    _ => Shape::Unknown,
                };
                i = matching(b, i) + 1;
            }
            b'[' => {
                if shape != Shape::Array {
                    shape = Shape::Unknown;
                }
                i = matching(b, i) + 1;
            }
            b'.' => {
                let w = trailing_word_forward(&expr[i + 1..]);
                shape = match (&shape, names.registry.method(w)) {
                    (Shape::Array, Some(m)) => Shape::Method(m.returns),
                    _ => Shape::Unknown,
                };
                i += 1 + w.len();
            }
            b' ' | b'\t' => i += 1,
            _ => return false,
        }
    }
    shape == Shape::Array
}

/// The identifier characters at the start of `text`.
fn trailing_word_forward(text: &str) -> &str {
    let end = text
        .bytes()
        .position(|c| !super::input::is_ident_char(c))
        .unwrap_or(text.len());
    &text[..end]
}

/// Parameters of the function a call site calls, with the signature text of each
/// (`truncate=4.0`), or `None` when the callee is unknown.
fn params_of(callee: &str, names: &Names) -> Option<Vec<(String, String)>> {
    let doc_params = |d: &Builtin| -> Vec<(String, String)> {
        let pieces = signature_pieces(&d.signature);
        d.params
            .iter()
            .map(|p| {
                // Pair each parameter with the signature piece that names it.
                let shown = pieces
                    .iter()
                    .find(|pc| piece_name(pc) == p.name)
                    .cloned()
                    .unwrap_or_else(|| p.name.clone());
                (p.name.clone(), shown)
            })
            .collect()
    };
    if let Some((recv, method)) = callee.rsplit_once('.') {
        let m = names.registry.method(method)?;
        if !is_array_expr(recv, names) {
            return None;
        }
        return Some(doc_params(m));
    }
    match names.get(callee) {
        Some(Kind::Func(ps)) => Some(
            ps.iter()
                .map(|(n, d)| {
                    let shown = match d {
                        Some(d) => format!("{n}={d}"),
                        None => n.clone(),
                    };
                    (n.clone(), shown)
                })
                .collect(),
        ),
        Some(_) => None,
        None => names.registry.function(callee).map(|d| doc_params(d)),
    }
}

/// The parameter part of a signature split at top-level commas:
/// `arange([start,] stop[, step], dtype=)` → `["[start,] stop[, step]", "dtype="]`.
fn signature_pieces(sig: &str) -> Vec<String> {
    let Some(open) = sig.find('(') else {
        return vec![];
    };
    let inner = sig[open + 1..]
        .strip_suffix(')')
        .unwrap_or(&sig[open + 1..]);
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut cur = String::new();
    for c in inner.chars() {
        match c {
            '"' => in_str = !in_str,
            '(' | '[' if !in_str => depth += 1,
            ')' | ']' if !in_str => depth -= 1,
            ',' if depth == 0 && !in_str => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The parameter a signature piece names (`truncate=4.0` → `truncate`).
fn piece_name(piece: &str) -> &str {
    let p = piece.trim_start_matches(['[', ' ']);
    let end = p
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(p.len());
    &p[..end]
}

fn pair(s: impl Into<String>) -> Pair {
    let s = s.into();
    Pair {
        display: s.clone(),
        replacement: s,
    }
}

/// Completions for code ending at the cursor: the byte offset in `text` where the
/// replacement starts, and the candidates.
pub(crate) fn complete_code(text: &str, names: &Names, base: &Path) -> (usize, Vec<Pair>) {
    let s = scan(text);
    if s.in_comment {
        return (text.len(), vec![]);
    }
    if let Some(start) = s.string_start {
        let (off, items) = complete_path(&text[start..], base);
        return (start + off, items);
    }
    let word = trailing_word(text);
    let wstart = text.len() - word.len();
    if word.as_bytes().first().is_some_and(|c| c.is_ascii_digit()) {
        return (wstart, vec![]);
    }
    let before = &text[..wstart];
    if let Some(recv) = before.strip_suffix('.') {
        let Some(rs) = receiver_start(recv) else {
            return (wstart, vec![]);
        };
        if !is_array_expr(recv[rs..].trim(), names) {
            return (wstart, vec![]);
        }
        let mut items: Vec<&str> = names
            .registry
            .methods()
            .map(|m| m.name.as_str())
            .chain(PROPERTIES.iter().copied())
            .filter(|n| n.starts_with(word))
            .collect();
        items.sort_unstable();
        items.dedup();
        return (wstart, items.into_iter().map(pair).collect());
    }
    let mut out = Vec::new();
    if let Some(cs) = call_site(text) {
        if cs.at_arg_start {
            for (p, _) in params_of(&cs.callee, names).unwrap_or_default() {
                if p.starts_with(word) && !cs.keywords.contains(&p) {
                    out.push(pair(format!("{p}=")));
                }
            }
        }
    }
    let mut all: Vec<&str> = names
        .entries
        .iter()
        .map(|(n, _)| n.as_str())
        .chain(names.registry.functions().map(|d| d.name.as_str()))
        .chain(KEYWORDS.iter().copied())
        // Names starting with `_` are the stdlib's and the REPL's own helpers.
        .filter(|n| n.starts_with(word) && (!n.starts_with('_') || word.starts_with('_')))
        .collect();
    all.sort_unstable();
    all.dedup();
    out.extend(all.into_iter().map(pair));
    (wstart, out)
}

/// Is this directory a Zarr array (v2 `.zarray` or v3 `zarr.json` of an array)?
fn is_zarr_array(dir: &Path) -> bool {
    if dir.join(".zarray").is_file() {
        return true;
    }
    let Ok(text) = std::fs::read_to_string(dir.join("zarr.json")) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("node_type")
                .and_then(|t| t.as_str())
                .map(|t| t == "array")
        })
        .unwrap_or(false)
}

/// Most entries a path completion lists (a huge directory must not stall the prompt).
const MAX_PATHS: usize = 1000;

/// Complete a path: offset in `partial` where the last component starts, and the
/// directory entries matching it. Directories get a `/` so completion can go on inside,
/// except Zarr arrays, which are usually the path wanted.
pub(crate) fn complete_path(partial: &str, base: &Path) -> (usize, Vec<Pair>) {
    let (dir_part, prefix) = match partial.rfind('/') {
        Some(i) => (&partial[..=i], &partial[i + 1..]),
        None => ("", partial),
    };
    let dir: PathBuf = if dir_part.is_empty() {
        base.to_path_buf()
    } else if Path::new(dir_part).is_absolute() {
        PathBuf::from(dir_part)
    } else {
        base.join(dir_part)
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return (dir_part.len(), vec![]);
    };
    let mut items: Vec<Pair> = Vec::new();
    for e in rd.flatten().take(MAX_PATHS * 4) {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !name.starts_with(prefix) || (name.starts_with('.') && !prefix.starts_with('.')) {
            continue;
        }
        // Follow symlinks: a link to a directory completes like one.
        let path = dir.join(&name);
        let replacement = if path.is_dir() && !is_zarr_array(&path) {
            format!("{name}/")
        } else {
            name.clone()
        };
        items.push(Pair {
            display: replacement.clone(),
            replacement,
        });
        if items.len() >= MAX_PATHS {
            break;
        }
    }
    items.sort_by(|a, b| a.display.cmp(&b.display));
    (dir_part.len(), items)
}

/// Completions for a whole input line, commands included. `pending` holds the earlier
/// lines of an unfinished entry; the returned offset is within `line`.
pub(crate) fn complete_line(
    pending: &str,
    line: &str,
    pos: usize,
    names: &Names,
    base: &Path,
) -> (usize, Vec<Pair>) {
    let Some(head) = line.get(..pos) else {
        return (pos, vec![]);
    };
    if pending.is_empty() && head.trim_start().starts_with(':') {
        return complete_command(head, names, base);
    }
    let text = format!("{pending}{head}");
    let (start, items) = complete_code(&text, names, base);
    match start.checked_sub(pending.len()) {
        Some(s) => (s, items),
        None => (pos, vec![]),
    }
}

fn complete_command(head: &str, names: &Names, base: &Path) -> (usize, Vec<Pair>) {
    let lead = head.len() - head.trim_start().len();
    let body = &head[lead..];
    let Some(sp) = body.find(char::is_whitespace) else {
        let items = COMMANDS
            .iter()
            .map(|(c, _, _)| *c)
            .filter(|c| c.starts_with(body))
            .map(pair)
            .collect();
        return (lead, items);
    };
    let cmd = &body[..sp];
    let arg_start = lead + sp + (body[sp..].len() - body[sp..].trim_start().len());
    let arg = &head[arg_start..];
    match cmd {
        ":help" | ":h" => {
            let mut all: Vec<&str> = names
                .registry
                .iter()
                .map(|d| d.name.as_str())
                .chain(COMMANDS.iter().map(|(c, _, _)| *c))
                .chain(
                    names
                        .entries
                        .iter()
                        .filter_map(|(n, k)| matches!(k, Kind::Func(_)).then_some(n.as_str())),
                )
                .filter(|n| n.starts_with(arg) && !n.starts_with('_'))
                .collect();
            all.sort_unstable();
            all.dedup();
            (arg_start, all.into_iter().map(pair).collect())
        }
        ":load" | ":save" => {
            let (off, items) = complete_path(arg, base);
            (arg_start + off, items)
        }
        _ => {
            let (off, items) = complete_code(arg, names, base);
            (arg_start + off, items)
        }
    }
}

/// The hint after the cursor: the rest of the signature of the function being called,
/// shown where an argument starts (`gaussian(` → `sigma, truncate=4.0)`).
pub(crate) fn signature_hint(text: &str, names: &Names) -> Option<String> {
    let cs = call_site(text)?;
    if !cs.at_arg_start || !trailing_word(text).is_empty() {
        return None;
    }
    let params = params_of(&cs.callee, names)?;
    let shown: Vec<String> = if cs.callee.contains('.') || names.get(&cs.callee).is_some() {
        params.into_iter().map(|(_, s)| s).collect()
    } else {
        // Builtin signatures can group optional parameters (`[start,] stop`): show the
        // signature's own pieces rather than one per parameter.
        let d = names.registry.function(&cs.callee)?;
        signature_pieces(&d.signature)
    };
    let rest: Vec<&str> = shown
        .iter()
        .skip(cs.commas)
        .filter(|p| !cs.keywords.iter().any(|k| k == piece_name(p)))
        .map(|s| s.as_str())
        .collect();
    if rest.is_empty() {
        return None;
    }
    let sep = if text.ends_with(',') { " " } else { "" };
    Some(format!("{sep}{})", rest.join(", ")))
}

/// A hint that is only shown: accepting it (right arrow) must not insert a signature.
pub(crate) struct SigHint(String);

impl Hint for SigHint {
    fn display(&self) -> &str {
        &self.0
    }

    fn completion(&self) -> Option<&str> {
        None
    }
}

/// The rustyline helper: completion, hints and hint colour.
pub(crate) struct ReplHelper {
    pub names: Names,
    /// Earlier lines of the entry being typed (continuation lines see the whole call).
    pub pending: String,
    pub base: PathBuf,
    pub color: bool,
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(complete_line(
            &self.pending,
            line,
            pos,
            &self.names,
            &self.base,
        ))
    }
}

impl Hinter for ReplHelper {
    type Hint = SigHint;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<SigHint> {
        if pos != line.len() || (self.pending.is_empty() && line.trim_start().starts_with(':')) {
            return None;
        }
        signature_hint(&format!("{}{line}", self.pending), &self.names).map(SigHint)
    }
}

impl Highlighter for ReplHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.color {
            Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
        } else {
            Cow::Borrowed(hint)
        }
    }
}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            entries: vec![
                ("img".into(), Kind::Array),
                ("image_count".into(), Kind::Other),
                (
                    "blur".into(),
                    Kind::Func(vec![("a".into(), None), ("s".into(), Some("2.0".into()))]),
                ),
                ("_private".into(), Kind::Other),
            ],
            registry: Registry::standard(),
        }
    }

    fn words(text: &str) -> Vec<String> {
        complete_code(text, &names(), Path::new("/nonexistent"))
            .1
            .into_iter()
            .map(|p| p.replacement)
            .collect()
    }

    #[test]
    fn bindings_builtins_and_keywords() {
        assert_eq!(words("let y = im"), vec!["imag", "image_count", "img"]);
        assert_eq!(
            words("gaus"),
            vec!["gaussian", "gaussian_gradient_magnitude"]
        );
        assert_eq!(words("le"), vec!["len", "let"]);
        assert!(words("_").contains(&"_private".to_string()));
        assert!(!words("").contains(&"_private".to_string()));
        assert_eq!(words("1"), Vec::<String>::new());
        assert_eq!(words("x # im"), Vec::<String>::new());
    }

    #[test]
    fn methods_by_receiver_type() {
        assert_eq!(words("img.ast"), vec!["astype"]);
        assert_eq!(words("img.s"), vec!["scale", "shape", "size", "std", "sum"]);
        assert!(words("img[0:2].").contains(&"map".to_string()));
        assert!(words("zeros((2, 2)).ov").contains(&"overlap".to_string()));
        assert!(words("(img + 1).").contains(&"values".to_string()));
        assert_eq!(
            words("img.overlap(2).map(f).wr"),
            vec!["write", "write_ome"]
        );
        // Not arrays: nothing to offer.
        assert_eq!(words("image_count."), Vec::<String>::new());
        assert_eq!(words("img.shape."), Vec::<String>::new());
        assert_eq!(words("blur(img)."), Vec::<String>::new());
        assert_eq!(words("1.5"), Vec::<String>::new());
        assert_eq!(words("img.write(\"o\")."), Vec::<String>::new());
    }

    #[test]
    fn keyword_arguments_of_the_called_function() {
        let w = words("zeros((4,4), dt");
        assert_eq!(w[0], "dtype=");
        let w = words("zeros((4, 4), ");
        assert_eq!(&w[..3], &["shape=", "dtype=", "chunks="]);
        let w = words("img.overlap(2, boundary=\"wrap\", ");
        assert!(w.contains(&"cval=".to_string()));
        assert!(!w.contains(&"boundary=".to_string()));
        assert_eq!(words("blur(img, ")[..2], ["a=", "s="]);
        // Inside a nested tuple, not at the call's level: no keywords.
        assert!(!words("zeros((4, ").contains(&"dtype=".to_string()));
    }

    #[test]
    fn hints_show_the_rest_of_the_signature() {
        let n = names();
        assert_eq!(
            signature_hint("gaussian(", &n).as_deref(),
            Some("sigma, truncate=4.0, unit=pixels)")
        );
        assert_eq!(
            signature_hint("zeros((4, 4),", &n).as_deref(),
            Some(" dtype=\"f32\", chunks=auto)")
        );
        assert_eq!(
            signature_hint("img.overlap(", &n).as_deref(),
            Some("depth, boundary=\"reflect\", cval=0.0)")
        );
        assert_eq!(signature_hint("blur(img, ", &n).as_deref(), Some("s=2.0)"));
        assert_eq!(
            signature_hint("arange(", &n).as_deref(),
            Some("[start,] stop[, step], dtype=, chunks=auto)")
        );
        assert_eq!(signature_hint("gaussian(si", &n), None);
        assert_eq!(signature_hint("laplace(", &n), None);
        assert_eq!(signature_hint("unknown_fn(", &n), None);
    }

    #[test]
    fn paths_inside_strings() {
        let dir = std::env::temp_dir().join(format!("tessera-complete-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a.zarr")).unwrap();
        std::fs::write(dir.join("a.zarr/.zarray"), "{}").unwrap();
        std::fs::create_dir_all(dir.join("group.zarr/inner")).unwrap();
        std::fs::write(
            dir.join("group.zarr/zarr.json"),
            r#"{"node_type": "group"}"#,
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("v3.zarr")).unwrap();
        std::fs::write(dir.join("v3.zarr/zarr.json"), r#"{"node_type": "array"}"#).unwrap();
        std::fs::write(dir.join("script.tsr"), "").unwrap();
        std::fs::write(dir.join(".hidden"), "").unwrap();
        let n = names();
        let (start, items) = complete_code("let x = zarr(\"", &n, &dir);
        assert_eq!(start, 14);
        let got: Vec<&str> = items.iter().map(|p| p.replacement.as_str()).collect();
        assert_eq!(got, vec!["a.zarr", "group.zarr/", "script.tsr", "v3.zarr"]);
        let (start, items) = complete_code("zarr(\"group.zarr/in", &n, &dir);
        assert_eq!(start, "zarr(\"group.zarr/".len());
        assert_eq!(items[0].replacement, "inner/");
        let (_, items) = complete_code("zarr(\".h", &n, &dir);
        assert_eq!(items[0].replacement, ".hidden");
        let (start, items) = complete_line("", ":load scr", 9, &n, &dir);
        assert_eq!((start, items[0].replacement.as_str()), (6, "script.tsr"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn commands_and_continuation_lines() {
        let n = names();
        let base = Path::new("/nonexistent");
        let (s, items) = complete_line("", ":ex", 3, &n, base);
        assert_eq!((s, items[0].replacement.as_str()), (0, ":explain"));
        let (s, items) = complete_line("", ":help gaussian_g", 16, &n, base);
        assert_eq!(s, 6);
        assert_eq!(items[0].replacement, "gaussian_gradient_magnitude");
        let (s, items) = complete_line("", ":type img.ast", 13, &n, base);
        assert_eq!((s, items[0].replacement.as_str()), (10, "astype"));
        // The call started on an earlier line.
        let (s, items) = complete_line("zeros((4, 4),\n", "  dt", 4, &n, base);
        assert_eq!((s, items[0].replacement.as_str()), (2, "dtype="));
        // A cursor inside a multi-byte character is not a place to complete.
        assert!(complete_line("", "é", 1, &n, base).1.is_empty());
    }
}
