//! Connected-component labelling of chunked arrays, numbered exactly as
//! `scipy.ndimage.label`.
//!
//! A mask of rank 1 to 5 (any dtype; non-zero is foreground) is labelled with
//! connectivity `c` in `1..=ndim`: two pixels are neighbours when they differ by at most
//! one in every coordinate and differ at all in at most `c` coordinates (scipy's
//! `generate_binary_structure(ndim, c)`; `c = 1` is 4-/6-connectivity, `c = ndim` is
//! 8-/26-connectivity). Background is 0; components get `1..=n` in the order of their
//! first pixel in a C-order scan of the whole array.
//!
//! The work is split in three steps so that no step needs more than a chunk of pixels:
//!
//! 1. [`scan_chunk`] (independent per chunk, run them in parallel) labels one chunk on
//!    its own and keeps only its number of components, each component's first pixel as a
//!    global C-order index, and the local labels on the chunk's faces that touch other
//!    chunks.
//! 2. [`resolve`] joins the components of neighbouring chunks through their faces (a
//!    union-find over `(chunk, local label)`, also across edges and corners when the
//!    connectivity allows it), takes each global component's first pixel as the minimum
//!    over its parts and numbers the components by sorting on it. The result, a
//!    [`LabelTable`], maps `(chunk, local label)` to the global label.
//! 3. [`label_region`] (independent per region) relabels every chunk touching a region
//!    with the same deterministic procedure as step 1 and maps it through the table.
//!
//! The local labelling works on runs (maximal foreground intervals along the last axis):
//! runs are joined to the runs of the already-scanned neighbouring rows with a
//! union-find whose root is always the smallest run index, so a component's root is its
//! first run and local labels follow the C-order of first pixels without a sort.
//!
//! Memory: a chunk's scan holds its faces (4 bytes per face pixel) and 8 bytes per local
//! component; [`resolve`] holds every scan at once plus 16 bytes per local component,
//! and the table it returns keeps 8 bytes per local component and per chunk.
//!
//! Output dtype: `int32` (scipy's default) unless the array has more than
//! `i32::MAX` elements, then `int64`. The rule depends on the shape only, so it is known
//! before any pixel is read.

use crate::data::Buf;
use crate::dtype::DType;
use crate::geom::{strides, ChunkGrid, Region};

/// The label dtype rule and highest rank live with the typing rules.
pub use crate::check::label::{label_dtype, MAX_NDIM};

