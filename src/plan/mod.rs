//! Planning: turns the optimized program into stages of independent chunk tasks and a
//! stage graph (petgraph). Tasks are described, not materialised: a stage knows its
//! chunk grid and, for region writes, the chunks the regions touch (bounds inference
//! from the sinks, recorded by `opt::prune_to_regions`), so planning cost does not grow
//! with the array size: whole-array stages enumerate their chunks on the fly, also along
//! a Hilbert curve.

pub(crate) mod chain;
mod dot;
mod explain;
pub mod export;

pub use dot::to_dot;
pub use explain::explain;

mod label;
mod split;

pub use split::Split;

use crate::geom::{block_rereads, fmt_shape, iter_box, rechunk_blocks, ChunkGrid, Region};
use crate::ir::{NodeId, Op, Program, SinkKind};
use petgraph::graph::DiGraph;
use std::collections::HashMap;
use std::fmt::Write;

#[derive(Clone, Debug)]
pub enum StageKind {
    /// Write every chunk of `grid` (or only `chunks`, flat indices, for region writes).
    Write {
        grid: ChunkGrid,
        chunks: Option<Vec<u64>>,
    },
    /// Compute a small array whole, to print it.
    Values,
    /// Compute the reduction `node` whole (partials per chunk group, combined in order)
    /// and hold it for the stages that read it.
    Reduce { node: NodeId, split: Split },
    /// Scan every chunk of the mask of the `label` node `node` and resolve its label
    /// table, held for the stages that read the labels.
    Label { node: NodeId, grid: ChunkGrid },
    /// Measure the regions of a label array chunk by chunk (its sinks: the `Props` sink,
    /// then its intensity's) and merge in chunk order.
    Props { grid: ChunkGrid },
}

#[derive(Clone, Debug)]
pub struct Stage {
    /// The sinks this stage computes (several writes to one output merge into one stage).
    pub sinks: Vec<usize>,
    pub name: String,
    pub kind: StageKind,
    pub tasks: u64,
    /// Projected bytes one task holds at its peak.
    pub task_bytes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Tasks own blocks of output chunks that share the input of a rechunk.
    pub block: Option<Block>,
    /// How a whole-array write stage orders its chunks (region writes list them).
    pub order: TaskOrder,
}

/// The order in which a stage without a chunk list visits its chunks.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskOrder {
    /// Flat C order.
    RowMajor,
    /// Per index of the outer axes, along the Hilbert curve over the last two axes of a
    /// `rows` × `cols` chunk grid (`side` is the curve's power-of-two side).
    Hilbert { side: u64, rows: u64, cols: u64 },
}

impl Stage {
    /// What the stage's progress counts: output chunks for writes (a rechunk block task
    /// writes several), tasks otherwise.
    pub fn units(&self) -> u64 {
        match (&self.kind, &self.block) {
            (StageKind::Write { grid, chunks: None }, Some(_)) => grid.num_chunks(),
            _ => self.tasks,
        }
    }

    /// The flat chunk index task `local` of this stage writes, computed on the fly.
    pub fn chunk_at(&self, local: u64) -> u64 {
        if let StageKind::Write {
            chunks: Some(list), ..
        } = &self.kind
        {
            return list[local as usize];
        }
        match self.order {
            TaskOrder::RowMajor => local,
            TaskOrder::Hilbert { side, rows, cols } => {
                let plane = rows * cols;
                let (y, x) = hilbert_cell(side, rows, cols, local % plane);
                local / plane * plane + y * cols + x
            }
        }
    }
}

/// A block task: the rechunk's input is read once over a block of output chunks (so each
/// input chunk is decoded once), then every output chunk of the block is computed from it.
#[derive(Clone, Debug)]
pub struct Block {
    /// The input of the `rechunk` node whose values the block holds.
    pub node: NodeId,
    /// Output chunks per block, per axis.
    pub per: Vec<u64>,
    /// The most blocks one input chunk overlaps (1: each input chunk is read once).
    pub rereads: u64,
}

impl Block {
    /// How often input chunks are read, in words.
    pub fn reads(&self) -> String {
        match self.rereads {
            1 => "each input chunk read once".into(),
            n => format!("an input chunk read by up to {n} blocks"),
        }
    }

    /// The grid of blocks over an output chunk grid.
    pub fn grid(&self, grid: &ChunkGrid) -> ChunkGrid {
        let chunks: Vec<u64> = grid
            .chunks
            .iter()
            .zip(&self.per)
            .map(|(c, p)| c.saturating_mul(*p))
            .collect();
        ChunkGrid::new(grid.shape.clone(), chunks)
    }
}

