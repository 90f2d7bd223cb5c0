//! An image stack as the IR holds it: the checked files of a `tiff(...)` or `png(...)`
//! source and the array they make (`io::images` opens and decodes them).

use crate::dtype::DType;
use std::path::PathBuf;

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Tiff,
    Png,
}

impl ImageFormat {
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Tiff => "tiff",
            ImageFormat::Png => "png",
        }
    }
}

/// One file of a stack, with what identifies its version: a file whose size or
/// modification time differs at run time has changed since the check.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageFile {
    /// As the script would spell it (relative to the script's directory when the pattern is).
    pub name: String,
    pub len: u64,
    /// Nanoseconds since the Unix epoch.
    pub modified_ns: u64,
}

/// A checked stack: `files` in order, `pages` planes read from each (all of a multi-page
/// TIFF, 1 otherwise), every plane of shape `plane` (`(h, w)` or `(h, w, samples)`) and
/// dtype `dtype`. Plane `p` of the array (C order over the leading axes) is page
/// `p % pages` of file `p / pages`.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageStack {
    pub format: ImageFormat,
    /// The pattern or path as written.
    pub pattern: String,
    /// The directory relative names are joined to (the script's, canonical).
    pub base: PathBuf,
    pub files: Vec<ImageFile>,
    pub pages: u64,
    pub plane: Vec<u64>,
    pub dtype: DType,
    /// The leading axes (their lengths multiply to `files.len() * pages`).
    pub lead: Vec<u64>,
    /// One letter per leading axis for printing: `n` files, `p` pages, or OME's `t`, `c`, `z`.
    pub axes: String,
}

impl ImageStack {
    pub fn shape(&self) -> Vec<u64> {
        self.lead.iter().chain(&self.plane).copied().collect()
    }

    pub fn planes(&self) -> u64 {
        self.files.len() as u64 * self.pages
    }

    pub fn path_of(&self, file: &ImageFile) -> PathBuf {
        self.base.join(&file.name)
    }
}
