//! The embedding API: `Engine` runs source text through every stage (parse, lower and
//! check, optimize, plan, execute) and keeps state across REPL lines.

use crate::data::Buf;
use crate::diag::{self, Diagnostic, SourceMap};
use crate::exec::{self, Fingerprint, RunOptions, Safeguards};
use crate::ir::{self, PrintPiece, Program};
use crate::lower::script_args::ScriptArg;
use crate::lower::{Evaluator, Value};
use crate::opt::{self, TraceStep};
use crate::plan::{self, Plan};
use std::sync::Arc;

/// Everything `tessera check` reports.
#[derive(Debug)]
pub struct Checked {
    /// Top-level bindings with their types, in order (`x: u16[100, 200] chunks [50, 50]`).
    pub bindings: Vec<(String, String)>,
    pub warnings: Vec<Diagnostic>,
    pub program: Program,
    /// The script's parameters (`arg(name, default)`) in the order first read.
    pub args: Vec<ScriptArg>,
}

/// A program through the one compile step every front end shares (`Engine::compile`):
/// lowered and checked, optimized for the memory limit, planned, and carrying the run
/// options and safeguards it was compiled for, so `Engine::execute` runs it exactly as
/// planned.
#[derive(Debug)]
pub struct Compiled {
    pub program: Program,
    /// The optimizer passes, for `plan --explain` and `:explain`.
    pub trace: Vec<TraceStep>,
    pub plan: Plan,
    pub warnings: Vec<Diagnostic>,
    /// Workers and progress display of the run.
    pub opts: RunOptions,
    /// Memory limit, completion records and resume of the run.
    pub guards: Safeguards,
    /// What identifies the plan in its outputs' completion records (with `guards.record`).
    fingerprint: Option<Fingerprint>,
}

/// The optimized program and its plan (what `Engine::plan` returns).
pub type Planned = Compiled;

impl Compiled {
    /// What `tessera plan` prints (and the REPL's `:plan`): the optimized program and the
    /// plan's summary for its workers; with `explain`, first the program after every
    /// optimizer pass, and every stage in detail.
    pub fn plan_text(&self, explain: bool) -> String {
        let workers = self.opts.workers;
        let mut text = String::new();
        if explain {
            for step in &self.trace {
                if step.changed {
                    text.push_str(&format!("-- after {}:\n{}", step.pass, step.program));
                } else {
                    text.push_str(&format!("-- {}: unchanged\n", step.pass));
                }
            }
            text.push_str("-- optimized program:\n");
        }
        text.push_str(&ir::print_program(&self.program));
        if explain {
            text.push_str("-- stages:\n");
            text.push_str(&plan::explain(&self.program, &self.plan, workers));
            text.push_str("-- summary:\n");
        }
        text.push_str(&plan::summary(&self.plan, workers));
        text
    }
}

/// What running a script produced.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Lines printed by `print`, in order.
    pub printed: Vec<String>,
    pub warnings: Vec<Diagnostic>,
    pub tasks: u64,
    /// Chunks skipped because an interrupted run of the same plan finished them.
    pub skipped: u64,
    pub seconds: f64,
    /// Input chunks the tasks asked for, and how many were decoded from storage.
    pub chunk_requests: u64,
    pub chunks_decoded: u64,
    /// Tasks that started before the stages whose outputs they read had finished
    /// (chunk-level chaining).
    pub chained_early: u64,
    /// Every output written, with its type and the chunks written to it.
    pub outputs: Vec<exec::OutputSummary>,
}

/// An input a host program hands its scripts by name (the Python package's `x=array`):
/// the name is bound as if the script began with `let x = zarr(...)`.
#[derive(Clone, Debug)]
pub enum NamedInput {
    /// A stored array by path or URL, opened as `zarr(path)` opens it.
    Path(String),
    /// An array the host opened itself, e.g. one in its memory (`ZarrReader::host`).
    Reader(Arc<crate::io::ZarrReader>),
    /// A Python block function, bound as `python(spec)` binds it (`file.py:func`), e.g.
    /// a host's callable saved into a module file.
    Python(String),
}

/// A value `Engine::eval_value` computed.
#[derive(Clone, Debug, PartialEq)]
pub enum Computed {
    None,
    /// Every element, in C order.
    Array {
        values: Buf,
        shape: Vec<u64>,
    },
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Tuple(Vec<Computed>),
    List(Vec<Computed>),
    /// Anything else (a function, a kernel, a table), as the language prints it.
    Other(String),
    /// An array left uncomputed (`Engine::eval_shown`), bound in the session as `name`.
    Lazy(LazyArray),
    /// A `regionprops` table left uncomputed (`Engine::eval_shown`), bound in the session
    /// as `name`; `label` is the call as written.
    Table {
        name: String,
        label: String,
    },
}

/// An array value `Engine::eval_shown` did not compute: the REPL's summary of it, its
/// type, and the session name it is bound to (evaluate that name to compute it).
#[derive(Clone, Debug, PartialEq)]
pub struct LazyArray {
    pub name: String,
    pub summary: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub chunks: Vec<u64>,
}

/// What `Engine::eval_value` produced: the value of the entry's final expression (none
/// for an entry ending in a statement) and the run's report.
#[derive(Debug)]
pub struct Evaluated {
    pub value: Computed,
    pub report: RunReport,
}

