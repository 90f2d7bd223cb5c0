//! Evaluates one node over one region of its output by pulling the regions it needs
//! from its inputs (bounds inference at run time). Nothing outside the region is read
//! or computed, and no buffer outlives the task.

use super::{fused, layout, sources, ExecError};
use crate::data::Buf;
use crate::geom::{strides, Region};
use crate::io::ZarrReader;
use crate::ir::{AxisIndex, FusedExpr, Instr, NodeId, Op, Program};
use std::collections::HashMap;
use std::sync::Arc;

/// A value computed whole by an earlier stage: a reduction's result, or the label table
/// of a `label` node.
pub enum Prepared {
    Array(Arc<Buf>),
    Labels(Arc<super::label::LabelTable>),
}

pub struct Ctx<'a> {
    pub program: &'a Program,
    pub readers: &'a HashMap<String, Arc<ZarrReader>>,
    /// Decoded chunks shared by tasks whose regions overlap (halos).
    pub cache: &'a super::cache::ChunkCache,
    /// Results of reductions and label tables computed by earlier stages.
    pub prepared: &'a HashMap<NodeId, Prepared>,
    /// A block of one node's values a task loaded once for all its chunks (rechunking).
    pub local: Option<&'a (NodeId, Region, Buf)>,
    /// The run's Python workers, when the program calls Python.
    pub python: Option<&'a crate::io::python::Pool>,
    /// Decoded chunks of inputs that stages of later waves read again.
    pub kept: Option<&'a super::cache::KeptChunks>,
    /// Outputs that later stages of the same wave read (chained): each chunk written is
    /// offered to the chunk cache, so its readers need not decode it.
    pub hand_off: &'a [String],
}

