//! `x.write_ome(path, ...)` and `labels.write_ome(image, label=)`: an OME-Zarr (NGFF 0.5)
//! pyramid as one program. Level 0 is the array; level k is level k-1 as written, read
//! back and coarsened (never the source again), each level an ordinary write sink (so
//! `--resume` skips the chunks of every finished level). The group's `zarr.json` with
//! the `multiscales` metadata is a `GroupMetadata` written only after every level is
//! complete.

use super::builtins::{expected, get_bool, get_float, get_int, get_ints, get_str, ArgVal, Args};
use super::{ArrayVal, Evaluator, Value, R};
use crate::diag::{codes, Diagnostic, Span};
use crate::io::ome::{self, Axis, Level};
use crate::ir::GroupMetadata;

/// The axis letters `axes=` takes, in the order NGFF requires (time, channel, space).
const LETTERS: &str = "tczyx";

/// Synthetic arguments for calling another lowering (`write`, `coarsen`) by name.
fn args<'a>(fname: &'a str, given: Vec<(&'a str, ArgVal)>, span: Span) -> Args<'a> {
    let (params, slots) = given.into_iter().map(|(n, v)| (n, Some(v))).unzip();
    Args {
        fname,
        params,
        slots,
        rest: Vec::new(),
        callee_span: span,
        call_span: span,
    }
}

fn val(value: Value, span: Span) -> ArgVal {
    ArgVal {
        name: None,
        value,
        span,
    }
}

/// Check an `axes=` string against the rank: letters of `tczyx`, none repeated, time
/// before channel before space, one per dimension.
pub(super) fn parse_axes(s: &str, rank: usize, span: Span) -> R<Vec<char>> {
    let bad = |msg: String, label: &str| {
        Diagnostic::error(codes::OME_AXES_SPEC, msg)
            .label(span, label.to_string())
            .note("axes are letters of \"tczyx\" (time, channel, then space), one per dimension")
    };
    let letters: Vec<char> = s.chars().collect();
    for (i, c) in letters.iter().enumerate() {
        if !LETTERS.contains(*c) {
            return Err(bad(
                format!("unknown axis {:?} in axes {s:?}", c.to_string()),
                "not one of t, c, z, y, x",
            ));
        }
        if letters[..i].contains(c) {
            return Err(bad(
                format!("axis {:?} is repeated in axes {s:?}", c.to_string()),
                "each axis once",
            ));
        }
    }
    if letters.len() != rank {
        return Err(bad(
            format!(
                "axes {s:?} name {} axes but the array has {rank} dimensions",
                letters.len()
            ),
            "one letter per dimension",
        ));
    }
    let kind = |c: &char| match c {
        't' => 0,
        'c' => 1,
        _ => 2,
    };
    if letters.windows(2).any(|w| kind(&w[0]) > kind(&w[1])) {
        return Err(bad(
            format!("axes {s:?} are out of order: NGFF puts time, then channel, then space"),
            "order t, c, then z/y/x",
        ));
    }
    let spatial = letters.iter().filter(|c| kind(c) == 2).count();
    if !(2..=3).contains(&spatial) {
        return Err(bad(
            format!("axes {s:?} have {spatial} space axes; an OME-Zarr image has 2 or 3"),
            "two or three of z, y, x",
        ));
    }
    Ok(letters)
}

fn floats(a: &ArgVal, rank: usize, what: &str) -> R<Vec<f64>> {
    let v: Vec<f64> = match &a.value {
        Value::Tuple(t) | Value::List(t) => t
            .iter()
            .map(|x| get_float(&val(x.clone(), a.span)))
            .collect::<R<_>>()?,
        _ => vec![get_float(a)?; rank],
    };
    if v.len() != rank {
        return Err(Diagnostic::error(
            codes::OME_AXES,
            format!("{what} has {} values for {rank} axes", v.len()),
        )
        .label(a.span, "one value per axis"));
    }
    if what == "scale" && v.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
        return Err(
            Diagnostic::error(codes::BAD_VALUE, "scales must be positive numbers")
                .label(a.span, "a scale of zero, a negative or non-finite scale"),
        );
    }
    Ok(v)
}