pub struct Engine {
    /// The lowering state (bindings, program, sources); crate-visible for the REPL.
    pub(crate) ev: Evaluator,
    /// The memory limit and worker count `plan` compiles for (`set_memory`).
    memory_limit: Option<u64>,
    workers: Option<usize>,
    /// The standard library's bindings, for scripts planned aside from a REPL session.
    stdlib_env: crate::lower::Env,
    /// Inputs bound by name in every script `lower_script` lowers (`set_inputs`).
    named: Vec<(String, NamedInput)>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// A fresh engine with the standard library loaded.
    pub fn new() -> Engine {
        let mut e = Engine {
            ev: Evaluator::new(),
            memory_limit: None,
            workers: None,
            stdlib_env: crate::lower::Env::default(),
            named: Vec::new(),
        };
        for (name, text) in crate::stdlib::FILES {
            let id = e.ev.sources.add(*name, *text);
            match crate::syntax::parse(text, id) {
                Ok(script) => {
                    e.ev.run_top(&script.stmts, false);
                }
                Err(d) => e.ev.diags.extend(d),
            }
        }
        if e.ev.error_count() > 0 {
            // The stdlib ships with the binary and is tested; reaching this is a build bug.
            let text = diag::render(&e.ev.sources, &e.ev.diags, false);
            panic!("bug: the standard library does not check:\n{text}");
        }
        e.ev.diags.clear();
        e.stdlib_env = e.ev.env.clone();
        e
    }

    /// Every builtin function, kernel and method scripts can call.
    pub fn registry(&self) -> &crate::lower::registry::Registry {
        &self.ev.registry
    }

    /// Add a builtin (a function, kernel constructor or method) for every script lowered
    /// from now on. Refused when the name is taken or is not an identifier.
    pub fn register(
        &mut self,
        b: crate::lower::registry::Builtin,
    ) -> Result<(), crate::lower::registry::RegistryError> {
        self.ev.registry.add(b)
    }

    /// Add a kernel written in Rust: scripts call it like a builtin kernel
    /// (`x.map(name(args))`, `x.overlap(..).map(..)`), checked, planned and run as one.
    /// Refused when the name is taken or is not an identifier.
    pub fn register_kernel(
        &mut self,
        kernel: crate::ir::native::NativeKernel,
    ) -> Result<(), crate::lower::registry::RegistryError> {
        let entry = crate::lower::kernels::native_entry(std::sync::Arc::new(kernel));
        self.ev.registry.add(entry)
    }

    /// Resolve relative paths in scripts against `dir` instead of the working directory.
    pub fn with_base_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Engine {
        self.ev.base_dir = Some(dir.into());
        self
    }

    /// Plan for a memory limit shared by `workers` tasks: rechunks whose blocks would
    /// not fit are staged through storage (`opt::stage_rechunk`).
    /// `plan` compiles for them (`compile` and `run_with` take theirs as arguments).
    pub fn set_memory(&mut self, memory_limit: Option<u64>, workers: usize) {
        self.memory_limit = memory_limit;
        self.workers = Some(workers);
    }

    /// The Python interpreter for block functions (`--python`; none: `TESSERA_PYTHON`,
    /// else `python3`), for every script lowered from now on.
    pub fn set_python(&mut self, interpreter: Option<std::path::PathBuf>) {
        if self.ev.python != interpreter {
            self.ev.py_probe = None;
            self.ev.probes.clear();
        }
        self.ev.python = interpreter;
    }

    /// Values for the scripts' `arg(name, default)` calls (`--arg name=value`), used by
    /// every script and REPL entry lowered from now on. A script that does not read one
    /// of them is refused (E0105).
    pub fn set_args(&mut self, args: impl IntoIterator<Item = (String, String)>) {
        self.ev.script_args = args.into_iter().collect();
    }

    /// The arguments the last script (or the REPL session so far) read.
    pub fn args_read(&self) -> &[ScriptArg] {
        &self.ev.args_read
    }

    pub fn sources(&self) -> &SourceMap {
        &self.ev.sources
    }

    /// Render diagnostics (colour for terminals, plain for files and snapshots).
    pub fn render(&self, diags: &[Diagnostic], color: bool) -> String {
        diag::render(&self.ev.sources, diags, color)
    }

    /// Parse and lower a whole script into a fresh program (stdlib bindings kept).
    /// Errors are every diagnostic found; warnings are returned with a successful result
    /// through `take_warnings`.
    pub fn lower_script(&mut self, name: &str, src: &str) -> Result<Program, Vec<Diagnostic>> {
        let id = self.ev.sources.add(name, src);
        let script = crate::syntax::parse(src, id)?;
        self.ev.program = Program::default();
        self.ev.bindings.clear();
        self.ev.diags.clear();
        // Each script is its own program: inputs are re-read (they may have changed).
        self.ev.outputs.clear();
        self.ev.inputs.clear();
        self.ev.chosen_chunks.clear();
        self.ev.args_read.clear();
        self.ev.reset_budget();
        let saved_env = self.ev.env.clone();
        for (n, input) in self.named.clone() {
            match self.bind_named(&n, &input) {
                Ok(v) => self.ev.bindings.push((n, v)),
                Err(d) => self.ev.diags.push(d),
            }
        }
        self.ev.run_top(&script.stmts, true);
        self.ev.env = saved_env;
        self.ev.check_unread_args();
        if self.ev.error_count() > 0 {
            return Err(std::mem::take(&mut self.ev.diags));
        }
        Ok(std::mem::take(&mut self.ev.program))
    }

