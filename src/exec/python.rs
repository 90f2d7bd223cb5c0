//! Evaluates `Op::PyBlock`: for every output block a region touches, reads the input
//! block with its halo (extended past the array edge with the boundary mode), calls the
//! Python function on it in one of the run's worker processes, checks the returned shape
//! and dtype, trims the halo (dask's `map_overlap`) and copies the part inside the region.
//! A block is always the function's result on the same input block, whatever the task or
//! the tiling that asks for it, so results do not depend on chunks or workers.

use super::eval::{eval, Ctx};
use super::{layout, ExecError};
use crate::data::Buf;
use crate::diag::{codes, Diagnostic};
use crate::geom::{fmt_shape, iter_box, Region};
use crate::ir::{Boundary, NodeId, PyBlock};

pub fn eval_pyblock(ctx: &Ctx, id: NodeId, b: &PyBlock, region: &Region) -> Result<Buf, ExecError> {
    let out_ty = ctx.program.ty(id);
    let grid = PyBlock::out_grid(out_ty);
    let touched = grid.chunks_touching(region);
    let rshape = region.shape();
    let mut out: Option<Buf> = None;
    for idx in iter_box(&touched) {
        let oblock = grid.chunk_region(&idx);
        let result = block(ctx, id, b, &idx, &oblock)?;
        if oblock == *region {
            return Ok(result);
        }
        let Some(part) = oblock.intersect(region) else {
            continue;
        };
        let piece = layout::extract(&result, &oblock.shape(), &part.relative_to(&oblock));
        let dst = out.get_or_insert_with(|| Buf::zeros(out_ty.dtype, region.size() as usize));
        layout::copy_into(
            dst,
            &rshape,
            &part.relative_to(region).start,
            &piece,
            &part.shape(),
        );
    }
    Ok(out.unwrap_or_else(|| Buf::zeros(out_ty.dtype, region.size() as usize)))
}

/// Output block `idx` (the region `oblock` of the output): one call of the function.
fn block(
    ctx: &Ctx,
    id: NodeId,
    b: &PyBlock,
    idx: &[u64],
    oblock: &Region,
) -> Result<Buf, ExecError> {
    let node = ctx.program.node(id);
    let in_ty = ctx.program.ty(b.x);
    let ib = b.input_block(in_ty, idx);
    let nd = in_ty.ndim();
    // The block with its halo, and where the block itself starts inside it.
    let (data, grown, lead): (Buf, Vec<u64>, Vec<u64>) = if b.halo.iter().all(|h| *h == 0) {
        (eval(ctx, b.x, &ib)?, ib.shape(), vec![0; nd])
    } else if b.boundary == Boundary::None {
        let r = ib.grow_clamped(&b.halo, &in_ty.shape);
        let lead = ib.start.iter().zip(&r.start).map(|(a, s)| a - s).collect();
        (eval(ctx, b.x, &r)?, r.shape(), lead)
    } else {
        let fetch = |r: &Region| eval(ctx, b.x, r);
        let h: Vec<usize> = b.halo.iter().map(|v| *v as usize).collect();
        let (ext, shape, _) = super::stencil::extended(&fetch, in_ty, &ib, &h, b.boundary)?;
        (
            ext,
            shape.iter().map(|v| *v as u64).collect(),
            b.halo.clone(),
        )
    };
    let pool = ctx
        .python
        .ok_or_else(|| ExecError::internal("no Python workers were started for this run"))?;
    let f = &b.func;
    let context = format!("on block {} (input region {ib})", fmt_idx(idx));
    let (res, rshape) = pool
        .with_worker(&f.interpreter, |w| w.call(f, data, &grown))
        .map_err(|e| {
            ExecError::User(Box::new(crate::lower::user_code::py_diag(
                &e, f, node.span, &context,
            )))
        })?;
    let expected = b.expected_shape(&grown);
    if rshape != expected {
        return Err(ExecError::User(Box::new(
            Diagnostic::error(
                codes::PY_SHAPE,
                format!(
                    "`{}` returned shape {} {context}; expected {}",
                    f.spec,
                    fmt_shape(&rshape),
                    fmt_shape(&expected)
                ),
            )
            .label(node.span, "called here")
            .note(format!(
                "the block it was given has shape {}",
                fmt_shape(&grown)
            ))
            .help("describe blocks that change shape with map_blocks(f, chunks=...)"),
        )));
    }
    if res.dtype() != node.ty.dtype {
        return Err(ExecError::User(Box::new(
            Diagnostic::error(
                codes::PY_DTYPE,
                format!(
                    "`{}` returned {} {context}; expected {} (shape {})",
                    f.spec,
                    res.dtype().numpy_name(),
                    node.ty.dtype.numpy_name(),
                    fmt_shape(&rshape)
                ),
            )
            .label(node.span, "called here")
            .help("return the same dtype for every block, or declare it with dtype="),
        )));
    }
    // Trim the halo back: along axes that keep the input block's length, the block starts
    // at `lead` inside the result.
    let trim_start: Vec<u64> = b
        .axis_of
        .iter()
        .zip(&b.block)
        .map(|(a, n)| match (a, n) {
            (Some(a), None) => lead[*a],
            _ => 0,
        })
        .collect();
    let oshape = oblock.shape();
    if trim_start.iter().all(|t| *t == 0) && oshape == rshape {
        return Ok(res);
    }
    let end: Vec<u64> = trim_start.iter().zip(&oshape).map(|(s, n)| s + n).collect();
    Ok(layout::extract(
        &res,
        &rshape,
        &Region::new(trim_start, end),
    ))
}

fn fmt_idx(idx: &[u64]) -> String {
    match idx {
        [i] => format!("({i},)"),
        _ => format!(
            "({})",
            idx.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
