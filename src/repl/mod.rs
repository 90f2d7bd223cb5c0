//! The interactive front end: reads entries with rustyline (multi-line input, history,
//! Tab completion, signature hints), evaluates each with the same `Engine` as scripts,
//! prints values (small arrays in full, lazy arrays as a summary) and diagnostics, and
//! keeps the session's bindings. Piped input runs entry by entry with no prompt.
//!
//! Ctrl-C cancels the line being typed. During a computation it stops the computation
//! (tasks in flight finish, every written chunk is complete) and the session goes on.

mod complete;
mod input;

mod session;
mod summary;
mod values;

pub use input::needs_more;

use crate::diag::{codes, Diagnostic};
use crate::exec::Safeguards;
use crate::lower::registry::PROPERTIES;
use crate::lower::Value;
use crate::{Engine, RunOptions};
use complete::{ReplHelper, COMMANDS};
use input::{Entries, Piece};
use session::{fn_signature, repr, Outcome, SMALL};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Run the REPL on the terminal, or entry by entry over piped standard input.
/// SIGINT: the first stops the running computation cleanly (tasks in flight finish, every
/// written chunk is complete); a second before the run ends exits at once (status 130).
extern "C" fn on_interrupt(_: libc::c_int) {
    // Only async-signal-safe work here: atomics and _exit.
    if crate::exec::cancel_requested() {
        // SAFETY: _exit is async-signal-safe and ends the process.
        unsafe { libc::_exit(130) };
    }
    crate::exec::request_cancel();
}

/// Route Ctrl-C to `on_interrupt` (again after the line editor replaced it).
pub fn install_interrupt_handler() {
    #[cfg(unix)]
    // SAFETY: the handler only touches atomics and calls _exit.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

pub fn run(engine: &mut Engine) -> ExitCode {
    run_with(engine, RunOptions::default(), Safeguards::default())
}

/// `run` with the workers and safeguards of every computation in the session, as
/// `tessera run` takes them (`tessera repl --workers N --memory SIZE`): each entry's
/// sinks, `:plan` and `:show` go through the engine's compile step with them.
pub fn run_with(engine: &mut Engine, opts: RunOptions, guards: Safeguards) -> ExitCode {
    let color_err = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut repl = Repl {
        engine,
        opts,
        guards,
        log: Vec::new(),
        color: color_err,
        entries: 0,
        previews: 0,
    };
    if std::io::stdin().is_terminal() {
        repl.interactive()
    } else {
        repl.piped()
    }
}

/// Write to stdout, ignoring a closed pipe (`tessera < s.tsr | head` must not panic).
fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = o.write_all(b"\n");
    }
    let _ = o.flush();
}

fn err(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(text.as_bytes());
    let _ = e.flush();
}

/// Where history lives: `$XDG_DATA_HOME/tessera/history`, else
/// `~/.local/share/tessera/history`. The directory is created; `None` when there is no
/// home to put it in.
fn history_path() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        // The XDG spec says relative values are to be ignored.
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local").join("share"))
        })?;
    let dir = data.join("tessera");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("history"))
}

/// What a command asks of the loop.
#[derive(Debug, PartialEq)]
enum Flow {
    Ok,
    Failed,
    Quit,
}

struct Repl<'e> {
    engine: &'e mut Engine,
    opts: RunOptions,
    /// The memory limit and completion records of every run.
    guards: Safeguards,
    /// Successful entries in order, for `:save`.
    log: Vec<String>,
    /// Colour diagnostics.
    color: bool,
    /// Entries evaluated, to name their sources.
    entries: usize,
    /// Default preview files written.
    previews: usize,
}