pub fn eval(ctx: &Ctx, id: NodeId, region: &Region) -> Result<Buf, ExecError> {
    let node = ctx.program.node(id);
    let n = region.size() as usize;
    if n == 0 {
        return Ok(Buf::zeros(node.ty.dtype, 0));
    }
    match &node.op {
        Op::Zarr { path } => {
            let r = ctx
                .readers
                .get(path)
                .ok_or_else(|| ExecError::internal(format!("input {path} was not opened")))?;
            if let Some(kept) = ctx.kept.filter(|k| k.holds(path)) {
                return ctx.cache.read_kept(kept, path, r, region);
            }
            let m = r.meta();
            let grid = crate::geom::ChunkGrid::new(m.shape.clone(), m.chunks.clone());
            let one = grid.is_chunk(region) || grid.chunks_touching(region).size() == 1;
            // A chunk a chained stage just wrote is in the cache: no need to decode it.
            // (Only outputs handed off in this wave are looked up: no lock otherwise.)
            let handed = || {
                ctx.hand_off.iter().any(|p| p == path)
                    && ctx
                        .cache
                        .holds(path, grid.flatten(&grid.chunk_of_start(region)))
            };
            if one && !handed() {
                // Inside one chunk: decode it directly; nobody else needs it.
                ctx.cache.count_request();
                r.read_region(region).map_err(ExecError::Io)
            } else {
                ctx.cache.read(path, r, region)
            }
        }
        Op::Images { stack } => {
            ctx.cache.count_request();
            sources::images(stack, region).map_err(|e| ExecError::Io(e.into()))
        }
        Op::Fill { value } => Ok(sources::filled(value, n)),
        Op::Arange { start, step } => Ok(sources::arange(*start, *step, node.ty.dtype, region)),
        Op::Random { seed } => Ok(sources::random(
            *seed,
            node.ty.dtype,
            &node.ty.shape,
            region,
        )),
        Op::Fused { inputs, expr } => {
            let bufs = inputs
                .iter()
                .map(|i| operand(ctx, *i, region))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(fused::run(expr, &bufs, node.ty.dtype, n))
        }
        Op::Unary { .. } | Op::Binary { .. } | Op::Where { .. } | Op::Cast { .. } => {
            // An unfused elementwise op runs as a one-instruction kernel.
            let inputs = node.op.inputs();
            let mut instrs: Vec<Instr> = inputs
                .iter()
                .enumerate()
                .map(|(k, i)| Instr::Input(k, ctx.program.ty(*i).dtype))
                .collect();
            let dt = node.ty.dtype;
            instrs.push(match &node.op {
                Op::Unary { op, .. } => Instr::Unary(*op, 0, dt),
                Op::Binary { op, .. } => Instr::Binary(*op, 0, 1, dt),
                Op::Where { .. } => Instr::Where(0, 1, 2, dt),
                _ => Instr::Cast(0, dt),
            });
            let bufs = inputs
                .iter()
                .map(|i| operand(ctx, *i, region))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(fused::run(&FusedExpr { instrs }, &bufs, dt, n))
        }
        Op::Broadcast { x } => {
            let (src, st) = broadcast_view(ctx, id, *x, region)?;
            Ok(layout::gather(&src, 0, &st, &region.shape()))
        }
        Op::Index { x, axes } => {
            // Per input axis: (out axis, first input index, step) or an Int.
            let mut map: Vec<Option<(usize, i64, i64)>> = Vec::new();
            let mut oax = 0usize;
            for a in axes {
                match a {
                    AxisIndex::Range { start: s, step, .. } => {
                        let i0 = *s as i64 + step * region.start[oax] as i64;
                        map.push(Some((oax, i0, *step)));
                        oax += 1;
                    }
                    AxisIndex::Int(_) => map.push(None),
                    AxisIndex::NewAxis => oax += 1,
                }
            }
            let inr = input_region(ctx, id, region);
            let src = eval(ctx, *x, &inr)?;
            let ist = strides(&inr.shape());
            let mut st = vec![0isize; region.ndim()];
            let mut offset = 0isize;
            for (j, m) in map.iter().enumerate() {
                if let Some((oa, i0, step)) = m {
                    st[*oa] = *step as isize * ist[j] as isize;
                    offset += (*i0 - inr.start[j] as i64) as isize * ist[j] as isize;
                }
            }
            Ok(layout::gather(&src, offset, &st, &region.shape()))
        }
        Op::Stencil {
            x,
            kernel,
            halo,
            boundary,
        } => super::stencil::eval_stencil(ctx, *x, kernel, halo, *boundary, &node.ty, region),
        Op::Reduce { .. } => {
            let Some(Prepared::Array(full)) = ctx.prepared.get(&id) else {
                return Err(ExecError::internal(format!(
                    "the reduction {id} was not computed"
                )));
            };
            Ok(layout::extract(full, &node.ty.shape, region))
        }
        Op::Transpose { x, perm } => {
            let inr = input_region(ctx, id, region);
            let src = eval(ctx, *x, &inr)?;
            let ist = strides(&inr.shape());
            let st: Vec<isize> = perm.iter().map(|p| ist[*p] as isize).collect();
            Ok(layout::gather(&src, 0, &st, &region.shape()))
        }
        Op::Rechunk { x } => match ctx.local {
            Some((lid, lr, data)) if *lid == *x && lr.contains(region) => {
                Ok(layout::extract(data, &lr.shape(), &region.relative_to(lr)))
            }
            _ => eval(ctx, *x, region),
        },
        Op::Reshape { x } => reshape(ctx, *x, &node.ty.shape, region),
        Op::Concat { inputs, axis } => {
            let shape = region.shape();
            let mut out = Buf::zeros(node.ty.dtype, n);
            let mut off = 0;
            for i in inputs {
                let len = ctx.program.ty(*i).shape[*axis];
                let lo = region.start[*axis].max(off);
                let hi = region.end[*axis].min(off + len);
                if lo < hi {
                    let mut sub = region.clone();
                    sub.start[*axis] = lo - off;
                    sub.end[*axis] = hi - off;
                    let part = eval(ctx, *i, &sub)?;
                    let mut at = vec![0; shape.len()];
                    at[*axis] = lo - region.start[*axis];
                    layout::copy_into(&mut out, &shape, &at, &part, &sub.shape());
                }
                off += len;
            }
            Ok(out)
        }
        Op::Label { .. } => super::label_stage::eval_label(ctx, id, region),
        Op::Coarsen { .. } => super::coarsen::eval_coarsen(ctx, id, region),
        Op::PyBlock(b) => super::python::eval_pyblock(ctx, id, b, region),
        Op::Fft { x, axis, kind } => {
            let inr = input_region(ctx, id, region);
            let src = eval(ctx, *x, &inr)?;
            let dt = node.ty.dtype;
            let m = inr.size() as usize;
            let src = if src.dtype() == dt {
                src
            } else {
                let cast = FusedExpr {
                    instrs: vec![Instr::Input(0, src.dtype()), Instr::Cast(0, dt)],
                };
                fused::run(&cast, &[fused::Operand::Dense(src)], dt, m)
            };
            Ok(super::fft::transform(
                src,
                &inr.shape(),
                *axis,
                *kind,
                region,
            ))
        }
    }
}

