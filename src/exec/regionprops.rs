//! Per-label measurements of a label array, accumulated chunk by chunk.
//!
//! Each chunk of labels (optionally with the matching chunk of an intensity image) gives
//! a partial [`PropsAcc`]; partials are merged in chunk order, so the result does not
//! depend on how many workers produced them. Coordinate sums are exact integers; the
//! intensity sum is an `f64` sum in C order within a chunk and in chunk order across
//! chunks.
//!
//! The table has one row per non-zero label present, sorted by label, with columns named
//! as scikit-image's `regionprops_table`:
//!
//! | column | meaning |
//! |---|---|
//! | `label` | the label |
//! | `area` | number of pixels |
//! | `centroid-0` … `centroid-{d-1}` | mean coordinate along each axis |
//! | `bbox-0` … `bbox-{2d-1}` | minimum coordinate per axis, then maximum + 1 per axis |
//! | `mean_intensity`, `min_intensity`, `max_intensity` | over the pixels of the label, as `f64` (only with an intensity image) |
//!
//! Label 0 is background; negative labels are ignored.

use std::collections::HashMap;
use std::fmt;

use crate::data::Buf;
use crate::geom::Region;

const MAX_NDIM: usize = crate::exec::label::MAX_NDIM;

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
struct Acc {
    area: u64,
    csum: [u128; MAX_NDIM],
    lo: [u64; MAX_NDIM],
    hi: [u64; MAX_NDIM],
    isum: f64,
    imin: f64,
    imax: f64,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            area: 0,
            csum: [0; MAX_NDIM],
            lo: [u64::MAX; MAX_NDIM],
            hi: [0; MAX_NDIM],
            isum: 0.0,
            imin: f64::INFINITY,
            imax: f64::NEG_INFINITY,
        }
    }

    /// Add `other`, which comes after `self` in chunk order.
    fn merge(&mut self, other: &Acc) {
        self.area += other.area;
        for k in 0..MAX_NDIM {
            self.csum[k] += other.csum[k];
            self.lo[k] = self.lo[k].min(other.lo[k]);
            self.hi[k] = self.hi[k].max(other.hi[k]);
        }
        self.isum += other.isum;
        self.imin = min_nan(self.imin, other.imin);
        self.imax = max_nan(self.imax, other.imax);
    }
}

/// Minimum that propagates NaN, as NumPy's `min`.
fn min_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn max_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// A partial accumulation over some chunks.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct PropsAcc {
    ndim: usize,
    intensity: bool,
    /// Stored sorted by label, so equal accumulations are equal bytes.
    #[serde(serialize_with = "sorted_map")]
    map: HashMap<u64, Acc>,
}

fn sorted_map<S: serde::Serializer>(map: &HashMap<u64, Acc>, s: S) -> Result<S::Ok, S::Error> {
    let sorted: std::collections::BTreeMap<&u64, &Acc> = map.iter().collect();
    serde::Serialize::serialize(&sorted, s)
}

/// Widen a row of labels to u64 (negative → 0, i.e. ignored).
fn labels_row(buf: &Buf, range: std::ops::Range<usize>, out: &mut Vec<u64>) -> Result<(), String> {
    out.clear();
    match buf {
        Buf::Bool(v) => out.extend(v[range].iter().map(|x| *x as u64)),
        Buf::U8(v) => out.extend(v[range].iter().map(|x| *x as u64)),
        Buf::U16(v) => out.extend(v[range].iter().map(|x| *x as u64)),
        Buf::U32(v) => out.extend(v[range].iter().map(|x| *x as u64)),
        Buf::U64(v) => out.extend_from_slice(&v[range]),
        Buf::I8(v) => out.extend(v[range].iter().map(|x| (*x).max(0) as u64)),
        Buf::I16(v) => out.extend(v[range].iter().map(|x| (*x).max(0) as u64)),
        Buf::I32(v) => out.extend(v[range].iter().map(|x| (*x).max(0) as u64)),
        Buf::I64(v) => out.extend(v[range].iter().map(|x| (*x).max(0) as u64)),
        other => {
            return Err(format!(
                "labels must be integers, not {}",
                other.dtype().name()
            ))
        }
    }
    Ok(())
}

