//! Python worker processes for block functions. Each worker is one interpreter running
//! `runner.py`, with two files in shared memory (`/dev/shm`) that both sides map: the
//! block goes in through one and the result comes back through the other, so no block
//! is pickled or piped. Commands and replies are JSON lines on the worker's stdin and
//! stdout; the user's prints go to stderr. A module is imported once per worker and
//! stays imported for the run, so an expensive setup is paid once per worker.

use crate::data::Buf;
use crate::dtype::DType;
use crate::ir::PyFunc;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The worker's program, run with `python -c`.
const RUNNER: &str = include_str!("runner.py");

/// Why a Python call failed.
#[derive(Clone, Debug, PartialEq)]
pub enum PyError {
    /// The interpreter cannot be started.
    Start {
        interpreter: String,
        detail: String,
    },
    /// The interpreter runs but cannot import NumPy.
    NoNumpy {
        interpreter: String,
        detail: String,
    },
    /// No module of that name can be imported (or the file does not exist).
    ModuleMissing {
        detail: String,
    },
    /// Importing the module raised (a syntax error, a failing import inside it).
    ModuleError {
        traceback: String,
    },
    /// The module has no such function; `names` lists its callables.
    FunctionMissing {
        names: String,
    },
    NotCallable {
        kind: String,
    },
    /// The function cannot be called with one block and the keyword arguments.
    Arity {
        detail: String,
    },
    /// The function raised.
    Exception {
        traceback: String,
    },
    /// The function returned something other than a NumPy array.
    NotArray {
        kind: String,
    },
    /// The function returned a dtype Tessera has no equivalent of.
    UnknownDtype {
        name: String,
    },
    /// The worker process ended (a crash, `os._exit`, a signal).
    Died {
        status: String,
    },
    /// A call took longer than the function's `timeout=`.
    Timeout {
        seconds: f64,
    },
    /// Shared memory or the pipe failed.
    Io {
        detail: String,
    },
}

impl std::fmt::Display for PyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PyError::Start {
                interpreter,
                detail,
            } => write!(
                f,
                "cannot start the Python interpreter {interpreter}: {detail}"
            ),
            PyError::NoNumpy {
                interpreter,
                detail,
            } => write!(f, "{interpreter} cannot import NumPy ({detail})"),
            PyError::ModuleMissing { detail } => write!(f, "{detail}"),
            PyError::ModuleError { traceback } => write!(f, "{}", traceback.trim_end()),
            PyError::FunctionMissing { names } => {
                if names.is_empty() {
                    write!(f, "the module defines no functions")
                } else {
                    write!(f, "the module defines: {names}")
                }
            }
            PyError::NotCallable { kind } => write!(f, "it is a {kind}, not a function"),
            PyError::Arity { detail } => write!(f, "{detail}"),
            PyError::Exception { traceback } => write!(f, "{}", traceback.trim_end()),
            PyError::NotArray { kind } => write!(f, "it returned a {kind}, not a NumPy array"),
            PyError::UnknownDtype { name } => write!(f, "it returned an array of dtype {name}"),
            PyError::Died { status } => write!(f, "the Python worker {status}"),
            PyError::Timeout { seconds } => write!(f, "the call took longer than {seconds} s"),
            PyError::Io { detail } => write!(f, "{detail}"),
        }
    }
}

impl PyError {
    /// The diagnostic code of this failure.
    pub fn code(&self) -> &'static str {
        use crate::diag::codes;
        match self {
            PyError::Start { .. } | PyError::NoNumpy { .. } => codes::PY_INTERPRETER,
            PyError::ModuleMissing { .. } => codes::PY_MODULE_MISSING,
            PyError::ModuleError { .. } => codes::PY_MODULE_ERROR,
            PyError::FunctionMissing { .. } | PyError::NotCallable { .. } => {
                codes::PY_FUNCTION_MISSING
            }
            PyError::Arity { .. } => codes::PY_ARITY,
            PyError::Exception { .. } => codes::PY_EXCEPTION,
            PyError::NotArray { .. } => codes::PY_NOT_ARRAY,
            PyError::UnknownDtype { .. } => codes::PY_DTYPE,
            PyError::Died { .. } => codes::PY_WORKER_DIED,
            PyError::Timeout { .. } => codes::PY_TIMEOUT,
            PyError::Io { .. } => codes::PY_IO,
        }
    }

    /// A multi-line explanation (a traceback) that belongs in a note, not the message.
    pub fn is_long(&self) -> bool {
        matches!(
            self,
            PyError::ModuleError { .. } | PyError::Exception { .. }
        )
    }
}