impl Evaluator {
    /// `x.write_ome(path, levels=, method=, axes=, scale=, units=, chunks=, version=)`, or
    /// with `label=` a label image of the image at `path`.
    pub(super) fn write_ome(&mut self, x: ArrayVal, a: &Args, span: Span) -> R<Value> {
        let t = self.arr(&x).clone();
        let rank = t.ndim();
        let p = a.required("path")?;
        let image_path = get_str(p)?.trim_end_matches('/').to_string();
        let pspan = p.span;
        let label = match a.get("label") {
            Some(l) => {
                let n = get_str(l)?.to_string();
                if n.is_empty() || n.contains('/') || n.starts_with('.') {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("{n:?} is not a label name"),
                    )
                    .label(l.span, "a name without `/`, not starting with `.`"));
                }
                Some(n)
            }
            None => None,
        };
        if let Some(v) = a.get("version") {
            let s = get_str(v)?;
            if &*s != "0.5" {
                return Err(Diagnostic::error(
                    codes::OME_VERSION,
                    format!("write_ome writes NGFF version 0.5, not {s:?}"),
                )
                .label(v.span, "only \"0.5\" (Zarr v3)")
                .note("Tessera writes Zarr v3 arrays; NGFF 0.4 images are Zarr v2"));
            }
        }
        let levels = match a.get("levels") {
            Some(l) => {
                let n = get_int(l)?;
                if !(1..=32).contains(&n) {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        format!("levels={n}: a pyramid has 1 to 32 levels"),
                    )
                    .label(l.span, "out of range"));
                }
                n as usize
            }
            None => 5,
        };
        let method_arg = a.get("method").cloned();
        let method = match &method_arg {
            Some(m) => get_str(m)?.to_string(),
            None if label.is_some() => "mode".to_string(),
            None => "mean".to_string(),
        };
        if label.is_some() && method != "mode" && method != "nearest" {
            return Err(Diagnostic::error(
                codes::COARSEN_METHOD,
                format!("labels are downsampled by \"mode\" or \"nearest\", not {method:?}"),
            )
            .label(
                method_arg.as_ref().map(|m| m.span).unwrap_or(span),
                "averaging labels makes labels that do not exist",
            ));
        }
        // The frame: given, else the array's (from an OME-Zarr image), else for a label
        // image the image's level 0, else unit pixels.
        let mut frame = self.program.space(x.node).map(|s| (**s).clone());
        if frame.is_none() && label.is_some() {
            let resolved = self.resolve(&image_path);
            if let Some((fmt, attrs)) = ome::group_attributes(&resolved) {
                if let Ok(im) = ome::parse_image(fmt, &attrs) {
                    if im.axes.len() == rank {
                        frame = Some(im.spatial(0));
                    }
                }
            }
        }
        let letters: Vec<char> = match a.get("axes") {
            Some(ax) => parse_axes(&get_str(ax)?, rank, ax.span)?,
            None => match &frame {
                Some(f) if f.axes.iter().all(|x| x.name.chars().count() == 1) => {
                    let s: String = f.axes.iter().map(|x| x.name.as_str()).collect();
                    parse_axes(&s, rank, span)?
                }
                _ if (2..=3).contains(&rank) => LETTERS[5 - rank..].chars().collect(),
                _ => {
                    return Err(Diagnostic::error(
                        codes::OME_AXES_SPEC,
                        format!("a {rank}-dimensional array needs `axes=` to name its axes"),
                    )
                    .label(span, "say which axes these are, as axes=\"czyx\"")
                    .note("without `axes=`, 2-D arrays are yx and 3-D zyx"))
                }
            },
        };
        let scale = match a.get("scale") {
            Some(s) => floats(s, rank, "scale")?,
            None => frame
                .as_ref()
                .map(|f| f.scale.clone())
                .unwrap_or(vec![1.0; rank]),
        };
        let translation = frame
            .as_ref()
            .map(|f| f.translation.clone())
            .unwrap_or(vec![0.0; rank]);
        let units: Vec<Option<String>> = match a.get("units") {
            Some(u) => match &u.value {
                // One unit for the space axes.
                Value::Str(s) => letters
                    .iter()
                    .map(|c| "zyx".contains(*c).then(|| s.to_string()))
                    .collect(),
                Value::Tuple(l) | Value::List(l) if l.len() == rank => l
                    .iter()
                    .map(|v| match v {
                        Value::Str(s) => Ok(Some(s.to_string())),
                        Value::None => Ok(None),
                        _ => Err(expected("a unit name or none per axis", u)),
                    })
                    .collect::<R<_>>()?,
                Value::Tuple(l) | Value::List(l) => {
                    return Err(Diagnostic::error(
                        codes::OME_AXES,
                        format!("units has {} values for {rank} axes", l.len()),
                    )
                    .label(u.span, "one unit (or none) per axis"))
                }
                _ => return Err(expected("a unit name, or one per axis", u)),
            },
            None => match &frame {
                Some(f) => f.axes.iter().map(|x| x.unit.clone()).collect(),
                None => vec![None; rank],
            },
        };
        let axes: Vec<Axis> = letters
            .iter()
            .zip(&units)
            .map(|(c, u)| Axis {
                name: c.to_string(),
                kind: Some(ome::axis_type(*c).to_string()),
                unit: u.clone(),
            })
            .collect();
        let chunks: Option<Vec<u64>> = match a.get("chunks") {
            Some(c) => {
                let v = get_ints(c)?;
                if v.iter().any(|n| *n < 1) || (v.len() != 1 && v.len() != rank) {
                    return Err(Diagnostic::error(
                        codes::BAD_VALUE,
                        "chunks are positive ints, one or one per axis",
                    )
                    .label(c.span, "bad chunk shape"));
                }
                Some(if v.len() == 1 {
                    vec![v[0] as u64; rank]
                } else {
                    v.iter().map(|n| *n as u64).collect()
                })
            }
            None => None,
        };
        let overwrite = match a.get("overwrite") {
            Some(o) => get_bool(o)?,
            None => false,
        };
        let group = match &label {
            Some(n) => format!("{image_path}/labels/{n}"),
            None => image_path.clone(),
        };
        // Space axes halve per level; time and channel stay.
        let factors: Vec<i64> = letters
            .iter()
            .map(|c| if "zyx".contains(*c) { 2 } else { 1 })
            .collect();
        let shift = method != "nearest";
        let dtype = t.dtype;
        let mut level_meta = Vec::new();
        let mut cur = x.clone();
        for k in 0..levels {
            let lpath = format!("{group}/{k}");
            if k > 0 {
                // Level k from level k-1 as written.
                let prev = format!("{group}/{}", k - 1);
                let Value::Array(above) =
                    self.open_zarr(&val(Value::Str(prev.as_str().into()), pspan))?
                else {
                    return Ok(Value::None);
                };
                let factor_val = Value::Tuple(factors.iter().map(|f| Value::Int(*f)).collect());
                let ca = args(
                    "coarsen",
                    vec![
                        ("factors", val(factor_val, span)),
                        (
                            "reduce",
                            val(
                                Value::Str(method.as_str().into()),
                                method_arg.as_ref().map(|m| m.span).unwrap_or(span),
                            ),
                        ),
                    ],
                    span,
                );
                let Value::Array(c) = self.coarsen(above, &ca, span)? else {
                    return Ok(Value::None);
                };
                cur = c;
                if self.arr(&cur).dtype != dtype {
                    let id = self.cast_node(cur.node, dtype, span)?;
                    cur = ArrayVal::new(id);
                }
            }
            let lt = self.arr(&cur).clone();
            let mut wa = vec![
                ("path", val(Value::Str(lpath.as_str().into()), pspan)),
                ("overwrite", val(Value::Bool(overwrite), span)),
            ];
            if let Some(c) = &chunks {
                let cl: Vec<Value> = c
                    .iter()
                    .zip(&lt.shape)
                    .map(|(c, n)| Value::Int((*c).min((*n).max(1)) as i64))
                    .collect();
                wa.push(("chunks", val(Value::Tuple(cl.into()), span)));
            }
            self.write(cur.clone(), &args("write", wa, span), span)?;
            if let Some(crate::ir::SinkKind::Write(w)) =
                self.program.sinks.last_mut().map(|s| &mut s.kind)
            {
                w.dimension_names = Some(axes.iter().map(|a| a.name.clone()).collect());
            }
            let f: Vec<f64> = factors.iter().map(|f| (*f as f64).powi(k as i32)).collect();
            level_meta.push(Level {
                path: k.to_string(),
                scale: scale.iter().zip(&f).map(|(s, f)| s * f).collect(),
                translation: translation
                    .iter()
                    .zip(&scale)
                    .zip(&f)
                    .map(|((t, s), f)| if shift { t + (f - 1.0) / 2.0 * s } else { *t })
                    .collect(),
            });
        }
        let name = label.clone().unwrap_or_else(|| {
            std::path::Path::new(&image_path)
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .trim_end_matches(".zarr")
                        .trim_end_matches(".ome")
                        .to_string()
                })
                .unwrap_or_default()
        });
        let attributes =
            ome::multiscales_attributes(&name, &axes, &level_meta, &method, label.is_some());
        self.program.group_metadata.push(GroupMetadata {
            dir: self.resolve(&group),
            attributes,
            add_label: label,
        });
        Ok(Value::None)
    }
}
