//! Kernel values (`gaussian(2)`, `median(3)`, ...): argument validation and the dtype
//! rules scipy.ndimage applies; the registry entries and rules of kernels a host program
//! registers.

use super::builtins::{ArgVal, Args};
use super::registry::{Builtin, Category, Lowering, Returns};
use super::{Value, R};
use crate::diag::{codes, Diagnostic, Span};
use crate::dtype::DType;
use crate::ir::native::{KernelArgs, NativeKernel, NativeRef};
use crate::ir::{Kernel, KernelKind};
use std::sync::Arc;

fn numbers(a: &ArgVal, what: &str) -> R<Vec<f64>> {
    let bad = || {
        Diagnostic::error(
            codes::TYPE_MISMATCH,
            format!(
                "{what} must be a number or a tuple of numbers, not {}",
                a.value.a_kind()
            ),
        )
        .label(a.span, "expected a number")
    };
    match &a.value {
        Value::Int(i) => Ok(vec![*i as f64]),
        Value::Float(f) => Ok(vec![*f]),
        Value::Tuple(t) | Value::List(t) => t
            .iter()
            .map(|v| match v {
                Value::Int(i) => Ok(*i as f64),
                Value::Float(f) => Ok(*f),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

fn arg(slots: &[Option<ArgVal>], i: usize) -> Option<&ArgVal> {
    slots
        .get(i)
        .and_then(|s| s.as_ref())
        .filter(|a| !matches!(a.value, Value::None))
}

fn missing(name: &str, param: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        codes::ARITY,
        format!("`{name}` is missing the argument `{param}`"),
    )
    .label(span, format!("`{param}` is not given"))
}

/// Build the kernel a kernel constructor's call gives from its bound arguments.
pub fn make_kernel(kind: KernelKind, a: &Args) -> R<Kernel> {
    let slots = &a.slots;
    let span = a.call_span;
    let name = a.fname;
    let unit = match a.get("unit") {
        Some(u) => {
            let s = super::builtins::get_str(u)?.to_string();
            if length_in_metres(&s).is_none() {
                return Err(Diagnostic::error(
                    codes::BAD_VALUE,
                    crate::diag::escape(&format!("unknown length unit {s:?}")),
                )
                .label(u.span, "not a unit of length")
                .note("units: meter, centimeter, millimeter, micrometer, nanometer, angstrom, picometer"));
            }
            Some(s)
        }
        None => None,
    };
    let mut k = Kernel {
        kind: kind.clone(),
        params: vec![],
        truncate: 4.0,
        axis: -1,
        unit: unit.clone(),
    };
    match kind {
        KernelKind::Gaussian | KernelKind::GaussianGradientMagnitude => {
            let a = arg(slots, 0).ok_or_else(|| missing(name, "sigma", span))?;
            let sigma = numbers(a, "sigma")?;
            if let Some(s) = sigma.iter().find(|s| **s < 0.0 || !s.is_finite()) {
                return Err(Diagnostic::error(
                    codes::BAD_VALUE,
                    format!("sigma {} is not valid", super::value::fmt_float(*s)),
                )
                .label(a.span, "sigma must be zero or positive")
                .help("use 0 to leave an axis unfiltered"));
            }
            if sigma.iter().all(|s| *s == 0.0) {
                return Err(Diagnostic::error(
                    codes::BAD_VALUE,
                    "a sigma of 0 on every axis filters nothing",
                )
                .label(a.span, "sigma must be positive on at least one axis"));
            }
            if let Some(t) = arg(slots, 1) {
                let tv = numbers(t, "truncate")?;
                if tv.len() != 1 || tv[0] <= 0.0 || !tv[0].is_finite() {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        "truncate must be one positive number",
                    )
                    .label(t.span, "e.g. truncate=4.0"));
                }
                k.truncate = tv[0];
            }
            k.params = sigma;
        }
        KernelKind::Uniform | KernelKind::Median | KernelKind::Minimum | KernelKind::Maximum => {
            let a = arg(slots, 0).ok_or_else(|| missing(name, "size", span))?;
            let size = numbers(a, "size")?;
            let whole = |s: f64| unit.is_some() || (s >= 1.0 && s.fract() == 0.0);
            if let Some(s) = size
                .iter()
                .find(|s| !(whole(**s) && **s > 0.0 && s.is_finite()))
            {
                return Err(Diagnostic::error(
                    codes::BAD_VALUE,
                    format!("size {} is not valid", super::value::fmt_float(*s)),
                )
                .label(a.span, "sizes are whole numbers of at least 1")
                .help("use 1 to leave an axis alone"));
            }
            k.params = size;
        }
        KernelKind::Sobel => {
            if let Some(a) = arg(slots, 0) {
                match a.value {
                    Value::Int(i) => k.axis = i,
                    _ => {
                        return Err(Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            "sobel's axis must be an int",
                        )
                        .label(a.span, "expected an int"))
                    }
                }
            }
        }
        // Native kernels bind their arguments in their own entry (`native_entry`).
        KernelKind::Laplace | KernelKind::Native(_) => {}
    }
    check_radius(&k, slots, span)?;
    Ok(k)
}

