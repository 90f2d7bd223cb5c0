//! Builtin functions, array methods and properties: the standard registry entries
//! (`standard`), argument binding, validation with precise diagnostics, and the IR nodes
//! or sinks they create.

use super::kernels;
use super::ops::scalar_buf;
use super::registry::{
    Binding, Builtin, Category, FunctionFn, KernelFn, Lowering, MethodFn, Returns, PROPERTIES,
};
use super::shape_ops::pack_positional;
use super::{ArrayVal, Evaluator, OverlapSpec, Value, R};
use crate::check;
use crate::data::Buf;
use crate::diag::{closest, codes, Diagnostic, Span};
use crate::dtype::DType;
use crate::geom::{fmt_shape, Region, Shape};
use crate::io::images::ImageFormat;
use crate::io::{ArrayId, IoError, ZarrReader, ZarrWriter};
use crate::ir::{
    ArrayType, BinaryOp, Boundary, KernelKind, Op, PrintPiece, Sink, SinkKind, UnaryOp, WriteSpec,
};
use crate::syntax::ast::Ident;
use std::rc::Rc;
use std::sync::Arc;

/// An evaluated call argument.
#[derive(Clone, Debug)]
pub struct ArgVal {
    pub name: Option<Ident>,
    pub value: Value,
    pub span: Span,
}

/// Codecs a new output can use.
pub const CODECS: &[&str] = &["zstd", "blosc", "gzip", "none"];

/// Largest array `values()` will materialise.
pub const VALUES_LIMIT: u64 = 1_000_000;

/// The standard builtins, in the order `:help` and `docs/BUILTINS.md` list them. Adding a
/// builtin is adding one entry here (and, for a new kind of stencil, its `KernelKind`).
pub fn standard() -> Vec<Builtin> {
    use Category::{Function as F, Kernel as K, Method as M};
    use Returns::{Array as A, Kernel as Kn, Nothing as N, Value as V};
    let f = |name: &str, params: &[&str], ret, sig: &str, doc: &str, l: FunctionFn| {
        Builtin::new(name, F, params, ret, doc, Lowering::Function(l)).with_signature(sig)
    };
    let k = |name: &str, params: &[&str], sig: &str, doc: &str, l: KernelFn| {
        Builtin::new(name, K, params, Kn, doc, Lowering::Kernel(l)).with_signature(sig)
    };
    let m = |name: &str, params: &[&str], ret, sig: &str, doc: &str, l: MethodFn| {
        Builtin::new(name, M, params, ret, doc, Lowering::Method(l)).with_signature(sig)
    };
    vec![
        f("zarr", &["path: str", "level: int = 0"], A, "zarr(path, level=0)", "Open a Zarr v2 or v3 array (also `group.zarr/name`); lazy. An OME-Zarr image group (NGFF 0.4 or 0.5) opens its level `level` (0 is full resolution), with its axes, scale and translation (`x.axes`, `x.scale`).", |ev, a| ev.open_zarr_or_image(a.required("path")?, a.get("level"))),
        f("tiff", &["path: str", "squeeze: bool = true"], A, "tiff(path, squeeze=true)", "A lazy stack of TIFF images, one chunk per plane: a glob of files (sorted naturally, every header checked) gives (files, h, w), one multi-page file (pages, h, w), an OME-TIFF its (t, c, z) axes in DimensionOrder with length-1 axes dropped (kept with squeeze=false); RGB samples are a last axis.", |ev, a| ev.open_images(ImageFormat::Tiff, a)),
        f("png", &["path: str"], A, "png(path)", "A lazy stack of PNG files, one chunk per file: a glob (sorted naturally, every header checked) gives (files, h, w), or (files, h, w, samples) for gray+alpha, RGB and RGBA; 8-bit samples are u8, 16-bit u16.", |ev, a| ev.open_images(ImageFormat::Png, a)),
        f("zeros", &["shape: ints", "dtype: dtype = \"f32\"", "chunks: ints = auto"], A, "zeros(shape, dtype=\"f32\", chunks=auto)", "An array of zeros.", |ev, a| filled(ev, a, 0)),
        f("ones", &["shape: ints", "dtype: dtype = \"f32\"", "chunks: ints = auto"], A, "ones(shape, dtype=\"f32\", chunks=auto)", "An array of ones.", |ev, a| filled(ev, a, 1)),
        f("full", &["shape: ints", "value", "dtype: dtype", "chunks: ints = auto"], A, "full(shape, value, dtype=from value, chunks=auto)", "An array holding one value everywhere.", full),
        f("arange", &["start", "stop", "step", "dtype: dtype", "chunks: ints = auto"], A, "arange([start,] stop[, step], dtype=, chunks=auto)", "Evenly spaced values, as numpy.arange (int64 for ints, float64 for floats).", |ev, a| ev.arange(a, a.call_span)),
        f("random", &["shape: ints", "dtype: dtype = \"f32\"", "chunks: ints = auto", "seed: int = 0"], A, "random(shape, dtype=\"f32\", chunks=auto, seed=0)", "Uniform noise in [0, 1) (floats) or over the dtype's range (ints); a pure function of seed and element index, so independent of chunking.", random),
        f("abs", &["x"], A, "abs(x)", "Absolute value (magnitude for complex).", |ev, a| unary(ev, a, UnaryOp::Abs)),
        f("sqrt", &["x"], A, "sqrt(x)", "Square root; integers compute in float.", |ev, a| unary(ev, a, UnaryOp::Sqrt)),
        f("exp", &["x"], A, "exp(x)", "Exponential; integers compute in float.", |ev, a| unary(ev, a, UnaryOp::Exp)),
        f("log", &["x"], A, "log(x)", "Natural logarithm; integers compute in float.", |ev, a| unary(ev, a, UnaryOp::Log)),
        f("real", &["x"], A, "real(x)", "Real part.", |ev, a| unary(ev, a, UnaryOp::Real)),
        f("imag", &["x"], A, "imag(x)", "Imaginary part.", |ev, a| unary(ev, a, UnaryOp::Imag)),
        f("angle", &["x"], A, "angle(x)", "Complex argument in radians.", |ev, a| unary(ev, a, UnaryOp::Angle)),
        f("stack", &["arrays", "axis: int = 0"], A, "stack(arrays, axis=0)", "Join arrays of one shape along a new axis (numpy.stack).", |ev, a| ev.join(true, a, a.call_span)),
        f("concat", &["arrays", "axis: int = 0"], A, "concat(arrays, axis=0)", "Join arrays along an existing axis (numpy.concatenate).", |ev, a| ev.join(false, a, a.call_span)),
        f("fft", &["x: array", "axis: int = -1"], A, "fft(x, axis=-1)", "Discrete Fourier transform along one axis (numpy.fft.fft); single precision for f32 input.", |ev, a| ev.fft("fft", a, a.call_span)),
        f("ifft", &["x: array", "axis: int = -1"], A, "ifft(x, axis=-1)", "Inverse transform, scaled by 1/n (numpy.fft.ifft).", |ev, a| ev.fft("ifft", a, a.call_span)),
        f("rfft", &["x: array", "axis: int = -1"], A, "rfft(x, axis=-1)", "Transform of real input, n//2 + 1 outputs (numpy.fft.rfft).", |ev, a| ev.fft("rfft", a, a.call_span)),
        f("label", &["mask: array", "connectivity: int = 1"], A, "label(mask, connectivity=1)", "Connected components of a bool or integer mask, numbered 1..n as scipy.ndimage.label (int32); connectivity 1 joins faces, ndim also edges and corners.", |ev, a| ev.label(a, a.call_span)),
        f("regionprops", &["labels: array", "intensity: array = none"], V, "regionprops(labels, intensity=none)", "A table of per-label measurements (label, area, bbox, centroid; mean/min/max intensity with an image), as skimage.measure.regionprops_table; print it, `.write_csv(path)`, or `.write_table(path)` (an AnnData table, as fractal keeps in `img.ome.zarr/tables/NAME`).", |ev, a| ev.regionprops(a, a.call_span)),
        f("clip", &["x: array", "min", "max"], A, "clip(x, min, max)", "Limit values to [min, max] (NaN propagates), as numpy.clip.", |ev, a| {
            let x = a.required("x")?.clone();
            ev.clip(x, a.get("min").cloned(), a.get("max").cloned(), a.call_span)
        }),
        f("where", &["cond: array", "a", "b"], A, "where(cond, a, b)", "Elementwise choice: a where cond is true, else b.", |ev, a| ev.where_(a, a.call_span)),
        f("maximum_of", &["a", "b"], A, "maximum_of(a, b)", "Elementwise maximum (numpy.maximum; NaN propagates).", |ev, a| extremum(ev, a, BinaryOp::Max)),
        f("minimum_of", &["a", "b"], A, "minimum_of(a, b)", "Elementwise minimum (numpy.minimum; NaN propagates).", |ev, a| extremum(ev, a, BinaryOp::Min)),
        f("python", &["spec: str", "timeout: float = none"], V, "python(\"file.py:func\" | \"pkg.module:func\", timeout=none, **kwargs)", "A Python function of one NumPy block, for `map` and `map_blocks`; keyword arguments are passed to it, `timeout` (seconds) bounds each call.", |ev, a| ev.python_func(a.rest.clone(), a.call_span)).with_binding(Binding::Custom),
        f("print", &[], N, "print(values...)", "Print values when the script runs; arrays print a summary, `x.values()` prints elements.", |ev, a| ev.print(a.rest.clone())).with_binding(Binding::Variadic),
        f("len", &["x"], V, "len(x)", "Length of a tuple, list or string, or of an array's first axis.", len),
        f("range", &["start: int", "stop: int", "step: int = 1"], V, "range([start,] stop[, step])", "A list of integers, as Python's range.", range),
        f("arg", &["name: str", "default"], V, "arg(name, default)", "A script parameter given as `tessera run job.tsr --arg name=value`, typed from the default (int, float, bool or str); without a default the value must be given.", |ev, a| ev.script_arg(a)),
        f("rois", &["path: str"], V, "rois(path)", "Regions of interest from a JSON or CSV file, or a fractal ROI table of an OME-Zarr image (`img.ome.zarr/tables/NAME`, AnnData, micrometre columns converted to pixels with the image's scale), as a list of regions.", rois),
        k("gaussian", &["sigma: numbers", "truncate: float = 4.0", "unit: str = pixels"], "gaussian(sigma, truncate=4.0, unit=pixels)", "Gaussian filter kernel (scipy.ndimage.gaussian_filter); sigma per axis or for all, 0 leaves an axis alone. With `unit=\"micrometer\"` (any length unit) sigma is physical, converted to pixels per axis from the array's OME-Zarr scale.", |a| kernels::make_kernel(KernelKind::Gaussian, a)),
        k("uniform", &["size: numbers", "unit: str = pixels"], "uniform(size, unit=pixels)", "Box mean kernel (scipy.ndimage.uniform_filter).", |a| kernels::make_kernel(KernelKind::Uniform, a)),
        k("median", &["size: numbers", "unit: str = pixels"], "median(size, unit=pixels)", "Median kernel over a box (scipy.ndimage.median_filter).", |a| kernels::make_kernel(KernelKind::Median, a)),
        k("minimum", &["size: numbers", "unit: str = pixels"], "minimum(size, unit=pixels)", "Minimum over a box (scipy.ndimage.minimum_filter).", |a| kernels::make_kernel(KernelKind::Minimum, a)),
        k("maximum", &["size: numbers", "unit: str = pixels"], "maximum(size, unit=pixels)", "Maximum over a box (scipy.ndimage.maximum_filter).", |a| kernels::make_kernel(KernelKind::Maximum, a)),
        k("sobel", &["axis: int = -1"], "sobel(axis=-1)", "Sobel derivative along an axis (scipy.ndimage.sobel).", |a| kernels::make_kernel(KernelKind::Sobel, a)),
        k("laplace", &[], "laplace()", "Discrete Laplacian (scipy.ndimage.laplace).", |a| kernels::make_kernel(KernelKind::Laplace, a)),
        k("gaussian_gradient_magnitude", &["sigma: numbers", "truncate: float = 4.0", "unit: str = pixels"], "gaussian_gradient_magnitude(sigma, truncate=4.0, unit=pixels)", "Gradient magnitude with Gaussian derivatives (scipy.ndimage.gaussian_gradient_magnitude).", |a| kernels::make_kernel(KernelKind::GaussianGradientMagnitude, a)),
        m("map", &["f: callable", "dtype: dtype = found"], A, "x.map(f, dtype=found)", "Apply a kernel or a function of one block to every chunk; with `overlap`, blocks carry their halo (dask map_overlap). A Python function's result dtype is declared or found by one check-time call.", |ev, x, a| ev.map_method(x, a)),
        m("map_blocks", &["f: callable", "chunks: ints = same", "dtype: dtype = found", "drop_axis: ints = none", "new_axis: ints = none"], A, "x.map_blocks(f, chunks=same, dtype=found, drop_axis=none, new_axis=none)", "Apply a Python function to every block, as dask's map_blocks: `chunks` is the shape of each result block.", |ev, x, a| ev.map_blocks(x, a.rest.clone(), a.callee_span, a.call_span)).with_binding(Binding::Custom),
        m("overlap", &["depth: ints", "boundary: str = \"reflect\"", "cval: float = 0.0"], A, "x.overlap(depth, boundary=\"reflect\", cval=0.0)", "Ask the next `map` for a halo of `depth` (int or one per axis) with a scipy.ndimage boundary mode.", |ev, x, a| ev.overlap_method(x, a)),
        m("astype", &["dtype: dtype"], A, "x.astype(dtype)", "Convert elements to another dtype (NumPy casting).", |ev, x, a| {
            let d = get_dtype(a.required("dtype")?)?;
            let id = ev.cast_node(x.node, d, a.call_span)?;
            Ok(Value::Array(ArrayVal::new(id)))
        }),
        m("write", &["path: str", "region", "regions", "like: array", "chunks: ints", "codec: str", "level: int", "overwrite: bool", "fill"], N, "x.write(path, region=, regions=, like=, chunks=, codec=\"zstd\", level=3, overwrite=false, fill=0)", "Write to a Zarr v3 array; the program's sink.", |ev, x, a| ev.write(x, a, a.call_span)),
        m("values", &[], A, "x.values()", "Materialise a small array for printing.", values),
        m("sum", &["axis: ints = none", "keepdims: bool = false"], A, "x.sum(axis=none, keepdims=false)", "Sum over axes (int, tuple or none for all); integers sum in 64 bits as NumPy.", |ev, x, a| ev.reduce_method(x, "sum", a, a.call_span)),
        m("mean", &["axis: ints = none", "keepdims: bool = false"], A, "x.mean(axis=none, keepdims=false)", "Arithmetic mean over axes (f64 for integers).", |ev, x, a| ev.reduce_method(x, "mean", a, a.call_span)),
        m("min", &["axis: ints = none", "keepdims: bool = false"], A, "x.min(axis=none, keepdims=false)", "Minimum over axes (NaN propagates).", |ev, x, a| ev.reduce_method(x, "min", a, a.call_span)),
        m("max", &["axis: ints = none", "keepdims: bool = false"], A, "x.max(axis=none, keepdims=false)", "Maximum over axes (NaN propagates).", |ev, x, a| ev.reduce_method(x, "max", a, a.call_span)),
        m("std", &["axis: ints = none", "keepdims: bool = false", "ddof: int = 0"], A, "x.std(axis=none, keepdims=false, ddof=0)", "Standard deviation over axes.", |ev, x, a| ev.reduce_method(x, "std", a, a.call_span)),
        m("var", &["axis: ints = none", "keepdims: bool = false", "ddof: int = 0"], A, "x.var(axis=none, keepdims=false, ddof=0)", "Variance over axes.", |ev, x, a| ev.reduce_method(x, "var", a, a.call_span)),
        m("argmin", &["axis: int = none", "keepdims: bool = false"], A, "x.argmin(axis=none, keepdims=false)", "Index of the first minimum (flat index when axis is none).", |ev, x, a| ev.reduce_method(x, "argmin", a, a.call_span)),
        m("argmax", &["axis: int = none", "keepdims: bool = false"], A, "x.argmax(axis=none, keepdims=false)", "Index of the first maximum (flat index when axis is none).", |ev, x, a| ev.reduce_method(x, "argmax", a, a.call_span)),
        m("transpose", &["axes: ints"], A, "x.transpose(*axes)", "Permute axes (reversed when none are given), as numpy.transpose.", |ev, x, a| ev.transpose(x, a, a.call_span)).with_binding(Binding::PackPositional),
        m("reshape", &["shape: ints"], A, "x.reshape(*shape)", "The same elements in C order with another shape (one -1 is inferred).", |ev, x, a| ev.reshape(x, a, a.call_span)).with_binding(Binding::PackPositional),
        m("rechunk", &["chunks: ints"], A, "x.rechunk(chunks)", "The same array with other chunks (an int or one per axis; -1 is the whole axis).", |ev, x, a| ev.rechunk(x, a, a.call_span)),
        m("coarsen", &["factors: ints", "reduce: str = \"mean\"", "trim: bool = false"], A, "x.coarsen(factors, reduce=\"mean\", trim=false)", "Block downsample by an int or one factor per axis, as skimage.measure.block_reduce: reduce is mean, sum, min, max, median, mode (labels) or nearest (the block's first element); partial edge blocks are padded with zeros, or dropped with trim=true.", |ev, x, a| ev.coarsen(x, a, a.call_span)),
        m("write_ome", &["path: str", "levels: int = 5", "method: str = \"mean\"", "axes: str = from image", "scale: numbers = from image", "units = from image", "chunks: ints = same", "version: str = \"0.5\"", "label: str = none", "overwrite: bool = false"], N, "x.write_ome(path, levels=5, method=\"mean\", axes=, scale=, units=, chunks=, version=\"0.5\", label=none, overwrite=false)", "Write an OME-Zarr (NGFF 0.5) image: a pyramid of `levels` levels, each the level above coarsened by 2 along the space axes with `method` (kept in the image's dtype), and the multiscales metadata once every level is complete. With `label=\"name\"`, a label image of the image at `path` (`labels/name`, mode or nearest).", |ev, x, a| ev.write_ome(x, a, a.call_span)),
        m("clip", &["min", "max"], A, "x.clip(min, max)", "Limit values to [min, max].", |ev, x, a| {
            let xa = ArgVal { name: None, value: Value::Array(x), span: a.callee_span };
            ev.clip(xa, a.get("min").cloned(), a.get("max").cloned(), a.call_span)
        }),
        m("abs", &[], A, "x.abs()", "Absolute value.", |ev, x, a| ev.arr_unary(UnaryOp::Abs, x, a.call_span)),
        m("preview", &["path: str", "overwrite: bool = false"], N, "x.preview(path, overwrite=false)", "Render a 2-D array (or a slice) as a PNG: auto-contrast, or a colour map for label images. An existing file is replaced only with overwrite=true.", preview),
    ]
}

