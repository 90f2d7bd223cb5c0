//! Path identity checks at check time: every input and output is known by its `ArrayId`,
//! so no spelling (`./a.zarr`, `a.zarr/`, `sub/../a.zarr`, an absolute path, a symlink)
//! can make a write touch an array the program reads, a group around it, the working
//! directory, or a second output nested in the first — refused before anything runs.

use std::path::{Path, PathBuf};

use super::builtins::io_diag_shown;
use super::Evaluator;
use crate::diag::{codes, Diagnostic, Span};
use crate::io::identity::{names_no_entry, Relation};
use crate::io::{ArrayId, ZarrWriter};

type R<T> = Result<T, Diagnostic>;

/// The directory beside `output` that holds its intermediates and a replacement being
/// written (`OUT.tessera-tmp`).
pub fn temp_dir_of(output: &Path) -> PathBuf {
    if let Some(url) = output.to_str().filter(|s| crate::io::is_url(s)) {
        return PathBuf::from(format!("{url}.tessera-tmp"));
    }
    let clean: PathBuf = output.components().collect();
    PathBuf::from(format!("{}.tessera-tmp", clean.display()))
}

impl Evaluator {
    /// The identity of a script path.
    pub(crate) fn array_id(&self, path: &str) -> ArrayId {
        ArrayId::of(&self.resolve(path))
    }

    /// The spelling under which an array with identity `id` was first written.
    pub(crate) fn output_spelling(&self, id: &ArrayId) -> Option<String> {
        self.output_ids
            .iter()
            .find(|(o, _, _)| o.same(id))
            .map(|(_, p, _)| p.clone())
    }

    /// The spelling under which an array with identity `id` was first opened.
    pub(crate) fn input_spelling(&self, id: &ArrayId) -> Option<String> {
        self.input_ids
            .iter()
            .find(|(o, _, _)| o.same(id))
            .map(|(_, p, _)| p.clone())
    }

    /// A new input must not lie inside an output of this program, contain one, or sit in
    /// an output's intermediate directory. (The same array as an output is a read after
    /// the write, handled by the caller.)
    pub(crate) fn check_input_identity(&self, path: &str, id: &ArrayId, span: Span) -> R<()> {
        for (o, opath, ospan) in &self.output_ids {
            let rel = id.relation(o);
            let tmp = ArrayId::of(&temp_dir_of(&o.canonical));
            if matches!(rel, Relation::Contains | Relation::Inside) {
                return Err(nested(path, span, opath, *ospan, rel, false));
            }
            if matches!(id.relation(&tmp), Relation::Same | Relation::Inside) {
                return Err(in_temp_dir(path, span, opath, *ospan));
            }
        }
        Ok(())
    }

    /// A new output (not merged with an earlier write to the same array) must name an
    /// array of its own, away from the working directory, every input, and every other
    /// output. Called before anything about the output is opened or touched.
    ///
    /// The one exception is an update in place: with `in_place_ok` (the write replaces
    /// the whole array with `overwrite=true`, or writes regions of it) the output may be
    /// an array the program reads, under any spelling; the input's spelling is returned.
    pub(crate) fn check_output_identity(
        &self,
        path: &str,
        id: &ArrayId,
        span: Span,
        in_place_ok: bool,
    ) -> R<Option<String>> {
        if names_no_entry(path) {
            return Err(Diagnostic::error(
                codes::UNSAFE_OUTPUT,
                format!("{path:?} names no array of its own"),
            )
            .label(span, "not an array path")
            .note("an output path must end in the array's own name, not in `.`, `..` or `/`")
            .help("write to a new path such as \"out.zarr\""));
        }
        let mut dirs = vec![ArrayId::of(&self.resolve("."))];
        if let Ok(cwd) = std::env::current_dir() {
            dirs.push(ArrayId::of(&cwd));
        }
        for d in &dirs {
            if matches!(id.relation(d), Relation::Same | Relation::Contains) {
                return Err(Diagnostic::error(
                    codes::UNSAFE_OUTPUT,
                    format!(
                        "{path:?} is {}the working directory {}",
                        if id.same(d) { "" } else { "an ancestor of " },
                        d.canonical.display()
                    ),
                )
                .label(span, "would replace the directory the program runs in")
                .help("write to a new path such as \"out.zarr\""));
            }
        }
        let tmp = ArrayId::of(&temp_dir_of(&id.canonical));
        let mut in_place = None;
        for (i, ipath, ispan) in &self.input_ids {
            match id.relation(i) {
                Relation::Same if in_place_ok && !crate::io::is_url(ipath) => {
                    in_place = Some(ipath.clone());
                }
                Relation::Same => {
                    let remote = crate::io::is_url(ipath);
                    let mut d = Diagnostic::error(
                        codes::DUPLICATE_OUTPUT,
                        if ipath == path {
                            format!("{path:?} is both read and written by this program")
                        } else {
                            format!(
                                "{path:?} is the array {ipath:?} this program reads, under another name"
                            )
                        },
                    )
                    .label(span, "written here");
                    d = if remote {
                        d.note("an array in an object store cannot be updated in place: objects cannot be renamed, so the update could not take the array's place at once")
                            .help("write to a new key")
                    } else {
                        d.help("pass `overwrite=true` to update the whole array in place, or `region=`/`regions=` to update parts of it; otherwise write to a new path")
                    };
                    if *ispan != span {
                        d = d.label(*ispan, "read here");
                    }
                    return Err(d.note(format!("both are {}", i.canonical.display())));
                }
                rel @ (Relation::Contains | Relation::Inside) => {
                    return Err(nested(path, span, ipath, *ispan, rel, true));
                }
                Relation::Unrelated => {}
            }
            if matches!(i.relation(&tmp), Relation::Same | Relation::Inside) {
                return Err(in_temp_dir(ipath, *ispan, path, span));
            }
        }
        for (o, opath, ospan) in &self.output_ids {
            let rel = id.relation(o);
            if matches!(rel, Relation::Contains | Relation::Inside) {
                return Err(nested(path, span, opath, *ospan, rel, false));
            }
            let otmp = ArrayId::of(&temp_dir_of(&o.canonical));
            if matches!(id.relation(&otmp), Relation::Same | Relation::Inside) {
                return Err(in_temp_dir(path, span, opath, *ospan));
            }
            if matches!(o.relation(&tmp), Relation::Same | Relation::Inside) {
                return Err(in_temp_dir(opath, *ospan, path, span));
            }
        }
        Ok(in_place)
    }

