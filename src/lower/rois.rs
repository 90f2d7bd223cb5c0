//! `rois(path)`: regions of interest from JSON or CSV files, as a list of region values.
//!
//! JSON: `[{"offset": [..], "shape": [..]}, ...]` or `[[[start, stop], ...per axis], ...]`,
//! parsed as a stream straight into bounds (no document tree is built, so a file costs
//! little more than its regions).
//!
//! CSV: one region per row. A UTF-8 byte-order mark is skipped; the separator is `,`, `;`
//! or a tab (the one the first row uses); a separator at the end of a row is ignored.
//! A first row is a header when its cells are column names: `offset`/`shape` or
//! `start`/`stop` (`end`) followed by an axis suffix (`offset_y`, `start0`, `shape_x`...;
//! axes are ordered by number, or t, c, z, y, x), in any column order. Any other text in
//! the first row is an error naming the column. Without a header every row holds
//! `start, stop` for each axis in turn. Errors name the line and the column.

use super::Value;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Per axis `[start, stop)`.
type Bounds = Vec<(i64, i64)>;

fn region(bounds: &[(i64, i64)]) -> Value {
    Value::Tuple(
        bounds
            .iter()
            .map(|(a, b)| Value::Slice(Some(*a), Some(*b), None))
            .collect(),
    )
}

/// `[start, stop)` from an offset and a shape, refusing negative and overflowing values.
fn from_offset(o: i64, s: i64) -> Result<(i64, i64), String> {
    if o < 0 {
        return Err(format!("offset {o} is negative"));
    }
    if s < 0 {
        return Err(format!("shape {s} is negative"));
    }
    o.checked_add(s)
        .map(|e| (o, e))
        .ok_or_else(|| format!("offset {o} + shape {s} overflows"))
}

fn from_start_stop(a: i64, b: i64) -> Result<(i64, i64), String> {
    if a < 0 {
        return Err(format!("start {a} is negative"));
    }
    if b < a {
        return Err(format!("stop {b} is before start {a}"));
    }
    Ok((a, b))
}

// ---- JSON, streamed ----

/// One integer of a region (a float with no fraction is accepted).
struct Int;

impl<'de> DeserializeSeed<'de> for Int {
    type Value = i64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for Int {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e18 {
            Ok(v as i64)
        } else {
            Err(E::custom(format!("{v} is not an integer")))
        }
    }
}

/// A list of integers.
struct Ints;

impl<'de> DeserializeSeed<'de> for Ints {
    type Value = Vec<i64>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<i64>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Ints {
    type Value = Vec<i64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of integers")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Vec<i64>, A::Error> {
        let mut v = Vec::new();
        while let Some(i) = s.next_element_seed(Int)? {
            v.push(i);
        }
        Ok(v)
    }
}

/// `[start, stop]`.
struct Pair;