/// For a whole-array write that reads a `rechunk` of the output's shape whose input
/// chunks straddle several output chunks: blocks aligned to both chunkings, whose tasks
/// (`task_bytes` plus the block) hold at most `Program::block_limit` bytes (`opt::stage_rechunk` has staged the
/// rechunks whose aligned blocks would hold more through storage; any left, where even
/// that cannot help, use smaller blocks that read some input chunks more than once).
fn rechunk_block(
    p: &Program,
    root: NodeId,
    out_chunks: &[u64],
    grid: &ChunkGrid,
    task_bytes: u64,
) -> Option<Block> {
    let shape = &p.ty(root).shape;
    let mut seen = vec![false; p.nodes.len()];
    let mut order = Vec::new();
    p.post_order(root, &mut seen, &mut order);
    let (node, in_chunks, itemsize) = order.iter().rev().find_map(|id| match &p.node(*id).op {
        Op::Rechunk { x } if &p.ty(*id).shape == shape => {
            let t = p.ty(*x);
            let straddles = t
                .chunks
                .iter()
                .zip(out_chunks)
                .any(|(i, o)| i % o != 0 || i > o);
            straddles.then(|| (*x, t.chunks.clone(), t.dtype.size() as u64))
        }
        _ => None,
    })?;
    let bytes = |per: &[u64]| -> u64 {
        per.iter()
            .zip(out_chunks)
            .map(|(p, c)| p.saturating_mul(*c))
            .fold(1u64, u64::saturating_mul)
            .saturating_mul(itemsize)
    };
    let per = rechunk_blocks(&in_chunks, out_chunks, &grid.shape, |per| {
        bytes(per).saturating_add(task_bytes) <= p.block_limit()
    })?;
    let rereads = block_rereads(&in_chunks, out_chunks, &grid.shape, &per);
    (crate::geom::saturating_product(&per) > 1).then_some(Block { node, per, rereads })
}

#[derive(Debug)]
pub struct Plan {
    pub stages: Vec<Stage>,
    /// Inputs read with a halo: (decoded chunk bytes, chunks in the neighbourhood a task
    /// reads — 3^k for a halo on k axes no deeper than a chunk —, whether a stage sweeps
    /// the whole array), for the size of the decoded-chunk cache.
    pub halo_inputs: Vec<(u64, u32, bool)>,
    /// Stage dependencies (an edge a → b: b reads what a writes).
    pub graph: DiGraph<usize, ()>,
    /// Bytes of reduction results held in memory while the plan runs.
    pub held_bytes: u64,
    /// Stored inputs that stages of more than one wave read (a reduction and the map
    /// that uses its result): their decoded chunks are kept between the waves while
    /// memory allows, so each is decoded once.
    pub shared_inputs: Vec<SharedInput>,
}

/// A stored input read by stages of several waves.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedInput {
    pub path: String,
    /// Decoded bytes of the whole array.
    pub bytes: u64,
    /// The last wave that reads it: its kept chunks are dropped when that wave ends.
    pub last_wave: usize,
}

impl Plan {
    /// Bytes of decoded input chunks worth keeping. A stage that sweeps the array keeps
    /// each worker's neighbourhood (3^k chunks for a halo on k axes) and two more chunks: stencil
    /// stages walk a Hilbert curve, so neighbours come back while cached. Region writes
    /// touch scattered chunks and rarely revisit one, so three chunks per worker do.
    /// Measured on the gaussian and regions benchmarks: more buys little speed for a lot
    /// of memory. 16 MiB ..= 1 GiB.
    pub fn cache_budget(&self, workers: usize) -> u64 {
        let need = self
            .halo_inputs
            .iter()
            .map(|(chunk, k, sweep)| {
                let per_worker = if *sweep { u64::from(*k) + 2 } else { 3 };
                chunk
                    .saturating_mul(workers as u64)
                    .saturating_mul(per_worker)
            })
            .max()
            .unwrap_or(0);
        need.clamp(16 << 20, 1 << 30)
    }

    pub fn total_tasks(&self) -> u64 {
        self.stages
            .iter()
            .map(|s| s.tasks)
            .fold(0, u64::saturating_add)
    }

    /// Peak memory with `workers` tasks in flight, plus the chunk cache.
    pub fn projected_peak(&self, workers: usize) -> u64 {
        // The cache fills only with chunks read across chunk borders (halos).
        let cache = if self.halo_inputs.is_empty() {
            0
        } else {
            self.cache_budget(workers)
        };
        self.tasks_peak(workers)
            .saturating_add(cache)
            .saturating_add(self.held_bytes)
    }

    fn tasks_peak(&self, workers: usize) -> u64 {
        let mut sizes: Vec<u64> = self.stages.iter().map(|s| s.task_bytes).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        sizes
            .iter()
            .cycle()
            .take(workers.max(1))
            .fold(0u64, |a, b| a.saturating_add(*b))
            .min(
                // Never more than every task of every stage at once.
                self.stages
                    .iter()
                    .map(|s| s.task_bytes.saturating_mul(s.tasks))
                    .fold(0, u64::saturating_add),
            )
    }
}

/// The (node, region shape) pairs already counted by one estimate: a node reached along
/// several paths (a value used twice, a DAG) is one buffer and one read, counted once, so
/// estimates stay linear in the program's size.
type Memo = HashMap<(NodeId, Vec<u64>), u64>;

/// Bytes a task holds while evaluating `id` over a region of `shape`.
fn working_set(p: &Program, id: NodeId, shape: &[u64]) -> u64 {
    working_set_in(p, id, shape, &mut Memo::new())
}