fn intensity_row(
    buf: &Buf,
    range: std::ops::Range<usize>,
    out: &mut Vec<f64>,
) -> Result<(), String> {
    out.clear();
    match buf {
        Buf::Bool(v) => out.extend(v[range].iter().map(|x| *x as u8 as f64)),
        Buf::U8(v) => out.extend(v[range].iter().map(|x| *x as f64)),
        Buf::U16(v) => out.extend(v[range].iter().map(|x| *x as f64)),
        Buf::U32(v) => out.extend(v[range].iter().map(|x| *x as f64)),
        Buf::U64(v) => out.extend(v[range].iter().map(|x| *x as f64)),
        Buf::I8(v) => out.extend(v[range].iter().map(|x| *x as f64)),
        Buf::I16(v) => out.extend(v[range].iter().map(|x| *x as f64)),
        Buf::I32(v) => out.extend(v[range].iter().map(|x| *x as f64)),
        Buf::I64(v) => out.extend(v[range].iter().map(|x| *x as f64)),
        Buf::F32(v) => out.extend(v[range].iter().map(|x| *x as f64)),
        Buf::F64(v) => out.extend_from_slice(&v[range]),
        other => {
            return Err(format!(
                "the intensity image must be real, not {}",
                other.dtype().name()
            ))
        }
    }
    Ok(())
}

impl PropsAcc {
    /// An empty accumulation for a `ndim`-d label array, with or without intensity.
    pub fn new(ndim: usize, intensity: bool) -> PropsAcc {
        assert!(
            (1..=MAX_NDIM).contains(&ndim),
            "regionprops supports rank 1 to {MAX_NDIM}"
        );
        PropsAcc {
            ndim,
            intensity,
            map: HashMap::new(),
        }
    }

    /// Accumulate one block of labels covering `region` of the array (coordinates are
    /// global), with the intensity of the same block when this accumulation has one.
    pub fn add_chunk(
        &mut self,
        region: &Region,
        labels: &Buf,
        intensity: Option<&Buf>,
    ) -> Result<(), String> {
        let d = self.ndim;
        if region.ndim() != d {
            return Err(format!("region {region} is not {d}-d"));
        }
        let n = region.size() as usize;
        if labels.len() != n {
            return Err(format!(
                "{} labels for region {region} of {n} pixels",
                labels.len()
            ));
        }
        match (self.intensity, intensity) {
            (true, Some(i)) if i.len() != n => {
                return Err(format!(
                    "{} intensities for region {region} of {n} pixels",
                    i.len()
                ))
            }
            (true, None) => return Err("this accumulation needs an intensity image".into()),
            (false, Some(_)) => return Err("this accumulation has no intensity image".into()),
            _ => {}
        }
        if n == 0 {
            return Ok(());
        }
        let shape = region.shape();
        let ncol = shape[d - 1] as usize;
        let nrows = n / ncol;
        let mut lrow = Vec::with_capacity(ncol);
        let mut irow = Vec::with_capacity(ncol);
        let mut pos: Vec<u64> = region.start[..d - 1].to_vec();
        let c0 = region.start[d - 1];
        for r in 0..nrows {
            let range = r * ncol..(r + 1) * ncol;
            labels_row(labels, range.clone(), &mut lrow)?;
            if let Some(i) = intensity {
                intensity_row(i, range, &mut irow)?;
            }
            let mut j = 0;
            while j < ncol {
                let l = lrow[j];
                let s = j;
                while j < ncol && lrow[j] == l {
                    j += 1;
                }
                if l == 0 {
                    continue;
                }
                let len = (j - s) as u64;
                let acc = self.map.entry(l).or_insert_with(Acc::new);
                acc.area += len;
                for (ax, &p) in pos.iter().enumerate() {
                    acc.csum[ax] += p as u128 * len as u128;
                    acc.lo[ax] = acc.lo[ax].min(p);
                    acc.hi[ax] = acc.hi[ax].max(p + 1);
                }
                let (a, b) = (c0 + s as u64, c0 + j as u64);
                // Sum of a..b.
                acc.csum[d - 1] += (a as u128 + b as u128 - 1) * len as u128 / 2;
                acc.lo[d - 1] = acc.lo[d - 1].min(a);
                acc.hi[d - 1] = acc.hi[d - 1].max(b);
                if intensity.is_some() {
                    for &x in &irow[s..j] {
                        acc.isum += x;
                        acc.imin = min_nan(acc.imin, x);
                        acc.imax = max_nan(acc.imax, x);
                    }
                }
            }
            for ax in (0..d - 1).rev() {
                pos[ax] += 1;
                if pos[ax] < region.end[ax] {
                    break;
                }
                pos[ax] = region.start[ax];
            }
        }
        Ok(())
    }

