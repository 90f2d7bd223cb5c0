//! `rois(path)`: regions of interest from JSON or CSV files, as a list of region values.
//!
//! JSON: `[{"offset": [..], "shape": [..]}, ...]` or `[[[start, stop], ...per axis], ...]`.
//! CSV: one region per row. With a header whose columns start with `offset` and `shape`,
//! the offsets come first, then the shapes, each in axis order; otherwise every row holds
//! `start, stop` for each axis in turn. A header row is recognised by a non-numeric cell.

use super::Value;

fn region(bounds: &[(i64, i64)]) -> Value {
    Value::Tuple(
        bounds
            .iter()
            .map(|(a, b)| Value::Slice(Some(*a), Some(*b), None))
            .collect(),
    )
}

fn int(v: &serde_json::Value, what: &str) -> Result<i64, String> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        .ok_or_else(|| format!("{what} is not an integer: {v}"))
}

fn from_json(text: &str) -> Result<Vec<Value>, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let items = doc.as_array().ok_or("expected a JSON list of regions")?;
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let bounds: Vec<(i64, i64)> = if let Some(obj) = it.as_object() {
            let off = obj
                .get("offset")
                .and_then(|v| v.as_array())
                .ok_or(format!("region #{i} has no \"offset\" list"))?;
            let shape = obj
                .get("shape")
                .and_then(|v| v.as_array())
                .ok_or(format!("region #{i} has no \"shape\" list"))?;
            if off.len() != shape.len() {
                return Err(format!(
                    "region #{i}: offset and shape have different lengths"
                ));
            }
            off.iter()
                .zip(shape)
                .map(|(o, s)| {
                    let o = int(o, &format!("region #{i} offset"))?;
                    let s = int(s, &format!("region #{i} shape"))?;
                    Ok((o, o + s))
                })
                .collect::<Result<_, String>>()?
        } else if let Some(axes) = it.as_array() {
            axes.iter()
                .map(|ax| {
                    let pair = ax
                        .as_array()
                        .filter(|p| p.len() == 2)
                        .ok_or(format!("region #{i}: each axis must be [start, stop]"))?;
                    Ok((
                        int(&pair[0], &format!("region #{i} start"))?,
                        int(&pair[1], &format!("region #{i} stop"))?,
                    ))
                })
                .collect::<Result<_, String>>()?
        } else {
            return Err(format!("region #{i} is neither an object nor a list"));
        };
        out.push(region(&bounds));
    }
    Ok(out)
}

fn from_csv(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(|c| c.trim()).collect();
        let nums: Result<Vec<i64>, _> = cells.iter().map(|c| c.parse::<i64>()).collect();
        let nums = match nums {
            Ok(n) => n,
            Err(_) if header.is_none() && out.is_empty() => {
                header = Some(cells.iter().map(|c| c.to_ascii_lowercase()).collect());
                continue;
            }
            Err(_) => return Err(format!("line {}: expected integers", lineno + 1)),
        };
        if nums.len() % 2 != 0 || nums.is_empty() {
            return Err(format!(
                "line {}: expected two numbers per axis, found {}",
                lineno + 1,
                nums.len()
            ));
        }
        let nd = nums.len() / 2;
        let offset_shape = header.as_ref().is_some_and(|h| {
            h.len() == nums.len()
                && h[..nd].iter().all(|c| c.starts_with("offset"))
                && h[nd..].iter().all(|c| c.starts_with("shape"))
        });
        let bounds: Vec<(i64, i64)> = if offset_shape {
            (0..nd).map(|a| (nums[a], nums[a] + nums[nd + a])).collect()
        } else {
            (0..nd).map(|a| (nums[2 * a], nums[2 * a + 1])).collect()
        };
        out.push(region(&bounds));
    }
    Ok(out)
}

/// Parse a regions file; the error text names what is wrong (the caller adds the path).
pub fn load(path: &std::path::Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('[');
    if is_json {
        from_json(&text)
    } else {
        from_csv(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: &[Value]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn json_forms() {
        let a = from_json(r#"[{"offset": [1, 2], "shape": [3, 4]}]"#).unwrap();
        assert_eq!(show(&a), vec!["(1:4, 2:6)"]);
        let b = from_json("[[[0, 5], [10, 20]]]").unwrap();
        assert_eq!(show(&b), vec!["(0:5, 10:20)"]);
        assert!(from_json(r#"[{"offset": [1]}]"#).is_err());
    }

    #[test]
    fn csv_forms() {
        let a = from_csv("start0,stop0,start1,stop1\n0,5,10,20\n").unwrap();
        assert_eq!(show(&a), vec!["(0:5, 10:20)"]);
        let b = from_csv("offset_y,offset_x,shape_y,shape_x\n1,2,3,4\n").unwrap();
        assert_eq!(show(&b), vec!["(1:4, 2:6)"]);
        let c = from_csv("0,5\n7,9\n").unwrap();
        assert_eq!(show(&c), vec!["(0:5,)", "(7:9,)"]);
        assert!(from_csv("1,2,3\n").is_err());
    }
}
