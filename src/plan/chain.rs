//! Chunk-level chaining: a stage that reads an array another stage writes starts each
//! task as soon as the chunks that task reads (halos included) are written, instead of
//! waiting for the whole writing stage. The chunks a task reads come from bounds
//! inference — its region pulled back through every op to the stored arrays —, never
//! from a declaration. Reductions and label tables stay barriers: their results are
//! whole-array values, known only when every chunk is folded.

use super::{Plan, Stage, StageKind};
use crate::geom::{iter_box, ChunkGrid, Region};
use crate::ir::bounds::input_regions;
use crate::ir::{NodeId, Op, Program, SinkKind};
use std::collections::BTreeSet;

/// Every (stored array node, region) that computing `region` of `node` reads.
pub(crate) fn reads(
    p: &Program,
    node: NodeId,
    region: Region,
    out: &mut BTreeSet<(NodeId, Region)>,
) {
    let mut seen = BTreeSet::new();
    let mut stack = vec![(node, region)];
    while let Some((id, r)) = stack.pop() {
        if !seen.insert((id, r.clone())) {
            continue;
        }
        if let Op::Zarr { .. } = p.node(id).op {
            out.insert((id, r));
            continue;
        }
        stack.extend(input_regions(p, id, &r));
    }
}

/// The regions of the data nodes that the task writing chunk `flat` of a write stage
/// computes.
pub(crate) fn task_regions(
    p: &Program,
    sinks: &[usize],
    grid: &ChunkGrid,
    flat: u64,
) -> Vec<(NodeId, Region)> {
    let chunk = grid.chunk_region(&grid.unflatten(flat));
    let mut v = Vec::new();
    for si in sinks {
        let s = &p.sinks[*si];
        let SinkKind::Write(w) = &s.kind else {
            continue;
        };
        if w.regions.is_empty() {
            v.push((s.node, chunk.clone()));
            continue;
        }
        for (ri, r) in w.regions.iter().enumerate() {
            let Some(f) = r.intersect(&chunk) else {
                continue;
            };
            if w.placed {
                // Region-shaped data: drop the axes the region gave as single ints.
                let rel = f.relative_to(r);
                let ints = w.int_axes.get(ri).cloned().unwrap_or_default();
                let keep = |v: &[u64]| -> Vec<u64> {
                    v.iter()
                        .enumerate()
                        .filter(|(a, _)| !ints.get(*a).copied().unwrap_or(false))
                        .map(|(_, x)| *x)
                        .collect()
                };
                v.push((s.node, Region::new(keep(&rel.start), keep(&rel.end))));
            } else {
                v.push((s.node, f));
            }
        }
    }
    v
}

/// Every (stored array node, region) task `local` of `stage` reads.
pub(crate) fn task_reads(p: &Program, stage: &Stage, local: u64) -> BTreeSet<(NodeId, Region)> {
    let mut read = BTreeSet::new();
    match &stage.kind {
        StageKind::Write { grid, .. } => {
            let flats: Vec<u64> = match &stage.block {
                // A block task writes every chunk of its block.
                Some(b) => {
                    let bgrid = b.grid(grid);
                    let region = bgrid.chunk_region(&bgrid.unflatten(local));
                    iter_box(&grid.chunks_touching(&region))
                        .map(|idx| grid.flatten(&idx))
                        .collect()
                }
                None => vec![stage.chunk_at(local)],
            };
            for flat in flats {
                for (node, r) in task_regions(p, &stage.sinks, grid, flat) {
                    reads(p, node, r, &mut read);
                }
            }
        }
        StageKind::Reduce { node, split } => {
            let (_, chunks) = split.task(local);
            let x = p.node(*node).op.inputs()[0];
            for c in chunks {
                reads(p, x, split.grid.chunk_region(&c), &mut read);
            }
        }
        StageKind::Label { node, grid } => {
            let x = p.node(*node).op.inputs()[0];
            reads(p, x, grid.chunk_region(&grid.unflatten(local)), &mut read);
        }
        StageKind::Props { grid } => {
            for si in &stage.sinks {
                let n = p.sinks[*si].node;
                reads(p, n, grid.chunk_region(&grid.unflatten(local)), &mut read);
            }
        }
        StageKind::Values => {
            for si in &stage.sinks {
                let n = p.sinks[*si].node;
                reads(p, n, Region::full(&p.ty(n).shape), &mut read);
            }
        }
    }
    read
}

/// The output path a write stage writes (none for other stages).
pub(crate) fn written_path<'a>(p: &'a Program, stage: &Stage) -> Option<&'a str> {
    let first = stage.sinks.first()?;
    match (&stage.kind, &p.sinks[*first].kind) {
        (StageKind::Write { .. }, SinkKind::Write(w)) => Some(w.path.as_str()),
        _ => None,
    }
}

/// The flat chunks of `producer`'s output that task `local` of `consumer` reads.
pub(crate) fn chunks_read_from(
    p: &Program,
    consumer: &Stage,
    local: u64,
    producer: &Stage,
) -> Vec<u64> {
    let (Some(path), StageKind::Write { grid, .. }) = (written_path(p, producer), &producer.kind)
    else {
        return Vec::new();
    };
    let mut out: Vec<u64> = Vec::new();
    for (z, r) in task_reads(p, consumer, local) {
        if matches!(&p.node(z).op, Op::Zarr { path: q } if q == path) {
            out.extend(iter_box(&grid.chunks_touching(&r)).map(|idx| grid.flatten(&idx)));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

impl Plan {
    /// Stages grouped into the waves the in-process runtime runs: as `waves`, except that
    /// a stage reading only arrays that stages write (not reductions or label tables of
    /// the wave before) joins their wave and chains to them chunk by chunk. Within a
    /// wave, every stage comes after the stages it reads.
    /// Arrays in object stores are not chained (their reads are fetched ahead).
    pub fn local_waves(&self, p: &Program) -> Vec<Vec<usize>> {
        let n = self.stages.len();
        let mut level = vec![0usize; n];
        let order = petgraph::algo::toposort(&self.graph, None).unwrap_or_default();
        for ix in &order {
            let a = ix.index();
            let chained = written_path(p, &self.stages[a])
                .is_some_and(|path| !crate::io::remote::is_url(path));
            for nb in self.graph.neighbors(*ix) {
                let b = nb.index();
                level[b] = level[b].max(level[a] + usize::from(!chained));
            }
        }
        let depth = level.iter().copied().max().map(|m| m + 1).unwrap_or(0);
        let mut waves = vec![Vec::new(); depth];
        for ix in order {
            waves[level[ix.index()]].push(ix.index());
        }
        waves.retain(|w| !w.is_empty());
        waves
    }

    /// The stages of `wave` (as `local_waves` gives it) that stage `k` chains to.
    pub fn chained_producers(&self, wave: &[usize], k: usize) -> Vec<usize> {
        let ix = petgraph::graph::NodeIndex::new(k);
        let mut v: Vec<usize> = self
            .graph
            .neighbors_directed(ix, petgraph::Direction::Incoming)
            .map(|a| a.index())
            .filter(|a| wave.contains(a))
            .collect();
        v.sort_unstable();
        v
    }

    /// Pairs (producer, consumer) of stages whose tasks overlap in a local run.
    pub fn chains(&self, p: &Program) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for wave in self.local_waves(p) {
            for &k in &wave {
                for a in self.chained_producers(&wave, k) {
                    v.push((a, k));
                }
            }
        }
        v.sort_unstable();
        v
    }
}
