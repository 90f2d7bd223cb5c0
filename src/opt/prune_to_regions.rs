//! Bounds inference from the sinks: walks back from every write's regions to the region
//! of each node that is actually needed (halos grow it, indexing maps it, broadcasting
//! collapses it, elementwise ops pass it on) and records the result in
//! `Program::notes` — per sink the regions of the output it writes, per node the boxes
//! needed when that is less than the whole array. The planner makes tasks only for the
//! output chunks those regions touch; nodes are not changed.

use super::Pass;
use crate::geom::Region;
use crate::ir::bounds::input_regions;
use crate::ir::{Program, SinkKind};
use std::collections::BTreeMap;

/// Above this many boxes a node's needed set is kept as their bounding box (the task
/// list itself comes from the sinks' own regions and stays exact).
const MAX_BOXES: usize = 64;

pub struct PruneToRegions;

#[derive(Clone, Debug)]
enum Need {
    Whole,
    Boxes(Vec<Region>),
}

fn add(need: &mut Option<Need>, r: Region, shape: &[u64]) {
    if r.is_empty() {
        return;
    }
    if r == Region::full(shape) {
        *need = Some(Need::Whole);
        return;
    }
    match need {
        Some(Need::Whole) => {}
        None => *need = Some(Need::Boxes(vec![r])),
        Some(Need::Boxes(v)) => {
            if v.iter().any(|b| b.contains(&r)) {
                return;
            }
            v.retain(|b| !r.contains(b));
            v.push(r);
            if v.len() > MAX_BOXES {
                let bound = v.iter().skip(1).fold(v[0].clone(), |a, b| a.union_box(b));
                *v = vec![bound];
            }
        }
    }
}

impl Pass for PruneToRegions {
    fn name(&self) -> &'static str {
        "prune_to_regions"
    }

    fn run(&self, p: &mut Program) -> bool {
        let mut need: Vec<Option<Need>> = vec![None; p.nodes.len()];
        let mut written = Vec::with_capacity(p.sinks.len());
        for s in &p.sinks {
            let shape = &p.ty(s.node).shape;
            match &s.kind {
                SinkKind::Write(w) if !w.regions.is_empty() => {
                    written.push(Some(w.regions.clone()));
                    if w.placed {
                        // The data has the region's shape and is placed whole.
                        need[s.node.index()] = Some(Need::Whole);
                    } else {
                        for r in &w.regions {
                            add(&mut need[s.node.index()], r.clone(), shape);
                        }
                    }
                }
                _ => {
                    written.push(None);
                    need[s.node.index()] = Some(Need::Whole);
                }
            }
        }
        let live = p.live_nodes();
        for &u in live.iter().rev() {
            let boxes = match &need[u.index()] {
                None => continue,
                Some(Need::Whole) => vec![Region::full(&p.ty(u).shape)],
                Some(Need::Boxes(v)) => v.clone(),
            };
            for b in &boxes {
                for (i, r) in input_regions(p, u, b) {
                    let shape = p.ty(i).shape.clone();
                    add(&mut need[i.index()], r, &shape);
                }
            }
        }
        let needed: BTreeMap<_, _> = live
            .iter()
            .filter_map(|id| match &need[id.index()] {
                Some(Need::Boxes(v)) => {
                    let mut v = v.clone();
                    v.sort();
                    Some((*id, v))
                }
                _ => None,
            })
            .collect();
        let written = Some(written);
        let changed = needed != p.notes.needed || written != p.notes.written;
        p.notes.needed = needed;
        p.notes.written = written;
        changed
    }

    fn describe(&self, p: &Program) -> Option<String> {
        Some(crate::ir::notes::print_region_notes(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_flow_back_through_halos_and_indexing() {
        let mut p = crate::opt::tests::lower(
            "let x = random((100, 200), chunks=(50, 50))\nlet y = x[::2, 10:110].map(uniform(5)) + 1\ny.write(\"OUT\", regions=[(0:10, 0:10), (40:50, 90:100)])",
        );
        assert!(PruneToRegions.run(&mut p));
        insta::assert_snapshot!(PruneToRegions.describe(&p).unwrap(), @r#"
        write "OUT" touches (0:10, 0:10) + (40:50, 90:100)
        %0 random needs (0:23, 10:22) + (76:99, 98:110) of [100, 200]
        %1 index needs (0:12, 0:12) + (38:50, 88:100) of [50, 100]
        %2 uniform needs (0:10, 0:10) + (40:50, 90:100) of [50, 100]
        %3 fill needs (0:10, 0:10) + (40:50, 90:100) of [50, 100]
        %4 add needs (0:10, 0:10) + (40:50, 90:100) of [50, 100]
        "#);
        assert!(!PruneToRegions.run(&mut p), "a second run changes nothing");
    }

    #[test]
    fn whole_writes_need_everything() {
        let mut p = crate::opt::tests::lower(
            "let x = random((100, 200), chunks=(50, 50))\n(x.map(uniform(5)) + 1).write(\"OUT\")",
        );
        assert!(PruneToRegions.run(&mut p));
        assert!(p.notes.needed.is_empty());
        assert_eq!(p.notes.written, Some(vec![None]));
    }
}
