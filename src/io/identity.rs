//! Array identity: which directory a path names, however it is spelled. Two spellings
//! (`a.zarr`, `./a.zarr/`, `sub/../a.zarr`, an absolute path, a symlink) of one directory
//! are one `ArrayId`; nesting (a group holding an array) is a relation between ids.

use std::path::{Component, Path, PathBuf};

/// The identity of a (possibly not yet existing) array directory.
#[derive(Clone, Debug)]
pub struct ArrayId {
    /// Absolute, with `.`/`..` removed and every existing prefix's symlinks resolved.
    pub canonical: PathBuf,
    /// (device, inode) of the directory when it exists.
    pub file: Option<(u64, u64)>,
}

/// How two ids relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    Same,
    /// The first contains the second (an ancestor directory of it).
    Contains,
    /// The first lies inside the second.
    Inside,
    Unrelated,
}

#[cfg(unix)]
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_path: &Path) -> Option<(u64, u64)> {
    None
}

/// `path` made absolute and canonical as far as it exists: each component is appended and,
/// while the result exists, resolved through `canonicalize` (so `..` after a symlink goes
/// where the file system goes); past the first missing component `..` is lexical.
pub fn canonical(path: &Path) -> PathBuf {
    let base = if path.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
    };
    let mut out = base;
    let mut exists = true;
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => {
                out.push(c.as_os_str());
                exists = true;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => {
                out.push(n);
                if exists {
                    match std::fs::canonicalize(&out) {
                        Ok(real) => out = real,
                        // A dangling symlink or a missing entry: the rest is lexical.
                        Err(_) => exists = false,
                    }
                }
            }
        }
    }
    out
}

impl ArrayId {
    /// The identity of the directory `path` names (relative paths against the process's
    /// working directory; callers resolve script paths first).
    pub fn of(path: &Path) -> ArrayId {
        if let Some(url) = path.to_str().filter(|s| super::is_url(s)) {
            // A remote location is known by its normalised URL (segments compare as path
            // components, so nesting is seen too); it never equals a local path.
            return ArrayId {
                canonical: PathBuf::from(super::remote::normalise(url)),
                file: None,
            };
        }
        let canonical = canonical(path);
        let file = file_id(&canonical);
        ArrayId { canonical, file }
    }

    /// How `self` relates to `other`.
    pub fn relation(&self, other: &ArrayId) -> Relation {
        if let (Some(a), Some(b)) = (self.file, other.file) {
            if a == b {
                return Relation::Same;
            }
        }
        if self.canonical == other.canonical {
            Relation::Same
        } else if other.canonical.starts_with(&self.canonical) {
            Relation::Contains
        } else if self.canonical.starts_with(&other.canonical) {
            Relation::Inside
        } else {
            Relation::Unrelated
        }
    }

    pub fn same(&self, other: &ArrayId) -> bool {
        self.relation(other) == Relation::Same
    }
}

/// A spelling that names no new directory of its own: empty, or ending in `.` or `..`
/// (`"."`, `"b.zarr/."`, `"../.."`). Such a path is never a valid output.
pub fn names_no_entry(path: &str) -> bool {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        // "" is the working directory; "/" the root.
        return true;
    }
    matches!(
        Path::new(trimmed).components().next_back(),
        None | Some(Component::CurDir | Component::ParentDir | Component::RootDir)
    ) || trimmed.ends_with("/.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_directory_are_one_id() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a.zarr")).unwrap();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("a.zarr"), root.join("link.zarr")).unwrap();
            std::os::unix::fs::symlink(root, root.join("sub/up")).unwrap();
        }
        let a = ArrayId::of(&root.join("a.zarr"));
        let spellings = [
            root.join("./a.zarr"),
            root.join("a.zarr/"),
            root.join("a.zarr/."),
            root.join("sub/../a.zarr"),
            root.join("a.zarr/x/.."),
            #[cfg(unix)]
            root.join("link.zarr"),
            #[cfg(unix)]
            root.join("sub/up/a.zarr"),
        ];
        for s in &spellings {
            assert_eq!(
                a.relation(&ArrayId::of(s)),
                Relation::Same,
                "{}",
                s.display()
            );
        }
        // Missing paths compare by their canonical spelling.
        let o1 = ArrayId::of(&root.join("o.zarr"));
        let o2 = ArrayId::of(&root.join("sub/../o.zarr/"));
        assert!(o1.same(&o2));
        assert!(!o1.same(&a));
    }

    #[test]
    fn nesting_is_seen_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("grp/inner")).unwrap();
        let g = ArrayId::of(&dir.path().join("grp"));
        let i = ArrayId::of(&dir.path().join("grp/./inner/"));
        let n = ArrayId::of(&dir.path().join("grp/new/deeper"));
        assert_eq!(g.relation(&i), Relation::Contains);
        assert_eq!(i.relation(&g), Relation::Inside);
        assert_eq!(n.relation(&g), Relation::Inside);
        assert_eq!(i.relation(&n), Relation::Unrelated);
        // "grp2" is not inside "grp": components, not string prefixes.
        let g2 = ArrayId::of(&dir.path().join("grp2"));
        assert_eq!(g.relation(&g2), Relation::Unrelated);
    }

    #[test]
    fn spellings_without_an_entry_of_their_own() {
        for p in [
            "",
            ".",
            "./",
            "..",
            "../..",
            "b.zarr/.",
            "b.zarr/..",
            "/",
            "a/./",
            "//",
        ] {
            assert!(names_no_entry(p), "{p:?}");
        }
        for p in [
            "a.zarr",
            "a.zarr/",
            "./a.zarr",
            "sub/../a.zarr",
            "/tmp/x.zarr",
        ] {
            assert!(!names_no_entry(p), "{p:?}");
        }
    }
}
