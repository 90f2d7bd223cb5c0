//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use tessera::data::Buf;
use tessera::geom::Region;
use tessera::io::ZarrReader;

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "tessera-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Read a whole array.
pub fn read_all(path: &Path) -> (Buf, Vec<u64>) {
    let r = ZarrReader::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let shape = r.meta().shape.clone();
    let b = r.read_region(&Region::full(&shape)).expect("read");
    (b, shape)
}

/// SHA-256 of the C-order little-endian bytes, as the fixtures' `sha256_c_le`.
pub fn sha256(b: &Buf) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b.to_le_bytes());
    format!("{:x}", h.finalize())
}

/// A short, stable description of an array's content: dtype, shape and hash.
pub fn checksum(path: &Path) -> String {
    let (b, shape) = read_all(path);
    let sum: f64 = (0..b.len())
        .map(|i| b.get_f64(i))
        .filter(|v| !v.is_nan())
        .sum();
    format!(
        "{} {:?} sum={} sha256={}",
        b.dtype(),
        shape,
        sum,
        &sha256(&b)[..16]
    )
}

/// The oracle fixtures (zarr-python stores, numpy and scipy references) that
/// `tests/oracle/generate.py` writes: `$TESSERA_FIXTURES`, set by `scripts/test.sh`, else
/// `target/oracle-fixtures` in the crate root. Missing fixtures fail the test that needs
/// them, saying how to make them.
pub fn fixtures() -> PathBuf {
    let dir = match std::env::var_os("TESSERA_FIXTURES") {
        // Absolute, because the tests' programs run from temporary directories.
        Some(p) if !p.is_empty() => std::env::current_dir()
            .map(|d| d.join(&p))
            .unwrap_or_else(|_| PathBuf::from(&p)),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracle-fixtures"),
    };
    assert!(
        dir.join("manifest.json").is_file(),
        "no oracle fixtures in {}: run `bash scripts/test.sh`, or \
         `python tests/oracle/generate.py --out DIR` and set TESSERA_FIXTURES=DIR",
        dir.display()
    );
    dir
}

/// A second, independently produced fixture set to cross-check against, when one lies
/// beside the crate (`../shared/fixtures`, same layout). Never required: the tests run
/// in full on `fixtures()` alone, and repeat a few checks on this set when it exists.
pub fn crosscheck_fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    dir.join("manifest.json").is_file().then_some(dir)
}

/// The stems of the example programs in `examples/`, sorted.
pub fn example_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("examples dir")
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "tsr" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    v
}

/// Runs the `tessera` binary in `dir` with `args` (without a `TESSERA_REPORT` inherited
/// from the caller's environment).
pub fn run_cli(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir)
        .env_remove("TESSERA_REPORT")
        .args(args)
        .output()
        .unwrap()
}

/// Runs the `tessera` binary in `dir` with `args` and `TESSERA_REPORT=1` (its stderr
/// ends with the counts `report_counts` reads), with no fault injection or chaining
/// switch inherited from the caller.
pub fn run_reported(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir)
        .args(args)
        .env("TESSERA_REPORT", "1")
        .env_remove("TESSERA_FAULT_INJECT")
        .env_remove("TESSERA_CHAIN")
        .output()
        .expect("run tessera")
}

/// The stderr of a run that must have succeeded.
pub fn succeeded(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tessera failed:\n{err}");
    err
}

/// Run Python `code` with interpreter `py` in `dir`; it must succeed. Its stdout.
pub fn run_python(py: &Path, dir: &Path, code: &str) -> String {
    let out = std::process::Command::new(py)
        .current_dir(dir)
        .args(["-c", code])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    assert!(
        out.status.success(),
        "python failed:\n{code}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The oracle Python: `$TESSERA_PYTHON`, else the crate's `.venv` (both made by
/// `scripts/test.sh`), which must import numpy, scipy and zarr. Without one the test fails,
/// naming the fix: an oracle test never passes without its oracle.
pub fn oracle_python() -> PathBuf {
    let py = match std::env::var_os("TESSERA_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    };
    let ok = std::process::Command::new(&py)
        .args(["-c", "import numpy, scipy.ndimage, zarr"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no Python oracle at {} with numpy, scipy and zarr (run scripts/python-env.sh or set TESSERA_PYTHON)",
        py.display()
    );
    py
}

/// A small deterministic generator (xorshift64), so a fuzz failure names a reproducible
/// case by its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// One element of `v` (not empty).
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// (computed, skipped) from the `TESSERA_REPORT` line.
pub fn report_counts(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("tessera-report:"))
        .unwrap_or_else(|| panic!("no report in:\n{stderr}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|t| t.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    (field("computed"), field("skipped"))
}

/// Every file of an array except its completion record, by relative path.
pub fn array_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                if rel != ".tessera-resume.log" {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Distinct chunks the completion record at `record` lists as finished (complete lines only).
pub fn recorded_in(record: &Path) -> u64 {
    let text = std::fs::read_to_string(record).unwrap_or_default();
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        lines.pop();
    }
    let mut set: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("c ")).collect();
    set.sort_unstable();
    set.dedup();
    set.len() as u64
}

/// Copy the directory tree `from` to `to` (regular files and directories).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

/// Spawn `cmd` and SIGKILL it once `reached()` holds; true when it finished first.
pub fn kill_when(cmd: &mut std::process::Command, reached: impl Fn() -> bool) -> bool {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tessera");
    let finished = loop {
        if reached() {
            break false;
        }
        if child.try_wait().expect("wait for tessera").is_some() {
            break true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    if !finished {
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
    }
    finished
}
