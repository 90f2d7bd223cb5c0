//! The plan as a Graphviz DOT graph. A small plan shows one node per chunk task, with
//! edges from the input chunks each task reads (its region pulled back through every op,
//! halos included) or from the tasks of the stage that writes them; a large plan shows
//! one node per stage with its task count. Stages have one colour in both.

use super::chain::task_reads;
use super::{Plan, StageKind};
use crate::geom::{fmt_shape, iter_box, ChunkGrid};
use crate::ir::{Op, Program, SinkKind};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Above this many tasks the graph shows stages instead of chunk tasks.
pub const MAX_CHUNK_TASKS: u64 = 200;

const COLOURS: [&str; 8] = [
    "#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5",
];

/// The chunk graph when the plan has at most `MAX_CHUNK_TASKS` tasks, else the stage graph.
pub fn to_dot(p: &Program, plan: &Plan) -> String {
    if plan.total_tasks() <= MAX_CHUNK_TASKS {
        chunk_graph(p, plan)
    } else {
        stage_graph(p, plan)
    }
}

fn header(kind: &str) -> String {
    format!("digraph {kind} {{\n  rankdir=LR;\n  node [style=filled, fontname=\"monospace\"];\n")
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "'")
}

/// The output path each write stage writes.
fn stage_paths(p: &Program, plan: &Plan) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (k, st) in plan.stages.iter().enumerate() {
        // Reduction and label stages have no sinks.
        let Some(first) = st.sinks.first() else {
            continue;
        };
        if let SinkKind::Write(w) = &p.sinks[*first].kind {
            m.insert(w.path.clone(), k);
        }
    }
    m
}

fn chunk_graph(p: &Program, plan: &Plan) -> String {
    let mut out = header("chunks");
    let paths = stage_paths(p, plan);
    // (stage, flat chunk) -> task node name
    let mut task_of: BTreeMap<(usize, u64), String> = BTreeMap::new();
    for (k, st) in plan.stages.iter().enumerate() {
        for local in 0..st.tasks {
            task_of.insert((k, st.chunk_at(local)), format!("t{k}_{local}"));
        }
    }
    let mut inputs: BTreeMap<String, String> = BTreeMap::new();
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for (k, st) in plan.stages.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let _ = writeln!(
            out,
            "  subgraph cluster_{k} {{\n    label=\"stage {k}: {}\";\n    style=filled;\n    color=\"#eeeeee\";",
            quote(&st.name)
        );
        for local in 0..st.tasks {
            let name = format!("t{k}_{local}");
            let read = task_reads(p, st, local);
            let label = match &st.kind {
                StageKind::Write { grid, .. } => {
                    format!("chunk {}", fmt_shape(&grid.unflatten(st.chunk_at(local))))
                }
                StageKind::Reduce { .. } => format!("partial {local}"),
                StageKind::Label { grid, .. } => {
                    format!("scan chunk {}", fmt_shape(&grid.unflatten(local)))
                }
                StageKind::Props { grid } => {
                    format!("measure chunk {}", fmt_shape(&grid.unflatten(local)))
                }
                StageKind::Values => "values".to_string(),
            };
            let _ = writeln!(
                out,
                "    {name} [label=\"{}\", shape=box, fillcolor=\"{colour}\"];",
                quote(&label)
            );
            for (z, r) in read {
                let Op::Zarr { path } = &p.node(z).op else {
                    continue;
                };
                let t = p.ty(z);
                let grid = ChunkGrid::new(t.shape.clone(), t.chunks.clone());
                for idx in iter_box(&grid.chunks_touching(&r)) {
                    let flat = grid.flatten(&idx);
                    let from = match paths.get(path).and_then(|s| task_of.get(&(*s, flat))) {
                        Some(task) => task.clone(),
                        None => {
                            let id = format!("in{}_{flat}", z.0);
                            inputs
                                .entry(id.clone())
                                .or_insert(format!("{path} {}", fmt_shape(&idx)));
                            id
                        }
                    };
                    edges.insert((from, name.clone()));
                }
            }
        }
        out.push_str("  }\n");
    }
    for (id, label) in &inputs {
        let _ = writeln!(
            out,
            "  {id} [label=\"{}\", shape=cylinder, fillcolor=\"white\"];",
            quote(label)
        );
    }
    for (a, b) in &edges {
        let _ = writeln!(out, "  {a} -> {b};");
    }
    out.push_str("}\n");
    out
}

fn stage_graph(p: &Program, plan: &Plan) -> String {
    let mut out = header("stages");
    let paths = stage_paths(p, plan);
    let mut inputs: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (k, st) in plan.stages.iter().enumerate() {
        let _ = writeln!(
            out,
            "  s{k} [label=\"stage {k}: {}\\n{} task{}\", shape=box, fillcolor=\"{}\"];",
            quote(&st.name),
            st.tasks,
            if st.tasks == 1 { "" } else { "s" },
            COLOURS[k % COLOURS.len()]
        );
        for si in &st.sinks {
            let mut seen = vec![false; p.nodes.len()];
            let mut order = Vec::new();
            p.post_order(p.sinks[*si].node, &mut seen, &mut order);
            for id in order {
                if let Op::Zarr { path } = &p.node(id).op {
                    if !paths.contains_key(path) {
                        inputs.entry(path.clone()).or_default().insert(k);
                    }
                }
            }
        }
    }
    for (n, (path, users)) in inputs.iter().enumerate() {
        let _ = writeln!(
            out,
            "  in{n} [label=\"{}\", shape=cylinder, fillcolor=\"white\"];",
            quote(path)
        );
        for k in users {
            let _ = writeln!(out, "  in{n} -> s{k};");
        }
    }
    let mut edges: Vec<(usize, usize)> = plan
        .graph
        .edge_indices()
        .filter_map(|e| plan.graph.edge_endpoints(e))
        .map(|(a, b)| (a.index(), b.index()))
        .collect();
    edges.sort_unstable();
    for (a, b) in edges {
        let _ = writeln!(out, "  s{a} -> s{b};");
    }
    out.push_str("}\n");
    out
}
