//! `tessera._tessera`, the extension module under the `tessera` Python package: one more
//! front end over `tessera::Engine`, as the command line and the REPL are.
//!
//! Each engine lives on a thread of its own (an `Engine` is not `Send`); Python calls send
//! it work and wait with the GIL released, waking every few milliseconds to let Python
//! handle signals. A Ctrl-C there cancels the run through the runtime's cancel token:
//! the tasks in flight finish, no chunk is torn, and the call raises `KeyboardInterrupt`.

use numpy::{PyArray1, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use tessera::data::Buf;
use tessera::dtype::DType;
use tessera::exec::{self, RunOptions, Safeguards};
use tessera::io::{HostBytes, ZarrReader};
use tessera::{Computed, Diagnostic, Engine, NamedInput, RunReport};

create_exception!(
    tessera,
    TesseraError,
    PyException,
    "A script that Tessera refused or that failed while running: `code` (`E0201`), `span` \
     (start and end byte of the primary label in `source`, or None), `source` (the name of \
     the text the span points into) and `rendered` (the full diagnostic text)."
);

/// How often a waiting call lets Python handle signals.
const SIGNAL_POLL: Duration = Duration::from_millis(20);
/// Stack of an engine's thread: lowering deep expressions recurses.
const ENGINE_STACK: usize = 64 << 20;

/// Diagnostics rendered where their sources are known (on the engine's thread).
struct Failure {
    code: String,
    message: String,
    span: Option<(u32, u32)>,
    source: Option<String>,
    rendered: String,
}

fn failure(engine: &Engine, diags: &[Diagnostic]) -> Failure {
    let first = diags.first();
    let label = first.and_then(|d| d.labels.first());
    Failure {
        code: first.map_or("E0599", |d| d.code).to_string(),
        message: first.map_or_else(|| "unknown error".to_string(), |d| d.message.clone()),
        span: label.map(|l| (l.span.start, l.span.end)),
        source: label.map(|l| engine.sources().name(l.span.src).to_string()),
        rendered: engine.render(diags, false),
    }
}

fn raise(py: Python<'_>, f: Failure) -> PyErr {
    let err = TesseraError::new_err(f.message);
    let value = err.value(py);
    let set = || -> PyResult<()> {
        value.setattr("code", f.code)?;
        value.setattr("span", f.span)?;
        value.setattr("source", f.source)?;
        value.setattr("rendered", f.rendered)?;
        Ok(())
    };
    match set() {
        Ok(()) => err,
        Err(e) => e,
    }
}

type Job = Box<dyn FnOnce(&mut Engine) + Send>;

/// The thread that owns one `Engine`.
struct EngineThread {
    /// Called as `progress(done, total)` while a call waits (`EngineCore.set_progress`).
    progress: std::sync::Mutex<Option<Py<PyAny>>>,
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineThread {
    fn start() -> PyResult<EngineThread> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("tessera-engine".into())
            .stack_size(ENGINE_STACK)
            .spawn(move || {
                let mut engine = Engine::new();
                for job in rx {
                    // A panic drops the job's reply channel: the caller sees the failure,
                    // and the engine goes on serving later calls.
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut engine)));
                }
            })
            .map_err(|e| PyException::new_err(format!("cannot start the engine thread: {e}")))?;
        Ok(EngineThread {
            progress: std::sync::Mutex::new(None),
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Run `f` on the engine with the GIL released. A signal Python turns into an
    /// exception (Ctrl-C) cancels the run; the call waits for it to stop, then raises.
    fn call<T: Send + 'static>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Engine) -> T + Send + 'static,
    ) -> PyResult<T> {
        let (reply, mut rx) = mpsc::channel();
        exec::clear_cancel();
        let job: Job = Box::new(move |e: &mut Engine| {
            let _ = reply.send(f(e));
        });
        let sent = self.tx.as_ref().map(|tx| tx.send(job).is_ok());
        if sent != Some(true) {
            return Err(PyException::new_err("the engine thread has stopped"));
        }
        let mut interrupted: Option<PyErr> = None;
        let progress = self
            .progress
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(|p| p.clone_ref(py)));
        let mut shown = exec::live_progress();
        loop {
            let (got, back) = py.detach(move || (rx.recv_timeout(SIGNAL_POLL), rx));
            rx = back;
            match got {
                Ok(v) => {
                    exec::clear_cancel();
                    return match interrupted {
                        Some(e) => Err(e),
                        None => Ok(v),
                    };
                }
                Err(RecvTimeoutError::Timeout) => {
                    let now = exec::live_progress();
                    if let Some(cb) = progress.as_ref().filter(|_| now != shown && now.1 > 0) {
                        shown = now;
                        if let Err(e) = cb.call1(py, now) {
                            e.write_unraisable(py, Some(cb.bind(py)));
                        }
                    }
                    if interrupted.is_none() {
                        if let Err(e) = py.check_signals() {
                            exec::request_cancel();
                            interrupted = Some(e);
                        }
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(interrupted.unwrap_or_else(|| {
                        TesseraError::new_err("internal error: the engine panicked")
                    }))
                }
            }
        }
    }
}

