//! Arrays held in the memory of a host program (a NumPy array handed over by the Python
//! package): read in place, a chunk window at a time, like a stored array whose chunks
//! are slices of one dense buffer. Nothing copies the whole array.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::elem::{copy_box, copy_bytes_into_buf, Place};
use super::{ArrayMeta, IoError};
use crate::data::Buf;
use crate::dtype::DType;
use crate::geom::{ChunkGrid, Region};

/// The bytes of a dense, C-order, native-endian array that the host program keeps alive
/// (and unchanged) for as long as this value exists.
pub trait HostBytes: Send + Sync {
    fn bytes(&self) -> &[u8];
}

/// An array in host memory, seen through a chunk grid.
pub(crate) struct HostArray {
    pub name: PathBuf,
    pub meta: ArrayMeta,
    pub grid: ChunkGrid,
    data: Arc<dyn HostBytes>,
    /// Chunk windows read so far, for run statistics.
    pub decoded: AtomicU64,
}

impl HostArray {
    /// `data` holds `shape` elements of `dtype`; `chunks` is the grid tasks read it by.
    pub fn new(
        name: &str,
        data: Arc<dyn HostBytes>,
        dtype: DType,
        shape: Vec<u64>,
        chunks: Vec<u64>,
    ) -> Result<HostArray, IoError> {
        let bad = |detail: String| IoError::Unsupported {
            path: name.to_string(),
            detail,
        };
        if chunks.len() != shape.len() || chunks.contains(&0) {
            return Err(bad(format!(
                "the chunk shape {} does not fit the array shape {}",
                crate::geom::fmt_shape(&chunks),
                crate::geom::fmt_shape(&shape)
            )));
        }
        let want = crate::geom::saturating_product(&shape).saturating_mul(dtype.size() as u64);
        let have = data.bytes().len() as u64;
        if want != have {
            return Err(bad(format!(
                "the buffer holds {have} bytes, but {dtype} {} needs {want}",
                crate::geom::fmt_shape(&shape)
            )));
        }
        let meta = ArrayMeta {
            shape: shape.clone(),
            chunks: chunks.clone(),
            dtype,
            fill: Buf::zeros(dtype, 1),
            zarr_format: 3,
            codec_summary: "in memory".to_string(),
        };
        Ok(HostArray {
            name: PathBuf::from(name),
            meta,
            grid: ChunkGrid::new(shape, chunks),
            data,
            decoded: AtomicU64::new(0),
        })
    }

    fn read_error(&self, chunk: Option<&[u64]>, detail: String) -> IoError {
        IoError::Read {
            path: self.name.display().to_string(),
            chunk: chunk.map(<[u64]>::to_vec),
            detail,
        }
    }

    pub fn read_region(&self, region: &Region) -> Result<Buf, IoError> {
        let mut out = Buf::zeros(self.meta.dtype, region.size() as usize);
        self.read_region_into(region, &mut out)?;
        Ok(out)
    }

    /// Copy `region` out of the buffer, one copy per element.
    pub fn read_region_into(&self, region: &Region, out: &mut Buf) -> Result<(), IoError> {
        super::read::check_request(&self.meta, region, out)
            .map_err(|e| self.read_error(None, e))?;
        let shape = &self.meta.shape;
        if region.is_empty() {
            return Ok(());
        }
        self.decoded.fetch_add(1, Ordering::Relaxed);
        let region_shape = region.shape();
        let zero = vec![0; region_shape.len()];
        let from = Place {
            array_shape: shape,
            start: &region.start,
        };
        let to = Place {
            array_shape: &region_shape,
            start: &zero,
        };
        let src = self.data.bytes();
        match out {
            // Any non-zero byte is true, as NumPy reads a bool buffer.
            Buf::Bool(v) => {
                let mut bytes = vec![0u8; v.len()];
                copy_box(src, from, &mut bytes, to, &region_shape);
                for (b, x) in v.iter_mut().zip(bytes) {
                    *b = x != 0;
                }
                Ok(())
            }
            other => copy_bytes_into_buf(src, from, other, to, &region_shape)
                .map_err(|e| self.read_error(None, e)),
        }
    }

    pub fn read_chunk(&self, idx: &[u64]) -> Result<Buf, IoError> {
        let grid_shape = self.grid.grid_shape();
        if idx.len() != grid_shape.len() || idx.iter().zip(&grid_shape).any(|(i, n)| i >= n) {
            let detail = format!(
                "chunk index out of range (the chunk grid is {})",
                crate::geom::fmt_shape(&grid_shape)
            );
            return Err(self.read_error(Some(idx), detail));
        }
        self.read_region(&self.grid.chunk_region(idx))
    }
}
