//! The stage part of `tessera plan --explain`: per stage its tasks and their order, the
//! bytes it reads and writes, one task's working set and the halo its stencils read
//! (after `merge_halos`), then the totals and the projected peak memory.

use super::{Plan, StageKind, TaskOrder};
use crate::geom::fmt_shape;
use crate::ir::Program;
use crate::lower::human;
use std::fmt::Write;

pub fn explain(p: &Program, plan: &Plan, workers: usize) -> String {
    let mut out = String::new();
    let chains = plan.chains(p);
    for (k, st) in plan.stages.iter().enumerate() {
        let _ = writeln!(out, "stage {k}: {}", st.name);
        let from: Vec<String> = chains
            .iter()
            .filter(|(_, c)| *c == k)
            .map(|(a, _)| format!("stage {a}"))
            .collect();
        if !from.is_empty() {
            let _ = writeln!(
                out,
                "  overlaps {}: each task starts once the chunks it reads there (halo included) are written",
                from.join(", ")
            );
        }
        match &st.kind {
            StageKind::Write { grid, chunks } => {
                let order = match (chunks, &st.order) {
                    (Some(_), _) => "listed chunks",
                    (None, TaskOrder::RowMajor) => "row-major",
                    (None, TaskOrder::Hilbert { .. }) => "Hilbert curve, computed per task",
                };
                let _ = writeln!(
                    out,
                    "  tasks: {} of {} chunks {} (grid {}), order: {order}",
                    st.tasks,
                    grid.num_chunks(),
                    fmt_shape(&grid.chunks),
                    fmt_shape(&grid.grid_shape())
                );
                if let Some(w) = st.sinks.iter().find_map(|si| match &p.sinks[*si].kind {
                    crate::ir::SinkKind::Write(w) if w.in_place => Some(w),
                    _ => None,
                }) {
                    let _ = writeln!(
                        out,
                        "  updates {} in place: every read sees it as it was before the run; the update is staged beside it (unchanged chunks as hard links) and takes its place at the end",
                        w.path
                    );
                }
                if let Some(b) = &st.block {
                    let _ = writeln!(
                        out,
                        "  each task owns a block of {} chunks and reads the rechunk's input {} over it: {}",
                        fmt_shape(&b.per),
                        b.node,
                        b.reads()
                    );
                }
            }
            StageKind::Values => {
                let _ = writeln!(out, "  tasks: 1 (the whole array)");
            }
            StageKind::Label { grid, .. } | StageKind::Props { grid } => {
                let _ = writeln!(
                    out,
                    "  tasks: {} (one per chunk {} of the grid {}, merged in chunk order)",
                    st.tasks,
                    fmt_shape(&grid.chunks),
                    fmt_shape(&grid.grid_shape())
                );
            }
            StageKind::Reduce { split, .. } => {
                let _ = writeln!(
                    out,
                    "  tasks: {} ({} output block{} x {} group{} of input chunks, combined in order)",
                    st.tasks,
                    split.blocks,
                    if split.blocks == 1 { "" } else { "s" },
                    split.groups,
                    if split.groups == 1 { "" } else { "s" }
                );
            }
        }
        let _ = writeln!(
            out,
            "  reads {}, writes {}, one task holds up to {}",
            human(st.bytes_read),
            human(st.bytes_written),
            human(st.task_bytes)
        );
        // The widest halo any stencil of the stage reads from its (chain's) inputs.
        let mut halo: Option<Vec<u64>> = None;
        let mut chains = 0;
        for si in &st.sinks {
            let mut seen = vec![false; p.nodes.len()];
            let mut order = Vec::new();
            p.post_order(p.sinks[*si].node, &mut seen, &mut order);
            for id in order {
                chains += usize::from(p.notes.halos.contains_key(&id));
                if let Some(h) = p.notes.read_halo(p, id) {
                    let t = halo.get_or_insert_with(|| vec![0; h.len()]);
                    for (a, b) in t.iter_mut().zip(&h) {
                        *a = (*a).max(*b);
                    }
                }
            }
        }
        if let Some(h) = halo {
            let _ = write!(out, "  halo read from inputs: {}", fmt_shape(&h));
            if chains > 0 {
                let _ = write!(
                    out,
                    " ({chains} merged stencil chain{})",
                    if chains == 1 { "" } else { "s" }
                );
            }
            out.push('\n');
        }
    }
    let read: u64 = plan
        .stages
        .iter()
        .map(|s| s.bytes_read)
        .fold(0, u64::saturating_add);
    let written: u64 = plan
        .stages
        .iter()
        .map(|s| s.bytes_written)
        .fold(0, u64::saturating_add);
    let _ = writeln!(
        out,
        "total: {} tasks, reads {}, writes {}, projected peak memory {} with {workers} worker{} (chunk cache {})",
        plan.total_tasks(),
        human(read),
        human(written),
        human(plan.projected_peak(workers)),
        if workers == 1 { "" } else { "s" },
        human(if plan.halo_inputs.is_empty() {
            0
        } else {
            plan.cache_budget(workers)
        })
    );
    for s in &plan.shared_inputs {
        let _ = writeln!(
            out,
            "{}: read by more than one wave; its decoded chunks ({}) are kept for wave {} while the memory limit allows",
            s.path,
            human(s.bytes),
            s.last_wave
        );
    }
    out
}