impl Repl<'_> {
    fn interactive(&mut self) -> ExitCode {
        use rustyline::config::{CompletionType, Config};
        use rustyline::error::ReadlineError;
        let config = Config::builder()
            .completion_type(CompletionType::List)
            .auto_add_history(false)
            .build();
        let mut rl: rustyline::Editor<ReplHelper, rustyline::history::FileHistory> =
            match rustyline::Editor::with_config(config) {
                Ok(r) => r,
                Err(e) => {
                    err(&format!("error: cannot start the line editor: {e}\n"));
                    return ExitCode::from(1);
                }
            };
        let base = self
            .engine
            .ev
            .base_dir
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_default();
        rl.set_helper(Some(ReplHelper {
            names: self.engine.session_names(),
            pending: String::new(),
            base,
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }));
        // Ctrl-C accepts the line (so rustyline erases the signature hint, which would
        // otherwise stay on screen as if typed) and raises a flag that drops the entry.
        let cancelled = Arc::new(AtomicBool::new(false));
        rl.bind_sequence(
            rustyline::KeyEvent::ctrl('C'),
            rustyline::EventHandler::Conditional(Box::new(CancelEntry(cancelled.clone()))),
        );
        let history = history_path();
        if let Some(h) = &history {
            let _ = rl.load_history(h);
        }
        out(&format!(
            "Tessera {} — :help for help, Tab completes, Ctrl-D leaves",
            env!("CARGO_PKG_VERSION")
        ));
        let mut buf = String::new();
        loop {
            if let Some(h) = rl.helper_mut() {
                h.pending.clone_from(&buf);
            }
            let prompt = if buf.is_empty() { ">>> " } else { "... " };
            let line = match rl.readline(prompt) {
                Ok(_) if cancelled.swap(false, Ordering::Relaxed) => {
                    buf.clear();
                    continue;
                }
                Ok(line) => line,
                // Ctrl-C drops the entry being typed, however many lines it has.
                Err(ReadlineError::Interrupted) => {
                    buf.clear();
                    continue;
                }
                Err(ReadlineError::Eof) => break,
                Err(e) => {
                    err(&format!("error: cannot read input: {e}\n"));
                    break;
                }
            };
            let flow = if buf.is_empty() && line.trim_start().starts_with(':') {
                remember(&mut rl, line.trim(), history.as_ref());
                self.command(line.trim())
            } else {
                if buf.is_empty() && input::is_blank(&line) {
                    continue;
                }
                buf.push_str(&line);
                buf.push('\n');
                if needs_more(&buf) {
                    continue;
                }
                let entry = std::mem::take(&mut buf);
                remember(&mut rl, entry.trim_end(), history.as_ref());
                self.entry(&entry, None);
                Flow::Ok
            };
            if flow == Flow::Quit {
                break;
            }
            let names = self.engine.session_names();
            if let Some(h) = rl.helper_mut() {
                h.names = names;
            }
        }
        ExitCode::SUCCESS
    }

    fn piped(&mut self) -> ExitCode {
        let stdin = std::io::stdin();
        let lines = stdin.lock().lines().map_while(Result::ok);
        let mut failed = false;
        for piece in Entries::new(lines) {
            match piece {
                Piece::Command(c) => match self.command(&c) {
                    Flow::Quit => break,
                    Flow::Failed => failed = true,
                    Flow::Ok => {}
                },
                Piece::Code(src) => failed |= self.entry(&src, None).is_none(),
            }
        }
        if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }

    fn render(&self, diags: &[Diagnostic]) {
        if !diags.is_empty() {
            err(&self.engine.render(diags, self.color));
        }
    }

    /// Evaluate an entry and print what it gives; on success it joins the session log
    /// and the number of tasks run is returned.
    fn entry(&mut self, src: &str, name: Option<&str>) -> Option<u64> {
        self.entries += 1;
        let name = name.map_or_else(|| format!("<repl:{}>", self.entries), str::to_string);
        // The line editor takes SIGINT while it reads; computations get it back.
        install_interrupt_handler();
        crate::exec::clear_cancel();
        match self.engine.eval_entry(&name, src, &self.opts, &self.guards) {
            Ok(o) => {
                let tasks = o.tasks;
                self.show(o);
                self.log.push(src.trim_end().to_string());
                Some(tasks)
            }
            Err(d) => {
                self.render(&d);
                None
            }
        }
    }

    fn show(&mut self, o: Outcome) {
        self.render(&o.warnings);
        for l in &o.printed {
            out(l);
        }
        match o.value {
            None | Some(Value::None) | Some(Value::Poison) => {}
            Some(Value::Array(a)) => {
                let shape = self.engine.ev.program.ty(a.node).shape.clone();
                match o.elements {
                    Some(b) => {
                        if !a.materialize {
                            out(&format!(
                                "array {}",
                                crate::ir::type_summary(&self.engine.ev.program, a.node)
                            ));
                        }
                        out(&values::format(&b, &shape));
                    }
                    None => {
                        let mut text = self.engine.array_report(&a, &self.opts, &self.guards);
                        if shape.iter().product::<u64>() <= SMALL {
                            text.push_str(
                                "  (not computed: it reads over 1 GiB; `.values()` computes it)\n",
                            );
                        }
                        out(&text);
                    }
                }
            }
            Some(Value::Func(c)) => out(&format!("<fn {}>", fn_signature(&c))),
            Some(v @ Value::Builtin(_)) => out(&format!("<{}>", self.engine.describe(&v))),
            Some(v) => out(&repr(&v)),
        }
    }

    /// Run a `:command` line.
    fn command(&mut self, line: &str) -> Flow {
        let (cmd, arg) = match line.find(char::is_whitespace) {
            Some(i) => (&line[..i], line[i..].trim()),
            None => (line, ""),
        };
        let needs_arg = |what: &str| {
            err(&format!("usage: {cmd} {what}\n"));
            Flow::Failed
        };
        match cmd {
            ":quit" | ":q" | ":exit" => Flow::Quit,
            ":help" | ":h" | ":?" => {
                out(&self.help(arg));
                Flow::Ok
            }
            ":type" | ":t" if arg.is_empty() => needs_arg("expr"),
            ":type" | ":t" => self.type_of(arg),
            ":plan" | ":explain" if arg.is_empty() => needs_arg("expr"),
            ":plan" => self.plan(arg, false),
            ":explain" => self.plan(arg, true),
            ":show" if arg.is_empty() => needs_arg("expr [path.png]"),
            ":show" => self.show_png(arg),
            ":time" if arg.is_empty() => needs_arg("expr"),
            ":time" => {
                let t0 = Instant::now();
                let r = self.entry(&format!("{arg}\n"), None);
                let secs = t0.elapsed().as_secs_f64();
                match r {
                    Some(tasks) => {
                        out(&format!(
                            "time: {} ({tasks} task{})",
                            fmt_secs(secs),
                            if tasks == 1 { "" } else { "s" }
                        ));
                        Flow::Ok
                    }
                    None => Flow::Failed,
                }
            }
            ":load" if arg.is_empty() => needs_arg("file.tsr"),
            ":load" => self.load(arg),
            ":save" if arg.is_empty() => needs_arg("file.tsr"),
            ":save" => self.save(arg),
            _ => {
                let names = COMMANDS.iter().map(|(c, _, _)| *c);
                let hint = crate::diag::closest(cmd, names)
                    .map(|c| format!(" (did you mean {c}?)"))
                    .unwrap_or_default();
                err(&format!(
                    "unknown command {cmd}{hint}; :help lists the commands\n"
                ));
                Flow::Failed
            }
        }
    }

    /// Report a command's result: diagnostics on failure, warnings and text on success.
    fn finish(&self, r: Result<(String, Vec<Diagnostic>), Vec<Diagnostic>>) -> Flow {
        match r {
            Ok((text, warnings)) => {
                self.render(&warnings);
                out(&text);
                Flow::Ok
            }
            Err(d) => {
                self.render(&d);
                Flow::Failed
            }
        }
    }

    fn type_of(&mut self, src: &str) -> Flow {
        let r = self.engine.with_expr(src, |e, l| Ok(e.describe(&l.value)));
        self.finish(r)
    }

    fn plan(&mut self, src: &str, explain: bool) -> Flow {
        let (opts, guards) = (self.opts.clone(), session::plan_only(&self.guards));
        if let Some(file) = script_file(src) {
            // A script file is planned as `tessera plan FILE` plans it, aside from the
            // session's bindings.
            let Some(text) = self.read_script(file) else {
                return Flow::Failed;
            };
            let r = self
                .engine
                .aside(|e| e.compile(file, &text, &opts, &guards));
            return self.finish(r.map(|c| (c.plan_text(explain), c.warnings)));
        }
        let r = self.engine.with_expr(src, |e, l| {
            let mut sinks = l.sinks.clone();
            if let Value::Array(a) = &l.value {
                sinks.push(e.scratch_write(a, "<value>")?);
            }
            if sinks.is_empty() {
                return Ok(format!(
                    "nothing to compute: the value is {}",
                    e.describe(&l.value)
                ));
            }
            let program = e.program_for(sinks);
            let compiled = e.compile_program(program, src, Vec::new(), &opts, &guards);
            Ok(compiled.plan_text(explain))
        });
        self.finish(r)
    }

    fn show_png(&mut self, arg: &str) -> Flow {
        // `:show x[0] out.png`: a last word ending in .png is the path.
        let (expr, path) = match arg.rsplit_once(char::is_whitespace) {
            Some((e, p)) if p.to_ascii_lowercase().ends_with(".png") && !e.trim().is_empty() => {
                (e.trim(), Some(p))
            }
            _ => (arg, None),
        };
        let path = match path {
            Some(p) => self.engine.ev.resolve(p),
            None => {
                self.previews += 1;
                std::env::temp_dir().join(format!(
                    "tessera-preview-{}-{}.png",
                    std::process::id(),
                    self.previews
                ))
            }
        };
        let (opts, guards) = (self.opts.clone(), self.guards.clone());
        let r = self.engine.with_expr(expr, |e, l| {
            let Value::Array(a) = &l.value else {
                return Err(vec![Diagnostic::error(
                    codes::TYPE_MISMATCH,
                    format!("only arrays can be shown, not {}", l.value.a_kind()),
                )
                .label(l.span, format!("this is {}", l.value.a_kind()))]);
            };
            let shape = e.ev.program.ty(a.node).shape.clone();
            let (h, w) = crate::io::preview::image_shape(&shape).map_err(|r| {
                let code = if r.too_large {
                    codes::TOO_LARGE
                } else {
                    codes::SHAPE_MISMATCH
                };
                vec![Diagnostic::error(code, r.message)
                    .label(l.span, format!("shape {}", crate::geom::fmt_shape(&shape)))
                    .help(r.help)]
            })?;
            let buf = e.elements_of(a, l.span, &opts, &guards)?;
            crate::io::preview::write_preview(&path, &buf, &shape)
                .map_err(|m| vec![Diagnostic::error(codes::WRITE_FAILED, m)])?;
            Ok(format!("{} ({h} x {w})", path.display()))
        });
        self.finish(r)
    }

    /// The text of the script `arg` names (relative to the session's directory), or
    /// `None` with the error shown.
    fn read_script(&self, arg: &str) -> Option<String> {
        let path = self.engine.ev.resolve(arg);
        std::fs::read_to_string(&path)
            .map_err(|e| {
                let d = Diagnostic::error(
                    codes::PATH_NOT_FOUND,
                    format!("cannot read script {arg}: {e}"),
                );
                self.render(&[d]);
            })
            .ok()
    }

    fn load(&mut self, arg: &str) -> Flow {
        let Some(src) = self.read_script(arg) else {
            return Flow::Failed;
        };
        match self.entry(&src, Some(arg)) {
            Some(_) => {
                // The log keeps the script's text, so `:save` reproduces the session
                // without depending on the file.
                if let Some(last) = self.log.last_mut() {
                    *last = format!("# :load {arg}\n{last}");
                }
                Flow::Ok
            }
            None => Flow::Failed,
        }
    }

    fn save(&mut self, arg: &str) -> Flow {
        let (arg, overwrite) = match arg.trim_end().strip_suffix("overwrite=true") {
            Some(rest) if rest.ends_with(char::is_whitespace) => (rest.trim_end(), true),
            _ => (arg.trim_end(), false),
        };
        let path = self.engine.ev.resolve(arg);
        if let Err(d) = crate::lower::paths::check_file_target(arg, &path, overwrite) {
            self.render(&[d]);
            return Flow::Failed;
        }
        let mut text = String::from("# saved from the tessera REPL\n");
        for e in &self.log {
            text.push_str(e);
            text.push('\n');
        }
        match std::fs::write(&path, text) {
            Ok(()) => {
                out(&format!(
                    "saved {} entr{} to {arg}",
                    self.log.len(),
                    if self.log.len() == 1 { "y" } else { "ies" }
                ));
                Flow::Ok
            }
            Err(e) => {
                let d = Diagnostic::error(codes::UNWRITABLE, format!("cannot write {arg}: {e}"));
                self.render(&[d]);
                Flow::Failed
            }
        }
    }

    fn help(&self, name: &str) -> String {
        help_text(self.engine, name)
    }
}

