//! The fused elementwise kernel: runs a register program over a chunk in tiles of
//! `TILE` elements, so intermediate values live in small, cache-resident registers
//! instead of one chunk-sized buffer per operator.

use super::elementwise;
use super::sources::filled;
use crate::data::Buf;
use crate::dtype::DType;
use crate::ir::{FusedExpr, Instr};

/// Elements per tile: large enough to amortise dispatch, small enough for L1/L2.
pub const TILE: usize = 2048;

pub fn run(expr: &FusedExpr, inputs: &[Buf], out_dtype: DType, n: usize) -> Buf {
    let last = expr.instrs.len() - 1;
    if let Instr::Input(k, _) = expr.instrs[last] {
        return inputs[k].clone();
    }
    let tile = TILE.min(n.max(1));
    let mut regs: Vec<Buf> = expr
        .instrs
        .iter()
        .map(|i| match i {
            Instr::Const(v) => filled(v, tile),
            i => Buf::zeros(i.dtype(), tile),
        })
        .collect();
    let mut out = Buf::zeros(out_dtype, n);
    let mut start = 0;
    while start < n {
        let m = tile.min(n - start);
        for (i, ins) in expr.instrs.iter().enumerate() {
            let (before, rest) = regs.split_at_mut(i);
            let dst = &mut rest[0];
            match ins {
                Instr::Input(k, _) => dst.copy_range(0, &inputs[*k], start, m),
                Instr::Const(_) => {}
                Instr::Unary(op, x, _) => elementwise::unary(*op, &before[*x], dst, m),
                Instr::Binary(op, a, b, _) => {
                    elementwise::binary(*op, &before[*a], &before[*b], dst, m)
                }
                Instr::Where(c, a, b, _) => {
                    elementwise::select(&before[*c], &before[*a], &before[*b], dst, m)
                }
                Instr::Cast(x, _) => elementwise::cast(&before[*x], dst, m),
            }
        }
        out.copy_range(start, &regs[last], 0, m);
        start += m;
    }
    out
}
