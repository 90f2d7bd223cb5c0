//! Structural checks of a program: every input precedes its user, every sink points at a
//! node, elementwise nodes agree with their inputs' shapes. Run after every optimizer pass
//! in debug builds; a failure is a bug in Tessera, not in the script.

use super::{Op, Program};

pub fn verify(p: &Program) -> Result<(), String> {
    for (i, n) in p.nodes.iter().enumerate() {
        for input in n.op.inputs() {
            if input.index() >= i {
                return Err(format!(
                    "node %{i} reads %{} which does not precede it",
                    input.0
                ));
            }
        }
        if n.ty.shape.len() != n.ty.chunks.len() {
            return Err(format!("node %{i} has shape and chunks of different rank"));
        }
        if n.ty.chunks.contains(&0) {
            return Err(format!("node %{i} has a zero chunk size"));
        }
        if n.op.is_elementwise() && !matches!(n.op, Op::Fused { .. }) {
            for input in n.op.inputs() {
                if p.ty(input).shape != n.ty.shape {
                    return Err(format!(
                        "elementwise node %{i} has input %{} of another shape",
                        input.0
                    ));
                }
            }
        }
    }
    for s in &p.sinks {
        if s.node.index() >= p.nodes.len() {
            return Err("a sink points past the arena".into());
        }
    }
    Ok(())
}
