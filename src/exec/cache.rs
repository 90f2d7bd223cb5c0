//! A bounded cache of decoded input chunks. Stencil tasks read their chunk plus a halo
//! from up to 3^d neighbours; without the cache every neighbour chunk would be
//! decompressed again by each task that touches it (9× the decoding work in 2-D). The
//! cache keeps recently decoded chunks up to a byte budget, decodes each chunk once even
//! when two workers ask for it at the same time, and evicts the least recently used.
//!
//! Chunks a chained stage writes for later stages of its wave are offered to it
//! (`offer`), or, with a pin budget (`TESSERA_PIN_MB`), *pinned* (`pin`/`unpin`): held
//! until every task that reads them has run, since the least recently used is exactly
//! the chunk whose last reader is still to come.

use super::ExecError;
use crate::data::Buf;
use crate::geom::{ChunkGrid, Region};
use crate::io::ZarrReader;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A decoded chunk, or the storage error decoding it gave (kept whole so the run reports
/// it as the read error it is, naming the path and chunk).
type Slot = Arc<OnceLock<Result<Arc<Buf>, crate::io::IoError>>>;

struct Entry {
    slot: Slot,
    bytes: u64,
    last_use: u64,
}

/// Entries by (input path, flat chunk index), and their total bytes.
type Entries = (HashMap<(String, u64), Entry>, u64);

/// Pinned chunks by (output path, flat chunk index), and their total bytes.
type Pinned = (HashMap<(String, u64), Arc<Buf>>, u64);

pub struct ChunkCache {
    budget: u64,
    clock: AtomicU64,
    /// Input chunks tasks asked for (through the cache or directly), for run statistics.
    requests: AtomicU64,
    inner: Mutex<Entries>,
    /// Written chunks held for their readers (`pin`), with their total bytes.
    pinned: Mutex<Pinned>,
    pin_budget: u64,
    /// The outputs whose chunks are pinned (their readers are counted).
    pin_paths: Vec<String>,
}

impl ChunkCache {
    pub fn new(budget: u64) -> ChunkCache {
        ChunkCache::with_pins(budget, 0, Vec::new())
    }

    /// A cache that also pins written chunks of `pin_paths` for their readers, up to
    /// `pin_budget` bytes.
    pub fn with_pins(budget: u64, pin_budget: u64, pin_paths: Vec<String>) -> ChunkCache {
        ChunkCache {
            budget,
            clock: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            inner: Mutex::new((HashMap::new(), 0)),
            pinned: Mutex::new((HashMap::new(), 0)),
            pin_budget,
            pin_paths,
        }
    }

    /// The decoded chunk `flat` of `reader` (whole chunk, clipped to the array edge).
    fn chunk(
        &self,
        path: &str,
        reader: &ZarrReader,
        grid: &ChunkGrid,
        flat: u64,
    ) -> Result<Arc<Buf>, ExecError> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        self.count_request();
        if let Some(c) = self.pinned_chunk(path, flat) {
            return Ok(c);
        }
        let bytes = grid.chunks.iter().product::<u64>() * reader.meta().dtype.size() as u64;
        let slot = {
            let mut g = self.inner.lock().expect("cache lock");
            let (map, total) = &mut *g;
            let key = (path.to_string(), flat);
            match map.get_mut(&key) {
                Some(e) => {
                    e.last_use = now;
                    e.slot.clone()
                }
                None => {
                    let slot: Slot = Arc::new(OnceLock::new());
                    map.insert(
                        key,
                        Entry {
                            slot: slot.clone(),
                            bytes,
                            last_use: now,
                        },
                    );
                    *total += bytes;
                    evict(map, total, self.budget, now);
                    slot
                }
            }
        };
        let r = slot.get_or_init(|| reader.read_chunk(&grid.unflatten(flat)).map(Arc::new));
        r.clone().map_err(ExecError::Io)
    }

    /// Whether chunk `flat` of `path` is cached (decoded, being decoded, or pinned).
    pub fn holds(&self, path: &str, flat: u64) -> bool {
        let key = (path.to_string(), flat);
        if self.pinned.lock().expect("pin lock").0.contains_key(&key) {
            return true;
        }
        let g = self.inner.lock().expect("cache lock");
        g.0.contains_key(&key)
    }

    fn pinned_chunk(&self, path: &str, flat: u64) -> Option<Arc<Buf>> {
        let g = self.pinned.lock().expect("pin lock");
        g.0.get(&(path.to_string(), flat)).cloned()
    }

    /// Hold `chunk`, just written as chunk `flat` of `path`, until `unpin` says its last
    /// reader has run; past the pin budget, or for an output not pinned, it is offered
    /// like a decoded chunk instead.
    pub fn pin(&self, path: &str, flat: u64, chunk: Arc<Buf>) {
        let bytes = chunk.nbytes() as u64;
        if self.pin_paths.iter().any(|p| p == path) {
            let mut g = self.pinned.lock().expect("pin lock");
            let (map, total) = &mut *g;
            if *total + bytes <= self.pin_budget {
                if let Some(old) = map.insert((path.to_string(), flat), chunk) {
                    *total -= old.nbytes() as u64;
                }
                *total += bytes;
                return;
            }
        }
        self.offer(path, flat, chunk);
    }

    /// Every task that reads chunk `flat` of `path` has run: let it go.
    pub fn unpin(&self, path: &str, flat: u64) {
        let mut g = self.pinned.lock().expect("pin lock");
        let (map, total) = &mut *g;
        if let Some(old) = map.remove(&(path.to_string(), flat)) {
            *total -= old.nbytes() as u64;
        }
    }

    /// Hold `chunk` (whole, clipped to the array edge), just written as chunk `flat` of
    /// `path`, for the tasks that read it next, within the budget: the least recently
    /// used entries make room, as for a decoded chunk.
    pub fn offer(&self, path: &str, flat: u64, chunk: Arc<Buf>) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let bytes = chunk.nbytes() as u64;
        if bytes > self.budget {
            return;
        }
        let slot: Slot = Arc::new(OnceLock::new());
        let _ = slot.set(Ok(chunk));
        let mut g = self.inner.lock().expect("cache lock");
        let (map, total) = &mut *g;
        let key = (path.to_string(), flat);
        if let Some(old) = map.insert(
            key,
            Entry {
                slot,
                bytes,
                last_use: now,
            },
        ) {
            *total -= old.bytes;
        }
        *total += bytes;
        evict(map, total, self.budget, now);
    }

    /// Count one input chunk a task read without the cache.
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Input chunks asked for so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `region` of the array, assembled from cached chunks.
    pub fn read(&self, path: &str, reader: &ZarrReader, region: &Region) -> Result<Buf, ExecError> {
        let m = reader.meta();
        let grid = ChunkGrid::new(m.shape.clone(), m.chunks.clone());
        assemble(m.dtype, &grid, region, |flat| {
            self.chunk(path, reader, &grid, flat)
        })
    }

    /// `region` of an input whose decoded chunks `kept` holds across waves: chunks it
    /// holds are copied out, others decoded (once, through this cache) and kept while
    /// its budget allows.
    pub fn read_kept(
        &self,
        kept: &KeptChunks,
        path: &str,
        reader: &ZarrReader,
        region: &Region,
    ) -> Result<Buf, ExecError> {
        let m = reader.meta();
        let grid = ChunkGrid::new(m.shape.clone(), m.chunks.clone());
        assemble(m.dtype, &grid, region, |flat| {
            if let Some(c) = kept.get(path, flat) {
                self.count_request();
                return Ok(c);
            }
            let c = self.chunk(path, reader, &grid, flat)?;
            kept.offer(path, flat, &c);
            Ok(c)
        })
    }
}