fn filled(ev: &mut Evaluator, a: &Args, v: i64) -> R<Value> {
    let shape = get_shape(a.required("shape")?)?;
    let dtype = match a.get("dtype") {
        Some(d) => get_dtype(d)?,
        None => DType::F32,
    };
    ev.fill_array(shape, &Value::Int(v), dtype, a.get("chunks"), a.call_span)
}

fn full(ev: &mut Evaluator, a: &Args) -> R<Value> {
    let shape = get_shape(a.required("shape")?)?;
    let v = a.required("value")?;
    let dtype = match a.get("dtype") {
        Some(d) => get_dtype(d)?,
        None => match v.value {
            Value::Bool(_) => DType::Bool,
            Value::Int(_) => DType::I64,
            Value::Float(_) => DType::F64,
            _ => return Err(expected("a number", v)),
        },
    };
    let chunks = ev.chunks_arg(&shape, dtype, a.get("chunks"))?;
    let id = ev.const_node(&v.value, dtype, &shape, &chunks, v.span)?;
    Ok(Value::Array(ArrayVal::new(id)))
}

fn random(ev: &mut Evaluator, a: &Args) -> R<Value> {
    let shape = get_shape(a.required("shape")?)?;
    let dtype = match a.get("dtype") {
        Some(d) => get_dtype(d)?,
        None => DType::F32,
    };
    if dtype.is_complex() {
        return Err(Diagnostic::error(
            codes::UNSUPPORTED_DTYPE,
            "random does not make complex arrays",
        )
        .label(
            a.get("dtype").map(|d| d.span).unwrap_or(a.call_span),
            "here",
        ));
    }
    let seed = match a.get("seed") {
        Some(s) => get_int(s)? as u64,
        None => 0,
    };
    let chunks = ev.chunks_arg(&shape, dtype, a.get("chunks"))?;
    let id = ev.node(
        Op::Random { seed },
        ArrayType {
            dtype,
            shape,
            chunks,
        },
        a.call_span,
    )?;
    Ok(Value::Array(ArrayVal::new(id)))
}

/// `abs sqrt exp log real imag angle` of an array, or of a number (computed now).
fn unary(ev: &mut Evaluator, a: &Args, op: UnaryOp) -> R<Value> {
    let x = a.required("x")?;
    match &x.value {
        Value::Array(arr) => ev.arr_unary(op, arr.clone(), a.call_span),
        Value::Int(_) | Value::Float(_) => {
            let f = match x.value {
                Value::Int(i) => i as f64,
                Value::Float(f) => f,
                _ => unreachable!(),
            };
            Ok(match op {
                UnaryOp::Abs => match x.value {
                    Value::Int(i) => Value::Int(i.wrapping_abs()),
                    _ => Value::Float(f.abs()),
                },
                UnaryOp::Sqrt => Value::Float(f.sqrt()),
                UnaryOp::Exp => Value::Float(f.exp()),
                UnaryOp::Log => Value::Float(f.ln()),
                UnaryOp::Real => x.value.clone(),
                UnaryOp::Imag => Value::Float(0.0),
                _ => Value::Float(0f64.atan2(f)),
            })
        }
        _ => Err(expected("an array or a number", x)),
    }
}

