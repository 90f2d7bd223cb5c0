//! Exclusive output locks: one run at a time writes an output. The lock is the file
//! `<output>.tessera-lock` beside the output (so it survives the output being replaced),
//! held with `flock` for the whole run and removed when the run ends. It names its holder
//! (pid, host, start time) so a refused run can say who holds it; a lock left by a process
//! that died on this host is recovered, one left by another host is reported.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

/// The suffix of the lock file beside each output.
pub const LOCK_SUFFIX: &str = ".tessera-lock";

/// The key of the lock object inside an output in an object store.
pub const REMOTE_LOCK: &str = ".tessera-lock";

use super::ObjectDir;

/// Who holds (or held) a lock, as written in the lock file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// Seconds since the Unix epoch when the run took the lock.
    pub since: u64,
    /// The boot the holder ran in, and its start time in clock ticks since that boot
    /// (tells a live holder from another process that reused its pid).
    pub boot: String,
    pub start_ticks: Option<u64>,
}

impl Holder {
    fn current() -> Holder {
        let pid = std::process::id();
        Holder {
            pid,
            host: hostname(),
            since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            boot: boot_id(),
            start_ticks: start_ticks(pid),
        }
    }

    fn to_json(&self) -> String {
        let mut s = json!({
            "tessera_lock": 1,
            "pid": self.pid,
            "host": self.host,
            "since": self.since,
            "since_utc": fmt_utc(self.since),
            "boot": self.boot,
            "start_ticks": self.start_ticks,
        })
        .to_string();
        s.push('\n');
        s
    }

    fn parse(text: &str) -> Option<Holder> {
        let v: Value = serde_json::from_str(text.trim()).ok()?;
        Some(Holder {
            pid: u32::try_from(v.get("pid")?.as_u64()?).ok()?,
            host: v.get("host")?.as_str()?.to_string(),
            since: v.get("since").and_then(Value::as_u64).unwrap_or(0),
            boot: v
                .get("boot")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            start_ticks: v.get("start_ticks").and_then(Value::as_u64),
        })
    }

    /// Is this holder a process that is running now on this host?
    fn alive_here(&self) -> bool {
        if self.host != hostname() || self.boot != boot_id() || !pid_alive(self.pid) {
            return false;
        }
        match (self.start_ticks, start_ticks(self.pid)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }

    /// `pid 1234 on host since 2026-01-02 03:04:05 UTC`
    pub fn describe(&self) -> String {
        format!(
            "pid {} on {} since {}",
            self.pid,
            self.host,
            fmt_utc(self.since)
        )
    }
}

/// Why a lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// A live run holds it (`holder` is `None` when it has not written its name yet).
    Held {
        lock: PathBuf,
        holder: Option<Holder>,
    },
    /// The lock names a run on another host, which this host cannot check.
    OtherHost { lock: PathBuf, holder: Holder },
    /// The lock file cannot be created or written.
    Io { lock: PathBuf, detail: String },
}

/// An output's lock, held until dropped (the lock file is then removed).
pub struct OutputLock {
    path: PathBuf,
    held: Held,
}

/// What holds the lock: a flocked file, or an object created by a conditional PUT.
enum Held {
    File(File),
    Object(ObjectDir),
}

impl std::fmt::Debug for OutputLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputLock")
            .field("path", &self.path)
            .finish()
    }
}

impl OutputLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Remove the file only while it is still ours; a waiter that opened it before the
        // removal notices (its inode is gone) and opens the path again.
        match &self.held {
            Held::File(file) => {
                if same_file(file, &self.path) {
                    let _ = std::fs::remove_file(&self.path);
                }
            }
            Held::Object(dir) => {
                let _ = dir.delete(REMOTE_LOCK);
            }
        }
    }
}

/// The lock file of `output`: beside it, named after where it really is (`.`/`..`,
/// trailing slashes and symlinks resolved), so every spelling of one output shares a lock.
pub fn lock_path(output: &Path) -> PathBuf {
    if let Some(url) = output.to_str().filter(|s| super::is_url(s)) {
        return PathBuf::from(format!("{}/{REMOTE_LOCK}", super::remote::normalise(url)));
    }
    let abs = normalize(output);
    let real = std::fs::canonicalize(&abs).ok().or_else(|| {
        let parent = abs.parent()?;
        let name = abs.file_name()?;
        Some(canonical_prefix(parent).join(name))
    });
    let real = real.unwrap_or(abs);
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    real.with_file_name(format!("{name}{LOCK_SUFFIX}"))
}

