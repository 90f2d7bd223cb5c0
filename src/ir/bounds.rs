//! Bounds inference for one op: which region of each input computing a region of the
//! node's output reads. The runtime's pull-based evaluation reads exactly these regions;
//! the optimizer (`prune_to_regions`) and the planner's chunk graph use the same rule to
//! reason about them before anything runs.

use super::{AxisIndex, Boundary, NodeId, Op, Program};
use crate::geom::Region;

/// The region of every input of `id` that computing `region` of its output reads, in
/// input order (an input read twice appears twice). Regions are clipped to the input's
/// shape; a stencil with `wrap` that reaches past an edge reads that whole axis (the far
/// side wraps around), as a bounding box.
pub fn input_regions(p: &Program, id: NodeId, region: &Region) -> Vec<(NodeId, Region)> {
    let node = p.node(id);
    if region.is_empty() {
        return node
            .op
            .inputs()
            .into_iter()
            .map(|i| {
                (
                    i,
                    Region::new(vec![0; p.ty(i).ndim()], vec![0; p.ty(i).ndim()]),
                )
            })
            .collect();
    }
    match &node.op {
        Op::Zarr { .. }
        | Op::Images { .. }
        | Op::Fill { .. }
        | Op::Arange { .. }
        | Op::Random { .. } => vec![],
        // Elementwise inputs (and a fused kernel's, broadcast beforehand) have the
        // node's shape: element i reads element i.
        Op::Unary { .. }
        | Op::Binary { .. }
        | Op::Where { .. }
        | Op::Cast { .. }
        | Op::Fused { .. } => node
            .op
            .inputs()
            .into_iter()
            .map(|i| (i, region.clone()))
            .collect(),
        Op::Stencil {
            x, halo, boundary, ..
        } => {
            let shape = &p.ty(*x).shape;
            let mut r = region.grow_clamped(halo, shape);
            if *boundary == Boundary::Wrap {
                for (a, n) in shape.iter().enumerate() {
                    let h = halo.get(a).copied().unwrap_or(0);
                    if region.start[a] < h || region.end[a] + h > *n {
                        r.start[a] = 0;
                        r.end[a] = *n;
                    }
                }
            }
            vec![(*x, r)]
        }
        Op::Broadcast { x } => {
            let xs = &p.ty(*x).shape;
            let off = region.ndim() - xs.len();
            let mut start = Vec::with_capacity(xs.len());
            let mut end = Vec::with_capacity(xs.len());
            for (j, d) in xs.iter().enumerate() {
                let a = j + off;
                if *d == 1 && node.ty.shape[a] != 1 {
                    start.push(0);
                    end.push(1);
                } else {
                    start.push(region.start[a]);
                    end.push(region.end[a]);
                }
            }
            vec![(*x, Region::new(start, end))]
        }
        Op::Index { x, axes } => {
            let mut start = Vec::new();
            let mut end = Vec::new();
            let mut oax = 0usize;
            for a in axes {
                match a {
                    AxisIndex::Range { start: s, step, .. } => {
                        let i0 = *s as i64 + step * region.start[oax] as i64;
                        let i1 = *s as i64 + step * (region.end[oax] as i64 - 1);
                        start.push(i0.min(i1) as u64);
                        end.push(i0.max(i1) as u64 + 1);
                        oax += 1;
                    }
                    AxisIndex::Int(i) => {
                        start.push(*i);
                        end.push(*i + 1);
                    }
                    AxisIndex::NewAxis => oax += 1,
                }
            }
            vec![(*x, Region::new(start, end))]
        }
        // A reduction's stage reads all of its input.
        Op::Reduce { x, .. } => vec![(*x, Region::full(&p.ty(*x).shape))],
        // Labels of a region relabel the mask's chunks the region touches (the scan
        // stage has read all of it).
        Op::Label { x, .. } => {
            let t = p.ty(*x);
            let grid = crate::geom::ChunkGrid::new(t.shape.clone(), t.chunks.clone());
            let touched = grid.chunks_touching(region);
            let start: Vec<u64> = touched
                .start
                .iter()
                .zip(&t.chunks)
                .map(|(i, c)| i * c)
                .collect();
            let end: Vec<u64> = touched
                .end
                .iter()
                .zip(&t.chunks)
                .zip(&t.shape)
                .map(|((i, c), n)| (i * c).min(*n))
                .collect();
            vec![(*x, Region::new(start, end))]
        }
        Op::Transpose { x, perm } => {
            let nd = perm.len();
            let (mut start, mut end) = (vec![0; nd], vec![0; nd]);
            for (i, a) in perm.iter().enumerate() {
                start[*a] = region.start[i];
                end[*a] = region.end[i];
            }
            vec![(*x, Region::new(start, end))]
        }
        Op::Reshape { x } => {
            let (r, _) = crate::geom::reshape_input_box(&p.ty(*x).shape, &node.ty.shape, region);
            vec![(*x, r)]
        }
        Op::Rechunk { x } => vec![(*x, region.clone())],
        Op::Concat { inputs, axis } => {
            let mut off = 0;
            let mut out = Vec::new();
            for i in inputs {
                let len = p.ty(*i).shape[*axis];
                let lo = region.start[*axis].max(off).min(off + len);
                let hi = region.end[*axis].min(off + len).max(lo);
                let mut r = region.clone();
                r.start[*axis] = lo - off;
                r.end[*axis] = hi - off;
                out.push((*i, r));
                off += len;
            }
            out
        }
        // Output element i reads the block i*f .. (i+1)*f, clipped at the array's end
        // (past it lie the zeros a partial block is padded with).
        Op::Coarsen { x, factors, .. } => {
            let shape = &p.ty(*x).shape;
            let (start, end) = (0..region.ndim())
                .map(|a| {
                    let f = factors[a];
                    let s = region.start[a].saturating_mul(f).min(shape[a]);
                    (s, region.end[a].saturating_mul(f).min(shape[a]))
                })
                .unzip();
            vec![(*x, Region::new(start, end))]
        }
        Op::Fft { x, axis, .. } => {
            let mut r = region.clone();
            r.start[*axis] = 0;
            r.end[*axis] = p.ty(*x).shape[*axis];
            vec![(*x, r)]
        }
        Op::PyBlock(b) => vec![(b.x, b.input_region(p.ty(b.x), &node.ty, region))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;
    use crate::dtype::DType;
    use crate::ir::{ArrayType, Kernel, KernelKind};

    fn ty(shape: &[u64]) -> ArrayType {
        ArrayType {
            dtype: DType::F32,
            shape: shape.to_vec(),
            chunks: shape.to_vec(),
        }
    }

    #[test]
    fn stencils_grow_and_wrap_reads_the_far_side() {
        let mut p = Program::default();
        let span = Span::default();
        let x = p.add(Op::Random { seed: 0 }, ty(&[100, 100]), span);
        let k = Kernel {
            kind: KernelKind::Uniform,
            params: vec![5.0],
            truncate: 4.0,
            axis: 0,
            unit: None,
        };
        let s = p.add(
            Op::Stencil {
                x,
                kernel: k.clone(),
                halo: vec![2, 2],
                boundary: Boundary::Reflect,
            },
            ty(&[100, 100]),
            span,
        );
        let w = p.add(
            Op::Stencil {
                x,
                kernel: k,
                halo: vec![2, 2],
                boundary: Boundary::Wrap,
            },
            ty(&[100, 100]),
            span,
        );
        let r = Region::new(vec![0, 10], vec![10, 20]);
        assert_eq!(
            input_regions(&p, s, &r),
            vec![(x, Region::new(vec![0, 8], vec![12, 22]))]
        );
        assert_eq!(
            input_regions(&p, w, &r),
            vec![(x, Region::new(vec![0, 8], vec![100, 22]))]
        );
    }
}
