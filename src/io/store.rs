//! A crash-safe filesystem store for writing: every value goes to a temporary file in its
//! own directory and is renamed over the key, so a killed process leaves each chunk either
//! old or new, never torn. Nothing is fsynced per chunk (zarrs' `FilesystemStore` fsyncs
//! every write); `sync` makes everything written durable in one pass at the end.
//! Transient errors of a write, read or erase are retried (`io::retry`); fsync never is.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::retry::{injected, retry, FaultOp};
use rayon::prelude::*;
use zarrs::filesystem::FilesystemStore;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    store_set_partial_many, Bytes, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    StorageError, StoreKey, StorePrefix, WritableStorageTraits,
};

/// What `sync` still has to flush.
#[derive(Default)]
struct Pending {
    files: Vec<PathBuf>,
    dirs: HashSet<PathBuf>,
}

pub(crate) struct AtomicStore {
    /// Reads, and key-to-path mapping, are delegated to zarrs' own store.
    fs: FilesystemStore,
    root: PathBuf,
    pid: u32,
    counter: AtomicU64,
    /// Directories known to exist, so `create_dir_all` runs once per directory.
    known_dirs: Mutex<HashSet<PathBuf>>,
    pending: Mutex<Pending>,
}

/// Ask the kernel to start writing a file's dirty pages now, without waiting: the data
/// reaches the disk while later chunks are computed, and the final sync is short. Only a
/// hint; errors are ignored (the final fsync reports real ones).
fn start_writeback(f: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the duration of the call; the flags only
        // schedule writeback of the whole file.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// A poisoned lock only means another task panicked mid-update of plain bookkeeping sets;
/// the data is still usable, and this module must not panic in turn.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AtomicStore {
    /// A store rooted at `root`, which must already exist.
    pub(crate) fn new(root: &Path) -> Result<AtomicStore, String> {
        let fs = FilesystemStore::new(root).map_err(|e| e.to_string())?;
        let mut known = HashSet::new();
        known.insert(root.to_path_buf());
        Ok(AtomicStore {
            fs,
            root: root.to_path_buf(),
            pid: std::process::id(),
            counter: AtomicU64::new(0),
            known_dirs: Mutex::new(known),
            pending: Mutex::new(Pending::default()),
        })
    }

    /// Have `sync` flush `dir`'s entries too (e.g. the parent of a newly created root).
    pub(crate) fn mark_dir(&self, dir: &Path) {
        lock(&self.pending).dirs.insert(dir.to_path_buf());
    }

    /// Create `dir` (and missing ancestors) once; remember which directory entries changed.
    fn ensure_dir(&self, dir: &Path) -> std::io::Result<()> {
        if lock(&self.known_dirs).contains(dir) {
            return Ok(());
        }
        std::fs::create_dir_all(dir)?;
        let mut known = lock(&self.known_dirs);
        let mut pending = lock(&self.pending);
        let mut d = dir;
        while !known.contains(d) {
            known.insert(d.to_path_buf());
            match d.parent() {
                Some(p) => {
                    // A new directory is an entry of its parent: sync the parent too.
                    pending.dirs.insert(p.to_path_buf());
                    d = p;
                }
                None => break,
            }
            if d == self.root.as_path() {
                break;
            }
        }
        Ok(())
    }

    fn write_atomically(&self, path: &Path, value: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        self.ensure_dir(dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp.{}.{n}", self.pid));
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(value)?;
            start_writeback(&f);
            drop(f);
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return result;
        }
        let mut pending = lock(&self.pending);
        pending.files.push(path.to_path_buf());
        if !pending.dirs.contains(dir) {
            pending.dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    /// Make every file written and every directory changed since the last call durable.
    /// Writeback of each file already started when it was written, so this mostly waits
    /// for what is still in flight instead of flushing the whole run at the end.
    /// Files are fsynced in parallel (the filesystem batches the journal commits), then
    /// directories, deepest first, so renames and unlinks are durable as well.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        let Pending { mut files, dirs } = std::mem::take(&mut *lock(&self.pending));
        files.sort_unstable();
        files.dedup();
        let fsync = |p: &PathBuf| match File::open(p) {
            Ok(f) => f.sync_all(),
            // Erased after it was written: nothing to flush, its directory covers it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        files.par_iter().try_for_each(fsync)?;
        let mut dirs: Vec<PathBuf> = dirs.into_iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        dirs.iter().try_for_each(fsync)
    }
}

impl ReadableStorageTraits for AtomicStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        super::retry::get_ranges(&self.fs, key, byte_ranges.collect())
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.fs.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.fs.supports_get_partial()
    }
}

