//! Computes each distinct expression once: nodes with the same op, inputs and type are
//! merged (e.g. `x.max()` used twice, or the same `zarr(path)` opened twice).

use super::Pass;
use crate::ir::{NodeId, Program};
use std::collections::HashMap;

pub struct EliminateCommon;

impl Pass for EliminateCommon {
    fn name(&self) -> &'static str {
        "eliminate_common"
    }

    fn run(&self, p: &mut Program) -> bool {
        let mut seen: HashMap<String, NodeId> = HashMap::new();
        // Each node's representative; a node's inputs are redirected to theirs before its
        // key is made, so merged inputs make users equal too, in one pass.
        let mut rep: Vec<NodeId> = (0..p.nodes.len()).map(|i| NodeId(i as u32)).collect();
        let mut changed = false;
        // Arena order visits inputs before users.
        for i in 0..p.nodes.len() {
            if changed {
                p.nodes[i].op.map_inputs(|x| rep[x.index()]);
            }
            let n = &p.nodes[i];
            // Debug text is a faithful key: ops hold only ids, numbers and strings.
            let key = format!("{:?}|{:?}", n.op, n.ty);
            match seen.get(&key) {
                Some(&first) => {
                    rep[i] = first;
                    changed = true;
                }
                None => {
                    seen.insert(key, NodeId(i as u32));
                }
            }
        }
        if changed {
            for s in p.sinks.iter_mut() {
                s.node = rep[s.node.index()];
            }
            super::eliminate_dead::EliminateDead.run(p);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::print_program;

    #[test]
    fn merges_repeated_expressions() {
        let mut p = crate::opt::tests::lower(
            "let x = arange(10)\nlet a = x * 2\nlet b = x * 2\n(a + b).write(\"OUT\")",
        );
        assert!(EliminateCommon.run(&mut p));
        insta::assert_snapshot!(print_program(&p), @r#"
        %0 = arange(start=0.0, step=1.0) : i64[10] chunks [10]
        %1 = fill(2) : i64[10] chunks [10]
        %2 = mul(%0, %1) : i64[10] chunks [10]
        %3 = add(%2, %2) : i64[10] chunks [10]
        write "OUT" <- %3 chunks [10] codec zstd
        "#);
    }
}