impl<'de> DeserializeSeed<'de> for Pair {
    type Value = (i64, i64);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(i64, i64), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Pair {
    type Value = (i64, i64);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("[start, stop]")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(i64, i64), A::Error> {
        let bad = || de::Error::custom("each axis must be [start, stop]");
        let a = s.next_element_seed(Int)?.ok_or_else(bad)?;
        let b = s.next_element_seed(Int)?.ok_or_else(bad)?;
        if s.next_element::<IgnoredAny>()?.is_some() {
            return Err(bad());
        }
        from_start_stop(a, b).map_err(de::Error::custom)
    }
}

/// One region: `{"offset": [..], "shape": [..]}` or `[[start, stop], ...]`.
struct Roi;

impl<'de> DeserializeSeed<'de> for Roi {
    type Value = Bounds;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Bounds, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Roi {
    type Value = Bounds;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with \"offset\" and \"shape\" or a list of [start, stop]")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Bounds, A::Error> {
        let mut v = Vec::new();
        while let Some(p) = s.next_element_seed(Pair)? {
            v.push(p);
        }
        Ok(v)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Bounds, A::Error> {
        let (mut off, mut shape) = (None, None);
        while let Some(k) = m.next_key::<String>()? {
            match k.as_str() {
                "offset" => off = Some(m.next_value_seed(Ints)?),
                "shape" => shape = Some(m.next_value_seed(Ints)?),
                _ => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        let off = off.ok_or_else(|| de::Error::custom("no \"offset\" list"))?;
        let shape = shape.ok_or_else(|| de::Error::custom("no \"shape\" list"))?;
        if off.len() != shape.len() {
            return Err(de::Error::custom("offset and shape have different lengths"));
        }
        off.iter()
            .zip(&shape)
            .map(|(o, s)| from_offset(*o, *s))
            .collect::<Result<_, _>>()
            .map_err(de::Error::custom)
    }
}

/// The whole file: a list of regions, each turned into a value as soon as it is parsed.
struct Rois;

impl<'de> Visitor<'de> for Rois {
    type Value = Vec<Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON list of regions")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Vec<Value>, A::Error> {
        let mut out = Vec::with_capacity(s.size_hint().unwrap_or(0));
        loop {
            let i = out.len();
            match s.next_element_seed(Roi) {
                Ok(Some(b)) => out.push(region(&b)),
                Ok(None) => break,
                Err(e) => return Err(de::Error::custom(format!("region #{i}: {e}"))),
            }
        }
        Ok(out)
    }
}

fn from_json(text: &str) -> Result<Vec<Value>, String> {
    let mut d = serde_json::Deserializer::from_str(text);
    let out = de::Deserializer::deserialize_seq(&mut d, Rois).map_err(|e| e.to_string())?;
    d.end().map_err(|e| e.to_string())?;
    Ok(out)
}

// ---- CSV ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Col {
    Offset,
    Shape,
    Start,
    Stop,
}

/// The order of an axis suffix: numbers first by value, then t, c, z, y, x.
fn axis_key(suffix: &str) -> Option<(u8, u64)> {
    let s = suffix.trim_start_matches(['_', '-', ' ', '.']);
    if s.is_empty() {
        return Some((0, 0));
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some((0, n));
    }
    "tczyx"
        .find(s)
        .filter(|_| s.len() == 1)
        .map(|i| (1, i as u64))
}

/// A header cell's meaning: what it holds and its axis key.
fn column(name: &str) -> Option<(Col, (u8, u64))> {
    let n = name.to_ascii_lowercase();
    let n = n.trim_matches('"');
    for (prefix, col) in [
        ("offset", Col::Offset),
        ("shape", Col::Shape),
        ("start", Col::Start),
        ("stop", Col::Stop),
        ("end", Col::Stop),
    ] {
        if let Some(rest) = n.strip_prefix(prefix) {
            return axis_key(rest).map(|k| (col, k));
        }
    }
    None
}

/// How the columns of a header map to regions: per axis the two column indices.
struct Layout {
    offset_shape: bool,
    axes: Vec<(usize, usize)>,
    names: Vec<String>,
}

fn header(cells: &[&str], line: usize) -> Result<Layout, String> {
    let mut cols = Vec::with_capacity(cells.len());
    for (i, c) in cells.iter().enumerate() {
        match column(c) {
            Some(m) => cols.push(m),
            None => {
                return Err(format!(
                    "line {line}, column {} ({:?}): not a regions column; expected names such as offset_y, shape_y or start0, stop0",
                    i + 1,
                    c
                ))
            }
        }
    }
    let offset_shape = cols
        .iter()
        .any(|(c, _)| matches!(c, Col::Offset | Col::Shape));
    let (a, b) = if offset_shape {
        (Col::Offset, Col::Shape)
    } else {
        (Col::Start, Col::Stop)
    };
    let mut keys: Vec<(u8, u64)> = Vec::new();
    for (i, (c, k)) in cols.iter().enumerate() {
        if *c != a && *c != b {
            return Err(format!(
                "line {line}, column {} ({:?}): offset/shape and start/stop columns cannot be mixed",
                i + 1,
                cells[i]
            ));
        }
        if cols[..i].contains(&(*c, *k)) {
            return Err(format!(
                "line {line}, column {} ({:?}): the column appears twice",
                i + 1,
                cells[i]
            ));
        }
        if !keys.contains(k) {
            keys.push(*k);
        }
    }
    keys.sort_unstable();
    let find = |col: Col, k: (u8, u64)| cols.iter().position(|m| *m == (col, k));
    let mut axes = Vec::with_capacity(keys.len());
    for k in keys {
        match (find(a, k), find(b, k)) {
            (Some(x), Some(y)) => axes.push((x, y)),
            (Some(x), None) | (None, Some(x)) => {
                return Err(format!(
                    "line {line}, column {} ({:?}): its axis has no matching {} column",
                    x + 1,
                    cells[x],
                    if cols[x].0 == a {
                        format!("{b:?}").to_lowercase()
                    } else {
                        format!("{a:?}").to_lowercase()
                    }
                ))
            }
            (None, None) => unreachable!("every key comes from a column"),
        }
    }
    Ok(Layout {
        offset_shape,
        axes,
        names: cells
            .iter()
            .map(|c| c.trim_matches('"').to_string())
            .collect(),
    })
}

/// The separator a row uses: the most frequent of `,`, `;` and tab (`,` when none).
fn separator(line: &str) -> char {
    [',', ';', '\t']
        .into_iter()
        .max_by_key(|s| (line.matches(*s).count(), *s == ','))
        .unwrap_or(',')
}

fn from_csv(text: &str) -> Result<Vec<Value>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut layout: Option<Layout> = None;
    let mut sep: Option<char> = None;
    let mut width: Option<usize> = None;
    for (lineno, line) in text.lines().enumerate() {
        let line_no = lineno + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let s = *sep.get_or_insert_with(|| separator(line));
        let mut cells: Vec<&str> = line.split(s).map(|c| c.trim()).collect();
        // A separator at the end of the row.
        if cells.len() > 1 && cells.last().is_some_and(|c| c.is_empty()) {
            cells.pop();
        }
        let first = width.is_none();
        if first
            && cells
                .iter()
                .any(|c| c.parse::<i64>().is_err() && !c.is_empty())
        {
            let l = header(&cells, line_no)?;
            width = Some(cells.len());
            layout = Some(l);
            continue;
        }
        let w = *width.get_or_insert(cells.len());
        if cells.len() != w {
            return Err(format!(
                "line {line_no}: {} cells, but {} {w}",
                cells.len(),
                if layout.is_some() {
                    "the header has"
                } else {
                    "the first row has"
                }
            ));
        }
        let name = |i: usize| match &layout {
            Some(l) => format!("column {} ({})", i + 1, l.names[i]),
            None => format!("column {}", i + 1),
        };
        let mut nums = Vec::with_capacity(w);
        for (i, c) in cells.iter().enumerate() {
            match c.parse::<i64>() {
                Ok(v) => nums.push(v),
                Err(_) if c.is_empty() => {
                    return Err(format!("line {line_no}, {}: the cell is empty", name(i)))
                }
                Err(_) => {
                    return Err(format!(
                        "line {line_no}, {}: {c:?} is not an integer",
                        name(i)
                    ))
                }
            }
        }
        let bounds: Bounds = match &layout {
            Some(l) => l
                .axes
                .iter()
                .map(|(a, b)| {
                    let r = if l.offset_shape {
                        from_offset(nums[*a], nums[*b])
                    } else {
                        from_start_stop(nums[*a], nums[*b])
                    };
                    r.map_err(|e| format!("line {line_no}, {}: {e}", name(*b)))
                })
                .collect::<Result<_, _>>()?,
            None => {
                if !w.is_multiple_of(2) {
                    return Err(format!(
                        "line {line_no}: expected two numbers (start, stop) per axis, found {w}"
                    ));
                }
                (0..w / 2)
                    .map(|a| {
                        from_start_stop(nums[2 * a], nums[2 * a + 1])
                            .map_err(|e| format!("line {line_no}, {}: {e}", name(2 * a + 1)))
                    })
                    .collect::<Result<_, _>>()?
            }
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
        || text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('[');
    if is_json {
        from_json(text.trim_start_matches('\u{feff}'))
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
        let c = from_json(r#"[{"shape": [3.0], "name": {"x": [1]}, "offset": [2]}]"#).unwrap();
        assert_eq!(show(&c), vec!["(2:5,)"]);
        for bad in [
            r#"[{"offset": [1]}]"#,
            r#"[{"offset": [1], "shape": [-2]}]"#,
            r#"[{"offset": [1, 2], "shape": [2]}]"#,
            "[[[5, 1]]]",
            "[[[0, 1, 2]]]",
            "[[[0, 1.5]]]",
            "[[[0, 1]]] trailing",
            "{}",
        ] {
            assert!(from_json(bad).is_err(), "{bad}");
        }
        let e = from_json(r#"[[[0, 1]], {"offset": [1], "shape": [-2]}]"#).unwrap_err();
        assert!(e.contains("region #1") && e.contains("negative"), "{e}");
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