fn extremum(ev: &mut Evaluator, a: &Args, op: BinaryOp) -> R<Value> {
    let x = a.required("a")?.clone();
    let y = a.required("b")?.clone();
    ev.elementwise2(op, x, y, a.call_span)
}

fn len(ev: &mut Evaluator, a: &Args) -> R<Value> {
    let x = a.required("x")?;
    match &x.value {
        Value::Tuple(t) | Value::List(t) => Ok(Value::Int(t.len() as i64)),
        Value::Str(s) => Ok(Value::Int(s.chars().count() as i64)),
        Value::Array(arr) => {
            let t = ev.arr(arr);
            match t.shape.first() {
                Some(n) => Ok(Value::Int(*n as i64)),
                None => Err(
                    Diagnostic::error(codes::TYPE_MISMATCH, "len() of a 0-d array")
                        .label(x.span, "has no axes"),
                ),
            }
        }
        _ => Err(expected("a tuple, list, string or array", x)),
    }
}

fn range(_: &mut Evaluator, a: &Args) -> R<Value> {
    let first = get_int(a.required("start")?)?;
    let (start, stop) = match a.get("stop") {
        Some(s) => (first, get_int(s)?),
        None => (0, first),
    };
    let step = match a.get("step") {
        Some(s) => get_int(s)?,
        None => 1,
    };
    if step == 0 {
        return Err(
            Diagnostic::error(codes::BAD_VALUE, "range step cannot be zero").label(
                a.get("step").map(|s| s.span).unwrap_or(a.call_span),
                "step is 0",
            ),
        );
    }
    let mut v = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        v.push(Value::Int(i));
        if v.len() > 10_000_000 {
            return Err(Diagnostic::error(codes::TOO_LARGE, "range is too long")
                .label(a.call_span, "more than 10 million items"));
        }
        i += step;
    }
    Ok(Value::List(v.into()))
}

fn rois(ev: &mut Evaluator, a: &Args) -> R<Value> {
    let p = a.required("path")?;
    let path = get_str(p)?.to_string();
    let resolved = ev.resolve(&path);
    if !resolved.exists() {
        return Err(Diagnostic::error(
            codes::PATH_NOT_FOUND,
            format!("{}: no such file", crate::diag::escape(&path)),
        )
        .label(p.span, "no such file"));
    }
    if resolved.is_dir() && crate::io::anndata::is_anndata(&resolved) {
        return roi_table(ev, &path, &resolved, p.span);
    }
    let list = super::rois::load(&resolved).map_err(|e| {
        let msg = format!("{path}: {e}");
        Diagnostic::error(codes::BAD_ROIS, crate::diag::escape(&msg))
            .label(p.span, "cannot read regions from this file")
            .note("regions files are JSON ([{\"offset\": [..], \"shape\": [..]}, ...] or [[[start, stop], ...], ...]) or CSV")
    })?;
    Ok(Value::List(list.into()))
}

fn values(ev: &mut Evaluator, x: ArrayVal, a: &Args) -> R<Value> {
    let t = ev.arr(&x).clone();
    if t.size() > VALUES_LIMIT {
        return Err(Diagnostic::error(
            codes::TOO_LARGE,
            format!(
                "values() of {} elements is above the limit of {VALUES_LIMIT}",
                t.size()
            ),
        )
        .label(a.call_span, format!("shape is {}", fmt_shape(&t.shape)))
        .help("slice a small part first, e.g. `x[0:10, 0:10].values()`"));
    }
    Ok(Value::Array(ArrayVal {
        materialize: true,
        ..x
    }))
}

fn preview(ev: &mut Evaluator, x: ArrayVal, a: &Args) -> R<Value> {
    let t = ev.arr(&x).clone();
    let call_span = a.call_span;
    let p = a.required("path")?;
    let path = get_str(p)?.to_string();
    let overwrite = match a.get("overwrite") {
        Some(o) => get_bool(o)?,
        None => false,
    };
    ev.check_file_output(&path, p.span, overwrite)?;
    let (h, w) = crate::io::preview::image_shape(&t.shape).map_err(|r| {
        Diagnostic::error(
            if r.too_large {
                codes::TOO_LARGE
            } else {
                codes::SHAPE_MISMATCH
            },
            r.message.clone(),
        )
        .label(call_span, format!("shape is {}", fmt_shape(&t.shape)))
        .help(r.help.clone())
    })?;
    let resolved = ev.resolve(&path);
    ev.program.sinks.push(Sink {
        kind: SinkKind::Preview {
            path: path.clone(),
            resolved,
        },
        node: x.node,
        span: call_span,
    });
    ev.program.effects.push(crate::ir::Effect {
        pieces: vec![PrintPiece::Text(format!("{path} ({h} x {w})"))],
    });
    Ok(Value::None)
}

/// Match positional and keyword arguments to parameter slots.
pub fn bind_args(
    fname: &str,
    params: &[&str],
    args: Vec<ArgVal>,
    callee_span: Span,
) -> R<Vec<Option<ArgVal>>> {
    let mut slots: Vec<Option<ArgVal>> = vec![None; params.len()];
    let mut pos = 0;
    for a in args {
        match &a.name {
            None => {
                if pos >= params.len() {
                    return Err(Diagnostic::error(
                        codes::ARITY,
                        format!(
                            "`{fname}` takes at most {} argument{}",
                            params.len(),
                            if params.len() == 1 { "" } else { "s" }
                        ),
                    )
                    .label(a.span, "this argument is one too many")
                    .label(callee_span, format!("`{fname}({})`", params.join(", "))));
                }
                slots[pos] = Some(a);
                pos += 1;
            }
            Some(id) => {
                let Some(i) = params.iter().position(|p| *p == id.name) else {
                    let mut d = Diagnostic::error(
                        codes::UNKNOWN_KEYWORD,
                        format!("`{fname}` has no parameter `{}`", id.name),
                    )
                    .label(id.span, "unknown keyword");
                    if let Some(c) = closest(&id.name, params.iter().copied()) {
                        d = d.help(format!("did you mean `{c}`?"));
                    } else if !params.is_empty() {
                        d = d.note(format!("`{fname}` takes: {}", params.join(", ")));
                    }
                    return Err(d);
                };
                if slots[i].is_some() {
                    return Err(Diagnostic::error(
                        codes::ARITY,
                        format!("`{fname}` got the argument `{}` twice", id.name),
                    )
                    .label(id.span, "given again here"));
                }
                slots[i] = Some(a);
            }
        }
    }
    Ok(slots)
}

/// Bound arguments with typed accessors.
pub struct Args<'a> {
    /// The builtin's name, for messages.
    pub fname: &'a str,
    pub params: Vec<&'a str>,
    /// One slot per parameter, in order.
    pub slots: Vec<Option<ArgVal>>,
    /// The arguments of a variadic builtin (`Binding::Variadic`).
    pub rest: Vec<ArgVal>,
    /// The callee (`gaussian`, `x.map`) and the whole call.
    pub callee_span: Span,
    pub call_span: Span,
}

impl Args<'_> {
    /// The argument given for `name` (`none` counts as not given).
    pub fn get(&self, name: &str) -> Option<&ArgVal> {
        let i = self.params.iter().position(|p| *p == name)?;
        self.slots[i]
            .as_ref()
            .filter(|a| !matches!(a.value, Value::None))
    }

    /// The argument given for `name`, or E0104 at the call.
    pub fn required(&self, name: &str) -> R<&ArgVal> {
        self.get(name).ok_or_else(|| {
            Diagnostic::error(
                codes::ARITY,
                format!("`{}` is missing the argument `{name}`", self.fname),
            )
            .label(self.call_span, format!("`{name}` is not given"))
        })
    }

    pub(super) fn poisoned(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|a| matches!(a.value, Value::Poison))
    }
}

pub(super) fn expected(what: &str, a: &ArgVal) -> Diagnostic {
    Diagnostic::error(
        codes::TYPE_MISMATCH,
        format!("expected {what}, found {}", a.value.a_kind()),
    )
    .label(a.span, format!("expected {what}"))
}

pub(super) fn get_str(a: &ArgVal) -> R<Rc<str>> {
    match &a.value {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(expected("a string", a)),
    }
}

pub(super) fn get_int(a: &ArgVal) -> R<i64> {
    match &a.value {
        Value::Int(i) => Ok(*i),
        _ => Err(expected("an int", a)),
    }
}

pub(super) fn get_bool(a: &ArgVal) -> R<bool> {
    match &a.value {
        Value::Bool(b) => Ok(*b),
        _ => Err(expected("true or false", a)),
    }
}

pub(super) fn get_float(a: &ArgVal) -> R<f64> {
    match &a.value {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        _ => Err(expected("a number", a)),
    }
}

/// An int or a tuple/list of ints.
pub(super) fn get_ints(a: &ArgVal) -> R<Vec<i64>> {
    match &a.value {
        Value::Int(i) => Ok(vec![*i]),
        Value::Tuple(t) | Value::List(t) => t
            .iter()
            .map(|v| match v {
                Value::Int(i) => Ok(*i),
                _ => Err(expected("a tuple of ints", a)),
            })
            .collect(),
        _ => Err(expected("an int or a tuple of ints", a)),
    }
}

pub(super) fn get_shape(a: &ArgVal) -> R<Shape> {
    let v = get_ints(a)?;
    if let Some(n) = v.iter().find(|n| **n < 0) {
        return Err(Diagnostic::error(
            codes::BAD_VALUE,
            format!("negative dimension {n} in a shape"),
        )
        .label(a.span, "dimensions must be zero or more"));
    }
    Ok(v.into_iter().map(|n| n as u64).collect())
}

pub fn get_dtype(a: &ArgVal) -> R<DType> {
    let s = get_str(a)?;
    DType::parse(&s).ok_or_else(|| {
        let names: Vec<&str> = crate::dtype::ALL.iter().map(|d| d.name()).collect();
        let known_elsewhere = [
            "f16", "float16", "half", "str", "string", "object", "U", "S",
        ];
        if known_elsewhere.contains(&&*s) {
            return Diagnostic::error(
                codes::UNSUPPORTED_DTYPE,
                format!("dtype {s:?} is not supported by Tessera"),
            )
            .label(a.span, "unsupported dtype")
            .note(format!("dtypes: {}", names.join(" ")))
            .help("use \"f32\" for half-precision data");
        }
        let mut d = Diagnostic::error(codes::UNSUPPORTED_DTYPE, format!("unknown dtype {s:?}"))
            .label(a.span, "not a dtype")
            .note(format!("dtypes: {}", names.join(" ")));
        if let Some(c) = closest(&s, names.iter().copied()) {
            d = d.help(format!("did you mean \"{c}\"?"));
        }
        d
    })
}

