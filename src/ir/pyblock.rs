//! Block arithmetic of `Op::PyBlock`: which input block (and halo) each output block of a
//! Python block function comes from. Bounds inference, the planner's estimates and the
//! runtime all use these rules, so they agree on what a block is.

use super::{ArrayType, Boundary, PyBlock};
use crate::geom::{ChunkGrid, Region};

impl PyBlock {
    /// The output's block grid (its chunks are the blocks).
    pub fn out_grid(out: &ArrayType) -> ChunkGrid {
        ChunkGrid::new(out.shape.clone(), out.chunks.clone())
    }

    /// The input block (without halo) output block `idx` is computed from.
    pub fn input_block(&self, input: &ArrayType, idx: &[u64]) -> Region {
        let nd = input.ndim();
        let mut start = vec![0; nd];
        let mut end = input.shape.clone();
        for (o, a) in self.axis_of.iter().enumerate() {
            if let Some(a) = a {
                let c = input.chunks[*a];
                start[*a] = (idx[o] * c).min(input.shape[*a]);
                end[*a] = ((idx[o] + 1) * c).min(input.shape[*a]);
            }
        }
        Region::new(start, end)
    }

    /// The region of the input read for `block` (an input block): grown by the halo,
    /// clipped to the array (the boundary mode supplies the rest), or the whole axis when
    /// `wrap` reaches past an edge.
    pub fn read_region(&self, input: &ArrayType, block: &Region) -> Region {
        let mut r = block.grow_clamped(&self.halo, &input.shape);
        if self.boundary == Boundary::Wrap {
            for (a, n) in input.shape.iter().enumerate() {
                let h = self.halo[a];
                if block.start[a] < h || block.end[a] + h > *n {
                    r.start[a] = 0;
                    r.end[a] = *n;
                }
            }
        }
        r
    }

    /// The shape the function must return for an input block of shape `grown` (its halo
    /// included): the declared block length, or the block's own (trimmed afterwards).
    pub fn expected_shape(&self, grown: &[u64]) -> Vec<u64> {
        self.axis_of
            .iter()
            .zip(&self.block)
            .map(|(a, b)| match (a, b) {
                (_, Some(n)) => *n,
                (Some(a), None) => grown[*a],
                (None, None) => 1,
            })
            .collect()
    }

    /// The input region bounds inference reads for `region` of the output: the input
    /// blocks of every output block the region touches, with their halo.
    pub fn input_region(&self, input: &ArrayType, out: &ArrayType, region: &Region) -> Region {
        let grid = Self::out_grid(out);
        let touched = grid.chunks_touching(region);
        let last: Vec<u64> = touched.end.iter().map(|e| e.saturating_sub(1)).collect();
        let lo = self.input_block(input, &touched.start);
        let hi = self.input_block(input, &last);
        let span = Region::new(lo.start, hi.end);
        self.read_region(input, &span)
    }
}
