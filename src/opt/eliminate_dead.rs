//! Removes nodes no sink reads and compacts the arena, renumbering ids in order.

use super::Pass;
use crate::ir::{NodeId, Program};

pub struct EliminateDead;

impl Pass for EliminateDead {
    fn name(&self) -> &'static str {
        "eliminate_dead"
    }

    fn run(&self, p: &mut Program) -> bool {
        let mut live = vec![false; p.nodes.len()];
        let mut walk = Vec::new();
        for s in &p.sinks {
            p.post_order(s.node, &mut live, &mut walk);
        }
        if live.iter().all(|l| *l) {
            return false;
        }
        // Keep arena order (inputs always precede users), renumber densely.
        let order: Vec<NodeId> = (0..p.nodes.len())
            .filter(|i| live[*i])
            .map(|i| NodeId(i as u32))
            .collect();
        super::renumber(p, &order);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::print_program;

    #[test]
    fn drops_unused_bindings() {
        let p = crate::opt::tests::lower(
            "let x = zeros((4, 4))\nlet unused = x * 3\n(x + 1).write(\"OUT\")",
        );
        let mut q = p.clone();
        assert!(EliminateDead.run(&mut q));
        insta::assert_snapshot!(print_program(&q), @r#"
        %0 = fill(0.0) : f32[4, 4] chunks [4, 4]
        %1 = fill(1.0) : f32[4, 4] chunks [4, 4]
        %2 = add(%0, %1) : f32[4, 4] chunks [4, 4]
        write "OUT" <- %2 chunks [4, 4] codec zstd
        "#);
    }
}
