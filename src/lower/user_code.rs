//! The user's own code as block functions: `python("file.py:func", **kwargs)` makes a
//! function value; `x.map(f)`, `x.overlap(d).map(f)` and `x.map_blocks(f, chunks=...,
//! dtype=..., drop_axis=..., new_axis=...)` apply it per block as an `Op::PyBlock` node.
//! Unless `dtype=` is declared, the function is called once at check time on a block of
//! zeros of the first block's shape (as dask's `meta`), which also finds a missing module
//! or function, a wrong arity and a result of the wrong shape before anything runs.

use super::builtins::{bind_args, expected, get_dtype, get_float, get_ints, get_str, ArgVal};
use super::{ArrayVal, Evaluator, Value, R};
use crate::data::Buf;
use crate::diag::{codes, Diagnostic, Span};
use crate::dtype::DType;
use crate::geom::fmt_shape;
use crate::io::python::PyError;
use crate::ir::{ArrayType, Boundary, Op, PyBlock, PyFunc};
use std::sync::Arc;

/// What a check-time call found, per function, input dtype and block shape.
pub type ProbeCache = std::collections::HashMap<(String, DType, Vec<u64>), (DType, Vec<u64>)>;

/// The diagnostic for a failed Python call of `f` (`context`: which block, or that it was
/// the check-time call), labelled at `span`.
pub fn py_diag(e: &PyError, f: &PyFunc, span: Span, context: &str) -> Diagnostic {
    let spec = &f.spec;
    let d = match e {
        PyError::Start { .. } => Diagnostic::error(e.code(), e.to_string())
            .help("install Python 3 with NumPy, or name an interpreter with --python PATH or TESSERA_PYTHON"),
        PyError::NoNumpy { .. } => Diagnostic::error(e.code(), e.to_string())
            .help("install numpy for that interpreter, or name another with --python PATH or TESSERA_PYTHON"),
        PyError::ModuleMissing { detail } => Diagnostic::error(
            e.code(),
            format!("cannot find the module of `{spec}`: {detail}"),
        )
        .help("a file path is relative to the script's directory; a module must be importable by the interpreter"),
        PyError::ModuleError { traceback } => Diagnostic::error(
            e.code(),
            format!("importing the module of `{spec}` failed"),
        )
        .note(traceback.trim_end().to_string()),
        PyError::FunctionMissing { names } => Diagnostic::error(
            e.code(),
            format!("the module `{}` has no function `{}`", f.module, f.func),
        )
        .note(if names.is_empty() {
            "it defines no functions".to_string()
        } else {
            format!("it defines: {names}")
        }),
        PyError::NotCallable { kind } => Diagnostic::error(
            e.code(),
            format!("`{}.{}` is a {kind}, not a function", f.module, f.func),
        ),
        PyError::Arity { detail } => Diagnostic::error(
            e.code(),
            format!("`{spec}` cannot be called with one block and the keyword arguments given"),
        )
        .note(detail.clone())
        .help("a block function takes the block as its one positional argument: def f(block, **options)"),
        PyError::Exception { traceback } => Diagnostic::error(
            e.code(),
            format!("`{spec}` raised an exception {context}"),
        )
        .note(traceback.trim_end().to_string()),
        PyError::NotArray { kind } => Diagnostic::error(
            e.code(),
            format!("`{spec}` returned a {kind} {context}, not a NumPy array"),
        )
        .help("return an array, e.g. np.array([[n]]) for one value per block"),
        PyError::UnknownDtype { name } => Diagnostic::error(
            e.code(),
            format!("`{spec}` returned an array of dtype {name} {context}"),
        )
        .help("return one of bool, int8..int64, uint8..uint64, float32, float64, complex64, complex128"),
        PyError::Died { status } => Diagnostic::error(
            e.code(),
            format!("the Python worker running `{spec}` {status} {context}"),
        )
        .note("the run stopped; every chunk finished before is complete and none is torn"),
        PyError::Timeout { seconds } => Diagnostic::error(
            e.code(),
            format!("`{spec}` took longer than its timeout of {seconds} s {context}"),
        )
        .note("its worker was stopped; every chunk finished before is complete and none is torn"),
        PyError::Io { detail } => Diagnostic::error(
            e.code(),
            format!("the shared memory of a Python worker failed {context}: {detail}"),
        ),
    };
    d.label(span, format!("calls `{spec}`"))
}

