//! The REPL's multi-line description of a lazy array, in the spirit of dask's repr:
//! dtype, shape and chunks, bytes of the whole and of one chunk, the chunk and task
//! counts of computing it, the halo its stencils read and the inputs it reads.

use super::session::plan_only;
use crate::exec::{RunOptions, Safeguards};
use crate::geom::{fmt_shape, ChunkGrid};
use crate::ir::{NodeId, Op, Program};
use crate::lower::{builtins::human_bytes, ArrayVal};
use crate::Engine;
use std::fmt::Write;

/// Zarr paths `id` reads, in first-use order.
fn inputs(p: &Program, id: NodeId) -> Vec<String> {
    let mut seen = vec![false; p.nodes.len()];
    let mut order = Vec::new();
    p.post_order(id, &mut seen, &mut order);
    let mut out: Vec<String> = Vec::new();
    for n in order {
        if let Op::Zarr { path } = &p.node(n).op {
            if !out.contains(path) {
                out.push(path.clone());
            }
        }
    }
    out
}

impl Engine {
    /// The multi-line summary the REPL prints for an array value.
    /// Its task line is the plan the session's compile step makes for computing it.
    pub(crate) fn array_report(
        &mut self,
        a: &ArrayVal,
        opts: &RunOptions,
        guards: &Safeguards,
    ) -> String {
        let workers = opts.workers;
        let p = &self.ev.program;
        let t = p.ty(a.node).clone();
        let grid = ChunkGrid::new(t.shape.clone(), t.chunks.clone());
        let chunk_bytes = t.chunks.iter().product::<u64>() * t.dtype.size() as u64;
        let halo = p.max_halo(a.node).filter(|h| h.iter().any(|x| *x > 0));
        let inputs = inputs(p, a.node);
        let mut out = String::new();
        let _ = writeln!(out, "array {}", crate::ir::type_summary(p, a.node));
        let rows = [
            ("", "array".to_string(), "chunk".to_string()),
            ("shape", fmt_shape(&t.shape), fmt_shape(&t.chunks)),
            ("bytes", human_bytes(t.nbytes()), human_bytes(chunk_bytes)),
            (
                "count",
                format!(
                    "{} chunk{}",
                    grid.num_chunks(),
                    if grid.num_chunks() == 1 { "" } else { "s" }
                ),
                format!("grid {}", fmt_shape(&grid.grid_shape())),
            ),
        ];
        let w = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        for (k, v, c) in rows {
            let line = format!("  {k:<7} {v:<w$}  {c}");
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let _ = writeln!(out, "  {:<7} {}", "dtype", t.dtype);
        // What computing it takes: the plan for writing it chunk by chunk.
        match self.scratch_write(a, "<value>") {
            Ok(sink) => {
                let prog = self.program_for(vec![sink]);
                let c = self.compile_program(prog, "", Vec::new(), opts, &plan_only(guards));
                let ops = c.program.live_nodes().len();
                let pl = &c.plan;
                let tasks = pl.total_tasks();
                let _ = writeln!(
                    out,
                    "  {:<7} {tasks} task{} over {ops} op{} (after fusion); reads {}, peak ~{} with {workers} worker{}",
                    "tasks",
                    if tasks == 1 { "" } else { "s" },
                    if ops == 1 { "" } else { "s" },
                    human_bytes(pl.stages.iter().map(|s| s.bytes_read).sum()),
                    human_bytes(pl.projected_peak(workers)),
                    if workers == 1 { "" } else { "s" },
                );
            }
            Err(_) => {
                // The summary is informative only; a plan that cannot be made (an odd
                // scratch directory) just leaves the line out.
            }
        }
        if let Some(h) = halo {
            let _ = writeln!(
                out,
                "  {:<7} {} read around each chunk",
                "halo",
                fmt_shape(&h)
            );
        }
        if !inputs.is_empty() {
            let shown: Vec<String> = inputs.iter().map(|p| format!("{p:?}")).collect();
            let _ = writeln!(out, "  {:<7} {}", "inputs", shown.join(", "));
        }
        let _ = writeln!(
            out,
            "  {:<7} yes: computed by write(), values(), print or :show",
            "lazy"
        );
        out
    }
}
