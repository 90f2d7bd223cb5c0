//! Evaluates elementwise ops whose inputs are all constants into one constant, so
//! `x * (2 + 1)` and `zeros(s) + 1` cost nothing per element.

use super::{is_const, Pass};
use crate::data::Buf;
use crate::exec::elementwise;
use crate::ir::{Op, Program};

pub struct FoldConstants;

fn value(p: &Program, id: crate::ir::NodeId) -> &Buf {
    match &p.node(id).op {
        Op::Fill { value } => value,
        _ => unreachable!("not a constant"),
    }
}

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold_constants"
    }

    fn run(&self, p: &mut Program) -> bool {
        let mut changed = false;
        for i in 0..p.nodes.len() {
            let n = &p.nodes[i];
            if !(n.op.is_elementwise() || matches!(n.op, Op::Broadcast { .. })) {
                continue;
            }
            let inputs = n.op.inputs();
            if inputs.is_empty() || !inputs.iter().all(|x| is_const(p, *x)) {
                continue;
            }
            let mut out = Buf::zeros(n.ty.dtype, 1);
            match &n.op {
                Op::Unary { op, x } => elementwise::unary(*op, value(p, *x), &mut out, 1),
                Op::Binary { op, a, b } => {
                    elementwise::binary(*op, value(p, *a), value(p, *b), &mut out, 1)
                }
                Op::Where { cond, a, b } => {
                    elementwise::select(value(p, *cond), value(p, *a), value(p, *b), &mut out, 1)
                }
                Op::Cast { x } => elementwise::cast(value(p, *x), &mut out, 1),
                Op::Broadcast { x } => out = value(p, *x).clone(),
                _ => continue,
            }
            p.nodes[i].op = Op::Fill { value: out };
            changed = true;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::print_program;

    #[test]
    fn folds_constant_subtrees() {
        let mut p = crate::opt::tests::lower(
            "let x = zeros((3,), dtype=\"i32\")\nlet y = x + 1\n(y * 2).write(\"OUT\")",
        );
        assert!(FoldConstants.run(&mut p));
        super::super::EliminateDead.run(&mut p);
        insta::assert_snapshot!(print_program(&p), @r#"
        %0 = fill(2) : i32[3] chunks [3]
        write "OUT" <- %0 chunks [3] codec zstd
        "#);
    }
}