/// A keyword value for Python: numbers, strings, bools, none and tuples/lists of them.
fn to_json(v: &Value) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match v {
        Value::None => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number)?,
        Value::Str(s) => J::String(s.to_string()),
        Value::Tuple(t) | Value::List(t) => J::Array(t.iter().map(to_json).collect::<Option<_>>()?),
        _ => return None,
    })
}

pub(crate) fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_alphanumeric() || ch == '_')
}

impl Evaluator {
    /// `python("file.py:func" | "pkg.module:func", timeout=none, **kwargs)`.
    pub(super) fn python_func(&mut self, args: Vec<ArgVal>, call_span: Span) -> R<Value> {
        let mut spec_arg: Option<ArgVal> = None;
        let mut timeout = None;
        let mut kwargs = serde_json::Map::new();
        for a in args {
            match &a.name {
                None if spec_arg.is_none() => spec_arg = Some(a),
                None => {
                    return Err(Diagnostic::error(
                        codes::ARITY,
                        "`python` takes one positional argument, the function; pass its options by keyword",
                    )
                    .label(a.span, "give this one a name: python(\"f.py:f\", name=value)"))
                }
                Some(n) if n.name == "timeout" => {
                    let t = get_float(&a)?;
                    if !(t > 0.0 && t.is_finite()) {
                        return Err(Diagnostic::error(
                            codes::PY_BAD_SPEC,
                            format!("timeout {t} is not a positive number of seconds"),
                        )
                        .label(a.span, "seconds one call may take"));
                    }
                    timeout = Some(t);
                }
                Some(n) => {
                    if matches!(a.value, Value::Poison) {
                        return Ok(Value::Poison);
                    }
                    let Some(j) = to_json(&a.value) else {
                        return Err(Diagnostic::error(
                            codes::PY_BAD_SPEC,
                            format!(
                                "the keyword `{}` is {}, which cannot be passed to Python",
                                n.name,
                                a.value.a_kind()
                            ),
                        )
                        .label(a.span, "numbers, strings, bools, none and tuples or lists of them can")
                        );
                    };
                    kwargs.insert(n.name.clone(), j);
                }
            }
        }
        let Some(sa) = spec_arg else {
            return Err(
                Diagnostic::error(codes::ARITY, "`python` is missing the function").label(
                    call_span,
                    "expected python(\"file.py:func\") or python(\"package.module:func\")",
                ),
            );
        };
        if matches!(sa.value, Value::Poison) {
            return Ok(Value::Poison);
        }
        let spec = get_str(&sa)?.to_string();
        let bad = |why: &str| {
            Diagnostic::error(
                codes::PY_BAD_SPEC,
                format!("`{spec}` does not name a Python function: {why}"),
            )
            .label(
                sa.span,
                "expected \"file.py:func\" or \"package.module:func\"",
            )
        };
        let Some((module, func)) = spec.rsplit_once(':') else {
            return Err(bad("there is no `:` before the function's name"));
        };
        let (module, func) = (module.to_string(), func.to_string());
        let (module, func) = (module.as_str(), func.as_str());
        if !is_ident(func) {
            return Err(bad(&format!("`{func}` is not a Python name")));
        }
        let (file, module_name) = if module.ends_with(".py") || module.contains('/') {
            let path = self.resolve(module);
            if !path.is_file() {
                return Err(Diagnostic::error(
                    codes::PY_MODULE_MISSING,
                    format!(
                        "cannot find the module of `{spec}`: {}: no such file",
                        path.display()
                    ),
                )
                .label(sa.span, "no such file")
                .help("a file path is relative to the script's directory"));
            }
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem: String = stem
                .chars()
                .map(|c| if c.is_alphanumeric() { c } else { '_' })
                .collect();
            (Some(path), stem)
        } else {
            if module.is_empty() || !module.split('.').all(is_ident) {
                return Err(bad(&format!(
                    "`{module}` is neither a .py file nor a module name"
                )));
            }
            (None, module.to_string())
        };
        let interpreter = crate::io::python::interpreter(self.python.as_deref());
        let stamp = file.as_deref().map(PyFunc::file_stamp).unwrap_or_default();
        Ok(Value::PyFunc(Arc::new(PyFunc {
            stamp,
            spec,
            file,
            module: module_name,
            func: func.to_string(),
            kwargs: serde_json::Value::Object(kwargs).to_string(),
            timeout,
            interpreter,
        })))
    }

