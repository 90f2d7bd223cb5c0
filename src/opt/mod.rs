//! The optimizer: a list of passes, each in its own file behind the `Pass` trait, run in
//! order until none changes the program. Passes query op properties (elementwise,
//! footprint, cost), never builtin names. In debug builds the program is verified after
//! every pass and each sink's dtype and shape must survive.

mod eliminate_common;
mod eliminate_dead;
mod fold_constants;
mod fuse_elementwise;
mod merge_halos;
mod prune_to_regions;
mod stage_rechunk;

pub use eliminate_common::EliminateCommon;
pub use eliminate_dead::EliminateDead;
pub use fold_constants::FoldConstants;
pub use fuse_elementwise::FuseElementwise;
pub use merge_halos::MergeHalos;
pub use prune_to_regions::PruneToRegions;
pub use stage_rechunk::StageRechunk;

use crate::ir::{print_program, verify::verify, NodeId, Op, Program};

pub trait Pass {
    /// The pass's name, equal to its file name.
    fn name(&self) -> &'static str;
    /// Rewrite the program (or record decisions in `Program::notes`); return whether
    /// anything changed.
    fn run(&self, p: &mut Program) -> bool;
    /// What `--explain` shows after the pass changed something: the program by default;
    /// passes that only record decisions show those.
    fn describe(&self, _p: &Program) -> Option<String> {
        None
    }
}

/// The pipeline, in order. Fusion comes after the rewrites so they see single ops;
/// `stage_rechunk` adds an intermediate write, so it runs before the analyses, which come last and only record decisions (`Program::notes`) about the final nodes.
pub fn pipeline() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(FoldConstants),
        Box::new(EliminateCommon),
        Box::new(EliminateDead),
        Box::new(FuseElementwise),
        Box::new(EliminateDead),
        Box::new(StageRechunk),
        Box::new(MergeHalos),
        Box::new(PruneToRegions),
    ]
}

/// One step of the optimizer's trace (for `tessera plan --explain`).
#[derive(Clone, Debug)]
pub struct TraceStep {
    pub pass: &'static str,
    pub changed: bool,
    pub program: String,
}

/// Run the pipeline to a fixpoint (bounded), returning the trace of every pass run.
pub fn optimize(p: &mut Program) -> Vec<TraceStep> {
    let passes = pipeline();
    let mut trace = vec![TraceStep {
        pass: "lowered",
        changed: true,
        program: print_program(p),
    }];
    let sink_types: Vec<_> = p.sinks.iter().map(|s| p.ty(s.node).clone()).collect();
    for _round in 0..4 {
        let mut any = false;
        for pass in &passes {
            let changed = pass.run(p);
            any |= changed;
            if cfg!(debug_assertions) {
                if let Err(e) = verify(p) {
                    panic!("bug: IR invalid after pass {}: {e}", pass.name());
                }
                for (s, t) in p.sinks.iter().zip(&sink_types) {
                    let now = p.ty(s.node);
                    assert!(
                        now.dtype == t.dtype && now.shape == t.shape,
                        "bug: pass {} changed a sink's type",
                        pass.name()
                    );
                }
            }
            trace.push(TraceStep {
                pass: pass.name(),
                changed,
                program: if changed {
                    pass.describe(p).unwrap_or_else(|| print_program(p))
                } else {
                    String::new()
                },
            });
        }
        if !any {
            break;
        }
    }
    if cfg!(debug_assertions) {
        let live = p.live_nodes();
        let notes = &p.notes;
        for id in notes.halos.keys().chain(notes.needed.keys()) {
            assert!(live.contains(id), "bug: a note refers to dead node {id}");
        }
    }
    trace
}

/// Replace the arena by `order` (a topological order of the live nodes), renumbering
/// inputs, sinks and notes.
pub(crate) fn renumber(p: &mut Program, order: &[NodeId]) {
    let mut new_id = vec![None; p.nodes.len()];
    for (k, id) in order.iter().enumerate() {
        new_id[id.index()] = Some(NodeId(k as u32));
    }
    let nodes: Vec<_> = order
        .iter()
        .map(|id| {
            let mut n = p.nodes[id.index()].clone();
            n.op.map_inputs(|x| new_id[x.index()].expect("input precedes user"));
            n
        })
        .collect();
    p.nodes = nodes;
    for s in p.sinks.iter_mut() {
        s.node = new_id[s.node.index()].expect("sink is live");
    }
    p.notes.remap(&new_id);
}

/// Redirect every use of `from` (inputs and sinks) to `to`.
pub(crate) fn replace_uses(p: &mut Program, from: NodeId, to: NodeId) {
    for n in p.nodes.iter_mut() {
        n.op.map_inputs(|i| if i == from { to } else { i });
    }
    for s in p.sinks.iter_mut() {
        if s.node == from {
            s.node = to;
        }
    }
}

/// Is the node a constant (a `Fill`)?
pub(crate) fn is_const(p: &Program, id: NodeId) -> bool {
    matches!(p.node(id).op, Op::Fill { .. })
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::ir::Program;

    /// Lower a small script for pass tests (panics on errors: test scripts are valid).
    pub fn lower(src: &str) -> Program {
        let mut e = crate::Engine::new();
        match e.lower_script("test.tsr", src) {
            Ok(p) => p,
            Err(d) => panic!("{}", e.render(&d, false)),
        }
    }
}
