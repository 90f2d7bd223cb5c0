//! Reading: `ZarrReader`, and the chunk-by-chunk region decoder it shares with the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use zarrs::array::{Array, ArrayBytes, ArrayBytesRaw, ArraySubset, CodecOptions};
use zarrs::filesystem::FilesystemStore;
use zarrs::storage::ReadableStorageTraits;

use super::elem::{self, copy_bytes_into_buf, Place};
use super::meta::{describe, display, locate_array, open_error};
use super::remote::RemoteStore;
use super::retry::RetryingStore;
use super::{one_line, ArrayMeta, IoError};
use crate::data::Buf;
use crate::geom::{iter_box, ChunkGrid, Region};

/// An open array plus what Tessera derived from it; generic over the store so the reader
/// (zarrs' filesystem store) and the writer (the atomic store) share one decoder.
pub(crate) struct Core<S: ?Sized> {
    pub path: PathBuf,
    pub array: Array<S>,
    pub meta: ArrayMeta,
    pub grid: ChunkGrid,
    partial_reads: bool,
    /// zarrs' `concurrent_target` per call. 1 by default: the caller already runs one
    /// task per chunk on every core, and codec threads on top would oversubscribe.
    concurrency: AtomicUsize,
    /// Chunks decoded so far (whole or in part), for run statistics.
    decoded: AtomicU64,
    /// The first codec to decode, when its header states the decoded size.
    outer: Option<Outer>,
    /// The object store behind `array`, for prefetching (remote arrays only).
    remote: Option<Arc<RemoteStore>>,
}

/// A codec whose stored header states (or bounds) the decoded size: checked against the
/// chunk's shape before decoding, so a small file cannot decode to gigabytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outer {
    /// zstd frames (bounded by `ZSTD_decompressBound`), then `suffix` checksum bytes.
    Zstd { suffix: usize },
    /// A blosc header (`nbytes`), then `suffix` checksum bytes.
    Blosc { suffix: usize },
}