/// The interpreter to use: `explicit` (`--python`), else `TESSERA_PYTHON`, else `python3`.
pub fn interpreter(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    match std::env::var_os("TESSERA_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("python3"),
    }
}

/// Where the shared-memory files live: `/dev/shm` when it exists, else the temp dir.
fn shm_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// One running interpreter.
pub struct Worker {
    interpreter: PathBuf,
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<String>,
    input: std::fs::File,
    output: std::fs::File,
    in_len: u64,
    paths: [PathBuf; 2],
    loaded: HashSet<String>,
}

/// A reply line, parsed.
struct Reply(serde_json::Value);

impl Reply {
    fn ok(&self) -> bool {
        self.0.get("ok").and_then(|v| v.as_bool()).unwrap_or(false)
    }
    fn str(&self, k: &str) -> String {
        self.0
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    }
}

fn io_err(what: &str, e: impl std::fmt::Display) -> PyError {
    PyError::Io {
        detail: format!("{what}: {e}"),
    }
}

impl Worker {
    /// Start an interpreter and wait until it has imported NumPy.
    pub fn start(interpreter: &Path) -> Result<Worker, PyError> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = shm_root().join(format!("tessera-{}-{n}", std::process::id()));
        let paths = [base.with_extension("in"), base.with_extension("out")];
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(p)
                .map_err(|e| io_err(&format!("cannot create {}", p.display()), e))
        };
        let input = open(&paths[0])?;
        let output = match open(&paths[1]) {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&paths[0]);
                return Err(e);
            }
        };
        let shown = interpreter.display().to_string();
        let spawned = Command::new(interpreter)
            .arg("-c")
            .arg(RUNNER)
            .arg(&paths[0])
            .arg(&paths[1])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("PYTHONUNBUFFERED", "1")
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                for p in &paths {
                    let _ = std::fs::remove_file(p);
                }
                return Err(PyError::Start {
                    interpreter: shown,
                    detail: e.to_string(),
                });
            }
        };
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut w = Worker {
            interpreter: interpreter.to_path_buf(),
            child,
            stdin,
            replies: rx,
            input,
            output,
            in_len: 0,
            paths,
            loaded: HashSet::new(),
        };
        let hello = match w.reply(None) {
            Ok(r) => r,
            Err(PyError::Died { status }) => {
                return Err(PyError::Start {
                    interpreter: shown,
                    detail: format!("it {status} before starting"),
                })
            }
            Err(e) => return Err(e),
        };
        if hello.0.get("ready").and_then(|v| v.as_bool()) != Some(true) {
            return Err(PyError::NoNumpy {
                interpreter: shown,
                detail: hello.str("error"),
            });
        }
        // Both sides hold the files open now: remove the names, so a process killed with
        // SIGKILL leaves no block behind in /dev/shm.
        for p in &w.paths {
            let _ = std::fs::remove_file(p);
        }
        Ok(w)
    }

    pub fn interpreter(&self) -> &Path {
        &self.interpreter
    }

    fn send(&mut self, v: serde_json::Value) -> Result<(), PyError> {
        let mut line = v.to_string();
        line.push('\n');
        if write_no_sigpipe(&mut self.stdin, line.as_bytes()).is_err() {
            return Err(self.died());
        }
        Ok(())
    }

    /// The worker is gone: how it ended.
    fn died(&mut self) -> PyError {
        let _ = self.child.kill();
        let status = match self.child.wait() {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                match (s.code(), s.signal()) {
                    (Some(c), _) => format!("exited with status {c}"),
                    (None, Some(sig)) => format!("was killed by signal {sig}{}", signal_name(sig)),
                    _ => "ended".to_string(),
                }
            }
            Err(e) => format!("ended ({e})"),
        };
        PyError::Died { status }
    }

    fn reply(&mut self, timeout: Option<f64>) -> Result<Reply, PyError> {
        let line = match timeout {
            None => self
                .replies
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
            Some(t) => self
                .replies
                .recv_timeout(Duration::from_secs_f64(t.max(0.0))),
        };
        match line {
            Ok(l) => serde_json::from_str(&l)
                .map(Reply)
                .map_err(|e| io_err("the Python worker sent a malformed reply", e)),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                Err(PyError::Timeout {
                    seconds: timeout.unwrap_or(0.0),
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.died()),
        }
    }

    /// Import the function's module (once per worker) and check the function takes one
    /// block and the keyword arguments.
    pub fn load(&mut self, f: &PyFunc) -> Result<(), PyError> {
        let key = f.key();
        if self.loaded.contains(&key) {
            return Ok(());
        }
        if let Some(file) = &f.file {
            if !file.is_file() {
                return Err(PyError::ModuleMissing {
                    detail: format!("{}: no such file", file.display()),
                });
            }
        }
        let kwargs: serde_json::Value =
            serde_json::from_str(&f.kwargs).map_err(|e| io_err("keyword arguments", e))?;
        self.send(serde_json::json!({
            "cmd": "load",
            "key": key,
            "file": f.file.as_ref().map(|p| p.display().to_string()),
            "module": f.module,
            "func": f.func,
            "stamp": f.stamp,
            "kwargs": kwargs,
        }))?;
        let r = self.reply(None)?;
        if !r.ok() {
            let m = r.str("message");
            return Err(match r.str("kind").as_str() {
                "module_missing" => PyError::ModuleMissing { detail: m },
                "function_missing" => PyError::FunctionMissing { names: m },
                "not_callable" => PyError::NotCallable { kind: m },
                "arity" => PyError::Arity { detail: m },
                _ => PyError::ModuleError { traceback: m },
            });
        }
        self.loaded.insert(key);
        Ok(())
    }

    /// Call `f` on one block; the result and its shape. A function that returns the
    /// block it was given hands back `block`'s own buffer, refilled from shared memory
    /// (the function may have changed it in place), without copying the result twice.
    pub fn call(
        &mut self,
        f: &PyFunc,
        mut block: Buf,
        shape: &[u64],
    ) -> Result<(Buf, Vec<u64>), PyError> {
        self.load(f)?;
        let bytes = bytes_of(&block);
        let n = bytes.len() as u64;
        if n > self.in_len {
            self.input
                .set_len(n)
                .map_err(|e| io_err("cannot grow the shared block", e))?;
            self.in_len = n;
        }
        self.input
            .write_all_at(bytes, 0)
            .map_err(|e| io_err("cannot write the shared block", e))?;
        self.send(serde_json::json!({
            "cmd": "call",
            "key": f.key(),
            "dtype": block.dtype().numpy_name(),
            "shape": shape,
            "nbytes": n,
        }))?;
        let r = self.reply(f.timeout)?;
        if !r.ok() {
            let m = r.str("message");
            return Err(match r.str("kind").as_str() {
                "not_array" => PyError::NotArray { kind: m },
                _ => PyError::Exception { traceback: m },
            });
        }
        if r.0.get("same").and_then(|v| v.as_bool()) == Some(true) {
            read_into(&self.input, &mut block)
                .map_err(|e| io_err("cannot read the shared block back", e))?;
            return Ok((block, shape.to_vec()));
        }
        drop(block);
        let name = r.str("dtype");
        let dtype = DType::parse(&name).ok_or(PyError::UnknownDtype { name })?;
        let out_shape: Vec<u64> =
            r.0.get("shape")
                .and_then(|s| s.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
                .unwrap_or_default();
        let len = crate::geom::saturating_product(&out_shape) as usize;
        let mut out = Buf::zeros(dtype, len);
        if len > 0 {
            read_into(&self.output, &mut out)
                .map_err(|e| io_err("cannot read the shared result", e))?;
        }
        Ok((out, out_shape))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = write_no_sigpipe(&mut self.stdin, b"{\"cmd\":\"quit\"}\n");
        // Give the interpreter two seconds to shut down cleanly, then stop it.
        let mut exited = false;
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Write to a worker's stdin. A worker that died closed the pipe: the write fails with
/// EPIPE instead of raising SIGPIPE, which the command line leaves fatal for its own
/// output. SIGPIPE is blocked in this thread for the write and a pending one is consumed.
fn write_no_sigpipe(w: &mut ChildStdin, bytes: &[u8]) -> std::io::Result<()> {
    // SAFETY: plain libc signal-mask calls on this thread, with zeroed sets initialised by
    // sigemptyset; the old mask is restored before returning.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        let r = w.write_all(bytes).and_then(|_| w.flush());
        if r.as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&set, std::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => " (SIGSEGV, a segmentation fault)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGTERM => " (SIGTERM)",
        _ => "",
    }
}

/// The elements of `b` as bytes, in native (little-endian) order.
// The casts are no-ops for `u8` elements, which the macro expands to as well.
#[allow(clippy::unnecessary_cast)]
fn bytes_of(b: &Buf) -> &[u8] {
    crate::with_buf!(b, v => {
        let len = std::mem::size_of_val(v.as_slice());
        // SAFETY: every element type of `Buf` is plain data without padding; the slice
        // covers exactly the vector's initialised elements.
        unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, len) }
    })
}