/// Refuse a footprint radius above `MAX_KERNEL_RADIUS` (E0206), pointing at the argument
/// that makes it (sigma or size, or truncate when it is the larger factor).
fn check_radius(k: &Kernel, slots: &[Option<ArgVal>], span: Span) -> R<()> {
    let max = crate::ir::MAX_KERNEL_RADIUS as f64;
    let Some(p) = k.params.iter().copied().find(|p| k.radius_f64(*p) > max) else {
        return Ok(());
    };
    let r = k.radius_f64(p);
    let gaussian = matches!(
        k.kind,
        KernelKind::Gaussian | KernelKind::GaussianGradientMagnitude
    );
    let blame = if gaussian && k.truncate > p {
        arg(slots, 1)
    } else {
        arg(slots, 0)
    };
    let what = if gaussian {
        format!(
            "sigma {} with truncate {} reaches {} samples either side",
            super::value::fmt_float(p),
            super::value::fmt_float(k.truncate),
            fmt_big(r)
        )
    } else {
        format!(
            "size {} reaches {} samples either side",
            super::value::fmt_float(p),
            fmt_big(r)
        )
    };
    Err(Diagnostic::error(
        codes::KERNEL_TOO_LARGE,
        format!("{} kernel too large: {what}", k.name()),
    )
    .label(
        blame.map(|a| a.span).unwrap_or(span),
        format!(
            "the radius is at most {} samples",
            crate::ir::MAX_KERNEL_RADIUS
        ),
    )
    .help("a footprint longer than the array is allowed, but not one this long"))
}

fn fmt_big(v: f64) -> String {
    if v < 1e15 {
        format!("{}", v as u64)
    } else {
        format!("{v:e}")
    }
}

/// scipy.ndimage filters work on integer and float arrays.
pub fn check_dtype(k: &Kernel, d: DType, span: Span) -> R<()> {
    if d == DType::Bool || d.is_complex() {
        return Err(Diagnostic::error(
            codes::UNSUPPORTED_DTYPE,
            format!("{} does not filter {d} arrays", k.name()),
        )
        .label(span, format!("the array is {d}"))
        .help(if d == DType::Bool {
            "convert the mask first, e.g. `x.astype(\"u8\")`"
        } else {
            "filter the real and imaginary parts separately"
        }));
    }
    Ok(())
}

/// The registry entry of a host program's kernel: a kernel constructor whose call binds
/// the script's numbers to the kernel's parameters (kinds checked, defaults filled in).
pub fn native_entry(k: Arc<NativeKernel>) -> Builtin {
    let specs: Vec<String> = k
        .params()
        .iter()
        .map(|p| {
            let ty = if p.int { "int" } else { "float" };
            match p.default {
                Some(d) if p.int => format!("{}: {ty} = {}", p.name, d as i64),
                Some(d) => format!("{}: {ty} = {}", p.name, super::value::fmt_float(d)),
                None => format!("{}: {ty}", p.name),
            }
        })
        .collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let doc = if k.doc_line().trim().is_empty() {
        "A kernel the host program registered."
    } else {
        k.doc_line()
    };
    let kernel = k.clone();
    let lower = move |_: &mut super::Evaluator, _: Option<super::ArrayVal>, a: &Args| {
        let mut values = Vec::with_capacity(kernel.params().len());
        for p in kernel.params() {
            let v = match a.get(&p.name) {
                Some(arg) => match arg.value {
                    Value::Int(i) => i as f64,
                    Value::Float(f) if !p.int && f.is_finite() => f,
                    _ => {
                        return Err(super::builtins::expected(
                            if p.int { "an int" } else { "a finite number" },
                            arg,
                        ))
                    }
                },
                None => match p.default {
                    Some(d) => d,
                    None => return Err(missing(a.fname, &p.name, a.call_span)),
                },
            };
            values.push(v);
        }
        let args = KernelArgs::new(kernel.params(), &values);
        kernel.check_args(&args).map_err(|m| {
            Diagnostic::error(
                codes::BAD_VALUE,
                crate::diag::escape(&format!("`{}`: {m}", kernel.name())),
            )
            .label(a.call_span, "arguments out of the kernel's domain")
        })?;
        Ok(Value::Kernel(std::rc::Rc::new(Kernel {
            kind: KernelKind::Native(NativeRef(kernel.clone())),
            params: values,
            truncate: 4.0,
            axis: -1,
            unit: None,
        })))
    };
    Builtin::new(
        k.name(),
        Category::Kernel,
        &specs,
        Returns::Kernel,
        doc,
        Lowering::Dynamic(std::rc::Rc::new(lower)),
    )
}