/// Is `conn` a valid connectivity for rank `ndim`?
pub fn check_connectivity(ndim: usize, conn: usize) -> Result<(), String> {
    if ndim == 0 || ndim > MAX_NDIM {
        return Err(format!(
            "label needs an array of rank 1 to {MAX_NDIM}, not {ndim}"
        ));
    }
    if conn == 0 || conn > ndim {
        return Err(format!(
            "connectivity must be between 1 and {ndim} for a {ndim}-d array, not {conn}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Local labelling of one dense block
// ---------------------------------------------------------------------------------------

/// The local labelling of a block: foreground runs per row (a row is a line along the
/// last axis; rows are in C order) and each run's local label.
struct Runs {
    /// Block shape.
    shape: Vec<usize>,
    ncol: usize,
    nrows: usize,
    /// Runs of row `r` are `runs[row_ptr[r]..row_ptr[r + 1]]`.
    row_ptr: Vec<u32>,
    /// `[start, end)` column of each run.
    runs: Vec<(u32, u32)>,
    /// Local label (1-based) of each run.
    lab: Vec<u32>,
    /// Index of the first run of each local label (label `k` at `roots[k - 1]`).
    roots: Vec<u32>,
}

impl Runs {
    fn count(&self) -> u32 {
        self.roots.len() as u32
    }

    fn row(&self, r: usize) -> std::ops::Range<usize> {
        self.row_ptr[r] as usize..self.row_ptr[r + 1] as usize
    }
}

/// A neighbouring row that precedes the current one in C order.
struct RowOffset {
    /// Flat row-index difference (negative).
    delta: isize,
    /// Axes (bits) where the offset is -1 / +1: invalid at the lower / upper edge.
    neg: u32,
    pos: u32,
    /// 1 when pixels may also be diagonal along the last axis, else 0.
    ext: u32,
}

/// Every offset vector over `nd` axes with entries in {-1, 0, 1}, at most `max_nnz` of
/// them non-zero, in lexicographic order.
fn offsets(nd: usize, max_nnz: usize) -> Vec<Vec<i8>> {
    let total = 3usize.pow(nd as u32);
    let mut out = Vec::new();
    for mut k in 0..total {
        let mut e = vec![0i8; nd];
        for ax in (0..nd).rev() {
            e[ax] = (k % 3) as i8 - 1;
            k /= 3;
        }
        if e.iter().filter(|v| **v != 0).count() <= max_nnz {
            out.push(e);
        }
    }
    out
}

fn row_offsets(rshape: &[usize], conn: usize) -> Vec<RowOffset> {
    let nd = rshape.len();
    let st = strides(&rshape.iter().map(|n| *n as u64).collect::<Vec<_>>());
    offsets(nd, conn)
        .into_iter()
        .filter(|e| e.iter().find(|v| **v != 0) == Some(&-1))
        .map(|e| {
            let nnz = e.iter().filter(|v| **v != 0).count();
            let mut delta = 0isize;
            let (mut neg, mut pos) = (0u32, 0u32);
            for (ax, v) in e.iter().enumerate() {
                delta += *v as isize * st[ax] as isize;
                if *v < 0 {
                    neg |= 1 << ax;
                } else if *v > 0 {
                    pos |= 1 << ax;
                }
            }
            RowOffset {
                delta,
                neg,
                pos,
                ext: (nnz < conn) as u32,
            }
        })
        .collect()
}

#[inline]
fn find32(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let p = parent[x as usize];
        let gp = parent[p as usize];
        parent[x as usize] = gp;
        x = gp;
    }
    x
}

/// Join two sets, the smaller root index becoming the root (so `parent[i] <= i`).
#[inline]
fn union32(parent: &mut [u32], a: u32, b: u32) {
    let ra = find32(parent, a);
    let rb = find32(parent, b);
    if ra < rb {
        parent[rb as usize] = ra;
    } else if rb < ra {
        parent[ra as usize] = rb;
    }
}

/// Append the foreground runs of one row.
#[inline]
fn push_runs<T: Copy + PartialEq + Default>(row: &[T], runs: &mut Vec<(u32, u32)>) {
    let zero = T::default();
    let n = row.len();
    let mut i = 0;
    while i < n {
        while i < n && row[i] == zero {
            i += 1;
        }
        if i == n {
            break;
        }
        let s = i;
        while i < n && row[i] != zero {
            i += 1;
        }
        runs.push((s as u32, i as u32));
    }
}

/// Runs of a byte row, skipping zero bytes eight at a time.
#[inline]
fn push_runs_u8(row: &[u8], runs: &mut Vec<(u32, u32)>) {
    let n = row.len();
    let mut i = 0;
    while i < n {
        while i + 8 <= n && u64::from_ne_bytes(row[i..i + 8].try_into().unwrap()) == 0 {
            i += 8;
        }
        while i < n && row[i] == 0 {
            i += 1;
        }
        if i == n {
            break;
        }
        let s = i;
        while i + 8 <= n && !has_zero_byte(u64::from_ne_bytes(row[i..i + 8].try_into().unwrap())) {
            i += 8;
        }
        while i < n && row[i] != 0 {
            i += 1;
        }
        runs.push((s as u32, i as u32));
    }
}

#[inline]
fn has_zero_byte(v: u64) -> bool {
    (v.wrapping_sub(0x0101_0101_0101_0101) & !v & 0x8080_8080_8080_8080) != 0
}

/// Label one dense C-order block. Deterministic: the same block always gives the same
/// labels, whatever else is going on.
fn local_label<T: Copy + PartialEq + Default>(
    shape: &[usize],
    data: &[T],
    conn: usize,
    byte_rows: Option<&[u8]>,
) -> Runs {
    let d = shape.len();
    let ncol = shape[d - 1];
    let rshape = &shape[..d - 1];
    let nrows: usize = rshape.iter().product();
    let size = nrows * ncol;
    assert!(
        size < u32::MAX as usize,
        "a chunk of {size} elements is too large to label"
    );
    if let Some(b) = byte_rows {
        debug_assert_eq!(b.len(), size);
    } else {
        assert_eq!(
            data.len(),
            size,
            "mask length does not match the chunk shape"
        );
    }

    // Runs, row by row.
    let mut row_ptr = Vec::with_capacity(nrows + 1);
    let mut runs: Vec<(u32, u32)> = Vec::new();
    row_ptr.push(0u32);
    if ncol > 0 {
        for r in 0..nrows {
            match byte_rows {
                Some(b) => push_runs_u8(&b[r * ncol..(r + 1) * ncol], &mut runs),
                None => push_runs(&data[r * ncol..(r + 1) * ncol], &mut runs),
            }
            row_ptr.push(runs.len() as u32);
        }
    } else {
        row_ptr.resize(nrows + 1, 0);
    }

    // Join runs with the runs of earlier neighbouring rows.
    let offs = row_offsets(rshape, conn);
    let mut parent: Vec<u32> = (0..runs.len() as u32).collect();
    let mut idx = vec![0usize; rshape.len()];
    for r in 0..nrows {
        let cur = row_ptr[r] as usize..row_ptr[r + 1] as usize;
        if !cur.is_empty() {
            let (mut at_low, mut at_high) = (0u32, 0u32);
            for (ax, i) in idx.iter().enumerate() {
                if *i == 0 {
                    at_low |= 1 << ax;
                }
                if *i + 1 == rshape[ax] {
                    at_high |= 1 << ax;
                }
            }
            for o in &offs {
                if o.neg & at_low != 0 || o.pos & at_high != 0 {
                    continue;
                }
                let q = (r as isize + o.delta) as usize;
                let prev = row_ptr[q] as usize..row_ptr[q + 1] as usize;
                if prev.is_empty() {
                    continue;
                }
                let ext = o.ext;
                let mut j = prev.start;
                for i in cur.clone() {
                    let (a, b) = runs[i];
                    while j < prev.end && runs[j].1 + ext <= a {
                        j += 1;
                    }
                    let mut k = j;
                    while k < prev.end && runs[k].0 < b + ext {
                        union32(&mut parent, i as u32, k as u32);
                        k += 1;
                    }
                }
            }
        }
        // Next row index in C order.
        for ax in (0..idx.len()).rev() {
            idx[ax] += 1;
            if idx[ax] < rshape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }

    // Number the sets in order of their first run; parent[i] <= i, so a single forward
    // pass turns parents into labels in place.
    let mut roots = Vec::new();
    for i in 0..parent.len() {
        let p = parent[i] as usize;
        if p == i {
            roots.push(i as u32);
            parent[i] = roots.len() as u32;
        } else {
            parent[i] = parent[p];
        }
    }
    Runs {
        shape: shape.to_vec(),
        ncol,
        nrows,
        row_ptr,
        runs,
        lab: parent,
        roots,
    }
}

/// Label a mask buffer of any dtype (non-zero is foreground).
fn local_label_buf(shape: &[usize], mask: &Buf, conn: usize) -> Runs {
    match mask {
        Buf::U8(v) => local_label::<u8>(shape, &[], conn, Some(v)),
        Buf::I8(v) => {
            // Same bytes, same zero.
            let bytes: Vec<u8> = v.iter().map(|x| *x as u8).collect();
            local_label::<u8>(shape, &[], conn, Some(&bytes))
        }
        Buf::Bool(v) => local_label(shape, v, conn, None),
        Buf::I16(v) => local_label(shape, v, conn, None),
        Buf::I32(v) => local_label(shape, v, conn, None),
        Buf::I64(v) => local_label(shape, v, conn, None),
        Buf::U16(v) => local_label(shape, v, conn, None),
        Buf::U32(v) => local_label(shape, v, conn, None),
        Buf::U64(v) => local_label(shape, v, conn, None),
        Buf::F32(v) => local_label(shape, v, conn, None),
        Buf::F64(v) => local_label(shape, v, conn, None),
        Buf::C64(v) => local_label(shape, v, conn, None),
        Buf::C128(v) => local_label(shape, v, conn, None),
    }
}

fn usize_shape(region: &Region) -> Vec<usize> {
    region.shape().iter().map(|n| *n as usize).collect()
}

// ---------------------------------------------------------------------------------------
// Pass 1
// ---------------------------------------------------------------------------------------

/// What pass 1 keeps of one chunk.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChunkScan {
    /// The chunk's region in the array.
    pub region: Region,
    /// Global C-order flat index of the first pixel of each local component
    /// (local label `k` at `first[k - 1]`); its length is the number of components.
    pub first: Vec<u64>,
    /// Local labels on the faces, `2 * ndim` of them: lower and upper face of axis 0,
    /// then axis 1, … A face is the chunk with that axis reduced to one plane, in C order;
    /// it is empty when the face lies on the array's border (no chunk beyond it).
    faces: Vec<Vec<u32>>,
}

impl ChunkScan {
    /// Number of local components.
    pub fn count(&self) -> u32 {
        self.first.len() as u32
    }

    /// Bytes held (for memory estimates).
    pub fn nbytes(&self) -> usize {
        self.first.len() * 8 + self.faces.iter().map(|f| f.len() * 4).sum::<usize>()
    }
}

/// Pass 1: label one chunk on its own. `shape` is the whole array's shape, `region` the
/// chunk's box in it and `mask` its pixels in C order (any dtype, non-zero is
/// foreground).
pub fn scan_chunk(shape: &[u64], region: &Region, mask: &Buf, conn: usize) -> ChunkScan {
    let d = shape.len();
    if let Err(e) = check_connectivity(d, conn) {
        panic!("{e}");
    }
    assert_eq!(region.ndim(), d, "region rank differs from the array's");
    assert_eq!(
        mask.len() as u64,
        region.size(),
        "mask size differs from the region's"
    );
    let cshape = usize_shape(region);
    let runs = local_label_buf(&cshape, mask, conn);

    // First pixels as global flat indices.
    let gstrides = strides(shape);
    let rshape = &cshape[..d - 1];
    let rstr = strides(&region.shape()[..d - 1]);
    let first: Vec<u64> = runs
        .roots
        .iter()
        .map(|&ri| {
            let row = runs.row_ptr.partition_point(|p| *p <= ri) - 1;
            let col = runs.runs[ri as usize].0 as u64;
            let mut flat = (region.start[d - 1] + col) * gstrides[d - 1] as u64;
            let mut rem = row;
            for ax in 0..d - 1 {
                let i = rem / rstr[ax];
                rem %= rstr[ax];
                flat += (region.start[ax] + i as u64) * gstrides[ax] as u64;
            }
            flat
        })
        .collect();

    // Faces that touch other chunks.
    let size: usize = cshape.iter().product();
    let mut faces: Vec<Vec<u32>> = vec![Vec::new(); 2 * d];
    for ax in 0..d {
        let fsize = size.checked_div(cshape[ax]).unwrap_or(0);
        if region.start[ax] > 0 {
            faces[2 * ax] = vec![0; fsize];
        }
        if region.end[ax] < shape[ax] {
            faces[2 * ax + 1] = vec![0; fsize];
        }
    }
    if size > 0 {
        fill_faces(&runs, rshape, &mut faces);
    }
    ChunkScan {
        region: region.clone(),
        first,
        faces,
    }
}

/// Paint the local labels of the face planes into the (non-empty) face buffers.
fn fill_faces(runs: &Runs, rshape: &[usize], faces: &mut [Vec<u32>]) {
    let d = runs.shape.len();
    let ncol = runs.ncol;
    // Last axis: one value per row.
    let last = d - 1;
    let (lo, hi) = faces.split_at_mut(2 * last + 1);
    let (lo_last, hi_last) = (&mut lo[2 * last], &mut hi[0]);
    if !lo_last.is_empty() || !hi_last.is_empty() {
        for r in 0..runs.nrows {
            let rr = runs.row(r);
            if rr.is_empty() {
                continue;
            }
            if !lo_last.is_empty() && runs.runs[rr.start].0 == 0 {
                lo_last[r] = runs.lab[rr.start];
            }
            if !hi_last.is_empty() && runs.runs[rr.end - 1].1 as usize == ncol {
                hi_last[r] = runs.lab[rr.end - 1];
            }
        }
    }
    // Row axes: whole rows.
    let wanted: Vec<usize> = (0..d - 1)
        .filter(|ax| !faces[2 * ax].is_empty() || !faces[2 * ax + 1].is_empty())
        .collect();
    if wanted.is_empty() {
        return;
    }
    // Strides of each face's row index (the row axes without `ax`).
    let fstr: Vec<Vec<usize>> = (0..d - 1)
        .map(|ax| {
            let mut s = vec![0usize; d - 1];
            let mut acc = 1;
            for k in (0..d - 1).rev() {
                if k != ax {
                    s[k] = acc;
                    acc *= rshape[k];
                }
            }
            s
        })
        .collect();
    let mut idx = vec![0usize; d - 1];
    for r in 0..runs.nrows {
        for &ax in &wanted {
            let on_lo = idx[ax] == 0 && !faces[2 * ax].is_empty();
            let on_hi = idx[ax] + 1 == rshape[ax] && !faces[2 * ax + 1].is_empty();
            if !on_lo && !on_hi {
                continue;
            }
            let frow: usize = idx.iter().zip(&fstr[ax]).map(|(i, s)| i * s).sum();
            let base = frow * ncol;
            for side in [on_lo.then_some(2 * ax), on_hi.then_some(2 * ax + 1)]
                .into_iter()
                .flatten()
            {
                let face = &mut faces[side];
                for i in runs.row(r) {
                    let (a, b) = runs.runs[i];
                    face[base + a as usize..base + b as usize].fill(runs.lab[i]);
                }
            }
        }
        for ax in (0..idx.len()).rev() {
            idx[ax] += 1;
            if idx[ax] < rshape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Resolve
// ---------------------------------------------------------------------------------------

/// The map from `(chunk, local label)` to global label, from [`resolve`].
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LabelTable {
    grid: ChunkGrid,
    conn: usize,
    dtype: DType,
    /// Offset of each chunk's first local label in `labels` (C order of chunks).
    base: Vec<u64>,
    /// Global label of every local component.
    labels: Vec<u64>,
    count: u64,
}

impl LabelTable {
    /// Number of components.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The dtype of the labels (see the module doc).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn connectivity(&self) -> usize {
        self.conn
    }

    pub fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    /// Global label of local label `local` (1-based) of the chunk with C-order index
    /// `chunk`.
    pub fn global(&self, chunk: u64, local: u32) -> u64 {
        if local == 0 {
            return 0;
        }
        self.labels[(self.base[chunk as usize] + local as u64 - 1) as usize]
    }

    /// Bytes held.
    pub fn nbytes(&self) -> usize {
        (self.base.len() + self.labels.len()) * 8
    }
}

/// The number of components.
pub fn count(table: &LabelTable) -> u64 {
    table.count
}

struct Forest {
    parent: Vec<usize>,
    first: Vec<u64>,
}

impl Forest {
    #[inline]
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            let gp = self.parent[self.parent[x]];
            self.parent[x] = gp;
            x = gp;
        }
        x
    }

    #[inline]
    fn union(&mut self, a: usize, b: usize) {
        let ra = self.find(a);
        let rb = self.find(b);
        if ra == rb {
            return;
        }
        let (root, child) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[child] = root;
        self.first[root] = self.first[root].min(self.first[child]);
    }
}

/// Gather the labels of the contact box from a face: `fixed` gives the coordinate of
/// every axis of the chunk that is not free (the face's own axis included, ignored);
/// `free` the free axes; the result is in C order over the free axes.
fn contact(
    face: &[u32],
    cshape: &[usize],
    face_ax: usize,
    fixed: &[usize],
    free: &[usize],
) -> Vec<u32> {
    let d = cshape.len();
    let mut fst = vec![0usize; d];
    let mut acc = 1;
    for k in (0..d).rev() {
        if k != face_ax {
            fst[k] = acc;
            acc *= cshape[k];
        }
    }
    let base: usize = (0..d)
        .filter(|k| *k != face_ax && !free.contains(k))
        .map(|k| fixed[k] * fst[k])
        .sum();
    let n: usize = free.iter().map(|k| cshape[*k]).product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; free.len()];
    for _ in 0..n {
        let off: usize = base
            + idx
                .iter()
                .zip(free)
                .map(|(i, k)| i * fst[*k])
                .sum::<usize>();
        out.push(face[off]);
        for j in (0..idx.len()).rev() {
            idx[j] += 1;
            if idx[j] < cshape[free[j]] {
                break;
            }
            idx[j] = 0;
        }
    }
    out
}

/// Resolve: join the chunk scans of a whole array into global labels. `scans` holds one
/// scan per chunk of `grid`, in any order.
pub fn resolve(grid: &ChunkGrid, scans: Vec<ChunkScan>, conn: usize) -> LabelTable {
    let mut r = Resolver::new(grid, conn);
    for s in scans {
        r.add(s);
    }
    r.finish()
}

/// Resolve scans as they arrive, in any order: each scan is joined with the neighbours
/// that have already arrived, and a chunk's face labels are dropped as soon as every
/// neighbour it touches has been joined. Scanning in C order of chunks keeps the faces of
/// about one slab of chunks alive, so memory grows with the number of components (one
/// table entry each), not with the array's size.
pub struct Resolver {
    grid: ChunkGrid,
    conn: usize,
    gshape: Vec<u64>,
    /// Neighbour offsets reachable with this connectivity, both directions.
    deltas: Vec<Vec<i8>>,
    /// Scans whose faces some neighbour still needs.
    pending: std::collections::HashMap<usize, ChunkScan>,
    /// Neighbours each chunk is still waiting for.
    waiting: Vec<u32>,
    /// Offset of each chunk's local labels in the forest (`u64::MAX`: not arrived).
    base: Vec<u64>,
    forest: Forest,
}

impl Resolver {
    pub fn new(grid: &ChunkGrid, conn: usize) -> Resolver {
        let d = grid.ndim();
        if let Err(e) = check_connectivity(d, conn) {
            panic!("{e}");
        }
        let gshape = grid.grid_shape();
        let deltas: Vec<Vec<i8>> = offsets(d, conn)
            .into_iter()
            .filter(|e| e.iter().any(|v| *v != 0))
            .collect();
        let n = grid.num_chunks() as usize;
        let mut r = Resolver {
            grid: grid.clone(),
            conn,
            gshape,
            deltas,
            pending: std::collections::HashMap::new(),
            waiting: vec![0; n],
            base: vec![u64::MAX; n],
            forest: Forest {
                parent: Vec::new(),
                first: Vec::new(),
            },
        };
        for c in 0..n {
            r.waiting[c] = r.neighbours(c).len() as u32;
        }
        r
    }

    /// Chunks touching chunk `c` with this connectivity, and the index of the offset to
    /// each in `deltas`.
    fn neighbours(&self, c: usize) -> Vec<(usize, usize)> {
        let idx = self.grid.unflatten(c as u64);
        let mut out = Vec::new();
        'next: for (k, delta) in self.deltas.iter().enumerate() {
            let mut nb = idx.clone();
            for ax in 0..idx.len() {
                let v = idx[ax] as i64 + delta[ax] as i64;
                if v < 0 || v >= self.gshape[ax] as i64 {
                    continue 'next;
                }
                nb[ax] = v as u64;
            }
            out.push((self.grid.flatten(&nb) as usize, k));
        }
        out
    }

    /// Bytes held now (scans waiting for neighbours plus the forest).
    pub fn nbytes(&self) -> usize {
        self.pending.values().map(|s| s.nbytes()).sum::<usize>() + self.forest.parent.len() * 16
    }

    /// Join one chunk's scan with the neighbours that have arrived.
    pub fn add(&mut self, scan: ChunkScan) {
        assert!(
            self.grid.is_chunk(&scan.region),
            "scan of {} is not a chunk of the grid",
            scan.region
        );
        let idx: Vec<u64> = scan
            .region
            .start
            .iter()
            .zip(&self.grid.chunks)
            .map(|(a, c)| a / c)
            .collect();
        let c = self.grid.flatten(&idx) as usize;
        assert!(
            self.base[c] == u64::MAX,
            "two scans of chunk {}",
            scan.region
        );
        let start = self.forest.parent.len();
        self.base[c] = start as u64;
        self.forest.parent.extend(start..start + scan.first.len());
        self.forest.first.extend_from_slice(&scan.first);
        let mut done = Vec::new();
        for (nb, delta) in self.neighbours(c) {
            if self.base[nb] == u64::MAX {
                continue;
            }
            let other = &self.pending[&nb];
            let (ba, bb) = (self.base[c] as usize, self.base[nb] as usize);
            let delta = &self.deltas[delta];
            link(&scan, other, delta, self.conn, ba, bb, &mut self.forest);
            self.waiting[nb] -= 1;
            self.waiting[c] -= 1;
            if self.waiting[nb] == 0 {
                done.push(nb);
            }
        }
        for nb in done {
            self.pending.remove(&nb);
        }
        if self.waiting[c] > 0 {
            self.pending.insert(c, scan);
        }
    }

    /// Number the components by their first pixel.
    pub fn finish(self) -> LabelTable {
        if let Some(c) = self.base.iter().position(|b| *b == u64::MAX) {
            panic!(
                "no scan of chunk {}",
                self.grid.chunk_region(&self.grid.unflatten(c as u64))
            );
        }
        let Resolver {
            grid,
            conn,
            base,
            mut forest,
            ..
        } = self;
        let total = forest.parent.len();
        let mut roots: Vec<(u64, usize)> = (0..total)
            .filter(|x| forest.parent[*x] == *x)
            .map(|x| (forest.first[x], x))
            .collect();
        roots.sort_unstable();
        let count = roots.len() as u64;
        for (k, (_, r)) in roots.iter().enumerate() {
            forest.first[*r] = k as u64 + 1;
        }
        drop(roots);
        // parent[x] <= x: one forward pass gives every node its root's label.
        let mut labels = forest.first;
        let parent = forest.parent;
        for x in 0..labels.len() {
            let p = parent[x];
            if p != x {
                labels[x] = labels[p];
            }
        }
        LabelTable {
            dtype: label_dtype(&grid.shape),
            grid,
            conn,
            base,
            labels,
            count,
        }
    }
}

/// Join the components of chunks `a` and `b = a + delta` that touch.
fn link(
    sa: &ChunkScan,
    sb: &ChunkScan,
    delta: &[i8],
    conn: usize,
    ba: usize,
    bb: usize,
    forest: &mut Forest,
) {
    if sa.first.is_empty() || sb.first.is_empty() {
        return;
    }
    let d = delta.len();
    let ash = usize_shape(&sa.region);
    let bsh = usize_shape(&sb.region);
    let crossed: Vec<usize> = (0..d).filter(|k| delta[*k] != 0).collect();
    let free: Vec<usize> = (0..d).filter(|k| delta[*k] == 0).collect();
    let m = crossed.len();
    let s0 = crossed[0];
    // A's side of the contact: its upper plane along +1 axes, lower along -1; B opposite.
    let mut afix = vec![0usize; d];
    let mut bfix = vec![0usize; d];
    for &k in &crossed {
        if delta[k] > 0 {
            afix[k] = ash[k] - 1;
        } else {
            bfix[k] = bsh[k] - 1;
        }
    }
    let aface = &sa.faces[2 * s0 + (delta[s0] > 0) as usize];
    let bface = &sb.faces[2 * s0 + (delta[s0] < 0) as usize];
    let la = contact(aface, &ash, s0, &afix, &free);
    let lb = contact(bface, &bsh, s0, &bfix, &free);

    // Offsets within the contact box: at most conn - m further coordinates may differ.
    let rshape: Vec<usize> = free.iter().map(|k| ash[*k]).collect();
    let nf = rshape.len();
    let rst = strides(&rshape.iter().map(|n| *n as u64).collect::<Vec<_>>());
    let offs: Vec<(isize, u32, u32)> = offsets(nf, conn - m)
        .into_iter()
        .map(|e| {
            let (mut dl, mut neg, mut pos) = (0isize, 0u32, 0u32);
            for (j, v) in e.iter().enumerate() {
                dl += *v as isize * rst[j] as isize;
                if *v < 0 {
                    neg |= 1 << j;
                } else if *v > 0 {
                    pos |= 1 << j;
                }
            }
            (dl, neg, pos)
        })
        .collect();
    let mut idx = vec![0usize; nf];
    let mut last = (0u32, 0u32);
    for (x, &l) in la.iter().enumerate() {
        if l != 0 {
            let (mut at_low, mut at_high) = (0u32, 0u32);
            for j in 0..nf {
                if idx[j] == 0 {
                    at_low |= 1 << j;
                }
                if idx[j] + 1 == rshape[j] {
                    at_high |= 1 << j;
                }
            }
            for &(dl, neg, pos) in &offs {
                if neg & at_low != 0 || pos & at_high != 0 {
                    continue;
                }
                let m2 = lb[(x as isize + dl) as usize];
                if m2 != 0 && (l, m2) != last {
                    last = (l, m2);
                    forest.union(ba + l as usize - 1, bb + m2 as usize - 1);
                }
            }
        }
        for j in (0..nf).rev() {
            idx[j] += 1;
            if idx[j] < rshape[j] {
                break;
            }
            idx[j] = 0;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pass 2
// ---------------------------------------------------------------------------------------

/// Pass 2: the global labels of any `region` of the array. `read` returns the mask of a
/// whole chunk region (any dtype); every chunk touching `region` is read once and
/// relabelled. The result has the table's dtype, in C order over `region`.
pub fn label_region<E>(
    table: &LabelTable,
    grid: &ChunkGrid,
    region: &Region,
    read: impl Fn(&Region) -> Result<Buf, E>,
) -> Result<Buf, E> {
    assert_eq!(
        grid, &table.grid,
        "label_region: grid differs from the table's"
    );
    let n = region.size() as usize;
    let mut out = Buf::zeros(table.dtype, n);
    if n == 0 {
        return Ok(out);
    }
    let touching = grid.chunks_touching(region);
    for cidx in crate::geom::iter_box(&touching) {
        let creg = grid.chunk_region(&cidx);
        let mask = read(&creg)?;
        assert_eq!(
            mask.len() as u64,
            creg.size(),
            "read returned the wrong size"
        );
        let chunk = grid.flatten(&cidx);
        let runs = local_label_buf(&usize_shape(&creg), &mask, table.conn);
        drop(mask);
        let inter = creg.intersect(region).expect("touching chunk intersects");
        match &mut out {
            Buf::I32(v) => paint(table, chunk, &runs, &creg, region, &inter, v, |g| g as i32),
            Buf::I64(v) => paint(table, chunk, &runs, &creg, region, &inter, v, |g| g as i64),
            _ => unreachable!("labels are i32 or i64"),
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn paint<T: Copy>(
    table: &LabelTable,
    chunk: u64,
    runs: &Runs,
    creg: &Region,
    region: &Region,
    inter: &Region,
    out: &mut [T],
    conv: impl Fn(u64) -> T,
) {
    let d = creg.ndim();
    let lut: Vec<T> = (0..=runs.count())
        .map(|l| conv(table.global(chunk, l)))
        .collect();
    let cstr = strides(&creg.shape()[..d - 1]);
    let ostr = strides(&region.shape());
    let rows = Region::new(inter.start[..d - 1].to_vec(), inter.end[..d - 1].to_vec());
    let c0 = (inter.start[d - 1] - creg.start[d - 1]) as u32;
    let c1 = (inter.end[d - 1] - creg.start[d - 1]) as u32;
    let shift = creg.start[d - 1] as i64 - region.start[d - 1] as i64;
    let mut visit = |pos: &[u64]| {
        let mut crow = 0usize;
        let mut obase = 0usize;
        for ax in 0..d - 1 {
            crow += (pos[ax] - creg.start[ax]) as usize * cstr[ax];
            obase += (pos[ax] - region.start[ax]) as usize * ostr[ax];
        }
        for i in runs.row(crow) {
            let (a, b) = runs.runs[i];
            let (a, b) = (a.max(c0), b.min(c1));
            if a >= b {
                continue;
            }
            let v = lut[runs.lab[i] as usize];
            let s = (obase as i64 + a as i64 + shift) as usize;
            out[s..s + (b - a) as usize].fill(v);
        }
    };
    if d == 1 {
        visit(&[]);
    } else {
        for pos in crate::geom::iter_box(&rows) {
            visit(&pos);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Whole arrays in memory
// ---------------------------------------------------------------------------------------

/// Label a whole in-memory mask through the chunked path: pass 1 and pass 2 run on the
/// current rayon pool, one task per chunk of shape `chunks`. Returns the labels and
/// their count.
pub fn label_in_memory(mask: &Buf, shape: &[u64], chunks: &[u64], conn: usize) -> (Buf, u64) {
    use rayon::prelude::*;
    assert_eq!(mask.len() as u64, shape.iter().product::<u64>());
    let grid = ChunkGrid::new(shape.to_vec(), chunks.to_vec());
    let n = grid.num_chunks();
    let extract = |r: &Region| crate::exec::layout::extract(mask, shape, r);
    let scans: Vec<ChunkScan> = (0..n)
        .into_par_iter()
        .map(|i| {
            let r = grid.chunk_region(&grid.unflatten(i));
            scan_chunk(shape, &r, &extract(&r), conn)
        })
        .collect();
    let table = resolve(&grid, scans, conn);
    let parts: Vec<(Region, Buf)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let r = grid.chunk_region(&grid.unflatten(i));
            let b = label_region(&table, &grid, &r, |c| Ok::<_, ()>(extract(c))).unwrap();
            (r, b)
        })
        .collect();
    let mut out = Buf::zeros(table.dtype, mask.len());
    for (r, b) in parts {
        crate::exec::layout::copy_into(&mut out, shape, &r.start, &b, &r.shape());
    }
    (out, table.count)
}

#[cfg(test)]
mod tests {

    /// Scans joined in C order keep only about one row of chunks waiting for neighbours,
    /// and any arrival order gives the same labels.
    #[test]
    fn resolver_frees_faces_early_and_ignores_arrival_order() {
        let shape = [64u64, 80];
        let chunks = [8u64, 8];
        let mask: Vec<u8> = (0..64 * 80u64)
            .map(|i| u8::from((i * 2654435761 % 97) < 45))
            .collect();
        let buf = Buf::U8(mask);
        let grid = ChunkGrid::new(shape.to_vec(), chunks.to_vec());
        let scans: Vec<ChunkScan> = (0..grid.num_chunks())
            .map(|f| {
                let r = grid.chunk_region(&grid.unflatten(f));
                let part = crate::exec::layout::extract(&buf, &shape, &r);
                scan_chunk(&shape, &r, &part, 2)
            })
            .collect();
        let mut r = Resolver::new(&grid, 2);
        let mut most = 0;
        for s in scans.iter().cloned() {
            r.add(s);
            most = most.max(r.pending.len());
        }
        // 10 chunks per row: a row plus the next chunk at most.
        assert!(most <= 11, "{most} scans were waiting at once");
        assert!(r.pending.is_empty());
        let in_order = r.finish();
        let mut r = Resolver::new(&grid, 2);
        for k in 0..scans.len() {
            r.add(scans[(k * 37) % scans.len()].clone());
        }
        let shuffled = r.finish();
        assert_eq!(in_order.count(), shuffled.count());
        for (c, s) in scans.iter().enumerate() {
            for l in 1..=s.count() {
                assert_eq!(in_order.global(c as u64, l), shuffled.global(c as u64, l));
            }
        }
    }

    use super::*;

    fn lab(shape: &[u64], chunks: &[u64], mask: &[u8], conn: usize) -> Vec<i32> {
        match label_in_memory(&Buf::U8(mask.to_vec()), shape, chunks, conn).0 {
            Buf::I32(v) => v,
            _ => unreachable!(),
        }
    }

    #[test]
    fn label_diagonal_2d() {
        let m = [1, 0, 0, 0, 1, 0, 0, 0, 1u8];
        assert_eq!(
            lab(&[3, 3], &[3, 3], &m, 1),
            vec![1, 0, 0, 0, 2, 0, 0, 0, 3]
        );
        assert_eq!(
            lab(&[3, 3], &[3, 3], &m, 2),
            vec![1, 0, 0, 0, 1, 0, 0, 0, 1]
        );
        assert_eq!(
            lab(&[3, 3], &[1, 1], &m, 2),
            vec![1, 0, 0, 0, 1, 0, 0, 0, 1]
        );
        assert_eq!(
            lab(&[3, 3], &[2, 2], &m, 1),
            vec![1, 0, 0, 0, 2, 0, 0, 0, 3]
        );
    }

    #[test]
    fn label_numbering_follows_first_pixel() {
        // A U shape whose right arm starts first in a later chunk's scan order.
        let m = [0, 0, 1u8, 1, 0, 1, 1, 1, 1];
        assert_eq!(
            lab(&[3, 3], &[3, 1], &m, 1),
            vec![0, 0, 1, 1, 0, 1, 1, 1, 1]
        );
        let m = [1u8, 0, 1, 0, 1, 0];
        assert_eq!(lab(&[6], &[2], &m, 1), vec![1, 0, 2, 0, 3, 0]);
        assert_eq!(
            lab(&[6], &[1], &[1, 1, 0, 1, 1, 1], 1),
            vec![1, 1, 0, 2, 2, 2]
        );
    }

    #[test]
    fn label_dtype_rule() {
        assert_eq!(label_dtype(&[46341, 46341]), DType::I64);
        assert_eq!(label_dtype(&[46340, 46340]), DType::I32);
        assert!(check_connectivity(2, 3).is_err());
        assert!(check_connectivity(3, 3).is_ok());
    }
}
