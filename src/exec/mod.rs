//! The parallel runtime: runs a plan's chunk tasks on one rayon pool as a stream. Each
//! task reads what its output chunk needs, computes it with fused kernels, writes it and
//! frees everything, so memory stays at workers × one task's working set.

pub mod admission;
mod cache;
mod chain;
pub mod coarsen;
pub mod elementwise;
mod eval;
mod fft;
mod fused;
pub mod label;
mod label_stage;
pub mod layout;
mod progress;
pub use progress::live_progress;
mod python;
pub mod reduce;
pub mod regionprops;
pub mod resume;
pub mod sources;
pub mod stencil;
pub mod task;

use crate::data::Buf;
use crate::diag::{codes, Diagnostic};
use crate::geom::{ChunkGrid, Region};
use crate::io::lock::{self, LockError, OutputLock};
use crate::io::{Codec, IoError, WriteOptions, ZarrReader, ZarrWriter};
use crate::ir::{Program, SinkKind, WriteSpec};
use crate::plan::{fragments, Plan, StageKind};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use eval::{Ctx, Prepared};
pub use resume::Fingerprint;

/// Asks the tasks of a run to stop: running tasks finish, no new task starts, and the run
/// returns `E0503` with every finished chunk written. Tasks receive the token of their run
/// (`task::TaskEnv`); cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Forget a cancellation; returns whether one was pending.
    pub fn reset(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

/// The token Ctrl-C trips: the one command-line and REPL runs are given (a signal handler
/// can reach nothing else).
pub fn interrupt_token() -> &'static CancelToken {
    static TOKEN: std::sync::OnceLock<CancelToken> = std::sync::OnceLock::new();
    TOKEN.get_or_init(CancelToken::new)
}

/// Ask the runs given the interrupt token to stop as soon as their tasks in flight finish.
pub fn request_cancel() {
    interrupt_token().cancel();
}

/// Forget a pending interruption (the REPL, before each entry).
pub fn clear_cancel() {
    interrupt_token().reset();
}

/// Is an interruption pending?
pub fn cancel_requested() -> bool {
    interrupt_token().is_cancelled()
}

/// A failure while running, with enough context to name the path, chunk and region.
#[derive(Debug)]
pub enum ExecError {
    Io(IoError),
    Internal(String),
    /// A host program's kernel failed on a block (its message, or its panic's).
    Kernel {
        kernel: String,
        message: String,
    },
    /// A failure of the user's own code (a Python block function), already described.
    User(Box<Diagnostic>),
}

impl ExecError {
    pub fn internal(msg: impl Into<String>) -> ExecError {
        ExecError::Internal(msg.into())
    }

    fn into_diag(self, context: &str) -> Diagnostic {
        match self {
            ExecError::Io(e) => {
                let code = match &e {
                    IoError::Write { .. } | IoError::Unwritable { .. } | IoError::Exists { .. } => {
                        codes::WRITE_FAILED
                    }
                    IoError::NotOwned { .. } => codes::NOT_OWNED,
                    IoError::Symlink { .. } => codes::SYMLINK_IN_STORE,
                    IoError::Oversized { .. } => codes::DECODE_BOMB,
                    IoError::Remote { kind, .. } => kind.code_and_label().0,
                    IoError::Image { code, .. } => code,
                    _ => codes::READ_FAILED,
                };
                Diagnostic::error(code, crate::diag::escape(&e.to_string()))
                    .note(crate::diag::escape(context))
            }
            ExecError::Kernel { kernel, message } => Diagnostic::error(
                codes::KERNEL_FAILED,
                crate::diag::escape(&format!("the kernel `{kernel}` failed: {message}")),
            )
            .note(crate::diag::escape(context)),
            ExecError::User(d) => d.note(crate::diag::escape(context)),
            ExecError::Internal(m) => {
                Diagnostic::error(codes::INTERNAL, format!("internal error: {m}"))
                    .note(context.to_string())
            }
        }
    }
}

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    None,
    /// A redrawn line on a terminal.
    Terminal,
    /// A plain line every ten seconds (logs, batch jobs).
    Lines,
    /// Nothing drawn: chunk counts published for the host to draw (`live_progress`).
    Published,
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub workers: usize,
    pub progress: Progress,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            progress: Progress::None,
        }
    }
}

/// What keeps a long run safe: a memory limit enforced while running, and the completion
/// records that let an interrupted run resume. All off by default (the embedding API);
/// the command line turns them on.
#[derive(Clone, Debug, Default)]
pub struct Safeguards {
    /// Bytes the tasks in flight (and the chunk cache) may hold; see `admission`.
    pub memory_limit: Option<u64>,
    /// The limit was asked for (`--memory`) rather than the default; either way a plan that
    /// cannot fit it even one task at a time is refused.
    pub memory_explicit: bool,
    /// Keep a completion record in every output (`resume`).
    pub record: bool,
    /// Skip the chunks a matching record lists as finished.
    pub resume: bool,
    /// Start a stage only once every stage whose output it reads has finished, instead
    /// of chaining its tasks to the chunks they read (for comparisons; `TESSERA_CHAIN=0`
    /// sets it for any run).
    pub stage_by_stage: bool,
}

/// One output a run wrote: where, its type, and how many of its chunks this run wrote
/// (and skipped as finished by an interrupted run).
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSummary {
    /// The path as the script wrote it.
    pub path: String,
    pub dtype: crate::dtype::DType,
    pub shape: Vec<u64>,
    pub written: u64,
    pub skipped: u64,
}

