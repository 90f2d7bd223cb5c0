//! How a reduction's work splits into tasks.

use crate::geom::{ChunkGrid, Region};

/// How a reduction's work is split into tasks: one per (output block, group of chunks
/// along the reduced axes). Both counts depend only on shapes, never on the workers, so
/// the order partials combine in (and the result) is fixed.
#[derive(Clone, Debug)]
pub struct Split {
    /// The input's chunk grid.
    pub grid: ChunkGrid,
    pub reduced: Vec<bool>,
    /// Output blocks: the grid over the kept axes.
    pub blocks: u64,
    /// Chunks along the reduced axes per block, and how many groups they form.
    pub per_block: u64,
    pub groups: u64,
}

impl Split {
    /// Aim for at least 16 tasks, and at most `max_partial_bytes` of partials alive.
    pub fn new(
        grid: ChunkGrid,
        reduced: Vec<bool>,
        lane_bytes: u64,
        max_partial_bytes: u64,
    ) -> Split {
        let g = grid.grid_shape();
        let blocks: u64 = g
            .iter()
            .zip(&reduced)
            .filter(|(_, r)| !**r)
            .map(|(n, _)| *n)
            .product();
        let per_block: u64 = g
            .iter()
            .zip(&reduced)
            .filter(|(_, r)| **r)
            .map(|(n, _)| *n)
            .product();
        let block_lanes: u64 = grid
            .chunks
            .iter()
            .zip(&reduced)
            .filter(|(_, r)| !**r)
            .map(|(c, _)| *c)
            .product();
        let want = 16u64.div_ceil(blocks.max(1));
        let fit =
            (max_partial_bytes / (blocks.max(1) * block_lanes.max(1) * lane_bytes).max(1)).max(1);
        let groups = want.min(fit).clamp(1, per_block.max(1));
        Split {
            grid,
            reduced,
            blocks,
            per_block,
            groups,
        }
    }

    pub fn tasks(&self) -> u64 {
        self.blocks * self.groups
    }

    /// The output block (region over the kept axes) of task `t`, and the chunks (grid
    /// indices) it folds, in order.
    pub fn task(&self, t: u64) -> (Region, Vec<Vec<u64>>) {
        let (b, grp) = (t / self.groups, t % self.groups);
        let g = self.grid.grid_shape();
        let kept: Vec<u64> = g
            .iter()
            .zip(&self.reduced)
            .filter(|(_, r)| !**r)
            .map(|(n, _)| *n)
            .collect();
        let red: Vec<u64> = g
            .iter()
            .zip(&self.reduced)
            .filter(|(_, r)| **r)
            .map(|(n, _)| *n)
            .collect();
        let bidx = unflatten(&kept, b);
        let lo = self.per_block * grp / self.groups;
        let hi = self.per_block * (grp + 1) / self.groups;
        let chunks = (lo..hi)
            .map(|r| {
                let ridx = unflatten(&red, r);
                let (mut k, mut q) = (0, 0);
                (0..g.len())
                    .map(|a| {
                        if self.reduced[a] {
                            q += 1;
                            ridx[q - 1]
                        } else {
                            k += 1;
                            bidx[k - 1]
                        }
                    })
                    .collect()
            })
            .collect();
        let (mut start, mut end) = (Vec::new(), Vec::new());
        for (k, a) in (0..g.len()).filter(|a| !self.reduced[*a]).enumerate() {
            let c = self.grid.chunks[a];
            start.push(bidx[k] * c);
            end.push((bidx[k] * c + c).min(self.grid.shape[a]));
        }
        (Region::new(start, end), chunks)
    }
}

fn unflatten(shape: &[u64], mut flat: u64) -> Vec<u64> {
    let mut idx = vec![0; shape.len()];
    for a in (0..shape.len()).rev() {
        idx[a] = flat % shape[a].max(1);
        flat /= shape[a].max(1);
    }
    idx
}