/// Map a storage error at check time to a diagnostic at `span`.
pub fn io_diag(e: &IoError, span: Span) -> Diagnostic {
    io_diag_shown(e, span, None)
}

/// Like `io_diag`, naming the path as the script wrote it (`shown`) instead of where it
/// resolved to.
pub fn io_diag_shown(
    e: &IoError,
    span: Span,
    shown: Option<(&str, &std::path::Path)>,
) -> Diagnostic {
    let (code, label) = match e {
        IoError::NotFound { .. } => (codes::PATH_NOT_FOUND, "no such file or directory"),
        IoError::NotZarr { .. } => (codes::NOT_ZARR, "not a Zarr array"),
        IoError::IsGroup { .. } => (codes::NOT_ZARR, "a Zarr group, not an array"),
        IoError::Unsupported { .. } => (codes::UNSUPPORTED_STORE, "cannot be read"),
        IoError::Exists { .. } => (codes::OUTPUT_EXISTS, "already exists"),
        IoError::Unwritable { .. } => (codes::UNWRITABLE, "cannot be written"),
        IoError::NotOwned { .. } => (codes::NOT_OWNED, "holds files that are not Zarr's"),
        IoError::Symlink { .. } => (codes::SYMLINK_IN_STORE, "a symbolic link inside"),
        IoError::Read { .. } => (codes::READ_FAILED, "reading failed"),
        IoError::Oversized { .. } => (codes::DECODE_BOMB, "a chunk decodes too large"),
        IoError::Write { .. } => (codes::WRITE_FAILED, "writing failed"),
        IoError::Remote { kind, .. } => kind.code_and_label(),
        IoError::Image { code, .. } => (*code, "this image stack"),
    };
    let mut msg = e.to_string();
    if let Some((shown, resolved)) = shown {
        let r = resolved.display().to_string();
        if !r.is_empty() && r != shown {
            msg = msg.replace(&r, shown);
        }
    }
    // Paths and stored names (dtype, codec) are untrusted text.
    let mut d = Diagnostic::error(code, crate::diag::escape(&msg)).label(span, label);
    match e {
        IoError::Exists { .. } => {
            d = d.help("pass `overwrite=true` to replace it, or choose another path");
        }
        IoError::NotOwned { .. } => {
            d = d
                .note("an overwrite deletes only Zarr metadata and chunk keys, never other files")
                .help("move the file out of the array first, or choose another path");
        }
        IoError::Symlink { .. } => {
            d = d
                .note("writing through the link would change files outside the store")
                .help("replace the link by a copy, or write a new output");
        }
        IoError::IsGroup { arrays, .. } if !arrays.is_empty() => {
            d = d.help(format!(
                "open one of its arrays, e.g. `zarr(\"{}\")`",
                crate::diag::escape(&arrays[0])
            ));
        }
        _ => {}
    }
    d
}