/// Fill `b` from the start of `file`.
#[allow(clippy::unnecessary_cast)]
fn read_into(file: &std::fs::File, b: &mut Buf) -> std::io::Result<()> {
    if let Buf::Bool(v) = b {
        // Bytes other than 0 and 1 are not bools: read them as bytes first.
        let mut raw = vec![0u8; v.len()];
        file.read_exact_at(&mut raw, 0)?;
        for (d, s) in v.iter_mut().zip(raw) {
            *d = s != 0;
        }
        return Ok(());
    }
    crate::with_buf!(b, v => {
        let len = std::mem::size_of_val(v.as_slice());
        // SAFETY: the element types here (integers, floats, complex) accept every bit
        // pattern, so any bytes read make valid elements.
        let bytes = unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, len) };
        file.read_exact_at(bytes, 0)
    })
}

/// The workers of one run (or of one engine's session), started on first use (one per
/// thread that calls Python) or ahead of it (`prestart`), and stopped when the pool is
/// dropped.
#[derive(Default)]
pub struct Pool {
    state: Mutex<PoolState>,
    /// Signalled when a worker started ahead of use joins the idle ones (or fails to).
    joined: Condvar,
    started: AtomicUsize,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Worker>,
    /// Workers being started ahead of use, by interpreter.
    starting: Vec<PathBuf>,
}