impl Drop for EngineThread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The borrowed buffer of a NumPy array, kept alive by a reference to the array.
struct NumpyBytes {
    ptr: *const u8,
    len: usize,
    _owner: Py<PyAny>,
}

// SAFETY: the bytes belong to the NumPy array `_owner` refers to, which cannot be freed
// (nor resized: NumPy refuses to resize an array others refer to) while this value
// holds the reference. Tessera only reads them, from any thread.
unsafe impl Send for NumpyBytes {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for NumpyBytes {}

impl HostBytes for NumpyBytes {
    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` is the data pointer of a C-contiguous array of `len` bytes that
        // stays alive as long as `self` (see above).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A named input ready to hand to an engine: a path, or an array read in place.
#[pyclass(frozen, module = "tessera._tessera")]
struct Input {
    input: NamedInput,
}

#[pymethods]
impl Input {
    /// `<numpy x>` or the path.
    fn __repr__(&self) -> String {
        match &self.input {
            NamedInput::Path(p) => format!("Input({p:?})"),
            NamedInput::Python(spec) => format!("Input(python({spec:?}))"),
            NamedInput::Reader(r) => {
                let m = r.meta();
                format!(
                    "Input({}: {}{:?} chunks {:?})",
                    r.path().display(),
                    m.dtype.numpy_name(),
                    m.shape,
                    m.chunks
                )
            }
        }
    }
}

/// An input bound as `python(spec)` binds a block function (`file.py:func`).
#[pyfunction]
fn python_input(spec: String) -> Input {
    Input {
        input: NamedInput::Python(spec),
    }
}

/// Wrap a NumPy array as the input `name`, read in place (no copy) through a grid of
/// `chunks` (default: Tessera's automatic chunking). The array must be C-contiguous,
/// native-endian and of a dtype Tessera supports; anything else is a TypeError naming
/// the input.
#[pyfunction]
#[pyo3(signature = (name, array, chunks=None))]
fn numpy_input(name: &str, array: &Bound<'_, PyAny>, chunks: Option<Vec<u64>>) -> PyResult<Input> {
    let array = array
        .cast::<PyUntypedArray>()
        .map_err(|_| PyTypeError::new_err(format!("input `{name}`: expected a NumPy array")))?;
    let descr = array.dtype();
    let dtype_name: String = descr.getattr("name")?.extract()?;
    let dtype = DType::parse(&dtype_name).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "input `{name}`: Tessera has no dtype {dtype_name} (bool, int8..int64, uint8..uint64, float32, float64, complex64 and complex128 are supported)"
        ))
    })?;
    if descr.is_native_byteorder() == Some(false) {
        return Err(PyTypeError::new_err(format!(
            "input `{name}`: the array is not in this machine's byte order; convert it with `a.astype(a.dtype.newbyteorder('='))`"
        )));
    }
    if !array.is_c_contiguous() {
        return Err(PyTypeError::new_err(format!(
            "input `{name}`: the array is not C-contiguous (a strided view or Fortran order); pass `numpy.ascontiguousarray(a)`"
        )));
    }
    let shape: Vec<u64> = array.shape().iter().map(|n| *n as u64).collect();
    let len = array.len() * dtype.size();
    // SAFETY: reading the data pointer field of a live array object.
    let ptr = unsafe { (*array.as_array_ptr()).fields.data as *const u8 };
    let chunks = match chunks {
        Some(c) if c.len() == 1 && shape.len() > 1 => vec![c[0]; shape.len()],
        Some(c) => c,
        None => tessera::check::default_chunks(&shape, dtype.size()),
    };
    // A chunk larger than its axis is the whole axis (a wrong number of axes is refused).
    let chunks: Vec<u64> = if chunks.len() == shape.len() {
        chunks
            .iter()
            .zip(&shape)
            .map(|(c, n)| (*c).min(*n).max(1))
            .collect()
    } else {
        chunks
    };
    let data = Arc::new(NumpyBytes {
        ptr,
        len,
        _owner: array.clone().into_any().unbind(),
    });
    let reader = ZarrReader::host(&format!("<numpy {name}>"), data, dtype, shape, chunks)
        .map_err(|e| PyValueError::new_err(format!("input `{name}`: {e}")))?;
    Ok(Input {
        input: NamedInput::Reader(Arc::new(reader)),
    })
}

fn named_input(name: &str, v: &Bound<'_, PyAny>) -> PyResult<NamedInput> {
    if let Ok(i) = v.cast::<Input>() {
        return Ok(i.get().input.clone());
    }
    if let Ok(p) = v.extract::<String>() {
        return Ok(NamedInput::Path(p));
    }
    Err(PyTypeError::new_err(format!(
        "input `{name}`: expected a NumPy array, a zarr array or a path"
    )))
}

fn named_inputs(inputs: &[(String, Bound<'_, PyAny>)]) -> PyResult<Vec<(String, NamedInput)>> {
    inputs
        .iter()
        .map(|(n, v)| Ok((n.clone(), named_input(n, v)?)))
        .collect()
}

fn options(workers: Option<usize>) -> RunOptions {
    let mut opts = RunOptions {
        progress: tessera::Progress::Published,
        ..RunOptions::default()
    };
    if let Some(w) = workers {
        opts.workers = w.max(1);
    }
    opts
}

fn guards(memory: Option<u64>, resume: bool) -> Safeguards {
    Safeguards {
        memory_limit: memory.or_else(exec::admission::default_memory_limit),
        memory_explicit: memory.is_some(),
        record: true,
        resume,
        stage_by_stage: false,
    }
}

/// What a run reported, as plain data for the Python side.
struct Report {
    printed: Vec<String>,
    warnings: Vec<String>,
    tasks: u64,
    skipped: u64,
    seconds: f64,
    outputs: Vec<String>,
}

fn report(engine: &Engine, r: RunReport) -> Report {
    Report {
        printed: r.printed,
        warnings: r
            .warnings
            .iter()
            .map(|w| engine.render(std::slice::from_ref(w), false))
            .collect(),
        tasks: r.tasks,
        skipped: r.skipped,
        seconds: r.seconds,
        outputs: r.outputs.iter().map(|o| o.to_string()).collect(),
    }
}

fn report_dict<'py>(py: Python<'py>, r: Report) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("printed", r.printed)?;
    d.set_item("warnings", r.warnings)?;
    d.set_item("tasks", r.tasks)?;
    d.set_item("skipped", r.skipped)?;
    d.set_item("seconds", r.seconds)?;
    d.set_item("outputs", r.outputs)?;
    Ok(d)
}

fn array<'py>(py: Python<'py>, values: Buf, shape: &[u64]) -> PyResult<Bound<'py, PyAny>> {
    fn shaped<'py, T: numpy::Element>(
        py: Python<'py>,
        v: Vec<T>,
        shape: &[u64],
    ) -> PyResult<Bound<'py, PyAny>> {
        let flat = PyArray1::from_vec(py, v);
        if shape.is_empty() {
            // A 0-d result is a NumPy scalar, as `a.sum()` gives.
            return flat.into_any().get_item(0);
        }
        let dims: Vec<usize> = shape.iter().map(|n| *n as usize).collect();
        Ok(flat.reshape(dims)?.into_any())
    }
    match values {
        Buf::Bool(v) => shaped(py, v, shape),
        Buf::I8(v) => shaped(py, v, shape),
        Buf::I16(v) => shaped(py, v, shape),
        Buf::I32(v) => shaped(py, v, shape),
        Buf::I64(v) => shaped(py, v, shape),
        Buf::U8(v) => shaped(py, v, shape),
        Buf::U16(v) => shaped(py, v, shape),
        Buf::U32(v) => shaped(py, v, shape),
        Buf::U64(v) => shaped(py, v, shape),
        Buf::F32(v) => shaped(py, v, shape),
        Buf::F64(v) => shaped(py, v, shape),
        Buf::C64(v) => shaped(py, v, shape),
        Buf::C128(v) => shaped(py, v, shape),
    }
}

fn to_python<'py>(py: Python<'py>, c: Computed) -> PyResult<Bound<'py, PyAny>> {
    Ok(match c {
        Computed::None => py.None().into_bound(py),
        Computed::Array { values, shape } => array(py, values, &shape)?,
        Computed::Int(i) => i.into_pyobject(py)?.into_any(),
        Computed::Float(f) => f.into_pyobject(py)?.into_any(),
        Computed::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Computed::Str(s) | Computed::Other(s) => s.into_pyobject(py)?.into_any(),
        Computed::Tuple(items) => PyTuple::new(py, all_to_python(py, items)?)?.into_any(),
        Computed::List(items) => PyList::new(py, all_to_python(py, items)?)?.into_any(),
        Computed::Lazy(l) => {
            let d = PyDict::new(py);
            d.set_item("lazy", l.name)?;
            d.set_item("summary", l.summary)?;
            d.set_item("dtype", l.dtype)?;
            d.set_item("shape", l.shape)?;
            d.set_item("chunks", l.chunks)?;
            d.into_any()
        }
        Computed::Table { name, label } => {
            let d = PyDict::new(py);
            d.set_item("table", name)?;
            d.set_item("label", label)?;
            d.into_any()
        }
    })
}

fn all_to_python(py: Python<'_>, items: Vec<Computed>) -> PyResult<Vec<Bound<'_, PyAny>>> {
    items.into_iter().map(|x| to_python(py, x)).collect()
}

/// Every binding with its type, and the rendered warnings.
type Checked = (Vec<(String, String)>, Vec<String>);

/// One Tessera engine: standalone scripts (`run_script`, `check_script`) and a session
/// whose bindings persist between calls (`bind`, `eval`), as in the REPL.
#[pyclass(module = "tessera._tessera")]
struct EngineCore {
    thread: EngineThread,
}

#[pymethods]
impl EngineCore {
    #[new]
    fn new() -> PyResult<EngineCore> {
        Ok(EngineCore {
            thread: EngineThread::start()?,
        })
    }

    /// Call `progress(done, total)` (chunks) while later runs of this engine go on, or
    /// nothing with None.
    #[pyo3(signature = (progress=None))]
    fn set_progress(&self, progress: Option<Py<PyAny>>) {
        if let Ok(mut p) = self.thread.progress.lock() {
            *p = progress;
        }
    }

    /// Bind `name` in the session to an input (an `Input` or a path).
    fn bind(&self, py: Python<'_>, name: String, input: &Bound<'_, PyAny>) -> PyResult<()> {
        let input = named_input(&name, input)?;
        let r = self.thread.call(py, move |e| {
            e.bind_input(&name, &input).map_err(|d| failure(e, &d))
        })?;
        r.map_err(|f| raise(py, f))
    }

    /// Evaluate `src` in the session; returns the value of its final expression (arrays
    /// computed as NumPy arrays) and the run's report.
    #[pyo3(signature = (src, workers=None, memory=None))]
    fn eval<'py>(
        &self,
        py: Python<'py>,
        src: String,
        workers: Option<usize>,
        memory: Option<u64>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
        let opts = options(workers);
        let r = self.thread.call(py, move |e| {
            let g = guards(memory, false);
            e.set_memory(g.memory_limit, opts.workers);
            match e.eval_value(&src, &opts, &g) {
                Ok(v) => Ok((v.value, report(e, v.report))),
                Err(d) => Err(failure(e, &d)),
            }
        })?;
        let (value, rep) = r.map_err(|f| raise(py, f))?;
        Ok((to_python(py, value)?, report_dict(py, rep)?))
    }

    /// Evaluate `src` in the session as a notebook cell: a final array expression is
    /// left uncomputed and bound as `bind_as`, and comes back as a dict with its summary
    /// (`lazy`, `summary`, `dtype`, `shape`, `chunks`); other values as `eval` gives them.
    #[pyo3(signature = (src, bind_as, workers=None, memory=None))]
    fn show<'py>(
        &self,
        py: Python<'py>,
        src: String,
        bind_as: String,
        workers: Option<usize>,
        memory: Option<u64>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
        let opts = options(workers);
        let r = self.thread.call(py, move |e| {
            let g = guards(memory, false);
            e.set_memory(g.memory_limit, opts.workers);
            match e.eval_shown(&src, &bind_as, &opts, &g) {
                Ok(v) => Ok((v.value, report(e, v.report))),
                Err(d) => Err(failure(e, &d)),
            }
        })?;
        let (value, rep) = r.map_err(|f| raise(py, f))?;
        Ok((to_python(py, value)?, report_dict(py, rep)?))
    }

    /// Check, plan and run the script `src` (named `name` in messages) with `inputs`
    /// bound by name before its first line.
    #[pyo3(signature = (name, src, inputs, workers=None, memory=None, resume=false))]
    #[allow(clippy::too_many_arguments)]
    fn run_script<'py>(
        &self,
        py: Python<'py>,
        name: String,
        src: String,
        inputs: Vec<(String, Bound<'py, PyAny>)>,
        workers: Option<usize>,
        memory: Option<u64>,
        resume: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let inputs = named_inputs(&inputs)?;
        let opts = options(workers);
        let r = self.thread.call(py, move |e| {
            e.set_inputs(inputs);
            let r = e.run_with(&name, &src, &opts, &guards(memory, resume));
            e.set_inputs(Vec::new());
            match r {
                Ok(r) => Ok(report(e, r)),
                Err(d) => Err(failure(e, &d)),
            }
        })?;
        report_dict(py, r.map_err(|f| raise(py, f))?)
    }

    /// Check the script `src`: every top-level binding (inputs first) with its type, and
    /// the rendered warnings.
    fn check_script(
        &self,
        py: Python<'_>,
        name: String,
        src: String,
        inputs: Vec<(String, Bound<'_, PyAny>)>,
    ) -> PyResult<Checked> {
        let inputs = named_inputs(&inputs)?;
        let r = self.thread.call(py, move |e| {
            e.set_inputs(inputs);
            let r = e.check(&name, &src);
            e.set_inputs(Vec::new());
            match r {
                Ok(c) => {
                    let warnings = c
                        .warnings
                        .iter()
                        .map(|w| e.render(std::slice::from_ref(w), false))
                        .collect();
                    Ok((c.bindings, warnings))
                }
                Err(d) => Err(failure(e, &d)),
            }
        })?;
        r.map_err(|f| raise(py, f))
    }
}

#[pymodule]
fn _tessera(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TesseraError", m.py().get_type::<TesseraError>())?;
    m.add_class::<EngineCore>()?;
    m.add_class::<Input>()?;
    m.add_function(wrap_pyfunction!(numpy_input, m)?)?;
    m.add_function(wrap_pyfunction!(python_input, m)?)?;
    Ok(())
}