impl Evaluator {
    pub(super) fn call(
        &mut self,
        f: Value,
        args: Vec<ArgVal>,
        callee_span: Span,
        call_span: Span,
    ) -> R<Value> {
        match f {
            Value::Poison => Ok(Value::Poison),
            Value::Func(c) => self.call_closure(&c, args, callee_span, call_span),
            Value::Builtin(b) => {
                // A generated array whose chunks the script chose keeps them in results.
                let chunks_given = b
                    .params
                    .iter()
                    .position(|p| p.name == "chunks")
                    .is_some_and(|pos| {
                        args.iter()
                            .any(|a| a.name.as_ref().is_some_and(|n| n.name == "chunks"))
                            || args.iter().filter(|a| a.name.is_none()).count() > pos
                    });
                let v = self.call_builtin(&b, None, args, callee_span, call_span)?;
                if let (true, Value::Array(x)) = (chunks_given, &v) {
                    self.chosen_chunks.insert(x.node);
                }
                Ok(v)
            }
            Value::Method(recv, name) => {
                self.call_method((*recv).clone(), name, args, callee_span, call_span)
            }
            Value::PyFunc(p) => match args.into_iter().next() {
                // `f(x)` is `x.map(f)`.
                Some(ArgVal {
                    value: Value::Array(x),
                    span,
                    ..
                }) => self.map_python(x, p, None, span, call_span),
                _ => Err(Diagnostic::error(
                    codes::TYPE_MISMATCH,
                    "a Python block function is applied to one array",
                )
                .label(call_span, "expected `f(array)` or `array.map(f)`")),
            },
            Value::Kernel(k) => {
                // `gaussian(2)(x)` is `x.map(gaussian(2))`.
                let a = args.into_iter().next();
                match a {
                    Some(ArgVal {
                        value: Value::Array(x),
                        span,
                        ..
                    }) => self.apply_kernel(x, &k, span, call_span),
                    _ => Err(Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        "a kernel is applied to one array",
                    )
                    .label(call_span, "expected `kernel(array)`")),
                }
            }
            other => Err(Diagnostic::error(
                codes::NOT_CALLABLE,
                format!("{} cannot be called", other.a_kind()),
            )
            .label(callee_span, format!("this is {}", other.a_kind()))),
        }
    }

    pub(super) fn attr(&mut self, recv: Value, name: &Ident, recv_span: Span) -> R<Value> {
        let n = name.name.as_str();
        match &recv {
            Value::Poison => Ok(Value::Poison),
            Value::Table(_) => self.table_attr(recv.clone(), name),
            Value::Array(a) => {
                let t = self.arr(a).clone();
                let ints =
                    |v: &[u64]| Value::Tuple(v.iter().map(|x| Value::Int(*x as i64)).collect());
                match n {
                    "shape" => Ok(ints(&t.shape)),
                    "chunks" => Ok(ints(&t.chunks)),
                    "dtype" => Ok(Value::Str(t.dtype.name().into())),
                    "ndim" => Ok(Value::Int(t.ndim() as i64)),
                    "size" => Ok(Value::Int(t.size() as i64)),
                    "nbytes" => Ok(Value::Int(t.nbytes() as i64)),
                    // The OME-Zarr frame; none for a plain array.
                    "axes" | "scale" | "translation" | "units" => {
                        let Some(sp) = self.program.space(a.node).cloned() else {
                            return Ok(Value::None);
                        };
                        let strs = |v: Vec<Value>| Value::Tuple(v.into());
                        let floats =
                            |v: &[f64]| Value::Tuple(v.iter().map(|x| Value::Float(*x)).collect());
                        Ok(match n {
                            "axes" => strs(
                                sp.axes
                                    .iter()
                                    .map(|x| Value::Str(x.name.as_str().into()))
                                    .collect(),
                            ),
                            "units" => strs(
                                sp.axes
                                    .iter()
                                    .map(|x| match &x.unit {
                                        Some(u) => Value::Str(u.as_str().into()),
                                        None => Value::None,
                                    })
                                    .collect(),
                            ),
                            "scale" => floats(&sp.scale),
                            _ => floats(&sp.translation),
                        })
                    }
                    _ => match self.registry.method(n) {
                        Some(m) => Ok(Value::Method(Rc::new(recv.clone()), m.name.as_str().into())),
                        None => {
                            let cands = self
                                .registry
                                .methods()
                                .map(|m| m.name.as_str())
                                .chain(PROPERTIES.iter().copied());
                            let mut d = Diagnostic::error(
                                codes::UNKNOWN_METHOD,
                                format!("arrays have no method or property `{n}`"),
                            )
                            .label(name.span, "unknown");
                            if let Some(c) = closest(n, cands) {
                                d = d.help(format!("did you mean `{c}`?"));
                            }
                            Err(d)
                        }
                    },
                }
            }
            other => Err(Diagnostic::error(
                codes::UNKNOWN_METHOD,
                format!("{} has no property or method `{n}`", other.a_kind()),
            )
            .label(name.span, "unknown")
            .label(recv_span, format!("this is {}", other.a_kind()))),
        }
    }

    /// Bind a call's arguments to a descriptor's parameters and run its lowering
    /// (`recv` is the receiver of a method).
    pub(crate) fn call_builtin(
        &mut self,
        b: &Rc<Builtin>,
        recv: Option<ArrayVal>,
        args: Vec<ArgVal>,
        callee_span: Span,
        call_span: Span,
    ) -> R<Value> {
        let params = b.param_names();
        let (slots, rest) = match b.binding {
            Binding::Variadic => {
                if let Some(n) = args.iter().find_map(|a| a.name.as_ref()) {
                    return Err(Diagnostic::error(
                        codes::UNKNOWN_KEYWORD,
                        format!("`{}` has no parameter `{}`", b.name, n.name),
                    )
                    .label(n.span, "unknown keyword"));
                }
                if args.iter().any(|a| matches!(a.value, Value::Poison)) {
                    return Ok(Value::Poison);
                }
                (vec![], args)
            }
            Binding::Custom => {
                if args.iter().any(|a| matches!(a.value, Value::Poison)) {
                    return Ok(Value::Poison);
                }
                (vec![], args)
            }
            Binding::PackPositional => (
                bind_args(&b.name, &params, pack_positional(args), callee_span)?,
                vec![],
            ),
            Binding::Params => (bind_args(&b.name, &params, args, callee_span)?, vec![]),
        };
        let a = Args {
            fname: &b.name,
            params,
            slots,
            rest,
            callee_span,
            call_span,
        };
        if a.poisoned() {
            return Ok(Value::Poison);
        }
        match (&b.lowering, recv) {
            (Lowering::Function(f), None) => f(self, &a),
            (Lowering::Kernel(k), None) => Ok(Value::Kernel(Rc::new(k(&a)?))),
            (Lowering::Method(m), Some(x)) => m(self, x, &a),
            (Lowering::Dynamic(f), recv) => f(self, recv, &a),
            (_, _) => Err(Diagnostic::error(
                codes::NOT_CALLABLE,
                format!("`{}` cannot be called this way", b.name),
            )
            .label(callee_span, "here")),
        }
    }

    pub(super) fn chunks_arg(&self, shape: &[u64], dtype: DType, arg: Option<&ArgVal>) -> R<Shape> {
        match arg {
            None => Ok(check::default_chunks(shape, dtype.size())),
            Some(c) => {
                let v = get_ints(c)?;
                let v = if v.len() == 1 && shape.len() > 1 {
                    vec![v[0]; shape.len()]
                } else {
                    v
                };
                check::check_chunks(&v, shape, c.span)
            }
        }
    }

    fn fill_array(
        &mut self,
        shape: Shape,
        v: &Value,
        dtype: DType,
        chunks: Option<&ArgVal>,
        span: Span,
    ) -> R<Value> {
        let chunks = self.chunks_arg(&shape, dtype, chunks)?;
        let id = self.const_node(v, dtype, &shape, &chunks, span)?;
        Ok(Value::Array(ArrayVal::new(id)))
    }

    fn arange(&mut self, a: &Args, span: Span) -> R<Value> {
        let first = a.required("start")?;
        let nums: Vec<&ArgVal> = [Some(first), a.get("stop"), a.get("step")]
            .into_iter()
            .flatten()
            .collect();
        let is_float = nums.iter().any(|v| matches!(v.value, Value::Float(_)));
        let (start, stop) = match a.get("stop") {
            Some(s) => (get_float(first)?, get_float(s)?),
            None => (0.0, get_float(first)?),
        };
        let step = match a.get("step") {
            Some(s) => get_float(s)?,
            None => 1.0,
        };
        if step == 0.0 {
            return Err(
                Diagnostic::error(codes::BAD_VALUE, "arange step cannot be zero")
                    .label(a.get("step").map(|s| s.span).unwrap_or(span), "step is 0"),
            );
        }
        let n = match (
            &first.value,
            a.get("stop").map(|s| &s.value),
            a.get("step").map(|s| &s.value),
        ) {
            // Integer bounds: count exactly (f64 rounds lengths near 2^63).
            (Value::Int(x), stop, step) if !is_float => {
                let int = |v: Option<&Value>, d: i64| match v {
                    Some(Value::Int(i)) => *i as i128,
                    _ => d as i128,
                };
                let (lo, hi) = match stop {
                    Some(_) => (*x as i128, int(stop, 0)),
                    None => (0, *x as i128),
                };
                let st = int(step, 1);
                let len = if st > 0 {
                    (hi - lo + st - 1) / st
                } else {
                    (lo - hi - st - 1) / -st
                };
                u64::try_from(len.max(0)).unwrap_or(u64::MAX)
            }
            _ => ((stop - start) / step).ceil().max(0.0) as u64,
        };
        let dtype = match a.get("dtype") {
            Some(d) => get_dtype(d)?,
            None if is_float => DType::F64,
            None => DType::I64,
        };
        let shape = vec![n];
        let chunks = self.chunks_arg(&shape, dtype, a.get("chunks"))?;
        let id = self.node(
            Op::Arange { start, step },
            ArrayType {
                dtype,
                shape,
                chunks,
            },
            span,
        )?;
        Ok(Value::Array(ArrayVal::new(id)))
    }

    /// `zarr(path, level=)`: an OME-Zarr image group opens one level of its pyramid with
    /// the level's physical frame; anything else is a plain array (and takes no level).
    fn open_zarr_or_image(&mut self, p: &ArgVal, level: Option<&ArgVal>) -> R<Value> {
        let spelled = get_str(p)?.to_string();
        let resolved = self.resolve(&spelled);
        let group = if crate::io::is_url(&spelled) {
            None
        } else {
            crate::io::ome::group_attributes(&resolved)
        };
        if let Some(l) = level {
            get_int(l)?;
        }
        let Some((format, attrs)) = group else {
            if let Some(l) = level {
                return Err(Diagnostic::error(
                    codes::NOT_OME,
                    format!("`level=` needs an OME-Zarr image group, and `{spelled}` is not a Zarr group"),
                )
                .label(l.span, "no pyramid to choose a level from")
                .label(p.span, "not a group"));
            }
            return self.open_zarr(p);
        };
        use crate::io::ome::OmeError;
        let esc = crate::diag::escape;
        let image = crate::io::ome::parse_image(format, &attrs).map_err(|e| match e {
            OmeError::NotOme(what) => Diagnostic::error(
                codes::NOT_OME,
                esc(&format!(
                    "`{spelled}` is a Zarr group but not an OME-Zarr image: {what}"
                )),
            )
            .label(p.span, "not an OME-Zarr image")
            .help("open one of its arrays as `zarr(\"group.zarr/name\")`"),
            OmeError::Version(v) => Diagnostic::error(
                codes::OME_VERSION,
                esc(&format!(
                    "`{spelled}` is OME-Zarr version {v}; Tessera reads versions {}",
                    crate::io::ome::VERSIONS.join(" and ")
                )),
            )
            .label(p.span, "unknown NGFF version"),
            OmeError::Axes(what) => {
                Diagnostic::error(codes::OME_AXES, esc(&format!("`{spelled}`: {what}")))
                    .label(p.span, "axes and transformations disagree")
            }
        })?;
        let k = match level {
            Some(l) => {
                let k = get_int(l)?;
                if k < 0 || k as usize >= image.levels.len() {
                    let paths: Vec<String> = image
                        .levels
                        .iter()
                        .enumerate()
                        .map(|(i, lv)| format!("{i} (`{}`)", lv.path))
                        .collect();
                    return Err(Diagnostic::error(
                        codes::OME_LEVEL,
                        esc(&format!(
                            "`{spelled}` has no level {k}; its levels are {}",
                            paths.join(", ")
                        )),
                    )
                    .label(
                        l.span,
                        format!("levels are 0 to {}", image.levels.len() - 1),
                    ));
                }
                k as usize
            }
            None => 0,
        };
        let level_path = format!(
            "{}/{}",
            spelled.trim_end_matches('/'),
            image.levels[k].path.trim_matches('/')
        );
        let lp = ArgVal {
            name: None,
            value: Value::Str(level_path.as_str().into()),
            span: p.span,
        };
        let v = self.open_zarr(&lp)?;
        let Value::Array(a) = &v else {
            return Ok(v);
        };
        let rank = self.program.ty(a.node).ndim();
        if image.axes.len() != rank {
            let names: Vec<&str> = image.axes.iter().map(|a| a.name.as_str()).collect();
            return Err(Diagnostic::error(
                codes::OME_AXES,
                esc(&format!(
                    "`{spelled}` names {} axes ({}) but its level {k} (`{level_path}`) has {rank} dimensions",
                    names.len(),
                    names.join(", ")
                )),
            )
            .label(p.span, "axes count differs from the rank"));
        }
        self.program.nodes[a.node.index()].space = Some(Arc::new(image.spatial(k)));
        Ok(v)
    }

    pub(super) fn open_zarr(&mut self, p: &ArgVal) -> R<Value> {
        let spelled = get_str(p)?.to_string();
        // One array, one name: a second spelling of an array already read or written
        // refers to the same input or output.
        let id = self.array_id(&spelled);
        let path = self
            .output_spelling(&id)
            .or_else(|| self.input_spelling(&id))
            .unwrap_or_else(|| spelled.clone());
        // An array this program writes earlier: read it after that write finishes.
        if let Some((_, sink)) = self.outputs.get(&path) {
            let s = &self.program.sinks[*sink];
            if let SinkKind::Write(w) = &s.kind {
                if w.in_place {
                    return Err(Diagnostic::error(
                        codes::DUPLICATE_OUTPUT,
                        format!("{spelled:?} is read again after this program updates it in place"),
                    )
                    .label(p.span, "read here")
                    .label(s.span, "updated in place here")
                    .note("every read in a run sees an array updated in place as it was before the run; the update takes its place when the run ends")
                    .help("use the array read before the update, or read the updated array in the next run"));
                }
                let ty = ArrayType {
                    dtype: w.fill.dtype(),
                    shape: w.shape.clone(),
                    chunks: w.chunks.clone(),
                };
                let id = self.node(Op::Zarr { path }, ty, p.span)?;
                self.chosen_chunks.insert(id);
                return Ok(Value::Array(ArrayVal::new(id)));
            }
        }
        let reader = match self.inputs.get(&path) {
            Some(r) => r.clone(),
            None => {
                self.check_input_identity(&path, &id, p.span)?;
                let resolved = self.resolve(&path);
                let r = ZarrReader::open(&resolved)
                    .map_err(|e| io_diag_shown(&e, p.span, Some((&path, &resolved))))?;
                let r = Arc::new(r);
                self.inputs.insert(path.clone(), r.clone());
                self.input_ids
                    .push((ArrayId::of(&resolved), path.clone(), p.span));
                r
            }
        };
        let m = reader.meta();
        let ty = ArrayType {
            dtype: m.dtype,
            shape: m.shape.clone(),
            chunks: m.chunks.iter().map(|c| (*c).max(1)).collect(),
        };
        let id = self.node(Op::Zarr { path }, ty, p.span)?;
        self.chosen_chunks.insert(id);
        Ok(Value::Array(ArrayVal::new(id)))
    }

    /// An array a host program opened itself (one in its memory, `ZarrReader::host`),
    /// read by the program under `key` like a stored input.
    pub(crate) fn opened_input(
        &mut self,
        key: &str,
        reader: Arc<ZarrReader>,
        span: Span,
    ) -> R<Value> {
        let m = reader.meta();
        let ty = ArrayType {
            dtype: m.dtype,
            shape: m.shape.clone(),
            chunks: m.chunks.iter().map(|c| (*c).max(1)).collect(),
        };
        self.inputs.insert(key.to_string(), reader);
        let id = self.node(
            Op::Zarr {
                path: key.to_string(),
            },
            ty,
            span,
        )?;
        self.chosen_chunks.insert(id);
        Ok(Value::Array(ArrayVal::new(id)))
    }

    /// `tiff(path)` / `png(path)`: expand the pattern and check every file's header now, so
    /// a bad stack is refused before anything runs.
    fn open_images(&mut self, format: ImageFormat, a: &Args) -> R<Value> {
        let p = a.required("path")?;
        let pattern = get_str(p)?.to_string();
        let squeeze = match a.get("squeeze") {
            Some(s) => get_bool(s)?,
            None => true,
        };
        let base = match &self.base_dir {
            Some(b) => std::fs::canonicalize(b).unwrap_or_else(|_| b.clone()),
            None => std::env::current_dir().unwrap_or_default(),
        };
        let stack = crate::io::images::open(format, &pattern, &base, squeeze).map_err(|e| {
            let label = match e.code {
                codes::IMAGE_NO_MATCH => "matches no file",
                codes::IMAGE_MIXED => "files of different shapes or dtypes",
                codes::IMAGE_UNSUPPORTED => "an unsupported image",
                codes::IMAGE_BAD_PATTERN => "not a valid pattern",
                _ => "cannot be read",
            };
            Diagnostic::error(e.code, crate::diag::escape(&e.message)).label(p.span, label)
        })?;
        let shape = stack.shape();
        let chunks = stack
            .lead
            .iter()
            .map(|_| 1)
            .chain(stack.plane.iter().copied())
            .collect();
        let ty = ArrayType {
            dtype: stack.dtype,
            shape,
            chunks,
        };
        let id = self.node(
            Op::Images {
                stack: Arc::new(stack),
            },
            ty,
            p.span,
        )?;
        self.chosen_chunks.insert(id);
        Ok(Value::Array(ArrayVal::new(id)))
    }

    /// A binary elementwise op on two argument values (arrays or scalars).
    fn elementwise2(&mut self, op: BinaryOp, x: ArgVal, y: ArgVal, span: Span) -> R<Value> {
        if !matches!(x.value, Value::Array(_)) && !matches!(y.value, Value::Array(_)) {
            return Err(Diagnostic::error(
                codes::TYPE_MISMATCH,
                "expected at least one array argument",
            )
            .label(span, "both arguments are scalars"));
        }
        self.arr_binary(op, x.value, y.value, x.span, y.span, span)
    }

    fn clip(&mut self, x: ArgVal, lo: Option<ArgVal>, hi: Option<ArgVal>, span: Span) -> R<Value> {
        if !matches!(x.value, Value::Array(_)) {
            return Err(expected("an array", &x));
        }
        // NumPy 2 accepts integer bounds outside an integer array's range: a bound past
        // the dtype's own limit clips nothing.
        let (lo, hi) = match &x.value {
            Value::Array(arr) => {
                let d = self.arr(arr).dtype;
                let fits = |v: &ArgVal| scalar_buf(&v.value, d, v.span).is_ok();
                // A lower bound below the dtype's minimum, or an upper bound above its
                // maximum, is dropped; anything else that does not fit stays an error.
                let below = |v: &ArgVal| matches!(v.value, Value::Int(i) if i < 0);
                let above = |v: &ArgVal| matches!(v.value, Value::Int(i) if i > 0);
                if d.is_integer() {
                    (
                        lo.filter(|l| fits(l) || !below(l)),
                        hi.filter(|h| fits(h) || !above(h)),
                    )
                } else {
                    (lo, hi)
                }
            }
            _ => (lo, hi),
        };
        let mut cur = x;
        // NumPy: clip(x, lo, hi) = minimum(maximum(x, lo), hi).
        if let Some(lo) = lo {
            let v = self.arr_binary(BinaryOp::Max, cur.value, lo.value, cur.span, lo.span, span)?;
            cur = ArgVal {
                name: None,
                value: v,
                span,
            };
        }
        if let Some(hi) = hi {
            let v = self.arr_binary(BinaryOp::Min, cur.value, hi.value, cur.span, hi.span, span)?;
            cur = ArgVal {
                name: None,
                value: v,
                span,
            };
        }
        Ok(cur.value)
    }

    fn where_(&mut self, a: &Args, span: Span) -> R<Value> {
        let c = a.required("cond")?.clone();
        let x = a.required("a")?.clone();
        let y = a.required("b")?.clone();
        let Value::Array(ca) = &c.value else {
            return Err(expected("a bool array", &c));
        };
        let ct = self.arr(ca).clone();
        if ct.dtype != DType::Bool {
            return Err(Diagnostic::error(
                codes::TYPE_MISMATCH,
                format!(
                    "the condition of `where` must be a bool array, not {}",
                    ct.dtype
                ),
            )
            .label(c.span, format!("this is {}", ct.dtype))
            .help("compare to make a mask, e.g. `where(x > 0, x, 0)`"));
        }
        // Common dtype of a and b (NEP 50), shape of all three broadcast together.
        let (oa, ta) = self.operand_of(&x)?;
        let (ob, tb) = self.operand_of(&y)?;
        let oa_ref = match &ta {
            Some(t) => check::Operand::Array(t),
            None => oa,
        };
        let ob_ref = match &tb {
            Some(t) => check::Operand::Array(t),
            None => ob,
        };
        let dtype = check::common_dtype(&oa_ref, &ob_ref);
        let mut shape = ct.shape.clone();
        for t in [&ta, &tb].into_iter().flatten() {
            shape = check::broadcast_shapes(&shape, &t.shape).ok_or_else(|| {
                Diagnostic::error(
                    codes::SHAPE_MISMATCH,
                    format!(
                        "shape mismatch in `where`: {} and {}",
                        fmt_shape(&shape),
                        fmt_shape(&t.shape)
                    ),
                )
                .label(span, "these shapes do not broadcast together")
                .note(format!(
                    "shapes aligned at the right:\n{}",
                    check::aligned_shapes(&shape, &t.shape)
                ))
            })?;
        }
        let all: Vec<&ArrayType> = std::iter::once(&ct)
            .chain([&ta, &tb].into_iter().flatten())
            .collect();
        let chunks = check::result_chunks(&shape, &all);
        let cn = self.broadcast_node(ca.node, &shape, &chunks, c.span)?;
        let side = |ev: &mut Evaluator, v: &ArgVal| -> R<crate::ir::NodeId> {
            match &v.value {
                Value::Array(arr) => {
                    let n = ev.cast_node(arr.node, dtype, v.span)?;
                    ev.broadcast_node(n, &shape, &chunks, v.span)
                }
                other => ev.const_node(other, dtype, &shape, &chunks, v.span),
            }
        };
        let an = side(self, &x)?;
        let bn = side(self, &y)?;
        let id = self.node(
            Op::Where {
                cond: cn,
                a: an,
                b: bn,
            },
            ArrayType {
                dtype,
                shape: shape.clone(),
                chunks: chunks.clone(),
            },
            span,
        )?;
        Ok(Value::Array(ArrayVal::new(id)))
    }

    fn operand_of(&self, v: &ArgVal) -> R<(check::Operand<'static>, Option<ArrayType>)> {
        match &v.value {
            Value::Array(a) => Ok((
                check::Operand::Weak(crate::dtype::WeakKind::Bool),
                Some(self.arr(a).clone()),
            )),
            other => match super::ops::weak_kind(other) {
                Some(k) => Ok((check::Operand::Weak(k), None)),
                None => Err(expected("an array or a number", v)),
            },
        }
    }

    fn print(&mut self, args: Vec<ArgVal>) -> R<Value> {
        let mut pieces = Vec::new();
        for a in args {
            if let Some(n) = &a.name {
                return Err(Diagnostic::error(
                    codes::UNKNOWN_KEYWORD,
                    format!("`print` has no parameter `{}`", n.name),
                )
                .label(n.span, "unknown keyword"));
            }
            match &a.value {
                Value::Poison => return Ok(Value::Poison),
                Value::Array(arr) if arr.materialize || self.arr(arr).ndim() == 0 => {
                    let label = self.sources_snippet(a.span);
                    self.program.sinks.push(Sink {
                        kind: SinkKind::PrintValues { label },
                        node: arr.node,
                        span: a.span,
                    });
                    pieces.push(PrintPiece::Values(self.program.sinks.len() - 1));
                }
                Value::Array(arr) => pieces.push(PrintPiece::Text(self.array_summary(arr))),
                Value::Table(t) => {
                    let si = self.props_sinks(t, None, a.span);
                    pieces.push(PrintPiece::Values(si));
                }
                other => pieces.push(PrintPiece::Text(other.to_string())),
            }
        }
        self.program.effects.push(crate::ir::Effect { pieces });
        Ok(Value::None)
    }

    pub(super) fn sources_snippet(&self, span: Span) -> String {
        if (span.src.0 as usize) < self.sources.len() {
            self.sources.snippet(span).to_string()
        } else {
            "values".to_string()
        }
    }

    /// One-line description of a lazy array, like dask's repr.
    pub fn array_summary(&self, a: &ArrayVal) -> String {
        let t = self.arr(a);
        let grid = crate::geom::ChunkGrid::new(t.shape.clone(), t.chunks.clone());
        format!(
            "array {} ({} in {} chunk{})",
            crate::ir::type_summary(&self.program, a.node),
            human_bytes(t.nbytes()),
            grid.num_chunks(),
            if grid.num_chunks() == 1 { "" } else { "s" }
        )
    }

    fn call_method(
        &mut self,
        recv: Value,
        name: Rc<str>,
        args: Vec<ArgVal>,
        callee_span: Span,
        call_span: Span,
    ) -> R<Value> {
        if let Value::Table(t) = &recv {
            return self.table_method(t, &name, args, callee_span, call_span);
        }
        let Value::Array(x) = recv else {
            return Ok(Value::Poison);
        };
        let Some(b) = self.registry.method(&name).cloned() else {
            return Ok(Value::Poison);
        };
        self.call_builtin(&b, Some(x), args, callee_span, call_span)
    }

    fn overlap_method(&mut self, x: ArrayVal, a: &Args) -> R<Value> {
        let t = self.arr(&x).clone();
        let d = a.required("depth")?;
        let depth = get_ints(d)?;
        let depth: Vec<i64> = if depth.len() == 1 {
            vec![depth[0]; t.ndim()]
        } else {
            depth
        };
        if depth.len() != t.ndim() {
            return Err(Diagnostic::error(
                codes::BAD_VALUE,
                format!(
                    "overlap depth has {} entries but the array has {} axes",
                    depth.len(),
                    t.ndim()
                ),
            )
            .label(d.span, "one depth per axis, or a single int"));
        }
        if let Some(n) = depth.iter().find(|n| **n < 0) {
            return Err(Diagnostic::error(
                codes::BAD_VALUE,
                format!("overlap depth {n} is negative"),
            )
            .label(d.span, "depths must be zero or more"));
        }
        let depth: Vec<u64> = depth.into_iter().map(|x| x as u64).collect();
        let cval = match a.get("cval") {
            Some(c) => get_float(c)?,
            None => 0.0,
        };
        let boundary = match a.get("boundary") {
            None => Boundary::Reflect,
            Some(b) => parse_boundary(b, cval)?,
        };
        Ok(Value::Array(ArrayVal {
            overlap: Some(Rc::new(OverlapSpec { depth, boundary })),
            ..x
        }))
    }

    pub(super) fn map_method(&mut self, x: ArrayVal, a: &Args) -> R<Value> {
        let t = self.arr(&x).clone();
        let call_span = a.call_span;
        let f = a.required("f")?.clone();
        let declared = a.get("dtype").map(get_dtype).transpose()?;
        if declared.is_some() && !matches!(f.value, Value::PyFunc(_)) {
            return Err(Diagnostic::error(
                codes::BAD_VALUE,
                "dtype= is for Python functions; kernels and script functions have a known result type",
            )
            .label(a.get("dtype").map_or(call_span, |d| d.span), "not needed here"));
        }
        match &f.value {
            Value::PyFunc(p) => self.map_python(x, p.clone(), declared, f.span, call_span),
            Value::Kernel(k) => {
                let k = k.clone();
                self.apply_kernel(x, &k, f.span, call_span)
            }
            Value::Func(_) | Value::Builtin(_) => {
                let arg = ArgVal {
                    name: None,
                    value: Value::Array(x.clone()),
                    span: f.span,
                };
                let out = self.call(f.value.clone(), vec![arg], f.span, call_span)?;
                match out {
                    Value::Array(o) => {
                        let ot = self.arr(&o).clone();
                        if ot.shape != t.shape {
                            return Err(Diagnostic::error(
                                codes::SHAPE_MISMATCH,
                                format!(
                                    "the block function returned shape {} for a block of shape {}",
                                    fmt_shape(&ot.shape),
                                    fmt_shape(&t.shape)
                                ),
                            )
                            .label(f.span, "must keep the block's shape"));
                        }
                        Ok(Value::Array(ArrayVal::new(o.node)))
                    }
                    Value::Poison => Ok(Value::Poison),
                    other => {
                        // A constant result fills the block.
                        let dt = match other {
                            Value::Float(_) => DType::F64,
                            Value::Bool(_) => DType::Bool,
                            _ => DType::I64,
                        };
                        scalar_buf(&other, dt, f.span)?;
                        let id = self.const_node(&other, dt, &t.shape, &t.chunks, f.span)?;
                        Ok(Value::Array(ArrayVal::new(id)))
                    }
                }
            }
            _ => Err(expected("a kernel or a function", &f)),
        }
    }

    /// Apply a native kernel: a stencil whose halo is the kernel's footprint, or the
    /// explicit `overlap` (with a warning when that is smaller than the footprint).
    pub(super) fn apply_kernel(
        &mut self,
        x: ArrayVal,
        k: &Rc<crate::ir::Kernel>,
        kspan: Span,
        span: Span,
    ) -> R<Value> {
        let mut t = self.arr(&x).clone();
        let (kernel, radius) = match &k.kind {
            KernelKind::Native(n) => {
                let (dtype, radius) = kernels::native_rules(&n.0, k, &t, kspan)?;
                t.dtype = dtype;
                ((**k).clone(), radius)
            }
            _ if k.unit.is_some() => {
                let space = self.program.space(x.node).cloned();
                let px = kernels::to_pixels(k, space.as_deref(), t.ndim(), kspan)?;
                self.builtin_kernel(&Rc::new(px), &t, kspan)?
            }
            _ => self.builtin_kernel(k, &t, kspan)?,
        };
        let (halo, boundary) = match &x.overlap {
            Some(o) => {
                if o.depth.iter().zip(&radius).any(|(d, r)| d < r) {
                    self.diags.push(
                        Diagnostic::warning(
                            codes::OVERLAP_TOO_SMALL,
                            format!(
                                "overlap {} is smaller than the footprint {} of {}",
                                fmt_shape(&o.depth),
                                fmt_shape(&radius),
                                k.name()
                            ),
                        )
                        .label(kspan, format!("needs a halo of {}", fmt_shape(&radius)))
                        .note("the result then depends on the chunking; drop `overlap` to get the exact halo"),
                    );
                }
                (o.depth.clone(), o.boundary)
            }
            None => (radius, Boundary::Reflect),
        };
        let id = self.node(
            Op::Stencil {
                x: x.node,
                kernel,
                halo,
                boundary,
            },
            t,
            span,
        )?;
        Ok(Value::Array(ArrayVal::new(id)))
    }

    /// A builtin kernel with its parameters expanded to the array's rank, and its
    /// footprint.
    fn builtin_kernel(
        &self,
        k: &Rc<crate::ir::Kernel>,
        t: &ArrayType,
        kspan: Span,
    ) -> R<(crate::ir::Kernel, Vec<u64>)> {
        let Some(params) = k.params_for(t.ndim()) else {
            return Err(Diagnostic::error(
                codes::BAD_VALUE,
                format!(
                    "{} has parameters for {} axes but the array has {}",
                    k.name(),
                    k.params.len(),
                    t.ndim()
                ),
            )
            .label(kspan, "give one value per axis, or a single value"));
        };
        super::kernels::check_dtype(k, t.dtype, kspan)?;
        let mut kernel = (**k).clone();
        kernel.params = params;
        if kernel.kind == crate::ir::KernelKind::Sobel {
            let nd = t.ndim() as i64;
            if kernel.axis < -nd || kernel.axis >= nd {
                return Err(Diagnostic::error(
                    codes::BAD_VALUE,
                    format!(
                        "sobel axis {} is out of range for a {nd}-d array",
                        kernel.axis
                    ),
                )
                .label(kspan, format!("axes are -{nd}..{}", nd - 1)));
            }
            kernel.axis = kernel.axis.rem_euclid(nd);
        }
        let radius = kernel.radius(t.ndim());
        Ok((kernel, radius))
    }

    pub(super) fn write(&mut self, x: ArrayVal, a: &Args, span: Span) -> R<Value> {
        let t = self.arr(&x).clone();
        let p = a.required("path")?;
        let spelled = get_str(p)?.to_string();
        let pspan = p.span;
        let overwrite = match a.get("overwrite") {
            Some(o) => get_bool(o)?,
            None => false,
        };
        // Identity first, before anything at the path is opened: an earlier write to the
        // same array under any spelling is the same output; anything else must be an array
        // of its own, apart from every input and output.
        let id = self.array_id(&spelled);
        let updates_part = a.get("region").is_some() || a.get("regions").is_some();
        let (path, new_staging, new_in_place) = match self.output_spelling(&id) {
            Some(first) => (first, None, false),
            None => {
                // An update in place is written under the input's spelling, so the run
                // knows the two as one array.
                let same_as_input =
                    self.check_output_identity(&spelled, &id, pspan, overwrite || updates_part)?;
                // Its staging copy sits beside the array itself, not beside a symbolic
                // link to it, so the copy can be swapped in by rename.
                let in_place = same_as_input.is_some();
                let path = same_as_input.unwrap_or(spelled);
                let at = if in_place {
                    id.canonical.display().to_string()
                } else {
                    path.clone()
                };
                let staging = self.check_output_store(&at, pspan, overwrite, in_place)?;
                (path, staging, in_place)
            }
        };
        let codec = match a.get("codec") {
            None => "zstd".to_string(),
            Some(c) => {
                let s = get_str(c)?.to_string();
                if !CODECS.contains(&s.as_str()) {
                    let mut d =
                        Diagnostic::error(codes::BAD_VALUE, format!("unsupported codec {s:?}"))
                            .label(c.span, "unknown codec")
                            .note(format!("codecs: {}", CODECS.join(", ")));
                    if let Some(cl) = closest(&s, CODECS.iter().copied()) {
                        d = d.help(format!("did you mean \"{cl}\"?"));
                    }
                    return Err(d);
                }
                s
            }
        };
        let level = match a.get("level") {
            None => None,
            Some(l) => {
                let v = get_int(l)?;
                let ok = match codec.as_str() {
                    "zstd" => (-7..=22).contains(&v),
                    "gzip" | "blosc" => (0..=9).contains(&v),
                    _ => false,
                };
                if !ok {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("level {v} is not valid for codec {codec:?}"),
                    )
                    .label(
                        l.span,
                        match codec.as_str() {
                            "zstd" => "zstd levels are -7..=22",
                            "none" => "codec \"none\" takes no level",
                            _ => "levels are 0..=9",
                        },
                    ));
                }
                Some(v as i32)
            }
        };
        // Regions.
        let mut regions: Vec<(Region, Vec<bool>)> = Vec::new();
        let region_arg = a.get("region");
        let regions_arg = a.get("regions");
        if region_arg.is_some() && regions_arg.is_some() {
            return Err(Diagnostic::error(
                codes::ARITY,
                "give either `region` or `regions`, not both",
            )
            .label(span, "both given"));
        }
        // The output's shape: the array's, or `like=`'s / the existing output's.
        let like_shape = match a.get("like") {
            Some(l) => match &l.value {
                Value::Array(la) => Some((self.arr(la).shape.clone(), self.arr(la).chunks.clone())),
                _ => return Err(expected("an array", l)),
            },
            None => None,
        };
        // An earlier write in this program to the same output: this write adds fragments
        // to it (one stage owns the output; later fragments win where they overlap).
        let earlier: Option<WriteSpec> =
            self.outputs
                .get(&path)
                .and_then(|(_, si)| match &self.program.sinks[*si].kind {
                    SinkKind::Write(w) => Some(w.clone()),
                    _ => None,
                });
        if let (Some(w), None, None) = (&earlier, a.get("region"), a.get("regions")) {
            if w.regions.is_empty() {
                let prev = self.outputs.get(&path).map(|(sp, _)| *sp).unwrap_or(pspan);
                return Err(Diagnostic::error(
                    codes::DUPLICATE_OUTPUT,
                    format!("{path:?} is written whole twice in one program"),
                )
                .label(pspan, "second write")
                .label(prev, "first write")
                .help("write regions of one output with `region=` / `regions=` instead"));
            }
        }
        let existing_meta: Option<(Shape, Shape, DType)> = match &earlier {
            Some(w) => Some((w.shape.clone(), w.chunks.clone(), w.fill.dtype())),
            None if crate::io::exists(&self.resolve(&path)) && !overwrite => {
                ZarrWriter::open_existing(&self.resolve(&path))
                    .ok()
                    .map(|w| {
                        (
                            w.meta().shape.clone(),
                            w.meta().chunks.clone(),
                            w.meta().dtype,
                        )
                    })
            }
            None => None,
        };
        let out_shape_guess = like_shape
            .as_ref()
            .map(|(s, _)| s.clone())
            .or_else(|| existing_meta.as_ref().map(|m| m.0.clone()))
            .unwrap_or_else(|| t.shape.clone());
        let region_list: Vec<(Value, Span, Option<usize>)> = match (region_arg, regions_arg) {
            (Some(r), None) => vec![(r.value.clone(), r.span, None)],
            (None, Some(rs)) => match &rs.value {
                Value::List(l) | Value::Tuple(l) => l
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v.clone(), rs.span, Some(i)))
                    .collect(),
                _ => return Err(expected("a list of regions", rs)),
            },
            _ => vec![],
        };
        for (v, s, i) in &region_list {
            regions.push(region_from_value(v, &out_shape_guess, *s, *i)?);
        }
        let mut placed = false;
        let out_shape;
        if regions.is_empty() || t.shape == out_shape_guess {
            out_shape = t.shape.clone();
        } else {
            // Region-shaped data: exactly one region, whose shape (without int axes) matches.
            if regions.len() != 1 {
                return Err(Diagnostic::error(
                    codes::SHAPE_MISMATCH,
                    format!(
                        "an array of shape {} can only be placed at a single region",
                        fmt_shape(&t.shape)
                    ),
                )
                .label(
                    span,
                    format!("the output has shape {}", fmt_shape(&out_shape_guess)),
                ));
            }
            let (r, int_axes) = &regions[0];
            let rshape: Vec<u64> = r
                .shape()
                .into_iter()
                .zip(int_axes)
                .filter(|(_, i)| !**i)
                .map(|(n, _)| n)
                .collect();
            if rshape != t.shape && r.shape() != t.shape {
                return Err(Diagnostic::error(
                    codes::SHAPE_MISMATCH,
                    format!(
                        "the array has shape {} but the region has shape {}",
                        fmt_shape(&t.shape),
                        fmt_shape(&r.shape())
                    ),
                )
                .label(region_list[0].1, "region here")
                .note(format!(
                    "the output has shape {}; data is either output-shaped or region-shaped",
                    fmt_shape(&out_shape_guess)
                )));
            }
            if like_shape.is_none() && existing_meta.is_none() {
                return Err(Diagnostic::error(
                    codes::BAD_VALUE,
                    format!("cannot tell the shape of the new output {path:?}"),
                )
                .label(span, "the data is region-shaped")
                .help("pass `like=x` with the full-size array the regions refer to"));
            }
            placed = true;
            out_shape = out_shape_guess.clone();
        }
        let chunks = match a.get("chunks") {
            Some(c) => {
                let v = get_ints(c)?;
                let ch = check::check_chunks(&v, &out_shape, c.span)?;
                if let Some(w) = &earlier {
                    if w.chunks != ch {
                        return Err(Diagnostic::error(
                            codes::DUPLICATE_OUTPUT,
                            format!(
                                "{path:?} was written with chunks {} before",
                                fmt_shape(&w.chunks)
                            ),
                        )
                        .label(c.span, "different chunks"));
                    }
                }
                ch
            }
            None => match (&existing_meta, &like_shape) {
                (Some(m), _) if !regions.is_empty() || earlier.is_some() => m.1.clone(),
                (_, Some((_, lc))) if placed => lc.clone(),
                _ => {
                    if placed {
                        check::default_chunks(&out_shape, t.dtype.size())
                    } else {
                        t.chunks.clone()
                    }
                }
            },
        };
        let fill = match a.get("fill") {
            Some(f) => scalar_buf(&f.value, t.dtype, f.span)?,
            None => Buf::zeros(t.dtype, 1),
        };
        // Storage checks before anything runs.
        let existing = match &earlier {
            Some(w) => w.existing,
            None => !regions.is_empty() && existing_meta.is_some(),
        };
        if let Some(m) = &existing_meta {
            if existing || earlier.is_some() {
                let (mshape, _, mdtype) = m;
                if *mshape != out_shape || *mdtype != t.dtype {
                    return Err(Diagnostic::error(
                        codes::SHAPE_MISMATCH,
                        format!(
                            "the {} output is {}{} but the data is {}{}",
                            if earlier.is_some() {
                                "earlier"
                            } else {
                                "existing"
                            },
                            mdtype,
                            fmt_shape(mshape),
                            t.dtype,
                            fmt_shape(&out_shape)
                        ),
                    )
                    .label(pspan, "existing array")
                    .help("pass `overwrite=true` to replace it, or cast with `astype`"));
                }
            }
        }
        let staging = match &earlier {
            None => new_staging,
            Some(w) => w.staging.clone(),
        };
        let resumable = (self.resuming
            && [Some(self.resolve(&path)), staging.clone()]
                .iter()
                .flatten()
                .any(|d| crate::io::has_resume_record(d)))
            || (self.resuming_export && crate::io::exists(&self.resolve(&path)));
        if !existing && earlier.is_none() && !resumable {
            let resolved = if new_in_place {
                id.canonical.clone()
            } else {
                self.resolve(&path)
            };
            ZarrWriter::check_writable(&resolved, overwrite).map_err(|e| {
                let d = io_diag_shown(&e, pspan, Some((&path, &resolved)));
                match crate::io::recorded_chunks(&resolved) {
                    n if n > 0 && matches!(e, IoError::Exists { .. }) => d
                        .note(format!("an interrupted run finished {n} chunk{} of it", if n == 1 { "" } else { "s" }))
                        .help("rerun with --resume to compute only the missing chunks, or pass `overwrite=true` to start it over"),
                    _ => d,
                }
            })?;
        }
        if earlier.is_none() {
            self.outputs
                .insert(path.clone(), (pspan, self.program.sinks.len()));
            self.output_ids.push((id.clone(), path.clone(), pspan));
        }
        let int_axes = regions
            .iter()
            .map(|(r, ints)| {
                // Region-shaped data lacks the axes the region gave as single ints.
                if placed && r.shape() != t.shape {
                    ints.clone()
                } else {
                    vec![false; ints.len()]
                }
            })
            .collect();
        let (codec, level, overwrite, fill, in_place) = match &earlier {
            Some(w) => (
                w.codec.clone(),
                w.level,
                w.overwrite,
                w.fill.clone(),
                w.in_place,
            ),
            None => (codec, level, overwrite, fill, new_in_place),
        };
        // An existing output's stored shape is as untrusted as an input's.
        check::sizes::check(
            &ArrayType {
                dtype: t.dtype,
                shape: out_shape.clone(),
                chunks: chunks.clone(),
            },
            span,
        )?;
        let spec = WriteSpec {
            resolved: match &earlier {
                Some(w) => w.resolved.clone(),
                None if in_place => id.canonical.clone(),
                None => self.resolve(&path),
            },
            staging,
            path,
            shape: out_shape,
            chunks,
            codec,
            level,
            overwrite,
            existing,
            regions: regions.into_iter().map(|(r, _)| r).collect(),
            int_axes,
            placed,
            fill,
            in_place,
            dimension_names: None,
        };
        self.program.sinks.push(Sink {
            kind: SinkKind::Write(spec),
            node: x.node,
            span,
        });
        Ok(Value::None)
    }
}

