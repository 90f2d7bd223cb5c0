//! Finding and describing arrays: what a path holds (array, group, plain directory),
//! zarrs metadata to `ArrayMeta`, the open-error taxonomy, and the v3 metadata of new arrays.

use std::path::Path;

use serde_json::{json, Value};
use zarrs::array::data_type as dt;
use zarrs::array::{Array, ArrayCreateError, ArrayMetadata};
use zarrs::plugin::{ExtensionName, ZarrVersion};

use super::elem::{fill_from_ne_bytes, fill_json};
use super::{one_line, ArrayMeta, Codec, IoError, WriteOptions};
use crate::data::Buf;
use crate::dtype::DType;

pub(crate) fn display(path: &Path) -> String {
    path.display().to_string()
}

/// What a filesystem path holds, as far as Zarr is concerned.
enum Node {
    Array,
    Group,
    Other,
}

/// Read `dir/zarr.json`, `dir/.zarray` or `dir/.zgroup` to classify `dir`. Invalid JSON in
/// a v3 metadata document is reported rather than treated as "not Zarr".
fn classify_dir(dir: &Path) -> Result<Node, String> {
    let v3 = dir.join("zarr.json");
    if v3.is_file() {
        let text = std::fs::read(&v3).map_err(|e| format!("cannot read zarr.json: {e}"))?;
        let doc: Value = serde_json::from_slice(&text)
            .map_err(|e| format!("zarr.json is not valid JSON: {e}"))?;
        return match doc.get("node_type").and_then(Value::as_str) {
            Some("array") => Ok(Node::Array),
            Some("group") => Ok(Node::Group),
            Some(other) => Err(format!("zarr.json has unknown node_type \"{other}\"")),
            None => Err("zarr.json has no node_type".to_string()),
        };
    }
    if dir.join(".zarray").is_file() {
        return Ok(Node::Array);
    }
    if dir.join(".zgroup").is_file() {
        return Ok(Node::Group);
    }
    Ok(Node::Other)
}

/// Arrays below `dir` (through nested groups), as relative paths, for error messages.
pub(crate) fn child_arrays(dir: &Path) -> Vec<String> {
    const MAX: usize = 100;
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if out.len() >= MAX || !p.is_dir() {
                continue;
            }
            let name = match p.file_name() {
                Some(n) => n.to_string_lossy().into_owned(),
                None => continue,
            };
            match classify_dir(&p) {
                Ok(Node::Array) => out.push(format!("{prefix}{name}")),
                Ok(Node::Group) | Ok(Node::Other) if depth < 4 => {
                    walk(&p, &format!("{prefix}{name}/"), depth + 1, out)
                }
                _ => {}
            }
        }
    }
    let mut out = vec![];
    walk(dir, "", 0, &mut out);
    out
}

/// Check that `path` is a Zarr array directory, with the right error otherwise.
pub(crate) fn locate_array(path: &Path) -> Result<(), IoError> {
    let shown = display(path);
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IoError::NotFound { path: shown })
        }
        Err(e) => {
            return Err(IoError::Read {
                path: shown,
                chunk: None,
                detail: one_line(e),
            })
        }
    };
    if !md.is_dir() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let detail = match name.as_deref() {
            Some("zarr.json") | Some(".zarray") => {
                "this is an array's metadata file; open the directory that contains it".to_string()
            }
            _ => "it is a file; a Zarr array is a directory".to_string(),
        };
        return Err(IoError::NotZarr {
            path: shown,
            detail,
        });
    }
    match classify_dir(path) {
        Ok(Node::Array) => Ok(()),
        Ok(Node::Group) => Err(IoError::IsGroup {
            arrays: child_arrays(path),
            path: shown,
        }),
        Ok(Node::Other) => {
            let inside = child_arrays(path);
            let mut detail = "no zarr.json or .zarray in this directory".to_string();
            if !inside.is_empty() {
                let shown_arrays: Vec<&str> = inside.iter().take(8).map(String::as_str).collect();
                detail.push_str(&format!("; arrays below it: {}", shown_arrays.join(", ")));
            }
            Err(IoError::NotZarr {
                path: shown,
                detail,
            })
        }
        Err(detail) => Err(IoError::NotZarr {
            path: shown,
            detail,
        }),
    }
}

