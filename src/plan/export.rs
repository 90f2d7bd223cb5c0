//! A plan as data: the stages of a plan listed for an executor (`DIR/plan.json`), the
//! completion record of every exported task (`DIR/done/S/T`) and the queries executors
//! make of them (progress, unfinished task ranges). The format is described in
//! `docs/PLAN-FORMAT.md`; this module only describes and reads it — running tasks is
//! `exec::task`'s job.
//!
//! Tasks are described lazily: exported task `t` of a stage runs the planner's tasks
//! `t * per_task .. min((t + 1) * per_task, units)`, so a stage of a million chunks is one
//! record, never a million.

use super::{Plan, StageKind};
use crate::ir::{Program, SinkKind};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The version of the plan directory's layout; a directory of another version is refused.
pub const FORMAT: u32 = 1;

/// Without `--chunks-per-task`, planner tasks are batched so that no stage has more than
/// this many exported tasks (each task then amortises its process start and plan load).
pub const DEFAULT_MAX_TASKS: u64 = 1024;

/// `DIR/plan.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PlanDoc {
    pub format: u32,
    /// The Tessera version that exported the plan.
    pub tessera: String,
    /// Identifies the plan: the script, the standard library and version, every input's
    /// metadata, the arguments, the program and the batching.
    pub hash: String,
    /// The script, absolute.
    pub script: String,
    /// The directory relative paths were resolved against.
    pub workdir: String,
    /// The optimized program (CBOR of `ir::Program`), relative to the plan directory.
    pub program: String,
    /// SHA-256 of the program file.
    pub program_sha: String,
    /// `--chunks-per-task` as given (`None`: the default batching).
    pub chunks_per_task: Option<u64>,
    /// The `--arg NAME=VALUE` options given, sorted by name.
    pub args: Vec<(String, String)>,
    pub fingerprint: FingerprintDoc,
    pub inputs: Vec<InputDoc>,
    pub stages: Vec<StageDoc>,
}

/// What the plan was made from, to say what changed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FingerprintDoc {
    /// SHA-256 of the script's text (and of the Python module files it imports).
    pub script: String,
    /// SHA-256 of the version and the standard library.
    pub runtime: String,
    /// The script's arguments (name, value), sorted by name.
    pub args: Vec<(String, String)>,
}

/// An array the program reads.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct InputDoc {
    /// The path as the script wrote it.
    pub path: String,
    /// Absolute.
    pub resolved: String,
    /// SHA-256 of its metadata documents when the plan was exported.
    pub metadata: String,
}

/// One stage: `tasks` tasks, to run after the stages in `after`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StageDoc {
    pub id: usize,
    pub name: String,
    /// `create`, `write`, `values`, `reduce`, `label`, `props`, `combine` or `finish`.
    pub kind: String,
    pub tasks: u64,
    pub after: Vec<usize>,
    /// Absolute paths the stage writes.
    pub outputs: Vec<String>,
    /// The planner's stage it runs (`None` for create, combine and finish).
    pub plan_stage: Option<usize>,
    /// For a combine stage: the stage whose partial results it combines.
    pub combines: Option<usize>,
    /// Planner tasks in the stage (chunks, rechunk blocks or groups of chunks).
    pub units: u64,
    /// Planner tasks per exported task.
    pub per_task: u64,
}

impl StageDoc {
    /// The planner tasks exported task `t` runs.
    pub fn units_of(&self, t: u64) -> std::ops::Range<u64> {
        let start = t.saturating_mul(self.per_task).min(self.units);
        start..start.saturating_add(self.per_task).min(self.units)
    }
}

/// Planner tasks per exported task for a stage of `units`.
fn per_task(units: u64, chunks_per_task: Option<u64>) -> u64 {
    match chunks_per_task {
        Some(k) => k.max(1),
        None => units.div_ceil(DEFAULT_MAX_TASKS).max(1),
    }
}