    /// Add a later partial (in chunk order) to this one.
    pub fn merge(&mut self, other: &PropsAcc) {
        assert_eq!(self.ndim, other.ndim);
        assert_eq!(self.intensity, other.intensity);
        for (l, a) in &other.map {
            self.map.entry(*l).or_insert_with(Acc::new).merge(a);
        }
    }

    /// The final table.
    pub fn finish(self) -> RegionProps {
        let d = self.ndim;
        let mut rows: Vec<PropsRow> = self
            .map
            .into_iter()
            .map(|(label, a)| {
                let area = a.area as f64;
                PropsRow {
                    label,
                    area: a.area,
                    centroid: (0..d).map(|k| a.csum[k] as f64 / area).collect(),
                    bbox_min: a.lo[..d].to_vec(),
                    bbox_max: a.hi[..d].to_vec(),
                    intensity: self.intensity.then(|| [a.isum / area, a.imin, a.imax]),
                }
            })
            .collect();
        rows.sort_unstable_by_key(|r| r.label);
        RegionProps {
            ndim: d,
            intensity: self.intensity,
            rows,
        }
    }
}

/// Accumulate one chunk into a new partial.
pub fn accumulate_chunk(
    region: &Region,
    labels: &Buf,
    intensity: Option<&Buf>,
) -> Result<PropsAcc, String> {
    let mut acc = PropsAcc::new(region.ndim(), intensity.is_some());
    acc.add_chunk(region, labels, intensity)?;
    Ok(acc)
}

/// Merge partials keyed by their chunk's C-order index, in that order, into the table.
pub fn merge_in_order(
    ndim: usize,
    intensity: bool,
    mut parts: Vec<(u64, PropsAcc)>,
) -> RegionProps {
    parts.sort_by_key(|(k, _)| *k);
    let mut total = PropsAcc::new(ndim, intensity);
    for (_, p) in &parts {
        total.merge(p);
    }
    total.finish()
}

/// One label's measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct PropsRow {
    pub label: u64,
    pub area: u64,
    pub centroid: Vec<f64>,
    /// Minimum coordinate per axis.
    pub bbox_min: Vec<u64>,
    /// Maximum coordinate + 1 per axis.
    pub bbox_max: Vec<u64>,
    /// Mean, minimum and maximum intensity.
    pub intensity: Option<[f64; 3]>,
}

/// The measurements of every label, sorted by label.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionProps {
    pub ndim: usize,
    pub intensity: bool,
    pub rows: Vec<PropsRow>,
}

/// A float as Python prints it (`3.0`, `0.1`, `nan`, `inf`).
fn py_float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

impl RegionProps {
    /// Column names (see the module doc).
    pub fn columns(&self) -> Vec<String> {
        let d = self.ndim;
        let mut c = vec!["label".to_string(), "area".to_string()];
        c.extend((0..d).map(|k| format!("centroid-{k}")));
        c.extend((0..2 * d).map(|k| format!("bbox-{k}")));
        if self.intensity {
            c.extend(["mean_intensity", "min_intensity", "max_intensity"].map(String::from));
        }
        c
    }

    fn cells(&self, row: &PropsRow, float: impl Fn(f64) -> String) -> Vec<String> {
        let mut c = vec![row.label.to_string(), row.area.to_string()];
        c.extend(row.centroid.iter().map(|x| float(*x)));
        c.extend(
            row.bbox_min
                .iter()
                .chain(&row.bbox_max)
                .map(|x| x.to_string()),
        );
        if let Some(i) = row.intensity {
            c.extend(i.iter().map(|x| float(*x)));
        }
        c
    }