/// Is `name` a chunk key component (a decimal integer)?
fn is_index(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// Files Zarr and Tessera own in any node directory: metadata documents, the completion
/// record, and the temporaries of the atomic store and the record (`.NAME.tmp.PID...`).
fn is_owned_file(name: &str) -> bool {
    matches!(
        name,
        "zarr.json" | ".zarray" | ".zattrs" | ".zgroup" | ".zmetadata" | super::RESUME_RECORD
    ) || (name.starts_with('.') && name.contains(".tmp."))
}

/// Is `name` a top-level chunk key of an array: v3 `c` (a directory of `c/i/j` keys, or the
/// key of a 0-d array) or `c.i.j`, v2 `i.j` or `i` (a directory of `i/j` keys)?
fn is_chunk_name(name: &str) -> bool {
    name == "c"
        || name
            .strip_prefix("c.")
            .is_some_and(|r| r.split('.').all(is_index))
        || name.split('.').all(is_index)
}

/// A directory of nested chunk keys: only decimal names and store temporaries below it.
fn chunk_tree_foreign(dir: &Path, out: &mut Vec<std::path::PathBuf>, limit: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        out.push(dir.to_path_buf());
        return;
    };
    for e in rd.flatten() {
        if out.len() >= limit {
            return;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_symlink() => out.push(p),
            Ok(t) if t.is_dir() && is_index(&name) => chunk_tree_foreign(&p, out, limit),
            Ok(t) if t.is_file() && (is_index(&name) || is_owned_file(&name)) => {}
            _ => out.push(p),
        }
    }
}

