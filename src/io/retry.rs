//! Bounded retries of transient storage errors, a read-only store that applies them, and
//! the fault injection the failure tests drive (`TESSERA_FAULT_INJECT`).
//!
//! Transient: the OS said "try again" or the device hiccupped — `EINTR`, `EAGAIN`, `EIO`,
//! `ETIMEDOUT`, `EBUSY`, and the network-filesystem errors `ESTALE`, `ECONNRESET`,
//! `ECONNABORTED`, `ENOLCK`. Not transient: a missing file, a permission, a full disk or
//! quota, a read-only filesystem, and anything about the bytes themselves (a corrupt or
//! truncated chunk, a codec error) — retrying those only delays the same answer. An
//! `fsync` failure is never retried: after it the kernel may already have dropped the
//! dirty pages, so a second `fsync` could succeed without the data being on disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use zarrs::filesystem::FilesystemStore;
use zarrs::storage::byte_range::{ByteRange, ByteRangeIterator};
use zarrs::storage::{MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey};

/// Pauses before the second, third and fourth attempt.
pub(crate) const BACKOFF_MS: [u64; 3] = [50, 200, 800];

pub(crate) fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut
    ) {
        return true;
    }
    matches!(
        e.raw_os_error(),
        Some(
            libc::EIO
                | libc::EAGAIN
                | libc::EINTR
                | libc::ETIMEDOUT
                | libc::EBUSY
                | libc::ESTALE
                | libc::ECONNRESET
                | libc::ECONNABORTED
                | libc::ENOLCK
        )
    )
}

/// Run `op`, again after each pause of `BACKOFF_MS` while it fails transiently. The error
/// that ends it says how many attempts were made.
pub(crate) fn retry<T>(mut op: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut attempt = 0;
    loop {
        match op() {
            Err(e) if is_transient(&e) && attempt < BACKOFF_MS.len() => {
                std::thread::sleep(Duration::from_millis(BACKOFF_MS[attempt]));
                attempt += 1;
            }
            Err(e) if attempt > 0 => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{e} (failed {} times; giving up)", attempt + 1),
                ))
            }
            r => return r,
        }
    }
}

/// Storage operations fault injection can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultOp {
    Read,
    Write,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    /// `EIO` once; the retry succeeds.
    Once,
    /// `EIO` on every attempt for that chunk.
    Always,
    /// `ENOSPC` on every attempt for that chunk (a full disk).
    NoSpace,
}

struct Fault {
    op: FaultOp,
    nth: u64,
    kind: FaultKind,
    seen: AtomicU64,
    /// The chunk key the fault hit, so `Always` keeps failing that chunk only.
    hit: Mutex<Option<String>>,
}

/// `TESSERA_FAULT_INJECT=OP:N[:KIND]`: the N-th chunk read or write (counted from 1 over
/// the process) fails, with KIND `once` (default), `always` or `enospc`. For tests of the
/// failure paths; unset, it costs one relaxed load per chunk.
fn fault() -> Option<&'static Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            let spec = std::env::var("TESSERA_FAULT_INJECT").ok()?;
            let mut parts = spec.split(':');
            let op = match parts.next()? {
                "read" => FaultOp::Read,
                "write" => FaultOp::Write,
                _ => return None,
            };
            let nth = parts.next()?.parse().ok()?;
            let kind = match parts.next().unwrap_or("once") {
                "once" => FaultKind::Once,
                "always" => FaultKind::Always,
                "enospc" => FaultKind::NoSpace,
                _ => return None,
            };
            Some(Fault {
                op,
                nth,
                kind,
                seen: AtomicU64::new(0),
                hit: Mutex::new(None),
            })
        })
        .as_ref()
}

/// Metadata documents are not chunks: faults and counts skip them.
fn is_chunk_key(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    !matches!(name, "zarr.json" | ".zarray" | ".zattrs" | ".zgroup")
}

/// Fail this attempt at `key` if the injected fault says so.
pub(crate) fn injected(op: FaultOp, key: &str) -> std::io::Result<()> {
    let Some(f) = fault() else {
        return Ok(());
    };
    if f.op != op || !is_chunk_key(key) {
        return Ok(());
    }
    let mut hit = f.hit.lock().unwrap_or_else(|e| e.into_inner());
    let fail = match hit.as_deref() {
        Some(k) => k == key && f.kind != FaultKind::Once,
        None => {
            let n = f.seen.fetch_add(1, Ordering::Relaxed) + 1;
            if n == f.nth {
                *hit = Some(key.to_string());
            }
            n == f.nth
        }
    };
    if !fail {
        return Ok(());
    }
    let code = match f.kind {
        FaultKind::NoSpace => libc::ENOSPC,
        _ => libc::EIO,
    };
    Err(std::io::Error::from_raw_os_error(code))
}

/// zarrs' filesystem store for reading, with transient errors retried.
pub(crate) struct RetryingStore {
    inner: FilesystemStore,
}

impl RetryingStore {
    pub(crate) fn new(inner: FilesystemStore) -> RetryingStore {
        RetryingStore { inner }
    }
}

fn as_io(e: StorageError) -> std::io::Error {
    match e {
        StorageError::IOError(io) => match std::sync::Arc::try_unwrap(io) {
            Ok(io) => io,
            Err(shared) => std::io::Error::new(shared.kind(), shared.to_string()),
        },
        // Not an OS error, hence not transient: carried through unchanged below.
        other => std::io::Error::other(StorageErrorText(other.to_string())),
    }
}

#[derive(Debug)]
struct StorageErrorText(String);

impl std::fmt::Display for StorageErrorText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StorageErrorText {}

/// Read every requested range of `key` from `store`, retrying transient failures.
pub(crate) fn get_ranges<S: ReadableStorageTraits + ?Sized>(
    store: &S,
    key: &StoreKey,
    ranges: Vec<ByteRange>,
) -> Result<MaybeBytesIterator<'static>, StorageError> {
    let got = retry(|| {
        injected(FaultOp::Read, key.as_str())?;
        let it = store
            .get_partial_many(key, Box::new(ranges.clone().into_iter()))
            .map_err(as_io)?;
        match it {
            None => Ok(None),
            Some(it) => it
                .map(|r| r.map_err(as_io))
                .collect::<std::io::Result<Vec<_>>>()
                .map(Some),
        }
    });
    match got {
        Ok(None) => Ok(None),
        Ok(Some(v)) => Ok(Some(Box::new(v.into_iter().map(Ok)))),
        Err(e) => match e
            .get_ref()
            .and_then(|r| r.downcast_ref::<StorageErrorText>())
        {
            Some(t) => Err(StorageError::Other(t.0.clone())),
            None => Err(e.into()),
        },
    }
}

impl ReadableStorageTraits for RetryingStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        get_ranges(&self.inner, key, byte_ranges.collect())
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_retried_then_reported() {
        let mut calls = 0;
        let r = retry(|| {
            calls += 1;
            if calls < 3 {
                Err(std::io::Error::from_raw_os_error(libc::EIO))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut calls = 0;
        let r: std::io::Result<()> = retry(|| {
            calls += 1;
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        });
        assert_eq!(calls, 1, "a full disk is not retried");
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        assert!(!is_transient(&std::io::Error::from(
            std::io::ErrorKind::NotFound
        )));
        assert!(is_transient(&std::io::Error::from_raw_os_error(
            libc::EAGAIN
        )));
    }
}