/// The input region of broadcast `id` (of `x`) that `region` reads, and per output axis
/// its stride in that region's buffer (0 along broadcast axes).
fn broadcast_view(
    ctx: &Ctx,
    id: NodeId,
    x: NodeId,
    region: &Region,
) -> Result<(Buf, Vec<isize>), ExecError> {
    let xs = &ctx.program.ty(x).shape;
    let shape = &ctx.program.ty(id).shape;
    let off = region.ndim() - xs.len();
    let inr = input_region(ctx, id, region);
    let src = eval(ctx, x, &inr)?;
    let ist = strides(&inr.shape());
    let st: Vec<isize> = (0..region.ndim())
        .map(|a| match a.checked_sub(off) {
            Some(j) if !(xs[j] == 1 && shape[a] != 1) => ist[j] as isize,
            _ => 0,
        })
        .collect();
    Ok((src, st))
}

/// An input of an elementwise kernel over `region`: broadcasts stay strided views of
/// their (small) input instead of being expanded to the region's size.
fn operand(ctx: &Ctx, id: NodeId, region: &Region) -> Result<fused::Operand, ExecError> {
    if let Op::Broadcast { x } = &ctx.program.node(id).op {
        let (src, strides) = broadcast_view(ctx, id, *x, region)?;
        return Ok(fused::Operand::Strided {
            src,
            strides,
            shape: region.shape(),
        });
    }
    eval(ctx, id, region).map(fused::Operand::Dense)
}

/// The region of its one input that `id` reads for `region` (the rule `ir::bounds`
/// states for the optimizer and planner too).
fn input_region(ctx: &Ctx, id: NodeId, region: &Region) -> Region {
    crate::ir::bounds::input_regions(ctx.program, id, region)
        .swap_remove(0)
        .1
}

/// The elements of `region` of `reshape(x)`: each group of axes (equal products on both
/// sides) is a contiguous flat range, so the output is a strided view of the input box
/// that covers those ranges.
fn reshape(ctx: &Ctx, x: NodeId, out_shape: &[u64], region: &Region) -> Result<Buf, ExecError> {
    let xs = &ctx.program.ty(x).shape;
    let groups = crate::geom::reshape_groups(xs, out_shape);
    let (inr, bases) = crate::geom::reshape_input_box(xs, out_shape, region);
    let src = eval(ctx, x, &inr)?;
    let ib = strides(&inr.shape());
    let mut st = vec![0isize; out_shape.len()];
    let mut offset = 0isize;
    for ((ins, outs), base) in groups.iter().zip(&bases) {
        if ins.is_empty() {
            continue;
        }
        let unit = ib[ins.end - 1] as isize;
        offset -= *base as isize * unit;
        let gst = strides(&out_shape[outs.clone()]);
        for a in outs.clone() {
            st[a] = gst[a - outs.start] as isize * unit;
            offset += region.start[a] as isize * st[a];
        }
    }
    Ok(layout::gather(&src, offset, &st, &region.shape()))
}