    /// Column names, the labels as row names, and every row's values as numbers (an
    /// AnnData table's `var`, `obs` and `X`).
    pub fn as_matrix(&self) -> (Vec<String>, Vec<String>, Vec<Vec<f64>>) {
        let rows = self
            .rows
            .iter()
            .map(|r| {
                self.cells(r, py_float)
                    .iter()
                    .map(|c| c.parse::<f64>().unwrap_or(f64::NAN))
                    .collect()
            })
            .collect();
        let index = self.rows.iter().map(|r| r.label.to_string()).collect();
        (self.columns(), index, rows)
    }

    /// Comma-separated values with a header line; floats at full precision.
    pub fn to_csv(&self) -> String {
        let mut s = self.columns().join(",");
        s.push('\n');
        for r in &self.rows {
            s.push_str(&self.cells(r, py_float).join(","));
            s.push('\n');
        }
        s
    }
}

/// Like a small pandas DataFrame: an index column, right-aligned columns, floats with six
/// decimals, the first and last five rows when there are more than ten.
impl fmt::Display for RegionProps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const EDGE: u64 = 5;
        let n = self.rows.len() as u64;
        let shown = crate::geom::summary_indices(n, EDGE);
        let header = self.columns();
        let mut table: Vec<Vec<String>> = Vec::new();
        let mut first = vec![String::new()];
        first.extend(header.iter().cloned());
        table.push(first);
        for s in &shown {
            match s {
                Some(i) => {
                    let mut row = vec![i.to_string()];
                    row.extend(self.cells(&self.rows[*i as usize], |x| format!("{x:.6}")));
                    table.push(row);
                }
                None => table.push(vec!["...".to_string(); header.len() + 1]),
            }
        }
        let widths: Vec<usize> = (0..header.len() + 1)
            .map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        for (k, row) in table.iter().enumerate() {
            if k > 0 {
                writeln!(f)?;
            }
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (cell, w))| {
                    if c == 0 {
                        format!("{cell:<w$}")
                    } else {
                        format!("{cell:>w$}")
                    }
                })
                .collect();
            f.write_str(line.join("  ").trim_end())?;
        }
        if n > 2 * EDGE {
            write!(f, "\n\n[{n} rows x {} columns]", header.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regionprops_small_2d() {
        // 2 × 4 labels split into two column chunks.
        let labels = [1i32, 1, 0, 2, 0, 1, 2, 2];
        let inten = [1.0f64, 2.0, 9.0, 4.0, 9.0, 3.0, 5.0, 6.0];
        let mut parts = Vec::new();
        for (k, (c0, c1)) in [(0usize, 2usize), (2, 4)].into_iter().enumerate() {
            let r = Region::new(vec![0, c0 as u64], vec![2, c1 as u64]);
            let l: Vec<i32> = (0..2)
                .flat_map(|i| labels[i * 4 + c0..i * 4 + c1].to_vec())
                .collect();
            let v: Vec<f64> = (0..2)
                .flat_map(|i| inten[i * 4 + c0..i * 4 + c1].to_vec())
                .collect();
            parts.push((
                k as u64,
                accumulate_chunk(&r, &Buf::I32(l), Some(&Buf::F64(v))).unwrap(),
            ));
        }
        let t = merge_in_order(2, true, parts);
        assert_eq!(t.rows.len(), 2);
        let r1 = &t.rows[0];
        assert_eq!((r1.label, r1.area), (1, 3));
        assert_eq!(r1.centroid, vec![1.0 / 3.0, 2.0 / 3.0]);
        assert_eq!(
            (r1.bbox_min.clone(), r1.bbox_max.clone()),
            (vec![0, 0], vec![2, 2])
        );
        assert_eq!(r1.intensity, Some([2.0, 1.0, 3.0]));
        let r2 = &t.rows[1];
        assert_eq!((r2.label, r2.area), (2, 3));
        assert_eq!(r2.intensity, Some([5.0, 4.0, 6.0]));
        let csv = t.to_csv();
        assert!(csv.starts_with(
            "label,area,centroid-0,centroid-1,bbox-0,bbox-1,bbox-2,bbox-3,mean_intensity,min_intensity,max_intensity\n1,3,"
        ));
        assert!(csv.ends_with("2,3,0.6666666666666666,2.6666666666666665,0,2,2,4,5.0,4.0,6.0\n"));
        assert!(t.to_string().contains("centroid-0"));
    }
}
