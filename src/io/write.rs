//! Writing: `ZarrWriter` creates Zarr v3 arrays (or opens existing ones) and stores whole
//! chunks through the atomic store, syncing once in `finish`.

use std::path::Path;
use std::sync::Arc;

use zarrs::array::{Array, ArrayMetadata, ArrayMetadataV3};
use zarrs::storage::{ReadableWritableStorageTraits, StoreKey, WritableStorageTraits};

use super::elem::pad_to_chunk;
use super::meta::{
    classify_for_overwrite, display, foreign_entries, locate_array, new_array_metadata, open_error,
    symlinks_inside,
};
use super::read::{Core, Side};
use super::remote::{
    location_of, open_array_store, open_failed, remote_err, Location, ObjectDir, RemoteStore,
    Scheme,
};
use super::store::AtomicStore;
use super::{one_line, ArrayMeta, IoError, RemoteKind, WriteOptions};
use crate::data::Buf;
use crate::dtype::DType;
use crate::with_buf;

/// An array open for writing whole chunks. Chunks may be written concurrently from many
/// threads as long as no two write the same chunk (zarrs has no chunk locking).
pub struct ZarrWriter {
    core: Core<dyn ReadableWritableStorageTraits>,
    store: Backing,
}

/// Where the chunks go: the local atomic store (synced in `finish`), or an object store
/// (each chunk one PUT, durable once it returns).
enum Backing {
    Local(Arc<AtomicStore>),
    Remote(Arc<RemoteStore>),
}

/// Is there an array (v3 or v2 metadata) in `store`?
fn remote_has_array(store: &RemoteStore, loc: &Location) -> Result<bool, IoError> {
    for key in ["zarr.json", ".zarray", ".zgroup"] {
        if store
            .get_object(key)
            .map_err(|e| remote_err(loc, e))?
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// May a new array be written at `loc`? HTTP is read-only; an existing S3 array is never
/// replaced (objects cannot be renamed, so a replacement could not be atomic); a missing
/// bucket, refused credentials and an unreachable endpoint are reported here, before
/// anything is written.
fn check_remote_writable(loc: &Location, overwrite: bool) -> Result<Arc<RemoteStore>, IoError> {
    if loc.scheme == Scheme::Http {
        return Err(IoError::Remote {
            url: loc.url(),
            kind: RemoteKind::ReadOnly,
            detail:
                "cannot write over HTTP; HTTP stores are read-only (write to s3:// or a local path)"
                    .to_string(),
        });
    }
    let store = Arc::new(RemoteStore::open(loc).map_err(|e| remote_err(loc, e))?);
    store.probe().map_err(|e| remote_err(loc, e))?;
    if remote_has_array(&store, loc)? {
        if !overwrite {
            return Err(IoError::Exists { path: loc.url() });
        }
        return Err(IoError::Remote {
            url: loc.url(),
            kind: RemoteKind::Overwrite,
            detail: "an existing array in an object store cannot be replaced atomically (objects cannot be renamed); delete it first, or write to a new key".to_string(),
        });
    }
    Ok(store)
}

fn unwritable(path: &Path, detail: impl std::fmt::Display) -> IoError {
    IoError::Unwritable {
        path: display(path),
        detail: one_line(detail),
    }
}

/// The nearest existing ancestor of `path` (where a new array's directories would start).
fn existing_ancestor(path: &Path) -> &Path {
    for d in path.ancestors().skip(1) {
        // The parent of a bare relative name is "", i.e. the working directory.
        let d = if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        };
        if d.exists() {
            return d;
        }
    }
    Path::new(".")
}

/// Our effective uid and group ids, from /proc (std offers no getuid).
#[cfg(unix)]
fn credentials() -> Option<(u32, Vec<u32>)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|t| t.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let euid = *field("Uid:").get(1)?;
    let mut groups = field("Groups:");
    groups.extend(field("Gid:").get(1));
    Some((euid, groups))
}