/// The exported stages of `plan`, in a valid execution order: a `create` stage that makes
/// every output, the planner's stages wave by wave (each barrier — reduction, label scan,
/// measurement — followed by the `combine` stage that reads its partial results), and a
/// `finish` stage (replacements take their arrays' places, intermediates are removed,
/// printed lines are rendered).
pub fn stages(program: &Program, plan: &Plan, chunks_per_task: Option<u64>) -> Vec<StageDoc> {
    let write_target = |si: usize| match &program.sinks[si].kind {
        SinkKind::Write(w) => Some(w.target().display().to_string()),
        SinkKind::Preview { resolved, .. } => Some(resolved.display().to_string()),
        _ => None,
    };
    let mut all_outputs: Vec<String> = (0..program.sinks.len())
        .filter_map(|si| match &program.sinks[si].kind {
            SinkKind::Write(w) => Some(w.target().display().to_string()),
            _ => None,
        })
        .collect();
    all_outputs.dedup();
    let mut out = vec![StageDoc {
        id: 0,
        name: "create the outputs".into(),
        kind: "create".into(),
        tasks: 1,
        after: Vec::new(),
        outputs: all_outputs,
        plan_stage: None,
        combines: None,
        units: 1,
        per_task: 1,
    }];
    // Where the result of each planner stage is ready: its own id, or its combine's.
    let mut ready: Vec<usize> = vec![0; plan.stages.len()];
    for wave in plan.waves() {
        for ps in wave {
            let st = &plan.stages[ps];
            let mut after: Vec<usize> = vec![0];
            for d in plan.graph.neighbors_directed(
                petgraph::graph::NodeIndex::new(ps),
                petgraph::Direction::Incoming,
            ) {
                after.push(ready[d.index()]);
            }
            after.sort_unstable();
            after.dedup();
            let (kind, barrier) = match &st.kind {
                StageKind::Write { .. } => ("write", false),
                StageKind::Values => ("values", false),
                StageKind::Reduce { .. } => ("reduce", true),
                StageKind::Label { .. } => ("label", true),
                StageKind::Props { .. } => ("props", true),
            };
            let units = st.tasks;
            let per = per_task(units, chunks_per_task);
            let id = out.len();
            out.push(StageDoc {
                id,
                name: st.name.clone(),
                kind: kind.into(),
                tasks: units.div_ceil(per),
                after,
                outputs: match &st.kind {
                    StageKind::Write { .. } | StageKind::Values => st
                        .sinks
                        .iter()
                        .filter_map(|si| write_target(*si))
                        .take(1)
                        .collect(),
                    _ => Vec::new(),
                },
                plan_stage: Some(ps),
                combines: None,
                units,
                per_task: per,
            });
            ready[ps] = id;
            if barrier {
                let csv = st
                    .sinks
                    .first()
                    .and_then(|si| match &program.sinks[*si].kind {
                        SinkKind::Props {
                            csv: Some((_, resolved)),
                            ..
                        } => Some(resolved.display().to_string()),
                        _ => None,
                    });
                out.push(StageDoc {
                    id: id + 1,
                    name: format!("combine {}", st.name),
                    kind: "combine".into(),
                    tasks: 1,
                    after: vec![id],
                    outputs: csv.into_iter().collect(),
                    plan_stage: None,
                    combines: Some(id),
                    units: 1,
                    per_task: 1,
                });
                ready[ps] = id + 1;
            }
        }
    }
    let id = out.len();
    let replaced = program
        .sinks
        .iter()
        .filter_map(|s| match &s.kind {
            SinkKind::Write(w) if w.staging.is_some() => Some(w.resolved.display().to_string()),
            _ => None,
        })
        .collect();
    out.push(StageDoc {
        id,
        name: "finish".into(),
        kind: "finish".into(),
        tasks: 1,
        after: (0..id).collect(),
        outputs: replaced,
        plan_stage: None,
        combines: None,
        units: 1,
        per_task: 1,
    });
    out
}

/// `DIR/plan.json`.
pub fn plan_file(dir: &Path) -> PathBuf {
    dir.join("plan.json")
}

/// The completion record of task `task` of stage `stage`.
pub fn done_file(dir: &Path, stage: usize, task: u64) -> PathBuf {
    dir.join("done")
        .join(stage.to_string())
        .join(task.to_string())
}

/// The partial result task `task` of barrier stage `stage` leaves for its combine stage.
pub fn part_file(dir: &Path, stage: usize, task: u64) -> PathBuf {
    dir.join("parts")
        .join(stage.to_string())
        .join(format!("{task}.cbor"))
}

/// The combined result of a combine (or values) stage, read by the stages after it.
pub fn result_file(dir: &Path, stage: usize) -> PathBuf {
    dir.join("results").join(format!("{stage}.cbor"))
}