/// The outermost compressor of an unsharded array, from its metadata: zstd or blosc,
/// possibly followed by crc32c checksums.
fn outer_codec<S: ?Sized>(array: &Array<S>) -> Option<Outer> {
    use zarrs::metadata::ArrayMetadata;
    let doc = serde_json::to_value(array.metadata()).ok()?;
    let name_of = |c: &serde_json::Value| -> Option<String> {
        c.get("name")
            .or_else(|| c.get("id"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
    };
    let mut names: Vec<String> = match array.metadata() {
        ArrayMetadata::V3(_) => doc
            .get("codecs")?
            .as_array()?
            .iter()
            .filter_map(name_of)
            .collect(),
        ArrayMetadata::V2(_) => {
            let filters = doc.get("filters").and_then(|f| f.as_array());
            if filters.is_some_and(|f| !f.is_empty()) {
                return None;
            }
            vec![name_of(doc.get("compressor")?)?]
        }
    };
    if names.iter().any(|n| n.starts_with("sharding")) {
        return None;
    }
    let mut suffix = 0;
    while names.last().is_some_and(|n| n == "crc32c") {
        names.pop();
        suffix += 4;
    }
    match names.last().map(String::as_str) {
        Some("zstd") => Some(Outer::Zstd { suffix }),
        Some("blosc") => Some(Outer::Blosc { suffix }),
        _ => None,
    }
}

/// Refuse stored bytes whose outer codec declares more than `expected` decoded bytes.
fn check_decoded_size(outer: Outer, stored: &[u8], expected: u64) -> Result<(), String> {
    let (body, codec) = match outer {
        Outer::Zstd { suffix } => (&stored[..stored.len().saturating_sub(suffix)], "zstd"),
        Outer::Blosc { suffix } => (&stored[..stored.len().saturating_sub(suffix)], "blosc"),
    };
    let declared = match outer {
        // Bytes that are not zstd frames at all are left to the decoder, which reports them
        // as a damaged chunk (a read error), not as a bomb.
        // A checksum codec after zstd (crc32c) appends 4 bytes per instance; when the stored
        // metadata does not list it, try the usual suffixes until the frames parse.
        Outer::Zstd { suffix } => {
            let bound = [suffix, 4, 8].into_iter().find_map(|cut| {
                let body = stored.get(..stored.len().checked_sub(cut)?)?;
                zstd_safe::decompress_bound(body).ok()
            });
            match bound {
                Some(b) => b,
                None => return Ok(()),
            }
        }
        // Blosc's header: version, versionlz, flags, typesize, then nbytes (u32 LE).
        Outer::Blosc { .. } => match body.get(4..8) {
            Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64,
            None => return Ok(()),
        },
    };
    // A frame without a stated content size is bounded by its block count times zstd's
    // largest block (128 KiB), so an honest chunk may be bounded up to one block above its
    // size; allow that slack (and a second block for multi-frame chunks). A bomb of a
    // thousand times the chunk is still refused before anything is decoded.
    const SLACK: u64 = 2 * 128 * 1024;
    if declared > expected.saturating_add(SLACK) {
        return Err(format!(
            "{} stored bytes of {codec} would decode to {} bytes, but the chunk holds {} bytes (a damaged chunk or a decompression bomb); refused before decoding",
            body.len(),
            declared,
            expected
        ));
    }
    Ok(())
}

/// Is this chunk-relative error about decoding a chunk, or about the request itself?
pub(crate) enum Side {
    Read,
    Write,
}

impl<S: ?Sized + ReadableStorageTraits + 'static> Core<S> {
    pub(crate) fn new(path: &Path, array: Array<S>) -> Result<Core<S>, IoError> {
        let described = describe(path, &array)?;
        let grid = ChunkGrid::new(described.meta.shape.clone(), described.meta.chunks.clone());
        Ok(Core {
            path: path.to_path_buf(),
            grid,
            meta: described.meta,
            partial_reads: described.partial_reads,
            concurrency: AtomicUsize::new(1),
            decoded: AtomicU64::new(0),
            outer: outer_codec(&array),
            array,
            remote: None,
        })
    }

    /// Prefetch through `store` (the store `array` reads from).
    pub(crate) fn with_remote(mut self, store: Arc<RemoteStore>) -> Self {
        self.remote = Some(store);
        self
    }

    /// Start fetching, concurrently, every chunk `region` touches and the next ones in
    /// storage order (a run reads chunks roughly in that order), so a store with high
    /// latency keeps many requests in flight while the workers decode.
    fn prefetch_for(&self, region: &Region) {
        let Some(remote) = &self.remote else {
            return;
        };
        if self.partial_reads || region.is_empty() {
            return;
        }
        let grid_shape = self.grid.grid_shape();
        let mut keys = Vec::new();
        let mut last = None;
        for idx in iter_box(&self.grid.chunks_touching(region)) {
            keys.push(self.array.chunk_key(&idx));
            last = Some(idx);
        }
        if let Some(mut idx) = last {
            for _ in 0..super::remote::read_ahead() {
                if !next_in_c_order(&mut idx, &grid_shape) {
                    break;
                }
                keys.push(self.array.chunk_key(&idx));
            }
        }
        // The size check reads a compressed chunk's stored bytes once, the decoder again.
        let reads = if self.outer.is_some() { 2 } else { 1 };
        let chunk_bytes = self
            .meta
            .chunks
            .iter()
            .fold(self.meta.dtype.size() as u64, |a, n| a.saturating_mul(*n));
        remote.prefetch(&keys, reads, chunk_bytes);
    }

    pub(crate) fn set_concurrency(&self, n: usize) {
        self.concurrency.store(n.max(1), Ordering::Relaxed);
    }

    pub(crate) fn codec_options(&self) -> CodecOptions {
        CodecOptions::default().with_concurrent_target(self.concurrency.load(Ordering::Relaxed))
    }

    pub(crate) fn err(
        &self,
        side: Side,
        chunk: Option<&[u64]>,
        detail: impl std::fmt::Display,
    ) -> IoError {
        let path = display(&self.path);
        let chunk = chunk.map(<[u64]>::to_vec);
        let detail = match self.remote {
            Some(_) => super::remote::tidy(one_line(detail)),
            None => one_line(detail),
        };
        match side {
            Side::Read => IoError::Read {
                path,
                chunk,
                detail,
            },
            Side::Write => IoError::Write {
                path,
                chunk,
                detail,
            },
        }
    }

    /// The region of chunk `idx` clipped to the array, or an error for a bad index.
    pub(crate) fn chunk_region(&self, idx: &[u64], side: Side) -> Result<Region, IoError> {
        let grid_shape = self.grid.grid_shape();
        if idx.len() != grid_shape.len() || idx.iter().zip(&grid_shape).any(|(i, n)| i >= n) {
            return Err(self.err(
                side,
                Some(idx),
                format!(
                    "chunk index out of range (the chunk grid is {})",
                    crate::geom::fmt_shape(&grid_shape)
                ),
            ));
        }
        Ok(self.grid.chunk_region(idx))
    }

    pub(crate) fn read_chunk(&self, idx: &[u64]) -> Result<Buf, IoError> {
        let region = self.chunk_region(idx, Side::Read)?;
        self.read_region(&region)
    }

    pub(crate) fn read_region(&self, region: &Region) -> Result<Buf, IoError> {
        if let Some(out) = self.read_whole_chunk(region)? {
            return Ok(out);
        }
        let mut out = Buf::zeros(self.meta.dtype, region.size() as usize);
        self.read_region_into(region, &mut out)?;
        Ok(out)
    }

    /// The shape chunk `idx` is stored with (edge chunks keep the full chunk shape).
    fn chunk_shape(&self, idx: &[u64]) -> Result<Vec<u64>, IoError> {
        let shape = self
            .array
            .chunk_shape(idx)
            .map_err(|e| self.err(Side::Read, Some(idx), &e))?;
        Ok(shape.iter().map(|n| n.get()).collect())
    }

    /// Decode chunk `idx` whole: its stored shape and its bytes, checked for length.
    fn decode_chunk(
        &self,
        idx: &[u64],
        opts: &CodecOptions,
    ) -> Result<(Vec<u64>, ArrayBytesRaw<'static>), IoError> {
        let fail = |e: &dyn std::fmt::Display| self.err(Side::Read, Some(idx), e);
        let shape = self.chunk_shape(idx)?;
        self.check_stored_size(idx, &shape)?;
        let bytes: ArrayBytes<'static> = self
            .array
            .retrieve_chunk_opt(idx, opts)
            .map_err(|e| fail(&e))?;
        let bytes = bytes.into_fixed().map_err(|e| fail(&e))?;
        check_len(&bytes, &shape, self.meta.dtype.size() as u64).map_err(|e| fail(&e))?;
        Ok((shape, bytes))
    }

    /// Refuse chunk `idx` when its compressor declares more decoded bytes than its shape
    /// holds (read of the stored bytes, no decoding; compressed arrays only).
    fn check_stored_size(&self, idx: &[u64], shape: &[u64]) -> Result<(), IoError> {
        let Some(outer) = self.outer else {
            return Ok(());
        };
        let stored = self
            .array
            .retrieve_encoded_chunk(idx)
            .map_err(|e| self.err(Side::Read, Some(idx), &e))?;
        let Some(stored) = stored else {
            return Ok(());
        };
        let expected = shape
            .iter()
            .try_fold(self.meta.dtype.size() as u64, |a, n| a.checked_mul(*n))
            .unwrap_or(u64::MAX);
        check_decoded_size(outer, &stored, expected).map_err(|detail| IoError::Oversized {
            path: display(&self.path),
            chunk: Some(idx.to_vec()),
            detail: one_line(detail),
        })
    }

    /// `region` when it is exactly one chunk not clipped by the array edge: the decoded
    /// bytes become the buffer in one copy, without zero-filling it first.
    fn read_whole_chunk(&self, region: &Region) -> Result<Option<Buf>, IoError> {
        self.prefetch_for(region);
        let shape = &self.meta.shape;
        if region.ndim() != shape.len()
            || region.is_empty()
            || (0..shape.len()).any(|a| region.end[a] > shape[a])
            || !self.grid.is_chunk(region)
        {
            return Ok(None);
        }
        let idx: Vec<u64> = region
            .start
            .iter()
            .zip(&self.meta.chunks)
            .map(|(s, c)| s / c)
            .collect();
        let fail = |e: &dyn std::fmt::Display| self.err(Side::Read, Some(&idx), e);
        if self.chunk_shape(&idx)? != region.shape() {
            return Ok(None);
        }
        self.decoded.fetch_add(1, Ordering::Relaxed);
        let (_, bytes) = self.decode_chunk(&idx, &self.codec_options())?;
        elem::buf_from_ne_bytes(self.meta.dtype, &bytes)
            .map(Some)
            .map_err(|e| fail(&e))
    }

    /// Decode every chunk touching `region` and copy its overlap straight into `out`:
    /// one copy per element after decompression, as zarrs' own `*_into` does.
    pub(crate) fn read_region_into(&self, region: &Region, out: &mut Buf) -> Result<(), IoError> {
        check_request(&self.meta, region, out).map_err(|e| self.err(Side::Read, None, e))?;
        if region.is_empty() {
            return Ok(());
        }
        self.prefetch_for(region);
        let region_shape = region.shape();
        let opts = self.codec_options();
        let elem = self.meta.dtype.size() as u64;
        for idx in iter_box(&self.grid.chunks_touching(region)) {
            let chunk = self.grid.chunk_region(&idx);
            let Some(overlap) = chunk.intersect(region) else {
                continue;
            };
            let origin: Vec<u64> = idx
                .iter()
                .zip(&self.meta.chunks)
                .map(|(i, c)| i * c)
                .collect();
            let in_chunk: Vec<u64> = overlap
                .start
                .iter()
                .zip(&origin)
                .map(|(s, o)| s - o)
                .collect();
            let in_out: Vec<u64> = overlap
                .start
                .iter()
                .zip(&region.start)
                .map(|(s, r)| s - r)
                .collect();
            let overlap_shape = overlap.shape();
            let to = Place {
                array_shape: &region_shape,
                start: &in_out,
            };
            let fail = |e: &dyn std::fmt::Display| self.err(Side::Read, Some(&idx), e);
            self.decoded.fetch_add(1, Ordering::Relaxed);
            if self.partial_reads && overlap != chunk {
                let subset =
                    ArraySubset::new_with_start_shape(in_chunk.clone(), overlap_shape.clone())
                        .map_err(|e| fail(&e))?;
                let bytes: ArrayBytes<'static> = self
                    .array
                    .retrieve_chunk_subset_opt(&idx, &subset, &opts)
                    .map_err(|e| fail(&e))?;
                let bytes = bytes.into_fixed().map_err(|e| fail(&e))?;
                let zero = vec![0; overlap_shape.len()];
                let from = Place {
                    array_shape: &overlap_shape,
                    start: &zero,
                };
                check_len(&bytes, &overlap_shape, elem).map_err(|e| fail(&e))?;
                copy_bytes_into_buf(&bytes, from, out, to, &overlap_shape).map_err(|e| fail(&e))?;
            } else {
                let (decoded_shape, bytes) = self.decode_chunk(&idx, &opts)?;
                let from = Place {
                    array_shape: &decoded_shape,
                    start: &in_chunk,
                };
                copy_bytes_into_buf(&bytes, from, out, to, &overlap_shape).map_err(|e| fail(&e))?;
            }
        }
        Ok(())
    }
}

/// Is `region` inside the array, and `out` a buffer of its dtype and the region's size?
pub(crate) fn check_request(meta: &ArrayMeta, region: &Region, out: &Buf) -> Result<(), String> {
    let shape = &meta.shape;
    if region.ndim() != shape.len()
        || (0..shape.len()).any(|a| region.start[a] > region.end[a] || region.end[a] > shape[a])
    {
        return Err(format!(
            "region {region} is outside the array of shape {}",
            crate::geom::fmt_shape(shape)
        ));
    }
    if out.dtype() != meta.dtype || out.len() as u64 != region.size() {
        return Err(format!(
            "output buffer is {} x {}, the region {region} needs {} x {}",
            out.dtype(),
            out.len(),
            meta.dtype,
            region.size()
        ));
    }
    Ok(())
}

/// Step `idx` to the next chunk index in C order; false past the last.
fn next_in_c_order(idx: &mut [u64], grid: &[u64]) -> bool {
    for a in (0..idx.len()).rev() {
        idx[a] += 1;
        if idx[a] < grid[a] {
            return true;
        }
        idx[a] = 0;
    }
    false
}

/// zarrs validates decoded sizes, but a short buffer here would be a panic, not an error.
fn check_len(bytes: &[u8], shape: &[u64], elem: u64) -> Result<(), String> {
    let want = shape.iter().product::<u64>() * elem;
    if bytes.len() as u64 != want {
        return Err(format!("decoded {} bytes, expected {want}", bytes.len()));
    }
    Ok(())
}

/// A read-only open Zarr array (v2 or v3). Cheap to share across threads via `Arc`.
pub struct ZarrReader {
    backing: Backing,
}

/// Where a reader's chunks come from. One per open input, behind an `Arc`: its size does
/// not matter.
#[allow(clippy::large_enum_variant)]
enum Backing {
    Store(Core<dyn ReadableStorageTraits>),
    /// An array in the host program's memory (`ZarrReader::host`).
    Host(super::host::HostArray),
}

impl ZarrReader {
    /// Open the array at `path` (its own directory, also inside a group), or at a remote
    /// URL (`s3://`, `http(s)://`, see `io::remote`).
    pub fn open(path: &Path) -> Result<ZarrReader, IoError> {
        if let Some(loc) = super::remote::location_of(path)? {
            let store = Arc::new(super::remote::open_array_store(&loc)?);
            let array = Array::open(store.clone() as Arc<dyn ReadableStorageTraits>, "/")
                .map_err(|e| super::remote::open_failed(&loc, e))?;
            return Ok(ZarrReader {
                backing: Backing::Store(Core::new(path, array)?.with_remote(store)),
            });
        }
        locate_array(path)?;
        let store = FilesystemStore::new(path).map_err(|e| IoError::Unsupported {
            path: display(path),
            detail: one_line(e),
        })?;
        let store: Arc<dyn ReadableStorageTraits> = Arc::new(RetryingStore::new(store));
        let array = Array::open(store, "/").map_err(|e| open_error(path, e))?;
        Ok(ZarrReader {
            backing: Backing::Store(Core::new(path, array)?),
        })
    }

    /// An array in the host program's memory, read in place through a grid of `chunks`:
    /// `data` holds `shape` elements of `dtype`, dense, in C order, native-endian. `name`
    /// stands for its path in messages (`<numpy x>`).
    pub fn host(
        name: &str,
        data: Arc<dyn super::host::HostBytes>,
        dtype: crate::dtype::DType,
        shape: Vec<u64>,
        chunks: Vec<u64>,
    ) -> Result<ZarrReader, IoError> {
        let host = super::host::HostArray::new(name, data, dtype, shape, chunks)?;
        Ok(ZarrReader {
            backing: Backing::Host(host),
        })
    }

    pub fn meta(&self) -> &ArrayMeta {
        match &self.backing {
            Backing::Store(core) => &core.meta,
            Backing::Host(h) => &h.meta,
        }
    }

    pub fn path(&self) -> &Path {
        match &self.backing {
            Backing::Store(core) => &core.path,
            Backing::Host(h) => &h.name,
        }
    }

    /// Is this an array in the host program's memory (`ZarrReader::host`)?
    pub fn is_host(&self) -> bool {
        matches!(self.backing, Backing::Host(_))
    }

    /// Codec-level threads per call (default 1; raise it only when few chunks run at once).
    pub fn set_codec_concurrency(&self, n: usize) {
        if let Backing::Store(core) = &self.backing {
            core.set_concurrency(n);
        }
    }

    /// The dense C-order contents of `region`; missing chunks read as the fill value.
    pub fn read_region(&self, region: &Region) -> Result<Buf, IoError> {
        match &self.backing {
            Backing::Store(core) => core.read_region(region),
            Backing::Host(h) => h.read_region(region),
        }
    }

    /// Like `read_region`, into a buffer of the array's dtype and the region's size.
    pub fn read_region_into(&self, region: &Region, out: &mut Buf) -> Result<(), IoError> {
        match &self.backing {
            Backing::Store(core) => core.read_region_into(region, out),
            Backing::Host(h) => h.read_region_into(region, out),
        }
    }

    /// Chunk `idx`, clipped to the array edge.
    pub fn read_chunk(&self, idx: &[u64]) -> Result<Buf, IoError> {
        match &self.backing {
            Backing::Store(core) => core.read_chunk(idx),
            Backing::Host(h) => h.read_chunk(idx),
        }
    }

    /// Does this reader fetch from an object store or HTTP?
    pub fn is_remote(&self) -> bool {
        matches!(&self.backing, Backing::Store(core) if core.remote.is_some())
    }

    /// How many chunks this reader has decoded (whole or in part) since it was opened.
    pub fn chunks_decoded(&self) -> u64 {
        match &self.backing {
            Backing::Store(core) => core.decoded.load(Ordering::Relaxed),
            Backing::Host(h) => h.decoded.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for ZarrReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrReader")
            .field("path", &self.path())
            .field("meta", self.meta())
            .finish()
    }
}
