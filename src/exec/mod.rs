//! The parallel runtime: runs a plan's chunk tasks on one rayon pool as a stream. Each
//! task reads what its output chunk needs, computes it with fused kernels, writes it and
//! frees everything, so memory stays at workers × one task's working set.

pub mod admission;
mod cache;
pub mod elementwise;
mod eval;
mod fused;
pub mod layout;
mod progress;
pub mod resume;
pub mod sources;
pub mod stencil;

use crate::data::Buf;
use crate::diag::{codes, Diagnostic};
use crate::geom::{ChunkGrid, Region};
use crate::io::{Codec, IoError, WriteOptions, ZarrReader, ZarrWriter};
use crate::ir::{Program, SinkKind, WriteSpec};
use crate::plan::{fragments, Plan, StageKind};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use eval::Ctx;
pub use resume::Fingerprint;

/// Set by `request_cancel` (Ctrl-C): running tasks finish, no new task starts, and the run
/// returns `E0503` with every finished chunk written.
static CANCEL: AtomicBool = AtomicBool::new(false);

/// Ask the current run to stop as soon as its tasks in flight finish.
pub fn request_cancel() {
    CANCEL.store(true, Ordering::SeqCst);
}

/// Forget a pending cancellation (the REPL, before each entry).
pub fn clear_cancel() {
    CANCEL.store(false, Ordering::SeqCst);
}

/// Is a cancellation pending?
pub fn cancel_requested() -> bool {
    CANCEL.load(Ordering::SeqCst)
}

/// A failure while running, with enough context to name the path, chunk and region.
#[derive(Debug)]
pub enum ExecError {
    Io(IoError),
    Internal(String),
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
                    _ => codes::READ_FAILED,
                };
                Diagnostic::error(code, e.to_string()).note(context.to_string())
            }
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
    /// The limit was asked for: refuse a plan that cannot fit it even one task at a time.
    pub memory_explicit: bool,
    /// Keep a completion record in every output (`resume`).
    pub record: bool,
    /// Skip the chunks a matching record lists as finished.
    pub resume: bool,
}

/// What a run produced besides the files it wrote.
#[derive(Debug, Default)]
pub struct RunOutput {
    /// Per sink: the computed values of `PrintValues` sinks.
    pub values: Vec<Option<Buf>>,
    /// Tasks computed in this run.
    pub tasks_run: u64,
    /// Chunks skipped because a resumed record lists them as finished.
    pub skipped: u64,
    pub seconds: f64,
}

enum Target {
    Writer(Box<ZarrWriter>, resume::Ledger),
    Values,
}

/// What every wave of one run shares.
struct RunState<'a> {
    guards: &'a Safeguards,
    fingerprint: Option<&'a Fingerprint>,
    tracker: &'a progress::Tracker,
}

/// Run every stage of `plan`, wave by wave (a stage that reads another's output runs
/// after it). Outputs are created (metadata first) before any of their tasks runs.
pub fn execute(
    program: &Program,
    plan: &Plan,
    readers: &HashMap<String, Arc<ZarrReader>>,
    opts: &RunOptions,
) -> Result<RunOutput, Vec<Diagnostic>> {
    execute_with(program, plan, readers, opts, &Safeguards::default(), None)
}

