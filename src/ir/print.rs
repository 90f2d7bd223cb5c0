//! Deterministic text form of a program (what `tessera plan` and the snapshots show).

use super::{AxisIndex, Boundary, Instr, NodeId, Op, Program, SinkKind};
use crate::data::Buf;
use std::fmt::Write;

/// A scalar constant as NumPy would print it.
pub fn fmt_scalar(b: &Buf) -> String {
    match b {
        Buf::Bool(v) => (if v[0] { "true" } else { "false" }).to_string(),
        Buf::F32(v) => format!("{:?}", v[0]),
        Buf::F64(v) => format!("{:?}", v[0]),
        Buf::C64(v) => format!("({:?}{:+?}j)", v[0].re, v[0].im),
        Buf::C128(v) => format!("({:?}{:+?}j)", v[0].re, v[0].im),
        Buf::I8(v) => v[0].to_string(),
        Buf::I16(v) => v[0].to_string(),
        Buf::I32(v) => v[0].to_string(),
        Buf::I64(v) => v[0].to_string(),
        Buf::U8(v) => v[0].to_string(),
        Buf::U16(v) => v[0].to_string(),
        Buf::U32(v) => v[0].to_string(),
        Buf::U64(v) => v[0].to_string(),
    }
}

fn fmt_op(op: &Op) -> String {
    let args = |ids: &[NodeId]| {
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match op {
        Op::Zarr { path } => format!("zarr({path:?})"),
        Op::Images { stack } => format!(
            "{}({:?}, files={}, pages={}, axes={:?})",
            stack.format.name(),
            stack.pattern,
            stack.files.len(),
            stack.pages,
            stack.axes
        ),
        Op::Fill { value } => format!("fill({})", fmt_scalar(value)),
        Op::Arange { start, step } => format!("arange(start={start:?}, step={step:?})"),
        Op::Random { seed } => format!("random(seed={seed})"),
        Op::Index { x, axes } => {
            let parts: Vec<String> = axes
                .iter()
                .map(|a| match a {
                    AxisIndex::Int(i) => i.to_string(),
                    AxisIndex::NewAxis => "none".into(),
                    AxisIndex::Range { start, step, len } => {
                        format!("{start}+{step}*[0:{len}]")
                    }
                })
                .collect();
            format!("index({x}, [{}])", parts.join(", "))
        }
        Op::Stencil {
            x,
            kernel,
            halo,
            boundary,
        } => {
            let params: Vec<String> = kernel.params.iter().map(|p| format!("{p:?}")).collect();
            let b = match boundary {
                Boundary::Constant(c) => format!("constant(cval={c:?})"),
                b => b.name().to_string(),
            };
            format!(
                "{}({x}, [{}]) halo {} boundary {b}",
                kernel.name(),
                params.join(", "),
                crate::geom::fmt_shape(halo)
            )
        }
        Op::Fused { inputs, expr } => {
            let mut body = Vec::new();
            for (i, ins) in expr.instrs.iter().enumerate() {
                let s = match ins {
                    Instr::Input(n, _) => format!("in{n}"),
                    Instr::Const(b) => fmt_scalar(b),
                    Instr::Unary(op, x, _) => format!("{}(r{x})", op.name()),
                    Instr::Binary(op, a, b, _) => format!("{}(r{a}, r{b})", op.name()),
                    Instr::Where(c, a, b, _) => format!("where(r{c}, r{a}, r{b})"),
                    Instr::Cast(x, d) => format!("{d}(r{x})"),
                };
                body.push(format!("r{i}={s}"));
            }
            format!("fused({}) {{ {} }}", args(inputs), body.join("; "))
        }
        Op::Reduce { x, op, axes, ddof } => {
            let ax: Vec<String> = axes.iter().map(|a| a.to_string()).collect();
            let mut s = format!("{}({x}, axis=({}))", op.name(), ax.join(", "));
            if *ddof != 0 {
                let _ = write!(s, " ddof={ddof}");
            }
            s
        }
        Op::Transpose { x, perm } => {
            let p: Vec<String> = perm.iter().map(|a| a.to_string()).collect();
            format!("transpose({x}, ({}))", p.join(", "))
        }
        Op::Concat { inputs, axis } => format!("concat({}, axis={axis})", args(inputs)),
        Op::Fft { x, axis, kind } => format!("{}({x}, axis={axis})", kind.name()),
        Op::Label { x, connectivity } => format!("label({x}, connectivity={connectivity})"),
        Op::Coarsen {
            x,
            factors,
            method,
            trim,
        } => format!(
            "coarsen({x}, {}, reduce={}{})",
            crate::geom::fmt_shape(factors),
            method.name(),
            if *trim { ", trim" } else { "" }
        ),
        Op::PyBlock(b) => {
            let mut s = format!("python({}, {:?}", b.x, b.func.spec);
            if b.func.kwargs != "{}" {
                s.push_str(&format!(", kwargs {}", b.func.kwargs));
            }
            s.push(')');
            if b.halo.iter().any(|h| *h > 0) {
                s.push_str(&format!(
                    " halo {} boundary {}",
                    crate::geom::fmt_shape(&b.halo),
                    b.boundary.name()
                ));
            }
            s
        }
        other => format!("{}({})", other.name(), args(&other.inputs())),
    }
}

/// The live part of a program, one node per line, then its sinks.
pub fn print_program(p: &Program) -> String {
    let mut out = String::new();
    for id in p.live_nodes() {
        let n = p.node(id);
        let _ = writeln!(out, "{id} = {} : {}", fmt_op(&n.op), n.ty);
    }
    for s in &p.sinks {
        match &s.kind {
            SinkKind::Write(w) => {
                let level = w.level.map(|l| format!(" level {l}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "write {:?} <- {} chunks {} codec {}{level}{}",
                    w.path,
                    s.node,
                    crate::geom::fmt_shape(&w.chunks),
                    w.codec,
                    if w.overwrite { " overwrite" } else { "" }
                );
            }
            SinkKind::PrintValues { label } => {
                let _ = writeln!(out, "print {label} <- {}", s.node);
            }
            SinkKind::Preview { path, .. } => {
                let _ = writeln!(out, "preview {path:?} <- {}", s.node);
            }
            SinkKind::Props { label, csv, .. } => match csv {
                Some((path, _)) => {
                    let _ = writeln!(out, "regionprops {path:?} <- {}", s.node);
                }
                None => {
                    let _ = writeln!(out, "print {label} <- {}", s.node);
                }
            },
            SinkKind::PropsIntensity => {
                let _ = writeln!(out, "  intensity <- {}", s.node);
            }
        }
    }
    out
}

/// One-line type of a node, as `tessera check` prints arrays.
pub fn type_summary(p: &Program, id: NodeId) -> String {
    type_summary_with(p, id, p.max_halo(id).as_deref())
}

/// `type_summary` with the node's halo already known (`Program::max_halos`).
pub fn type_summary_with(p: &Program, id: NodeId, halo: Option<&[u64]>) -> String {
    let n = p.node(id);
    let mut s = n.ty.to_string();
    if let Some(h) = halo {
        let _ = write!(s, " halo {}", crate::geom::fmt_shape(h));
    }
    if let Some(sp) = &n.space {
        let _ = write!(s, " {}", sp.summary());
    }
    s
}

/// Element `i` of an integer buffer as text.
pub fn print_scalar_at(b: &Buf, i: usize) -> String {
    match b {
        Buf::I8(v) => v[i].to_string(),
        Buf::I16(v) => v[i].to_string(),
        Buf::I32(v) => v[i].to_string(),
        Buf::I64(v) => v[i].to_string(),
        Buf::U8(v) => v[i].to_string(),
        Buf::U16(v) => v[i].to_string(),
        Buf::U32(v) => v[i].to_string(),
        Buf::U64(v) => v[i].to_string(),
        other => format!("{}", other.get_f64(i)),
    }
}

/// The program as a Graphviz DOT graph: one node per live op (sources as boxes, stencils
/// as octagons, sinks as notes), coloured by the output it feeds.
pub fn to_dot(p: &Program) -> String {
    const COLOURS: [&str; 8] = [
        "#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5",
    ];
    let mut colour_of = vec![None; p.nodes.len()];
    for (si, s) in p.sinks.iter().enumerate() {
        let mut seen = vec![false; p.nodes.len()];
        let mut order = Vec::new();
        p.post_order(s.node, &mut seen, &mut order);
        for id in order {
            colour_of[id.index()].get_or_insert(COLOURS[si % COLOURS.len()]);
        }
    }
    let mut out = String::from(
        "digraph tessera {\n  rankdir=LR;\n  node [style=filled, fontname=\"monospace\"];\n",
    );
    for id in p.live_nodes() {
        let n = p.node(id);
        let shape = if n.op.is_source() {
            "box"
        } else if n.op.footprint().is_some() {
            "octagon"
        } else {
            "ellipse"
        };
        let label = format!("{id} {}\\n{}", n.op.name(), n.ty).replace('"', "'");
        let _ = writeln!(
            out,
            "  n{} [label=\"{label}\", shape={shape}, fillcolor=\"{}\"];",
            id.0,
            colour_of[id.index()].unwrap_or("white")
        );
        for i in n.op.inputs() {
            let _ = writeln!(out, "  n{} -> n{};", i.0, id.0);
        }
    }
    for (si, s) in p.sinks.iter().enumerate() {
        let label = match &s.kind {
            SinkKind::Write(w) => format!("write {}", w.path),
            SinkKind::PrintValues { label } => format!("print {label}"),
            SinkKind::Preview { path, .. } => format!("preview {path}"),
            SinkKind::Props { label, .. } => format!("regionprops {label}"),
            SinkKind::PropsIntensity => "intensity".to_string(),
        }
        .replace('"', "'");
        let _ = writeln!(
            out,
            "  s{si} [label=\"{label}\", shape=note, fillcolor=\"{}\"];\n  n{} -> s{si};",
            COLOURS[si % COLOURS.len()],
            s.node.0
        );
    }
    out.push_str("}\n");
    out
}
