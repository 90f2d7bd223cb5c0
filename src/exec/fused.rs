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

/// An input of the kernel: a dense buffer of the region, or a broadcast read through
/// strides (0 along broadcast axes) without being expanded to the region's size.
pub enum Operand {
    Dense(Buf),
    Strided {
        src: Buf,
        /// Per axis of the region, the step in `src` (0 where the value repeats).
        strides: Vec<isize>,
        shape: Vec<u64>,
    },
}

impl Operand {
    /// The operand as a dense buffer of the region.
    fn to_dense(&self) -> Buf {
        match self {
            Operand::Dense(b) => b.clone(),
            Operand::Strided {
                src,
                strides,
                shape,
            } => super::layout::gather(src, 0, strides, shape),
        }
    }

    /// Copy elements `start .. start + m` (flat, C order over the region) into `dst`.
    fn copy_into(&self, dst: &mut Buf, start: usize, m: usize) {
        match self {
            Operand::Dense(b) => dst.copy_range(0, b, start, m),
            Operand::Strided {
                src,
                strides,
                shape,
            } => super::layout::gather_range(dst, src, strides, shape, start, m),
        }
    }
}

pub fn run(expr: &FusedExpr, inputs: &[Operand], out_dtype: DType, n: usize) -> Buf {
    let last = expr.instrs.len() - 1;
    if let Instr::Input(k, _) = expr.instrs[last] {
        return inputs[k].to_dense();
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
    // Filled tile by tile, in order: no zero-fill of the chunk-sized output first.
    let mut out = Buf::with_capacity(out_dtype, n);
    let mut start = 0;
    while start < n {
        let m = tile.min(n - start);
        for (i, ins) in expr.instrs.iter().enumerate() {
            let (before, rest) = regs.split_at_mut(i);
            let dst = &mut rest[0];
            match ins {
                Instr::Input(k, _) => inputs[*k].copy_into(dst, start, m),
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
        out.extend_from(&regs[last], 0, m);
        start += m;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_operands_equal_their_gathered_copies() {
        // Broadcasts over [3, 4, 5] of a per-frame scale, a row, a plane and a column:
        // every start and length must match the materialised gather.
        let shape = vec![3u64, 4, 5];
        let cases: Vec<(Buf, Vec<isize>)> = vec![
            (Buf::F64(vec![1.0, 2.0, 3.0]), vec![1, 0, 0]),
            (Buf::I32((0..5).collect()), vec![0, 0, 1]),
            (Buf::U16((0..20).collect()), vec![0, 5, 1]),
            (Buf::U8((0..4).collect()), vec![0, 1, 0]),
        ];
        for (src, strides) in cases {
            let op = Operand::Strided {
                src: src.clone(),
                strides: strides.clone(),
                shape: shape.clone(),
            };
            let dense = op.to_dense();
            for start in 0..60 {
                for m in [1, 3, 5, 7, 60 - start] {
                    let m = m.min(60 - start);
                    let mut dst = Buf::zeros(src.dtype(), m);
                    op.copy_into(&mut dst, start, m);
                    let mut want = Buf::zeros(src.dtype(), m);
                    want.copy_range(0, &dense, start, m);
                    assert_eq!(dst, want, "{strides:?} start {start} len {m}");
                }
            }
        }
    }
}
