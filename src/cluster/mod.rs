//! Executors that run an exported plan on a cluster engine: Slurm (`slurm`) and
//! HyperQueue (`hyperqueue`). The local executor is the in-process task API of `exec`;
//! these submit the same tasks as `tessera worker DIR --stage S --tasks A-B` commands.
//!
//! A run (`tessera run FILE --executor slurm|hyperqueue`):
//! 1. checks that the engine answers (before anything is written);
//! 2. exports the plan into the plan directory (`tessera plan FILE --export DIR`);
//! 3. writes the task wrapper `DIR/cluster/task.sh`, which runs one unit of tasks with a
//!    bounded number of retries, logs into `DIR/logs/S/A-B.log` and leaves a failure
//!    marker in `DIR/cluster/failed/` when the unit keeps failing;
//! 4. submits every stage that has unfinished tasks (Slurm: one job array per stage,
//!    chained by `afterok`; HyperQueue: one job whose tasks depend stage on stage) and
//!    records the submission in `DIR/cluster/run.json`;
//! 5. unless `--detach`, follows the completion records until every task is done (exit 0),
//!    a unit fails for good (the others are cancelled, exit 1) or the engine drops the jobs.
//!
//! `status` and `cancel` read `run.json` to follow or stop a detached run.

pub mod hyperqueue;
pub mod plandir;
pub mod slurm;

use crate::diag::codes;
use plandir::PlanInfo;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// An executor error: a code from `codes` and a message naming the command, path, stage
/// or task it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterError {
    pub code: &'static str,
    pub message: String,
}

impl ClusterError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ClusterError {
        ClusterError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]: {}", self.code, self.message)
    }
}

/// A cluster engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Slurm,
    HyperQueue,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Slurm => "slurm",
            EngineKind::HyperQueue => "hyperqueue",
        }
    }
}

/// Retries of a failing unit before the run stops (so each unit runs at most
/// `DEFAULT_RETRIES + 1` times): enough for a killed worker or a lost node, few enough
/// that a task that fails for a reason of its own stops the run quickly.
pub const DEFAULT_RETRIES: u32 = 2;

/// Units of at most this many exported tasks per array task or HyperQueue task when a
/// stage has more exported tasks than `MAX_UNITS`: Slurm's default `MaxArraySize` is 1001.
pub const MAX_UNITS: u64 = 1000;

/// How to submit a run.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    pub engine: EngineKind,
    /// The script and its `--arg NAME=VALUE` pairs.
    pub script: PathBuf,
    pub args: Vec<(String, String)>,
    /// The interpreter of the script's Python block functions (`--python`), recorded in
    /// the exported plan.
    pub python: Option<PathBuf>,
    /// The plan directory (on a filesystem every node sees).
    pub plan_dir: PathBuf,
    /// Units running at once (Slurm's `%` limit); None: the engine's choice.
    pub jobs: Option<usize>,
    /// Chunk tasks per exported task (`tessera plan --export --chunks-per-task`).
    pub chunks_per_task: Option<u64>,
    /// Extra `sbatch` arguments (partition, account, time, memory).
    pub slurm_args: Vec<String>,
    /// HyperQueue's server directory (None: `$HQ_SERVER_DIR` or HyperQueue's default).
    pub hq_server_dir: Option<PathBuf>,
    pub retries: u32,
    pub detach: bool,
    pub resume: bool,
    pub quiet: bool,
}

/// One submitted engine job: the stages it runs and the engine's id for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmittedJob {
    pub id: String,
    pub stages: Vec<usize>,
}

/// `DIR/cluster/run.json`: what was submitted, for `status`, `cancel` and `--resume`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub engine: EngineKind,
    pub hash: String,
    pub jobs: Vec<SubmittedJob>,
    #[serde(default)]
    pub hq_server_dir: Option<PathBuf>,
    /// Submissions so far (1 for the first, +1 per `--resume`).
    pub submission: u32,
    pub submitted_unix: u64,
}

fn cluster_dir(dir: &Path) -> PathBuf {
    dir.join("cluster")
}

