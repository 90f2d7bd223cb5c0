//! Zarr storage: open, read and write v2/v3 arrays chunk by chunk. The only module that
//! imports zarrs; its public API speaks `Buf`, `DType` and `Region` only.

mod elem;
pub mod identity;
pub mod lock;
mod meta;
pub mod preview;
pub mod python;
mod read;
mod retry;
mod store;
mod write;

use std::fmt;

use crate::data::Buf;
use crate::dtype::DType;

pub use identity::ArrayId;
pub use meta::{foreign_entries, symlinks_inside};
pub use read::ZarrReader;
pub use write::{claim_temp_dir, replace_with_staged, temp_dir_check, ZarrWriter, TEMP_MARKER};

/// The completion record a run keeps inside each output it writes (see `exec::resume`).
pub const RESUME_RECORD: &str = ".tessera-resume.log";

/// How many finished chunks the completion record inside `dir` lists for an interrupted
/// run (0 without one, or when that run finished): what `--resume` would not compute again.
pub fn recorded_chunks(dir: &std::path::Path) -> u64 {
    let Ok(text) = std::fs::read(dir.join(RESUME_RECORD)) else {
        return 0;
    };
    let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    // The part after the last newline is empty, or a torn line that does not count.
    lines.pop();
    if lines.iter().any(|l| *l == b"e") {
        // The run that wrote it finished: nothing to resume.
        return 0;
    }
    let mut done: Vec<&[u8]> = lines
        .into_iter()
        .skip(1)
        .filter(|l| l.starts_with(b"c "))
        .collect();
    done.sort_unstable();
    done.dedup();
    done.len() as u64
}

/// What Tessera knows about an array once it is open.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayMeta {
    pub shape: Vec<u64>,
    /// The storage chunk shape (for a sharded array: the shard shape, the unit of a write).
    pub chunks: Vec<u64>,
    pub dtype: DType,
    /// The fill value, one element.
    pub fill: Buf,
    /// 2 or 3.
    pub zarr_format: u8,
    /// Human-readable codec chain, e.g. `bytes(endian=little) -> zstd(level=3, checksum=false)`.
    pub codec_summary: String,
}

/// Storage errors. Each message is one line, names the path, and the chunk when known.
#[derive(Clone, Debug, thiserror::Error)]
pub enum IoError {
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error("{path} is not a Zarr array: {detail}")]
    NotZarr { path: String, detail: String },
    #[error("{path} is a Zarr group, not an array{}", group_contents(arrays))]
    IsGroup { path: String, arrays: Vec<String> },
    #[error("{path}: unsupported Zarr array: {detail}")]
    Unsupported { path: String, detail: String },
    #[error("{path} already exists (pass overwrite to replace it)")]
    Exists { path: String },
    #[error("cannot write {path}: {detail}")]
    Unwritable { path: String, detail: String },
    /// Writing `path` would delete or reuse something Zarr and Tessera do not own.
    #[error("{path}: {detail}")]
    NotOwned { path: String, detail: String },
    /// A write into `path` would follow the symbolic link `entry` out of the store.
    #[error("refusing to write into {path}: its entry {entry} is a symbolic link")]
    Symlink { path: String, entry: String },
    #[error("error reading {path}{}: {detail}", chunk_suffix(chunk))]
    Read {
        path: String,
        chunk: Option<Vec<u64>>,
        detail: String,
    },
    /// A chunk whose compressed data would decode to more than its shape holds.
    #[error("error reading {path}{}: {detail}", chunk_suffix(chunk))]
    Oversized {
        path: String,
        chunk: Option<Vec<u64>>,
        detail: String,
    },
    #[error("error writing {path}{}: {detail}", chunk_suffix(chunk))]
    Write {
        path: String,
        chunk: Option<Vec<u64>>,
        detail: String,
    },
}

fn chunk_suffix(chunk: &Option<Vec<u64>>) -> String {
    match chunk {
        Some(idx) => format!(" chunk {}", crate::geom::fmt_shape(idx)),
        None => String::new(),
    }
}

fn group_contents(arrays: &[String]) -> String {
    // Long listings would break the one-line rule in a terminal; the first few suffice.
    const SHOWN: usize = 8;
    if arrays.is_empty() {
        return " (it contains no arrays)".to_string();
    }
    let mut s = format!(
        "; open one of its arrays: {}",
        arrays[..arrays.len().min(SHOWN)].join(", ")
    );
    if arrays.len() > SHOWN {
        s.push_str(&format!(" (and {} more)", arrays.len() - SHOWN));
    }
    s
}

/// Errors from zarrs can span lines; messages must not.
pub(crate) fn one_line(s: impl fmt::Display) -> String {
    let s = s.to_string();
    let mut out = String::with_capacity(s.len());
    for (i, part) in s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

/// Compressor of a newly written array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Zstd,
    Blosc,
    Gzip,
    None,
}

impl Codec {
    pub fn parse(s: &str) -> Option<Codec> {
        match s {
            "zstd" => Some(Codec::Zstd),
            "blosc" => Some(Codec::Blosc),
            "gzip" => Some(Codec::Gzip),
            "none" => Some(Codec::None),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Blosc => "blosc",
            Codec::Gzip => "gzip",
            Codec::None => "none",
        }
    }

    /// The level used when none is given (zarr-python 3's defaults).
    pub fn default_level(self) -> Option<i32> {
        match self {
            Codec::Zstd => Some(3),
            Codec::Blosc => Some(5),
            Codec::Gzip => Some(5),
            Codec::None => None,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a new array is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    pub codec: Codec,
    /// Compression level; `None` takes the codec's default.
    pub level: Option<i32>,
    /// Replace an existing array (or group) at the output path.
    pub overwrite: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            codec: Codec::Zstd,
            level: None,
            overwrite: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_path_and_chunk() {
        let e = IoError::Read {
            path: "a.zarr".into(),
            chunk: Some(vec![1, 2]),
            detail: one_line("bad\n  zstd frame\n"),
        };
        assert_eq!(
            e.to_string(),
            "error reading a.zarr chunk [1, 2]: bad zstd frame"
        );
        let g = IoError::IsGroup {
            path: "g.zarr".into(),
            arrays: vec!["x".into(), "sub/y".into()],
        };
        assert_eq!(
            g.to_string(),
            "g.zarr is a Zarr group, not an array; open one of its arrays: x, sub/y"
        );
        let many = IoError::IsGroup {
            path: "g".into(),
            arrays: (0..10).map(|i| i.to_string()).collect(),
        };
        assert!(many.to_string().ends_with("(and 2 more)"));
    }

    #[test]
    fn codec_names_round_trip() {
        for c in [Codec::Zstd, Codec::Blosc, Codec::Gzip, Codec::None] {
            assert_eq!(Codec::parse(c.name()), Some(c));
        }
        assert_eq!(Codec::parse("lz4"), None);
    }
}