    /// The storage side of a new output, checked before it is opened: its intermediate
    /// directory must be Tessera's, an existing store written in place must hold no
    /// symbolic link, and an existing array being replaced gets a staging directory (the
    /// run writes there and swaps at the end). Returns that staging directory. An array
    /// updated in place (`in_place`) is always staged, also when only regions change.
    pub(crate) fn check_output_store(
        &mut self,
        path: &str,
        span: Span,
        overwrite: bool,
        in_place: bool,
    ) -> R<Option<PathBuf>> {
        let resolved = self.resolve(path);
        if crate::io::is_url(path) {
            return remote_output(path, span).map(|()| None);
        }
        let shown = |e: &crate::io::IoError, d: &Path| io_diag_shown(e, span, Some((path, d)));
        let tmp = temp_dir_of(&resolved);
        crate::io::temp_dir_check(&tmp).map_err(|e| shown(&e, &resolved))?;
        let exists = std::fs::symlink_metadata(&resolved).is_ok();
        if !exists {
            return Ok(None);
        }
        if !overwrite && !in_place {
            if resolved.is_dir() {
                if let Some(link) = crate::io::symlinks_inside(&resolved, 1).first() {
                    let e = crate::io::IoError::Symlink {
                        path: resolved.display().to_string(),
                        entry: link
                            .strip_prefix(&resolved)
                            .unwrap_or(link)
                            .display()
                            .to_string(),
                    };
                    return Err(shown(&e, &resolved));
                }
            }
            return Ok(None);
        }
        let staging = tmp.join("output.zarr");
        let record = crate::io::RESUME_RECORD;
        if !in_place
            && self.resuming
            && resolved.join(record).is_file()
            && !staging.join(record).is_file()
        {
            // An interrupted first write of this output: `--resume` continues it in place
            // (the runtime checks the record belongs to this plan).
            return Ok(None);
        }
        ZarrWriter::check_writable(&resolved, true).map_err(|e| shown(&e, &resolved))?;
        if !self.program.temporaries.contains(&tmp) {
            self.program.temporaries.push(tmp.clone());
        }
        Ok(Some(staging))
    }
}

/// A remote output, checked without a request: the URL must parse, and HTTP is read-only.
/// (The store itself is checked when the output is checked for writing.) An object store
/// has no rename, so an output there is written in place and never staged.
fn remote_output(path: &str, span: Span) -> R<()> {
    let loc = crate::io::remote::parse(path).map_err(|detail| {
        Diagnostic::error(
            codes::BAD_URL,
            crate::diag::escape(&format!("{path}: {detail}")),
        )
        .label(span, "not a usable URL")
    })?;
    if loc.segments.is_empty() {
        return Err(Diagnostic::error(
            codes::BAD_URL,
            crate::diag::escape(&format!("{path:?} names no array of its own")),
        )
        .label(span, "a bucket or host, not an array")
        .help("write to a key inside it, such as \"s3://bucket/out.zarr\""));
    }
    if loc.scheme == crate::io::remote::Scheme::Http {
        return Err(Diagnostic::error(
            codes::REMOTE_READ_ONLY,
            crate::diag::escape(&format!("cannot write {path}: HTTP stores are read-only")),
        )
        .label(span, "an http(s):// URL")
        .help("write to s3://bucket/... or a local path; http(s):// URLs can only be read"));
    }
    Ok(())
}

