//! AnnData tables in Zarr (`encoding-type: anndata`): the numeric matrix `X` with its
//! column names (`var/_index`) and row names (`obs/_index`), as fractal stores ROI tables
//! (`x_micrometer`, `len_x_micrometer`, ...) in `img.ome.zarr/tables/NAME`.

use std::path::Path;
use std::sync::Arc;
use zarrs::array::Array;
use zarrs::filesystem::FilesystemStore;
use zarrs::storage::ReadableStorageTraits;

/// A table: column names and one row of values per observation (`rows[i][j]`).
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

/// Whether `dir` is an AnnData group (its attributes say `encoding-type: anndata`).
pub fn is_anndata(dir: &Path) -> bool {
    super::ome::group_attributes(dir)
        .is_some_and(|(_, a)| a.get("encoding-type").and_then(|v| v.as_str()) == Some("anndata"))
}

fn strings(group: &Path, name: &str) -> Result<Vec<String>, String> {
    let store = FilesystemStore::new(group).map_err(|e| format!("{}: {e}", group.display()))?;
    let store: Arc<dyn ReadableStorageTraits> = Arc::new(store);
    let path = format!("/{name}");
    let a = Array::open(store, &path).map_err(|e| format!("{}/{name}: {e}", group.display()))?;
    a.retrieve_array_subset::<Vec<String>>(&a.subset_all())
        .map_err(|e| format!("{}/{name}: {e}", group.display()))
}

/// Read the table at `dir`: `X` (2-D, numeric) and the names of its columns.
pub fn read_table(dir: &Path) -> Result<Table, String> {
    let var = dir.join("var");
    let index = super::ome::group_attributes(&var)
        .and_then(|(_, a)| a.get("_index").and_then(|v| v.as_str()).map(str::to_string))
        .unwrap_or_else(|| "_index".into());
    let columns = strings(&var, &index)?;
    let x = super::ZarrReader::open(&dir.join("X")).map_err(|e| e.to_string())?;
    let shape = x.meta().shape.clone();
    if shape.len() != 2 || shape[1] as usize != columns.len() {
        return Err(format!(
            "X has shape {shape:?} but var names {} columns",
            columns.len()
        ));
    }
    let b = x
        .read_region(&crate::geom::Region::full(&shape))
        .map_err(|e| e.to_string())?;
    let n = shape[1] as usize;
    let rows = (0..shape[0] as usize)
        .map(|i| (0..n).map(|j| b.get_f64(i * n + j)).collect())
        .collect();
    Ok(Table { columns, rows })
}

fn json(dir: &Path, name: &str, v: serde_json::Value) -> std::io::Result<()> {
    std::fs::write(
        dir.join(name),
        serde_json::to_string_pretty(&v).unwrap_or_default(),
    )
}

fn group(dir: &Path, attrs: serde_json::Value) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    json(dir, ".zgroup", serde_json::json!({"zarr_format": 2}))?;
    json(dir, ".zattrs", attrs)
}

/// A Zarr v2 array of one uncompressed chunk: `dtype` and the chunk's bytes.
fn array(
    dir: &Path,
    shape: &[usize],
    dtype: &str,
    filters: serde_json::Value,
    attrs: serde_json::Value,
    chunk: &[u8],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let chunks: Vec<usize> = shape.iter().map(|n| (*n).max(1)).collect();
    let fill = if dtype == "|O" {
        serde_json::json!("")
    } else {
        serde_json::json!(0.0)
    };
    json(
        dir,
        ".zarray",
        serde_json::json!({
            "zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": dtype,
            "compressor": null, "fill_value": fill, "filters": filters, "order": "C",
            "dimension_separator": ".",
        }),
    )?;
    json(dir, ".zattrs", attrs)?;
    if shape.iter().all(|n| *n > 0) {
        let key = vec!["0"; shape.len()].join(".");
        std::fs::write(dir.join(key), chunk)?;
    }
    Ok(())
}

fn strings_array(dir: &Path, v: &[String]) -> std::io::Result<()> {
    // vlen-utf8: the count, then each string's length and bytes (little-endian u32s).
    let mut b = (v.len() as u32).to_le_bytes().to_vec();
    for s in v {
        b.extend((s.len() as u32).to_le_bytes());
        b.extend(s.as_bytes());
    }
    array(
        dir,
        &[v.len()],
        "|O",
        serde_json::json!([{"id": "vlen-utf8"}]),
        serde_json::json!({"encoding-type": "string-array", "encoding-version": "0.2.0"}),
        &b,
    )
}

/// Write an AnnData table (Zarr v2, as anndata writes by default) at `path`: `X` the
/// rows (f64), `obs` indexed by `index`, `var` by `columns`. Written beside `path` and
/// renamed into place, so a reader never sees half a table.
pub fn write_table(
    path: &Path,
    columns: &[String],
    index: &[String],
    rows: &[Vec<f64>],
) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let dict = serde_json::json!({"encoding-type": "dict", "encoding-version": "0.1.0"});
    group(
        &tmp,
        serde_json::json!({"encoding-type": "anndata", "encoding-version": "0.1.0"}),
    )?;
    let mut x = Vec::with_capacity(rows.len() * columns.len() * 8);
    for r in rows {
        for v in r {
            x.extend(v.to_le_bytes());
        }
    }
    array(
        &tmp.join("X"),
        &[rows.len(), columns.len()],
        "<f8",
        serde_json::Value::Null,
        serde_json::json!({"encoding-type": "array", "encoding-version": "0.2.0"}),
        &x,
    )?;
    for (g, names) in [("obs", index), ("var", columns)] {
        group(
            &tmp.join(g),
            serde_json::json!({
                "_index": "_index", "column-order": [], "encoding-type": "dataframe", "encoding-version": "0.2.0",
            }),
        )?;
        strings_array(&tmp.join(g).join("_index"), names)?;
    }
    for g in ["obsm", "varm", "obsp", "varp", "layers", "uns"] {
        group(&tmp.join(g), dict.clone())?;
    }
    if path.exists() {
        std::fs::remove_dir_all(path)?;
    }
    std::fs::rename(&tmp, path)?;
    // Inside an image's `tables` group: list the table there, as fractal does.
    if let Some(tables) = path
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "tables"))
    {
        let attrs_path = tables.join(".zattrs");
        let mut attrs: serde_json::Value = std::fs::read_to_string(&attrs_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        let mut names: Vec<serde_json::Value> = attrs
            .get("tables")
            .and_then(|t| t.as_array())
            .cloned()
            .unwrap_or_default();
        if !names.iter().any(|n| n.as_str() == Some(name.as_str())) {
            names.push(serde_json::Value::from(name.as_str()));
        }
        attrs["tables"] = serde_json::Value::Array(names);
        if !tables.join("zarr.json").exists() {
            json(tables, ".zgroup", serde_json::json!({"zarr_format": 2}))?;
        }
        json(tables, ".zattrs", attrs)?;
    }
    Ok(())
}