/// The input a Python block function reads for an output region of `shape` (at the
/// array's origin): the input blocks behind it with their halo.
fn pyblock_read_shape(
    p: &Program,
    b: &crate::ir::PyBlock,
    out: &crate::ir::ArrayType,
    shape: &[u64],
) -> Vec<u64> {
    let end: Vec<u64> = shape
        .iter()
        .zip(&out.shape)
        .map(|(s, n)| *s.min(n))
        .collect();
    let r = crate::geom::Region::new(vec![0; shape.len()], end);
    b.input_region(p.ty(b.x), out, &r).shape()
}

/// Bytes read from storage per output region of `shape`.
fn bytes_read(p: &Program, id: NodeId, shape: &[u64]) -> u64 {
    bytes_read_in(p, id, shape, &mut Memo::new())
}

/// Bytes a task holds while evaluating `id` over a region of `shape` (a conservative sum
/// of every buffer alive along the evaluation).
fn working_set_in(p: &Program, id: NodeId, shape: &[u64], memo: &mut Memo) -> u64 {
    // A buffer reached again along another path is the same buffer: count it once.
    if memo.contains_key(&(id, shape.to_vec())) {
        return 0;
    }
    let v = working_set_node(p, id, shape, memo);
    memo.insert((id, shape.to_vec()), v);
    v
}

fn working_set_node(p: &Program, id: NodeId, shape: &[u64], memo: &mut Memo) -> u64 {
    let n = p.node(id);
    let elems: u64 = crate::geom::saturating_product(shape);
    let own = elems.saturating_mul(n.ty.dtype.size() as u64);
    match &n.op {
        Op::Zarr { .. } => {
            // The decoded chunks plus the assembled region.
            own.saturating_mul(2)
        }
        Op::Images { stack } => {
            // Each whole plane decoded, plus the assembled region.
            let plane = crate::geom::saturating_product(&stack.plane)
                .saturating_mul(n.ty.dtype.size() as u64);
            own.saturating_add(plane)
        }
        Op::Fill { .. } | Op::Arange { .. } | Op::Random { .. } => own,
        Op::Stencil { x, halo, .. } => {
            let grown = stencil_read_shape(shape, halo, &p.ty(*x).shape);
            own.saturating_mul(2)
                .saturating_add(working_set_in(p, *x, &grown, memo))
        }
        Op::Index { x, axes } => {
            let mut in_shape = Vec::new();
            let mut oax = 0;
            for a in axes {
                match a {
                    crate::ir::AxisIndex::Range { step, .. } => {
                        in_shape.push(shape[oax].saturating_mul(step.unsigned_abs()));
                        oax += 1;
                    }
                    crate::ir::AxisIndex::Int(_) => in_shape.push(1),
                    crate::ir::AxisIndex::NewAxis => oax += 1,
                }
            }
            own.saturating_add(working_set_in(p, *x, &in_shape, memo))
        }
        Op::Broadcast { x } => {
            let xs = &p.ty(*x).shape;
            let off = shape.len() - xs.len();
            let in_shape: Vec<u64> = xs
                .iter()
                .enumerate()
                .map(|(i, d)| if *d == 1 { 1 } else { shape[i + off] })
                .collect();
            own.saturating_add(working_set_in(p, *x, &in_shape, memo))
        }
        // Held by the stage that computed it: one copy of the region.
        Op::Reduce { .. } => own,
        Op::Label { x, .. } => {
            let m = label::mask_shape(p, *x, shape);
            let pixels: u64 = crate::geom::saturating_product(&m);
            own.saturating_add(working_set_in(p, *x, &m, memo))
                .saturating_add(pixels.saturating_mul(4))
        }
        Op::Transpose { x, perm } => {
            own.saturating_add(working_set_in(p, *x, &unpermute(shape, perm), memo))
        }
        Op::Coarsen { x, factors, .. } => {
            // The input blocks, and one block gathered at a time.
            let blocks = coarsen_read_shape(shape, factors, &p.ty(*x).shape);
            let block: u64 = crate::geom::saturating_product(factors).saturating_mul(8);
            own.saturating_add(block)
                .saturating_add(working_set_in(p, *x, &blocks, memo))
        }
        // The block read (with its halo) in this process and in the worker's shared
        // memory, and the function's result there, here and as the assembled region.
        Op::PyBlock(b) => {
            let in_shape = pyblock_read_shape(p, b, &n.ty, shape);
            let input = crate::geom::saturating_product(&in_shape)
                .saturating_mul(p.ty(b.x).dtype.size() as u64);
            own.saturating_mul(3)
                .saturating_add(input.saturating_mul(2))
                .saturating_add(working_set_in(p, b.x, &in_shape, memo))
        }
        Op::Fft { x, axis, .. } if shape.len() > *axis => {
            let mut grown = shape.to_vec();
            grown[*axis] = p.ty(*x).shape[*axis];
            let g: u64 =
                crate::geom::saturating_product(&grown).saturating_mul(n.ty.dtype.size() as u64);
            own.saturating_add(g.saturating_mul(2))
                .saturating_add(working_set_in(p, *x, &grown, memo))
        }
        _ => own.saturating_add(
            n.op.inputs()
                .iter()
                .map(|i| working_set_in(p, *i, shape, memo))
                .fold(0u64, u64::saturating_add),
        ),
    }
}