/// `execute` with safeguards; `fingerprint` identifies the plan in completion records
/// (required for `guards.record`).
pub fn execute_with(
    program: &Program,
    plan: &Plan,
    readers: &HashMap<String, Arc<ZarrReader>>,
    opts: &RunOptions,
    guards: &Safeguards,
    fingerprint: Option<&Fingerprint>,
) -> Result<RunOutput, Vec<Diagnostic>> {
    let t0 = Instant::now();
    if let (Some(limit), true) = (guards.memory_limit, guards.memory_explicit) {
        let need = admission::minimum_peak(plan, limit);
        if need > limit {
            return Err(vec![Diagnostic::error(
                codes::OVER_MEMORY,
                format!(
                    "the plan needs about {} even one task at a time, above the memory limit of {}",
                    crate::lower::human(need),
                    crate::lower::human(limit)
                ),
            )
            .help("use smaller chunks (chunks=...) or a larger --memory")]);
        }
    }
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
        ..RunOutput::default()
    };
    let total = plan.total_tasks();
    let tracker = progress::Tracker::new(plan);
    let state = RunState {
        guards,
        fingerprint: fingerprint.filter(|_| guards.record),
        tracker: &tracker,
    };
    let finished = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        let (tracker, finished) = (&tracker, &finished);
        scope.spawn(move || progress::display(tracker, opts.progress, finished));
        let r = run_waves(
            program,
            plan,
            &mut readers,
            opts,
            &pool,
            &state,
            &mut out.values,
        );
        finished.store(true, Ordering::Relaxed);
        r
    });
    out.tasks_run = tracker.computed();
    out.skipped = tracker.skipped_total();
    if let Err(mut errs) = result {
        let runtime_failure = |d: &Diagnostic| {
            [codes::READ_FAILED, codes::WRITE_FAILED, codes::INTERNAL].contains(&d.code)
        };
        if state.fingerprint.is_some() && errs.iter().any(runtime_failure) {
            if let Some(d) = errs.first_mut() {
                *d = d.clone().note(
                    "every finished chunk is recorded: fix the cause and rerun with --resume to compute only the rest",
                );
            }
        }
        return Err(errs);
    }
    if CANCEL.swap(false, Ordering::SeqCst) {
        let mut d = Diagnostic::error(
            codes::CANCELLED,
            format!(
                "interrupted: {} of {total} chunk tasks finished",
                out.tasks_run + out.skipped
            ),
        )
        .note("every chunk written before the interruption is complete; none is torn");
        if state.fingerprint.is_some() {
            d = d.help("rerun with --resume to compute only the chunks still missing");
        }
        return Err(vec![d]);
    }
    out.seconds = t0.elapsed().as_secs_f64();
    Ok(out)
}