impl PoolState {
    /// One worker of `interpreter` started ahead of use is no longer being started.
    fn started_one(&mut self, interpreter: &Path) {
        if let Some(i) = self.starting.iter().position(|p| p == interpreter) {
            self.starting.swap_remove(i);
        }
    }
}

impl Pool {
    pub fn new() -> Pool {
        Pool::default()
    }

    /// Start `n` workers of `interpreter` in the background, so a run that needs them finds
    /// them running (an interpreter and NumPy take a good fraction of a second to start).
    /// A worker that fails to start is not reported here: the call that would have used it
    /// starts its own and reports why that fails.
    pub fn prestart(self: &Arc<Self>, interpreter: &Path, n: usize) {
        for _ in 0..n {
            self.state
                .lock()
                .expect("python pool")
                .starting
                .push(interpreter.to_path_buf());
            let pool = Arc::clone(self);
            let interp = interpreter.to_path_buf();
            let spawned = std::thread::Builder::new()
                .name("tessera-python-start".into())
                .spawn(move || {
                    let w = Worker::start(&interp);
                    let mut st = pool.state.lock().expect("python pool");
                    st.started_one(&interp);
                    if let Ok(w) = w {
                        pool.started.fetch_add(1, Ordering::Relaxed);
                        st.idle.push(w);
                    }
                    drop(st);
                    pool.joined.notify_all();
                });
            if spawned.is_err() {
                self.state
                    .lock()
                    .expect("python pool")
                    .started_one(interpreter);
            }
        }
    }

    /// Run `job` with a worker of `interpreter`: an idle one, one being started ahead of
    /// use, or a new one. A worker whose call failed in a way that leaves it unusable (it
    /// died, timed out) is not kept.
    pub fn with_worker<T>(
        &self,
        interpreter: &Path,
        job: impl FnOnce(&mut Worker) -> Result<T, PyError>,
    ) -> Result<T, PyError> {
        let found = {
            let mut st = self.state.lock().expect("python pool");
            loop {
                if let Some(i) = st.idle.iter().position(|w| w.interpreter() == interpreter) {
                    break Some(st.idle.swap_remove(i));
                }
                if !st.starting.iter().any(|p| p == interpreter) {
                    break None;
                }
                st = self.joined.wait(st).expect("python pool");
            }
        };
        let mut w = match found {
            Some(w) => w,
            None => {
                self.started.fetch_add(1, Ordering::Relaxed);
                Worker::start(interpreter)?
            }
        };
        let r = job(&mut w);
        let keep = !matches!(
            r,
            Err(PyError::Died { .. } | PyError::Timeout { .. } | PyError::Io { .. })
        );
        if keep {
            self.state.lock().expect("python pool").idle.push(w);
            self.joined.notify_all();
        }
        r
    }

    /// How many more workers of `interpreter` `n` threads would need, counting the idle
    /// ones and those being started.
    pub fn missing(&self, interpreter: &Path, n: usize) -> usize {
        let st = self.state.lock().expect("python pool");
        let have = st
            .idle
            .iter()
            .filter(|w| w.interpreter() == interpreter)
            .count()
            + st.starting.iter().filter(|p| *p == interpreter).count();
        n.saturating_sub(have)
    }

    /// Workers started so far (ahead of use included).
    pub fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }
}

impl Drop for Pool {
    /// Tell every worker to quit first, so they shut down together rather than one after
    /// the other.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for w in &mut st.idle {
            let _ = write_no_sigpipe(&mut w.stdin, b"{\"cmd\":\"quit\"}\n");
        }
    }
}