    /// Inputs bound by name in every script lowered from now on (`check`, `plan`, `run`),
    /// before its first line; `check` lists them first among the bindings.
    pub fn set_inputs(&mut self, inputs: Vec<(String, NamedInput)>) {
        self.named = inputs;
    }

    /// Bind `name` to an input in this engine's session (`eval`, `eval_value`); later
    /// entries read it like any binding.
    pub fn bind_input(&mut self, name: &str, input: &NamedInput) -> Result<(), Vec<Diagnostic>> {
        self.ev.diags.clear();
        let v = self.bind_named(name, input).map_err(|d| vec![d])?;
        self.ev.env = self.ev.env.bind(name, v);
        Ok(())
    }

    /// The value of a named input, bound in the evaluator's environment; its diagnostics
    /// point into a source of its own, `<input name>`.
    fn bind_named(&mut self, name: &str, input: &NamedInput) -> Result<Value, Diagnostic> {
        let text = match input {
            NamedInput::Path(p) => format!("zarr({p:?})"),
            NamedInput::Python(spec) => format!("python({spec:?})"),
            NamedInput::Reader(r) => r.path().display().to_string(),
        };
        let id = self.ev.sources.add(format!("<input {name}>"), text.clone());
        let span = crate::diag::Span::new(id, 0, text.len());
        if !crate::lower::user_code::is_ident(name) || crate::syntax::is_keyword(name) {
            return Err(Diagnostic::error(
                crate::diag::codes::HOST_INPUT,
                format!("the input name {name:?} is not an identifier"),
            )
            .label(span, "given under this name"));
        }
        let value = match input {
            NamedInput::Path(_) | NamedInput::Python(_) => {
                let script = crate::syntax::parse(&text, id).map_err(|mut d| d.swap_remove(0))?;
                let Some(crate::syntax::ast::StmtKind::Expr(e)) =
                    script.stmts.first().map(|s| &s.kind)
                else {
                    return Err(Diagnostic::error(
                        crate::diag::codes::INTERNAL,
                        "internal error: an input did not lower to a `zarr` or `python` call",
                    ));
                };
                let env = self.ev.env.clone();
                self.ev.eval(e, &env)?
            }
            NamedInput::Reader(r) => {
                // Every binding of an opened array gets a key of its own, so a name bound
                // again in a session leaves earlier entries reading what they read.
                let base = r.path().display().to_string();
                let mut key = base.clone();
                let mut k = 1;
                while self.ev.inputs.contains_key(&key) {
                    k += 1;
                    key = format!("{base}#{k}");
                }
                self.ev.opened_input(&key, r.clone(), span)?
            }
        };
        self.ev.env = self.ev.env.bind(name, value.clone());
        Ok(value)
    }