fn run_waves(
    program: &Program,
    plan: &Plan,
    readers: &mut HashMap<String, Arc<ZarrReader>>,
    opts: &RunOptions,
    pool: &rayon::ThreadPool,
    state: &RunState,
    values: &mut [Option<Buf>],
) -> Result<(), Vec<Diagnostic>> {
    // A Ctrl-C that came while the script was being checked counts too.
    for wave in plan.waves() {
        // Arrays written by earlier waves are inputs now.
        for s in &program.sinks {
            if let SinkKind::Write(w) = &s.kind {
                if !readers.contains_key(&w.path) && Path::new(&w.resolved).exists() {
                    let needed = wave.iter().any(|k| {
                        plan.stages[*k]
                            .sinks
                            .iter()
                            .any(|si| reads_path(program, program.sinks[*si].node, &w.path))
                    });
                    if needed {
                        let r = ZarrReader::open(&w.resolved).map_err(|e| {
                            vec![ExecError::Io(e).into_diag("while opening an intermediate output")]
                        })?;
                        readers.insert(w.path.clone(), Arc::new(r));
                    }
                }
            }
        }
        if cancel_requested() {
            break;
        }
        run_wave(program, plan, &wave, readers, opts, pool, state, values)?;
    }
    Ok(())
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
    readers: &HashMap<String, Arc<ZarrReader>>,
    opts: &RunOptions,
    pool: &rayon::ThreadPool,
    state: &RunState,
    values_out: &mut [Option<Buf>],
) -> Result<(), Vec<Diagnostic>> {
    let mut targets = Vec::new();
    for &si in wave {
        let s = &plan.stages[si];
        let sink = &program.sinks[s.sinks[0]];
        targets.push(match &sink.kind {
            SinkKind::Write(w) => {
                let fail =
                    |e: IoError| crate::lower::io_diag_at(&e, sink.span, &w.path, &w.resolved);
                let req = resume::OpenRequest {
                    output: &w.resolved,
                    shown: &w.path,
                    fingerprint: state.fingerprint,
                    resume: state.guards.resume,
                };
                let (writer, ledger) =
                    resume::open(&req, || open_output(w), fail).map_err(|d| vec![d])?;
                state.tracker.skipped[si].store(ledger.skipped(), Ordering::Relaxed);
                Target::Writer(Box::new(writer), ledger)
            }
            SinkKind::PrintValues { .. } | SinkKind::Preview { .. } => Target::Values,
        });
    }
    let budget = std::env::var("TESSERA_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|mb| mb << 20)
        .unwrap_or_else(|| admission::cache_budget(plan, opts.workers, state.guards.memory_limit));
    let cache = cache::ChunkCache::new(budget);
    let admitted = state
        .guards
        .memory_limit
        .map(|l| admission::Budget::new(l.saturating_sub(budget)));
    let ctx = Ctx {
        program,
        readers,
        cache: &cache,
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
    let errors: Mutex<Vec<Diagnostic>> = Mutex::new(Vec::new());
    let stop = || failed.load(Ordering::Relaxed) || CANCEL.load(Ordering::Relaxed);
    admission::run_lanes(pool, wave_total, opts.workers, &stop, &|g| {
        let k = starts.partition_point(|s| *s <= g) - 1;
        let stage = &plan.stages[wave[k]];
        let local = g - starts[k];
        let sink = &program.sinks[stage.sinks[0]];
        let r = match (&stage.kind, &targets[k], &sink.kind) {
            (StageKind::Write { grid, chunks }, Target::Writer(w, ledger), SinkKind::Write(_)) => {
                let flat = chunks.as_ref().map(|c| c[local as usize]).unwrap_or(local);
                if ledger.is_done(flat) {
                    return;
                }
                let _permit = admitted.as_ref().map(|b| b.acquire(stage.task_bytes));
                let parts: Vec<(crate::ir::NodeId, &WriteSpec)> = stage
                    .sinks
                    .iter()
                    .filter_map(|si| match &program.sinks[*si].kind {
                        SinkKind::Write(spec) => Some((program.sinks[*si].node, spec)),
                        _ => None,
                    })
                    .collect();
                write_task(&ctx, &parts, grid, flat, w).and_then(|()| {
                    ledger
                        .completed(flat, w)
                        .map_err(|e| ExecError::Io(e).into_diag("while recording a finished chunk"))
                })
            }
            (StageKind::Values, Target::Values, _) => {
                let _permit = admitted.as_ref().map(|b| b.acquire(stage.task_bytes));
                let shape = &program.ty(sink.node).shape;
                let full = Region::full(shape);
                eval::eval(&ctx, sink.node, &full)
                    .and_then(|b| match &sink.kind {
                        SinkKind::Preview { resolved, path } => {
                            crate::io::preview::write_preview(resolved, &b, shape).map_err(|m| {
                                ExecError::Io(IoError::Write {
                                    path: path.clone(),
                                    chunk: None,
                                    detail: m,
                                })
                            })
                        }
                        _ => {
                            values
                                .lock()
                                .expect("values lock")
                                .push((stage.sinks[0], b));
                            Ok(())
                        }
                    })
                    .map_err(|e| e.into_diag(&format!("while computing {}", stage.name)))
            }
            _ => Err(Diagnostic::error(
                codes::INTERNAL,
                "internal error: stage and sink disagree",
            )),
        };
        match r {
            Ok(()) => {
                state.tracker.done[wave[k]].fetch_add(1, Ordering::Relaxed);
            }
            Err(d) => {
                failed.store(true, Ordering::Relaxed);
                errors.lock().expect("errors lock").push(d);
            }
        }
    });
    // Finish (sync) every output even after a failure: finished chunks stay valid.
    let mut errs = errors.into_inner().expect("errors lock");
    for t in &targets {
        if let Target::Writer(w, ledger) = t {
            if let Err(e) = ledger.finish(w) {
                errs.push(ExecError::Io(e).into_diag("while syncing the output"));
            }
        }
    }
    for (i, b) in values.into_inner().expect("values lock") {
        values_out[i] = Some(b);
    }
    if !errs.is_empty() {
        errs.truncate(5);
        return Err(errs);
    }
    Ok(())
}

fn open_output(w: &WriteSpec) -> Result<ZarrWriter, IoError> {
    let path = w.resolved.as_path();
    if w.existing {
        return ZarrWriter::open_existing(path);
    }
    let opts = WriteOptions {
        codec: Codec::parse(&w.codec).unwrap_or(Codec::Zstd),
        level: w.level,
        overwrite: w.overwrite,
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
        .map_err(|e| ExecError::Io(e).into_diag(&context()))
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
