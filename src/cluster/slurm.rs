//! The Slurm executor: one job array per stage (`sbatch --array=0-M%N`), each job
//! `--dependency=afterok` on the jobs of the stages it runs after, one log per array task
//! under the plan directory; `squeue` tells whether the run's jobs are still queued or
//! running, `scancel` stops them.

use super::{
    run_command, shell_quote, ClusterError, Engine, RunRecord, StageUnits, SubmitOptions,
    SubmittedJob,
};
use crate::diag::codes;
use std::path::Path;
use std::process::Command;

pub struct Slurm;

impl Slurm {
    /// The batch script of a stage: array index i runs line i + 1 of the units file.
    fn batch_script(task_sh: &Path, stage: usize, units_file: &Path) -> String {
        format!(
            "#!/bin/bash\n# One array task of a Tessera stage: runs the unit on line \
             SLURM_ARRAY_TASK_ID + 1 of the units file.\nset -eu\nunit=$(sed -n \
             \"$((SLURM_ARRAY_TASK_ID + 1))p\" {units})\nset -- $unit\nexec bash {task} {stage} \"$1\" \"$2\"\n",
            units = shell_quote(&units_file.to_string_lossy()),
            task = shell_quote(&task_sh.to_string_lossy()),
        )
    }
}

/// `sbatch --array` ranges for `n` array tasks under a concurrency limit.
pub fn array_spec(n: usize, jobs: Option<usize>) -> String {
    let mut s = format!("0-{}", n.saturating_sub(1));
    if let Some(j) = jobs {
        s.push_str(&format!("%{j}"));
    }
    s
}

impl Engine for Slurm {
    fn check(&self) -> Result<(), ClusterError> {
        run_command(
            Command::new("sbatch").arg("--version"),
            codes::ENGINE_MISSING,
            codes::ENGINE_MISSING,
        )?;
        // The controller answers (squeue of one's own jobs needs it).
        run_command(
            Command::new("squeue").args(["-h", "-o", "%i", "--me"]),
            codes::ENGINE_MISSING,
            codes::ENGINE_DOWN,
        )?;
        Ok(())
    }

    fn submit(
        &self,
        dir: &Path,
        task_sh: &Path,
        work: &[StageUnits<'_>],
        o: &SubmitOptions,
    ) -> Result<Vec<SubmittedJob>, ClusterError> {
        let mut jobs: Vec<SubmittedJob> = Vec::new();
        let name = o
            .script
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        for w in work {
            let sid = w.stage.id;
            let script = dir.join("cluster").join(format!("slurm-{sid}.sh"));
            super::write_atomic(
                &script,
                Self::batch_script(task_sh, sid, &w.units_file).as_bytes(),
            )?;
            let deps: Vec<&str> = w
                .stage
                .after
                .iter()
                .filter_map(|a| {
                    jobs.iter()
                        .find(|j| j.stages.contains(a))
                        .map(|j| j.id.as_str())
                })
                .collect();
            let mut cmd = Command::new("sbatch");
            cmd.arg("--parsable")
                .arg(format!("--job-name=tessera-{name}-{sid}"))
                .arg(format!("--array={}", array_spec(w.units.len(), o.jobs)))
                .arg(format!(
                    "--output={}",
                    dir.join("logs")
                        .join(sid.to_string())
                        .join("slurm-%A_%a.out")
                        .display()
                ))
                .arg(format!("--chdir={}", dir.display()));
            if !deps.is_empty() {
                cmd.arg(format!("--dependency=afterok:{}", deps.join(":")))
                    .arg("--kill-on-invalid-dep=yes");
            }
            cmd.args(&o.slurm_args).arg(&script);
            match run_command(&mut cmd, codes::ENGINE_MISSING, codes::JOB_REJECTED) {
                Ok(out) => {
                    // `--parsable` prints `JOBID` or `JOBID;CLUSTER`.
                    let id = out.trim().split(';').next().unwrap_or("").to_string();
                    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                        let _ = self.cancel_ids(&jobs);
                        return Err(ClusterError::new(
                            codes::JOB_REJECTED,
                            format!(
                                "`{}` printed no job id (got {:?})",
                                super::show_command(&cmd),
                                out.trim()
                            ),
                        ));
                    }
                    jobs.push(SubmittedJob {
                        id,
                        stages: vec![sid],
                    });
                }
                Err(e) => {
                    // Stages already submitted would wait for ever: withdraw them.
                    let _ = self.cancel_ids(&jobs);
                    return Err(e);
                }
            }
        }
        Ok(jobs)
    }

    fn active(&self, r: &RunRecord) -> Result<bool, ClusterError> {
        if r.jobs.is_empty() {
            return Ok(false);
        }
        let ids: Vec<&str> = r.jobs.iter().map(|j| j.id.as_str()).collect();
        let out = run_command(
            Command::new("squeue")
                .args(["-h", "-o", "%i %T", "-j"])
                .arg(ids.join(",")),
            codes::ENGINE_MISSING,
            codes::ENGINE_DOWN,
        );
        match out {
            Ok(text) => Ok(text.lines().any(|l| {
                let state = l.split_whitespace().nth(1).unwrap_or("");
                !matches!(
                    state,
                    "COMPLETED"
                        | "FAILED"
                        | "CANCELLED"
                        | "TIMEOUT"
                        | "OUT_OF_MEMORY"
                        | "NODE_FAIL"
                        | "BOOT_FAIL"
                        | "DEADLINE"
                        | "PREEMPTED"
                )
            })),
            // Jobs the controller has forgotten are no longer active.
            Err(e) if e.message.contains("Invalid job id") => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn cancel(&self, _dir: &Path, r: &RunRecord) -> Result<(), ClusterError> {
        self.cancel_ids(&r.jobs)
    }
}

impl Slurm {
    fn cancel_ids(&self, jobs: &[SubmittedJob]) -> Result<(), ClusterError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut cmd = Command::new("scancel");
        cmd.args(jobs.iter().map(|j| j.id.as_str()));
        run_command(&mut cmd, codes::ENGINE_MISSING, codes::ENGINE_DOWN).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_carry_the_concurrency_limit() {
        assert_eq!(array_spec(10, Some(4)), "0-9%4");
        assert_eq!(array_spec(1, None), "0-0");
    }

    #[test]
    fn the_batch_script_reads_its_unit_by_array_index() {
        let tmp = tempfile::tempdir().unwrap();
        let units = tmp.path().join("units");
        std::fs::write(&units, "0 4\n5 9\n").unwrap();
        let task = tmp.path().join("task.sh");
        std::fs::write(&task, "echo \"$@\"\n").unwrap();
        let script = tmp.path().join("b.sh");
        std::fs::write(&script, Slurm::batch_script(&task, 3, &units)).unwrap();
        let out = Command::new("bash")
            .arg(&script)
            .env("SLURM_ARRAY_TASK_ID", "1")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "3 5 9\n");
    }
}