/// What `:help NAME` prints (`:help` alone: the overview of every command, builtin,
/// method and function).
pub fn help_text(engine: &Engine, name: &str) -> String {
    let name = name.trim().trim_start_matches("x.");
    if name.is_empty() {
        return help_overview(engine);
    }
    let mut parts = Vec::new();
    if let Some((c, a, d)) = COMMANDS
        .iter()
        .find(|(c, _, _)| *c == name || c.trim_start_matches(':') == name)
    {
        parts.push(format!("{c} {a}\n  {d}"));
    }
    let reg = &engine.ev.registry;
    for d in [reg.function(name), reg.method(name)].into_iter().flatten() {
        parts.push(format!("{}\n  {}", d.signature, d.doc));
    }
    if PROPERTIES.contains(&name) {
        parts.push(format!("x.{name}\n  array property"));
    }
    if let Some(Value::Func(c)) = engine.ev.env.lookup(name) {
        let doc = doc_comment(engine, name)
            .map(|d| format!("\n  {}", d.replace('\n', "\n  ")))
            .unwrap_or_default();
        parts.push(format!("fn {}{doc}", fn_signature(c)));
    }
    if parts.is_empty() {
        let mut cands: Vec<String> = engine.ev.env.names();
        cands.extend(engine.ev.registry.iter().map(|d| d.name.clone()));
        let hint = crate::diag::closest(name, cands.iter().map(|s| s.as_str()))
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        return format!("no help for `{name}`{hint}; :help lists everything");
    }
    parts.join("\n")
}