/// The block a stencil task extends its region of `shape` to: the region plus the halo
/// on both sides, or the whole axis where the halo is deeper than the axis (the stencil
/// then folds its footprint onto the axis instead of extending it).
fn stencil_read_shape(shape: &[u64], halo: &[u64], input: &[u64]) -> Vec<u64> {
    shape
        .iter()
        .zip(halo)
        .zip(input)
        .map(|((s, h), n)| {
            if h > n {
                *n
            } else {
                s.saturating_add(h.saturating_mul(2))
            }
        })
        .collect()
}

/// Bytes read from storage per output region of `shape`.
fn bytes_read_in(p: &Program, id: NodeId, shape: &[u64], memo: &mut Memo) -> u64 {
    if memo.contains_key(&(id, shape.to_vec())) {
        return 0;
    }
    let v = bytes_read_node(p, id, shape, memo);
    memo.insert((id, shape.to_vec()), v);
    v
}

fn bytes_read_node(p: &Program, id: NodeId, shape: &[u64], memo: &mut Memo) -> u64 {
    let n = p.node(id);
    let elems: u64 = crate::geom::saturating_product(shape);
    match &n.op {
        Op::Zarr { .. } | Op::Images { .. } => elems.saturating_mul(n.ty.dtype.size() as u64),
        Op::Stencil { x, halo, .. } => {
            let grown = stencil_read_shape(shape, halo, &p.ty(*x).shape);
            bytes_read_in(p, *x, &grown, memo)
        }
        Op::Broadcast { x } | Op::Index { x, .. } | Op::Reshape { x } => {
            let xs = &p.ty(*x).shape;
            let e: u64 = crate::geom::saturating_product(xs).min(elems.max(1));
            let s = [e];
            bytes_read_in(p, *x, &s, memo)
        }
        Op::Reduce { .. } => 0,
        Op::Label { x, .. } => bytes_read_in(p, *x, &label::mask_shape(p, *x, shape), memo),
        Op::Transpose { x, perm } => bytes_read_in(p, *x, &unpermute(shape, perm), memo),
        Op::Coarsen { x, factors, .. } => bytes_read_in(
            p,
            *x,
            &coarsen_read_shape(shape, factors, &p.ty(*x).shape),
            memo,
        ),
        Op::PyBlock(b) => bytes_read_in(p, b.x, &pyblock_read_shape(p, b, &n.ty, shape), memo),
        Op::Fft { x, axis, .. } if shape.len() > *axis => {
            let mut grown = shape.to_vec();
            grown[*axis] = p.ty(*x).shape[*axis];
            bytes_read_in(p, *x, &grown, memo)
        }
        _ => {
            n.op.inputs()
                .iter()
                .map(|i| bytes_read_in(p, *i, shape, memo))
                .fold(0u64, u64::saturating_add)
        }
    }
}

/// The input box a coarsen reads for an output region of `shape`: `factors` times
/// larger, at most the input's shape.
fn coarsen_read_shape(shape: &[u64], factors: &[u64], input: &[u64]) -> Vec<u64> {
    shape
        .iter()
        .zip(factors)
        .zip(input)
        .map(|((s, f), n)| s.saturating_mul(*f).min(*n))
        .collect()
}

/// The input shape a transpose reads for an output region of `shape`.
fn unpermute(shape: &[u64], perm: &[usize]) -> Vec<u64> {
    let mut v = vec![1; perm.len()];
    for (i, a) in perm.iter().enumerate() {
        if let Some(s) = shape.get(i) {
            v[*a] = *s;
        }
    }
    v
}

/// Lanes' accumulator bytes, the most any reduction keeps per output element.
const LANE_BYTES: u64 = 24;
/// Partials alive at once for one reduction are kept under this.
const MAX_PARTIALS: u64 = 256 << 20;

/// Stages that compute reductions, inputs first (a reduction may read another).
fn reduce_stages(p: &Program, stages: &mut Vec<Stage>, graph: &mut DiGraph<usize, ()>) -> u64 {
    let mut held = 0;
    for id in p.live_nodes() {
        let Op::Reduce { x, op, axes, .. } = &p.node(id).op else {
            continue;
        };
        let xt = p.ty(*x);
        let chunk: Vec<u64> = xt
            .chunks
            .iter()
            .zip(&xt.shape)
            .map(|(c, n)| (*c).min(*n))
            .collect();
        let grid = ChunkGrid::new(xt.shape.clone(), xt.chunks.clone());
        let reduced: Vec<bool> = (0..xt.ndim()).map(|a| axes.contains(&a)).collect();
        let split = Split::new(grid.clone(), reduced, LANE_BYTES, MAX_PARTIALS);
        let lanes: u64 = chunk
            .iter()
            .enumerate()
            .filter(|(a, _)| !axes.contains(a))
            .map(|(_, c)| *c)
            .product();
        held += p.ty(id).nbytes();
        let axes_s: Vec<String> = axes.iter().map(|a| a.to_string()).collect();
        graph.add_node(stages.len());
        stages.push(Stage {
            sinks: vec![],
            name: format!(
                "{} of {x} over axes ({}) -> {id}",
                op.name(),
                axes_s.join(", ")
            ),
            tasks: split.tasks(),
            task_bytes: working_set(p, *x, &chunk)
                .saturating_add(lanes.saturating_mul(2 * LANE_BYTES)),
            bytes_read: bytes_read(p, *x, &chunk).saturating_mul(grid.num_chunks()),
            bytes_written: 0,
            kind: StageKind::Reduce { node: id, split },
            block: None,
            order: TaskOrder::RowMajor,
        });
    }
    held
}

