//! Shapes, regions (half-open boxes), halos and chunk grids: the index arithmetic every
//! later stage shares.

use std::fmt;

pub type Shape = Vec<u64>;

/// The most elements one array may have: every shape value, index and `size` must be
/// an exact language int (i64), so the count is capped at `i64::MAX` (2^63 - 1).
pub const MAX_ELEMENTS: u64 = i64::MAX as u64;
/// The most bytes one array (or one chunk) may hold: `nbytes` is a language int too, and
/// the cap leaves every sum of two sizes representable in u64.
pub const MAX_BYTES: u64 = i64::MAX as u64;

/// The number of elements of `shape`, or `None` when it exceeds `MAX_ELEMENTS`.
pub fn checked_size(shape: &[u64]) -> Option<u64> {
    if shape.contains(&0) {
        return Some(0);
    }
    shape
        .iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(*d))
        .filter(|n| *n <= MAX_ELEMENTS)
}

/// The bytes of a dense array of `shape` with `itemsize`-byte elements, or `None` when
/// the element count or the byte count exceeds its limit.
pub fn checked_nbytes(shape: &[u64], itemsize: usize) -> Option<u64> {
    checked_size(shape)?
        .checked_mul(itemsize as u64)
        .filter(|n| *n <= MAX_BYTES)
}

/// The product of `dims`, saturating at `u64::MAX`: for estimates and loop bounds over
/// shapes that may not have been validated yet (a validated shape never saturates).
pub fn saturating_product(dims: &[u64]) -> u64 {
    if dims.contains(&0) {
        return 0;
    }
    dims.iter().fold(1u64, |acc, d| acc.saturating_mul(*d))
}

/// A half-open box `[start, end)` per axis.
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub struct Region {
    pub start: Vec<u64>,
    pub end: Vec<u64>,
}

impl Region {
    pub fn new(start: Vec<u64>, end: Vec<u64>) -> Region {
        debug_assert_eq!(start.len(), end.len());
        Region { start, end }
    }

    /// The whole of an array of this shape.
    pub fn full(shape: &[u64]) -> Region {
        Region {
            start: vec![0; shape.len()],
            end: shape.to_vec(),
        }
    }

    pub fn ndim(&self) -> usize {
        self.start.len()
    }

    pub fn shape(&self) -> Shape {
        self.start
            .iter()
            .zip(&self.end)
            .map(|(s, e)| e.saturating_sub(*s))
            .collect()
    }

    pub fn size(&self) -> u64 {
        saturating_product(&self.shape())
    }

    pub fn is_empty(&self) -> bool {
        self.start.iter().zip(&self.end).any(|(s, e)| e <= s)
    }

    pub fn intersect(&self, other: &Region) -> Option<Region> {
        let start: Vec<u64> = self
            .start
            .iter()
            .zip(&other.start)
            .map(|(a, b)| *a.max(b))
            .collect();
        let end: Vec<u64> = self
            .end
            .iter()
            .zip(&other.end)
            .map(|(a, b)| *a.min(b))
            .collect();
        let r = Region { start, end };
        if r.is_empty() {
            None
        } else {
            Some(r)
        }
    }

    /// Does `self` contain all of `other`?
    pub fn contains(&self, other: &Region) -> bool {
        (0..self.ndim()).all(|i| self.start[i] <= other.start[i] && other.end[i] <= self.end[i])
    }

    /// The smallest box containing both.
    pub fn union_box(&self, other: &Region) -> Region {
        Region {
            start: self
                .start
                .iter()
                .zip(&other.start)
                .map(|(a, b)| *a.min(b))
                .collect(),
            end: self
                .end
                .iter()
                .zip(&other.end)
                .map(|(a, b)| *a.max(b))
                .collect(),
        }
    }

    /// `other` expressed relative to `self.start` (other must lie inside self).
    pub fn relative_to(&self, outer: &Region) -> Region {
        Region {
            start: self
                .start
                .iter()
                .zip(&outer.start)
                .map(|(a, b)| a - b)
                .collect(),
            end: self
                .end
                .iter()
                .zip(&outer.start)
                .map(|(a, b)| a - b)
                .collect(),
        }
    }

    /// Grow by `halo` on both sides per axis, clamped to `[0, shape)`.
    pub fn grow_clamped(&self, halo: &[u64], shape: &[u64]) -> Region {
        Region {
            start: self
                .start
                .iter()
                .zip(halo)
                .map(|(s, h)| s.saturating_sub(*h))
                .collect(),
            end: self
                .end
                .iter()
                .zip(halo)
                .zip(shape)
                .map(|((e, h), n)| (e + h).min(*n))
                .collect(),
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for i in 0..self.ndim() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}:{}", self.start[i], self.end[i])?;
        }
        if self.ndim() == 1 {
            f.write_str(",")?;
        }
        f.write_str(")")
    }
}

