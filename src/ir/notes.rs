//! Decisions the optimizer's analysis passes record beside the nodes (they never change
//! what is computed): how stencil chains read their inputs (`merge_halos`) and which
//! regions of each node the sinks need (`prune_to_regions`). The planner reads them for
//! its task lists and estimates; `tessera plan --explain` prints them.

use super::{NodeId, Program, SinkKind};
use crate::geom::{fmt_shape, Region};
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Notes {
    /// Per stencil that reads other stencils through elementwise ops only (the top of a
    /// chain): how the chain is evaluated.
    pub halos: BTreeMap<NodeId, HaloMerge>,
    /// Per node: the boxes of it that the sinks need, when that is less than the whole
    /// array. A node absent here is needed whole.
    pub needed: BTreeMap<NodeId, Vec<Region>>,
    /// Per sink, once `prune_to_regions` ran: the regions of its output it writes
    /// (`None`: the whole output).
    pub written: Option<Vec<Option<Vec<Region>>>>,
}

/// A chain of stencils evaluated in one task: the top stencil asks the inner ones for its
/// region plus its halo, so the chain's base inputs are read once with the summed halo
/// and the inner stencils are recomputed on the halo ring instead of being written out
/// and read back.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct HaloMerge {
    /// Stencils below the top, reached through elementwise ops, nearest first.
    pub inner: Vec<NodeId>,
    /// Halo per axis the chain reads around each output chunk from its base inputs (the
    /// sum of the halos along the deepest path).
    pub total_halo: Vec<u64>,
    /// The chain's base inputs (the first nodes below it that are neither stencils nor
    /// elementwise, constants left out).
    pub bases: Vec<NodeId>,
    /// Estimated extra work per output chunk of recomputing the inner chain on the halo
    /// ring (in the units of `Op::cost_per_element`).
    pub recompute: f64,
    /// Estimated cost per output chunk of writing every inner stencil's output and
    /// reading it back with its consumer's halo instead.
    pub materialise: f64,
}

impl HaloMerge {
    pub fn materialising_is_cheaper(&self) -> bool {
        self.materialise < self.recompute
    }
}

impl Notes {
    /// Renumber after the arena was compacted or reordered; notes about nodes that are
    /// gone are dropped.
    pub fn remap(&mut self, new_id: &[Option<NodeId>]) {
        let map = |id: NodeId| new_id.get(id.index()).copied().flatten();
        self.halos = std::mem::take(&mut self.halos)
            .into_iter()
            .filter_map(|(k, mut v)| {
                let k = map(k)?;
                v.inner = v.inner.iter().filter_map(|i| map(*i)).collect();
                v.bases = v.bases.iter().filter_map(|i| map(*i)).collect();
                Some((k, v))
            })
            .collect();
        self.needed = std::mem::take(&mut self.needed)
            .into_iter()
            .filter_map(|(k, v)| Some((map(k)?, v)))
            .collect();
    }

    /// Stencils evaluated inside another stencil's task (the inner parts of chains).
    pub fn merged_inner(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .halos
            .values()
            .flat_map(|m| m.inner.iter().copied())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The halo a stencil's task reads from its chain's base inputs: the chain's total
    /// when it tops a chain, else its own footprint.
    pub fn read_halo(&self, p: &Program, id: NodeId) -> Option<Vec<u64>> {
        match self.halos.get(&id) {
            Some(m) => Some(m.total_halo.clone()),
            None => p.node(id).op.footprint().map(<[u64]>::to_vec),
        }
    }
}

fn fmt_cost(c: f64) -> String {
    if c >= 1e6 {
        format!("{:.2e}", c)
    } else {
        format!("{c:.0}")
    }
}

/// The `merge_halos` decisions, one line per chain.
pub fn print_halo_notes(p: &Program) -> String {
    let mut out = String::new();
    if p.notes.halos.is_empty() {
        out.push_str("no stencil reads another stencil\n");
    }
    for (top, m) in &p.notes.halos {
        let inner: Vec<String> = m
            .inner
            .iter()
            .map(|i| format!("{i} {}", p.node(*i).op.name()))
            .collect();
        let bases: Vec<String> = m.bases.iter().map(|b| b.to_string()).collect();
        let _ = writeln!(
            out,
            "{top} {} merges {}: reads {} once with halo {}",
            p.node(*top).op.name(),
            inner.join(", "),
            bases.join(", "),
            fmt_shape(&m.total_halo)
        );
        let verdict = if m.materialising_is_cheaper() {
            "materialising would be cheaper, but the runtime does not materialise intermediates"
        } else {
            "recomputing is cheaper"
        };
        let _ = writeln!(
            out,
            "  per chunk: recompute halo ring {} vs materialise {}: {verdict}",
            fmt_cost(m.recompute),
            fmt_cost(m.materialise)
        );
    }
    out
}

/// The `prune_to_regions` results: regions each write touches, then every node needed
/// only in part.
pub fn print_region_notes(p: &Program) -> String {
    let mut out = String::new();
    let written = p.notes.written.as_deref().unwrap_or(&[]);
    let mut any = false;
    for (s, w) in p.sinks.iter().zip(written) {
        if let (SinkKind::Write(spec), Some(rs)) = (&s.kind, w) {
            any = true;
            let _ = writeln!(out, "write {:?} touches {}", spec.path, fmt_boxes(rs));
        }
    }
    for (id, rs) in &p.notes.needed {
        any = true;
        let _ = writeln!(
            out,
            "{id} {} needs {} of {}",
            p.node(*id).op.name(),
            fmt_boxes(rs),
            fmt_shape(&p.ty(*id).shape)
        );
    }
    if !any {
        out.push_str("every sink needs its whole array\n");
    }
    out
}

fn fmt_boxes(rs: &[Region]) -> String {
    match rs {
        [] => "nothing".into(),
        [one] => one.to_string(),
        few if few.len() <= 4 => few
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(" + "),
        _ => {
            let bound = rs.iter().skip(1).fold(rs[0].clone(), |a, b| a.union_box(b));
            format!("{} boxes within {bound}", rs.len())
        }
    }
}