    /// Import the function (and, without a declared dtype, call it once on zeros of
    /// `shape`) at check time: the result's dtype and shape when called.
    fn probe(
        &mut self,
        f: &Arc<PyFunc>,
        dtype: DType,
        shape: &[u64],
        call: bool,
        span: Span,
    ) -> R<Option<(DType, Vec<u64>)>> {
        let key = (f.key(), dtype, shape.to_vec());
        if call {
            if let Some(r) = self.probes.get(&key) {
                return Ok(Some(r.clone()));
            }
        }
        let pool = self.py_probe.get_or_insert_with(Default::default);
        let ahead = pool.missing(&f.interpreter, self.py_prestart);
        pool.prestart(&f.interpreter, ahead);
        let n = crate::geom::saturating_product(shape) as usize;
        let r = pool.with_worker(&f.interpreter, |w| {
            w.load(f)?;
            if !call {
                return Ok(None);
            }
            w.call(f, Buf::zeros(dtype, n), shape).map(Some)
        });
        let context = format!(
            "at check time, on a block of zeros of shape {} ({})",
            fmt_shape(shape),
            dtype.numpy_name()
        );
        match r {
            Ok(Some((b, s))) => {
                let out = (b.dtype(), s);
                self.probes.insert(key, out.clone());
                Ok(Some(out))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                let mut d = py_diag(&e, f, span, &context);
                if matches!(e, PyError::Exception { .. } | PyError::NotArray { .. }) {
                    d = d.help("this call finds the result's dtype; declare it with dtype=\"...\" to skip it");
                }
                Err(d)
            }
        }
    }

    /// `x.map(f)` / `x.overlap(d).map(f)` with a Python function: same-shape blocks.
    pub(super) fn map_python(
        &mut self,
        x: ArrayVal,
        f: Arc<PyFunc>,
        dtype: Option<DType>,
        fspan: Span,
        span: Span,
    ) -> R<Value> {
        let t = self.arr(&x).clone();
        let nd = t.ndim();
        let (halo, boundary) = match &x.overlap {
            Some(o) => (o.depth.clone(), o.boundary),
            None => (vec![0; nd], Boundary::Reflect),
        };
        // Kernels fold a halo deeper than an axis onto the array, as scipy extends the
        // signal as often as needed; a Python function would be handed a block larger
        // than the array itself, so its halo stays within the array's length.
        if let Some((ax, (d, n))) = halo
            .iter()
            .zip(&t.shape)
            .enumerate()
            .find(|(_, (d, n))| d > n)
        {
            return Err(Diagnostic::error(
                codes::BAD_VALUE,
                format!("overlap depth {d} on axis {ax} is larger than the axis ({n})"),
            )
            .label(span, "a Python function is handed this halo")
            .help("a Python function's halo can be at most the array's length on each axis (kernels have no such limit)"));
        }
        let b = PyBlock {
            x: x.node,
            func: f.clone(),
            halo,
            boundary,
            axis_of: (0..nd).map(Some).collect(),
            block: vec![None; nd],
            dropped: vec![],
        };
        let grown = first_block_shape(&b, &t);
        let dtype = match self.probe(&f, t.dtype, &grown, dtype.is_none(), fspan)? {
            Some((d, s)) => {
                if s != grown {
                    return Err(Diagnostic::error(
                        codes::PY_NEEDS_CHUNKS,
                        format!(
                            "`{}` returned shape {} for a block of shape {}, but map keeps the block's shape",
                            f.spec,
                            fmt_shape(&s),
                            fmt_shape(&grown)
                        ),
                    )
                    .label(fspan, "changes the block's shape")
                    .help(format!(
                        "use x.map_blocks(f, chunks={}) for functions whose blocks change shape",
                        py_tuple(&s)
                    )));
                }
                d
            }
            None => dtype.unwrap_or(t.dtype),
        };
        let ty = ArrayType {
            dtype,
            shape: t.shape.clone(),
            chunks: t.chunks.clone(),
        };
        let id = self.node(Op::PyBlock(Box::new(b)), ty, span)?;
        Ok(Value::Array(ArrayVal::new(id)))
    }