pub fn build(p: &Program) -> Plan {
    let mut stages: Vec<Stage> = Vec::new();
    let mut graph = DiGraph::new();
    // One stage per output path: every write to it (region fragments of a `for` loop or a
    // `regions=` list) is merged into the task that owns each chunk.
    let mut by_path: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (si, s) in p.sinks.iter().enumerate() {
        let ty = p.ty(s.node);
        match &s.kind {
            SinkKind::Write(w) => {
                let chunk_shape = w.chunks.clone();
                let chunk_bytes = crate::geom::saturating_product(&chunk_shape)
                    .saturating_mul(ty.dtype.size() as u64);
                let data_shape: Vec<u64> = if w.placed {
                    ty.shape
                        .iter()
                        .zip(chunk_shape.iter().cycle())
                        .map(|(d, c)| *d.min(c))
                        .collect()
                } else {
                    chunk_shape.clone()
                };
                let task_bytes = working_set(p, s.node, &data_shape)
                    .saturating_add(chunk_bytes.saturating_mul(2));
                if let Some(&k) = by_path.get(w.path.as_str()) {
                    let st = &mut stages[k];
                    st.sinks.push(si);
                    st.task_bytes = st.task_bytes.max(task_bytes);
                    continue;
                }
                let grid = ChunkGrid::new(w.shape.clone(), w.chunks.clone());
                by_path.insert(w.path.as_str(), stages.len());
                graph.add_node(stages.len());
                stages.push(Stage {
                    sinks: vec![si],
                    name: format!("write {}", w.path),
                    kind: StageKind::Write { grid, chunks: None },
                    tasks: 0,
                    task_bytes,
                    bytes_read: 0,
                    bytes_written: 0,
                    block: None,
                    order: TaskOrder::RowMajor,
                });
            }
            SinkKind::Props { .. } => label::props_stage(p, si, &mut stages, &mut graph),
            SinkKind::PropsIntensity => {}
            SinkKind::PrintValues { .. } | SinkKind::Preview { .. } => {
                let name = match &s.kind {
                    SinkKind::PrintValues { label } => format!("print {label}"),
                    SinkKind::Preview { path, .. } => format!("preview {path}"),
                    _ => unreachable!(),
                };
                graph.add_node(stages.len());
                stages.push(Stage {
                    sinks: vec![si],
                    name,
                    kind: StageKind::Values,
                    tasks: 1,
                    task_bytes: working_set(p, s.node, &ty.shape),
                    bytes_read: bytes_read(p, s.node, &ty.shape),
                    bytes_written: 0,
                    block: None,
                    order: TaskOrder::RowMajor,
                });
            }
        }
    }
    let held_bytes = label::label_stages(p, &mut stages, &mut graph).saturating_add(reduce_stages(
        p,
        &mut stages,
        &mut graph,
    ));
    // Only output chunks that the regions `prune_to_regions` found touch become tasks.
    let written = |si: usize| -> Option<&[Region]> {
        match &p.notes.written {
            Some(w) => w.get(si).and_then(|r| r.as_deref()),
            // A program that skipped the optimizer: the writes' own regions.
            None => match &p.sinks[si].kind {
                SinkKind::Write(w) if !w.regions.is_empty() => Some(w.regions.as_slice()),
                _ => None,
            },
        }
    };
    for st in stages.iter_mut() {
        let StageKind::Write { grid, chunks } = &mut st.kind else {
            continue;
        };
        let whole = st.sinks.iter().any(|si| written(*si).is_none());
        if !whole {
            let mut v: Vec<u64> = Vec::new();
            for si in &st.sinks {
                for r in written(*si).unwrap_or(&[]) {
                    let b = grid.chunks_touching(r);
                    v.extend(iter_box(&b).map(|idx| grid.flatten(&idx)));
                }
            }
            v.sort_unstable();
            v.dedup();
            *chunks = Some(v);
        }
        st.tasks = chunks
            .as_ref()
            .map(|c| c.len() as u64)
            .unwrap_or_else(|| grid.num_chunks());
        let chunk_elems: u64 = crate::geom::saturating_product(&grid.chunks);
        let mut read = 0;
        let mut itemsize = 1;
        for si in &st.sinks {
            let s = &p.sinks[*si];
            let ty = p.ty(s.node);
            itemsize = ty.dtype.size() as u64;
            if let SinkKind::Write(w) = &s.kind {
                read += if w.regions.is_empty() {
                    bytes_read(p, s.node, &grid.chunks).saturating_mul(grid.num_chunks())
                } else {
                    w.regions
                        .iter()
                        .map(|r| bytes_read(p, s.node, &r.shape()))
                        .sum()
                };
            }
        }
        st.bytes_read = read;
        st.bytes_written = match chunks {
            None => crate::geom::saturating_product(&grid.shape).saturating_mul(itemsize),
            Some(c) => (c.len() as u64)
                .saturating_mul(chunk_elems)
                .saturating_mul(itemsize),
        };
    }
    // Whole-array writes of a rechunk run in blocks that read each input chunk once.
    for st in stages.iter_mut() {
        let StageKind::Write { grid, chunks: None } = &st.kind else {
            continue;
        };
        if st.sinks.len() != 1 {
            continue;
        }
        let root = p.sinks[st.sinks[0]].node;
        if let Some(b) = rechunk_block(p, root, &grid.chunks.clone(), grid, st.task_bytes) {
            let bgrid = b.grid(grid);
            let block_bytes: u64 = crate::geom::saturating_product(&bgrid.chunks)
                .saturating_mul(p.ty(b.node).dtype.size() as u64);
            st.tasks = bgrid.num_chunks();
            st.task_bytes += block_bytes;
            st.block = Some(b);
        }
    }
    // Stencil stages visit chunks along a Hilbert curve (per outer index), so the
    // neighbours a task decodes for its halo are still cached when the next tasks need
    // them; each worker gets a compact run of the curve. Whole-array stages compute the
    // curve per task (`Stage::chunk_at`); region writes sort their list.
    for st in stages.iter_mut() {
        let StageKind::Write { grid, chunks } = &mut st.kind else {
            continue;
        };
        if st.block.is_some() {
            continue;
        }
        let stencil = st
            .sinks
            .iter()
            .any(|si| p.max_halo(p.sinks[*si].node).is_some());
        if stencil && grid.ndim() >= 2 {
            let g = grid.grid_shape();
            let nd = g.len();
            let side = g[nd - 2].max(g[nd - 1]).next_power_of_two();
            let Some(list) = chunks.as_mut() else {
                st.order = TaskOrder::Hilbert {
                    side,
                    rows: g[nd - 2],
                    cols: g[nd - 1],
                };
                continue;
            };
            list.sort_by_cached_key(|flat| {
                let idx = grid.unflatten(*flat);
                let outer = grid.flatten(
                    &idx[..nd - 2]
                        .iter()
                        .copied()
                        .chain([0, 0])
                        .collect::<Vec<u64>>(),
                );
                (outer, hilbert(side, idx[nd - 2], idx[nd - 1]))
            });
        }
    }
    // A stage that reads an array another stage writes, or a reduction another stage
    // computes, runs after it.
    let by_reduce: HashMap<NodeId, usize> = stages
        .iter()
        .enumerate()
        .filter_map(|(k, st)| match &st.kind {
            StageKind::Reduce { node, .. } | StageKind::Label { node, .. } => Some((*node, k)),
            _ => None,
        })
        .collect();
    // Arrays updated in place: every read of them is of the array as it was before the
    // run (the update is staged and takes its place at the end), so no read waits for
    // the stage that writes them.
    let in_place: std::collections::BTreeSet<&str> = p
        .sinks
        .iter()
        .filter_map(|s| match &s.kind {
            SinkKind::Write(w) if w.in_place => Some(w.path.as_str()),
            _ => None,
        })
        .collect();
    // Per stage, the stored inputs (no stage writes them) it reads.
    let mut stage_inputs: Vec<Vec<NodeId>> = Vec::with_capacity(stages.len());
    for (k, st) in stages.iter().enumerate() {
        let roots: Vec<NodeId> = match &st.kind {
            StageKind::Reduce { node, .. } | StageKind::Label { node, .. } => {
                p.node(*node).op.inputs()
            }
            _ => st.sinks.iter().map(|si| p.sinks[*si].node).collect(),
        };
        // The nodes the stage computes: not the inputs of a reduction or label table
        // another stage computes (this stage reads only its result).
        let mut seen = vec![false; p.nodes.len()];
        let mut order = Vec::new();
        let mut stack = roots;
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut seen[id.index()], true) {
                continue;
            }
            order.push(id);
            let elsewhere = by_reduce.get(&id).is_some_and(|t| *t != k);
            if !elsewhere {
                stack.extend(p.node(id).op.inputs());
            }
        }
        let mut stored = Vec::new();
        for id in order {
            let producer = match &p.node(id).op {
                Op::Zarr { path } => {
                    let t = by_path
                        .get(path.as_str())
                        .copied()
                        .filter(|_| !in_place.contains(path.as_str()));
                    if t.is_none() {
                        stored.push(id);
                    }
                    t
                }
                Op::Reduce { .. } | Op::Label { .. } => by_reduce.get(&id).copied(),
                _ => None,
            };
            if let Some(t) = producer.filter(|t| *t != k) {
                graph.update_edge(
                    petgraph::graph::NodeIndex::new(t),
                    petgraph::graph::NodeIndex::new(k),
                    (),
                );
            }
        }
        stage_inputs.push(stored);
    }
    // Inputs that stencils read with a halo, for the cache size.
    let sweep = p.sinks.iter().any(|s| match &s.kind {
        SinkKind::Write(w) => w.regions.is_empty(),
        _ => false,
    });
    // A stencil chain (`merge_halos`) reads its inputs once with the summed halo.
    // Inner stencils read less, from inputs their chain's top reads too.
    let inner = p.notes.merged_inner();
    let mut halo_inputs = Vec::new();
    for id in p.live_nodes() {
        if inner.binary_search(&id).is_ok() {
            continue;
        }
        let Some(halo) = p.notes.read_halo(p, id) else {
            continue;
        };
        let mut seen = vec![false; p.nodes.len()];
        let mut order = Vec::new();
        p.post_order(id, &mut seen, &mut order);
        for z in order {
            if let Op::Zarr { .. } = p.node(z).op {
                let t = p.ty(z);
                let chunk = t.chunk_bytes();
                halo_inputs.push((chunk, neighbourhood(&halo, &t.chunks, &t.shape), sweep));
            }
        }
    }
    let mut plan = Plan {
        stages,
        graph,
        halo_inputs,
        held_bytes,
        shared_inputs: Vec::new(),
    };
    plan.shared_inputs = shared_inputs(p, &plan, &stage_inputs);
    plan
}