/// Read `DIR/plan.json`.
pub fn load(dir: &Path) -> Result<PlanDoc, String> {
    let path = plan_file(dir);
    let text = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a plan: {e}", path.display()))?;
    let format = v.get("format").and_then(serde_json::Value::as_u64);
    if format != Some(u64::from(FORMAT)) {
        return Err(format!(
            "{} has plan format {}, this Tessera reads format {FORMAT}",
            path.display(),
            format.map_or_else(|| "(none)".to_string(), |f| f.to_string())
        ));
    }
    serde_json::from_value(v).map_err(|e| format!("{} is damaged: {e}", path.display()))
}

/// Write `bytes` to `path` atomically and durably: a temporary file beside it (named after
/// this process), synced, renamed into place, and the directory synced. Readers see the
/// old file or the whole new one, never a part; a killed writer leaves at most its
/// temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        std::thread::current().name().unwrap_or("main")
    ));
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Is task `task` of stage `stage` recorded as finished?
pub fn is_done(dir: &Path, stage: usize, task: u64) -> bool {
    done_file(dir, stage, task).is_file()
}

/// Record task `task` of stage `stage` as finished (after its outputs are durable).
pub fn mark_done(dir: &Path, stage: usize, task: u64, units: u64) -> std::io::Result<()> {
    let text = format!("{{\"stage\": {stage}, \"task\": {task}, \"units\": {units}}}\n");
    write_atomic(&done_file(dir, stage, task), text.as_bytes())
}

/// The finished tasks of stage `s` (sorted), from its completion records.
fn done_tasks(dir: &Path, s: &StageDoc) -> Vec<u64> {
    let mut done: Vec<u64> = match std::fs::read_dir(dir.join("done").join(s.id.to_string())) {
        Ok(rd) => rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .filter(|t| *t < s.tasks)
            .collect(),
        Err(_) => Vec::new(),
    };
    done.sort_unstable();
    done.dedup();
    done
}

/// Per stage: (stage id, tasks finished, tasks in all).
pub fn progress(dir: &Path) -> Result<Vec<(usize, u64, u64)>, String> {
    let doc = load(dir)?;
    Ok(doc
        .stages
        .iter()
        .map(|s| (s.id, done_tasks(dir, s).len() as u64, s.tasks))
        .collect())
}

/// The unfinished tasks of stage `stage` as inclusive ranges `(first, last)`, in order.
pub fn unfinished(dir: &Path, stage: usize) -> Result<Vec<(u64, u64)>, String> {
    let doc = load(dir)?;
    let s = doc
        .stages
        .get(stage)
        .ok_or_else(|| format!("the plan has no stage {stage}"))?;
    Ok(gaps(&done_tasks(dir, s), s.tasks))
}

/// The ranges of `0..total` not in the sorted list `done`.
fn gaps(done: &[u64], total: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut next = 0;
    for &d in done {
        if d > next {
            out.push((next, d - 1));
        }
        next = d + 1;
    }
    if next < total {
        out.push((next, total - 1));
    }
    out
}

/// `A-B` (inclusive) or `A`.
pub fn parse_tasks(s: &str) -> Option<(u64, u64)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let a = s.trim().parse().ok()?;
            (a, a)
        }
    };
    (a <= b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_the_unfinished_ranges() {
        assert_eq!(gaps(&[], 5), vec![(0, 4)]);
        assert_eq!(gaps(&[0, 1, 2, 3, 4], 5), vec![]);
        assert_eq!(gaps(&[1, 2, 4], 7), vec![(0, 0), (3, 3), (5, 6)]);
    }

    #[test]
    fn task_ranges_parse() {
        assert_eq!(parse_tasks("3"), Some((3, 3)));
        assert_eq!(parse_tasks("0-9"), Some((0, 9)));
        assert_eq!(parse_tasks("9-3"), None);
        assert_eq!(parse_tasks("x"), None);
    }

    #[test]
    fn batches_cover_every_unit_once() {
        let s = StageDoc {
            id: 1,
            name: "w".into(),
            kind: "write".into(),
            tasks: 4,
            after: vec![0],
            outputs: vec![],
            plan_stage: Some(0),
            combines: None,
            units: 10,
            per_task: 3,
        };
        let all: Vec<u64> = (0..s.tasks).flat_map(|t| s.units_of(t)).collect();
        assert_eq!(all, (0..10).collect::<Vec<u64>>());
        assert_eq!(per_task(10_000, None), 10);
        assert_eq!(per_task(5, None), 1);
    }
}