/// Format a shape as `[a, b, c]`.
pub fn fmt_shape(shape: &[u64]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// A regular chunk grid over an array: chunk `i` along an axis covers
/// `[i*c, min((i+1)*c, n))`.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkGrid {
    pub shape: Shape,
    pub chunks: Shape,
}

impl ChunkGrid {
    pub fn new(shape: Shape, chunks: Shape) -> ChunkGrid {
        debug_assert_eq!(shape.len(), chunks.len());
        debug_assert!(chunks.iter().all(|c| *c > 0));
        ChunkGrid { shape, chunks }
    }

    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of chunks along each axis.
    pub fn grid_shape(&self) -> Shape {
        self.shape
            .iter()
            .zip(&self.chunks)
            .map(|(n, c)| n.div_ceil(*c))
            .collect()
    }

    pub fn num_chunks(&self) -> u64 {
        saturating_product(&self.grid_shape())
    }

    /// The region of the chunk with grid index `idx`, clipped to the array.
    pub fn chunk_region(&self, idx: &[u64]) -> Region {
        let start: Vec<u64> = idx.iter().zip(&self.chunks).map(|(i, c)| i * c).collect();
        let end: Vec<u64> = start
            .iter()
            .zip(&self.chunks)
            .zip(&self.shape)
            .map(|((s, c), n)| (s + c).min(*n))
            .collect();
        Region { start, end }
    }

    /// Grid index of the `flat`-th chunk in C order.
    pub fn unflatten(&self, mut flat: u64) -> Vec<u64> {
        let g = self.grid_shape();
        let mut idx = vec![0; g.len()];
        for ax in (0..g.len()).rev() {
            idx[ax] = flat % g[ax];
            flat /= g[ax];
        }
        idx
    }

    pub fn flatten(&self, idx: &[u64]) -> u64 {
        let g = self.grid_shape();
        idx.iter().zip(&g).fold(0, |acc, (i, n)| acc * n + i)
    }

    /// The box of grid indices whose chunks intersect `region` (as a region over the grid).
    pub fn chunks_touching(&self, region: &Region) -> Region {
        if region.is_empty() {
            return Region::new(vec![0; self.ndim()], vec![0; self.ndim()]);
        }
        Region {
            start: region
                .start
                .iter()
                .zip(&self.chunks)
                .map(|(s, c)| s / c)
                .collect(),
            end: region
                .end
                .iter()
                .zip(&self.chunks)
                .map(|(e, c)| e.div_ceil(*c))
                .collect(),
        }
    }

    /// Grid index of the chunk holding `region`'s first element.
    pub fn chunk_of_start(&self, region: &Region) -> Vec<u64> {
        region
            .start
            .iter()
            .zip(&self.chunks)
            .map(|(s, c)| s / c)
            .collect()
    }

    /// Is `region` exactly one whole chunk of this grid?
    pub fn is_chunk(&self, region: &Region) -> bool {
        &self.chunk_region(&self.chunk_of_start(region)) == region
    }
}

/// Iterate every index of a box in C order.
pub fn iter_box(region: &Region) -> impl Iterator<Item = Vec<u64>> + '_ {
    let n = if region.is_empty() { 0 } else { region.size() };
    let shape = region.shape();
    (0..n).map(move |mut flat| {
        let mut idx = vec![0; shape.len()];
        for ax in (0..shape.len()).rev() {
            idx[ax] = region.start[ax] + flat % shape[ax];
            flat /= shape[ax];
        }
        idx
    })
}

/// Axis groups of a reshape: runs of input axes and output axes with equal products
/// (a size-1 axis forms a group alone). Each group maps a contiguous flat range.
pub fn reshape_groups(
    from: &[u64],
    to: &[u64],
) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut groups = Vec::new();
    let (mut i, mut o) = (0, 0);
    if from.contains(&0) || to.contains(&0) {
        return vec![(0..from.len(), 0..to.len())];
    }
    while i < from.len() || o < to.len() {
        if i < from.len() && from[i] == 1 {
            groups.push((i..i + 1, o..o));
            i += 1;
            continue;
        }
        if o < to.len() && to[o] == 1 {
            groups.push((i..i, o..o + 1));
            o += 1;
            continue;
        }
        let (si, so) = (i, o);
        let mut pi = from[i];
        let mut po = to[o];
        i += 1;
        o += 1;
        while pi != po {
            if pi < po {
                pi *= from[i];
                i += 1;
            } else {
                po *= to[o];
                o += 1;
            }
        }
        groups.push((si..i, so..o));
    }
    groups
}