/// The script `:plan FILE.tsr` names: one word ending in `.tsr` (an expression never
/// does).
fn script_file(arg: &str) -> Option<&str> {
    let arg = arg.trim();
    (arg.ends_with(".tsr") && !arg.contains(char::is_whitespace)).then_some(arg)
}

/// The Ctrl-C binding: see `Repl::interactive`.
struct CancelEntry(Arc<AtomicBool>);

impl rustyline::ConditionalEventHandler for CancelEntry {
    fn handle(
        &self,
        _evt: &rustyline::Event,
        _n: rustyline::RepeatCount,
        _positive: bool,
        _ctx: &rustyline::EventContext,
    ) -> Option<rustyline::Cmd> {
        self.0.store(true, Ordering::Relaxed);
        Some(rustyline::Cmd::AcceptLine)
    }
}

/// Add an entry to the history and append it to the history file; failures are silent
/// (a read-only home must not disturb the session).
fn remember(
    rl: &mut rustyline::Editor<ReplHelper, rustyline::history::FileHistory>,
    entry: &str,
    file: Option<&PathBuf>,
) {
    if entry.is_empty() {
        return;
    }
    let _ = rl.add_history_entry(entry);
    if let Some(f) = file {
        let _ = rl.append_history(f);
    }
}

fn fmt_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// The `#` comment lines right above `fn name(` in the newest source defining it.
fn doc_comment(engine: &Engine, name: &str) -> Option<String> {
    let sources = &engine.ev.sources;
    let needle = format!("fn {name}(");
    (0..sources.len()).rev().find_map(|i| {
        let text = sources.text(crate::diag::SourceId(i as u32));
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .rposition(|l| l.trim_start().starts_with(&needle))?;
        let doc: Vec<&str> = lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with('#'))
            .map(|l| l.trim_start().trim_start_matches('#').trim())
            .collect();
        Some(doc.into_iter().rev().collect::<Vec<_>>().join("\n")).filter(|d| !d.is_empty())
    })
}