    /// `x.map_blocks(f, chunks=, dtype=, drop_axis=, new_axis=)`, as dask's.
    pub(super) fn map_blocks(
        &mut self,
        x: ArrayVal,
        args: Vec<ArgVal>,
        callee_span: Span,
        span: Span,
    ) -> R<Value> {
        const PARAMS: &[&str] = &["f", "chunks", "dtype", "drop_axis", "new_axis"];
        let slots = bind_args("map_blocks", PARAMS, args, callee_span)?;
        if slots
            .iter()
            .flatten()
            .any(|a| matches!(a.value, Value::Poison))
        {
            return Ok(Value::Poison);
        }
        let get = |name: &str| {
            let i = PARAMS.iter().position(|p| *p == name).expect("param");
            slots[i]
                .as_ref()
                .filter(|a| !matches!(a.value, Value::None))
        };
        let Some(fa) = get("f") else {
            return Err(Diagnostic::error(
                codes::ARITY,
                "`map_blocks` is missing the argument `f`",
            )
            .label(span, "`f` is not given"));
        };
        let f = match &fa.value {
            Value::PyFunc(f) => f.clone(),
            _ => return Err(expected("a Python function (python(\"file.py:func\"))", fa)),
        };
        let fspan = fa.span;
        if x.overlap.is_some() {
            return Err(Diagnostic::error(
                codes::PY_NEEDS_CHUNKS,
                "map_blocks does not take an overlap; blocks with a halo keep their shape",
            )
            .label(span, "after overlap(...)")
            .help("use x.overlap(d).map(f)"));
        }
        let t = self.arr(&x).clone();
        let nd = t.ndim() as i64;
        let axes = |a: Option<&ArgVal>, n: i64| -> R<Vec<usize>> {
            let Some(a) = a else { return Ok(vec![]) };
            let mut v = Vec::new();
            for i in get_ints(a)? {
                let j = if i < 0 { i + n } else { i };
                if !(0..n).contains(&j) {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("axis {i} is out of range for {n} axes"),
                    )
                    .label(a.span, format!("axes are -{n}..{}", n - 1)));
                }
                if v.contains(&(j as usize)) {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("axis {i} is given twice"),
                    )
                    .label(a.span, "repeated"));
                }
                v.push(j as usize);
            }
            v.sort_unstable();
            Ok(v)
        };
        let dropped = axes(get("drop_axis"), nd)?;
        for a in &dropped {
            if t.chunks[*a] < t.shape[*a] {
                return Err(Diagnostic::error(
                    codes::PY_NEEDS_CHUNKS,
                    format!(
                        "drop_axis {a} has {} chunks; a dropped axis must be one chunk",
                        t.shape[*a].div_ceil(t.chunks[*a].max(1))
                    ),
                )
                .label(
                    get("drop_axis").map_or(span, |a| a.span),
                    "spread over several chunks",
                )
                .help("rechunk it whole first, e.g. x.rechunk(...) with -1 on that axis"));
            }
        }
        let m = nd - dropped.len() as i64
            + get("new_axis").map_or(Ok(0), |a| get_ints(a).map(|v| v.len() as i64))?;
        let new = axes(get("new_axis"), m)?;
        let mut kept = (0..t.ndim()).filter(|a| !dropped.contains(a));
        let axis_of: Vec<Option<usize>> = (0..m as usize)
            .map(|o| if new.contains(&o) { None } else { kept.next() })
            .collect();
        let chunks: Option<Vec<u64>> = match get("chunks") {
            None => None,
            Some(c) => {
                let v = get_ints(c)?;
                if v.len() as i64 != m {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("chunks has {} entries but the result has {m} axes", v.len()),
                    )
                    .label(c.span, "one block length per axis of the result"));
                }
                if let Some(n) = v.iter().find(|n| **n < 1) {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("block length {n} in chunks is not positive"),
                    )
                    .label(c.span, "every block has at least one element per axis"));
                }
                Some(v.into_iter().map(|n| n as u64).collect())
            }
        };
        let block: Vec<Option<u64>> = axis_of
            .iter()
            .enumerate()
            .map(|(o, a)| match (chunks.as_ref().map(|c| c[o]), a) {
                // The input's own chunk length: ragged edge blocks stay ragged.
                (Some(c), Some(a)) if c == t.chunks[*a] => None,
                (Some(c), _) => Some(c),
                (None, Some(_)) => None,
                (None, None) => Some(1),
            })
            .collect();
        let dtype = get("dtype").map(get_dtype).transpose()?;
        let b = PyBlock {
            x: x.node,
            func: f.clone(),
            halo: vec![0; t.ndim()],
            boundary: Boundary::Reflect,
            axis_of,
            block,
            dropped,
        };
        let grown = first_block_shape(&b, &t);
        let want = b.expected_shape(&grown);
        let dtype = match self.probe(&f, t.dtype, &grown, dtype.is_none(), fspan)? {
            Some((d, s)) => {
                if s != want {
                    let d = if chunks.is_none() {
                        Diagnostic::error(
                            codes::PY_NEEDS_CHUNKS,
                            format!(
                                "`{}` returned shape {} for a block of shape {}; map_blocks needs chunks= when blocks change shape",
                                f.spec,
                                fmt_shape(&s),
                                fmt_shape(&grown)
                            ),
                        )
                        .label(fspan, "changes the block's shape")
                        .help(format!("describe each result block: map_blocks(f, chunks={})", py_tuple(&s)))
                    } else {
                        Diagnostic::error(
                            codes::PY_SHAPE,
                            format!(
                                "`{}` returned shape {} for a block of shape {}, but chunks= says {}",
                                f.spec,
                                fmt_shape(&s),
                                fmt_shape(&grown),
                                fmt_shape(&want)
                            ),
                        )
                        .label(fspan, "the check-time call on a block of zeros")
                    };
                    return Err(d);
                }
                d
            }
            None => dtype.unwrap_or(t.dtype),
        };
        let mut shape = Vec::with_capacity(b.axis_of.len());
        let mut out_chunks = Vec::with_capacity(b.axis_of.len());
        for (a, n) in b.axis_of.iter().zip(&b.block) {
            match (a, n) {
                (Some(a), None) => {
                    shape.push(t.shape[*a]);
                    out_chunks.push(t.chunks[*a]);
                }
                (Some(a), Some(n)) => {
                    let blocks = t.shape[*a].div_ceil(t.chunks[*a].max(1));
                    shape.push(blocks.saturating_mul(*n));
                    out_chunks.push(*n);
                }
                (None, n) => {
                    let n = n.unwrap_or(1);
                    shape.push(n);
                    out_chunks.push(n);
                }
            }
        }
        let ty = ArrayType {
            dtype,
            shape,
            chunks: out_chunks,
        };
        let id = self.node(Op::PyBlock(Box::new(b)), ty, span)?;
        Ok(Value::Array(ArrayVal::new(id)))
    }
}

/// The shape of the block the function gets first (block 0 with its halo).
fn first_block_shape(b: &PyBlock, t: &ArrayType) -> Vec<u64> {
    let first = vec![0; b.axis_of.len()];
    let ib = b.input_block(t, &first);
    if b.boundary == Boundary::None {
        ib.grow_clamped(&b.halo, &t.shape).shape()
    } else {
        ib.shape()
            .iter()
            .zip(&b.halo)
            .map(|(n, h)| n + 2 * h)
            .collect()
    }
}

fn py_tuple(s: &[u64]) -> String {
    match s {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}
