//! The HyperQueue executor, through HyperQueue's Python API (the `hyperqueue` package,
//! whose wheel holds the client; `hq_bridge.py` is run with `python -c`). A submission is
//! one HyperQueue job: one task per unit, the units of a stage depending on the stages it
//! runs after (through one no-op barrier task per stage, so the graph stays linear in the
//! task count). The Python API has no cancel call: `cancel` marks the run cancelled (units
//! not started yet exit at once) and stops the workers running on this host.

use super::{
    run_command, ClusterError, Engine, RunRecord, StageUnits, SubmitOptions, SubmittedJob,
};
use crate::diag::codes;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BRIDGE: &str = include_str!("hq_bridge.py");

pub struct HyperQueue {
    server_dir: Option<PathBuf>,
}

impl HyperQueue {
    pub fn new(server_dir: Option<PathBuf>) -> HyperQueue {
        HyperQueue { server_dir }
    }

    /// The Python with the `hyperqueue` package: `$TESSERA_HQ_PYTHON`, else `python3`.
    fn python() -> PathBuf {
        std::env::var_os("TESSERA_HQ_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("python3"))
    }

    /// The server directory: `--hq-server-dir`, else `$HQ_SERVER_DIR`, else HyperQueue's
    /// default (empty: the bridge lets HyperQueue choose).
    fn server(&self) -> String {
        self.server_dir
            .clone()
            .or_else(|| std::env::var_os("HQ_SERVER_DIR").map(PathBuf::from))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn bridge(&self, cmd: &str) -> Command {
        let mut c = Command::new(Self::python());
        c.arg("-c").arg(BRIDGE).arg(cmd).arg(self.server());
        c
    }
}

/// A bridge command as the user would type it, without the script text.
fn shown(cmd: &str, server: &str) -> String {
    format!(
        "{} -c <hyperqueue bridge> {cmd} {}",
        HyperQueue::python().display(),
        if server.is_empty() { "''" } else { server }
    )
}

/// Map the bridge's exit status to an error: 1 the package is missing, 2 the server.
fn bridge_error(e: ClusterError, cmd: &str, server: &str, failed: &'static str) -> ClusterError {
    let code = if e.code == codes::ENGINE_MISSING || e.message.contains("(exit status: 1)") {
        codes::ENGINE_MISSING
    } else {
        failed
    };
    // Replace the script text in the message by a short name.
    let msg = match e.message.split_once("` failed") {
        Some((_, rest)) => format!("`{}` failed{rest}", shown(cmd, server)),
        None => e.message,
    };
    ClusterError::new(code, msg)
}

#[derive(serde::Serialize)]
struct TaskSpec {
    name: String,
    args: Vec<String>,
    deps: Vec<usize>,
}

#[derive(serde::Serialize)]
struct JobSpec {
    name: String,
    cwd: String,
    /// The submitter's `TESSERA_*` variables, which the tasks see as a Slurm job would.
    env: std::collections::BTreeMap<String, String>,
    tasks: Vec<TaskSpec>,
}

/// The tasks of one submission: per stage, one task per unit; a stage that others wait
/// for and has more than one unit gets a barrier task after its units.
fn job_tasks(task_sh: &Path, work: &[StageUnits<'_>]) -> Vec<TaskSpec> {
    let mut tasks: Vec<TaskSpec> = Vec::new();
    // Per submitted stage: the task others depend on to follow it.
    let mut ends: Vec<(usize, usize)> = Vec::new();
    let needed: Vec<usize> = work
        .iter()
        .flat_map(|w| w.stage.after.iter().copied())
        .collect();
    for w in work {
        let sid = w.stage.id;
        let deps: Vec<usize> = w
            .stage
            .after
            .iter()
            .filter_map(|a| ends.iter().find(|(s, _)| s == a).map(|(_, t)| *t))
            .collect();
        let first = tasks.len();
        for (a, b) in &w.units {
            tasks.push(TaskSpec {
                name: format!("stage {sid} tasks {a}-{b}"),
                args: vec![
                    "bash".into(),
                    task_sh.to_string_lossy().into_owned(),
                    sid.to_string(),
                    a.to_string(),
                    b.to_string(),
                ],
                deps: deps.clone(),
            });
        }
        if needed.contains(&sid) {
            if w.units.len() == 1 {
                ends.push((sid, first));
            } else {
                tasks.push(TaskSpec {
                    name: format!("stage {sid} done"),
                    args: vec!["true".into()],
                    deps: (first..tasks.len()).collect(),
                });
                ends.push((sid, tasks.len() - 1));
            }
        }
    }
    tasks
}

impl Engine for HyperQueue {
    fn check(&self) -> Result<(), ClusterError> {
        let server = self.server();
        run_command(
            &mut self.bridge("ping"),
            codes::ENGINE_MISSING,
            codes::ENGINE_DOWN,
        )
        .map(|_| ())
        .map_err(|e| bridge_error(e, "ping", &server, codes::ENGINE_DOWN))
    }

    fn submit(
        &self,
        dir: &Path,
        task_sh: &Path,
        work: &[StageUnits<'_>],
        o: &SubmitOptions,
    ) -> Result<Vec<SubmittedJob>, ClusterError> {
        let server = self.server();
        let name = o
            .script
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        let spec = JobSpec {
            name: format!("tessera-{name}"),
            cwd: dir.to_string_lossy().into_owned(),
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("TESSERA_"))
                .collect(),
            tasks: job_tasks(task_sh, work),
        };
        let json = serde_json::to_vec(&spec).expect("a job spec serializes");
        let mut cmd = self.bridge("submit");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            ClusterError::new(
                codes::ENGINE_MISSING,
                format!("`{}` failed to start: {e}", shown("submit", &server)),
            )
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&json).map_err(|e| {
                ClusterError::new(
                    codes::JOB_REJECTED,
                    format!("cannot send the job to `{}`: {e}", shown("submit", &server)),
                )
            })?;
        }
        let out = child.wait_with_output().map_err(|e| {
            ClusterError::new(
                codes::JOB_REJECTED,
                format!("`{}` failed: {e}", shown("submit", &server)),
            )
        })?;
        if !out.status.success() {
            let code = if out.status.code() == Some(1) {
                codes::ENGINE_MISSING
            } else {
                codes::JOB_REJECTED
            };
            return Err(ClusterError::new(
                code,
                format!(
                    "`{}` failed ({}): {}",
                    shown("submit", &server),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(ClusterError::new(
                codes::JOB_REJECTED,
                format!(
                    "`{}` printed no job id (got {id:?})",
                    shown("submit", &server)
                ),
            ));
        }
        Ok(vec![SubmittedJob {
            id,
            stages: work.iter().map(|w| w.stage.id).collect(),
        }])
    }

    fn active(&self, r: &RunRecord) -> Result<bool, ClusterError> {
        // The Python API can only wait for a job: a wait that has not returned within a
        // moment means the job is still running.
        for job in &r.jobs {
            let mut cmd = self.bridge("wait");
            cmd.arg(&job.id)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let Ok(mut child) = cmd.spawn() else {
                return Err(ClusterError::new(
                    codes::ENGINE_MISSING,
                    format!("`{}` failed to start", shown("wait", &self.server())),
                ));
            };
            let start = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        if status.code() == Some(2) {
                            let out = child.wait_with_output().ok();
                            let msg = out
                                .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
                                .unwrap_or_default();
                            if msg.starts_with("no HyperQueue server") {
                                return Err(ClusterError::new(codes::ENGINE_DOWN, msg));
                            }
                            // An unknown (forgotten) job is no longer active.
                        }
                        break;
                    }
                    Ok(None) if start.elapsed() < Duration::from_millis(1500) => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    fn cancel(&self, dir: &Path, _r: &RunRecord) -> Result<(), ClusterError> {
        super::write_atomic(&dir.join("cluster").join("cancelled"), b"cancelled\n")?;
        for (pid, _) in super::local_running_workers(dir) {
            // SAFETY: kill only sends a signal to the worker process the wrapper recorded.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plandir::Stage;

    fn stage(id: usize, after: &[usize]) -> Stage {
        Stage {
            id,
            name: String::new(),
            kind: String::new(),
            tasks: 4,
            after: after.to_vec(),
            outputs: vec![],
        }
    }

    #[test]
    fn stages_wait_for_a_barrier_of_the_stages_they_follow() {
        let (s0, s1, s2) = (stage(0, &[]), stage(1, &[0]), stage(2, &[0, 1]));
        let work = vec![
            StageUnits {
                stage: &s0,
                units: vec![(0, 1), (2, 3)],
                units_file: PathBuf::new(),
            },
            StageUnits {
                stage: &s1,
                units: vec![(0, 3)],
                units_file: PathBuf::new(),
            },
            StageUnits {
                stage: &s2,
                units: vec![(0, 0), (1, 1)],
                units_file: PathBuf::new(),
            },
        ];
        let t = job_tasks(Path::new("/p/task.sh"), &work);
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "stage 0 tasks 0-1",
                "stage 0 tasks 2-3",
                "stage 0 done",
                "stage 1 tasks 0-3",
                "stage 2 tasks 0-0",
                "stage 2 tasks 1-1"
            ]
        );
        assert_eq!(t[2].deps, [0, 1]);
        assert_eq!(t[3].deps, [2]);
        assert_eq!(t[4].deps, [2, 3]);
        assert_eq!(t[0].args, ["bash", "/p/task.sh", "0", "0", "1"]);
    }
}
