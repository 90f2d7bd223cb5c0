//! Script parameters: `arg("sigma", 2.0)` reads `--arg sigma=3` from the command line (or
//! `Engine::set_args`), typed from its default; every front end lowers through here.

use super::builtins::{get_str, Args};
use super::{Evaluator, Value, R};
use crate::diag::{codes, Diagnostic, Span};

/// One parameter a script reads, for `tessera check` and the resume fingerprint.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptArg {
    pub name: String,
    /// `int`, `float`, `bool` or `str`.
    pub ty: &'static str,
    /// The default as the script wrote it, when it has one.
    pub default: Option<String>,
    /// The text given with `--arg name=...`, when given.
    pub given: Option<String>,
    /// The value the script sees, shown as in a script (`2.0`, `"a.zarr"`).
    pub value: String,
    pub span: Span,
}

impl std::fmt::Display for ScriptArg {
    /// `sigma: float = 3.0 (given; default 2.0)`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} = {}", self.name, self.ty, self.value)?;
        match (&self.given, &self.default) {
            (Some(_), Some(d)) => write!(f, " (given; default {d})"),
            (Some(_), None) => write!(f, " (given; no default)"),
            (None, _) => write!(f, " (default)"),
        }
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("{:?}", &**s),
        other => other.to_string(),
    }
}

fn kind(v: &Value) -> Option<&'static str> {
    Some(match v {
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Bool(_) => "bool",
        Value::Str(_) => "str",
        _ => return None,
    })
}

/// `text` read as a value of `ty`, as Python's `int()`, `float()` would (bools: true/false
/// in any case, or 1/0).
fn parse_as(ty: &str, text: &str) -> Option<Value> {
    let t = text.trim();
    match ty {
        "int" => t.replace('_', "").parse::<i64>().ok().map(Value::Int),
        "float" => t.replace('_', "").parse::<f64>().ok().map(Value::Float),
        "bool" => match t.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => Some(Value::Str(text.into())),
    }
}

fn a_or_an(ty: &str) -> &'static str {
    if ty == "int" {
        "an"
    } else {
        "a"
    }
}

impl Evaluator {
    /// `arg(name, default)`: the value given for `name`, typed from the default, or the
    /// default.
    pub(super) fn script_arg(&mut self, a: &Args) -> R<Value> {
        let n = a.required("name")?;
        let name = get_str(n)?.to_string();
        if name.is_empty() || name.contains('=') || name.chars().any(char::is_whitespace) {
            return Err(Diagnostic::error(
                codes::SCRIPT_ARG,
                format!("{name:?} cannot be an argument name"),
            )
            .label(n.span, "not a name")
            .help(
                "argument names are words such as \"sigma\" or \"input\", given as --arg sigma=3",
            ));
        }
        let default = a.get("default");
        let ty = match default {
            Some(d) => kind(&d.value).ok_or_else(|| {
                Diagnostic::error(
                    codes::SCRIPT_ARG,
                    format!(
                        "the default of argument {name:?} is {}, not an int, float, bool or str",
                        d.value.a_kind()
                    ),
                )
                .label(d.span, "not a scalar")
            })?,
            None => "str",
        };
        let given = self
            .script_args
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone());
        if !self.args_read.iter().any(|r| r.name == name) {
            // Recorded before it is parsed: a bad value is not also an unread argument.
            self.args_read.push(ScriptArg {
                name: name.clone(),
                ty,
                default: default.map(|d| shown(&d.value)),
                given: given.clone(),
                value: String::new(),
                span: n.span,
            });
        }
        let value = match (&given, default) {
            (Some(text), _) => parse_as(ty, text).ok_or_else(|| {
                let d = default.map(|d| shown(&d.value)).unwrap_or_default();
                Diagnostic::error(
                    codes::SCRIPT_ARG,
                    format!(
                        "--arg {name}={text} is not {} {ty}, as the default {d} of argument {name:?} is",
                        a_or_an(ty)
                    ),
                )
                .label(n.span, format!("argument {name:?} is read here as {} {ty}", a_or_an(ty)))
                .help(format!("give {} {ty}, e.g. --arg {name}={d}", a_or_an(ty)))
            })?,
            (None, Some(d)) => d.value.clone(),
            (None, None) => {
                return Err(Diagnostic::error(
                    codes::SCRIPT_ARG,
                    format!("argument {name:?} has no default and was not given"),
                )
                .label(a.call_span, "needs a value")
                .help(format!(
                    "give it on the command line (--arg {name}=...) or a default: arg({name:?}, ...)"
                )))
            }
        };
        if let Some(r) = self.args_read.iter_mut().find(|r| r.name == name) {
            if r.value.is_empty() {
                r.value = shown(&value);
            }
        }
        Ok(value)
    }

    /// After a whole script: every `--arg` it was given must have been read.
    pub(crate) fn check_unread_args(&mut self) {
        let read: Vec<&str> = self.args_read.iter().map(|r| r.name.as_str()).collect();
        let mut diags = Vec::new();
        for (k, _) in &self.script_args {
            if read.contains(&k.as_str()) {
                continue;
            }
            let mut d = Diagnostic::error(
                codes::SCRIPT_ARG,
                format!("--arg {k} is given but the script never reads it"),
            );
            d = if read.is_empty() {
                d.note("the script reads no arguments")
            } else {
                d.note(format!("the script reads: {}", read.join(", ")))
            };
            if let Some(c) = crate::diag::closest(k, read.iter().copied()) {
                d = d.help(format!("did you mean --arg {c}=...?"));
            } else {
                d = d.help(format!("read it in the script with arg({k:?}, default)"));
            }
            diags.push(d);
        }
        self.diags.extend(diags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_the_defaults_type() {
        assert!(matches!(parse_as("int", " 42 "), Some(Value::Int(42))));
        assert!(matches!(parse_as("int", "1_000"), Some(Value::Int(1000))));
        assert!(parse_as("int", "4.5").is_none());
        assert!(parse_as("int", "99999999999999999999").is_none());
        assert!(matches!(parse_as("float", "3"), Some(Value::Float(x)) if x == 3.0));
        assert!(matches!(parse_as("float", "2e-3"), Some(Value::Float(x)) if x == 2e-3));
        assert!(parse_as("float", "abc").is_none());
        assert!(matches!(parse_as("bool", "TRUE"), Some(Value::Bool(true))));
        assert!(matches!(parse_as("bool", "0"), Some(Value::Bool(false))));
        assert!(parse_as("bool", "yes please").is_none());
        assert!(matches!(parse_as("str", " a b "), Some(Value::Str(s)) if &*s == " a b "));
    }
}