/// Can we create entries in `dir`? Decided from its permission bits, without touching disk.
fn check_dir_writable(dir: &Path) -> Result<(), String> {
    let md = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !md.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Some((euid, groups)) = credentials() {
            if euid == 0 {
                return Ok(());
            }
            let mode = md.mode();
            let bits = if md.uid() == euid {
                mode >> 6
            } else if groups.contains(&md.gid()) {
                mode >> 3
            } else {
                mode
            };
            // Creating an entry needs both write and search permission.
            return if bits & 0o3 == 0o3 {
                Ok(())
            } else {
                Err(format!("directory {} is not writable", dir.display()))
            };
        }
    }
    if md.permissions().readonly() {
        return Err(format!("directory {} is not writable", dir.display()));
    }
    Ok(())
}

/// The file that marks a `OUT.tessera-tmp` directory as Tessera's own.
pub const TEMP_MARKER: &str = ".tessera-owned";

/// Refuse to replace the node at `path` when it holds anything Zarr does not own.
fn check_owned(path: &Path) -> Result<(), IoError> {
    match foreign_entries(path, 1).first() {
        Some(entry) => Err(IoError::NotOwned {
            path: display(path),
            detail: format!(
                "refusing to replace it: its entry {} is not part of a Zarr array or group",
                display(entry.strip_prefix(path).unwrap_or(entry))
            ),
        }),
        None => Ok(()),
    }
}

/// Refuse to write into the existing store at `path` when a symbolic link inside it would
/// take the write elsewhere.
fn check_no_symlinks(path: &Path) -> Result<(), IoError> {
    match symlinks_inside(path, 1).first() {
        Some(entry) => Err(IoError::Symlink {
            path: display(path),
            entry: display(entry.strip_prefix(path).unwrap_or(entry)),
        }),
        None => Ok(()),
    }
}

/// May Tessera use, and later delete, the intermediate directory `dir` of an output? Only
/// when it does not exist yet or holds Tessera's marker: a directory of that name someone
/// else made is never touched.
pub fn temp_dir_check(dir: &Path) -> Result<(), IoError> {
    match std::fs::symlink_metadata(dir) {
        // Missing (or its parent is no directory): nothing there to protect; whether it
        // can be created is checked with the output itself.
        Err(_) => Ok(()),
        Ok(md) if md.is_dir() && dir.join(TEMP_MARKER).is_file() => Ok(()),
        Ok(_) => Err(IoError::NotOwned {
            path: display(dir),
            detail: format!(
                "Tessera keeps an output's intermediates here, but did not create this (no {TEMP_MARKER} marker); refusing to use or delete it"
            ),
        }),
    }
}

/// Create the intermediate directory `dir` (marked as Tessera's) or check an existing one.
pub fn claim_temp_dir(dir: &Path) -> Result<(), IoError> {
    temp_dir_check(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| unwritable(dir, e))?;
    let marker = dir.join(TEMP_MARKER);
    if !marker.is_file() {
        std::fs::write(&marker, b"created by tessera; removed after the run\n")
            .map_err(|e| unwritable(dir, e))?;
    }
    Ok(())
}

