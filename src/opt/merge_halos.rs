//! Decides how each chain of stencils (`x.map(gaussian(2)).map(median(3))`, also with
//! elementwise ops between them) is evaluated. Merged, the top stencil's task asks the
//! inner stencils for its region plus its halo, so the chain's inputs are read once with
//! the summed halo and the inner stencils are recomputed on the halo ring; materialised,
//! every inner stencil would be written out and read back with its consumer's halo. The
//! pass estimates both per output chunk from `Op::footprint` and `Op::cost_per_element`
//! and records the decision in `Program::notes` (the IR itself is unchanged).
//!
//! The runtime evaluates merged chains only, so a chain is always merged; when the
//! estimate says materialising would be cheaper, the note says so. That happens only
//! when the halo ring outweighs the chunk: recomputing costs the ring volume times the
//! inner chain's cost per element, materialising about
//! `(WRITE + READ) · itemsize · chunk volume`. For two `gaussian(1)` on f32 chunks of
//! 512² the recompute is about 0.2 M units against 3.2 M; stacks of wide stencils on
//! chunks smaller than their halo (ten `gaussian(5)` on 8² chunks) tip the other way.

use super::Pass;
use crate::ir::notes::HaloMerge;
use crate::ir::{NodeId, Program};
use std::collections::BTreeMap;

/// Cost of encoding and storing one byte of an intermediate, in the units of
/// `Op::cost_per_element` (reading an input costs the `Zarr` op's 4 per f32 element).
const WRITE_COST_PER_BYTE: f64 = 2.0;
/// Cost of reading back and decoding one byte of an intermediate.
const READ_COST_PER_BYTE: f64 = 1.0;

pub struct MergeHalos;

impl Pass for MergeHalos {
    fn name(&self) -> &'static str {
        "merge_halos"
    }

    fn run(&self, p: &mut Program) -> bool {
        let mut halos = BTreeMap::new();
        for id in p.live_nodes() {
            if p.node(id).op.footprint().is_some() {
                if let Some(m) = analyse(p, id) {
                    halos.insert(id, m);
                }
            }
        }
        let changed = halos != p.notes.halos;
        p.notes.halos = halos;
        changed
    }

    fn describe(&self, p: &Program) -> Option<String> {
        Some(crate::ir::notes::print_halo_notes(p))
    }
}

/// Elements of a box `chunk + 2·grow` per axis, clipped to the array.
fn volume(chunk: &[u64], shape: &[u64], grow: &[u64]) -> f64 {
    chunk
        .iter()
        .zip(shape)
        .zip(grow)
        .map(|((c, n), g)| (c + 2 * g).min(*n) as f64)
        .product()
}

fn max_into(dst: &mut Vec<u64>, src: &[u64]) {
    if dst.len() < src.len() {
        dst.resize(src.len(), 0);
    }
    for (a, b) in dst.iter_mut().zip(src) {
        *a = (*a).max(*b);
    }
}