impl std::fmt::Display for OutputSummary {
    /// `wrote b.zarr  float32 (4096, 4096)  256 chunks`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shape = match &self.shape[..] {
            [n] => format!("({n},)"),
            s => format!(
                "({})",
                s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        write!(
            f,
            "wrote {}  {} {}  {} chunk{}",
            self.path,
            self.dtype.numpy_name(),
            shape,
            self.written,
            plural(self.written)
        )?;
        if self.skipped > 0 {
            write!(f, " ({} already complete)", self.skipped)?;
        }
        Ok(())
    }
}

/// What a run produced besides the files it wrote.
#[derive(Debug, Default)]
pub struct RunOutput {
    /// Per output (intermediates left out), in program order.
    pub outputs: Vec<OutputSummary>,
    /// Per sink: the computed values of `PrintValues` sinks.
    pub values: Vec<Option<Buf>>,
    /// Per sink: the rendered table of `Props` sinks that print.
    pub tables: Vec<Option<String>>,
    /// Tasks computed in this run.
    pub tasks_run: u64,
    /// Chunks skipped because a resumed record lists them as finished.
    pub skipped: u64,
    pub seconds: f64,
    /// Input chunks the tasks asked for (a chunk read by several tasks counts for each).
    pub chunk_requests: u64,
    /// Input chunks decoded from storage (the cache serves repeated requests).
    pub chunks_decoded: u64,
    /// Tasks that started before every stage whose output they read had finished
    /// (chunk-level chaining, `Plan::local_waves`).
    pub chained_early: u64,
}

enum Target {
    Writer(Box<ZarrWriter>, resume::Ledger),
    Values,
    Reduce,
}

/// What every wave of one run shares.
struct RunState<'a> {
    /// Python workers: the engine's (running since the check-time call, and kept after
    /// the run), or the run's own, started on first use and stopped when the run ends.
    python: Option<Arc<crate::io::python::Pool>>,
    guards: &'a Safeguards,
    fingerprint: Option<&'a Fingerprint>,
    tracker: &'a progress::Tracker,
    cancel: &'a CancelToken,
    /// Tasks started early by chaining.
    early: AtomicU64,
}

/// Run every stage of `plan`, wave by wave (a stage that reads another's output runs
/// after it). Outputs are created (metadata first) before any of their tasks runs.
pub fn execute(
    program: &Program,
    plan: &Plan,
    readers: &HashMap<String, Arc<ZarrReader>>,
    opts: &RunOptions,
) -> Result<RunOutput, Vec<Diagnostic>> {
    execute_with(
        program,
        plan,
        readers,
        opts,
        &Safeguards::default(),
        None,
        None,
    )
}

/// `execute` with safeguards; `fingerprint` identifies the plan in completion records
/// (required for `guards.record`). `python`: Python workers already running — the ones
/// the check made its calls in, with NumPy and the module imported — for the run to use
/// instead of starting all of them anew (the engine passes its own; they stay with it
/// after the run); none: the run starts and stops its own.
pub fn execute_with(
    program: &Program,
    plan: &Plan,
    readers: &HashMap<String, Arc<ZarrReader>>,
    opts: &RunOptions,
    guards: &Safeguards,
    fingerprint: Option<&Fingerprint>,
    python: Option<Arc<crate::io::python::Pool>>,
) -> Result<RunOutput, Vec<Diagnostic>> {
    let t0 = Instant::now();
    // The default limit refuses too: a plan that cannot fit it would exhaust the machine.
    if let Some(limit) = guards.memory_limit {
        let need = admission::minimum_peak(plan, limit);
        if need > limit {
            let which = if guards.memory_explicit {
                "the memory limit"
            } else {
                "the default memory limit (60 % of the memory available)"
            };
            return Err(vec![Diagnostic::error(
                codes::OVER_MEMORY,
                format!(
                    "the plan needs about {} even one task at a time, above {which} of {}",
                    crate::lower::human(need),
                    crate::lower::human(limit)
                ),
            )
            .help("use smaller chunks (chunks=...) or a larger --memory")]);
        }
    }
    // Held until the run returns, whatever way it ends (errors, Ctrl-C, a panic unwinding).
    let _locks = lock_outputs(program)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.workers.max(1))
        .thread_name(|i| format!("tessera-{i}"))
        .build()
        .map_err(|e| {
            vec![Diagnostic::error(
                codes::INTERNAL,
                format!("cannot start workers: {e}"),
            )]
        })?;
    let mut readers = readers.clone();
    let mut out = RunOutput {
        values: vec![None; program.sinks.len()],
        tables: vec![None; program.sinks.len()],
        ..RunOutput::default()
    };
    let total = plan.total_tasks();
    let decoded_before: u64 = readers.values().map(|r| r.chunks_decoded()).sum();
    let tracker = progress::Tracker::new(plan);
    let calls_python = program
        .nodes
        .iter()
        .any(|n| matches!(n.op, crate::ir::Op::PyBlock(_)));
    let state = RunState {
        python: calls_python.then(|| python.unwrap_or_default()),
        guards,
        fingerprint: fingerprint.filter(|_| guards.record),
        tracker: &tracker,
        cancel: interrupt_token(),
        early: AtomicU64::new(0),
    };
    // Intermediate directories are marked as Tessera's before anything is written in
    // them; one of that name made by someone else is refused, never used or deleted.
    for dir in &program.temporaries {
        crate::io::claim_temp_dir(dir).map_err(|e| {
            vec![ExecError::Io(e).into_diag("while preparing the intermediate directory")]
        })?;
    }
    let finished = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        let (tracker, finished) = (&tracker, &finished);
        let shown = scope.spawn(move || progress::display(tracker, opts.progress, finished));
        let r = run_waves(
            program,
            plan,
            &mut readers,
            opts,
            &pool,
            &state,
            &mut out.values,
            &mut out.tables,
        );
        finished.store(true, Ordering::Relaxed);
        shown.thread().unpark();
        r
    });
    out.tasks_run = tracker.computed();
    out.chained_early = state.early.load(Ordering::Relaxed);
    out.skipped = tracker.skipped_total();
    out.outputs = output_summaries(program, plan, &tracker);
    // Chunks (of outputs or intermediates) a rerun with --resume would not compute again.
    let resumable = plan.stages.iter().enumerate().any(|(si, s)| {
        matches!(s.kind, StageKind::Write { .. })
            && tracker.done[si].load(Ordering::Relaxed)
                + tracker.skipped[si].load(Ordering::Relaxed)
                > 0
    });
    out.chunks_decoded = readers.values().map(|r| r.chunks_decoded()).sum::<u64>() - decoded_before;
    let result = result.map(|requests| out.chunk_requests = requests);
    if let Err(mut errs) = result {
        let runtime_failure = |d: &Diagnostic| {
            [codes::READ_FAILED, codes::WRITE_FAILED, codes::INTERNAL].contains(&d.code)
                || d.code.starts_with("E06")
        };
        if state.fingerprint.is_some() && resumable && errs.iter().any(runtime_failure) {
            if let Some(d) = errs.first_mut() {
                *d = d.clone().note(
                    "every finished chunk is recorded: fix the cause and rerun with --resume to compute only the rest",
                );
            }
        }
        return Err(errs);
    }
    if state.cancel.reset() {
        let mut d = Diagnostic::error(
            codes::CANCELLED,
            format!(
                "interrupted: {} of {total} chunk tasks finished",
                out.tasks_run + out.skipped
            ),
        )
        .note("every chunk written before the interruption is complete; none is torn");
        if state.fingerprint.is_some() && resumable {
            d = d.help("rerun with --resume to compute only the chunks still missing");
        }
        return Err(vec![d]);
    }
    finish_outputs(program)?;
    out.seconds = t0.elapsed().as_secs_f64();
    Ok(out)
}