/// A file output (`preview`, `write_csv`, the REPL's `:save`): refuse an existing file
/// without `overwrite`, and a directory or a path naming no file of its own always.
pub fn check_file_target(shown: &str, resolved: &Path, overwrite: bool) -> R<()> {
    if names_no_entry(shown) {
        return Err(Diagnostic::error(
            codes::UNSAFE_OUTPUT,
            format!("{shown:?} names no file of its own"),
        ));
    }
    match std::fs::symlink_metadata(resolved) {
        Ok(md) if md.is_dir() => Err(Diagnostic::error(
            codes::UNWRITABLE,
            format!("cannot write {shown}: it is a directory"),
        )),
        Ok(_) if !overwrite => Err(Diagnostic::error(
            codes::OUTPUT_EXISTS,
            format!("{shown} already exists (pass overwrite=true to replace it)"),
        )),
        _ => Ok(()),
    }
}

impl Evaluator {
    /// A file a sink writes (`preview`, `write_csv`): checked as `check_file_target`, and
    /// never inside an array the program reads or writes.
    pub(crate) fn check_file_output(&self, path: &str, span: Span, overwrite: bool) -> R<()> {
        let resolved = self.resolve(path);
        let id = ArrayId::of(&resolved);
        for (a, apath, aspan) in self.input_ids.iter().chain(&self.output_ids) {
            if matches!(id.relation(a), Relation::Same | Relation::Inside) {
                let read = self.input_ids.iter().any(|(_, p, _)| p == apath);
                return Err(nested(path, span, apath, *aspan, Relation::Inside, read));
            }
        }
        check_file_target(path, &resolved, overwrite).map_err(|d| {
            let help = if d.code == codes::OUTPUT_EXISTS {
                "pass `overwrite=true` to replace it, or choose another path"
            } else {
                "choose another path"
            };
            d.label(span, "written here").help(help)
        })
    }
}

/// `path` (at `span`) and `other` (at `ospan`; read or written by the program) are nested.
fn nested(
    path: &str,
    span: Span,
    other: &str,
    ospan: Span,
    rel: Relation,
    read: bool,
) -> Diagnostic {
    let (verb, done) = if read {
        ("reads", "read here")
    } else {
        ("writes", "written here")
    };
    let how = if rel == Relation::Contains {
        "contains"
    } else {
        "lies inside"
    };
    let mut d = Diagnostic::error(
        codes::NESTED_ARRAYS,
        format!("{path:?} {how} {other:?}, which this program also {verb}"),
    )
    .label(span, format!("{how} {other:?}"))
    .note("writing one array of a nested pair would replace or change the other")
    .help("write to a path outside every array the program reads or writes");
    if ospan != span {
        d = d.label(ospan, done);
    }
    d
}

/// `path` lies in the directory Tessera keeps `output`'s intermediates in.
fn in_temp_dir(path: &str, span: Span, output: &str, ospan: Span) -> Diagnostic {
    let mut d = Diagnostic::error(
        codes::NESTED_ARRAYS,
        format!("{path:?} lies in {output:?}'s intermediate directory {output}.tessera-tmp"),
    )
    .label(span, "inside the intermediate directory")
    .note("Tessera replaces and removes that directory while it writes the output")
    .help("move the array elsewhere, or write to another output path");
    if ospan != span {
        d = d.label(ospan, "the output");
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_targets_are_replaced_only_with_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.tsr");
        assert!(check_file_target("s.tsr", &f, false).is_ok());
        std::fs::write(&f, "kept").unwrap();
        let e = check_file_target("s.tsr", &f, false).unwrap_err();
        assert_eq!(e.code, codes::OUTPUT_EXISTS);
        assert!(check_file_target("s.tsr", &f, true).is_ok());
        for shown in ["", ".", "..", "d/."] {
            let e = check_file_target(shown, dir.path(), true).unwrap_err();
            assert_eq!(e.code, codes::UNSAFE_OUTPUT, "{shown:?}");
        }
        let e = check_file_target("d", dir.path(), true).unwrap_err();
        assert_eq!(e.code, codes::UNWRITABLE);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "kept");
    }

    #[test]
    fn temp_dirs_sit_beside_every_spelling() {
        for p in ["o.zarr", "o.zarr/", "./o.zarr/.", "o.zarr//"] {
            let t = temp_dir_of(Path::new(p));
            assert_eq!(
                t.file_name().unwrap(),
                "o.zarr.tessera-tmp",
                "{p:?} -> {}",
                t.display()
            );
        }
    }
}