/// The entries inside the Zarr node `dir` (array, group, or empty directory) that neither
/// Zarr nor Tessera owns: files a user placed there, symlinks, unknown directories. Stops
/// after `limit` entries. An overwrite may delete `dir` only when this is empty.
pub fn foreign_entries(dir: &Path, limit: usize) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let node = classify_dir(dir);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![dir.to_path_buf()];
    };
    for e in rd.flatten() {
        if out.len() >= limit {
            break;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        let Ok(t) = e.file_type() else {
            out.push(p);
            continue;
        };
        if t.is_symlink() {
            out.push(p);
        } else if t.is_file() {
            let chunk = matches!(node, Ok(Node::Array)) && is_chunk_name(&name);
            if !chunk && !is_owned_file(&name) {
                out.push(p);
            }
        } else if t.is_dir() {
            match (&node, classify_dir(&p)) {
                (Ok(Node::Array), _) if is_chunk_name(&name) => {
                    chunk_tree_foreign(&p, &mut out, limit)
                }
                // A group's members are Zarr's too.
                (Ok(Node::Group), Ok(Node::Array | Node::Group)) => {
                    let rest = limit - out.len();
                    out.extend(foreign_entries(&p, rest));
                }
                _ => out.push(p),
            }
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Symbolic links anywhere inside the store at `dir` (up to `limit`): a write through one
/// would land outside the store.
pub fn symlinks_inside(dir: &Path, limit: usize) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>, limit: usize) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            if out.len() >= limit {
                return;
            }
            match e.file_type() {
                Ok(t) if t.is_symlink() => out.push(e.path()),
                Ok(t) if t.is_dir() => walk(&e.path(), out, limit),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out, limit);
    out.sort();
    out
}

/// May an overwrite delete what is at `path`? Only a Zarr array or group, or an empty
/// directory: never a file, a symlink, or a directory holding anything else.
pub(crate) fn classify_for_overwrite(path: &Path, md: &std::fs::Metadata) -> Result<(), String> {
    if md.file_type().is_symlink() {
        return Err("it is a symbolic link; refusing to replace it".to_string());
    }
    if !md.is_dir() {
        return Err("it is a file, not a Zarr array; refusing to replace it".to_string());
    }
    match classify_dir(path) {
        Ok(Node::Array) | Ok(Node::Group) => Ok(()),
        Ok(Node::Other) => {
            let empty = std::fs::read_dir(path)
                .map(|mut rd| rd.next().is_none())
                .map_err(one_line)?;
            if empty {
                Ok(())
            } else {
                Err("it is a non-empty directory that is not a Zarr array or group; refusing to delete it"
                    .to_string())
            }
        }
        Err(detail) => Err(format!("{detail}; refusing to delete it")),
    }
}

/// Classify a zarrs open failure: metadata zarrs cannot interpret means an unsupported
/// array (the JSON itself was already checked), a missing document means not Zarr.
pub(crate) fn open_error(path: &Path, e: ArrayCreateError) -> IoError {
    let shown = display(path);
    let detail = one_line(&e);
    match e {
        ArrayCreateError::MissingMetadata => IoError::NotZarr {
            path: shown,
            detail,
        },
        ArrayCreateError::StorageError(zarrs::storage::StorageError::IOError(_)) => IoError::Read {
            path: shown,
            chunk: None,
            detail,
        },
        _ => IoError::Unsupported {
            path: shown,
            detail,
        },
    }
}

fn dtype_of(d: &zarrs::array::DataType) -> Option<DType> {
    Some(if d.is::<dt::BoolDataType>() {
        DType::Bool
    } else if d.is::<dt::Int8DataType>() {
        DType::I8
    } else if d.is::<dt::Int16DataType>() {
        DType::I16
    } else if d.is::<dt::Int32DataType>() {
        DType::I32
    } else if d.is::<dt::Int64DataType>() {
        DType::I64
    } else if d.is::<dt::UInt8DataType>() {
        DType::U8
    } else if d.is::<dt::UInt16DataType>() {
        DType::U16
    } else if d.is::<dt::UInt32DataType>() {
        DType::U32
    } else if d.is::<dt::UInt64DataType>() {
        DType::U64
    } else if d.is::<dt::Float32DataType>() {
        DType::F32
    } else if d.is::<dt::Float64DataType>() {
        DType::F64
    } else if d.is::<dt::Complex64DataType>() || d.is::<dt::ComplexFloat32DataType>() {
        DType::C64
    } else if d.is::<dt::Complex128DataType>() || d.is::<dt::ComplexFloat64DataType>() {
        DType::C128
    } else {
        return None;
    })
}

fn dtype_name(d: &zarrs::array::DataType) -> String {
    d.name(ZarrVersion::V3)
        .or_else(|| d.name(ZarrVersion::V2))
        .map(|n| n.into_owned())
        .unwrap_or_else(|| "(unnamed)".to_string())
}

/// Everything the reader and writer derive once from an opened array.
pub(crate) struct Described {
    pub meta: ArrayMeta,
    /// Decode only the needed part of a chunk when a read covers part of it (sharded or
    /// uncompressed chunks, where that saves work); otherwise decode whole chunks.
    pub partial_reads: bool,
}

pub(crate) fn describe<S: ?Sized>(path: &Path, array: &Array<S>) -> Result<Described, IoError> {
    let unsupported = |detail: String| IoError::Unsupported {
        path: display(path),
        detail,
    };
    let data_type = array.data_type();
    let dtype = dtype_of(data_type).ok_or_else(|| {
        unsupported(format!(
            "data type {} (Tessera reads bool, int8..int64, uint8..uint64, float32, float64, complex64, complex128)",
            dtype_name(data_type)
        ))
    })?;
    let grid = array.chunk_grid();
    let grid_name = grid.name(ZarrVersion::V3).unwrap_or_default();
    if grid_name != "regular" && grid_name != "regular_bounded" {
        return Err(unsupported(format!(
            "chunk grid \"{grid_name}\" (only regular chunk grids are supported)"
        )));
    }
    let ndim = array.dimensionality();
    let chunks = grid
        .chunk_shape_u64(&vec![0; ndim])
        .ok()
        .flatten()
        .ok_or_else(|| unsupported("cannot determine the chunk shape".to_string()))?;
    let fill = fill_from_ne_bytes(dtype, array.fill_value().as_ne_bytes())
        .ok_or_else(|| unsupported("fill value does not match the data type".to_string()))?;
    let doc = serde_json::to_value(array.metadata()).unwrap_or(Value::Null);
    let (zarr_format, codec_summary, partial_reads) = match array.metadata() {
        ArrayMetadata::V3(_) => {
            let codecs = doc
                .get("codecs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let names: Vec<&str> = codecs
                .iter()
                .filter_map(|c| c.get("name")?.as_str())
                .collect();
            let partial = names.first() == Some(&"sharding_indexed") || names == ["bytes"];
            (3, chain_summary(&codecs), partial)
        }
        ArrayMetadata::V2(_) => {
            let field = |k: &str| doc.get(k).cloned().unwrap_or(Value::Null);
            let filters = field("filters").as_array().cloned().unwrap_or_default();
            let compressor = field("compressor");
            let mut parts: Vec<String> = filters.iter().map(codec_summary).collect();
            if !compressor.is_null() {
                parts.push(codec_summary(&compressor));
            }
            let order = field("order").as_str().unwrap_or("C").to_string();
            let dtype_s = match field("dtype") {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let chain = if parts.is_empty() {
                "no compressor".to_string()
            } else {
                parts.join(" -> ")
            };
            let partial = parts.is_empty() && order == "C";
            (
                2,
                format!("v2 dtype {dtype_s}, order {order}: {chain}"),
                partial,
            )
        }
    };
    Ok(Described {
        meta: ArrayMeta {
            shape: array.shape().to_vec(),
            chunks,
            dtype,
            fill,
            zarr_format,
            codec_summary,
        },
        partial_reads,
    })
}

/// `a(k=v, ...) -> b(...)` for a list of codec documents.
fn chain_summary(codecs: &[Value]) -> String {
    codecs
        .iter()
        .map(codec_summary)
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// One codec document (v3 `{name, configuration}` or v2 `{id, ...}`) as `name(k=v, ...)`.
fn codec_summary(c: &Value) -> String {
    let Some(obj) = c.as_object() else {
        // The v3.1 short form: a bare name.
        return c.as_str().map_or_else(|| c.to_string(), str::to_string);
    };
    let name = obj
        .get("name")
        .or_else(|| obj.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    let config: Vec<(&String, &Value)> = match obj.get("configuration").and_then(Value::as_object) {
        Some(cfg) => cfg.iter().collect(),
        None => obj
            .iter()
            .filter(|(k, _)| k.as_str() != "id" && k.as_str() != "name")
            .collect(),
    };
    if config.is_empty() {
        return name.to_string();
    }
    let args: Vec<String> = config
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Array(items)
                    if items.iter().all(|i| i.get("name").is_some()) && !items.is_empty() =>
                {
                    format!("[{}]", chain_summary(items))
                }
                other => other.to_string(),
            };
            format!("{k}={v}")
        })
        .collect();
    format!("{name}({})", args.join(", "))
}

/// The Zarr v3 metadata document of a new array, as zarr-python 3 would write it.
pub(crate) fn new_array_metadata(
    shape: &[u64],
    chunks: &[u64],
    dtype: DType,
    fill: &Buf,
    opts: &WriteOptions,
) -> Result<Value, String> {
    let size = dtype.size();
    // zarr-python omits the endianness of one-byte types.
    let bytes = if size == 1 {
        json!({"name": "bytes"})
    } else {
        json!({"name": "bytes", "configuration": {"endian": "little"}})
    };
    let mut codecs = vec![bytes];
    let level = opts.level.or(opts.codec.default_level()).unwrap_or(0);
    match opts.codec {
        Codec::None => {
            if let Some(l) = opts.level {
                return Err(format!("codec none takes no level (got {l})"));
            }
        }
        Codec::Zstd => {
            if !(-131072..=22).contains(&level) {
                return Err(format!("zstd level {level} is out of range (-131072..=22)"));
            }
            codecs.push(
                json!({"name": "zstd", "configuration": {"level": level, "checksum": false}}),
            );
        }
        Codec::Gzip => {
            if !(0..=9).contains(&level) {
                return Err(format!("gzip level {level} is out of range (0..=9)"));
            }
            codecs.push(json!({"name": "gzip", "configuration": {"level": level}}));
        }
        Codec::Blosc => {
            if !(0..=9).contains(&level) {
                return Err(format!("blosc level {level} is out of range (0..=9)"));
            }
            // zarr-python 3: bit-shuffle for one-byte types, byte-shuffle otherwise.
            let shuffle = if size == 1 { "bitshuffle" } else { "shuffle" };
            codecs.push(json!({"name": "blosc", "configuration": {
                "typesize": size, "cname": "zstd", "clevel": level, "shuffle": shuffle, "blocksize": 0
            }}));
        }
    }
    let mut doc = json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": dtype.numpy_name(),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill_json(fill),
        "codecs": codecs,
        "attributes": {},
        "storage_transformers": [],
    });
    if let Some(names) = &opts.dimension_names {
        if names.len() != shape.len() {
            return Err(format!(
                "{} dimension names {names:?} for an array of rank {}",
                names.len(),
                shape.len()
            ));
        }
        doc["dimension_names"] = json!(names);
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_summaries() {
        // Key order follows serde_json's map (sorted, or insertion order with
        // preserve_order), so compare pieces.
        let v3 = json!([
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "zstd", "configuration": {"level": 3, "checksum": false}}
        ]);
        let s = chain_summary(v3.as_array().unwrap());
        assert!(s.starts_with("bytes(endian=little) -> zstd("), "{s}");
        assert!(s.contains("level=3") && s.contains("checksum=false"), "{s}");
        let shard = json!({"name": "sharding_indexed", "configuration": {
            "chunk_shape": [16, 16],
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "index_codecs": [{"name": "crc32c"}], "index_location": "end"}});
        let s = codec_summary(&shard);
        for part in [
            "sharding_indexed(",
            "chunk_shape=[16,16]",
            "codecs=[bytes(endian=little)]",
            "index_codecs=[crc32c]",
            "index_location=end",
        ] {
            assert!(s.contains(part), "{s}");
        }
        assert_eq!(
            codec_summary(&json!({"id": "zstd", "level": 3})),
            "zstd(level=3)"
        );
        assert_eq!(codec_summary(&json!("bytes")), "bytes");
    }

    #[test]
    fn new_metadata_matches_zarr_python_defaults() {
        let o = |codec| WriteOptions {
            codec,
            level: None,
            overwrite: false,
            dimension_names: None,
        };
        let m = new_array_metadata(
            &[10],
            &[4],
            DType::U16,
            &Buf::U16(vec![0]),
            &o(Codec::Blosc),
        )
        .unwrap();
        assert_eq!(m["codecs"][1]["configuration"]["shuffle"], "shuffle");
        assert_eq!(m["codecs"][1]["configuration"]["typesize"], 2);
        assert_eq!(m["codecs"][1]["configuration"]["clevel"], 5);
        let m = new_array_metadata(&[10], &[4], DType::U8, &Buf::U8(vec![0]), &o(Codec::Blosc))
            .unwrap();
        assert_eq!(m["codecs"][1]["configuration"]["shuffle"], "bitshuffle");
        assert_eq!(m["codecs"][0], json!({"name": "bytes"}));
        let m = new_array_metadata(
            &[10],
            &[4],
            DType::F32,
            &Buf::F32(vec![f32::NAN]),
            &o(Codec::Zstd),
        )
        .unwrap();
        assert_eq!(
            m["codecs"][1],
            json!({"name": "zstd", "configuration": {"level": 3, "checksum": false}})
        );
        assert_eq!(m["fill_value"], "NaN");
        let m =
            new_array_metadata(&[10], &[4], DType::I8, &Buf::I8(vec![0]), &o(Codec::Gzip)).unwrap();
        assert_eq!(m["codecs"][1]["configuration"]["level"], 5);
        let bad = WriteOptions {
            codec: Codec::Gzip,
            level: Some(12),
            overwrite: false,
            dimension_names: None,
        };
        assert!(new_array_metadata(&[10], &[4], DType::I8, &Buf::I8(vec![0]), &bad).is_err());
    }
}
