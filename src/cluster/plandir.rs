//! What an executor reads of an exported plan directory: the stages of `plan.json` (id,
//! name, task count, the stages each runs after, outputs) and the completion records under
//! `done/S/`. The format is described in docs/PLAN-FORMAT.md; only the fields an executor
//! needs are read here, and unknown fields are ignored.

use super::ClusterError;
use crate::diag::codes;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One stage of an exported plan, as an executor sees it: N tasks that run after the
/// stages in `after`.
#[derive(Debug, Clone, Deserialize)]
pub struct Stage {
    pub id: usize,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub kind: String,
    pub tasks: u64,
    #[serde(default)]
    pub after: Vec<usize>,
    #[serde(default)]
    pub outputs: Vec<String>,
}

/// The executor's view of `plan.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct PlanInfo {
    pub format: u64,
    #[serde(default)]
    pub tessera: String,
    pub hash: String,
    #[serde(default)]
    pub script: String,
    pub stages: Vec<Stage>,
}

impl PlanInfo {
    /// Read `DIR/plan.json`.
    pub fn load(dir: &Path) -> Result<PlanInfo, ClusterError> {
        let path = dir.join("plan.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ClusterError::new(
                codes::NOT_A_PLAN_DIR,
                format!(
                    "{} is not an exported plan: cannot read {}: {e}",
                    dir.display(),
                    path.display()
                ),
            )
        })?;
        serde_json::from_str(&text).map_err(|e| {
            ClusterError::new(
                codes::NOT_A_PLAN_DIR,
                format!("{} is not a plan this executor reads: {e}", path.display()),
            )
        })
    }

    pub fn stage(&self, id: usize) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }

    /// Every output path of every stage, in stage order, each once.
    pub fn outputs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.stages {
            for o in &s.outputs {
                if !out.contains(o) {
                    out.push(o.clone());
                }
            }
        }
        out
    }
}

/// The completion-record folder of stage `stage`.
pub fn done_dir(dir: &Path, stage: usize) -> PathBuf {
    dir.join("done").join(stage.to_string())
}

/// Which of a stage's `n` tasks have a completion record. A record's file name starts
/// with its task number (`17`, `17.json`) or names an inclusive range (`12-17`); files
/// whose names start with `.` are records still being written.
pub fn done_tasks(dir: &Path, stage: usize, n: u64) -> Vec<bool> {
    let mut done = vec![false; n as usize];
    let Ok(entries) = std::fs::read_dir(done_dir(dir, stage)) else {
        return done;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let stem = name.split('.').next().unwrap_or("");
        let (a, b) = match stem.split_once('-') {
            Some((a, b)) => (a.parse::<u64>(), b.parse::<u64>()),
            None => (stem.parse::<u64>(), stem.parse::<u64>()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            for t in a..=b.min(n.saturating_sub(1)) {
                done[t as usize] = true;
            }
        }
    }
    done
}

/// Per stage, (tasks recorded done, tasks in all).
pub fn progress(dir: &Path, plan: &PlanInfo) -> Vec<(u64, u64)> {
    plan.stages
        .iter()
        .map(|s| {
            let d = done_tasks(dir, s.id, s.tasks);
            (d.iter().filter(|x| **x).count() as u64, s.tasks)
        })
        .collect()
}

/// The units an executor submits for a stage: inclusive task ranges of at most `per`
/// tasks, covering every task not yet recorded done (each unit a run of consecutive
/// unfinished tasks, cut at `per`).
pub fn units(done: &[bool], per: u64) -> Vec<(u64, u64)> {
    let per = per.max(1);
    let mut out = Vec::new();
    let mut i = 0u64;
    let n = done.len() as u64;
    while i < n {
        if done[i as usize] {
            i += 1;
            continue;
        }
        let a = i;
        let mut b = i;
        while b + 1 < n && !done[(b + 1) as usize] && b + 1 - a < per {
            b += 1;
        }
        out.push((a, b));
        i = b + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_cover_the_unfinished_tasks_in_runs_of_at_most_per() {
        let done = [false, false, false, true, false, true, true, false, false];
        assert_eq!(units(&done, 2), vec![(0, 1), (2, 2), (4, 4), (7, 8)]);
        assert_eq!(units(&done, 10), vec![(0, 2), (4, 4), (7, 8)]);
        assert_eq!(units(&[true, true], 3), vec![]);
        assert_eq!(units(&[false; 5], 1).len(), 5);
    }

    #[test]
    fn records_name_a_task_or_a_range() {
        let dir = tempfile::tempdir().unwrap();
        let d = done_dir(dir.path(), 2);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["0", "3.json", "5-6", ".7.tmp", "notes"] {
            std::fs::write(d.join(f), "").unwrap();
        }
        let got = done_tasks(dir.path(), 2, 8);
        assert_eq!(got, [true, false, false, true, false, true, true, false]);
    }
}