/// The longest existing prefix of `p` canonicalized, the rest appended as it is.
fn canonical_prefix(p: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(c) = std::fs::canonicalize(&cur) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (cur.file_name().map(|n| n.to_os_string()), cur.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n);
                cur = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// Absolute, with `.` and `..` resolved lexically.
fn normalize(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Take the lock of `output`. Returns the lock and, when a dead process on this host had
/// left its lock behind, that holder (the caller says it was recovered).
pub fn acquire(output: &Path) -> Result<(OutputLock, Option<Holder>), LockError> {
    let path = lock_path(output);
    if let Some(dir) = ObjectDir::open(output).map_err(|e| LockError::Io {
        lock: path.clone(),
        detail: e.to_string(),
    })? {
        return acquire_object(dir, path);
    }
    let io = |e: std::io::Error| LockError::Io {
        lock: path.clone(),
        detail: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    // A few attempts: a holder may remove the file between our open and our flock.
    for _ in 0..16 {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match try_flock(&file) {
            Ok(true) => {}
            Ok(false) => {
                return Err(LockError::Held {
                    lock: path.clone(),
                    holder: read_holder(&mut file),
                })
            }
            Err(e) => return Err(io(e)),
        }
        if !same_file(&file, &path) {
            continue;
        }
        let previous = read_holder(&mut file);
        if let Some(h) = &previous {
            if h.host != hostname() {
                return Err(LockError::OtherHost {
                    lock: path.clone(),
                    holder: h.clone(),
                });
            }
            // A filesystem without working flock: the holder's name still tells.
            if h.pid != std::process::id() && h.alive_here() {
                return Err(LockError::Held {
                    lock: path.clone(),
                    holder: previous.clone(),
                });
            }
        }
        let me = Holder::current();
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(me.to_json().as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        let stale = previous.filter(|h| *h != me);
        return Ok((
            OutputLock {
                path,
                held: Held::File(file),
            },
            stale,
        ));
    }
    Err(LockError::Io {
        lock: path.clone(),
        detail: "the lock file keeps being replaced by other runs".into(),
    })
}

/// The lock of an output in an object store: the object `<output>/.tessera-lock`, created
/// with a conditional PUT (`If-None-Match: *`) so exactly one run creates it. A lock left
/// by a dead process on this host is taken over; one naming another host is reported.
fn acquire_object(
    dir: ObjectDir,
    path: PathBuf,
) -> Result<(OutputLock, Option<Holder>), LockError> {
    let io = |e: super::IoError| LockError::Io {
        lock: path.clone(),
        detail: e.to_string(),
    };
    let me = Holder::current();
    let mut stale = None;
    for _ in 0..4 {
        if dir
            .put_if_absent(REMOTE_LOCK, me.to_json().into_bytes())
            .map_err(io)?
        {
            return Ok((
                OutputLock {
                    path,
                    held: Held::Object(dir),
                },
                stale,
            ));
        }
        let text = dir.get(REMOTE_LOCK).map_err(io)?;
        let holder = text.and_then(|t| Holder::parse(&String::from_utf8_lossy(&t)));
        match holder {
            // Removed meanwhile: try again.
            None => continue,
            // Our own PUT, whose answer was lost and retried.
            Some(h) if h == me => {
                return Ok((
                    OutputLock {
                        path,
                        held: Held::Object(dir),
                    },
                    stale,
                ))
            }
            Some(h) if h.host != hostname() => {
                return Err(LockError::OtherHost {
                    lock: path,
                    holder: h,
                })
            }
            Some(h) if h.alive_here() => {
                return Err(LockError::Held {
                    lock: path,
                    holder: Some(h),
                })
            }
            Some(h) => {
                dir.delete(REMOTE_LOCK).map_err(io)?;
                stale = Some(h);
            }
        }
    }
    Err(LockError::Io {
        lock: path,
        detail: "the lock object keeps being replaced by other runs".into(),
    })
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    Holder::parse(&text)
}

/// Take an exclusive flock without waiting: `Ok(false)` when another holds it. A
/// filesystem that does not support flock counts as taken (the holder's name then decides).
fn try_flock(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor stays open for the call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(true),
        _ => Err(e),
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let n = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn pid_alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(p, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`, field 22).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `2026-01-02 03:04:05 UTC` from seconds since the epoch.
pub fn fmt_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let t = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(fmt_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(fmt_utc(1_767_225_599), "2025-12-31 23:59:59 UTC");
    }

    #[test]
    fn every_spelling_of_an_output_shares_one_lock() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        let want = lock_path(&d.join("o.zarr"));
        assert_eq!(
            want.file_name().unwrap().to_str().unwrap(),
            "o.zarr.tessera-lock"
        );
        for p in [
            d.join("o.zarr/"),
            d.join("./o.zarr"),
            d.join("sub/../o.zarr"),
            d.join("sub/./../o.zarr/."),
        ] {
            assert_eq!(lock_path(&p), want, "{}", p.display());
        }
        std::fs::create_dir(d.join("o.zarr")).unwrap();
        std::os::unix::fs::symlink(d.join("o.zarr"), d.join("link.zarr")).unwrap();
        assert_eq!(
            lock_path(&d.join("link.zarr")),
            lock_path(&d.join("o.zarr"))
        );
    }

    #[test]
    fn a_held_lock_is_refused_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.zarr");
        let (lock, stale) = acquire(&out).unwrap();
        assert!(stale.is_none());
        assert!(lock.path().is_file());
        // Another open file description conflicts even in the same process.
        let file = OpenOptions::new().read(true).open(lock.path()).unwrap();
        assert!(!try_flock(&file).unwrap());
        drop(file);
        let text = std::fs::read_to_string(lock.path()).unwrap();
        let h = Holder::parse(&text).unwrap();
        assert_eq!(h.pid, std::process::id());
        assert_eq!(h.host, hostname());
        let path = lock.path().to_path_buf();
        drop(lock);
        assert!(!path.exists());
    }

    #[test]
    fn locks_of_dead_processes_are_recovered_and_other_hosts_reported() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.zarr");
        let dead = Holder {
            pid: u32::MAX - 1,
            ..Holder::current()
        };
        std::fs::write(lock_path(&out), dead.to_json()).unwrap();
        let (lock, stale) = acquire(&out).unwrap();
        assert_eq!(stale, Some(dead));
        drop(lock);
        let remote = Holder {
            host: "elsewhere.example".into(),
            ..Holder::current()
        };
        std::fs::write(lock_path(&out), remote.to_json()).unwrap();
        match acquire(&out) {
            Err(LockError::OtherHost { holder, .. }) => assert_eq!(holder, remote),
            other => panic!("{other:?}"),
        }
        // The refused run left the other host's lock as it was.
        assert_eq!(
            std::fs::read_to_string(lock_path(&out)).unwrap(),
            remote.to_json()
        );
    }
}
