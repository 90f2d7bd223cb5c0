//! Turns each maximal tree of elementwise ops into one `Fused` node: a register program
//! run tile by tile over a chunk, so a chain of N operators costs one pass over memory
//! and no buffer per operator. Constants become immediates; everything that is not
//! elementwise (sources, stencils, broadcasts, indexing) becomes an input of the kernel.

use super::Pass;
use crate::ir::{FusedExpr, Instr, NodeId, Op, Program};
use std::collections::HashMap;

pub struct FuseElementwise;

/// Is the node fusable into a consumer's kernel?
fn fusable(op: &Op) -> bool {
    op.is_elementwise() && !matches!(op, Op::Fused { .. })
}

struct Builder<'a> {
    p: &'a Program,
    instrs: Vec<Instr>,
    inputs: Vec<NodeId>,
    regs: HashMap<NodeId, usize>,
    /// Position of each node in `inputs`.
    input_pos: HashMap<NodeId, usize>,
    /// Roots already fused: read as their kernel's output, not recomputed.
    done: &'a HashMap<NodeId, NodeId>,
}

impl Builder<'_> {
    fn emit(&mut self, i: Instr) -> usize {
        self.instrs.push(i);
        self.instrs.len() - 1
    }

    /// The register holding node `id`'s value, emitting instructions as needed.
    fn reg(&mut self, id: NodeId) -> usize {
        if let Some(r) = self.regs.get(&id) {
            return *r;
        }
        // Iterative post-order: deep chains must not overflow the stack.
        let mut stack = vec![(id, false)];
        while let Some((n, ready)) = stack.pop() {
            if self.regs.contains_key(&n) {
                continue;
            }
            let node = self.p.node(n);
            let dt = node.ty.dtype;
            if let Some(&f) = self.done.get(&n) {
                let k = *self.input_pos.entry(f).or_insert_with(|| {
                    self.inputs.push(f);
                    self.inputs.len() - 1
                });
                let r = self.emit(Instr::Input(k, dt));
                self.regs.insert(n, r);
                continue;
            }
            if !fusable(&node.op) {
                let r = match &node.op {
                    Op::Fill { value } => self.emit(Instr::Const(value.clone())),
                    _ => {
                        let k = *self.input_pos.entry(n).or_insert_with(|| {
                            self.inputs.push(n);
                            self.inputs.len() - 1
                        });
                        self.emit(Instr::Input(k, dt))
                    }
                };
                self.regs.insert(n, r);
                continue;
            }
            if !ready {
                stack.push((n, true));
                for i in node.op.inputs().into_iter().rev() {
                    if !self.regs.contains_key(&i) {
                        stack.push((i, false));
                    }
                }
                continue;
            }
            let r = |b: &Self, i: &NodeId| b.regs[i];
            let ins = match &node.op {
                Op::Unary { op, x } => Instr::Unary(*op, r(self, x), dt),
                Op::Binary { op, a, b } => Instr::Binary(*op, r(self, a), r(self, b), dt),
                Op::Where { cond, a, b } => Instr::Where(r(self, cond), r(self, a), r(self, b), dt),
                Op::Cast { x } => Instr::Cast(r(self, x), dt),
                _ => unreachable!("not fusable"),
            };
            let reg = self.emit(ins);
            self.regs.insert(n, reg);
        }
        self.regs[&id]
    }
}

impl Pass for FuseElementwise {
    fn name(&self) -> &'static str {
        "fuse_elementwise"
    }

    fn run(&self, p: &mut Program) -> bool {
        // Roots: fusable nodes read by a sink or by a node that is not fused into them.
        let live = p.live_nodes();
        let mut is_root = vec![false; p.nodes.len()];
        for s in &p.sinks {
            is_root[s.node.index()] = true;
        }
        for id in &live {
            let op = &p.node(*id).op;
            if !fusable(op) {
                for i in op.inputs() {
                    is_root[i.index()] = true;
                }
            }
        }
        let roots: Vec<NodeId> = live
            .iter()
            .copied()
            .filter(|id| is_root[id.index()] && fusable(&p.node(*id).op))
            .collect();
        if roots.is_empty() {
            return false;
        }
        // Each root is replaced by its kernel: uses are redirected once, at the end.
        let mut fused_of: HashMap<NodeId, NodeId> = HashMap::with_capacity(roots.len());
        for root in roots {
            let mut b = Builder {
                p,
                instrs: Vec::new(),
                inputs: Vec::new(),
                regs: HashMap::new(),
                input_pos: HashMap::new(),
                done: &fused_of,
            };
            let out = b.reg(root);
            debug_assert_eq!(out, b.instrs.len() - 1);
            let (instrs, inputs) = (b.instrs, b.inputs);
            let n = p.node(root);
            let (ty, span) = (n.ty.clone(), n.span);
            // The fused node is appended after its inputs, then takes the root's place.
            let id = p.add(
                Op::Fused {
                    inputs,
                    expr: FusedExpr { instrs },
                },
                ty,
                span,
            );
            fused_of.insert(root, id);
        }
        let redirect = |i: NodeId| fused_of.get(&i).copied().unwrap_or(i);
        for n in p.nodes.iter_mut() {
            n.op.map_inputs(redirect);
        }
        for s in p.sinks.iter_mut() {
            s.node = redirect(s.node);
        }
        // Appended nodes may precede their users' positions; restore arena order.
        reorder(p);
        true
    }
}

/// Re-sort the arena topologically (inputs first), renumbering ids.
fn reorder(p: &mut Program) {
    let mut seen = vec![false; p.nodes.len()];
    let mut order = Vec::new();
    for s in &p.sinks {
        p.post_order(s.node, &mut seen, &mut order);
    }
    super::renumber(p, &order);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::print_program;

    #[test]
    fn fuses_a_chain_into_one_kernel() {
        let mut p = crate::opt::tests::lower(
            "let x = arange(8, dtype=\"u16\")\nlet y = (x + 1) * 2 - x\nsqrt(y).write(\"OUT\")",
        );
        assert!(FuseElementwise.run(&mut p));
        insta::assert_snapshot!(print_program(&p), @r#"
        %0 = arange(start=0.0, step=1.0) : u16[8] chunks [8]
        %1 = fused(%0) { r0=in0; r1=1; r2=add(r0, r1); r3=2; r4=mul(r2, r3); r5=sub(r4, r0); r6=f32(r5); r7=sqrt(r6) } : f32[8] chunks [8]
        write "OUT" <- %1 chunks [8] codec zstd
        "#);
    }
}