fn help_overview(engine: &Engine) -> String {
    let mut s = String::from("Commands:\n");
    for (c, a, d) in COMMANDS {
        let head = format!("{c} {a}");
        s.push_str(&format!("  {head:<24} {d}\n"));
    }
    s.push_str("\nBuiltins (:help NAME for details):\n");
    for d in engine.ev.registry.functions() {
        s.push_str(&format!("  {}\n", d.signature));
    }
    s.push_str("\nArray methods:\n");
    for d in engine.ev.registry.methods() {
        s.push_str(&format!("  {}\n", d.signature));
    }
    s.push_str(&format!("\nArray properties: {}\n", PROPERTIES.join(" ")));
    let mut fns: Vec<String> = engine
        .ev
        .env
        .names()
        .into_iter()
        .filter(|n| !n.starts_with('_'))
        .filter_map(|n| match engine.ev.env.lookup(&n) {
            Some(Value::Func(c)) => Some(fn_signature(c)),
            _ => None,
        })
        .collect();
    fns.sort();
    if !fns.is_empty() {
        s.push_str("\nFunctions (standard library and yours):\n");
        for f in fns {
            s.push_str(&format!("  {f}\n"));
        }
    }
    s.push_str(
        "\nKeys: Tab completes names, methods after `x.`, keyword arguments and paths in \
         strings.\nAn entry continues while brackets are open or a line ends with an operator.\n\
         Ctrl-C cancels the entry being typed, or stops a running computation.\n\
         Ctrl-D or :quit leaves. History: $XDG_DATA_HOME/tessera/history (default\n\
         ~/.local/share/tessera/history).\n",
    );
    s
}