/// Stored inputs (no stage writes them) that stages of two or more waves read.
fn shared_inputs(p: &Program, plan: &Plan, stage_inputs: &[Vec<NodeId>]) -> Vec<SharedInput> {
    let mut wave_of = vec![0usize; plan.stages.len()];
    for (w, wave) in plan.local_waves(p).iter().enumerate() {
        for k in wave {
            wave_of[*k] = w;
        }
    }
    // Per input path: the waves reading it and the node typing it.
    let mut by_path: std::collections::BTreeMap<&str, (Vec<usize>, NodeId)> =
        std::collections::BTreeMap::new();
    for (k, ids) in stage_inputs.iter().enumerate() {
        for id in ids {
            if let Op::Zarr { path } = &p.node(*id).op {
                let e = by_path.entry(path.as_str()).or_insert((Vec::new(), *id));
                e.0.push(wave_of[k]);
            }
        }
    }
    by_path
        .into_iter()
        .filter_map(|(path, (mut waves, id))| {
            waves.sort_unstable();
            waves.dedup();
            (waves.len() > 1).then(|| SharedInput {
                path: path.to_string(),
                bytes: p.ty(id).nbytes(),
                last_wave: *waves.last().expect("two waves"),
            })
        })
        .collect()
}

/// Chunks a task reads around its own when its region grows by `halo`: 3 per axis while
/// the halo is at most a chunk deep, more for deeper halos, at most every chunk of the
/// axis.
fn neighbourhood(halo: &[u64], chunks: &[u64], shape: &[u64]) -> u32 {
    halo.iter()
        .zip(chunks)
        .zip(shape)
        .map(|((h, c), n)| {
            let c = (*c).max(1);
            let along = h.div_ceil(c).saturating_mul(2).saturating_add(1);
            along.min(n.div_ceil(c).max(1)).min(u32::MAX as u64) as u32
        })
        .fold(1u32, |a, b| a.saturating_mul(b))
}

