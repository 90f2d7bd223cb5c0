//! Stages of connected-component labelling: one task per chunk of the mask scans it
//! (pass 1); after the wave the scans are resolved into a label table that later stages
//! read through (pass 2, any region, in parallel).

use super::{bytes_read, working_set, Stage, StageKind};
use crate::geom::ChunkGrid;
use crate::ir::{NodeId, Op, Program, SinkKind};
use petgraph::graph::DiGraph;

/// Bytes a chunk's local labelling holds besides the mask: labels, runs and their
/// union-find, at most a few words per pixel.
const SCAN_BYTES_PER_PIXEL: u64 = 12;
/// The table keeps 16 bytes per local component; planning assumes one component per this
/// many pixels (the real count is known only after the scans).
const PIXELS_PER_COMPONENT: u64 = 64;

/// One stage per live `label` node; returns the bytes the tables and scans hold.
pub(super) fn label_stages(
    p: &Program,
    stages: &mut Vec<Stage>,
    graph: &mut DiGraph<usize, ()>,
) -> u64 {
    let mut held: u64 = 0;
    for id in p.live_nodes() {
        let Op::Label { x, connectivity } = &p.node(id).op else {
            continue;
        };
        let xt = p.ty(*x);
        let grid = ChunkGrid::new(xt.shape.clone(), xt.chunks.clone());
        let chunk = chunk_shape(&grid);
        let pixels: u64 = chunk.iter().product();
        // Faces (4 bytes a pixel) of the chunks waiting for a neighbour — scanned in C
        // order, about one slab of the chunk grid — plus the table.
        let faces: u64 = (0..chunk.len())
            .map(|a| 2 * pixels / chunk[a].max(1) * 4)
            .sum();
        let slab = grid.num_chunks() / grid.grid_shape().first().copied().unwrap_or(1).max(1) + 2;
        held = held
            .saturating_add(slab.min(grid.num_chunks()).saturating_mul(faces))
            .saturating_add((xt.size() / PIXELS_PER_COMPONENT).saturating_mul(16));
        graph.add_node(stages.len());
        stages.push(Stage {
            sinks: vec![],
            name: format!("label {x} (connectivity {connectivity}) -> {id}"),
            tasks: grid.num_chunks(),
            task_bytes: working_set(p, *x, &chunk)
                .saturating_add(pixels.saturating_mul(SCAN_BYTES_PER_PIXEL)),
            bytes_read: bytes_read(p, *x, &chunk).saturating_mul(grid.num_chunks()),
            bytes_written: 0,
            kind: StageKind::Label { node: id, grid },
            block: None,
            order: super::TaskOrder::RowMajor,
        });
    }
    held
}

/// The shape of a full chunk (clipped to the array).
pub(super) fn chunk_shape(grid: &ChunkGrid) -> Vec<u64> {
    grid.chunks
        .iter()
        .zip(&grid.shape)
        .map(|(c, n)| (*c).min(*n))
        .collect()
}

/// The mask region pass 2 reads to label a region of `shape`: every chunk it touches
/// (regions are usually chunk-aligned, so the shape rounded up to whole chunks).
pub(super) fn mask_shape(p: &Program, x: NodeId, shape: &[u64]) -> Vec<u64> {
    let xt = p.ty(x);
    shape
        .iter()
        .zip(&xt.chunks)
        .zip(&xt.shape)
        .map(|((s, c), n)| (s.div_ceil((*c).max(1)) * c).min(*n).max(*s))
        .collect()
}

/// The stage of a `Props` sink: one task per chunk of the labels.
pub(super) fn props_stage(
    p: &Program,
    si: usize,
    stages: &mut Vec<Stage>,
    graph: &mut DiGraph<usize, ()>,
) {
    let s = &p.sinks[si];
    let SinkKind::Props {
        label, intensity, ..
    } = &s.kind
    else {
        return;
    };
    let t = p.ty(s.node);
    let grid = ChunkGrid::new(t.shape.clone(), t.chunks.clone());
    let chunk = chunk_shape(&grid);
    let mut sinks = vec![si];
    let mut task_bytes = working_set(p, s.node, &chunk);
    let mut read = bytes_read(p, s.node, &chunk);
    if *intensity {
        let i = p.sinks[si + 1].node;
        sinks.push(si + 1);
        task_bytes += working_set(p, i, &chunk);
        read += bytes_read(p, i, &chunk);
    }
    graph.add_node(stages.len());
    stages.push(Stage {
        sinks,
        name: label.clone(),
        tasks: grid.num_chunks(),
        task_bytes,
        bytes_read: read.saturating_mul(grid.num_chunks()),
        bytes_written: 0,
        kind: StageKind::Props { grid },
        block: None,
        order: super::TaskOrder::RowMajor,
    });
}