    fn take_warnings(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.ev.diags)
    }

    /// Parse and check: every binding's type, or every error.
    pub fn check(&mut self, name: &str, src: &str) -> Result<Checked, Vec<Diagnostic>> {
        let program = self.lower_script(name, src)?;
        let halos = program.max_halos();
        let bindings = self
            .ev
            .bindings
            .iter()
            .map(|(n, v)| (n.clone(), describe(&program, &halos, v)))
            .collect();
        Ok(Checked {
            bindings,
            warnings: self.take_warnings(),
            program,
            args: self.ev.args_read.clone(),
        })
    }

    /// Check, optimize and plan, for the memory limit and workers of `set_memory` (no
    /// limit and every core by default): `compile` with those.
    pub fn plan(&mut self, name: &str, src: &str) -> Result<Planned, Vec<Diagnostic>> {
        let mut opts = RunOptions::default();
        if let Some(w) = self.workers {
            opts.workers = w;
        }
        let guards = Safeguards {
            memory_limit: self.memory_limit,
            ..Safeguards::default()
        };
        self.compile(name, src, &opts, &guards)
    }

    /// The one compile step of every front end (`tessera run/plan/check`, the REPL, the
    /// embedding API): parse, lower and check the whole script, then optimize and plan it
    /// for `guards.memory_limit` shared by `opts.workers` (rechunks too large for it are
    /// staged through storage). With `guards.resume`, outputs with a completion record
    /// are accepted as resumable. The result runs with `execute`.
    pub fn compile(
        &mut self,
        name: &str,
        src: &str,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> Result<Compiled, Vec<Diagnostic>> {
        self.ev.resuming = guards.resume;
        let lowered = self.lower_script(name, src);
        self.ev.resuming = false;
        let program = lowered?;
        let warnings = self.take_warnings();
        Ok(self.compile_program(program, src, warnings, opts, guards))
    }

    /// The optimize-and-plan half of `compile`, for a program already lowered (a whole
    /// script, or the sinks of one REPL entry over the session's nodes); `src` is the
    /// text the completion records identify it by.
    pub(crate) fn compile_program(
        &self,
        mut program: Program,
        src: &str,
        warnings: Vec<Diagnostic>,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> Compiled {
        program.block_bytes = ir::block_bytes_for(guards.memory_limit, opts.workers);
        let trace = opt::optimize(&mut program);
        let plan = plan::build(&program);
        let fingerprint = guards.record.then(|| {
            let inputs = self.ev.inputs.iter().map(|(k, r)| (k.as_str(), r.path()));
            let args = self
                .ev
                .args_read
                .iter()
                .map(|a| (a.name.as_str(), a.value.as_str()));
            Fingerprint::new(src, inputs)
                .with_args(args)
                .with_code(&program)
        });
        Compiled {
            program,
            trace,
            plan,
            warnings,
            opts: opts.clone(),
            guards: guards.clone(),
            fingerprint,
        }
    }

    /// Run a compiled program against the inputs its compile opened, with the safeguards
    /// it was compiled with: a plan that cannot fit the memory limit even one task at a
    /// time is refused, tasks start only while their working sets fit, every output is
    /// locked for the run and written atomically chunk by chunk, with its completion
    /// record when asked for.
    pub fn execute(&self, compiled: Compiled) -> Result<RunReport, Vec<Diagnostic>> {
        let out = self.execute_output(&compiled)?;
        let printed = render_effects(&compiled.program, &out);
        Ok(RunReport {
            printed,
            warnings: compiled.warnings,
            tasks: out.tasks_run,
            skipped: out.skipped,
            seconds: out.seconds,
            chunk_requests: out.chunk_requests,
            chunks_decoded: out.chunks_decoded,
            chained_early: out.chained_early,
            outputs: out.outputs,
        })
    }

    /// `execute`, returning what the executor computed (the values of the sinks).
    pub(crate) fn execute_output(
        &self,
        compiled: &Compiled,
    ) -> Result<exec::RunOutput, Vec<Diagnostic>> {
        let readers = self
            .ev
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        exec::execute_with(
            &compiled.program,
            &compiled.plan,
            &readers,
            &compiled.opts,
            &compiled.guards,
            compiled.fingerprint.as_ref(),
            self.ev.py_probe.clone(),
        )
    }

    /// Check, plan and run a script.
    pub fn run(
        &mut self,
        name: &str,
        src: &str,
        opts: &RunOptions,
    ) -> Result<RunReport, Vec<Diagnostic>> {
        self.run_with(name, src, opts, &Safeguards::default())
    }

    /// Let the next compile accept existing outputs: `tessera plan --export DIR --resume`
    /// re-exports the plan of an exported run to resume, whose outputs its first stage
    /// made (their completion records are the plan directory's, which the executor
    /// compares before it resumes).
    pub fn set_resuming_export(&mut self, on: bool) {
        self.ev.resuming_export = on;
    }

    /// `run` with a memory limit enforced while running and resumable outputs:
    /// `compile`, then `execute`.
    pub fn run_with(
        &mut self,
        name: &str,
        src: &str,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> Result<RunReport, Vec<Diagnostic>> {
        if guards.resume {
            if let Some((n, _)) = self
                .named
                .iter()
                .find(|(_, i)| matches!(i, NamedInput::Reader(r) if r.is_host()))
            {
                return Err(vec![Diagnostic::error(
                    crate::diag::codes::HOST_INPUT,
                    format!("cannot resume a run that reads the in-memory array `{n}`"),
                )
                .note("the contents of an array in memory are not recorded, so a changed array would go unnoticed")
                .help("write the array to a Zarr store and pass its path to resume")]);
            }
        }
        // The first check-time call of a Python function starts the run's workers.
        self.ev.py_prestart = opts.workers.max(1);
        let compiled = self.compile(name, src, opts, guards);
        self.ev.py_prestart = 0;
        self.execute(compiled?)
    }

    /// Run `f` with the session's lowering state set aside, as a fresh engine would
    /// start (the standard library's bindings, no program, inputs or outputs), and put
    /// the session back afterwards: how the REPL plans a script file as `tessera plan`
    /// does without disturbing its bindings.
    pub(crate) fn aside<T>(&mut self, f: impl FnOnce(&mut Engine) -> T) -> T {
        let ev = &mut self.ev;
        let saved = (
            std::mem::take(&mut ev.program),
            std::mem::take(&mut ev.inputs),
            std::mem::take(&mut ev.bindings),
            std::mem::replace(&mut ev.env, self.stdlib_env.clone()),
            std::mem::take(&mut ev.outputs),
            std::mem::take(&mut ev.input_ids),
            std::mem::take(&mut ev.output_ids),
            std::mem::take(&mut ev.chosen_chunks),
            std::mem::take(&mut ev.args_read),
        );
        let r = f(self);
        let ev = &mut self.ev;
        (
            ev.program,
            ev.inputs,
            ev.bindings,
            ev.env,
            ev.outputs,
            ev.input_ids,
            ev.output_ids,
            ev.chosen_chunks,
            ev.args_read,
        ) = saved;
        ev.diags.clear();
        r
    }
}

/// An entry lowered into the session: its AST, the value of its last statement, a program
/// of only its own sinks and prints, and its warnings.
pub(crate) type LoweredEntry = (
    crate::syntax::ast::Script,
    Option<Value>,
    Program,
    Vec<Diagnostic>,
);

impl Engine {
    /// Evaluate source in this engine's session (bindings persist across calls, sinks run
    /// at once), with default run options; the REPL's entry point.
    pub fn eval(&mut self, src: &str) -> Result<RunReport, Vec<Diagnostic>> {
        self.eval_line(src, &RunOptions::default())
    }

    /// Lower one entry into the session. Bindings persist; an entry with errors is undone
    /// so the session goes on as before it. Returns the parsed entry, the value of its
    /// last statement, a program holding only the entry's own sinks and prints (over
    /// the session's nodes), and its warnings.
    pub(crate) fn lower_entry(
        &mut self,
        name: &str,
        src: &str,
    ) -> Result<LoweredEntry, Vec<Diagnostic>> {
        let id = self.ev.sources.add(name, src);
        let script = crate::syntax::parse(src, id)?;
        let (sinks0, effects0) = (self.ev.program.sinks.len(), self.ev.program.effects.len());
        let nodes0 = self.ev.program.nodes.len();
        self.ev.diags.clear();
        self.ev.outputs.clear();
        self.ev.reset_budget();
        let env0 = self.ev.env.clone();
        let last = self.ev.run_top(&script.stmts, false);
        if self.ev.error_count() > 0 {
            self.ev.env = env0;
            self.ev.program.sinks.truncate(sinks0);
            self.ev.program.effects.truncate(effects0);
            self.ev.program.nodes.truncate(nodes0);
            return Err(std::mem::take(&mut self.ev.diags));
        }
        let warnings = self.take_warnings();
        let mut program = self.ev.program.clone();
        program.sinks = program.sinks.split_off(sinks0);
        program.effects = program.effects.split_off(effects0);
        for e in program.effects.iter_mut() {
            for p in e.pieces.iter_mut() {
                if let PrintPiece::Values(i) = p {
                    *i -= sinks0;
                }
            }
        }
        Ok((script, last, program, warnings))
    }

    /// Evaluate one REPL entry in the session: bindings persist, new sinks run now, and
    /// the value of a final expression is printed.
    pub fn eval_line(
        &mut self,
        src: &str,
        opts: &RunOptions,
    ) -> Result<RunReport, Vec<Diagnostic>> {
        self.eval_line_with(src, opts, &Safeguards::default())
    }

    /// `eval_line` with the run safeguards of `run_with`: the entry's sinks go through
    /// the same compile step as a script's.
    pub fn eval_line_with(
        &mut self,
        src: &str,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> Result<RunReport, Vec<Diagnostic>> {
        let name = format!("<repl:{}>", self.ev.sources.len());
        let (script, last, program, warnings) = self.lower_entry(&name, src)?;
        let mut printed = Vec::new();
        let mut tasks = 0;
        let mut seconds = 0.0;
        let mut reads = (0, 0);
        let mut early = 0;
        let mut outputs = Vec::new();
        if !program.sinks.is_empty() || !program.effects.is_empty() {
            let (program, mut out) = self.run_program(program, src, opts, guards)?;
            outputs = std::mem::take(&mut out.outputs);
            tasks = out.tasks_run;
            seconds = out.seconds;
            reads = (out.chunk_requests, out.chunks_decoded);
            early = out.chained_early;
            printed.extend(render_effects(&program, &out));
        }
        let is_expr = matches!(
            script.stmts.last().map(|s| &s.kind),
            Some(crate::syntax::ast::StmtKind::Expr(_))
        );
        if is_expr {
            if let Some(v) = last {
                match &v {
                    Value::None => {}
                    Value::Array(a) => printed.push(self.ev.array_summary(a)),
                    other => printed.push(other.to_string()),
                }
            }
        }
        Ok(RunReport {
            printed,
            warnings,
            tasks,
            skipped: 0,
            seconds,
            chunk_requests: reads.0,
            chunks_decoded: reads.1,
            chained_early: early,
            outputs,
        })
    }
}

impl Engine {
    /// Evaluate one entry in the session, as `eval_line` does (bindings persist, sinks
    /// run, an entry with errors is undone), computing every element of the arrays in
    /// the final expression's value (`x.sum()`, `(a, b.mean())`) in the same run.
    pub fn eval_value(
        &mut self,
        src: &str,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> Result<Evaluated, Vec<Diagnostic>> {
        let name = format!("<eval:{}>", self.ev.sources.len());
        let (script, last, program, warnings) = self.lower_entry(&name, src)?;
        self.eval_lowered(src, script, last, program, warnings, opts, guards)
    }

    /// The rest of `eval_value` for a lowered entry.
    #[allow(clippy::too_many_arguments)]
    fn eval_lowered(
        &mut self,
        src: &str,
        script: crate::syntax::ast::Script,
        last: Option<Value>,
        mut program: Program,
        warnings: Vec<Diagnostic>,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> Result<Evaluated, Vec<Diagnostic>> {
        let last_stmt = script.stmts.last();
        let value = match last_stmt.map(|s| &s.kind) {
            Some(crate::syntax::ast::StmtKind::Expr(_)) => last,
            _ => None,
        };
        let first_sink = program.sinks.len();
        let mut value = match (&value, last_stmt) {
            (Some(v), Some(stmt)) => self.wanted(v, &mut program, stmt.span),
            _ => Computed::None,
        };
        let mut report = RunReport {
            warnings,
            ..RunReport::default()
        };
        if !program.sinks.is_empty() || !program.effects.is_empty() {
            let (program, mut out) = self.run_program(program, src, opts, guards)?;
            report.printed = render_effects(&program, &out);
            report.tasks = out.tasks_run;
            report.seconds = out.seconds;
            report.chunk_requests = out.chunk_requests;
            report.chunks_decoded = out.chunks_decoded;
            report.chained_early = out.chained_early;
            report.outputs = std::mem::take(&mut out.outputs);
            let mut computed = out.values.drain(first_sink.min(out.values.len())..);
            fill(&mut value, &mut computed)?;
        }
        Ok(Evaluated { value, report })
    }

    /// `eval_value` for a notebook cell: an entry whose final expression is an array of
    /// one or more axes leaves it uncomputed, binds it in the session as `bind_as` and
    /// returns `Computed::Lazy` with the REPL's summary; any other value is computed as
    /// `eval_value` computes it.
    pub fn eval_shown(
        &mut self,
        src: &str,
        bind_as: &str,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> Result<Evaluated, Vec<Diagnostic>> {
        let name = format!("<cell:{}>", self.ev.sources.len());
        let (script, last, program, warnings) = self.lower_entry(&name, src)?;
        let is_expr = matches!(
            script.stmts.last().map(|s| &s.kind),
            Some(crate::syntax::ast::StmtKind::Expr(_))
        );
        let lazy = match (&last, is_expr) {
            (Some(Value::Array(a)), true) if !self.ev.program.ty(a.node).shape.is_empty() => {
                Some(a.clone())
            }
            _ => None,
        };
        let table = match (&last, is_expr) {
            (Some(Value::Table(t)), true) => Some(Value::Table(t.clone())),
            _ => None,
        };
        if lazy.is_none() && table.is_none() {
            return self.eval_lowered(src, script, last, program, warnings, opts, guards);
        }
        let mut report = RunReport {
            warnings,
            ..RunReport::default()
        };
        if !program.sinks.is_empty() || !program.effects.is_empty() {
            let (program, mut out) = self.run_program(program, src, opts, guards)?;
            report.printed = render_effects(&program, &out);
            report.tasks = out.tasks_run;
            report.seconds = out.seconds;
            report.chunk_requests = out.chunk_requests;
            report.chunks_decoded = out.chunks_decoded;
            report.chained_early = out.chained_early;
            report.outputs = std::mem::take(&mut out.outputs);
        }
        let Some(a) = lazy else {
            let label = match &table {
                Some(Value::Table(t)) => t.label.clone(),
                _ => String::new(),
            };
            if let Some(t) = table {
                self.ev.env = self.ev.env.bind(bind_as, t);
            }
            return Ok(Evaluated {
                value: Computed::Table {
                    name: bind_as.to_string(),
                    label,
                },
                report,
            });
        };
        let summary = self.array_report(&a, opts, guards);
        let ty = self.ev.program.ty(a.node).clone();
        self.ev.env = self.ev.env.bind(bind_as, Value::Array(a));
        Ok(Evaluated {
            value: Computed::Lazy(LazyArray {
                name: bind_as.to_string(),
                summary,
                dtype: ty.dtype.numpy_name().to_string(),
                shape: ty.shape,
                chunks: ty.chunks,
            }),
            report,
        })
    }

    /// `v` with every array replaced by an empty placeholder of its shape, for which a
    /// sink computing its elements is added to `program` (in the order met).
    fn wanted(&self, v: &Value, program: &mut Program, span: crate::diag::Span) -> Computed {
        match v {
            Value::None => Computed::None,
            Value::Array(a) => {
                let ty = self.ev.program.ty(a.node);
                program.sinks.push(ir::Sink {
                    kind: ir::SinkKind::PrintValues {
                        label: self.ev.sources.snippet(span).to_string(),
                    },
                    node: a.node,
                    span,
                });
                Computed::Array {
                    values: Buf::zeros(ty.dtype, 0),
                    shape: ty.shape.clone(),
                }
            }
            Value::Int(i) => Computed::Int(*i),
            Value::Float(f) => Computed::Float(*f),
            Value::Bool(b) => Computed::Bool(*b),
            Value::Str(s) => Computed::Str(s.to_string()),
            Value::Tuple(t) => {
                Computed::Tuple(t.iter().map(|x| self.wanted(x, program, span)).collect())
            }
            Value::List(t) => {
                Computed::List(t.iter().map(|x| self.wanted(x, program, span)).collect())
            }
            other => Computed::Other(other.to_string()),
        }
    }
}

/// Put the computed elements into the placeholders of `wanted`, in the same order.
fn fill(
    c: &mut Computed,
    values: &mut impl Iterator<Item = Option<Buf>>,
) -> Result<(), Vec<Diagnostic>> {
    match c {
        Computed::Array { values: v, .. } => {
            *v = values.next().flatten().ok_or_else(|| {
                vec![Diagnostic::error(
                    crate::diag::codes::INTERNAL,
                    "internal error: the run returned no values",
                )]
            })?;
        }
        Computed::Tuple(items) | Computed::List(items) => {
            for x in items {
                fill(x, values)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The lines `print` calls produce, given the computed values of the program's sinks.
pub(crate) fn render_effects(program: &Program, out: &exec::RunOutput) -> Vec<String> {
    let values = &out.values;
    program
        .effects
        .iter()
        .map(|e| {
            let parts: Vec<String> = e
                .pieces
                .iter()
                .map(|p| match p {
                    PrintPiece::Text(t) => t.clone(),
                    PrintPiece::Values(i)
                        if matches!(program.sinks[*i].kind, ir::SinkKind::Props { .. }) =>
                    {
                        out.tables.get(*i).cloned().flatten().unwrap_or_default()
                    }
                    PrintPiece::Values(i) => match values.get(*i).and_then(|v| v.as_ref()) {
                        Some(b) => format_array(b, &program.ty(program.sinks[*i].node).shape),
                        None => String::new(),
                    },
                })
                .collect();
            parts.join(" ")
        })
        .collect()
}

/// How `tessera check` describes a binding's value.
fn describe(p: &Program, halos: &[Option<Vec<u64>>], v: &Value) -> String {
    match v {
        Value::Array(a) => {
            let halo = halos.get(a.node.index()).and_then(|h| h.as_deref());
            ir::type_summary_with(p, a.node, halo)
        }
        Value::Int(i) => format!("int = {i}"),
        Value::Float(_) => format!("float = {v}"),
        Value::Bool(_) => format!("bool = {v}"),
        Value::Str(s) => format!("str = {s:?}"),
        Value::None => "none".into(),
        Value::Tuple(_) => format!("{} = {v}", v.kind_name()),
        Value::List(l) => format!("list[{}]", l.len()),
        Value::Func(c) => {
            let ps: Vec<&str> = c.params.iter().map(|(n, _)| n.as_str()).collect();
            format!("fn({})", ps.join(", "))
        }
        Value::Kernel(_) => format!("kernel {v}"),
        Value::PyFunc(_) => format!("function {v}"),
        Value::Poison => "error".into(),
        other => other.kind_name().to_string(),
    }
}

/// NumPy's default `threshold`: more elements than this are summarised.
pub const PRINT_THRESHOLD: usize = 1000;
/// NumPy's default `edgeitems`.
const EDGE: u64 = 3;

/// The kept indices of one axis, with `None` where the `...` goes.
fn kept_indices(n: u64) -> Vec<Option<u64>> {
    crate::geom::summary_indices(n, EDGE)
}

/// Text of `b` (C order, `shape`) as NumPy's `str()` gives it: up to `PRINT_THRESHOLD`
/// elements in full, more summarised as the first and last `EDGE` items of every axis
/// with `...` between.
pub fn format_array(b: &Buf, shape: &[u64]) -> String {
    let total: u64 = shape.iter().product();
    if total as usize <= PRINT_THRESHOLD || shape.is_empty() || b.len() as u64 != total {
        return format_values(b, shape);
    }
    // Gather the edge elements into a small buffer, in C order of the kept indices.
    let axes: Vec<Vec<u64>> = shape
        .iter()
        .map(|n| kept_indices(*n).into_iter().flatten().collect())
        .collect();
    let small_shape: Vec<u64> = axes.iter().map(|a| a.len() as u64).collect();
    let count: usize = small_shape.iter().product::<u64>() as usize;
    let strides = crate::geom::strides(shape);
    let mut small = Buf::zeros(b.dtype(), count);
    let mut idx = vec![0usize; shape.len()];
    for k in 0..count {
        let src: usize = idx
            .iter()
            .enumerate()
            .map(|(d, i)| axes[d][*i] as usize * strides[d])
            .sum();
        small.copy_range(k, b, src, 1);
        // Odometer step over the kept indices.
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < axes[d].len() {
                break;
            }
            idx[d] = 0;
        }
    }
    // Format the cells together so they share one width (and float layout), then cut
    // the one-line text back into cells.
    let line = format_values(&small, &[count as u64]);
    let inner = line
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .unwrap_or("");
    let chars: Vec<char> = inner.chars().collect();
    let w = (chars.len() + 1) / count.max(1);
    if w == 0 || chars.len() + 1 != w * count {
        // Not the layout expected: print everything rather than something wrong.
        return format_values(b, shape);
    }
    let cells: Vec<String> = (0..count)
        .map(|k| chars[k * w..k * w + w - 1].iter().collect())
        .collect();
    let mut out = String::new();
    let mut next = 0;
    nest_summary(&cells, shape, 0, &mut next, &mut out);
    out
}

/// Write axis `depth` onwards; `next` walks the cells in order.
fn nest_summary(cells: &[String], shape: &[u64], depth: usize, next: &mut usize, out: &mut String) {
    out.push('[');
    let items = kept_indices(shape[depth]);
    if depth + 1 == shape.len() {
        let row: Vec<String> = items
            .iter()
            .map(|i| match i {
                Some(_) => {
                    let c = cells.get(*next).cloned().unwrap_or_default();
                    *next += 1;
                    c
                }
                None => "...".to_string(),
            })
            .collect();
        out.push_str(&row.join(" "));
    } else {
        let blank = "\n".repeat(shape.len() - depth - 1);
        for (k, i) in items.iter().enumerate() {
            if k > 0 {
                // As NumPy: rows of a matrix on new lines, matrices of a 3-D array
                // separated by blank lines.
                out.push_str(&blank);
                out.push_str(&" ".repeat(depth + 1));
            }
            match i {
                Some(_) => nest_summary(cells, shape, depth + 1, next, out),
                None => out.push_str("..."),
            }
        }
    }
    out.push(']');
}

/// NumPy-style text of a small array's values.
pub fn format_values(b: &Buf, shape: &[u64]) -> String {
    let n = b.len();
    let cells: Vec<String> = match b {
        Buf::Bool(v) => v
            .iter()
            .map(|x| if *x { " True" } else { "False" }.to_string())
            .collect(),
        Buf::F32(v) => fmt_floats(&v.iter().map(|x| *x as f64).collect::<Vec<_>>(), true),
        Buf::F64(v) => fmt_floats(v, false),
        Buf::C64(v) => v.iter().map(|c| format!("{}{:+}j", c.re, c.im)).collect(),
        Buf::C128(v) => v.iter().map(|c| format!("{}{:+}j", c.re, c.im)).collect(),
        other => (0..n)
            .map(|i| crate::ir::print_scalar_at(other, i))
            .collect(),
    };
    let w = cells.iter().map(|c| c.len()).max().unwrap_or(0);
    let cells: Vec<String> = cells.into_iter().map(|c| format!("{c:>w$}")).collect();
    if shape.is_empty() {
        // A scalar prints as NumPy's repr: the shortest text that reads back exactly.
        match b {
            Buf::F32(v) if !v.is_empty() => return format!("{}", v[0]),
            Buf::F64(v) if !v.is_empty() => return format!("{}", v[0]),
            _ => {}
        }
        return cells
            .first()
            .cloned()
            .unwrap_or_default()
            .trim()
            .to_string();
    }
    let mut out = String::new();
    nest(&cells, shape, 0, &mut out, 0);
    out
}

fn nest(cells: &[String], shape: &[u64], depth: usize, out: &mut String, offset: usize) {
    out.push('[');
    if shape.len() == 1 {
        let row: Vec<&str> = (0..shape[0] as usize)
            .map(|i| cells[offset + i].as_str())
            .collect();
        out.push_str(&row.join(" "));
    } else {
        let inner: usize = shape[1..].iter().product::<u64>() as usize;
        for i in 0..shape[0] as usize {
            if i > 0 {
                // NumPy separates 2-D blocks of a 3-D array with a blank line.
                out.push_str(&"\n".repeat(shape.len() - 1));
                out.push_str(&" ".repeat(depth + 1));
            }
            nest(cells, &shape[1..], depth + 1, out, offset + i * inner);
        }
    }
    out.push(']');
}

/// NumPy's scientific layout: every element with the mantissa digits the longest
/// shortest-round-trip mantissa needs, a two-digit exponent at least.
fn fmt_scientific(v: &[f64], single: bool) -> Vec<String> {
    let shortest = |x: f64| {
        if single {
            format!("{:e}", x as f32)
        } else {
            format!("{x:e}")
        }
    };
    let digits = v
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| {
            let s = shortest(*x);
            let m = s.split('e').next().unwrap_or("");
            m.split_once('.').map_or(0, |(_, f)| f.len())
        })
        .max()
        .unwrap_or(0);
    v.iter()
        .map(|x| {
            if x.is_nan() {
                return "nan".to_string();
            }
            if x.is_infinite() {
                return if *x > 0.0 { "inf" } else { "-inf" }.to_string();
            }
            let s = format!("{x:.digits$e}");
            let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
            let (sign, e) = match e.strip_prefix('-') {
                Some(e) => ('-', e),
                None => ('+', e),
            };
            let m = if digits == 0 {
                format!("{m}.")
            } else {
                m.to_string()
            };
            format!("{m}e{sign}{e:0>2}")
        })
        .collect()
}

/// NumPy's default float printing: positional with up to 8 significant decimals when
/// values are moderate, else scientific; fractions padded to line up.
fn fmt_floats(v: &[f64], single: bool) -> Vec<String> {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let max = finite.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let min = finite
        .iter()
        .filter(|x| **x != 0.0)
        .fold(f64::INFINITY, |m, x| m.min(x.abs()));
    let scientific = min.is_finite() && (max >= 1e8 || min < 1e-4 || max / min > 1e3);
    if scientific {
        return fmt_scientific(v, single);
    }
    let repr = |x: f64| -> String {
        if x.is_nan() {
            return "nan".into();
        }
        if x.is_infinite() {
            return if x > 0.0 { "inf".into() } else { "-inf".into() };
        }
        if scientific {
            return format!("{x:.8e}");
        }
        // Shortest round-trip text, limited to 8 decimals.
        let s = if single {
            format!("{}", x as f32)
        } else {
            format!("{x}")
        };
        let s = match s.split_once('.') {
            Some((i, f)) if f.len() > 8 => {
                let r = format!("{x:.8}");
                let r = r.trim_end_matches('0').to_string();
                let _ = i;
                r
            }
            Some(_) => s,
            None => format!("{s}."),
        };
        if let Some(stripped) = s.strip_suffix(".0") {
            format!("{stripped}.")
        } else {
            s
        }
    };
    let texts: Vec<String> = v.iter().map(|x| repr(*x)).collect();
    if scientific {
        return texts;
    }
    let frac_len = texts
        .iter()
        .map(|t| t.split_once('.').map(|(_, f)| f.len()).unwrap_or(0))
        .max()
        .unwrap_or(0);
    texts
        .into_iter()
        .map(|t| {
            let f = t.split_once('.').map(|(_, f)| f.len()).unwrap_or(0);
            if t.contains('.') {
                format!("{t}{}", " ".repeat(frac_len - f))
            } else {
                t
            }
        })
        .collect()
}