/// The `k`-th chunk (row, column) along the Hilbert curve filling a `side`×`side` square,
/// counting only the cells inside a `rows` × `cols` grid: the inverse of sorting the
/// grid's cells by `hilbert`, found top-down in O(log side) without listing the cells.
fn hilbert_cell(side: u64, rows: u64, cols: u64, mut k: u64) -> (u64, u64) {
    // The curve's frame at the current level, as a map from grid to frame coordinates:
    // optionally swap the axes, then complement the column and/or row bits.
    let (mut swap, mut cx, mut cy) = (false, 0u64, 0u64);
    let (mut oy, mut ox) = (0u64, 0u64);
    let inside = |o: u64, s: u64, n: u64| (o + s).min(n).saturating_sub(o);
    let mut s = side / 2;
    while s > 0 {
        for (rx, ry) in [(0u64, 0u64), (0, 1), (1, 1), (1, 0)] {
            let (u, v) = (rx ^ cx, ry ^ cy);
            let (bx, by) = if swap { (v, u) } else { (u, v) };
            let (qx, qy) = (ox + bx * s, oy + by * s);
            let count = inside(qx, s, cols) * inside(qy, s, rows);
            if k < count {
                (ox, oy) = (qx, qy);
                if ry == 0 {
                    (cx, cy) = (cy ^ rx, cx ^ rx);
                    swap = !swap;
                }
                break;
            }
            k -= count;
        }
        s /= 2;
    }
    (oy, ox)
}