/// Where an output's lock is taken: intermediates inside `<output>.tessera-tmp/` are
/// covered by their output's lock.
fn lock_owner<'a>(program: &Program, resolved: &'a Path) -> std::borrow::Cow<'a, Path> {
    for t in &program.temporaries {
        if resolved.starts_with(t) {
            let s = t.to_string_lossy();
            if let Some(owner) = s.strip_suffix(".tessera-tmp") {
                return std::borrow::Cow::Owned(owner.into());
            }
        }
    }
    std::borrow::Cow::Borrowed(resolved)
}

/// Take the exclusive lock of every output (and intermediate) the program writes, before
/// anything is touched. A lock left behind by a dead process on this host is recovered,
/// with a line on stderr.
fn lock_outputs(program: &Program) -> Result<Vec<OutputLock>, Vec<Diagnostic>> {
    let mut wanted: Vec<(std::path::PathBuf, String, std::path::PathBuf)> = Vec::new();
    for s in &program.sinks {
        if let SinkKind::Write(w) = &s.kind {
            let owner = lock_owner(program, &w.resolved).into_owned();
            let key = lock::lock_path(&owner);
            if !wanted.iter().any(|(k, _, _)| *k == key) {
                let shown = program
                    .sinks
                    .iter()
                    .find_map(|s| match &s.kind {
                        SinkKind::Write(o) if o.resolved == owner => Some(o.path.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| owner.display().to_string());
                wanted.push((key, shown, owner));
            }
        }
    }
    wanted.sort();
    let mut held = Vec::new();
    for (_, shown, owner) in &wanted {
        match lock::acquire(owner) {
            Ok((l, stale)) => {
                if let Some(h) = stale {
                    eprintln!(
                        "tessera: recovered the lock of {shown} left by {} (that process is no longer running)",
                        h.describe()
                    );
                }
                held.push(l);
            }
            Err(e) => return Err(vec![lock_diag(&e, shown)]),
        }
    }
    Ok(held)
}

fn lock_diag(e: &LockError, shown: &str) -> Diagnostic {
    match e {
        LockError::Held { lock, holder } => {
            let who = holder.as_ref().map_or_else(
                || "another run (it has not written its name yet)".to_string(),
                |h| format!("another run: {}", h.describe()),
            );
            Diagnostic::error(
                codes::OUTPUT_LOCKED,
                format!("{shown} is being written by {who}"),
            )
            .note(format!("lock: {}", lock.display()))
            .note("two runs writing one output would mix their chunks; nothing was touched")
            .help("wait for that run to finish (or stop it), then run again")
        }
        LockError::OtherHost { lock, holder } => Diagnostic::error(
            codes::LOCKED_ELSEWHERE,
            format!(
                "{shown} is locked by a run on another host: {}",
                holder.describe()
            ),
        )
        .note(format!("lock: {}", lock.display()))
        .note(
            "whether that run is still going cannot be checked from this host; nothing was touched",
        )
        .help(format!(
            "if no run on {} still writes {shown}, delete {} and run again",
            holder.host,
            lock.display()
        )),
        LockError::Io { lock, detail } => {
            Diagnostic::error(codes::LOCK_FAILED, format!("cannot lock {shown}: {detail}"))
                .note(format!("lock: {}", lock.display()))
                .help("the directory holding the output must be writable")
        }
    }
}

/// Per output the program writes (not intermediates), the chunks this run wrote.
fn output_summaries(
    program: &Program,
    plan: &Plan,
    tracker: &progress::Tracker,
) -> Vec<OutputSummary> {
    let mut out = Vec::new();
    for (si, stage) in plan.stages.iter().enumerate() {
        if !matches!(stage.kind, StageKind::Write { .. }) {
            continue;
        }
        let Some(sink) = stage.sinks.first().map(|i| &program.sinks[*i]) else {
            continue;
        };
        let SinkKind::Write(w) = &sink.kind else {
            continue;
        };
        if program
            .temporaries
            .iter()
            .any(|t| w.resolved.starts_with(t))
        {
            continue;
        }
        out.push(OutputSummary {
            path: w.path.clone(),
            dtype: w.fill.dtype(),
            shape: w.shape.clone(),
            written: tracker.done[si].load(Ordering::Relaxed),
            skipped: tracker.skipped[si].load(Ordering::Relaxed),
        });
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn run_waves(
    program: &Program,
    plan: &Plan,
    readers: &mut HashMap<String, Arc<ZarrReader>>,
    opts: &RunOptions,
    pool: &rayon::ThreadPool,
    state: &RunState,
    values: &mut [Option<Buf>],
    tables: &mut [Option<String>],
) -> Result<u64, Vec<Diagnostic>> {
    // Reductions computed so far, whole, for the stages that read them.
    let mut prepared: HashMap<crate::ir::NodeId, Prepared> = HashMap::new();
    let mut requests = 0;
    // Decoded chunks of inputs that later waves read again.
    // (Not arrays in the host's memory: reading those decodes nothing.)
    let shared: Vec<crate::plan::SharedInput> = plan
        .shared_inputs
        .iter()
        .filter(|s| readers.get(&s.path).is_some_and(|r| !r.is_host()))
        .cloned()
        .collect();
    let kept_budget =
        admission::kept_budget(plan, &shared, opts.workers, state.guards.memory_limit);
    let kept = cache::KeptChunks::new(kept_budget, &shared);
    // Stages chain chunk by chunk unless TESSERA_CHAIN=0 (for comparisons): then every
    // stage waits for the whole of the stages it reads. Kept chunks are counted in the
    // chained waves either way.
    let local = plan.local_waves(program);
    let chain =
        !state.guards.stage_by_stage && std::env::var("TESSERA_CHAIN").map_or(true, |v| v != "0");
    let waves = if chain { local.clone() } else { plan.waves() };
    let mut local_of = vec![0usize; plan.stages.len()];
    for (w, stages) in local.iter().enumerate() {
        for k in stages {
            local_of[*k] = w;
        }
    }
    let mut finished = vec![false; plan.stages.len()];
    // A Ctrl-C that came while the script was being checked counts too.
    for wave in waves {
        // Arrays written by earlier waves are inputs now.
        for s in &program.sinks {
            if let SinkKind::Write(w) = &s.kind {
                // Outputs of this wave itself are opened once their targets exist.
                let written_here = wave.iter().any(|k| {
                    crate::plan::chain::written_path(program, &plan.stages[*k])
                        == Some(w.path.as_str())
                });
                if !readers.contains_key(&w.path) && !written_here && w.target().exists() {
                    let needed = wave.iter().any(|k| {
                        plan.stages[*k]
                            .sinks
                            .iter()
                            .any(|si| reads_path(program, program.sinks[*si].node, &w.path))
                    });
                    if needed {
                        let r = ZarrReader::open(w.target()).map_err(|e| {
                            vec![ExecError::Io(e).into_diag("while opening an intermediate output")]
                        })?;
                        readers.insert(w.path.clone(), Arc::new(r));
                    }
                }
            }
        }
        if state.cancel.is_cancelled() {
            break;
        }
        requests += run_wave(
            program,
            plan,
            &wave,
            &mut *readers,
            opts,
            pool,
            state,
            values,
            tables,
            &mut prepared,
            (&kept, kept_budget),
        )?;
        for k in &wave {
            finished[*k] = true;
        }
        // The last chained wave whose stages have all run.
        let ended = (0..local.len())
            .take_while(|w| local[*w].iter().all(|k| finished[*k]))
            .last();
        if let Some(w) = ended {
            kept.end_wave(w);
        }
    }
    Ok(requests)
}

fn reads_path(program: &Program, node: crate::ir::NodeId, path: &str) -> bool {
    let mut seen = vec![false; program.nodes.len()];
    let mut order = Vec::new();
    program.post_order(node, &mut seen, &mut order);
    order
        .iter()
        .any(|id| matches!(&program.node(*id).op, crate::ir::Op::Zarr { path: p } if p == path))
}

#[allow(clippy::too_many_arguments)]
fn run_wave(
    program: &Program,
    plan: &Plan,
    wave: &[usize],
    readers: &mut HashMap<String, Arc<ZarrReader>>,
    opts: &RunOptions,
    pool: &rayon::ThreadPool,
    state: &RunState,
    values_out: &mut [Option<Buf>],
    tables_out: &mut [Option<String>],
    prepared: &mut HashMap<crate::ir::NodeId, Prepared>,
    (kept, kept_budget): (&cache::KeptChunks, u64),
) -> Result<u64, Vec<Diagnostic>> {
    let mut targets = Vec::new();
    for &si in wave {
        let s = &plan.stages[si];
        if let StageKind::Reduce { .. } | StageKind::Label { .. } | StageKind::Props { .. } = s.kind
        {
            targets.push(Target::Reduce);
            continue;
        }
        let sink = &program.sinks[s.sinks[0]];
        targets.push(match &sink.kind {
            SinkKind::Write(w) => {
                let fail =
                    |e: IoError| crate::lower::io_diag_at(&e, sink.span, &w.path, &w.resolved);
                let req = resume::OpenRequest {
                    output: w.target(),
                    shown: &w.path,
                    fingerprint: state.fingerprint,
                    resume: state.guards.resume,
                };
                let done_in_place = w.in_place
                    && state.guards.resume
                    && !crate::io::has_resume_record(w.target())
                    && state
                        .fingerprint
                        .is_some_and(|fp| resume::finished_in_place(&w.resolved, fp));
                let (writer, ledger) = if done_in_place {
                    // The update this run would resume already took the array's place:
                    // every chunk is done, and the array is not written again.
                    let writer =
                        ZarrWriter::open_existing(&w.resolved).map_err(|e| vec![fail(e)])?;
                    (writer, resume::Ledger::finished(s.tasks))
                } else {
                    resume::open(&req, || open_output(w), fail).map_err(|d| vec![d])?
                };
                state.tracker.skipped[si].store(ledger.skipped(), Ordering::Relaxed);
                Target::Writer(Box::new(writer), ledger)
            }
            SinkKind::PrintValues { .. } | SinkKind::Preview { .. } => Target::Values,
            SinkKind::Props { .. } | SinkKind::PropsIntensity => Target::Reduce,
        });
    }
    // Outputs of this wave that later stages of it read, chunk by chunk as they are
    // written: opened now that they exist.
    let chained = wave
        .iter()
        .any(|k| !plan.chained_producers(wave, *k).is_empty());
    for (pos, &k) in wave.iter().enumerate() {
        let Some(path) = crate::plan::chain::written_path(program, &plan.stages[k]) else {
            continue;
        };
        let read_here = wave[pos + 1..]
            .iter()
            .any(|c| plan.chained_producers(wave, *c).contains(&k));
        if read_here && !readers.contains_key(path) {
            let SinkKind::Write(w) = &program.sinks[plan.stages[k].sinks[0]].kind else {
                continue;
            };
            let r = ZarrReader::open(w.target()).map_err(|e| {
                vec![ExecError::Io(e).into_diag("while opening an intermediate output")]
            })?;
            readers.insert(path.to_string(), Arc::new(r));
        }
    }
    let readers: &HashMap<String, Arc<ZarrReader>> = readers;
    // Chunks pinned for their readers until the last has run: a budget of their own,
    // `TESSERA_PIN_MB` (default 0: written chunks go to the LRU cache instead, where
    // they compete with the decoded ones). Pinning saves decodes but not time on two
    // cores, and raised the peak RSS by 70 % (bench/README.md, chaining).
    let pin_wanted = std::env::var("TESSERA_PIN_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |mb| mb << 20);
    // Readers are counted (one bounds inference per task, before the wave) only to pin.
    let sched = chained.then(|| chain::Chained::new(program, plan, wave, &targets, pin_wanted > 0));
    // Chained outputs whose chunks are handed to the cache as they are written (same
    // chunk grid and dtype as their readers see), with their positions in the wave.
    let hand_off: Vec<(usize, String)> = wave
        .iter()
        .enumerate()
        .filter(|(_, k)| {
            wave.iter()
                .any(|c| plan.chained_producers(wave, *c).contains(k))
        })
        .filter_map(|(pos, k)| {
            let st = &plan.stages[*k];
            let path = crate::plan::chain::written_path(program, st)?;
            let StageKind::Write { grid, .. } = &st.kind else {
                return None;
            };
            let m = readers.get(path)?.meta();
            let same_dtype = st
                .sinks
                .iter()
                .all(|si| program.ty(program.sinks[*si].node).dtype == m.dtype);
            (m.chunks == grid.chunks && m.shape == grid.shape && same_dtype)
                .then(|| (pos, path.to_string()))
        })
        .collect();
    // Of those, the ones whose readers are counted are pinned.
    let pinned: Vec<String> = hand_off
        .iter()
        .filter(|(pos, _)| sched.as_ref().is_some_and(|s| s.counts_readers(*pos)))
        .map(|(_, p)| p.clone())
        .collect();
    let hand_off: Vec<String> = hand_off.into_iter().map(|(_, p)| p).collect();
    let pin_budget = if pinned.is_empty() { 0 } else { pin_wanted };
    let budget = std::env::var("TESSERA_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|mb| mb << 20)
        .unwrap_or_else(|| admission::cache_budget(plan, opts.workers, state.guards.memory_limit));
    let cache = cache::ChunkCache::with_pins(budget, pin_budget, pinned);
    // Remote chunks fetched ahead and not yet decoded are held in memory too.
    let prefetch = if readers.values().any(|r| r.is_remote()) {
        let p = state
            .guards
            .memory_limit
            .map_or(256 << 20, |l| (l / 8).min(256 << 20));
        crate::io::remote::set_prefetch_budget(p);
        p
    } else {
        0
    };
    let admitted = state.guards.memory_limit.map(|l| {
        admission::Budget::new(
            l.saturating_sub(budget)
                .saturating_sub(pin_budget)
                .saturating_sub(prefetch)
                .saturating_sub(kept_budget),
        )
    });
    let ctx = Ctx {
        program,
        readers,
        cache: &cache,
        prepared,
        local: None,
        python: state.python.as_deref(),
        kept: Some(kept),
        hand_off: &hand_off,
    };
    let starts: Vec<u64> = wave
        .iter()
        .scan(0u64, |acc, si| {
            let v = *acc;
            *acc += plan.stages[*si].tasks;
            Some(v)
        })
        .collect();
    let wave_total: u64 = wave.iter().map(|si| plan.stages[*si].tasks).sum();
    let failed = AtomicBool::new(false);
    let values: Mutex<Vec<(usize, Buf)>> = Mutex::new(Vec::new());
    // Partials of reductions: (position in the wave, task, partial).
    let partials: Mutex<Vec<(usize, u64, reduce::Partial)>> = Mutex::new(Vec::new());
    // Measurements: (position in the wave, task, part).
    let parts: Mutex<Vec<(usize, u64, label_stage::Part)>> = Mutex::new(Vec::new());
    // Label stages join their chunks' scans as they arrive (faces are freed early).
    let mut resolvers: Vec<Option<Mutex<label::Resolver>>> = wave
        .iter()
        .map(|si| match &plan.stages[*si].kind {
            StageKind::Label { node, grid } => {
                let conn = label_stage::connectivity(program, *node);
                Some(Mutex::new(label::Resolver::new(grid, conn)))
            }
            _ => None,
        })
        .collect();
    let errors: Mutex<Vec<Diagnostic>> = Mutex::new(Vec::new());
    let stop = || failed.load(Ordering::Relaxed) || state.cancel.is_cancelled();
    // Count a task's finished chunks (a rechunk block finishes several), or keep its
    // error and stop starting new ones.
    let record = |stage: usize, r: Result<u64, Diagnostic>| match r {
        Ok(chunks) => {
            state.tracker.done[stage].fetch_add(chunks, Ordering::Relaxed);
        }
        Err(d) => {
            failed.store(true, Ordering::Relaxed);
            errors.lock().expect("errors lock").push(d);
        }
    };
    let env = task::TaskEnv {
        ctx,
        admitted: admitted.as_ref(),
        cancel: state.cancel,
    };
    let body = |k: usize, local: u64| {
        let stage = &plan.stages[wave[k]];
        let r = task::run_task(&env, stage, &targets[k], local).map(|outcome| match outcome {
            task::Outcome::Written(n) => n,
            task::Outcome::Partial(p) => {
                partials.lock().expect("partials lock").push((k, local, p));
                1
            }
            task::Outcome::Part(label_stage::Part::Scan(scan)) => {
                if let Some(r) = &resolvers[k] {
                    r.lock().expect("resolver lock").add(scan);
                }
                1
            }
            task::Outcome::Part(p) => {
                parts.lock().expect("parts lock").push((k, local, p));
                1
            }
            task::Outcome::Value(b) => {
                values
                    .lock()
                    .expect("values lock")
                    .push((stage.sinks[0], b));
                1
            }
            task::Outcome::Done => 1,
        });
        record(wave[k], r);
    };
    if let Some(sched) = &sched {
        let paths: Vec<Option<&str>> = wave
            .iter()
            .map(|k| crate::plan::chain::written_path(program, &plan.stages[*k]))
            .collect();
        let release = |pos: usize, flat: u64| {
            if let Some(p) = paths[pos] {
                cache.unpin(p, flat);
            }
        };
        sched.run(pool, opts.workers, &stop, &body, &release);
        state
            .early
            .fetch_add(sched.early.load(Ordering::Relaxed), Ordering::Relaxed);
        if sched.stalled() && !stop() {
            failed.store(true, Ordering::Relaxed);
            errors.lock().expect("errors lock").push(
                ExecError::internal(
                    "chained stages stalled: no task could start and none was running",
                )
                .into_diag("while scheduling the chained stages"),
            );
        }
    } else {
        admission::run_lanes(pool, wave_total, opts.workers, &stop, &|g| {
            let k = starts.partition_point(|s| *s <= g) - 1;
            body(k, g - starts[k]);
        });
    }
    // Finish (sync) every output even after a failure: finished chunks stay valid.
    let mut errs = errors.into_inner().expect("errors lock");
    for t in &targets {
        if let Target::Writer(w, ledger) = t {
            if let Err(e) = ledger.finish(w) {
                errs.push(ExecError::Io(e).into_diag("while syncing the output"));
            }
        }
    }
    if errs.is_empty() && !state.cancel.is_cancelled() {
        for t in &targets {
            if let Target::Writer(_, ledger) = t {
                if let Err(e) = ledger.mark_complete() {
                    errs.push(ExecError::Io(e).into_diag("while recording a finished output"));
                }
            }
        }
    }
    for (i, b) in values.into_inner().expect("values lock") {
        values_out[i] = Some(b);
    }
    if errs.is_empty() && !state.cancel.is_cancelled() {
        let mut by_stage: HashMap<usize, Vec<(u64, reduce::Partial)>> = HashMap::new();
        for (k, t, p) in partials.into_inner().expect("partials lock") {
            by_stage.entry(k).or_default().push((t, p));
        }
        for (k, &si) in wave.iter().enumerate() {
            if let StageKind::Reduce { node, split } = &plan.stages[si].kind {
                let mut mine = by_stage.remove(&k).unwrap_or_default();
                mine.sort_by_key(|(t, _)| *t);
                let b = assemble_reduction(program, *node, split, mine);
                prepared.insert(*node, Prepared::Array(Arc::new(b)));
            }
        }
        let mut by_stage: HashMap<usize, Vec<(u64, label_stage::Part)>> = HashMap::new();
        for (k, t, p) in parts.into_inner().expect("parts lock") {
            by_stage.entry(k).or_default().push((t, p));
        }
        for (k, &si) in wave.iter().enumerate() {
            if let (StageKind::Label { node, .. }, Some(r)) =
                (&plan.stages[si].kind, resolvers[k].take())
            {
                let table = r.into_inner().expect("resolver lock").finish();
                prepared.insert(*node, Prepared::Labels(Arc::new(table)));
            }
            if let StageKind::Props { .. } = &plan.stages[si].kind {
                let mine = by_stage.remove(&k).unwrap_or_default();
                let si0 = plan.stages[si].sinks[0];
                let sink = &program.sinks[si0];
                let SinkKind::Props { csv, anndata, .. } = &sink.kind else {
                    continue;
                };
                let nd = program.ty(sink.node).ndim();
                let intensity = plan.stages[si].sinks.len() > 1;
                let table = label_stage::finish_props(nd, intensity, mine);
                match csv {
                    Some((path, resolved)) => {
                        if let Err(e) = label_stage::write_table(resolved, &table, *anndata) {
                            errs.push(crate::lower::io_diag_at(&e, sink.span, path, resolved));
                        }
                    }
                    None => tables_out[si0] = Some(table.to_string()),
                }
            }
        }
    }
    if !errs.is_empty() {
        errs.truncate(5);
        return Err(errs);
    }
    Ok(cache.requests())
}

/// The reduction described by node `id`.
fn reduction_of(
    program: &Program,
    id: crate::ir::NodeId,
) -> (reduce::Reduction, crate::dtype::DType) {
    let n = program.node(id);
    let crate::ir::Op::Reduce {
        x, op, axes, ddof, ..
    } = &n.op
    else {
        unreachable!("reduce stages compute reductions");
    };
    let xt = program.ty(*x);
    (
        reduce::Reduction {
            op: *op,
            reduced: (0..xt.ndim()).map(|a| axes.contains(&a)).collect(),
            ddof: *ddof,
            out: n.ty.dtype,
            shape: xt.shape.clone(),
        },
        xt.dtype,
    )
}

/// Fold the chunks of one task of a reduction into a partial.
fn reduce_task(
    ctx: &Ctx,
    id: crate::ir::NodeId,
    split: &crate::plan::Split,
    task: u64,
    cancel: &CancelToken,
) -> Result<reduce::Partial, ExecError> {
    let (red, input) = reduction_of(ctx.program, id);
    let crate::ir::Op::Reduce { x, .. } = &ctx.program.node(id).op else {
        unreachable!("reduce stages compute reductions");
    };
    let (block, chunks) = split.task(task);
    let mut p = reduce::Partial::new(&red, input, block.size() as usize);
    for c in chunks {
        if cancel.is_cancelled() {
            break;
        }
        let region = split.grid.chunk_region(&c);
        let data = eval::eval(ctx, *x, &region)?;
        p.fold(&red, &data, &region, &block);
    }
    Ok(p)
}

/// Combine the partials of every task, block by block in group order, into the result.
fn assemble_reduction(
    program: &Program,
    id: crate::ir::NodeId,
    split: &crate::plan::Split,
    partials: Vec<(u64, reduce::Partial)>,
) -> Buf {
    let (red, input) = reduction_of(program, id);
    let kept: Vec<u64> = red
        .shape
        .iter()
        .zip(&red.reduced)
        .filter(|(_, r)| !**r)
        .map(|(n, _)| *n)
        .collect();
    let mut out = Buf::zeros(red.out, kept.iter().product::<u64>() as usize);
    let mut it = partials.into_iter().peekable();
    for b in 0..split.blocks {
        let (block, _) = split.task(b * split.groups);
        let mut acc = reduce::Partial::new(&red, input, block.size() as usize);
        while let Some((_, p)) = it.next_if(|(t, _)| *t / split.groups == b) {
            acc.combine(&red, p);
        }
        let vals = acc.finish(&red);
        layout::copy_into(&mut out, &kept, &block.start, &vals, &block.shape());
    }
    out
}

fn open_output(w: &WriteSpec) -> Result<ZarrWriter, IoError> {
    let path = w.target();
    if w.in_place {
        // A new update begins: the array's record of an earlier one (its completion record
        // since that update took its place) must not make a `--resume` of this one, killed
        // before it recorded a chunk, look finished.
        match std::fs::remove_file(w.resolved.join(crate::io::RESUME_RECORD)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(IoError::Write {
                    path: w.resolved.display().to_string(),
                    chunk: None,
                    detail: format!("cannot remove the completion record of an earlier run: {e}"),
                })
            }
        }
    }
    if w.existing {
        if let (true, Some(staged)) = (w.in_place, &w.staging) {
            crate::io::stage_linked(&w.resolved, staged)?;
        }
        return ZarrWriter::open_existing(path);
    }
    let opts = WriteOptions {
        codec: Codec::parse(&w.codec).unwrap_or(Codec::Zstd),
        level: w.level,
        overwrite: w.overwrite,
        dimension_names: w.dimension_names.clone(),
    };
    ZarrWriter::create(path, &w.shape, &w.chunks, w.fill.dtype(), &w.fill, &opts)
}

/// Compute and write one output chunk: the task that owns it merges every fragment of
/// every write to this output, in program order (later fragments win where regions
/// overlap). Outside the regions the chunk keeps its existing content, or the fill value.
fn write_task(
    ctx: &Ctx,
    parts: &[(crate::ir::NodeId, &WriteSpec)],
    grid: &ChunkGrid,
    flat: u64,
    w: &ZarrWriter,
) -> Result<(), Diagnostic> {
    let idx = grid.unflatten(flat);
    let chunk = grid.chunk_region(&idx);
    let first = parts[0].1;
    let context = || {
        format!(
            "while computing chunk {:?} (region {chunk}) of {}",
            idx, first.path
        )
    };
    // (data node, spec, region index, fragment of the chunk)
    let mut frags: Vec<(crate::ir::NodeId, &WriteSpec, Option<usize>, Region)> = Vec::new();
    for (node, spec) in parts {
        if spec.regions.is_empty() {
            frags.push((*node, spec, None, chunk.clone()));
        } else {
            for (ri, f) in fragments(&spec.regions, &chunk) {
                frags.push((*node, spec, Some(ri), f));
            }
        }
    }
    // Fragments before the last one that covers the whole chunk are overwritten anyway.
    let start = frags.iter().rposition(|f| f.3 == chunk).unwrap_or(0);
    let covered = frags.get(start).is_some_and(|f| f.3 == chunk);
    let data = if covered && frags.len() == start + 1 && frags[start].2.is_none() {
        eval::eval(ctx, frags[start].0, &chunk).map_err(|e| e.into_diag(&context()))?
    } else {
        let cshape = chunk.shape();
        let mut base = if covered {
            Buf::zeros(first.fill.dtype(), chunk.size() as usize)
        } else if first.existing {
            w.read_chunk(&idx)
                .map_err(|e| ExecError::Io(e).into_diag(&context()))?
        } else {
            sources::filled(&first.fill, chunk.size() as usize)
        };
        for (node, spec, ri, f) in &frags[start..] {
            // Where this fragment's values are in the data's own coordinates.
            let src_region = match ri {
                Some(ri) if spec.placed => {
                    let r = &spec.regions[*ri];
                    squeeze(&f.relative_to(r), &spec.int_axes[*ri])
                }
                _ => f.clone(),
            };
            let vals = eval::eval(ctx, *node, &src_region).map_err(|e| e.into_diag(&context()))?;
            let at: Vec<u64> = f
                .start
                .iter()
                .zip(&chunk.start)
                .map(|(a, b)| a - b)
                .collect();
            layout::copy_into(&mut base, &cshape, &at, &vals, &f.shape());
        }
        base
    };
    w.write_chunk(&idx, &data)
        .map_err(|e| ExecError::Io(e).into_diag(&context()))?;
    if ctx.hand_off.contains(&first.path) {
        ctx.cache.pin(&first.path, flat, Arc::new(data));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
/// Load the rechunk's input over one block of output chunks, then compute and write each
/// chunk of the block from it.
fn block_task(
    ctx: &Ctx,
    block: &crate::plan::Block,
    node: crate::ir::NodeId,
    spec: &WriteSpec,
    grid: &ChunkGrid,
    b: u64,
    w: &ZarrWriter,
    ledger: &resume::Ledger,
    cancel: &CancelToken,
) -> Result<u64, Diagnostic> {
    let bgrid = block.grid(grid);
    let bidx = bgrid.unflatten(b);
    let region = bgrid.chunk_region(&bidx);
    let todo: Vec<u64> = crate::geom::iter_box(&grid.chunks_touching(&region))
        .map(|idx| grid.flatten(&idx))
        .filter(|flat| !ledger.is_done(*flat))
        .collect();
    if todo.is_empty() {
        return Ok(0);
    }
    let data = eval::eval(ctx, block.node, &region).map_err(|e| {
        e.into_diag(&format!(
            "while reading block {bidx:?} (region {region}) for {}",
            spec.path
        ))
    })?;
    let local = (block.node, region.clone(), data);
    let inner = Ctx {
        local: Some(&local),
        ..*ctx
    };
    let parts = [(node, spec)];
    let mut done = 0;
    for flat in todo {
        if cancel.is_cancelled() {
            break;
        }
        write_task(&inner, &parts, grid, flat, w)?;
        ledger
            .completed(flat, w)
            .map_err(|e| ExecError::Io(e).into_diag("while recording a finished chunk"))?;
        done += 1;
    }
    Ok(done)
}

/// Drop the axes a region gave as single ints (the region-shaped data has no such axes).
fn squeeze(r: &Region, int_axes: &[bool]) -> Region {
    if !int_axes.iter().any(|i| *i) {
        return r.clone();
    }
    let keep = |v: &[u64]| -> Vec<u64> {
        v.iter()
            .zip(int_axes)
            .filter(|(_, i)| !**i)
            .map(|(x, _)| *x)
            .collect()
    };
    Region::new(keep(&r.start), keep(&r.end))
}

/// The end of a successful run, local or exported: replacements were written beside the
/// arrays they replace and every chunk is durable, so each takes its old array's place;
/// intermediate arrays (staged rechunks) are removed. A failed or interrupted run never
/// gets here, so it keeps them, with their completion records, for `--resume`.
pub(crate) fn finish_outputs(program: &Program) -> Result<(), Vec<Diagnostic>> {
    finish_staged(program)?;
    for g in &program.group_metadata {
        crate::io::ome::write_group(g).map_err(|e| {
            vec![Diagnostic::error(
                codes::WRITE_FAILED,
                format!(
                    "writing the OME-Zarr metadata of {} failed: {e}",
                    g.dir.display()
                ),
            )
            .note("every level is complete; rerun with --resume to write the metadata")]
        })?;
    }
    Ok(())
}

fn finish_staged(program: &Program) -> Result<(), Vec<Diagnostic>> {
    let mut swapped: Vec<&Path> = Vec::new();
    for s in &program.sinks {
        if let SinkKind::Write(w) = &s.kind {
            if let Some(staged) = &w.staging {
                if swapped.contains(&staged.as_path()) || !staged.exists() {
                    continue;
                }
                crate::io::replace_with_staged(&w.resolved, staged).map_err(|e| {
                    vec![crate::lower::io_diag_at(&e, s.span, &w.path, &w.resolved)
                        .note(format!("the new array is complete in {}", staged.display()))]
                })?;
                swapped.push(staged);
            }
        }
    }
    for dir in &program.temporaries {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!(
                    "warning: cannot remove the intermediate {}: {e}",
                    dir.display()
                );
            }
        }
    }
    Ok(())
}
