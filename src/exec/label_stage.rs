//! The runtime side of `label` and `regionprops`: chunk tasks of a label stage scan the
//! mask (pass 1), the scans are resolved in chunk order after the wave, and evaluating a
//! `label` node over any region relabels the chunks it touches through the table (pass 2).
//! Region measurements accumulate per chunk and merge in chunk order.

use super::eval::{eval, Ctx, Prepared};
use super::label::{label_region, scan_chunk, ChunkScan, LabelTable};
use super::regionprops::{accumulate_chunk, merge_in_order, PropsAcc, RegionProps};
use super::ExecError;
use crate::data::Buf;
use crate::geom::{ChunkGrid, Region};
use crate::ir::{NodeId, Op, Program};

/// What one task of a label or measurement stage leaves for the end of the wave.
pub(super) enum Part {
    Scan(ChunkScan),
    Props(PropsAcc),
}

fn label_op(program: &Program, id: NodeId) -> (NodeId, usize) {
    match &program.node(id).op {
        Op::Label { x, connectivity } => (*x, *connectivity),
        _ => unreachable!("label stages compute labels"),
    }
}

/// Pass 1 over chunk `task` of the mask of the `label` node `id`.
pub(super) fn scan_task(
    ctx: &Ctx,
    id: NodeId,
    grid: &ChunkGrid,
    task: u64,
) -> Result<Part, ExecError> {
    let (x, conn) = label_op(ctx.program, id);
    let region = grid.chunk_region(&grid.unflatten(task));
    let mask = eval(ctx, x, &region)?;
    Ok(Part::Scan(scan_chunk(&grid.shape, &region, &mask, conn)))
}

/// The connectivity of the `label` node `id`.
pub(super) fn connectivity(program: &Program, id: NodeId) -> usize {
    label_op(program, id).1
}

/// The labels of `region` of the `label` node `id` (pass 2).
pub(super) fn eval_label(ctx: &Ctx, id: NodeId, region: &Region) -> Result<Buf, ExecError> {
    let (x, _) = label_op(ctx.program, id);
    let table: &LabelTable = match ctx.prepared.get(&id) {
        Some(Prepared::Labels(t)) => t,
        _ => {
            return Err(ExecError::internal(format!(
                "the labels {id} were not resolved"
            )))
        }
    };
    label_region(table, table.grid(), region, |r| eval(ctx, x, r))
}

/// Measurements of chunk `task` of `labels` (and of `intensity` over the same chunk).
pub(super) fn props_task(
    ctx: &Ctx,
    labels: NodeId,
    intensity: Option<NodeId>,
    grid: &ChunkGrid,
    task: u64,
) -> Result<Part, ExecError> {
    let region = grid.chunk_region(&grid.unflatten(task));
    let l = eval(ctx, labels, &region)?;
    let i = intensity.map(|i| eval(ctx, i, &region)).transpose()?;
    accumulate_chunk(&region, &l, i.as_ref())
        .map(Part::Props)
        .map_err(ExecError::Internal)
}

/// Merge the measurements of every chunk in chunk order.
pub(super) fn finish_props(ndim: usize, intensity: bool, parts: Vec<(u64, Part)>) -> RegionProps {
    let accs = parts
        .into_iter()
        .filter_map(|(t, p)| match p {
            Part::Props(a) => Some((t, a)),
            Part::Scan(_) => None,
        })
        .collect();
    merge_in_order(ndim, intensity, accs)
}

/// Write `text` to `path` atomically: a temporary file beside it, synced, then renamed.
/// Write a measured table to `path`: CSV, or an AnnData table (`write_table`).
pub(super) fn write_table(
    path: &std::path::Path,
    table: &super::regionprops::RegionProps,
    anndata: bool,
) -> Result<(), crate::io::IoError> {
    if !anndata {
        return write_csv(path, &table.to_csv());
    }
    let (columns, index, rows) = table.as_matrix();
    crate::io::anndata::write_table(path, &columns, &index, &rows).map_err(|e| {
        crate::io::IoError::Write {
            path: path.display().to_string(),
            chunk: None,
            detail: e.to_string(),
        }
    })
}

pub(super) fn write_csv(path: &std::path::Path, text: &str) -> Result<(), crate::io::IoError> {
    use std::io::Write as _;
    let err = |detail: String| crate::io::IoError::Write {
        path: path.display().to_string(),
        chunk: None,
        detail,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e.to_string()));
    }
    Ok(())
}