impl WritableStorageTraits for AtomicStore {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        let path = self.fs.key_to_fspath(key);
        retry(|| {
            injected(FaultOp::Write, key.as_str())?;
            self.write_atomically(&path, &value)
        })?;
        Ok(())
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        // Read, patch, and replace the whole value: an in-place patch could be torn.
        store_set_partial_many(self, key, offset_values)
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        let path = self.fs.key_to_fspath(key);
        match retry(|| std::fs::remove_file(&path)) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    self.mark_dir(dir);
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        let dir = self.fs.prefix_to_fs_path(prefix);
        self.fs.erase_prefix(prefix)?;
        lock(&self.known_dirs).retain(|d| !d.starts_with(&dir) || d == &self.root);
        if let Some(parent) = dir.parent() {
            self.mark_dir(parent);
        }
        Ok(())
    }

    fn supports_set_partial(&self) -> bool {
        // Tells zarrs to hand us whole values, which is what makes every write atomic.
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &Path) -> Vec<String> {
        let mut out = vec![];
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.path().is_dir() {
                for f in files_in(&e.path()) {
                    out.push(format!("{}/{f}", e.file_name().to_string_lossy()));
                }
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }

    #[test]
    fn set_replaces_atomically_and_erase_and_sync_work() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AtomicStore::new(tmp.path()).unwrap();
        let k = StoreKey::new("c/0/1").unwrap();
        store.set(&k, Bytes::from_static(b"first")).unwrap();
        store.set(&k, Bytes::from_static(b"second!")).unwrap();
        assert_eq!(store.get(&k).unwrap().unwrap().as_ref(), b"second!");
        assert_eq!(files_in(tmp.path()), vec!["c/0/1".to_string()]);
        store
            .set_partial_many(&k, Box::new([(0u64, Bytes::from_static(b"S"))].into_iter()))
            .unwrap();
        assert_eq!(store.get(&k).unwrap().unwrap().as_ref(), b"Second!");
        store.sync().unwrap();
        store.erase(&k).unwrap();
        store.erase(&k).unwrap();
        assert!(store.get(&k).unwrap().is_none());
        // A key written and then erased before the sync must not fail it.
        let k2 = StoreKey::new("c/1/1").unwrap();
        store.set(&k2, Bytes::from_static(b"x")).unwrap();
        store.erase(&k2).unwrap();
        store.sync().unwrap();
        assert_eq!(files_in(tmp.path()), Vec::<String>::new());
        store
            .erase_prefix(&StorePrefix::new("c/").unwrap())
            .unwrap();
        store.set(&k, Bytes::from_static(b"again")).unwrap();
        assert_eq!(store.get(&k).unwrap().unwrap().as_ref(), b"again");
    }

    #[test]
    fn concurrent_sets_of_many_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AtomicStore::new(tmp.path()).unwrap();
        (0..64u32).into_par_iter().for_each(|i| {
            let k = StoreKey::new(format!("c/{}/{}", i % 4, i)).unwrap();
            store
                .set(&k, Bytes::from(i.to_le_bytes().to_vec()))
                .unwrap();
        });
        store.sync().unwrap();
        assert_eq!(files_in(tmp.path()).len(), 64);
        for i in 0..64u32 {
            let k = StoreKey::new(format!("c/{}/{}", i % 4, i)).unwrap();
            assert_eq!(store.get(&k).unwrap().unwrap().as_ref(), i.to_le_bytes());
        }
    }
}