/// Position of (y, x) along the Hilbert curve filling a `side`×`side` square.
fn hilbert(side: u64, y: u64, x: u64) -> u64 {
    let (mut x, mut y) = (x, y);
    let mut d = 0;
    let mut s = side / 2;
    while s > 0 {
        let rx = u64::from(x & s > 0);
        let ry = u64::from(y & s > 0);
        d += s * s * ((3 * rx) ^ ry);
        if ry == 0 {
            if rx == 1 {
                x = side - 1 - x;
                y = side - 1 - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        s /= 2;
    }
    d
}

impl Plan {
    /// Stages grouped into waves: every stage's producers are in earlier waves.
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let n = self.stages.len();
        let mut level = vec![0usize; n];
        let order = petgraph::algo::toposort(&self.graph, None).unwrap_or_default();
        for ix in order {
            for nb in self.graph.neighbors(ix) {
                level[nb.index()] = level[nb.index()].max(level[ix.index()] + 1);
            }
        }
        let depth = level.iter().copied().max().map(|m| m + 1).unwrap_or(0);
        let mut waves = vec![Vec::new(); depth];
        for (i, l) in level.iter().enumerate() {
            waves[*l].push(i);
        }
        waves
    }
}

/// The plan summary `tessera plan` prints.
pub fn summary(plan: &Plan, workers: usize) -> String {
    let mut out = String::new();
    for (k, s) in plan.stages.iter().enumerate() {
        let _ = write!(
            out,
            "stage {k}: {}: {} task{}",
            s.name,
            s.tasks,
            if s.tasks == 1 { "" } else { "s" }
        );
        match &s.kind {
            StageKind::Write { grid, chunks } => {
                let _ = write!(out, " (chunk grid {}", fmt_shape(&grid.grid_shape()));
                if chunks.is_some() {
                    let _ = write!(out, ", pruned from {}", grid.num_chunks());
                }
                if let Some(b) = &s.block {
                    let _ = write!(
                        out,
                        "; rechunks {} in blocks of {} chunks, {}",
                        b.node,
                        fmt_shape(&b.per),
                        b.reads()
                    );
                }
                out.push(')');
            }
            StageKind::Reduce { split, .. } => {
                let _ = write!(
                    out,
                    " ({} block{} x {} group{} of chunks)",
                    split.blocks,
                    if split.blocks == 1 { "" } else { "s" },
                    split.groups,
                    if split.groups == 1 { "" } else { "s" }
                );
            }
            StageKind::Label { grid, .. } | StageKind::Props { grid } => {
                let _ = write!(out, " (chunk grid {})", fmt_shape(&grid.grid_shape()));
            }
            StageKind::Values => {}
        }
        let deps: Vec<String> = plan
            .graph
            .neighbors_directed(
                petgraph::graph::NodeIndex::new(k),
                petgraph::Direction::Incoming,
            )
            .map(|d| d.index().to_string())
            .collect();
        if !deps.is_empty() {
            let mut deps = deps;
            deps.sort();
            let _ = write!(out, ", after stage {}", deps.join(", "));
        }
        let _ = writeln!(
            out,
            ", reads {}, writes {}",
            crate::lower::human(s.bytes_read),
            crate::lower::human(s.bytes_written)
        );
    }
    let _ = writeln!(
        out,
        "total: {} task{} in {} stage{}; projected peak memory {} with {workers} worker{}",
        plan.total_tasks(),
        if plan.total_tasks() == 1 { "" } else { "s" },
        plan.stages.len(),
        if plan.stages.len() == 1 { "" } else { "s" },
        crate::lower::human(plan.projected_peak(workers)),
        if workers == 1 { "" } else { "s" }
    );
    out
}

/// Regions of a write that intersect one output chunk, in list order.
pub fn fragments(regions: &[Region], chunk: &Region) -> Vec<(usize, Region)> {
    regions
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.intersect(chunk).map(|x| (i, x)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hilbert_cells_follow_the_sorted_curve() {
        for (rows, cols) in [(1, 1), (1, 7), (5, 3), (7, 9), (16, 16), (3, 33)] {
            let side = u64::max(rows, cols).next_power_of_two();
            let mut cells: Vec<(u64, u64)> = (0..rows)
                .flat_map(|y| (0..cols).map(move |x| (y, x)))
                .collect();
            cells.sort_by_key(|(y, x)| hilbert(side, *y, *x));
            let lazy: Vec<(u64, u64)> = (0..rows * cols)
                .map(|k| hilbert_cell(side, rows, cols, k))
                .collect();
            assert_eq!(lazy, cells, "{rows}x{cols}");
        }
    }

    #[test]
    fn neighbourhoods_grow_with_deep_halos() {
        let big = [1 << 20, 1 << 20];
        assert_eq!(neighbourhood(&[4, 4], &[16, 16], &big), 9);
        assert_eq!(neighbourhood(&[0, 20], &[16, 16], &big), 5);
        assert_eq!(neighbourhood(&[16, 17], &[16, 16], &big), 15);
        // A halo deeper than the array reaches every chunk, no more.
        assert_eq!(neighbourhood(&[50_000, 1 << 20], &[2, 1], &[4, 4]), 8);
    }
}
