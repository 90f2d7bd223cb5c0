//! The task API: one function runs one task of a stage in an environment and returns what
//! it leaves (`run_task`). The in-process runtime (`execute`) keeps what tasks leave in
//! memory until the end of their wave; a worker running an exported plan (`tessera
//! worker`) writes it into the plan directory — partial results of barrier stages, the
//! completion record of every task — so stages can run in different processes on
//! different machines and still give the local run's bytes.

use super::eval::{self, Ctx, Prepared};
use super::{
    admission, assemble_reduction, block_task, cache, label, label_stage, open_output, reduce,
    reduce_task, write_task, CancelToken, ExecError, Target,
};
use crate::data::Buf;
use crate::diag::{codes, Diagnostic};
use crate::geom::Region;
use crate::io::{IoError, ZarrReader, ZarrWriter};
use crate::ir::{NodeId, Program, SinkKind, WriteSpec};
use crate::plan::export::{self, PlanDoc, StageDoc};
use crate::plan::{Plan, Stage, StageKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a task runs with: the evaluation context (program, inputs, chunk cache, results of
/// earlier barriers), the memory budget and the run's cancel token.
pub(super) struct TaskEnv<'a> {
    pub ctx: Ctx<'a>,
    pub admitted: Option<&'a admission::Budget>,
    pub cancel: &'a CancelToken,
}

/// What one task leaves for its run to record.
pub(super) enum Outcome {
    /// Output chunks written (and made durable by the run's end).
    Written(u64),
    /// A reduction's partial over the task's group of chunks.
    Partial(reduce::Partial),
    /// A label scan or a measurement of one chunk.
    Part(label_stage::Part),
    /// The values of a small array (`print(x.values())`).
    Value(Buf),
    /// A preview written.
    Done,
}

/// Run task `local` of `stage`, writing into `target`.
pub(super) fn run_task(
    env: &TaskEnv,
    stage: &Stage,
    target: &Target,
    local: u64,
) -> Result<Outcome, Diagnostic> {
    let ctx = &env.ctx;
    let program = ctx.program;
    let permit = || env.admitted.map(|b| b.acquire(stage.task_bytes));
    let in_stage = |e: ExecError| e.into_diag(&format!("while computing {}", stage.name));
    match &stage.kind {
        StageKind::Label { node, grid } => {
            let _permit = permit();
            return label_stage::scan_task(ctx, *node, grid, local)
                .map(Outcome::Part)
                .map_err(in_stage);
        }
        StageKind::Props { grid } => {
            let _permit = permit();
            let labels = program.sinks[stage.sinks[0]].node;
            let intensity = stage.sinks.get(1).map(|si| program.sinks[*si].node);
            return label_stage::props_task(ctx, labels, intensity, grid, local)
                .map(Outcome::Part)
                .map_err(in_stage);
        }
        StageKind::Reduce { node, split } => {
            let _permit = permit();
            return reduce_task(ctx, *node, split, local, env.cancel)
                .map(Outcome::Partial)
                .map_err(in_stage);
        }
        _ => {}
    }
    let sink = &program.sinks[stage.sinks[0]];
    match (&stage.kind, target, &sink.kind) {
        (StageKind::Write { grid, .. }, Target::Writer(w, ledger), SinkKind::Write(spec))
            if stage.block.is_some() =>
        {
            let _permit = permit();
            let b = stage.block.as_ref().expect("a block stage");
            block_task(ctx, b, sink.node, spec, grid, local, w, ledger, env.cancel)
                .map(Outcome::Written)
        }
        (StageKind::Write { grid, .. }, Target::Writer(w, ledger), SinkKind::Write(_)) => {
            let flat = stage.chunk_at(local);
            if ledger.is_done(flat) {
                return Ok(Outcome::Written(0));
            }
            let _permit = permit();
            let parts: Vec<(NodeId, &WriteSpec)> = stage
                .sinks
                .iter()
                .filter_map(|si| match &program.sinks[*si].kind {
                    SinkKind::Write(spec) => Some((program.sinks[*si].node, spec)),
                    _ => None,
                })
                .collect();
            write_task(ctx, &parts, grid, flat, w)?;
            ledger
                .completed(flat, w)
                .map_err(|e| ExecError::Io(e).into_diag("while recording a finished chunk"))?;
            Ok(Outcome::Written(1))
        }
        (StageKind::Values, Target::Values, _) => {
            let _permit = permit();
            let shape = &program.ty(sink.node).shape;
            let b = whole_value(ctx, sink.node).map_err(in_stage)?;
            match &sink.kind {
                SinkKind::Preview { resolved, path } => {
                    crate::io::preview::write_preview(resolved, &b, shape)
                        .map_err(|m| {
                            ExecError::Io(IoError::Write {
                                path: path.clone(),
                                chunk: None,
                                detail: m,
                            })
                        })
                        .map_err(in_stage)?;
                    Ok(Outcome::Done)
                }
                _ => Ok(Outcome::Value(b)),
            }
        }
        _ => Err(Diagnostic::error(
            codes::INTERNAL,
            "internal error: stage and sink disagree",
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Exported plans
// ---------------------------------------------------------------------------------------

/// An exported plan loaded by a worker: its description, the program and the plan the
/// program gives (planning is deterministic, so it is the exporter's plan).
pub struct Exported {
    pub dir: PathBuf,
    pub doc: PlanDoc,
    pub program: Program,
    pub plan: Plan,
}

/// The combined result of a barrier, as a combine stage stores it.
#[derive(serde::Serialize, serde::Deserialize)]
enum Combined {
    Array(NodeId, Buf),
    Labels(NodeId, label::LabelTable),
    /// A measurement table to print (a CSV is written where the script asked).
    Table(usize, String),
    /// The values of a `print(x.values())` sink.
    Values(usize, Buf),
}

/// What a task of a barrier stage leaves in the plan directory: per planner task, its part.
#[derive(serde::Serialize, serde::Deserialize)]
enum Parts {
    Reduce(Vec<(u64, reduce::Partial)>),
    Scans(Vec<(u64, label::ChunkScan)>),
    Props(Vec<(u64, crate::exec::regionprops::PropsAcc)>),
}

fn damaged(dir: &Path, what: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::error(
        codes::PLAN_DAMAGED,
        format!("the plan in {} is damaged: {what}", dir.display()),
    )
    .help("export the plan again (tessera plan FILE --export DIR) into an empty directory")
}

fn plan_write(path: &Path, e: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::error(
        codes::PLAN_WRITE,
        format!("cannot write {}: {e}", path.display()),
    )
    .help("the plan directory must be writable from every worker (a shared filesystem)")
}

pub(crate) fn sha_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn to_cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("serializing into memory cannot fail");
    out
}

fn from_cbor<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    ciborium::from_reader(bytes.as_slice()).map_err(|e| format!("{}: {e}", path.display()))
}

/// The program's bytes as exported (CBOR of the optimized program).
/// The program as CBOR, or why it cannot leave this process (a host program's kernel).
pub fn encode_program(program: &Program) -> Result<Vec<u8>, String> {
    for n in &program.nodes {
        if let crate::ir::Op::Stencil { kernel, .. } = &n.op {
            if let crate::ir::KernelKind::Native(k) = &kernel.kind {
                return Err(format!(
                    "it calls `{}`, a kernel of the host program that exists only in this process",
                    k.0.name()
                ));
            }
        }
    }
    let mut out = Vec::new();
    ciborium::into_writer(program, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Load the plan in `dir`: its format and version must be this Tessera's, its program
/// must be the one its hash names.
pub fn open_exported(dir: &Path) -> Result<Exported, Diagnostic> {
    let doc = export::load(dir).map_err(|m| {
        let code = if m.contains("plan format") {
            codes::PLAN_VERSION
        } else {
            codes::PLAN_DAMAGED
        };
        Diagnostic::error(code, m)
    })?;
    let ours = env!("CARGO_PKG_VERSION");
    if doc.tessera != ours {
        return Err(Diagnostic::error(
            codes::PLAN_VERSION,
            format!(
                "the plan in {} was exported by Tessera {}, this is Tessera {ours}",
                dir.display(),
                doc.tessera
            ),
        )
        .help("run the plan's workers with the Tessera that exported it, or export it again"));
    }
    let path = dir.join(&doc.program);
    let bytes =
        std::fs::read(&path).map_err(|e| damaged(dir, format!("{}: {e}", path.display())))?;
    if sha_hex(&bytes) != doc.program_sha {
        return Err(damaged(
            dir,
            format!("{} is not the program plan.json names", path.display()),
        ));
    }
    let program: Program = ciborium::from_reader(bytes.as_slice()).map_err(|e| damaged(dir, e))?;
    let plan = crate::plan::build(&program);
    let expected = export::stages(&program, &plan, doc.chunks_per_task);
    if expected != doc.stages {
        return Err(damaged(dir, "its stages do not match its program"));
    }
    Ok(Exported {
        dir: dir.to_path_buf(),
        doc,
        program,
        plan,
    })
}

/// Why the plan no longer describes its script and inputs (`None`: it does): the script's
/// text or an input's metadata changed since the export.
pub fn staleness(doc: &PlanDoc) -> Option<(&'static str, String)> {
    match std::fs::read(&doc.script) {
        Ok(text) if sha_hex(&text) != doc.fingerprint.script => {
            return Some((
                codes::PLAN_CHANGED,
                format!(
                    "the script {} changed since the plan was exported",
                    doc.script
                ),
            ))
        }
        Ok(_) => {}
        Err(e) => {
            return Some((
                codes::PLAN_INPUT_MISSING,
                format!("cannot read the script {}: {e}", doc.script),
            ))
        }
    }
    for i in &doc.inputs {
        if let Some(why) = input_changed(i) {
            return Some(why);
        }
    }
    None
}

fn input_changed(i: &export::InputDoc) -> Option<(&'static str, String)> {
    let dir = Path::new(&i.resolved);
    if !dir.exists() {
        return Some((
            codes::PLAN_INPUT_MISSING,
            format!("the input {} ({}) does not exist here", i.path, i.resolved),
        ));
    }
    (super::resume::metadata_hash(dir) != i.metadata).then(|| {
        (
            codes::PLAN_INPUT_CHANGED,
            format!(
                "the input {} ({}) changed since the plan was exported",
                i.path, i.resolved
            ),
        )
    })
}

/// What `tessera worker` did.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Tasks run now, and tasks skipped as already recorded.
    pub ran: u64,
    pub skipped: u64,
    /// Lines to print (a finish stage renders the program's `print`s).
    pub values: Vec<Option<Buf>>,
    pub tables: Vec<Option<String>>,
    pub finished: bool,
}

/// Does the planner stage `ps` read (directly or through an expression) `path`?
fn stage_reads(program: &Program, st: &Stage, path: &str) -> bool {
    let roots: Vec<NodeId> = match &st.kind {
        StageKind::Reduce { node, .. } | StageKind::Label { node, .. } => {
            program.node(*node).op.inputs()
        }
        _ => st.sinks.iter().map(|si| program.sinks[*si].node).collect(),
    };
    roots.iter().any(|r| super::reads_path(program, *r, path))
}

/// The planner stages `ps` depends on, transitively.
fn ancestors(plan: &Plan, ps: usize) -> Vec<usize> {
    let mut seen = vec![false; plan.stages.len()];
    let mut todo = vec![ps];
    while let Some(s) = todo.pop() {
        for d in plan.graph.neighbors_directed(
            petgraph::graph::NodeIndex::new(s),
            petgraph::Direction::Incoming,
        ) {
            if !seen[d.index()] {
                seen[d.index()] = true;
                todo.push(d.index());
            }
        }
    }
    (0..plan.stages.len()).filter(|s| seen[*s]).collect()
}

/// Run tasks `first..=last` of stage `stage` of an exported plan with `workers` threads.
/// Tasks already recorded are skipped; each task's outputs are durable before its
/// completion record is written. Errors: one diagnostic per failed task, naming the stage
/// and task (and, from the task, the chunk, region and cause).
pub fn run_exported(
    ex: &Exported,
    stage: usize,
    first: u64,
    last: u64,
    workers: usize,
    cancel: &CancelToken,
) -> Result<WorkerReport, Vec<Diagnostic>> {
    let dir = &ex.dir;
    let Some(sd) = ex.doc.stages.get(stage) else {
        return Err(vec![Diagnostic::error(
            codes::PLAN_TASK_RANGE,
            format!(
                "the plan in {} has no stage {stage} (stages 0-{})",
                dir.display(),
                ex.doc.stages.len().saturating_sub(1)
            ),
        )]);
    };
    if last >= sd.tasks {
        return Err(vec![Diagnostic::error(
            codes::PLAN_TASK_RANGE,
            format!(
                "stage {stage} ({}) has tasks 0-{}, not {first}-{last}",
                sd.name,
                sd.tasks.saturating_sub(1)
            ),
        )]);
    }
    let mut report = WorkerReport::default();
    let todo: Vec<u64> = (first..=last)
        .filter(|t| !export::is_done(dir, stage, *t))
        .collect();
    report.skipped = (last - first + 1) - todo.len() as u64;
    let tag = |t: u64, d: Diagnostic| {
        let msg = format!("stage {stage} ({}), task {t}: {}", sd.name, d.message);
        Diagnostic { message: msg, ..d }
    };
    if sd.kind == "finish" && todo.is_empty() {
        // The printed lines are rendered again, from the stored values.
        let (values, tables) = load_printed(ex);
        report.values = values;
        report.tables = tables;
        report.finished = true;
    }
    for t in todo {
        if cancel.is_cancelled() {
            break;
        }
        let units = match sd.kind.as_str() {
            "create" => create_outputs_once(ex, stage, t).map(|()| 1),
            "combine" => combine(ex, sd),
            "finish" => finish(ex, &mut report).map(|()| 1),
            _ => run_batch(ex, sd, t, workers, cancel),
        }
        .map_err(|errs| errs.into_iter().map(|d| tag(t, d)).collect::<Vec<_>>())?;
        if cancel.is_cancelled() {
            break;
        }
        let done = export::done_file(dir, stage, t);
        export::mark_done(dir, stage, t, units).map_err(|e| vec![plan_write(&done, e)])?;
        report.ran += 1;
    }
    if cancel.reset() {
        return Err(vec![Diagnostic::error(
            codes::CANCELLED,
            format!(
                "interrupted: stage {stage}: {} of tasks {first}-{last} recorded",
                report.ran + report.skipped
            ),
        )
        .note(
            "a task is recorded only once its outputs are complete; run the rest again",
        )]);
    }
    Ok(report)
}

/// The readers of every input and earlier output the planner stage `st` reads.
fn open_readers(ex: &Exported, st: &Stage) -> Result<HashMap<String, Arc<ZarrReader>>, Diagnostic> {
    let mut readers = HashMap::new();
    for i in &ex.doc.inputs {
        if !stage_reads(&ex.program, st, &i.path) {
            continue;
        }
        if let Some((code, why)) = input_changed(i) {
            return Err(Diagnostic::error(code, why).help(
                "every worker must see the inputs the plan was exported with (a shared filesystem)",
            ));
        }
        let r = ZarrReader::open(Path::new(&i.resolved)).map_err(|e| {
            Diagnostic::error(
                codes::PLAN_INPUT_MISSING,
                format!("cannot open the input {}: {e}", i.resolved),
            )
        })?;
        readers.insert(i.path.clone(), Arc::new(r));
    }
    for s in &ex.program.sinks {
        let SinkKind::Write(w) = &s.kind else {
            continue;
        };
        if readers.contains_key(&w.path) || !stage_reads(&ex.program, st, &w.path) {
            continue;
        }
        let r = ZarrReader::open(w.target()).map_err(|e| {
            Diagnostic::error(
                codes::PLAN_INPUT_MISSING,
                format!(
                    "cannot open {}, written by an earlier stage: {e}",
                    w.target().display()
                ),
            )
            .help("run the stages this stage comes after first")
        })?;
        readers.insert(w.path.clone(), Arc::new(r));
    }
    Ok(readers)
}

/// The results of the barriers (reductions, label tables) the planner stage `ps` reads.
fn load_prepared(ex: &Exported, ps: usize) -> Result<HashMap<NodeId, Prepared>, Diagnostic> {
    let mut prepared = HashMap::new();
    for a in ancestors(&ex.plan, ps) {
        if !matches!(
            ex.plan.stages[a].kind,
            StageKind::Reduce { .. } | StageKind::Label { .. }
        ) {
            continue;
        }
        let Some(c) = ex.doc.stages.iter().find(|s| {
            s.combines
                .is_some_and(|b| ex.doc.stages[b].plan_stage == Some(a))
        }) else {
            continue;
        };
        let path = export::result_file(&ex.dir, c.id);
        let combined: Combined = from_cbor(&path).map_err(|m| {
            Diagnostic::error(
                codes::PLAN_RESULT_MISSING,
                format!(
                    "the result of stage {} ({}) is not recorded: {m}",
                    c.id, c.name
                ),
            )
            .help(format!("run stage {} first", c.id))
        })?;
        match combined {
            Combined::Array(n, b) => prepared.insert(n, Prepared::Array(Arc::new(b))),
            Combined::Labels(n, t) => prepared.insert(n, Prepared::Labels(Arc::new(t))),
            _ => None,
        };
    }
    Ok(prepared)
}

/// Run the planner tasks of exported task `t` of a task stage and store what they leave.
fn run_batch(
    ex: &Exported,
    sd: &StageDoc,
    t: u64,
    workers: usize,
    cancel: &CancelToken,
) -> Result<u64, Vec<Diagnostic>> {
    let ps = sd.plan_stage.expect("a task stage runs a planner stage");
    let st = &ex.plan.stages[ps];
    let program = &ex.program;
    let readers = open_readers(ex, st).map_err(|d| vec![d])?;
    let prepared = load_prepared(ex, ps).map_err(|d| vec![d])?;
    let target = match (
        &st.kind,
        st.sinks.first().map(|si| &program.sinks[*si].kind),
    ) {
        (StageKind::Write { .. }, Some(SinkKind::Write(w))) => {
            let writer = ZarrWriter::open_existing(w.target()).map_err(|e| {
                vec![Diagnostic::error(
                    codes::PLAN_INPUT_MISSING,
                    format!("cannot open the output {}: {e}", w.target().display()),
                )
                .help("run stage 0 (create the outputs) first")]
            })?;
            Target::Writer(Box::new(writer), Default::default())
        }
        (StageKind::Values, _) => Target::Values,
        _ => Target::Reduce,
    };
    let budget = crate::exec::admission::cache_budget(&ex.plan, workers, None);
    let cache = cache::ChunkCache::new(budget);
    // Python workers for the user's block functions, started on first use and stopped
    // when the tasks of this process are done.
    let python = program
        .nodes
        .iter()
        .any(|n| matches!(n.op, crate::ir::Op::PyBlock(_)))
        .then(crate::io::python::Pool::new);
    let env = TaskEnv {
        ctx: Ctx {
            program,
            readers: &readers,
            cache: &cache,
            prepared: &prepared,
            local: None,
            python: python.as_ref(),
            kept: None,
            hand_off: &[],
        },
        admitted: None,
        cancel,
    };
    let units: Vec<u64> = sd.units_of(t).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers.max(1))
        .build()
        .map_err(|e| {
            vec![Diagnostic::error(
                codes::INTERNAL,
                format!("cannot start workers: {e}"),
            )]
        })?;
    let results: Vec<Result<Outcome, Diagnostic>> = pool.install(|| {
        use rayon::prelude::*;
        units
            .par_iter()
            .map(|u| {
                if cancel.is_cancelled() {
                    return Ok(Outcome::Written(0));
                }
                run_task(&env, st, &target, *u)
            })
            .collect()
    });
    let mut outcomes = Vec::with_capacity(results.len());
    let mut errs = Vec::new();
    for r in results {
        match r {
            Ok(o) => outcomes.push(o),
            Err(d) => errs.push(d),
        }
    }
    if !errs.is_empty() {
        errs.truncate(5);
        return Err(errs);
    }
    let dir = &ex.dir;
    let store = |path: PathBuf, bytes: Vec<u8>| {
        export::write_atomic(&path, &bytes).map_err(|e| vec![plan_write(&path, e)])
    };
    match &target {
        Target::Writer(w, _) => {
            // Every chunk of the task is durable before the task is recorded.
            w.finish()
                .map_err(|e| vec![ExecError::Io(e).into_diag("while syncing the output")])?;
            Ok(outcomes
                .iter()
                .map(|o| match o {
                    Outcome::Written(n) => *n,
                    _ => 0,
                })
                .sum())
        }
        Target::Values => {
            for o in outcomes {
                if let Outcome::Value(b) = o {
                    let bytes = to_cbor(&Combined::Values(st.sinks[0], b));
                    store(export::result_file(dir, sd.id), bytes)?;
                }
            }
            Ok(1)
        }
        Target::Reduce => {
            let mut it = units.iter().copied().zip(outcomes);
            let parts = match &st.kind {
                StageKind::Reduce { .. } => Parts::Reduce(
                    it.by_ref()
                        .filter_map(|(u, o)| match o {
                            Outcome::Partial(p) => Some((u, p)),
                            _ => None,
                        })
                        .collect(),
                ),
                StageKind::Label { .. } => Parts::Scans(
                    it.by_ref()
                        .filter_map(|(u, o)| match o {
                            Outcome::Part(label_stage::Part::Scan(s)) => Some((u, s)),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => Parts::Props(
                    it.by_ref()
                        .filter_map(|(u, o)| match o {
                            Outcome::Part(label_stage::Part::Props(p)) => Some((u, p)),
                            _ => None,
                        })
                        .collect(),
                ),
            };
            store(export::part_file(dir, sd.id, t), to_cbor(&parts))?;
            Ok(units.len() as u64)
        }
    }
}

/// Stage 0: make every output (metadata first), as the local run does before its first
/// task. A rerun after a kill recreates what this plan had begun to create.
/// The create stage, safe against a second worker given it by mistake at the same time:
/// the workers take turns on a lock in the plan directory, and the one that comes second
/// finds the task recorded and leaves the outputs alone.
fn create_outputs_once(ex: &Exported, stage: usize, task: u64) -> Result<(), Vec<Diagnostic>> {
    use std::os::fd::AsRawFd;
    let lock_path = ex.dir.join("claims.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| vec![plan_write(&lock_path, e)])?;
    // SAFETY: flock on a descriptor this function owns; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(vec![plan_write(
            &lock_path,
            std::io::Error::last_os_error(),
        )]);
    }
    if export::is_done(&ex.dir, stage, task) {
        return Ok(());
    }
    create_outputs(ex)?;
    let done = export::done_file(&ex.dir, stage, task);
    export::mark_done(&ex.dir, stage, task, 1).map_err(|e| vec![plan_write(&done, e)])
}

fn create_outputs(ex: &Exported) -> Result<(), Vec<Diagnostic>> {
    for dir in &ex.program.temporaries {
        crate::io::claim_temp_dir(dir).map_err(|e| {
            vec![ExecError::Io(e).into_diag("while preparing the intermediate directory")]
        })?;
    }
    let mut made: Vec<&Path> = Vec::new();
    for (si, s) in ex.program.sinks.iter().enumerate() {
        let SinkKind::Write(w) = &s.kind else {
            continue;
        };
        if made.contains(&w.target()) {
            continue;
        }
        made.push(w.target());
        let fail = |e: IoError| vec![crate::lower::io_diag_at(&e, s.span, &w.path, &w.resolved)];
        if w.existing {
            ZarrWriter::open_existing(w.target()).map_err(fail)?;
            continue;
        }
        // The claim says this plan created the output: an attempt killed half-way is
        // started over, an array that was there before is never overwritten unasked.
        let claim = ex.dir.join("claims").join(si.to_string());
        let ours = claim.is_file();
        if !ours {
            export::write_atomic(&claim, w.target().display().to_string().as_bytes())
                .map_err(|e| vec![plan_write(&claim, e)])?;
        }
        let mut spec = w.clone();
        spec.overwrite = w.overwrite || ours;
        let writer = open_output(&spec).map_err(fail)?;
        writer
            .finish()
            .map_err(|e| vec![ExecError::Io(e).into_diag("while syncing the output")])?;
    }
    Ok(())
}

/// A combine stage: read the parts every task of its barrier left, in task order, and
/// store the combined result (or write the measurement table).
fn combine(ex: &Exported, sd: &StageDoc) -> Result<u64, Vec<Diagnostic>> {
    let bs = sd.combines.expect("a combine stage names its barrier");
    let bd = &ex.doc.stages[bs];
    let ps = bd.plan_stage.expect("a barrier is a planner stage");
    let st = &ex.plan.stages[ps];
    let mut all: Vec<Parts> = Vec::with_capacity(bd.tasks as usize);
    for t in 0..bd.tasks {
        let path = export::part_file(&ex.dir, bs, t);
        if !export::is_done(&ex.dir, bs, t) {
            return Err(vec![Diagnostic::error(
                codes::PLAN_RESULT_MISSING,
                format!(
                    "task {t} of stage {bs} ({}) is not finished: {} is not recorded",
                    bd.name,
                    export::done_file(&ex.dir, bs, t).display()
                ),
            )
            .help(format!("run every task of stage {bs} first"))]);
        }
        all.push(from_cbor(&path).map_err(|m| {
            vec![Diagnostic::error(
                codes::PLAN_RESULT_MISSING,
                format!("the partial result of task {t} of stage {bs} cannot be read: {m}"),
            )
            .help(format!("run task {t} of stage {bs} again"))]
        })?);
    }
    let program = &ex.program;
    let result = match &st.kind {
        StageKind::Reduce { node, split } => {
            let mut partials: Vec<(u64, reduce::Partial)> = all
                .into_iter()
                .flat_map(|p| match p {
                    Parts::Reduce(v) => v,
                    _ => Vec::new(),
                })
                .collect();
            partials.sort_by_key(|(u, _)| *u);
            Combined::Array(*node, assemble_reduction(program, *node, split, partials))
        }
        StageKind::Label { node, grid } => {
            let conn = label_stage::connectivity(program, *node);
            let mut r = label::Resolver::new(grid, conn);
            let mut scans: Vec<(u64, label::ChunkScan)> = all
                .into_iter()
                .flat_map(|p| match p {
                    Parts::Scans(v) => v,
                    _ => Vec::new(),
                })
                .collect();
            scans.sort_by_key(|(u, _)| *u);
            for (_, s) in scans {
                r.add(s);
            }
            Combined::Labels(*node, r.finish())
        }
        _ => {
            let accs: Vec<(u64, label_stage::Part)> = all
                .into_iter()
                .flat_map(|p| match p {
                    Parts::Props(v) => v
                        .into_iter()
                        .map(|(u, a)| (u, label_stage::Part::Props(a)))
                        .collect(),
                    _ => Vec::new(),
                })
                .collect();
            let si0 = st.sinks[0];
            let sink = &program.sinks[si0];
            let nd = program.ty(sink.node).ndim();
            let table = label_stage::finish_props(nd, st.sinks.len() > 1, accs);
            if let SinkKind::Props {
                csv: Some((path, resolved)),
                anndata,
                ..
            } = &sink.kind
            {
                label_stage::write_table(resolved, &table, *anndata)
                    .map_err(|e| vec![crate::lower::io_diag_at(&e, sink.span, path, resolved)])?;
            }
            Combined::Table(si0, table.to_string())
        }
    };
    let path = export::result_file(&ex.dir, sd.id);
    export::write_atomic(&path, &to_cbor(&result)).map_err(|e| vec![plan_write(&path, e)])?;
    Ok(1)
}

/// The stored values and tables the program prints.
fn load_printed(ex: &Exported) -> (Vec<Option<Buf>>, Vec<Option<String>>) {
    let n = ex.program.sinks.len();
    let (mut values, mut tables) = (vec![None; n], vec![None; n]);
    for s in &ex.doc.stages {
        if s.kind != "values" && s.kind != "combine" {
            continue;
        }
        match from_cbor::<Combined>(&export::result_file(&ex.dir, s.id)) {
            Ok(Combined::Values(si, b)) if si < n => values[si] = Some(b),
            Ok(Combined::Table(si, t)) if si < n => tables[si] = Some(t),
            _ => {}
        }
    }
    (values, tables)
}

/// The last stage: replacements take their arrays' places, intermediates are removed, and
/// the printed values are gathered.
fn finish(ex: &Exported, report: &mut WorkerReport) -> Result<(), Vec<Diagnostic>> {
    super::finish_outputs(&ex.program)?;
    let (values, tables) = load_printed(ex);
    report.values = values;
    report.tables = tables;
    report.finished = true;
    Ok(())
}

/// Every element of array `node`: an array of one chunk evaluated at once, a larger one
/// chunk by chunk on the pool's threads (batches of a few chunks per thread, copied into
/// the result between batches), as a write would compute it — in parallel, and without
/// the whole array's intermediates (a stencil's grown input) in memory at once.
fn whole_value(ctx: &Ctx, node: NodeId) -> Result<Buf, super::ExecError> {
    use rayon::prelude::*;
    let ty = ctx.program.ty(node);
    let full = Region::full(&ty.shape);
    let grid = crate::geom::ChunkGrid::new(ty.shape.clone(), ty.chunks.clone());
    let n = grid.num_chunks();
    if n <= 1 || ty.shape.contains(&0) {
        return eval::eval(ctx, node, &full);
    }
    let mut out = Buf::zeros(ty.dtype, full.size() as usize);
    let batch = (rayon::current_num_threads() as u64 * 2).max(1);
    let mut first = 0u64;
    while first < n {
        let last = (first + batch).min(n);
        let parts = (first..last)
            .into_par_iter()
            .map(|flat| {
                let r = grid.chunk_region(&grid.unflatten(flat));
                eval::eval(ctx, node, &r).map(|b| (r, b))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (r, b) in parts {
            super::layout::copy_into(&mut out, &ty.shape, &r.start, &b, &r.shape());
        }
        first = last;
    }
    Ok(out)
}