fn record_path(dir: &Path) -> PathBuf {
    cluster_dir(dir).join("run.json")
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> ClusterError {
    ClusterError::new(
        codes::PLAN_DIR,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

/// Write `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).map_err(|e| io_err("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err("write", path, e))
}

pub fn load_record(dir: &Path) -> Result<RunRecord, ClusterError> {
    let path = record_path(dir);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ClusterError::new(
            codes::NOT_A_PLAN_DIR,
            format!(
                "{} holds no cluster run: cannot read {}: {e}",
                dir.display(),
                path.display()
            ),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        ClusterError::new(
            codes::NOT_A_PLAN_DIR,
            format!("{} is damaged: {e}", path.display()),
        )
    })
}

/// Run `cmd`, returning its stdout; a command that cannot start or fails is an error that
/// names it and quotes its message.
pub(crate) fn run_command(
    cmd: &mut Command,
    missing: &'static str,
    failed: &'static str,
) -> Result<String, ClusterError> {
    let shown = show_command(cmd);
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ClusterError::new(
                missing,
                format!("`{shown}` failed: the command is not installed (not on PATH)"),
            )
        } else {
            ClusterError::new(missing, format!("`{shown}` failed to start: {e}"))
        }
    })?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let msg = if msg.is_empty() {
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        } else {
            msg
        };
        return Err(ClusterError::new(
            failed,
            format!("`{shown}` failed ({}): {msg}", out.status),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A command as a user would type it (for messages).
pub(crate) fn show_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(char::is_whitespace) || a.is_empty() {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// The `tessera` executable that workers run.
fn tessera_exe() -> Result<PathBuf, ClusterError> {
    if let Some(p) = std::env::var_os("TESSERA_WORKER_EXE") {
        return Ok(PathBuf::from(p));
    }
    std::env::current_exe().map_err(|e| {
        ClusterError::new(
            codes::PLAN_DIR,
            format!("cannot find the tessera executable for the workers: {e}"),
        )
    })
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The default plan directory of a script: `NAME.plan` beside `NAME.tsr`.
pub fn default_plan_dir(script: &Path) -> PathBuf {
    let script = absolute(script);
    let stem = script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "script".into());
    script.with_file_name(format!("{stem}.plan"))
}

/// What a finished (or detached) run reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub plan_dir: PathBuf,
    pub tasks: u64,
    pub already_done: u64,
    pub seconds: f64,
    pub outputs: Vec<String>,
    pub detached: bool,
}

/// Export the plan into `dir` with `tessera plan --export`; `dir` must not exist.
/// Export the plan into `dir` (`resuming`: the outputs exist, made by the run in the plan
/// directory being resumed).
fn export(exe: &Path, o: &SubmitOptions, dir: &Path, resuming: bool) -> Result<(), ClusterError> {
    let mut cmd = Command::new(exe);
    cmd.arg("plan").arg(&o.script).arg("--export").arg(dir);
    if let Some(k) = o.chunks_per_task {
        cmd.arg("--chunks-per-task").arg(k.to_string());
    }
    for (k, v) in &o.args {
        cmd.arg("--arg").arg(format!("{k}={v}"));
    }
    if let Some(py) = &o.python {
        cmd.arg("--python").arg(py);
    }
    if resuming {
        cmd.arg("--resume");
    }
    cmd.stdout(std::process::Stdio::null());
    let shown = show_command(&cmd);
    let out = cmd.output().map_err(|e| {
        ClusterError::new(
            codes::EXPORT_FAILED,
            format!("`{shown}` failed to start: {e}"),
        )
    })?;
    if !out.status.success() {
        // The exporter's own diagnostics name the script's mistakes; pass them on.
        let msg = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
        return Err(ClusterError::new(
            codes::EXPORT_FAILED,
            format!(
                "exporting the plan failed (`{shown}`, {}):\n{msg}",
                out.status
            ),
        ));
    }
    Ok(())
}

/// Remove a plan directory this executor made (it holds `plan.json`); anything else is
/// left alone.
fn remove_plan_dir(dir: &Path) -> Result<(), ClusterError> {
    if dir.join("plan.json").is_file() {
        std::fs::remove_dir_all(dir).map_err(|e| io_err("remove the old plan directory", dir, e))
    } else {
        Ok(())
    }
}

/// Does `dir` exist and hold something other than an exported plan?
fn foreign_dir(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut it) => it.next().is_some() && !dir.join("plan.json").is_file(),
        Err(_) => false,
    }
}

