//! The `tessera` command: run, check and plan scripts, or explore in the REPL.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tessera::exec::{admission, Safeguards};
use tessera::{Engine, Progress, RunOptions};

// Chunk tasks allocate and free large buffers all the time; mimalloc reuses them instead
// of mapping fresh pages (page faults were a third of a filter task's time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's runtime option setter (the allocator above links it in).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// mimalloc's `mi_option_purge_delay`: between `mi_option_eager_commit_delay` (14) and
/// `mi_option_use_numa_nodes` (16), which libmimalloc-sys names, in mimalloc v2 and v3.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Under an explicit `--memory` below this, freed memory goes back to the OS at once
/// instead of after mimalloc's purge delay (a second): chunk tasks free buffers of several
/// MiB all the time, and memory kept for reuse counts against a small limit (a rechunk
/// under `--memory 32MiB` peaked at 99 MB with the delay, 64 MB without, at the same
/// speed). Above it the kept memory is a small share of the limit, and faulting fresh
/// pages in again costs time (rechunk + FFT of the benchmark stack: 3.7 s with the
/// delay, 5.2 s without).
const TIGHT_LIMIT: u64 = 1 << 30;

/// Set mimalloc's purge delay to 0.
fn return_freed_memory_at_once() {
    // SAFETY: mi_option_set only stores an option value; 0 is a valid purge delay.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

#[cfg(test)]
mod allocator_tests {
    #[test]
    fn the_purge_delay_index_names_that_option() {
        // Defaults: eager_commit_delay 1, purge_delay 10 ms (v2) or 1000 ms (v3),
        // use_numa_nodes 0.
        let get = |o| unsafe { super::mi_option_get(o) };
        let k = super::MI_OPTION_PURGE_DELAY;
        assert_eq!(get(k - 1), 1);
        assert!([10, 1000].contains(&get(k)), "purge delay {}", get(k));
        assert_eq!(get(k + 1), 0);
    }
}

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "An array language for chunked Zarr arrays far larger than memory"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a script: check it, plan it and stream every chunk through the pipeline.
    Run {
        file: PathBuf,
        /// Worker threads (default: every core).
        #[arg(long)]
        workers: Option<usize>,
        /// Memory limit for the run, e.g. 2GiB: tasks start only while their working
        /// sets fit (default: 60% of the memory available).
        #[arg(long)]
        memory: Option<String>,
        /// Continue an interrupted run: skip the chunks it finished.
        #[arg(long)]
        resume: bool,
        /// Print nothing but errors.
        #[arg(long)]
        quiet: bool,
        /// The Python interpreter for python(...) block functions (default:
        /// TESSERA_PYTHON, else python3).
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
        /// A script argument, read in the script by `arg("name", default)`; repeatable.
        #[arg(long = "arg", value_name = "NAME=VALUE")]
        args: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Show the progress of a cluster run (`run --executor slurm|hyperqueue`); exit 0 when
    /// complete, 1 when failed or cancelled, 3 while running.
    Status {
        /// The run's plan directory.
        dir: PathBuf,
        /// Wait until the run ends, showing its progress.
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a cluster run: its queued and running tasks are stopped.
    Cancel {
        /// The run's plan directory.
        dir: PathBuf,
    },
    /// Parse and check a script; print every binding's type and the arguments it reads.
    Check {
        file: PathBuf,
        /// The Python interpreter for python(...) block functions (default:
        /// TESSERA_PYTHON, else python3).
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
        /// A script argument, read in the script by `arg("name", default)`; repeatable.
        #[arg(long = "arg", value_name = "NAME=VALUE")]
        args: Vec<String>,
    },
    /// Show the optimized program, its stages, task counts and memory estimate.
    Plan {
        file: PathBuf,
        /// Print the program after every optimizer pass, the decisions of the analyses and
        /// every stage in detail.
        #[arg(long)]
        explain: bool,
        /// Workers assumed for the memory estimate.
        #[arg(long)]
        workers: Option<usize>,
        /// Plan for this memory limit, as `run --memory` would (default: as `run`).
        #[arg(long)]
        memory: Option<String>,
        /// Write the plan as a Graphviz DOT graph to this file: one node per chunk task
        /// for small plans, one per stage for large ones.
        #[arg(long)]
        dot: Option<PathBuf>,
        /// Render the same graph as SVG to this file (needs Graphviz's `dot`).
        #[arg(long)]
        svg: Option<PathBuf>,
        /// The Python interpreter for python(...) block functions (default:
        /// TESSERA_PYTHON, else python3).
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
        /// Write the plan as data into this directory, for `tessera worker` processes on
        /// any machine that sees the same files (see docs/PLAN-FORMAT.md).
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        /// With --export: chunk tasks per exported task (default: at most 1024 tasks per
        /// stage).
        #[arg(long, value_name = "K", requires = "export")]
        chunks_per_task: Option<u64>,
        /// With --export: the outputs exist, made by the exported run being resumed.
        #[arg(long, requires = "export")]
        resume: bool,
        /// A script argument, read in the script by `arg("name", default)`; repeatable.
        #[arg(long = "arg", value_name = "NAME=VALUE")]
        args: Vec<String>,
    },
    /// Run tasks of one stage of an exported plan (`tessera plan FILE --export DIR`).
    Worker {
        dir: PathBuf,
        /// The stage (its id in DIR/plan.json).
        #[arg(long)]
        stage: usize,
        /// The tasks: A-B (inclusive, from 0) or A.
        #[arg(long)]
        tasks: String,
        /// Worker threads (default: every core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// The interactive REPL (also the default with no command).
    Repl {
        /// A script argument, read in the script by `arg("name", default)`; repeatable.
        #[arg(long = "arg", value_name = "NAME=VALUE")]
        args: Vec<String>,
        /// Worker threads of every computation (default: every core).
        #[arg(long)]
        workers: Option<usize>,
        /// Memory limit of every computation, e.g. 2GiB, as for `run` (default: 60% of
        /// the memory available).
        #[arg(long)]
        memory: Option<String>,
        /// The Python interpreter for python(...) block functions (default:
        /// TESSERA_PYTHON, else python3).
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
    },
}

/// Where `run` executes its tasks.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Executor {
    /// In this process.
    Local,
    /// Slurm job arrays (sbatch), one per stage.
    Slurm,
    /// A HyperQueue job (its Python API).
    Hyperqueue,
}

/// `run`'s options for cluster executors.
#[derive(clap::Args)]
struct ClusterArgs {
    /// Where the tasks run.
    #[arg(long, value_enum, default_value = "local")]
    executor: Executor,
    /// Tasks running at once (Slurm's array `%` limit; the worker threads of a local run).
    #[arg(long)]
    jobs: Option<usize>,
    /// Chunk tasks batched into one exported task.
    #[arg(long)]
    chunks_per_task: Option<u64>,
    /// Submit and return at once; follow with `tessera status DIR`.
    #[arg(long)]
    detach: bool,
    /// Extra sbatch arguments, e.g. "--partition=long --account=lab --time=2:00:00 --mem=8G".
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    slurm_args: Option<String>,
    /// The plan directory, on a filesystem every node sees (default: NAME.plan beside the
    /// script).
    #[arg(long)]
    plan_dir: Option<PathBuf>,
    /// HyperQueue's server directory (default: $HQ_SERVER_DIR, else HyperQueue's default).
    #[arg(long)]
    hq_server_dir: Option<PathBuf>,
    /// Retries of a failing unit of tasks before the run stops.
    #[arg(long, default_value_t = tessera::cluster::DEFAULT_RETRIES)]
    retries: u32,
}

/// `run --executor slurm|hyperqueue`: export, submit, and follow unless `--detach`.
fn run_on_cluster(
    file: PathBuf,
    args: Vec<(String, String)>,
    c: ClusterArgs,
    python: Option<PathBuf>,
    resume: bool,
    quiet: bool,
) -> ExitCode {
    use tessera::cluster::{self, EngineKind};
    if c.jobs == Some(0) {
        eprintln!("error: --jobs 0: a run needs at least one task at a time");
        return ExitCode::from(2);
    }
    let slurm_args = match c.slurm_args.as_deref().map(split_args).transpose() {
        Ok(a) => a.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: --slurm-args: {e}");
            return ExitCode::from(2);
        }
    };
    let o = cluster::SubmitOptions {
        engine: if c.executor == Executor::Slurm {
            EngineKind::Slurm
        } else {
            EngineKind::HyperQueue
        },
        plan_dir: c
            .plan_dir
            .unwrap_or_else(|| cluster::default_plan_dir(&file)),
        script: file,
        args,
        python,
        jobs: c.jobs,
        chunks_per_task: c.chunks_per_task,
        slurm_args,
        hq_server_dir: c.hq_server_dir,
        retries: c.retries,
        detach: c.detach,
        resume,
        quiet,
    };
    match cluster::submit(&o) {
        Ok(r) => {
            if !quiet && !r.detached {
                let resumed = if r.already_done > 0 {
                    format!(", {} already complete", r.already_done)
                } else {
                    String::new()
                };
                eprintln!(
                    "tessera: {} tasks done on {}{resumed} in {:.1}s",
                    r.tasks,
                    o.engine.name(),
                    r.seconds
                );
                for out in &r.outputs {
                    eprintln!("{out}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Split `--slurm-args` into words as a shell would (single and double quotes, no
/// expansions).
fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut word = false;
    let mut quote: Option<char> = None;
    for ch in s.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(ch);
                word = true;
            }
            (None, c) if c.is_whitespace() => {
                if word {
                    out.push(std::mem::take(&mut cur));
                    word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in {s:?}"));
    }
    if word {
        out.push(cur);
    }
    Ok(out)
}

/// `--arg NAME=VALUE` options as pairs; a malformed or repeated one is an error.
fn script_args(args: &[String]) -> Result<Vec<(String, String)>, ExitCode> {
    let mut out: Vec<(String, String)> = Vec::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            eprintln!(
                "error[{}]: --arg {a:?} is not NAME=VALUE (e.g. --arg sigma=3)",
                tessera::diag::codes::SCRIPT_ARG
            );
            return Err(ExitCode::from(2));
        };
        let k = k.trim();
        if k.is_empty() {
            eprintln!(
                "error[{}]: --arg {a:?} has no name before `=`",
                tessera::diag::codes::SCRIPT_ARG
            );
            return Err(ExitCode::from(2));
        }
        if out.iter().any(|(n, _)| n == k) {
            eprintln!(
                "error[{}]: --arg {k} is given twice",
                tessera::diag::codes::SCRIPT_ARG
            );
            return Err(ExitCode::from(2));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// The memory limit of `--memory` (a size such as 2GiB), or the default: 60 % of the
/// memory available.
fn memory_arg(memory: Option<&str>) -> Result<Option<u64>, ExitCode> {
    match memory {
        Some(m) => match parse_bytes(m) {
            Some(limit) if limit > 0 => Ok(Some(limit)),
            _ => {
                eprintln!("error: --memory {m:?} is not a size such as 2GiB or 500MB");
                Err(ExitCode::from(2))
            }
        },
        None => Ok(admission::default_memory_limit()),
    }
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn read(file: &Path, engine: &Engine) -> Result<String, ExitCode> {
    std::fs::read_to_string(file).map_err(|e| {
        let d = tessera::Diagnostic::error(
            tessera::diag::codes::PATH_NOT_FOUND,
            format!("cannot read script {}: {e}", file.display()),
        );
        eprint!("{}", engine.render(&[d], color()));
        ExitCode::from(1)
    })
}

/// Parse sizes like `2GiB`, `500MB`, `1048576`.
fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        _ => return None,
    };
    Some((n * mult) as u64)
}

/// With `TESSERA_REPORT=1`, one machine-readable line on stderr for tests and benchmarks:
/// chunks computed and skipped, tasks chained early, input chunks decoded, and the
/// process's peak resident memory.
fn report(r: Option<&tessera::RunReport>) {
    if std::env::var_os("TESSERA_REPORT").is_none() {
        return;
    }
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let (computed, skipped, early, decoded) = r
        .map(|r| (r.tasks, r.skipped, r.chained_early, r.chunks_decoded))
        .unwrap_or((0, 0, 0, 0));
    eprintln!(
        "tessera-report: computed={computed} skipped={skipped} chained_early={early} \
         decoded={decoded} peak_rss_kib={hwm}"
    );
}

/// Workers per core above which `--workers` is capped: more threads than this only add
/// memory per task and contention.
const WORKERS_PER_CORE: usize = 16;

/// The worker count of `--workers` (default: every core). 0 is refused (exit 2); more than
/// `WORKERS_PER_CORE` per core is capped, with a note.
fn workers(w: Option<usize>) -> Result<usize, ExitCode> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cap = cores.saturating_mul(WORKERS_PER_CORE);
    match w {
        None => Ok(cores),
        Some(0) => {
            eprintln!("error: --workers 0: a run needs at least one worker");
            Err(ExitCode::from(2))
        }
        Some(n) if n > cap => {
            eprintln!(
                "note: --workers {n} is capped at {cap} ({WORKERS_PER_CORE} per core on {cores} cores)"
            );
            Ok(cap)
        }
        Some(n) => Ok(n),
    }
}

/// `--workers` and `--memory` of `run`, `plan` and `repl`: the worker count and the
/// memory limit.
fn limits(w: Option<usize>, memory: Option<&str>) -> Result<(usize, Option<u64>), ExitCode> {
    Ok((workers(w)?, memory_arg(memory)?))
}

/// `tessera plan FILE --export DIR`: write the plan, print its stages.
fn export_plan(
    engine: &mut Engine,
    file: &Path,
    src: &str,
    dir: &Path,
    chunks_per_task: Option<u64>,
) -> ExitCode {
    match engine.export(file, src, dir, chunks_per_task) {
        Ok(r) => {
            eprint!("{}", engine.render(&r.warnings, color()));
            for s in &r.doc.stages {
                let after = if s.after.is_empty() {
                    String::new()
                } else {
                    format!(
                        " after {}",
                        s.after
                            .iter()
                            .map(usize::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                };
                println!(
                    "stage {}: {} ({}): {} task{}{after}",
                    s.id,
                    s.name,
                    s.kind,
                    s.tasks,
                    if s.tasks == 1 { "" } else { "s" }
                );
            }
            let verb = if r.unchanged {
                "unchanged, finished tasks kept"
            } else {
                "exported"
            };
            eprintln!("plan {} {verb}: {}", r.doc.hash, dir.display());
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprint!("{}", engine.render(&d, color()));
            ExitCode::from(1)
        }
    }
}

/// Render DOT text to an SVG file with Graphviz's `dot`.
fn render_svg(dot: &str, path: &Path) -> Result<(), String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "--svg needs Graphviz's `dot` program, which is not \
                 on PATH; install Graphviz, or write the graph with --dot FILE"
                .to_string(),
            _ => format!("cannot run `dot`: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A `dot` that exits early is an error to report, not a SIGPIPE to die of.
        // SAFETY: only the disposition of SIGPIPE changes, and it is restored below.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let sent = stdin.write_all(dot.as_bytes());
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        sent.map_err(|e| format!("cannot send the graph to `dot`: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`dot` failed: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`dot` failed to render {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The safeguards of a run on this machine (`run`, and every computation of the REPL).
fn run_safeguards(memory_limit: Option<u64>, explicit: bool, resume: bool) -> Safeguards {
    if explicit && memory_limit.is_some_and(|l| l < TIGHT_LIMIT) {
        return_freed_memory_at_once();
    }
    Safeguards {
        memory_limit,
        memory_explicit: explicit,
        // TESSERA_RECORD=0 turns the records off (to measure what they cost).
        record: std::env::var("TESSERA_RECORD").map_or(true, |v| v != "0"),
        resume,
        stage_by_stage: false,
    }
}

/// `tessera repl` (and `tessera` alone): the session's runs take `--workers` and
/// `--memory` as `run` does, with the same safeguards.
fn repl(engine: &mut Engine, w: Option<usize>, memory: Option<String>) -> ExitCode {
    let (workers, memory_limit) = match limits(w, memory.as_deref()) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let guards = run_safeguards(memory_limit, memory.is_some(), false);
    let opts = RunOptions {
        workers,
        progress: Progress::None,
    };
    tessera::repl::run_with(engine, opts, guards)
}

/// The stack of the thread that checks, plans and runs: the evaluator nests a few frames
/// per nested expression or call (bounded by its nesting limit), which in a debug build
/// can outgrow the 8 MiB main thread. Only the pages used are ever committed.
const CLI_STACK: usize = 1 << 30;

fn main() -> ExitCode {
    // Output piped into a reader that stops early (`tessera check f.tsr | head -1`) ends
    // the process quietly by SIGPIPE, as for other Unix tools, instead of a panic in
    // `println!` (Rust ignores SIGPIPE by default).
    // SAFETY: restoring a signal's default disposition before any thread is started.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let spawned = std::thread::Builder::new()
        .name("tessera".into())
        .stack_size(CLI_STACK)
        .spawn(cli);
    match spawned {
        // A panic has been reported by the hook already; exit as a panicking main would.
        Ok(handle) => handle.join().unwrap_or_else(|_| ExitCode::from(101)),
        Err(_) => cli(),
    }
}

fn cli() -> ExitCode {
    tessera::repl::install_interrupt_handler();
    let cli = Cli::parse();
    let mut engine = Engine::new();
    match cli.command {
        None => repl(&mut engine, None, None),
        Some(Command::Repl {
            args,
            workers,
            memory,
            python,
        }) => {
            engine.set_python(python);
            match script_args(&args) {
                Ok(a) => engine.set_args(a),
                Err(c) => return c,
            }
            repl(&mut engine, workers, memory)
        }
        Some(Command::Check { file, args, python }) => {
            engine.set_python(python);
            let src = match read(&file, &engine) {
                Ok(s) => s,
                Err(c) => return c,
            };
            match script_args(&args) {
                Ok(a) => engine.set_args(a),
                Err(c) => return c,
            }
            match engine.check(&file.display().to_string(), &src) {
                Ok(c) => {
                    eprint!("{}", engine.render(&c.warnings, color()));
                    for (name, ty) in &c.bindings {
                        println!("{name}: {ty}");
                    }
                    for a in &c.args {
                        println!("arg {a}");
                    }
                    ExitCode::SUCCESS
                }
                Err(d) => {
                    eprint!("{}", engine.render(&d, color()));
                    ExitCode::from(1)
                }
            }
        }
        Some(Command::Plan {
            file,
            explain,
            workers: w,
            memory,
            dot,
            svg,
            export,
            chunks_per_task,
            resume,
            args,
            python,
        }) => {
            engine.set_python(python);
            let src = match read(&file, &engine) {
                Ok(s) => s,
                Err(c) => return c,
            };
            match script_args(&args) {
                Ok(a) => engine.set_args(a),
                Err(c) => return c,
            }
            let (w, memory_limit) = match limits(w, memory.as_deref()) {
                Ok(l) => l,
                Err(c) => return c,
            };
            engine.set_memory(memory_limit, w);
            if let Some(dir) = export {
                if chunks_per_task == Some(0) {
                    eprintln!("error: --chunks-per-task 0: a task needs at least one chunk");
                    return ExitCode::from(2);
                }
                engine.set_resuming_export(resume);
                return export_plan(&mut engine, &file, &src, &dir, chunks_per_task);
            }
            let opts = RunOptions {
                workers: w,
                progress: Progress::None,
            };
            let guards = Safeguards {
                memory_limit,
                memory_explicit: memory.is_some(),
                ..Safeguards::default()
            };
            match engine.compile(&file.display().to_string(), &src, &opts, &guards) {
                Ok(p) => {
                    eprint!("{}", engine.render(&p.warnings, color()));
                    print!("{}", p.plan_text(explain));
                    let graph = || tessera::plan::to_dot(&p.program, &p.plan);
                    if let Some(path) = dot {
                        if let Err(e) = std::fs::write(&path, graph()) {
                            eprintln!("error: cannot write {}: {e}", path.display());
                            return ExitCode::from(1);
                        }
                        eprintln!("wrote {}", path.display());
                    }
                    if let Some(path) = svg {
                        if let Err(e) = render_svg(&graph(), &path) {
                            eprintln!("error: {e}");
                            return ExitCode::from(1);
                        }
                        eprintln!("wrote {}", path.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(d) => {
                    eprint!("{}", engine.render(&d, color()));
                    ExitCode::from(1)
                }
            }
        }
        Some(Command::Worker {
            dir,
            stage,
            tasks,
            workers: w,
        }) => {
            let Some((first, last)) = tessera::plan::export::parse_tasks(&tasks) else {
                eprintln!(
                    "error[{}]: --tasks {tasks:?} is not A-B or A (task numbers from 0, A <= B)",
                    tessera::diag::codes::PLAN_TASK_RANGE
                );
                return ExitCode::from(2);
            };
            let w = match workers(w) {
                Ok(w) => w,
                Err(c) => return c,
            };
            match engine.work(&dir, stage, first, last, w) {
                Ok((_, lines)) => {
                    for line in &lines {
                        println!("{line}");
                    }
                    ExitCode::SUCCESS
                }
                Err(errs) => {
                    // One line per error: stage, task, chunk, region and cause.
                    for d in &errs {
                        let mut line = format!("error[{}]: {}", d.code, d.message);
                        for n in &d.notes {
                            line.push_str(&format!(" ({n})"));
                        }
                        eprintln!("{}", line.replace('\n', " "));
                    }
                    ExitCode::from(1)
                }
            }
        }
        Some(Command::Status { dir, follow }) => match tessera::cluster::status(&dir, follow) {
            Ok(tessera::cluster::RunState::Running) => ExitCode::from(3),
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Some(Command::Cancel { dir }) => match tessera::cluster::cancel(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Some(Command::Run {
            file,
            workers: w,
            memory,
            resume,
            quiet,
            args,
            python,
            cluster,
        }) => {
            if cluster.executor != Executor::Local {
                return match script_args(&args) {
                    Ok(a) => run_on_cluster(file, a, cluster, python, resume, quiet),
                    Err(c) => c,
                };
            }
            engine.set_python(python);
            let w = w.or(cluster.jobs);
            let src = match read(&file, &engine) {
                Ok(s) => s,
                Err(c) => return c,
            };
            match script_args(&args) {
                Ok(a) => engine.set_args(a),
                Err(c) => return c,
            }
            let (workers, memory_limit) = match limits(w, memory.as_deref()) {
                Ok(l) => l,
                Err(c) => return c,
            };
            let name = file.display().to_string();
            let guards = run_safeguards(memory_limit, memory.is_some(), resume);
            let opts = RunOptions {
                workers,
                progress: if quiet {
                    Progress::None
                } else if std::io::stderr().is_terminal() {
                    Progress::Terminal
                } else {
                    Progress::Lines
                },
            };
            let result = engine.run_with(&name, &src, &opts, &guards);
            report(result.as_ref().ok());
            match result {
                Ok(r) => {
                    if !quiet {
                        eprint!("{}", engine.render(&r.warnings, color()));
                        if r.tasks + r.skipped > 0 {
                            let resumed = if r.skipped > 0 {
                                format!(", {} already complete", r.skipped)
                            } else {
                                String::new()
                            };
                            eprintln!(
                                "tessera: {} chunks computed{resumed} in {:.1}s",
                                r.tasks, r.seconds
                            );
                        }
                        for o in &r.outputs {
                            eprintln!("{o}");
                        }
                    }
                    for line in &r.printed {
                        println!("{line}");
                    }
                    ExitCode::SUCCESS
                }
                Err(d) => {
                    eprint!("{}", engine.render(&d, color()));
                    ExitCode::from(1)
                }
            }
        }
    }
}
