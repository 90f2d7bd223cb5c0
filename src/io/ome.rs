//! OME-Zarr (NGFF) image groups: the `multiscales` metadata of NGFF 0.4 (Zarr v2,
//! `.zattrs`) and 0.5 (Zarr v3, `zarr.json` under `attributes.ome`), read into the levels
//! of a pyramid and the physical axes, scale and translation of each.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::path::Path;

/// NGFF versions Tessera reads.
pub const VERSIONS: &[&str] = &["0.4", "0.5"];

/// One axis of an image: its name, type (`space`, `time`, `channel`) and unit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Axis {
    pub name: String,
    pub kind: Option<String>,
    pub unit: Option<String>,
}

/// The physical frame of an array: one axis, scale and translation per dimension.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Spatial {
    pub axes: Vec<Axis>,
    pub scale: Vec<f64>,
    pub translation: Vec<f64>,
}

impl Spatial {
    /// `axes zyx scale [0.5, 0.25, 0.25] micrometer`, for `check` and the REPL.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.axes.iter().map(|a| a.name.as_str()).collect();
        let joined = if names.iter().all(|n| n.chars().count() == 1) {
            names.concat()
        } else {
            format!("({})", names.join(", "))
        };
        let nums = |v: &[f64]| {
            let s: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
            format!("[{}]", s.join(", "))
        };
        let mut s = format!("axes {joined} scale {}", nums(&self.scale));
        if self.translation.iter().any(|t| *t != 0.0) {
            s.push_str(&format!(" translation {}", nums(&self.translation)));
        }
        let mut units: Vec<&str> = self.axes.iter().filter_map(|a| a.unit.as_deref()).collect();
        units.dedup();
        if !units.is_empty() {
            s.push(' ');
            s.push_str(&units.join("/"));
        }
        s
    }
}

/// One level of a pyramid: the array's path inside the group and its frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    pub path: String,
    pub scale: Vec<f64>,
    pub translation: Vec<f64>,
}

/// An NGFF image group's first multiscale.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub version: String,
    pub axes: Vec<Axis>,
    pub levels: Vec<Level>,
}

impl Image {
    pub fn spatial(&self, level: usize) -> Spatial {
        let l = &self.levels[level];
        Spatial {
            axes: self.axes.clone(),
            scale: l.scale.clone(),
            translation: l.translation.clone(),
        }
    }
}

/// Why a group cannot be read as an image; each maps to one diagnostic code.
#[derive(Debug, PartialEq)]
pub enum OmeError {
    /// A Zarr group without (usable) `multiscales` metadata: what is missing.
    NotOme(String),
    /// A `version` Tessera does not read.
    Version(String),
    /// Axes that disagree with a level's rank or with the scale.
    Axes(String),
}

/// Whether a local directory is a Zarr group (v2 `.zgroup` or v3 `zarr.json` with
/// `node_type: group`), and its attributes.
pub fn group_attributes(dir: &Path) -> Option<(u8, Json)> {
    if let Ok(t) = std::fs::read_to_string(dir.join("zarr.json")) {
        let j: Json = serde_json::from_str(&t).ok()?;
        if j.get("node_type").and_then(Json::as_str) != Some("group") {
            return None;
        }
        let attrs = j.get("attributes").cloned().unwrap_or(Json::Null);
        return Some((3, attrs));
    }
    if dir.join(".zgroup").is_file() {
        let attrs = std::fs::read_to_string(dir.join(".zattrs"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Json::Null);
        return Some((2, attrs));
    }
    None
}

fn numbers(v: &Json) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(Json::as_f64).collect()
}

/// A scale and a translation, each if given.
type Transforms = (Option<Vec<f64>>, Option<Vec<f64>>);