/// Submit a run (and follow it unless `detach`).
pub fn submit(o: &SubmitOptions) -> Result<Outcome, ClusterError> {
    let start = Instant::now();
    let dir = absolute(&o.plan_dir);
    let exe = tessera_exe()?;
    let engine = engine_for(o)?;
    // The engine must answer before anything is written.
    engine.check()?;
    if foreign_dir(&dir) {
        return Err(ClusterError::new(
            codes::PLAN_DIR,
            format!(
                "--plan-dir {} exists and is not a plan directory (no plan.json); choose another \
                 directory or remove it",
                dir.display()
            ),
        ));
    }
    let mut submission = 1;
    let mut fresh = true;
    if o.resume && dir.join("plan.json").is_file() {
        let old = PlanInfo::load(&dir)?;
        let probe = dir.with_file_name(format!(
            ".{}.resume-{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("plan"),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&probe);
        let exported = export(&exe, o, &probe, true).and_then(|_| PlanInfo::load(&probe));
        let _ = std::fs::remove_dir_all(&probe);
        let new = exported?;
        if new.hash != old.hash {
            return Err(ClusterError::new(
                codes::RESUME_CHANGED,
                format!(
                    "cannot resume {}: the plan changed since it was exported (plan hash {} \
                     then, {} now: the script, an input, an argument or --chunks-per-task \
                     differs); run without --resume to start over",
                    dir.display(),
                    old.hash,
                    new.hash
                ),
            ));
        }
        if let Ok(prev) = load_record(&dir) {
            if prev.engine == o.engine && engine.active(&prev)? {
                return Err(ClusterError::new(
                    codes::PLAN_DIR,
                    format!(
                        "cannot resume {}: its jobs are still queued or running on {}; follow \
                         them with `tessera status {0}` or stop them with `tessera cancel {0}`",
                        dir.display(),
                        o.engine.name()
                    ),
                ));
            }
            submission = prev.submission + 1;
        }
        fresh = false;
    } else {
        if let Ok(prev) = load_record(&dir) {
            if prev.engine == o.engine && engine.active(&prev).unwrap_or(false) {
                return Err(ClusterError::new(
                    codes::PLAN_DIR,
                    format!(
                        "{} belongs to a run whose jobs are still queued or running on {}; stop \
                         them with `tessera cancel {0}` first",
                        dir.display(),
                        o.engine.name()
                    ),
                ));
            }
        }
        remove_plan_dir(&dir)?;
        let existed = dir.exists();
        if let Err(e) = export(&exe, o, &dir, false) {
            // What a failed export left in a directory it made is not the user's.
            if !existed {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
    }
    let result = prepare_and_submit(o, &*engine, &dir, &exe, submission);
    let (record, plan, total, already) = match result {
        Ok(r) => r,
        Err(e) => {
            if fresh {
                // A rejected submission leaves nothing behind.
                let _ = remove_plan_dir(&dir);
            }
            return Err(e);
        }
    };
    let outputs = plan.outputs();
    if o.detach {
        if !o.quiet {
            eprintln!(
                "tessera: submitted {} tasks to {} ({}); follow with `tessera status {}`",
                total - already,
                o.engine.name(),
                job_list(&record),
                dir.display()
            );
        }
        return Ok(Outcome {
            plan_dir: dir,
            tasks: total - already,
            already_done: already,
            seconds: start.elapsed().as_secs_f64(),
            outputs,
            detached: true,
        });
    }
    follow(&dir, &plan, &record, &*engine, o.quiet)?;
    Ok(Outcome {
        plan_dir: dir,
        tasks: total - already,
        already_done: already,
        seconds: start.elapsed().as_secs_f64(),
        outputs,
        detached: false,
    })
}

fn job_list(r: &RunRecord) -> String {
    let ids: Vec<&str> = r.jobs.iter().map(|j| j.id.as_str()).collect();
    if ids.is_empty() {
        "nothing to submit".into()
    } else {
        format!("job {}", ids.join(", "))
    }
}

/// The work of one submission: per stage, the units to run.
pub struct StageUnits<'a> {
    pub stage: &'a plandir::Stage,
    pub units: Vec<(u64, u64)>,
    /// File listing the units one per line (`A B`), for Slurm's array index lookup.
    pub units_file: PathBuf,
}

type Prepared = (RunRecord, PlanInfo, u64, u64);

fn prepare_and_submit(
    o: &SubmitOptions,
    engine: &dyn Engine,
    dir: &Path,
    exe: &Path,
    submission: u32,
) -> Result<Prepared, ClusterError> {
    let plan = PlanInfo::load(dir)?;
    let cdir = cluster_dir(dir);
    for sub in ["", "failed", "running", "units"] {
        let p = cdir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| io_err("create", &p, e))?;
    }
    // A resumed run starts without the old run's failures and cancellation.
    for sub in ["failed", "running"] {
        if let Ok(it) = std::fs::read_dir(cdir.join(sub)) {
            for e in it.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_file(cdir.join("cancelled"));
    let task_sh = cdir.join("task.sh");
    write_atomic(&task_sh, wrapper_script(dir, exe, o.retries).as_bytes())?;
    let mut total = 0;
    let mut already = 0;
    let mut work = Vec::new();
    for s in &plan.stages {
        let done = plandir::done_tasks(dir, s.id, s.tasks);
        let d = done.iter().filter(|x| **x).count() as u64;
        total += s.tasks;
        already += d;
        let per = s.tasks.div_ceil(MAX_UNITS).max(1);
        let units = plandir::units(&done, per);
        if units.is_empty() {
            continue;
        }
        let units_file = cdir.join("units").join(format!("{}.{submission}", s.id));
        let text: String = units.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
        write_atomic(&units_file, text.as_bytes())?;
        work.push(StageUnits {
            stage: s,
            units,
            units_file,
        });
    }
    for w in &work {
        let p = dir.join("logs").join(w.stage.id.to_string());
        std::fs::create_dir_all(&p).map_err(|e| io_err("create", &p, e))?;
    }
    let jobs = if work.is_empty() {
        Vec::new()
    } else {
        engine.submit(dir, &task_sh, &work, o)?
    };
    let record = RunRecord {
        engine: o.engine,
        hash: plan.hash.clone(),
        jobs,
        hq_server_dir: o.hq_server_dir.clone(),
        submission,
        submitted_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let text = serde_json::to_vec_pretty(&record).expect("a run record serializes");
    if let Err(e) = write_atomic(&record_path(dir), &text) {
        let _ = engine.cancel(dir, &record);
        return Err(e);
    }
    Ok((record, plan, total, already))
}

/// The task wrapper: runs `tessera worker DIR --stage S --tasks A-B` up to `retries + 1`
/// times, logging every attempt into `DIR/logs/S/A-B.log`; a unit that keeps failing
/// leaves `DIR/cluster/failed/S-A-B` naming its log. Pending units of a cancelled run exit
/// at once.
fn wrapper_script(dir: &Path, exe: &Path, retries: u32) -> String {
    let q = |p: &Path| shell_quote(&p.to_string_lossy());
    format!(
        r#"#!/bin/bash
# Runs one unit of an exported Tessera plan: task.sh STAGE FIRST LAST
set -u
dir={dir}
exe={exe}
retries={retries}
s=$1 a=$2 b=$3
unit="$s-$a-$b"
mkdir -p "$dir/logs/$s"
log="$dir/logs/$s/$a-$b.log"
exec >>"$log" 2>&1
if [ -e "$dir/cluster/cancelled" ]; then
    echo "tessera: the run was cancelled; stage $s tasks $a-$b not started"
    exit 3
fi
attempt=0
while :; do
    attempt=$((attempt + 1))
    echo "tessera: stage $s tasks $a-$b, attempt $attempt on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    "$exe" worker "$dir" --stage "$s" --tasks "$a-$b" &
    pid=$!
    echo "$(hostname) $pid" >"$dir/cluster/running/$unit"
    wait "$pid"
    rc=$?
    rm -f "$dir/cluster/running/$unit"
    if [ "$rc" -eq 0 ]; then
        exit 0
    fi
    echo "tessera: the worker exited with status $rc"
    if [ -e "$dir/cluster/cancelled" ]; then
        exit 3
    fi
    if [ "$attempt" -gt "$retries" ]; then
        break
    fi
done
tmp="$dir/cluster/failed/.$unit.$$"
printf '%s\n%s\n' "$log" "$attempt" >"$tmp" && mv -f "$tmp" "$dir/cluster/failed/$unit"
exit 1
"#,
        dir = q(dir),
        exe = q(exe),
    )
}

pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What an engine does for an executor.
pub trait Engine {
    /// The engine is installed and answers (checked before anything is written).
    fn check(&self) -> Result<(), ClusterError>;
    /// Submit the units of every stage, in order, each stage after the stages it follows.
    fn submit(
        &self,
        dir: &Path,
        task_sh: &Path,
        work: &[StageUnits<'_>],
        o: &SubmitOptions,
    ) -> Result<Vec<SubmittedJob>, ClusterError>;
    /// Does the engine still hold queued or running work of this run?
    fn active(&self, r: &RunRecord) -> Result<bool, ClusterError>;
    /// Stop the run's jobs.
    fn cancel(&self, dir: &Path, r: &RunRecord) -> Result<(), ClusterError>;
}

fn engine_for(o: &SubmitOptions) -> Result<Box<dyn Engine>, ClusterError> {
    engine_of(o.engine, o.hq_server_dir.clone())
}

fn engine_of(kind: EngineKind, hq: Option<PathBuf>) -> Result<Box<dyn Engine>, ClusterError> {
    Ok(match kind {
        EngineKind::Slurm => Box::new(slurm::Slurm),
        EngineKind::HyperQueue => Box::new(hyperqueue::HyperQueue::new(hq)),
    })
}

/// A unit that failed for good, read from its marker.
#[derive(Debug, Clone)]
pub struct Failure {
    pub stage: usize,
    pub first: u64,
    pub last: u64,
    pub log: PathBuf,
    pub attempts: u32,
    /// The worker's error lines from its last attempt.
    pub cause: Vec<String>,
}

/// The failure markers of a run.
pub fn failures(dir: &Path) -> Vec<Failure> {
    let mut out = Vec::new();
    let Ok(it) = std::fs::read_dir(cluster_dir(dir).join("failed")) else {
        return out;
    };
    let mut names: Vec<String> = it
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    for n in names {
        let parts: Vec<&str> = n.split('-').collect();
        let [s, a, b] = parts[..] else { continue };
        let (Ok(stage), Ok(first), Ok(last)) = (s.parse(), a.parse(), b.parse()) else {
            continue;
        };
        let text =
            std::fs::read_to_string(cluster_dir(dir).join("failed").join(&n)).unwrap_or_default();
        let mut lines = text.lines();
        let log = PathBuf::from(lines.next().unwrap_or_default());
        let attempts = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let cause = last_attempt_errors(&log);
        out.push(Failure {
            stage,
            first,
            last,
            log,
            attempts,
            cause,
        });
    }
    out
}

/// The lines the worker printed in its last attempt (after the wrapper's last `attempt`
/// line), without the wrapper's own lines.
fn last_attempt_errors(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines
        .iter()
        .rposition(|l| l.starts_with("tessera: stage ") && l.contains(", attempt "))
        .map_or(0, |i| i + 1);
    lines[from..]
        .iter()
        .filter(|l| !l.starts_with("tessera: the worker exited"))
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.to_string())
        .collect()
}

fn failure_error(plan: &PlanInfo, f: &Failure, stopped: bool) -> ClusterError {
    let name = plan
        .stage(f.stage)
        .map(|s| format!(" ({})", s.name))
        .unwrap_or_default();
    let tasks = if f.first == f.last {
        format!("task {}", f.first)
    } else {
        format!("tasks {}-{}", f.first, f.last)
    };
    let cause = if f.cause.is_empty() {
        "the worker printed no error (killed?)".to_string()
    } else {
        f.cause.join("\n  ")
    };
    ClusterError::new(
        codes::TASK_FAILED,
        format!(
            "stage {}{name}, {tasks} failed {} time{}{}:\n  {cause}\n  worker log: {}",
            f.stage,
            f.attempts,
            if f.attempts == 1 { "" } else { "s" },
            if stopped {
                "; the rest of the run was cancelled"
            } else {
                ""
            },
            f.log.display()
        ),
    )
}

/// How often the submitter looks at the completion records, and at the engine.
const POLL: Duration = Duration::from_millis(250);
const ENGINE_POLL: Duration = Duration::from_secs(2);
const PRINT_EVERY: Duration = Duration::from_secs(1);

/// Follow a submitted run until it completes, fails or is cancelled.
fn follow(
    dir: &Path,
    plan: &PlanInfo,
    record: &RunRecord,
    engine: &dyn Engine,
    quiet: bool,
) -> Result<(), ClusterError> {
    let mut last_line = String::new();
    let mut last_print = Instant::now() - PRINT_EVERY;
    let mut last_engine = Instant::now();
    let mut idle_checks = 0;
    loop {
        let p = plandir::progress(dir, plan);
        let done: u64 = p.iter().map(|x| x.0).sum();
        let total: u64 = p.iter().map(|x| x.1).sum();
        if !quiet {
            // At most one line a second, and the last one.
            let line = progress_line(plan, &p);
            if line != last_line && (last_print.elapsed() >= PRINT_EVERY || done == total) {
                eprintln!("{line}");
                last_line = line;
                last_print = Instant::now();
            }
        }
        if done == total {
            return Ok(());
        }
        if let Some(f) = failures(dir).first() {
            let _ = engine.cancel(dir, record);
            return Err(failure_error(plan, f, true));
        }
        if cluster_dir(dir).join("cancelled").exists() {
            return Err(cancelled_error(dir, done, total));
        }
        if last_engine.elapsed() >= ENGINE_POLL {
            last_engine = Instant::now();
            if !engine.active(record)? {
                // The records of the last tasks may land just after the engine forgets them.
                idle_checks += 1;
                if idle_checks >= 2 {
                    let p = plandir::progress(dir, plan);
                    if p.iter().all(|(d, t)| d == t) {
                        return Ok(());
                    }
                    if let Some(f) = failures(dir).first() {
                        return Err(failure_error(plan, f, false));
                    }
                    return Err(lost_error(dir, plan, &p, record));
                }
            } else {
                idle_checks = 0;
            }
        }
        std::thread::sleep(POLL);
    }
}

fn cancelled_error(dir: &Path, done: u64, total: u64) -> ClusterError {
    ClusterError::new(
        codes::RUN_CANCELLED,
        format!(
            "the run in {} was cancelled with {done} of {total} tasks done; `tessera run ... \
             --resume` submits the rest",
            dir.display()
        ),
    )
}

fn lost_error(dir: &Path, plan: &PlanInfo, p: &[(u64, u64)], r: &RunRecord) -> ClusterError {
    let missing: Vec<String> = plan
        .stages
        .iter()
        .zip(p)
        .filter(|(_, (d, t))| d < t)
        .map(|(s, (d, t))| format!("stage {} ({}): {d}/{t}", s.id, s.name))
        .collect();
    ClusterError::new(
        codes::ENGINE_LOST,
        format!(
            "{} holds no more work of this run ({}) but tasks are unfinished ({}); the jobs \
             were cancelled or killed outside Tessera (see the logs under {}); `--resume` \
             submits the rest",
            r.engine.name(),
            job_list(r),
            missing.join(", "),
            dir.join("logs").display()
        ),
    )
}

/// `tessera: 12/40 tasks done (stage 0 blur: 10/10, stage 1 sum: 2/30)`.
pub fn progress_line(plan: &PlanInfo, p: &[(u64, u64)]) -> String {
    let done: u64 = p.iter().map(|x| x.0).sum();
    let total: u64 = p.iter().map(|x| x.1).sum();
    let stages: Vec<String> = plan
        .stages
        .iter()
        .zip(p)
        .map(|(s, (d, t))| {
            if s.name.is_empty() {
                format!("stage {}: {d}/{t}", s.id)
            } else {
                format!("stage {} {}: {d}/{t}", s.id, s.name)
            }
        })
        .collect();
    format!("tessera: {done}/{total} tasks done ({})", stages.join(", "))
}

/// The state of a run, for `tessera status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Complete,
    Running,
    Failed,
    Cancelled,
}

/// Report the state of the run in `dir`; with `follow`, wait until it ends (as the
/// submitting process would). Returns the state and the lines to print.
pub fn status(dir: &Path, follow_run: bool) -> Result<RunState, ClusterError> {
    let dir = absolute(dir);
    let plan = PlanInfo::load(&dir)?;
    let record = load_record(&dir)?;
    let engine = engine_of(record.engine, record.hq_server_dir.clone())?;
    if follow_run {
        follow(&dir, &plan, &record, &*engine, false)?;
        println!("complete");
        return Ok(RunState::Complete);
    }
    let p = plandir::progress(&dir, &plan);
    println!("{}", progress_line(&plan, &p));
    if p.iter().all(|(d, t)| d == t) {
        println!("complete");
        return Ok(RunState::Complete);
    }
    if let Some(f) = failures(&dir).first() {
        return Err(failure_error(&plan, f, false));
    }
    let done: u64 = p.iter().map(|x| x.0).sum();
    let total: u64 = p.iter().map(|x| x.1).sum();
    if cluster_dir(&dir).join("cancelled").exists() {
        return Err(cancelled_error(&dir, done, total));
    }
    if !engine.active(&record)? {
        // The last records may land just after the engine forgets the jobs.
        std::thread::sleep(Duration::from_millis(500));
        let p = plandir::progress(&dir, &plan);
        if p.iter().all(|(d, t)| d == t) {
            println!("complete");
            return Ok(RunState::Complete);
        }
        return Err(lost_error(&dir, &plan, &p, &record));
    }
    println!(
        "running on {} ({})",
        record.engine.name(),
        job_list(&record)
    );
    Ok(RunState::Running)
}

/// Stop the run in `dir`: mark it cancelled (pending units exit at once) and cancel its
/// jobs with the engine.
pub fn cancel(dir: &Path) -> Result<(), ClusterError> {
    let dir = absolute(dir);
    PlanInfo::load(&dir)?;
    let record = load_record(&dir)?;
    let marker = cluster_dir(&dir).join("cancelled");
    write_atomic(&marker, b"cancelled\n")?;
    let engine = engine_of(record.engine, record.hq_server_dir.clone())?;
    engine.cancel(&dir, &record)?;
    eprintln!(
        "tessera: cancelled {} on {}",
        job_list(&record),
        record.engine.name()
    );
    Ok(())
}

/// Workers of this run that the wrapper recorded as running on this host: (pid, unit).
pub(crate) fn local_running_workers(dir: &Path) -> Vec<(i32, String)> {
    let host = hostname();
    let mut out = Vec::new();
    if let Ok(it) = std::fs::read_dir(cluster_dir(dir).join("running")) {
        for e in it.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let mut w = text.split_whitespace();
            if let (Some(h), Some(pid)) = (w.next(), w.next().and_then(|p| p.parse().ok())) {
                if h == host {
                    out.push((pid, e.file_name().to_string_lossy().into_owned()));
                }
            }
        }
    }
    out
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_shown_as_typed() {
        let mut c = Command::new("sbatch");
        c.args(["--array=0-3%2", "--comment", "a b"]);
        assert_eq!(show_command(&c), "sbatch --array=0-3%2 --comment 'a b'");
    }

    #[test]
    fn the_wrapper_retries_a_killed_worker_and_marks_a_unit_that_keeps_failing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for sub in ["cluster/failed", "cluster/running"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // A stand-in worker: killed by SIGKILL on its first attempt, then succeeds for
        // stage 0; always fails for stage 1.
        let fake = dir.join("fake-worker");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/bash\nd={}\nif [ \"$4\" = 1 ]; then echo 'stage 1 task 0: chunk [0, 0] region [0:4, 0:4]: disk full' >&2; exit 1; fi\n\
                 if [ ! -e $d/seen ]; then touch $d/seen; kill -9 $$; fi\nexit 0\n",
                dir.display()
            ),
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&fake)
            .status()
            .unwrap();
        let sh = dir.join("cluster/task.sh");
        std::fs::write(&sh, wrapper_script(dir, &fake, 2)).unwrap();
        let ok = Command::new("bash")
            .arg(&sh)
            .args(["0", "0", "3"])
            .status()
            .unwrap();
        assert!(ok.success());
        let log = std::fs::read_to_string(dir.join("logs/0/0-3.log")).unwrap();
        assert!(log.contains("attempt 2"), "{log}");
        assert!(log.contains("exited with status 137"), "{log}");
        let bad = Command::new("bash")
            .arg(&sh)
            .args(["1", "0", "0"])
            .status()
            .unwrap();
        assert_eq!(bad.code(), Some(1));
        let f = failures(dir);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].stage, f[0].first, f[0].last, f[0].attempts),
            (1, 0, 0, 3)
        );
        assert_eq!(
            f[0].cause,
            vec!["stage 1 task 0: chunk [0, 0] region [0:4, 0:4]: disk full"]
        );
        assert!(local_running_workers(dir).is_empty());
    }
}
