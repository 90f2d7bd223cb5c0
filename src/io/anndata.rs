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