/// The scale and translation of a `coordinateTransformations` list (`None`: none given).
fn transforms(v: Option<&Json>, what: &str) -> Result<Transforms, OmeError> {
    let Some(list) = v else {
        return Ok((None, None));
    };
    let list = list.as_array().ok_or_else(|| {
        OmeError::NotOme(format!("{what}: `coordinateTransformations` is not a list"))
    })?;
    let (mut scale, mut translation) = (None, None);
    for t in list {
        match t.get("type").and_then(Json::as_str) {
            Some("scale") => {
                scale = Some(t.get("scale").and_then(numbers).ok_or_else(|| {
                    OmeError::NotOme(format!("{what}: a scale transformation without a `scale` list of numbers"))
                })?)
            }
            Some("translation") => {
                translation = Some(t.get("translation").and_then(numbers).ok_or_else(|| {
                    OmeError::NotOme(format!(
                        "{what}: a translation transformation without a `translation` list of numbers"
                    ))
                })?)
            }
            Some("identity") => {}
            Some(other) => {
                return Err(OmeError::NotOme(format!(
                    "{what}: coordinate transformation `{other}` is not one of scale, translation, identity"
                )))
            }
            None => {
                return Err(OmeError::NotOme(format!("{what}: a coordinate transformation without `type`")))
            }
        }
    }
    Ok((scale, translation))
}

/// The first multiscale of an image group's attributes (`zarr_format` 2 or 3).
pub fn parse_image(zarr_format: u8, attrs: &Json) -> Result<Image, OmeError> {
    // 0.5 keeps everything under `ome`, with the version there; 0.4 has `multiscales` at
    // the top with the version inside.
    let (ms_list, outer_version) = match attrs.get("ome") {
        Some(ome) => (
            ome.get("multiscales"),
            ome.get("version").and_then(Json::as_str),
        ),
        None => (attrs.get("multiscales"), None),
    };
    let Some(ms_list) = ms_list else {
        let place = if zarr_format == 3 {
            "`attributes.ome.multiscales` in zarr.json"
        } else {
            "`multiscales` in .zattrs"
        };
        return Err(OmeError::NotOme(format!("the group has no {place}")));
    };
    let ms = ms_list
        .as_array()
        .and_then(|l| l.first())
        .ok_or_else(|| OmeError::NotOme("`multiscales` is not a non-empty list".into()))?;
    let version = outer_version
        .or_else(|| ms.get("version").and_then(Json::as_str))
        .ok_or_else(|| OmeError::NotOme("no NGFF `version` in the multiscales metadata".into()))?
        .to_string();
    if !VERSIONS.contains(&version.as_str()) {
        return Err(OmeError::Version(version));
    }
    let axes_json = ms
        .get("axes")
        .and_then(Json::as_array)
        .ok_or_else(|| OmeError::NotOme("the multiscale has no `axes` list".into()))?;
    let mut axes = Vec::new();
    for a in axes_json {
        let name = a
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| OmeError::NotOme("an axis without a `name`".into()))?;
        let s = |k: &str| a.get(k).and_then(Json::as_str).map(str::to_string);
        axes.push(Axis {
            name: name.to_string(),
            kind: s("type"),
            unit: s("unit"),
        });
    }
    let n = axes.len();
    let (gscale, gtrans) = transforms(ms.get("coordinateTransformations"), "the multiscale")?;
    let datasets = ms
        .get("datasets")
        .and_then(Json::as_array)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| OmeError::NotOme("the multiscale has no `datasets`".into()))?;
    let mut levels = Vec::new();
    for (i, d) in datasets.iter().enumerate() {
        let path = d
            .get("path")
            .and_then(Json::as_str)
            .ok_or_else(|| OmeError::NotOme(format!("dataset {i} has no `path`")))?
            .to_string();
        let what = format!("dataset `{path}`");
        let (scale, trans) = transforms(d.get("coordinateTransformations"), &what)?;
        let mut scale = scale.unwrap_or_else(|| vec![1.0; n]);
        let mut trans = trans.unwrap_or_else(|| vec![0.0; n]);
        for (v, kind) in [(&scale, "scale"), (&trans, "translation")] {
            if v.len() != n {
                return Err(OmeError::Axes(format!(
                    "{what} has a {kind} of {} values for {n} axes",
                    v.len()
                )));
            }
        }
        if let Some(g) = &gscale {
            if g.len() == n {
                for k in 0..n {
                    scale[k] *= g[k];
                    trans[k] *= g[k];
                }
            }
        }
        if let Some(g) = &gtrans {
            if g.len() == n {
                for k in 0..n {
                    trans[k] += g[k];
                }
            }
        }
        levels.push(Level {
            path,
            scale,
            translation: trans,
        });
    }
    Ok(Image {
        version,
        axes,
        levels,
    })
}

/// Write `path` atomically (a temporary beside it, then a rename).
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("json.tmp.{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn group_json(attributes: Json) -> String {
    let j = serde_json::json!({
        "zarr_format": 3,
        "node_type": "group",
        "attributes": attributes,
    });
    serde_json::to_string_pretty(&j).unwrap_or_default()
}