/// A region value (tuple of slices and ints) checked against a shape.
/// Returns the box and which axes were given as single ints.
pub fn region_from_value(
    v: &Value,
    shape: &[u64],
    span: Span,
    index: Option<usize>,
) -> R<(Region, Vec<bool>)> {
    let which = match index {
        Some(i) => format!("region #{i}"),
        None => "the region".to_string(),
    };
    let items: Vec<Value> = match v {
        Value::Tuple(t) | Value::List(t) => t.iter().cloned().collect(),
        Value::Slice(..) => vec![v.clone()],
        other => {
            return Err(Diagnostic::error(
                codes::TYPE_MISMATCH,
                format!("{which} must be a tuple of slices, not {}", other.a_kind()),
            )
            .label(span, "e.g. (0:512, 256:768)"))
        }
    };
    if items.len() != shape.len() {
        return Err(Diagnostic::error(
            codes::BAD_INDEX,
            format!(
                "{which} has {} axes but the array has {}",
                items.len(),
                shape.len()
            ),
        )
        .label(span, format!("the array's shape is {}", fmt_shape(shape))));
    }
    let mut start = Vec::new();
    let mut end = Vec::new();
    let mut ints = Vec::new();
    for (ax, (it, n)) in items.iter().zip(shape).enumerate() {
        let n = *n as i64;
        let (s, e, is_int) = match it {
            Value::Int(i) => (*i, *i + 1, true),
            Value::Slice(a, b, step) => {
                if step.is_some_and(|s| s != 1) {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("{which} has a step on axis {ax}; regions are boxes"),
                    )
                    .label(span, "steps are not allowed in regions"));
                }
                (a.unwrap_or(0), b.unwrap_or(n), false)
            }
            other => {
                return Err(Diagnostic::error(
                    codes::TYPE_MISMATCH,
                    format!("{which}: axis {ax} is {}, not a slice", other.a_kind()),
                )
                .label(span, "expected start:stop"))
            }
        };
        let s = if s < 0 { s + n } else { s };
        let e = if e < 0 { e + n } else { e };
        if s < 0 || e > n || s > n {
            return Err(Diagnostic::error(
                codes::OUT_OF_BOUNDS,
                format!("{which} is out of bounds on axis {ax}: {s}:{e} in an axis of length {n}"),
            )
            .label(span, "outside the array"));
        }
        if e <= s {
            return Err(Diagnostic::error(
                codes::BAD_VALUE,
                format!("{which} is empty or reversed on axis {ax}: {s}:{e}"),
            )
            .label(span, "stop must be greater than start"));
        }
        start.push(s as u64);
        end.push(e as u64);
        ints.push(is_int);
    }
    Ok((Region::new(start, end), ints))
}