/// The box of a reshape's input that holds the elements of `region` of its output, and
/// for each axis group (`reshape_groups`) the flat index, within the group, of the box's
/// first element. Each group's elements form a contiguous flat range; the box spans the
/// rows of that range with the group's inner axes whole.
pub fn reshape_input_box(from: &[u64], to: &[u64], region: &Region) -> (Region, Vec<u64>) {
    let groups = reshape_groups(from, to);
    let (mut start, mut end) = (vec![0; from.len()], from.to_vec());
    let mut bases = Vec::with_capacity(groups.len());
    for (ins, outs) in &groups {
        let gst = strides(&to[outs.clone()]);
        let lo: u64 = outs
            .clone()
            .map(|a| region.start[a] * gst[a - outs.start] as u64)
            .sum();
        let hi: u64 = outs
            .clone()
            .map(|a| (region.end[a] - 1) * gst[a - outs.start] as u64)
            .sum::<u64>()
            + 1;
        if ins.is_empty() {
            bases.push(0);
            continue;
        }
        let inner: u64 = from[ins.start + 1..ins.end].iter().product();
        let (r0, r1) = (lo / inner, (hi - 1) / inner + 1);
        start[ins.start] = r0;
        end[ins.start] = r1;
        bases.push(r0 * inner);
    }
    (Region::new(start, end), bases)
}

/// C-order strides (in elements) of a dense array of this shape.
pub fn strides(shape: &[u64]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for ax in (0..shape.len().saturating_sub(1)).rev() {
        s[ax] = s[ax + 1] * shape[ax + 1] as usize;
    }
    s
}

pub fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Elements per axis of the smallest box aligned to both chunkings `a` and `b` (the least
/// common multiple per axis, at most the axis length): a rechunk from `a` to `b` done in
/// such boxes reads every input chunk once.
pub fn aligned_box(a: &[u64], b: &[u64], shape: &[u64]) -> Vec<u64> {
    a.iter()
        .zip(b)
        .zip(shape)
        .map(|((x, y), n)| {
            let (x, y) = ((*x).min(*n).max(1), (*y).min(*n).max(1));
            (x / gcd(x, y)).saturating_mul(y).min(*n)
        })
        .collect()
}

/// Blocks of output chunks for a rechunk from `in_chunks` to `out_chunks` over `shape`:
/// output chunks per axis of the smallest box aligned to both chunkings, halved along
/// their longest axis while `fits` refuses them; `None` when even a single output chunk
/// does not fit. Smaller than aligned, blocks cut input chunks, which are then read by
/// several blocks (`block_rereads`).
pub fn rechunk_blocks(
    in_chunks: &[u64],
    out_chunks: &[u64],
    shape: &[u64],
    fits: impl Fn(&[u64]) -> bool,
) -> Option<Vec<u64>> {
    let mut per: Vec<u64> = in_chunks
        .iter()
        .zip(out_chunks)
        .zip(shape)
        .map(|((i, o), n)| (i / gcd(*i, *o)).min(n.div_ceil((*o).max(1))).max(1))
        .collect();
    while !fits(&per) {
        let (a, _) = per.iter().enumerate().max_by_key(|(_, v)| **v)?;
        if per[a] == 1 {
            return None;
        }
        per[a] = per[a].div_ceil(2);
    }
    Some(per)
}

/// The most blocks of `per` output chunks any one input chunk overlaps: how many times
/// the worst input chunk is decoded.
pub fn block_rereads(in_chunks: &[u64], out_chunks: &[u64], shape: &[u64], per: &[u64]) -> u64 {
    in_chunks
        .iter()
        .zip(out_chunks)
        .zip(per)
        .zip(shape)
        .map(|(((i, o), p), n)| {
            let (i, b) = ((*i).max(1), (o * p).max(1));
            (0..n.div_ceil(i))
                .map(|k| {
                    let (start, end) = (k * i, ((k + 1) * i).min(*n));
                    (end - 1) / b - start / b + 1
                })
                .max()
                .unwrap_or(1)
        })
        .product()
}

/// The indices `0..n` a summarised listing shows: the first and last `edge`, with `None`
/// where the `...` goes, or all of them when there are no more than `2 * edge` (NumPy's
/// `edgeitems`; the row summary of a table).
pub fn summary_indices(n: u64, edge: u64) -> Vec<Option<u64>> {
    if n > 2 * edge {
        (0..edge)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((n - edge..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_edges_are_clipped() {
        let g = ChunkGrid::new(vec![10, 7], vec![4, 4]);
        assert_eq!(g.grid_shape(), vec![3, 2]);
        assert_eq!(
            g.chunk_region(&[2, 1]),
            Region::new(vec![8, 4], vec![10, 7])
        );
        assert_eq!(g.unflatten(5), vec![2, 1]);
        assert_eq!(g.flatten(&[2, 1]), 5);
        let t = g.chunks_touching(&Region::new(vec![3, 0], vec![9, 5]));
        assert_eq!(t, Region::new(vec![0, 0], vec![3, 2]));
    }

    #[test]
    fn iter_box_is_c_order() {
        let r = Region::new(vec![1, 2], vec![3, 4]);
        let v: Vec<_> = iter_box(&r).collect();
        assert_eq!(v, vec![vec![1, 2], vec![1, 3], vec![2, 2], vec![2, 3]]);
    }
}