/// Write a group's `zarr.json` (after its arrays are complete); a label image is also
/// listed in the `labels` group above it, keeping the labels already listed there.
pub fn write_group(g: &crate::ir::GroupMetadata) -> std::io::Result<()> {
    write_atomic(&g.dir.join("zarr.json"), &group_json(g.attributes.clone()))?;
    if let (Some(name), Some(labels_dir)) = (&g.add_label, g.dir.parent()) {
        let mut names: Vec<Json> = group_attributes(labels_dir)
            .and_then(|(_, a)| a.get("ome")?.get("labels")?.as_array().cloned())
            .unwrap_or_default();
        if !names.iter().any(|n| n.as_str() == Some(name)) {
            names.push(Json::from(name.as_str()));
        }
        let attrs = serde_json::json!({"ome": {"version": "0.5", "labels": names}});
        write_atomic(&labels_dir.join("zarr.json"), &group_json(attrs))?;
    }
    Ok(())
}

/// The NGFF type of an axis named by one letter of `tczyx`.
pub fn axis_type(letter: char) -> &'static str {
    match letter {
        't' => "time",
        'c' => "channel",
        _ => "space",
    }
}

/// `multiscales` attributes (NGFF 0.5) of a pyramid: `axes`, then per level its path and
/// frame; `label` adds `image-label` metadata.
pub fn multiscales_attributes(
    name: &str,
    axes: &[Axis],
    levels: &[Level],
    method: &str,
    label: bool,
) -> Json {
    let axes: Vec<Json> = axes
        .iter()
        .map(|a| {
            let mut m = serde_json::Map::new();
            m.insert("name".into(), Json::from(a.name.as_str()));
            if let Some(k) = &a.kind {
                m.insert("type".into(), Json::from(k.as_str()));
            }
            if let Some(u) = &a.unit {
                m.insert("unit".into(), Json::from(u.as_str()));
            }
            Json::Object(m)
        })
        .collect();
    let datasets: Vec<Json> = levels
        .iter()
        .map(|l| {
            serde_json::json!({
                "path": l.path,
                "coordinateTransformations": [
                    {"type": "scale", "scale": l.scale},
                    {"type": "translation", "translation": l.translation},
                ],
            })
        })
        .collect();
    let mut ome = serde_json::json!({
        "version": "0.5",
        "multiscales": [{
            "name": name,
            "axes": axes,
            "datasets": datasets,
            "type": method,
            "metadata": {"method": format!("tessera coarsen reduce={method:?}")},
        }],
    });
    if label {
        ome["image-label"] = serde_json::json!({"version": "0.5", "source": {"image": "../../"}});
    }
    serde_json::json!({ "ome": ome })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_versions() {
        let v4: Json = serde_json::from_str(
            r#"{"multiscales":[{"version":"0.4","axes":[{"name":"y","type":"space","unit":"micrometer"},{"name":"x","type":"space"}],
            "datasets":[{"path":"0","coordinateTransformations":[{"type":"scale","scale":[0.5,0.5]}]},
                        {"path":"1","coordinateTransformations":[{"type":"scale","scale":[1.0,1.0]},{"type":"translation","translation":[0.25,0.25]}]}]}]}"#,
        )
        .unwrap();
        let im = parse_image(2, &v4).unwrap();
        assert_eq!(im.levels.len(), 2);
        assert_eq!(im.levels[1].translation, vec![0.25, 0.25]);
        assert_eq!(im.axes[0].unit.as_deref(), Some("micrometer"));
        let v5: Json = serde_json::from_str(
            r#"{"ome":{"version":"0.5","multiscales":[{"axes":[{"name":"x"}],"datasets":[{"path":"s0"}]}]}}"#,
        )
        .unwrap();
        assert_eq!(parse_image(3, &v5).unwrap().levels[0].scale, vec![1.0]);
        let bad: Json =
            serde_json::from_str(r#"{"ome":{"version":"0.9","multiscales":[{}]}}"#).unwrap();
        assert_eq!(parse_image(3, &bad), Err(OmeError::Version("0.9".into())));
        assert!(matches!(
            parse_image(2, &Json::Null),
            Err(OmeError::NotOme(_))
        ));
    }
}
