//! The interactive front end: reads lines with rustyline, evaluates each with the same
//! `Engine` as scripts, prints values and diagnostics, and keeps the session's bindings.

use crate::{Engine, RunOptions};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

/// Does this input need more lines (open brackets or a trailing operator)?
pub fn needs_more(src: &str) -> bool {
    let mut depth = 0i32;
    let mut in_str = false;
    let mut escape = false;
    for line in src.lines() {
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_str {
                if escape {
                    escape = false;
                } else if c == '\\' {
                    escape = true;
                } else if c == '"' {
                    in_str = false;
                }
                continue;
            }
            match c {
                '"' => in_str = true,
                '#' => break,
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
        }
    }
    if depth > 0 || in_str {
        return true;
    }
    let last = src
        .lines()
        .last()
        .map(|l| l.split('#').next().unwrap_or("").trim_end())
        .unwrap_or("");
    [
        "+", "-", "*", "/", "%", "=", "<", ">", "&", "|", "^", ".", ",", "and", "or", "not",
    ]
    .iter()
    .any(|op| last.ends_with(op))
}

pub fn run(engine: &mut Engine) -> ExitCode {
    let opts = RunOptions::default();
    if !std::io::stdin().is_terminal() {
        // Piped input: evaluate statement by statement, no prompt.
        let stdin = std::io::stdin();
        let mut buf = String::new();
        let mut failed = false;
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            buf.push_str(&line);
            buf.push('\n');
            if needs_more(&buf) {
                continue;
            }
            failed |= !eval_print(engine, &buf, &opts);
            buf.clear();
        }
        if !buf.trim().is_empty() {
            failed |= !eval_print(engine, &buf, &opts);
        }
        return if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
    let mut rl = match rustyline::DefaultEditor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the line editor: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "Tessera {} — :quit or Ctrl-D to leave",
        env!("CARGO_PKG_VERSION")
    );
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() { ">>> " } else { "... " };
        match rl.readline(prompt) {
            Ok(line) => {
                if buf.is_empty() && matches!(line.trim(), ":quit" | ":q") {
                    break;
                }
                buf.push_str(&line);
                buf.push('\n');
                if needs_more(&buf) {
                    continue;
                }
                let _ = rl.add_history_entry(buf.trim_end());
                eval_print(engine, &buf, &opts);
                buf.clear();
            }
            Err(rustyline::error::ReadlineError::Interrupted) => buf.clear(),
            Err(_) => break,
        }
    }
    ExitCode::SUCCESS
}

fn eval_print(engine: &mut Engine, src: &str, opts: &RunOptions) -> bool {
    let color = std::io::stderr().is_terminal();
    match engine.eval_line(src, opts) {
        Ok(out) => {
            eprint!("{}", engine.render(&out.warnings, color));
            for l in &out.printed {
                println!("{l}");
            }
            true
        }
        Err(d) => {
            eprint!("{}", engine.render(&d, color));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::needs_more;

    #[test]
    fn continuation() {
        assert!(needs_more("let x = (1,\n"));
        assert!(needs_more("let y = 1 +\n"));
        assert!(!needs_more("let y = 1 + 2\n"));
        assert!(!needs_more("print(\"(\")\n"));
    }
}
