//! The embedding API of exported plans: `Engine::export` writes a plan directory
//! (`tessera plan FILE --export DIR`), `Engine::work` runs a range of one stage's tasks
//! from it (`tessera worker DIR --stage S --tasks A-B`). The format is in
//! `docs/PLAN-FORMAT.md`.

use crate::diag::{codes, Diagnostic};
use crate::exec::task::{self, Exported, WorkerReport};
use crate::exec::CancelToken;
use crate::plan::export::{self, FingerprintDoc, InputDoc, PlanDoc};
use crate::Engine;
use std::path::Path;

/// What an export did.
#[derive(Debug)]
pub struct ExportReport {
    pub doc: PlanDoc,
    /// The directory held this very plan already (its completion records are kept).
    pub unchanged: bool,
    pub warnings: Vec<Diagnostic>,
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> Vec<Diagnostic> {
    vec![Diagnostic::error(
        codes::PLAN_WRITE,
        format!("cannot write {}: {e}", path.display()),
    )]
}

impl Engine {
    /// Plan `src` (read from `script`) and write the plan into `dir`. A directory that
    /// already holds this plan is left as it is (its finished tasks stay finished); one
    /// that holds another plan is refused, naming what changed.
    pub fn export(
        &mut self,
        script: &Path,
        src: &str,
        dir: &Path,
        chunks_per_task: Option<u64>,
    ) -> Result<ExportReport, Vec<Diagnostic>> {
        let script_abs = std::fs::canonicalize(script).unwrap_or_else(|_| script.to_path_buf());
        let mut args: Vec<(String, String)> = self
            .ev
            .script_args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        args.sort();
        if export::plan_file(dir).exists() {
            let old = export::load(dir).map_err(|m| {
                let code = if m.contains("plan format") {
                    codes::PLAN_VERSION
                } else {
                    codes::PLAN_DAMAGED
                };
                vec![Diagnostic::error(code, m)
                    .help("export into another (empty) directory, or delete this one")]
            })?;
            let changed = if old.tessera != env!("CARGO_PKG_VERSION") {
                Some(format!(
                    "it was exported by Tessera {}, this is Tessera {}",
                    old.tessera,
                    env!("CARGO_PKG_VERSION")
                ))
            } else if old.script != script_abs.display().to_string() {
                Some(format!("it is the plan of another script, {}", old.script))
            } else if let Some((_, why)) = task::staleness(&old) {
                Some(why)
            } else if old.args != args {
                Some("the script's arguments (--arg) differ".into())
            } else if old.chunks_per_task != chunks_per_task {
                Some("--chunks-per-task differs".into())
            } else {
                None
            };
            return match changed {
                None => Ok(ExportReport {
                    doc: old,
                    unchanged: true,
                    warnings: Vec::new(),
                }),
                Some(why) => Err(vec![Diagnostic::error(
                    codes::PLAN_CHANGED,
                    format!("{} holds another plan: {why}", dir.display()),
                )
                .note("its finished tasks were computed by that plan; mixing them with this one would mix two results")
                .help("export into another (empty) directory, or delete this one to start over")]),
            };
        }
        // Workers may start anywhere: every path in the plan is absolute.
        if self.ev.base_dir.is_none() {
            self.ev.base_dir = std::env::current_dir().ok();
        }
        let name = script.display().to_string();
        let planned = self.plan(&name, src)?;
        let program = &planned.program;
        if let Some((w, span)) = program.sinks.iter().find_map(|s| match &s.kind {
            crate::ir::SinkKind::Write(w) if w.in_place => Some((w, s.span)),
            _ => None,
        }) {
            return Err(vec![Diagnostic::error(
                codes::PLAN_NOT_EXPORTABLE,
                format!(
                    "this program updates {:?} in place, which exported plans do not do yet",
                    w.path
                ),
            )
            .label(span, "updated in place")
            .note("an update in place is staged beside the array and swapped in by the process that ran it")
            .help("run it with --executor local, or write the result to a new path")]);
        }
        let bytes = task::encode_program(program).map_err(|why| {
            vec![Diagnostic::error(
                codes::PLAN_NOT_EXPORTABLE,
                format!("this program cannot be exported: {why}"),
            )
            .help("run it in the host program, or export a script that uses only builtins and Python functions")]
        })?;
        let mut inputs: Vec<InputDoc> = self
            .ev
            .inputs
            .iter()
            .map(|(k, r)| {
                let resolved = std::fs::canonicalize(r.path()).unwrap_or_else(|_| r.path().into());
                InputDoc {
                    path: k.clone(),
                    metadata: crate::exec::resume::metadata_hash(&resolved),
                    resolved: resolved.display().to_string(),
                }
            })
            .collect();
        inputs.sort_by(|a, b| a.path.cmp(&b.path));
        let runtime = {
            let mut all = env!("CARGO_PKG_VERSION").to_string();
            for (_, t) in crate::stdlib::FILES {
                all.push_str(t);
            }
            task::sha_hex(all.as_bytes())
        };
        let mut read_args: Vec<(String, String)> = self
            .ev
            .args_read
            .iter()
            .map(|a| (a.name.clone(), a.value.clone()))
            .collect();
        read_args.sort();
        let fingerprint = FingerprintDoc {
            script: crate::exec::resume::with_code_files(&task::sha_hex(src.as_bytes()), program),
            runtime,
            args: read_args,
        };
        let stages = export::stages(program, &planned.plan, chunks_per_task);
        let program_sha = task::sha_hex(&bytes);
        let hash = {
            let id = serde_json::json!([
                export::FORMAT,
                env!("CARGO_PKG_VERSION"),
                &fingerprint,
                &inputs,
                &program_sha,
                chunks_per_task
            ]);
            task::sha_hex(id.to_string().as_bytes())
        };
        let workdir = match &self.ev.base_dir {
            Some(d) => d.clone(),
            None => std::env::current_dir().unwrap_or_default(),
        };
        let doc = PlanDoc {
            format: export::FORMAT,
            tessera: env!("CARGO_PKG_VERSION").into(),
            hash,
            script: script_abs.display().to_string(),
            workdir: workdir.display().to_string(),
            program: "program.cbor".into(),
            program_sha,
            chunks_per_task,
            args,
            fingerprint,
            inputs,
            stages,
        };
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
        let prog = dir.join(&doc.program);
        export::write_atomic(&prog, &bytes).map_err(|e| write_err(&prog, e))?;
        let text = dir.join("program.txt");
        export::write_atomic(&text, crate::ir::print_program(program).as_bytes())
            .map_err(|e| write_err(&text, e))?;
        // plan.json last: a directory with a plan.json holds a whole plan.
        let json = serde_json::to_vec_pretty(&doc).expect("a plan serializes");
        let pj = export::plan_file(dir);
        export::write_atomic(&pj, &json).map_err(|e| write_err(&pj, e))?;
        Ok(ExportReport {
            doc,
            unchanged: false,
            warnings: planned.warnings,
        })
    }

    /// Run tasks `first..=last` of stage `stage` of the plan in `dir` with `workers`
    /// threads. Returns what ran and, once the finish stage has run, the lines the
    /// program prints.
    pub fn work(
        &self,
        dir: &Path,
        stage: usize,
        first: u64,
        last: u64,
        workers: usize,
    ) -> Result<(WorkerReport, Vec<String>), Vec<Diagnostic>> {
        let ex: Exported = task::open_exported(dir).map_err(|d| vec![d])?;
        let cancel: &CancelToken = crate::exec::interrupt_token();
        let report = task::run_exported(&ex, stage, first, last, workers, cancel)?;
        let mut lines = Vec::new();
        if report.finished {
            let out = crate::exec::RunOutput {
                values: report.values.clone(),
                tables: report.tables.clone(),
                ..Default::default()
            };
            lines = crate::driver::render_effects(&ex.program, &out);
            let path = dir.join("printed.txt");
            let mut text = lines.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            export::write_atomic(&path, text.as_bytes()).map_err(|e| write_err(&path, e))?;
        }
        Ok((report, lines))
    }
}