/// A host program's kernel applied to an array of type `t`: the output dtype from its
/// dtype rule (E0202 with its message) and its footprint, one halo per axis of at most
/// `MAX_KERNEL_RADIUS` (E0107).
pub fn native_rules(
    n: &NativeKernel,
    k: &Kernel,
    t: &crate::ir::ArrayType,
    span: Span,
) -> R<(DType, Vec<u64>)> {
    let args = KernelArgs::new(n.params(), &k.params);
    let dtype = n.dtype_for(t.dtype, &args).map_err(|m| {
        Diagnostic::error(
            codes::UNSUPPORTED_DTYPE,
            crate::diag::escape(&format!(
                "the kernel `{}` refuses {}: {m}",
                n.name(),
                t.dtype
            )),
        )
        .label(span, format!("the array is {}", t.dtype))
    })?;
    let radius = n.halo_for(&args, t.ndim());
    if radius.len() != t.ndim() {
        return Err(Diagnostic::error(
            codes::KERNEL_FOOTPRINT,
            format!(
                "the kernel `{}` gives a footprint of {} axes for a {}-d array",
                n.name(),
                radius.len(),
                t.ndim()
            ),
        )
        .label(span, format!("needs one halo per axis ({})", t.ndim())));
    }
    if let Some(r) = radius.iter().find(|r| **r > crate::ir::MAX_KERNEL_RADIUS) {
        return Err(Diagnostic::error(
            codes::KERNEL_FOOTPRINT,
            format!("the kernel `{}` asks for a halo of {r} samples", n.name()),
        )
        .label(
            span,
            format!(
                "the radius is at most {} samples",
                crate::ir::MAX_KERNEL_RADIUS
            ),
        ));
    }
    Ok((dtype, radius))
}

/// Metres in one `unit` (the NGFF length units in use), `None` for anything else.
pub fn length_in_metres(unit: &str) -> Option<f64> {
    Some(match unit {
        "meter" => 1.0,
        "centimeter" => 1e-2,
        "millimeter" => 1e-3,
        "micrometer" => 1e-6,
        "nanometer" => 1e-9,
        "angstrom" => 1e-10,
        "picometer" => 1e-12,
        _ => return None,
    })
}

/// A kernel with physical sizes (`unit=`) in pixels of an array with frame `space`:
/// sigma divided by the axis' scale (in the axis' unit; a space axis without a unit is
/// taken to be in the kernel's), box sizes rounded to whole pixels (at least 1). Axes
/// that are not lengths (time, channel) are left alone: sigma 0, size 1.
pub fn to_pixels(
    k: &Kernel,
    space: Option<&crate::io::ome::Spatial>,
    rank: usize,
    kspan: crate::diag::Span,
) -> R<Kernel> {
    let Some(unit) = &k.unit else {
        return Ok(k.clone());
    };
    let Some(space) = space else {
        return Err(Diagnostic::error(
            codes::BAD_VALUE,
            format!(
                "`{}` sizes in {unit} need an array with a physical scale",
                k.name()
            ),
        )
        .label(kspan, "this array has no axes or scale")
        .help("read it from an OME-Zarr image, or give the sizes in pixels"));
    };
    let Some(params) = k.params_for(rank) else {
        return Err(Diagnostic::error(
            codes::BAD_VALUE,
            format!(
                "{} has parameters for {} axes but the array has {rank}",
                k.name(),
                k.params.len()
            ),
        )
        .label(kspan, "give one value per axis, or a single value"));
    };
    let per = length_in_metres(unit).unwrap_or(1.0);
    let size_kernel = !matches!(
        k.kind,
        KernelKind::Gaussian | KernelKind::GaussianGradientMagnitude
    );
    let mut out = k.clone();
    out.unit = None;
    out.params = params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let axis = &space.axes[i];
            let is_length = axis.kind.as_deref().is_none_or(|t| t == "space")
                && axis
                    .unit
                    .as_deref()
                    .is_none_or(|u| length_in_metres(u).is_some());
            if !is_length {
                return if size_kernel { 1.0 } else { 0.0 };
            }
            let axis_m = axis
                .unit
                .as_deref()
                .and_then(length_in_metres)
                .unwrap_or(per);
            let px = p * per / (space.scale[i] * axis_m);
            if size_kernel {
                px.round().max(1.0)
            } else {
                px
            }
        })
        .collect();
    Ok(out)
}
