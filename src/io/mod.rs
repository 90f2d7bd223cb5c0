//! Zarr storage: open, read and write v2/v3 arrays chunk by chunk. The only module that
//! imports zarrs; its public API speaks `Buf`, `DType` and `Region` only.

pub mod anndata;
mod elem;
pub mod host;
pub mod identity;
pub mod images;
pub mod lock;
mod meta;
pub mod ome;
pub mod preview;
pub mod python;
mod read;
pub mod remote;
mod retry;
mod store;
mod write;

use std::fmt;

use crate::data::Buf;
use crate::dtype::DType;

pub use host::HostBytes;
pub use identity::ArrayId;
pub use meta::{foreign_entries, symlinks_inside};
pub use read::ZarrReader;
pub use remote::{is_url, ObjectDir};
pub use write::{
    claim_temp_dir, replace_with_staged, stage_linked, temp_dir_check, ZarrWriter, TEMP_MARKER,
};

/// The completion record a run keeps inside each output it writes (see `exec::resume`).
pub const RESUME_RECORD: &str = ".tessera-resume.log";

/// The completion record of an output in an object store: objects under this prefix
/// inside the output (`header.json`, one `done/…` object per batch of finished chunks,
/// `end` once the run finished). Objects cannot be appended to; each batch is one PUT
/// sent after its chunks' PUTs returned, so a listed chunk is always stored.
pub const REMOTE_RECORD: &str = ".tessera-resume";

/// A remote output's completion record: its header, the chunks its batches list (sorted,
/// deduplicated), and whether the run finished.
pub type RemoteRecord = (Vec<u8>, Vec<u64>, bool);

/// The completion record of a remote output; `None` without a header.
pub fn remote_record(dir: &ObjectDir) -> Result<Option<RemoteRecord>, IoError> {
    let Some(header) = dir.get(&format!("{REMOTE_RECORD}/header.json"))? else {
        return Ok(None);
    };
    let mut done = Vec::new();
    let mut ended = false;
    for key in dir.list(REMOTE_RECORD)? {
        if key == format!("{REMOTE_RECORD}/end") {
            ended = true;
        }
        if !key.starts_with(&format!("{REMOTE_RECORD}/done/")) {
            continue;
        }
        let Some(text) = dir.get(&key)? else {
            continue;
        };
        for line in String::from_utf8_lossy(&text).lines() {
            if let Some(Ok(flat)) = line.strip_prefix("c ").map(str::parse::<u64>) {
                done.push(flat);
            }
        }
    }
    done.sort_unstable();
    done.dedup();
    Ok(Some((header, done, ended)))
}

/// The metadata documents of the array at `dir` (v3 `zarr.json`, v2 `.zarray`; empty when
/// absent), local or remote.
pub fn metadata_documents(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    if let Ok(Some(objects)) = ObjectDir::open(dir) {
        let get = |k: &str| objects.get(k).ok().flatten().unwrap_or_default();
        return (get("zarr.json"), get(".zarray"));
    }
    (
        std::fs::read(dir.join("zarr.json")).unwrap_or_default(),
        std::fs::read(dir.join(".zarray")).unwrap_or_default(),
    )
}

/// Does the output at `dir` hold a completion record (local or remote)?
pub fn has_resume_record(dir: &std::path::Path) -> bool {
    match ObjectDir::open(dir) {
        Ok(Some(objects)) => objects
            .get(&format!("{REMOTE_RECORD}/header.json"))
            .is_ok_and(|h| h.is_some()),
        Ok(None) => dir.join(RESUME_RECORD).is_file(),
        Err(_) => false,
    }
}

/// Is there an array (or group) at `path`, local or remote?
pub fn exists(path: &std::path::Path) -> bool {
    match ObjectDir::open(path) {
        Ok(Some(objects)) => ["zarr.json", ".zarray", ".zgroup"]
            .iter()
            .any(|k| objects.get(k).is_ok_and(|v| v.is_some())),
        Ok(None) => path.exists(),
        Err(_) => false,
    }
}

/// How many finished chunks the completion record inside `dir` lists for an interrupted
/// run (0 without one, or when that run finished): what `--resume` would not compute again.
pub fn recorded_chunks(dir: &std::path::Path) -> u64 {
    if let Ok(Some(objects)) = ObjectDir::open(dir) {
        return match remote_record(&objects) {
            Ok(Some((_, done, false))) => done.len() as u64,
            _ => 0,
        };
    }
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
    /// A remote store refused or failed a request; `detail` names the URL and the status.
    /// An image stack's file failed (`io::images`); `code` is its diagnostic code.
    #[error("{message}")]
    Image { code: &'static str, message: String },
    #[error("{url}: {detail}")]
    Remote {
        url: String,
        kind: RemoteKind,
        detail: String,
    },
}

/// Why a remote request failed, as far as the caller can act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteKind {
    Unreachable,
    NotFound,
    Credentials,
    ReadOnly,
    Overwrite,
    BadUrl,
}

impl RemoteKind {
    /// The diagnostic code and the label of a span showing the path.
    pub fn code_and_label(self) -> (&'static str, &'static str) {
        use crate::diag::codes;
        match self {
            RemoteKind::Unreachable => (codes::REMOTE_UNREACHABLE, "cannot be reached"),
            RemoteKind::NotFound => (codes::REMOTE_NOT_FOUND, "not found"),
            RemoteKind::Credentials => (codes::REMOTE_CREDENTIALS, "access denied"),
            RemoteKind::ReadOnly => (codes::REMOTE_READ_ONLY, "HTTP stores are read-only"),
            RemoteKind::Overwrite => (codes::REMOTE_OVERWRITE, "cannot be replaced in place"),
            RemoteKind::BadUrl => (codes::BAD_URL, "not a usable URL"),
        }
    }

    /// Classify an object-store error message (which names the URL and the status).
    pub(crate) fn of(detail: &str) -> RemoteKind {
        let d = detail.to_ascii_lowercase();
        if d.contains("403")
            || d.contains("forbidden")
            || d.contains("invalidaccesskeyid")
            || d.contains("signaturedoesnotmatch")
            || d.contains("accessdenied")
            || d.contains("no aws credentials")
            || d.contains("aws_secret_access_key")
        {
            RemoteKind::Credentials
        } else if d.contains("404") || d.contains("nosuchbucket") || d.contains("not found") {
            RemoteKind::NotFound
        } else {
            RemoteKind::Unreachable
        }
    }
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
    /// The array's `dimension_names`, if any.
    pub dimension_names: Option<Vec<String>>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            codec: Codec::Zstd,
            level: None,
            overwrite: false,
            dimension_names: None,
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