fn parse_boundary(b: &ArgVal, cval: f64) -> R<Boundary> {
    let s = get_str(b)?;
    Ok(match &*s {
        "reflect" => Boundary::Reflect,
        "mirror" => Boundary::Mirror,
        "nearest" => Boundary::Nearest,
        "wrap" => Boundary::Wrap,
        "constant" => Boundary::Constant(cval),
        "none" => Boundary::None,
        other => {
            let mut d =
                Diagnostic::error(codes::BAD_VALUE, format!("unknown boundary mode {other:?}"))
                    .label(b.span, "not a boundary mode")
                    .note(format!("modes: {}", Boundary::NAMES.join(", ")));
            if let Some(c) = closest(other, Boundary::NAMES.iter().copied()) {
                d = d.help(format!("did you mean \"{c}\"?"));
            }
            return Err(d);
        }
    })
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// `rois("img.ome.zarr/tables/NAME")`: a fractal ROI table (AnnData; columns
/// `x_micrometer`, `len_x_micrometer`, ... per space axis) as pixel regions of the image
/// two directories up, from its level-0 scale and translation: `start = round((x - t) / s)`,
/// `stop = round((x + len - t) / s)`, clamped to the image; axes without columns (channel,
/// time, a missing z) are whole.
fn roi_table(ev: &mut Evaluator, path: &str, dir: &std::path::Path, span: Span) -> R<Value> {
    let bad = |m: String| {
        Diagnostic::error(
            codes::BAD_ROIS,
            crate::diag::escape(&format!("{path}: {m}")),
        )
        .label(span, "cannot read regions from this ROI table")
    };
    let table = crate::io::anndata::read_table(dir).map_err(bad)?;
    let image_dir = dir.parent().and_then(|p| p.parent()).ok_or_else(|| {
        bad("no image around the table (expected img.ome.zarr/tables/NAME)".into())
    })?;
    let (fmt, attrs) = crate::io::ome::group_attributes(image_dir).ok_or_else(|| {
        bad(format!(
            "{} is not an OME-Zarr image group",
            image_dir.display()
        ))
    })?;
    let image = crate::io::ome::parse_image(fmt, &attrs)
        .map_err(|e| bad(format!("the image around the table: {e:?}")))?;
    let level0 = image_dir.join(image.levels[0].path.trim_matches('/'));
    let shape = ZarrReader::open(&level0)
        .map_err(|e| bad(e.to_string()))?
        .meta()
        .shape
        .clone();
    if shape.len() != image.axes.len() {
        return Err(bad("the image's axes and rank differ".into()));
    }
    let sp = image.spatial(0);
    let col = |name: &str| table.columns.iter().position(|c| c == name);
    let mut out = Vec::new();
    for row in &table.rows {
        let mut bounds = Vec::new();
        for (i, axis) in sp.axes.iter().enumerate() {
            let n = shape[i] as i64;
            let a = axis.name.as_str();
            let (Some(p), Some(l)) = (
                col(&format!("{a}_micrometer")),
                col(&format!("len_{a}_micrometer")),
            ) else {
                bounds.push((0, n));
                continue;
            };
            let per = axis
                .unit
                .as_deref()
                .and_then(kernels::length_in_metres)
                .map(|m| 1e-6 / m)
                .unwrap_or(1.0);
            let (x, len) = (row[p] * per, row[l] * per);
            let px = |v: f64| (((v - sp.translation[i]) / sp.scale[i]).round() as i64).clamp(0, n);
            bounds.push((px(x), px(x + len)));
        }
        out.push(Value::Tuple(
            bounds
                .iter()
                .map(|(a, b)| Value::Slice(Some(*a), Some(*b), None))
                .collect(),
        ));
    }
    let _ = ev;
    Ok(Value::List(out.into()))
}