/// Evict least recently used entries beyond `budget`, never the one used at `now` (tasks
/// that still hold an evicted chunk keep it alive through their Arc).
fn evict(map: &mut HashMap<(String, u64), Entry>, total: &mut u64, budget: u64, now: u64) {
    while *total > budget && map.len() > 1 {
        let oldest = map
            .iter()
            .filter(|(_, e)| e.last_use != now)
            .min_by_key(|(_, e)| e.last_use)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => {
                if let Some(e) = map.remove(&k) {
                    *total -= e.bytes;
                }
            }
            None => break,
        }
    }
}

/// Kept chunks by (input path, flat chunk index).
type KeptMap = HashMap<(String, u64), Arc<Buf>>;

/// Decoded chunks of the inputs that stages of several waves read (`Plan::shared_inputs`),
/// kept from the first wave that decodes them to the last that reads them, up to a byte
/// budget: chunks past the budget are not kept (no eviction, so a sweep in the same order
/// in the next wave finds the first ones instead of none).
pub struct KeptChunks {
    budget: u64,
    /// The shared inputs' paths, with the last wave reading each.
    paths: HashMap<String, usize>,
    inner: Mutex<(KeptMap, u64)>,
}

impl KeptChunks {
    pub fn new(budget: u64, shared: &[crate::plan::SharedInput]) -> KeptChunks {
        KeptChunks {
            budget,
            paths: shared
                .iter()
                .filter(|_| budget > 0)
                .map(|s| (s.path.clone(), s.last_wave))
                .collect(),
            inner: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// Whether reads of `path` go through the kept chunks.
    pub fn holds(&self, path: &str) -> bool {
        self.paths.contains_key(path)
    }

    fn get(&self, path: &str, flat: u64) -> Option<Arc<Buf>> {
        let g = self.inner.lock().expect("kept lock");
        g.0.get(&(path.to_string(), flat)).cloned()
    }

    fn offer(&self, path: &str, flat: u64, chunk: &Arc<Buf>) {
        let bytes = chunk.nbytes() as u64;
        let mut g = self.inner.lock().expect("kept lock");
        let (map, total) = &mut *g;
        if *total + bytes <= self.budget && !map.contains_key(&(path.to_string(), flat)) {
            map.insert((path.to_string(), flat), chunk.clone());
            *total += bytes;
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.inner.lock().expect("kept lock").1
    }

    /// Drop the chunks of inputs no wave after `wave` reads.
    pub fn end_wave(&self, wave: usize) {
        let done: Vec<&str> = self
            .paths
            .iter()
            .filter(|(_, last)| **last <= wave)
            .map(|(p, _)| p.as_str())
            .collect();
        if done.is_empty() {
            return;
        }
        let mut g = self.inner.lock().expect("kept lock");
        let (map, total) = &mut *g;
        map.retain(|(p, _), c| {
            let keep = !done.contains(&p.as_str());
            if !keep {
                *total -= c.nbytes() as u64;
            }
            keep
        });
    }
}

/// `region` of an array with this chunk grid, assembled from its decoded chunks (`chunk`
/// by flat index, whole and clipped to the array edge). The output is built by appending
/// its rows in C order (each row's pieces from the chunks along the last axis), one slab
/// of chunks along the first axis at a time, so nothing is zero-filled first and a task
/// holds only one slab's chunks.
fn assemble(
    dtype: crate::dtype::DType,
    grid: &ChunkGrid,
    region: &Region,
    chunk: impl Fn(u64) -> Result<Arc<Buf>, ExecError>,
) -> Result<Buf, ExecError> {
    let nd = region.ndim();
    let touching = grid.chunks_touching(region);
    if nd == 0 || region.is_empty() {
        let mut out = Buf::zeros(dtype, region.size() as usize);
        for idx in crate::geom::iter_box(&touching) {
            let c = chunk(grid.flatten(&idx))?;
            out.copy_range(0, &c, 0, out.len());
        }
        return Ok(out);
    }
    let last = nd - 1;
    let mut out = Buf::with_capacity(dtype, region.size() as usize);
    for c0 in touching.start[0]..touching.end[0] {
        let mut slab = touching.clone();
        slab.start[0] = c0;
        slab.end[0] = c0 + 1;
        // The slab's chunks in C order of their grid index, with their regions.
        let chunks = crate::geom::iter_box(&slab)
            .map(|idx| {
                let c = chunk(grid.flatten(&idx))?;
                let creg = grid.chunk_region(&idx);
                let cst = crate::geom::strides(&creg.shape());
                Ok((creg, cst, c))
            })
            .collect::<Result<Vec<_>, ExecError>>()?;
        let slab_shape = slab.shape();
        let slab_strides = crate::geom::strides(&slab_shape);
        // Output rows in this slab: the region's rows whose first coordinate lies in
        // chunk c0, every combination of the middle axes, in C order.
        let mut rows = Region::new(region.start[..last].to_vec(), region.end[..last].to_vec());
        if last > 0 {
            let first = &chunks[0].0;
            rows.start[0] = rows.start[0].max(first.start[0]);
            rows.end[0] = rows.end[0].min(first.end[0]);
        }
        for outer in crate::geom::iter_box(&rows) {
            // Chunks along the middle axes holding this row.
            let mut base = 0usize;
            for a in 1..last {
                let ca = outer[a] / grid.chunks[a];
                base += (ca - slab.start[a]) as usize * slab_strides[a];
            }
            for cl in 0..slab_shape[last] as usize {
                let (creg, cst, c) = &chunks[base + cl * slab_strides[last]];
                let lo = region.start[last].max(creg.start[last]);
                let hi = region.end[last].min(creg.end[last]);
                let mut off = (lo - creg.start[last]) as usize;
                for a in 0..last {
                    off += (outer[a] - creg.start[a]) as usize * cst[a];
                }
                out.extend_from(c, off, (hi - lo) as usize);
            }
        }
    }
    debug_assert_eq!(out.len() as u64, region.size());
    Ok(out)
}