/// The chain below stencil `top`, or `None` when no other stencil feeds it through
/// elementwise ops.
fn analyse(p: &Program, top: NodeId) -> Option<HaloMerge> {
    let ty = p.ty(top);
    let nd = ty.ndim();
    let shape = ty.shape.clone();
    let chunk: Vec<u64> = ty
        .chunks
        .iter()
        .zip(&shape)
        .map(|(c, n)| *c.min(n))
        .collect();
    let mut seen = vec![false; p.nodes.len()];
    let mut order = Vec::new();
    p.post_order(top, &mut seen, &mut order);
    let n = p.nodes.len();
    let mut member = vec![false; n];
    // Halo beyond the output chunk at which each node is evaluated: merged (`depth`) and
    // with every inner stencil materialised (`own`: the halo of the stencil right above).
    let mut depth: Vec<Vec<u64>> = vec![vec![0; nd]; n];
    let mut own: Vec<Vec<u64>> = vec![vec![0; nd]; n];
    member[top.index()] = true;
    let (mut inner, mut bases) = (Vec::new(), Vec::new());
    let (mut merged, mut split, mut io) = (0.0, 0.0, 0.0);
    let mut total = vec![0u64; nd];
    for &u in order.iter().rev() {
        if !member[u.index()] {
            continue;
        }
        let node = p.node(u);
        let stencil = node.op.footprint();
        let cost = node.op.cost_per_element();
        if u != top {
            merged += volume(&chunk, &shape, &depth[u.index()]) * cost;
            if stencil.is_some() {
                // Materialised: computed once per chunk in its own stage, written, and
                // read back by its consumer with the consumer's halo.
                let bytes = node.ty.dtype.size() as f64;
                split += volume(&chunk, &shape, &vec![0; nd]) * cost;
                io += bytes
                    * (volume(&chunk, &shape, &vec![0; nd]) * WRITE_COST_PER_BYTE
                        + volume(&chunk, &shape, &own[u.index()]) * READ_COST_PER_BYTE);
                inner.push(u);
            } else {
                split += volume(&chunk, &shape, &own[u.index()]) * cost;
            }
            if stencil.is_none() && !node.op.is_elementwise() {
                if !super::is_const(p, u) {
                    bases.push(u);
                }
                max_into(&mut total, &depth[u.index()]);
                continue;
            }
        }
        let h: Vec<u64> = stencil.map(<[u64]>::to_vec).unwrap_or_else(|| vec![0; nd]);
        for v in node.op.inputs() {
            if p.ty(v).ndim() != nd {
                // Not a same-shaped chain member (cannot happen for stencils and
                // elementwise ops); treat it as a base read at this depth.
                continue;
            }
            member[v.index()] = true;
            let d: Vec<u64> = depth[u.index()]
                .iter()
                .zip(&h)
                .map(|(a, b)| a + b)
                .collect();
            max_into(&mut depth[v.index()], &d);
            let o = if stencil.is_some() {
                h.clone()
            } else {
                own[u.index()].clone()
            };
            max_into(&mut own[v.index()], &o);
        }
    }
    if inner.is_empty() {
        return None;
    }
    bases.sort_unstable();
    Some(HaloMerge {
        inner,
        total_halo: total,
        bases,
        recompute: (merged - split).max(0.0),
        materialise: io,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_a_gaussian_chain_read_once() {
        let mut p = crate::opt::tests::lower(
            "let x = random((1024, 1024), chunks=(512, 512))\nx.map(gaussian(1)).map(gaussian(1)).write(\"OUT\")",
        );
        assert!(MergeHalos.run(&mut p));
        insta::assert_snapshot!(MergeHalos.describe(&p).unwrap(), @r"
        %2 gaussian merges %1 gaussian: reads %0 once with halo [8, 8]
          per chunk: recompute halo ring 165376 vs materialise 3.18e6: recomputing is cheaper
        ");
        assert!(!MergeHalos.run(&mut p), "a second run changes nothing");
    }

    #[test]
    fn deep_wide_chains_on_small_chunks_would_rather_materialise() {
        let chain = ".map(gaussian(5))".repeat(10);
        let mut p = crate::opt::tests::lower(&format!(
            "let x = random((64, 64), chunks=(8, 8))\nx{chain}.write(\"OUT\")"
        ));
        MergeHalos.run(&mut p);
        let top = *p.notes.halos.keys().last().unwrap();
        let m = &p.notes.halos[&top];
        assert_eq!(m.inner.len(), 9);
        assert_eq!(m.total_halo, vec![200, 200]);
        assert!(m.materialising_is_cheaper(), "{m:?}");
    }

    #[test]
    fn notes_follow_renumbering() {
        let mut p = crate::opt::tests::lower(
            "let x = random((64, 64), chunks=(32, 32))\nlet unused = x * 3\nx.map(uniform(3)).map(uniform(3)).write(\"OUT\")",
        );
        MergeHalos.run(&mut p);
        let before: Vec<NodeId> = p.notes.halos.keys().copied().collect();
        assert!(crate::opt::EliminateDead.run(&mut p));
        let (top, m) = p.notes.halos.iter().next().expect("a chain");
        assert_ne!(before, vec![*top], "ids were renumbered");
        assert_eq!(p.sinks[0].node, *top);
        assert!(p.node(m.inner[0]).op.footprint().is_some());
        assert!(matches!(
            p.node(m.bases[0]).op,
            crate::ir::Op::Random { .. }
        ));
    }

    #[test]
    fn single_stencils_and_elementwise_are_not_chains() {
        let mut p = crate::opt::tests::lower(
            "let x = random((64, 64), chunks=(32, 32))\n(x.map(uniform(3)) * 2 + x).write(\"OUT\")",
        );
        assert!(!MergeHalos.run(&mut p));
        assert!(p.notes.halos.is_empty());
    }
}