/// Put the finished array `staged` (inside the output's intermediate directory) in the
/// place of `target`. The old array is renamed aside first and deleted only once the new
/// one is in place; it must still hold nothing but Zarr's own entries. On failure the old
/// array is back where it was.
pub fn replace_with_staged(target: &Path, staged: &Path) -> Result<(), IoError> {
    let aside = match staged.parent() {
        Some(p) => p.join("replaced.zarr"),
        None => {
            return Err(unwritable(
                target,
                "the staged array has no parent directory",
            ))
        }
    };
    let fail = |e: std::io::Error| IoError::Write {
        path: display(target),
        chunk: None,
        detail: format!("cannot put the new array in place: {e}"),
    };
    match std::fs::symlink_metadata(target) {
        Ok(md) => {
            classify_for_overwrite(target, &md).map_err(|d| unwritable(target, d))?;
            check_owned(target)?;
            if std::fs::symlink_metadata(&aside).is_ok() {
                // A leftover of an earlier interrupted replacement, inside our own directory.
                std::fs::remove_dir_all(&aside).map_err(fail)?;
            }
            std::fs::rename(target, &aside).map_err(fail)?;
            if let Err(e) = std::fs::rename(staged, target) {
                let _ = std::fs::rename(&aside, target);
                return Err(fail(e));
            }
            // Only Zarr's entries are left in it (checked above); the directory goes with
            // the other intermediates if this fails.
            let _ = std::fs::remove_dir_all(&aside);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::rename(staged, target).map_err(fail)?
        }
        Err(e) => return Err(fail(e)),
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(parent) {
        d.sync_all().map_err(fail)?;
    }
    Ok(())
}

/// Stage an update in place of the array `original`: `staged` (inside the array's
/// intermediate directory) becomes a copy of it whose chunk files are hard links to the
/// original's, and whose metadata documents are copies. Chunk writes replace files by
/// rename and deletions unlink them, so writing the copy never changes the original: every
/// read of the original sees it as it was, and `replace_with_staged` puts the updated copy
/// in its place at the end. A leftover copy (a run killed before it recorded anything) is
/// made anew. Where the filesystem has no hard links, chunk files are copied.
pub fn stage_linked(original: &Path, staged: &Path) -> Result<(), IoError> {
    let fail = |p: &Path, e: std::io::Error| {
        unwritable(
            staged,
            format!(
                "cannot stage the update of {}: {}: {e}",
                display(original),
                display(p)
            ),
        )
    };
    match std::fs::symlink_metadata(staged) {
        Ok(_) => std::fs::remove_dir_all(staged).map_err(|e| fail(staged, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(staged, e)),
    }
    let mut dirs = vec![(original.to_path_buf(), staged.to_path_buf())];
    let mut made = Vec::new();
    while let Some((from, to)) = dirs.pop() {
        std::fs::create_dir_all(&to).map_err(|e| fail(&to, e))?;
        made.push(to.clone());
        for entry in std::fs::read_dir(&from).map_err(|e| fail(&from, e))? {
            let entry = entry.map_err(|e| fail(&from, e))?;
            let name = entry.file_name();
            let src = entry.path();
            let dst = to.join(&name);
            let kind = entry.file_type().map_err(|e| fail(&src, e))?;
            if kind.is_dir() {
                dirs.push((src, dst));
                continue;
            }
            if !kind.is_file() {
                return Err(IoError::Symlink {
                    path: display(original),
                    entry: src
                        .strip_prefix(original)
                        .unwrap_or(&src)
                        .display()
                        .to_string(),
                });
            }
            let name = name.to_string_lossy();
            if name.starts_with(".tessera-") || (name.starts_with('.') && name.contains(".tmp.")) {
                // The original's own completion record describes the original; a temporary
                // file a killed writer left is no part of it.
                continue;
            }
            let document = matches!(
                name.as_ref(),
                "zarr.json" | ".zarray" | ".zattrs" | ".zgroup" | ".zmetadata"
            );
            if document || std::fs::hard_link(&src, &dst).is_err() {
                std::fs::copy(&src, &dst).map_err(|e| fail(&src, e))?;
            }
        }
    }
    // The copy's directory entries are durable before any chunk of it is recorded.
    for d in made.iter().rev() {
        if let Ok(f) = std::fs::File::open(d) {
            f.sync_all().map_err(|e| fail(d, e))?;
        }
    }
    Ok(())
}

impl ZarrWriter {
    /// Fails without touching disk when the path exists and !overwrite (IoError::Exists),
    /// when overwrite would have to delete something that is not a Zarr array or group,
    /// or when the parent directory is not writable.
    pub fn check_writable(path: &Path, overwrite: bool) -> Result<(), IoError> {
        if let Some(loc) = location_of(path)? {
            return check_remote_writable(&loc, overwrite).map(|_| ());
        }
        match std::fs::symlink_metadata(path) {
            Ok(_) if !overwrite => {
                return Err(IoError::Exists {
                    path: display(path),
                })
            }
            Ok(md) => {
                classify_for_overwrite(path, &md).map_err(|d| unwritable(path, d))?;
                check_owned(path)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(unwritable(path, e)),
        }
        check_dir_writable(existing_ancestor(path)).map_err(|d| unwritable(path, d))
    }

    /// Create a new Zarr v3 array, metadata first. With overwrite, an existing array or
    /// group (or empty directory) at `path` that holds only Zarr's own entries is removed
    /// first; nothing else is ever deleted. (A run replacing an array writes the new one
    /// beside it and swaps them at the end: `replace_with_staged`.)
    pub fn create(
        path: &Path,
        shape: &[u64],
        chunks: &[u64],
        dtype: DType,
        fill: &Buf,
        opts: &WriteOptions,
    ) -> Result<ZarrWriter, IoError> {
        if shape.len() != chunks.len() {
            return Err(unwritable(
                path,
                format!("chunk shape {chunks:?} does not match the array shape {shape:?}"),
            ));
        }
        if chunks.contains(&0) {
            return Err(unwritable(
                path,
                format!("chunk shape {chunks:?} has a zero-length axis"),
            ));
        }
        if fill.dtype() != dtype || fill.len() != 1 {
            return Err(unwritable(
                path,
                format!(
                    "fill value must be one {dtype} element, got {} x {}",
                    fill.dtype(),
                    fill.len()
                ),
            ));
        }
        let doc = new_array_metadata(shape, chunks, dtype, fill, opts).map_err(|detail| {
            IoError::Unsupported {
                path: display(path),
                detail,
            }
        })?;
        let metadata: ArrayMetadataV3 =
            serde_json::from_value(doc.clone()).map_err(|e| IoError::Unsupported {
                path: display(path),
                detail: one_line(e),
            })?;
        if let Some(loc) = location_of(path)? {
            let store = check_remote_writable(&loc, opts.overwrite)?;
            let array = Array::new_with_metadata(
                store.clone() as Arc<dyn ReadableWritableStorageTraits>,
                "/",
                ArrayMetadata::V3(metadata),
            )
            .map_err(|e| open_error(path, e))?;
            let text = serde_json::to_vec_pretty(&doc).map_err(|e| unwritable(path, e))?;
            let key = StoreKey::new("zarr.json").map_err(|e| unwritable(path, e))?;
            store
                .set(&key, text.into())
                .map_err(|e| remote_err(&loc, e))?;
            return Ok(ZarrWriter {
                core: Core::new(path, array)?.with_remote(store.clone()),
                store: Backing::Remote(store),
            });
        }
        Self::check_writable(path, opts.overwrite)?;

        if opts.overwrite {
            match std::fs::symlink_metadata(path) {
                Ok(md) if md.is_dir() => {
                    std::fs::remove_dir_all(path).map_err(|e| unwritable(path, e))?
                }
                Ok(_) => std::fs::remove_file(path).map_err(|e| unwritable(path, e))?,
                Err(_) => {}
            }
        }
        std::fs::create_dir_all(path).map_err(|e| unwritable(path, e))?;
        let store = Arc::new(AtomicStore::new(path).map_err(|e| unwritable(path, e))?);
        // The new directory is an entry of its parent: make that durable in finish() too.
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        store.mark_dir(parent);
        let array = Array::new_with_metadata(
            store.clone() as Arc<dyn ReadableWritableStorageTraits>,
            "/",
            ArrayMetadata::V3(metadata),
        )
        .map_err(|e| open_error(path, e))?;
        // Our own document, not zarrs' re-serialisation: zarrs writes a codec without
        // configuration as a bare string ("bytes"), which zarr-python 3.1 cannot parse.
        let text = serde_json::to_vec_pretty(&doc).map_err(|e| unwritable(path, e))?;
        let key = StoreKey::new("zarr.json").map_err(|e| unwritable(path, e))?;
        store.set(&key, text.into()).map_err(|e| IoError::Write {
            path: display(path),
            chunk: None,
            detail: one_line(e),
        })?;
        Ok(ZarrWriter {
            core: Core::new(path, array)?,
            store: Backing::Local(store),
        })
    }

    /// Open an existing array (v2 or v3) for read-modify-write of whole chunks.
    pub fn open_existing(path: &Path) -> Result<ZarrWriter, IoError> {
        if let Some(loc) = location_of(path)? {
            if loc.scheme == Scheme::Http {
                check_remote_writable(&loc, false)?;
            }
            let store = Arc::new(open_array_store(&loc)?);
            let array = Array::open(store.clone() as Arc<dyn ReadableWritableStorageTraits>, "/")
                .map_err(|e| open_failed(&loc, e))?;
            return Ok(ZarrWriter {
                core: Core::new(path, array)?.with_remote(store.clone()),
                store: Backing::Remote(store),
            });
        }
        locate_array(path)?;
        check_no_symlinks(path)?;
        let store = Arc::new(AtomicStore::new(path).map_err(|e| unwritable(path, e))?);
        let array = Array::open(store.clone() as Arc<dyn ReadableWritableStorageTraits>, "/")
            .map_err(|e| open_error(path, e))?;
        Ok(ZarrWriter {
            core: Core::new(path, array)?,
            store: Backing::Local(store),
        })
    }

    /// The object store behind a remote output (for its completion record and lock).
    pub fn objects(&self) -> Option<ObjectDir> {
        match &self.store {
            Backing::Remote(s) => Some(ObjectDir(s.clone())),
            Backing::Local(_) => None,
        }
    }

    pub fn meta(&self) -> &ArrayMeta {
        &self.core.meta
    }

    pub fn path(&self) -> &Path {
        &self.core.path
    }

    /// Codec-level threads per call (default 1; raise it only when few chunks run at once).
    pub fn set_codec_concurrency(&self, n: usize) {
        self.core.set_concurrency(n);
    }

    /// Store chunk `idx`. `data` covers exactly the chunk's region clipped to the array edge
    /// (`ChunkGrid::chunk_region`), in C order. A chunk equal to the fill value everywhere
    /// is not stored (an existing one is deleted), as zarr-python does.
    pub fn write_chunk(&self, idx: &[u64], data: &Buf) -> Result<(), IoError> {
        let region = self.core.chunk_region(idx, Side::Write)?;
        let meta = &self.core.meta;
        if data.dtype() != meta.dtype || data.len() as u64 != region.size() {
            return Err(self.core.err(
                Side::Write,
                Some(idx),
                format!(
                    "data is {} x {}, the chunk region {region} needs {} x {}",
                    data.dtype(),
                    data.len(),
                    meta.dtype,
                    region.size()
                ),
            ));
        }
        let fail = |e: &dyn std::fmt::Display| self.core.err(Side::Write, Some(idx), e);
        let full: Vec<u64> = self
            .core
            .array
            .chunk_shape(idx)
            .map_err(|e| fail(&e))?
            .iter()
            .map(|n| n.get())
            .collect();
        let data_shape = region.shape();
        let opts = self.core.codec_options();
        let array = &self.core.array;
        let result = if data_shape == full {
            // Borrowed: zarrs encodes straight from our buffer, no copy.
            with_buf!(data, v => array.store_chunk_opt(idx, v.as_slice(), &opts))
        } else {
            // zarrs encodes whole chunks: pad the edge chunk with the fill value.
            let padded = pad_to_chunk(data, &data_shape, &meta.fill, &full)
                .ok_or_else(|| fail(&"fill value dtype does not match the data"))?;
            with_buf!(&padded, v => array.store_chunk_opt(idx, v.as_slice(), &opts))
        };
        result.map_err(|e| fail(&e))
    }

    /// Chunk `idx` as currently stored, clipped to the array edge.
    pub fn read_chunk(&self, idx: &[u64]) -> Result<Buf, IoError> {
        self.core.read_chunk(idx)
    }

    /// Make everything written so far durable: one pass of fsyncs over the files written and
    /// the directories changed. Call once at the end; calling again syncs only newer writes.
    pub fn finish(&self) -> Result<(), IoError> {
        let Backing::Local(store) = &self.store else {
            // Every PUT that returned is durable.
            return Ok(());
        };
        store.sync().map_err(|e| IoError::Write {
            path: display(&self.core.path),
            chunk: None,
            detail: one_line(e),
        })
    }
}

impl std::fmt::Debug for ZarrWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrWriter")
            .field("path", &self.core.path)
            .field("meta", &self.core.meta)
            .finish()
    }
}
