//! Image stacks: TIFF and PNG files read as lazy arrays, one plane per chunk.
//!
//! `open` runs at check time. It expands a glob into files sorted naturally
//! (`frame2` before `frame10`), reads only each file's header (for a multi-page TIFF, every
//! page's directory, never pixel data) and refuses mixed shapes or dtypes, unreadable files
//! and sample formats Tessera has no dtype for, naming the file. The result, `ImageStack`,
//! is plain data (it lives in the IR and in exported plans). `read_plane` runs at run time:
//! it decodes one file or page, after checking that the file is the one `open` saw.

use crate::data::Buf;
use crate::dtype::DType;
pub use crate::ir::images::{ImageFile, ImageFormat, ImageStack};
use std::cmp::Ordering;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Diagnostic codes of image stacks (kept here so `io` and `lower` agree on them).
pub mod code {
    pub const NO_MATCH: &str = crate::diag::codes::IMAGE_NO_MATCH;
    pub const MIXED: &str = crate::diag::codes::IMAGE_MIXED;
    pub const UNREADABLE: &str = crate::diag::codes::IMAGE_UNREADABLE;
    pub const UNSUPPORTED: &str = crate::diag::codes::IMAGE_UNSUPPORTED;
    pub const CHANGED: &str = crate::diag::codes::IMAGE_CHANGED;
    pub const BAD_PATTERN: &str = crate::diag::codes::IMAGE_BAD_PATTERN;
}

/// Why a stack cannot be opened or a plane read; `code` is its diagnostic code.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageError {
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ImageError> for super::IoError {
    fn from(e: ImageError) -> Self {
        super::IoError::Image {
            code: e.code,
            message: e.message,
        }
    }
}

fn err(code: &'static str, message: String) -> ImageError {
    ImageError { code, message }
}

/// The natural order of names: runs of digits compare as numbers (`frame2 < frame10`),
/// everything else byte by byte; equal numbers with more leading zeros come later, so the
/// order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut zeros = Ordering::Equal;
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let run = |s: &[u8], k: usize| {
                let end = k + s[k..].iter().take_while(|c| c.is_ascii_digit()).count();
                let lead = s[k..end].iter().take_while(|c| **c == b'0').count();
                (k + lead, end)
            };
            let ((a0, a1), (b0, b1)) = (run(a, i), run(b, j));
            let by_value = (a1 - a0)
                .cmp(&(b1 - b0))
                .then_with(|| a[a0..a1].cmp(&b[b0..b1]));
            if by_value != Ordering::Equal {
                return by_value;
            }
            if zeros == Ordering::Equal {
                zeros = (a1 - i).cmp(&(b1 - j));
            }
            (i, j) = (a1, b1);
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j)).then(zeros)
}

fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    let m = std::fs::metadata(path)?;
    let ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    Ok((m.len(), ns))
}

/// The files `pattern` names (resolved against `base`), naturally sorted, as the script
/// would spell them.
fn expand(pattern: &str, base: &Path) -> Result<Vec<String>, ImageError> {
    if !is_pattern(pattern) {
        let path = base.join(pattern);
        if !path.is_file() {
            return Err(err(
                code::UNREADABLE,
                format!("cannot read {pattern}: no such file"),
            ));
        }
        return Ok(vec![pattern.to_string()]);
    }
    let absolute = Path::new(pattern).is_absolute();
    let full = if absolute {
        pattern.to_string()
    } else {
        let b = glob::Pattern::escape(&base.to_string_lossy());
        format!("{}/{pattern}", b.trim_end_matches('/'))
    };
    let paths = glob::glob(&full).map_err(|e| {
        err(
            code::BAD_PATTERN,
            format!("the pattern {pattern} is not a valid glob: {}", e.msg),
        )
    })?;
    let mut names = Vec::new();
    for p in paths {
        let p = p.map_err(|e| {
            err(
                code::UNREADABLE,
                format!("cannot list {}: {}", e.path().display(), e.error()),
            )
        })?;
        if !p.is_file() {
            continue;
        }
        let name = if absolute {
            p.display().to_string()
        } else {
            p.strip_prefix(base)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned()
        };
        names.push(name);
    }
    if names.is_empty() {
        return Err(err(
            code::NO_MATCH,
            format!("the pattern {pattern} matches no file"),
        ));
    }
    names.sort_by(|a, b| natural_cmp(a, b));
    Ok(names)
}

/// What a file's header says about one plane.
#[derive(Clone, Debug, PartialEq)]
struct Header {
    plane: Vec<u64>,
    dtype: DType,
    samples: u64,
}

impl Header {
    fn describe(&self) -> String {
        format!("{} {}", self.dtype, crate::geom::fmt_shape(&self.plane))
    }
}

/// A TIFF file's pages: their count, the common plane, and the first page's OME axes.
struct TiffInfo {
    pages: u64,
    header: Header,
    ome: Option<Vec<(char, u64)>>,
}

const SUPPORTED_COMPRESSION: &[u16] = &[1, 5, 7, 8, 32773, 32946];

fn tiff_decoder(
    name: &str,
    path: &Path,
) -> Result<tiff::decoder::Decoder<BufReader<File>>, ImageError> {
    let f =
        File::open(path).map_err(|e| err(code::UNREADABLE, format!("cannot read {name}: {e}")))?;
    tiff::decoder::Decoder::new(BufReader::new(f))
        .map(|d| d.with_limits(tiff::decoder::Limits::unlimited()))
        .map_err(|e| unreadable_tiff(name, e))
}

fn unreadable_tiff(name: &str, e: tiff::TiffError) -> ImageError {
    match e {
        tiff::TiffError::UnsupportedError(u) => {
            err(code::UNSUPPORTED, format!("{name}: unsupported TIFF: {u}"))
        }
        tiff::TiffError::FormatError(f) => err(
            code::UNREADABLE,
            format!("{name} is not a readable TIFF file: {f}"),
        ),
        other => err(code::UNREADABLE, format!("cannot read {name}: {other}")),
    }
}

/// The plane the decoder's current page holds, or why Tessera cannot read it.
fn tiff_page(
    name: &str,
    d: &mut tiff::decoder::Decoder<BufReader<File>>,
) -> Result<Header, ImageError> {
    use tiff::tags::Tag;
    use tiff::ColorType;
    let bad = |what: String| {
        err(
            code::UNSUPPORTED,
            format!("{name}: unsupported sample format: {what}"),
        )
    };
    let (w, h) = d.dimensions().map_err(|e| unreadable_tiff(name, e))?;
    let color = d.colortype().map_err(|e| unreadable_tiff(name, e))?;
    let tag = |d: &mut tiff::decoder::Decoder<BufReader<File>>, t: Tag| {
        d.find_tag_unsigned::<u16>(t)
            .map_err(|e| unreadable_tiff(name, e))
    };
    let (samples, bits) = match color {
        ColorType::Gray(b) => (1u16, b),
        ColorType::RGB(b) => (3, b),
        ColorType::RGBA(b) => (4, b),
        ColorType::Multiband {
            bit_depth,
            num_samples,
        } => (num_samples, bit_depth),
        other => {
            return Err(bad(format!(
                "{other:?} pixels (only grayscale, RGB, RGBA and multi-sample are read)"
            )))
        }
    };
    if tag(d, Tag::PhotometricInterpretation)? == Some(0) {
        return Err(bad("WhiteIsZero photometric (inverted grayscale)".into()));
    }
    let separate = samples > 1 && tag(d, Tag::PlanarConfiguration)? == Some(2);
    let compression = tag(d, Tag::Compression)?.unwrap_or(1);
    if !SUPPORTED_COMPRESSION.contains(&compression) {
        return Err(bad(format!("compression {compression}")));
    }
    // SampleFormat: 1 unsigned, 2 signed, 3 IEEE float (absent: unsigned).
    let format = tag(d, Tag::SampleFormat)?.unwrap_or(1);
    let dtype = match (format, bits) {
        (1, 8) => DType::U8,
        (1, 16) => DType::U16,
        (1, 32) => DType::U32,
        (1, 64) => DType::U64,
        (2, 8) => DType::I8,
        (2, 16) => DType::I16,
        (2, 32) => DType::I32,
        (2, 64) => DType::I64,
        (3, 32) => DType::F32,
        (3, 64) => DType::F64,
        (f, b) => {
            let kind = match f {
                1 => "unsigned",
                2 => "signed",
                3 => "float",
                5 => "complex integer",
                6 => "complex float",
                _ => "unknown",
            };
            return Err(bad(format!("{b}-bit {kind} samples (SampleFormat {f})")));
        }
    };
    // Interleaved samples are a last axis, separate sample planes a first one (as tifffile).
    let plane = match (samples, separate) {
        (1, _) => vec![h as u64, w as u64],
        (s, false) => vec![h as u64, w as u64, s as u64],
        (s, true) => vec![s as u64, h as u64, w as u64],
    };
    Ok(Header {
        plane,
        dtype,
        samples: samples as u64,
    })
}

/// The dimensions of the first OME `Pixels` element, outermost first (`T`, `C`, `Z` in the
/// order `DimensionOrder` implies), when the description is OME-XML.
fn ome_axes(description: &str) -> Option<Vec<(char, u64)>> {
    if !description.contains("http://www.openmicroscopy.org/Schemas/OME/") {
        return None;
    }
    let start = description.find("Pixels ").filter(|i| {
        let before = &description[..*i];
        before.ends_with('<') || before.ends_with(':')
    })?;
    let tag = &description[start..];
    let tag = &tag[..tag.find('>')?];
    let attr = |key: &str| -> Option<&str> {
        let mut rest = tag;
        while let Some(i) = rest.find(key) {
            let after = &rest[i + key.len()..];
            let boundary = i == 0 || rest.as_bytes()[i - 1].is_ascii_whitespace();
            if boundary {
                if let Some(v) = after.trim_start().strip_prefix('=') {
                    let v = v.trim_start();
                    let q = v.chars().next()?;
                    if q == '"' || q == '\'' {
                        let v = &v[1..];
                        return Some(&v[..v.find(q)?]);
                    }
                }
            }
            rest = after;
        }
        None
    };
    let order = attr("DimensionOrder")?;
    if order.len() != 5 || !order.starts_with("XY") {
        return None;
    }
    let mut axes = Vec::new();
    for c in order[2..].chars().rev() {
        let n: u64 = attr(&format!("Size{c}"))?.parse().ok()?;
        if !matches!(c, 'Z' | 'C' | 'T') || n == 0 {
            return None;
        }
        axes.push((c, n));
    }
    Some(axes)
}

fn tiff_info(name: &str, path: &Path, all_pages: bool) -> Result<TiffInfo, ImageError> {
    let mut d = tiff_decoder(name, path)?;
    let header = tiff_page(name, &mut d)?;
    let ome = if all_pages {
        d.get_tag_ascii_string(tiff::tags::Tag::ImageDescription)
            .ok()
            .and_then(|s| ome_axes(&s))
    } else {
        None
    };
    let mut pages = 1u64;
    while d.more_images() {
        d.next_image().map_err(|e| unreadable_tiff(name, e))?;
        // Reduced-resolution pages and thumbnails (NewSubfileType bit 0) are not planes.
        let sub = d
            .find_tag_unsigned::<u32>(tiff::tags::Tag::NewSubfileType)
            .map_err(|e| unreadable_tiff(name, e))?
            .unwrap_or(0);
        if sub & 1 == 1 {
            break;
        }
        let here = tiff_page(&format!("{name} (page {pages})"), &mut d)?;
        if here != header {
            return Err(err(
                code::MIXED,
                format!(
                    "{name}: page {pages} is {} but page 0 is {}; every page of a stack must have one shape and dtype",
                    here.describe(),
                    header.describe()
                ),
            ));
        }
        pages += 1;
    }
    Ok(TiffInfo { pages, header, ome })
}

fn png_header(name: &str, path: &Path) -> Result<Header, ImageError> {
    let f =
        File::open(path).map_err(|e| err(code::UNREADABLE, format!("cannot read {name}: {e}")))?;
    let mut d = png::Decoder::new(BufReader::new(f));
    let info = d.read_header_info().map_err(|e| {
        err(
            code::UNREADABLE,
            format!("{name} is not a readable PNG file: {e}"),
        )
    })?;
    png_plane(name, info)
}

fn png_plane(name: &str, info: &png::Info) -> Result<Header, ImageError> {
    let bad = |what: String| {
        err(
            code::UNSUPPORTED,
            format!("{name}: unsupported sample format: {what}"),
        )
    };
    let dtype = match info.bit_depth {
        png::BitDepth::Eight => DType::U8,
        png::BitDepth::Sixteen => DType::U16,
        b => return Err(bad(format!("{}-bit samples", b as u8))),
    };
    let samples = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(bad("palette (indexed) pixels".into())),
    };
    let mut plane = vec![info.height as u64, info.width as u64];
    if samples > 1 {
        plane.push(samples);
    }
    Ok(Header {
        plane,
        dtype,
        samples,
    })
}

/// Check a stack before running: expand the pattern, read every file's header and insist on
/// one plane shape and dtype. `squeeze` drops the length-1 axes of OME-TIFF metadata.
pub fn open(
    format: ImageFormat,
    pattern: &str,
    base: &Path,
    squeeze: bool,
) -> Result<ImageStack, ImageError> {
    let names = expand(pattern, base)?;
    let single = !is_pattern(pattern);
    let mut files = Vec::with_capacity(names.len());
    let mut first: Option<(String, Header, u64)> = None;
    let mut ome = None;
    for name in names {
        let path = base.join(&name);
        let (len, modified_ns) = identity(&path)
            .map_err(|e| err(code::UNREADABLE, format!("cannot read {name}: {e}")))?;
        let (header, pages) = match format {
            ImageFormat::Tiff => {
                let info = tiff_info(&name, &path, single)?;
                ome = info.ome;
                (info.header, info.pages)
            }
            ImageFormat::Png => (png_header(&name, &path)?, 1),
        };
        match &first {
            None => first = Some((name.clone(), header, pages)),
            Some((f, h, p)) => {
                if *h != header || *p != pages {
                    let pages_of = |n: u64| {
                        if n == 1 {
                            String::new()
                        } else {
                            format!(" in {n} pages")
                        }
                    };
                    return Err(err(
                        code::MIXED,
                        format!(
                            "{name} is {}{} but {f} is {}{}; every file of a stack must have one shape and dtype",
                            header.describe(),
                            pages_of(pages),
                            h.describe(),
                            pages_of(*p)
                        ),
                    ));
                }
            }
        }
        files.push(ImageFile {
            name,
            len,
            modified_ns,
        });
    }
    let (_, header, pages) = first.expect("expand returns at least one file");
    let (mut lead, mut axes): (Vec<u64>, String) = if single {
        (vec![pages], "p".into())
    } else if pages > 1 {
        (vec![files.len() as u64, pages], "np".into())
    } else {
        (vec![files.len() as u64], "n".into())
    };
    if let Some(dims) = ome {
        let samples = header.samples;
        // An RGB OME image counts its samples as channels; each page holds all of them.
        let dims: Vec<(char, u64)> = dims
            .into_iter()
            .map(|(c, n)| match c {
                'C' if samples > 1 && n == samples => (c, 1),
                _ => (c, n),
            })
            .collect();
        let planes: u64 = dims.iter().map(|(_, n)| n).product();
        // Pages beyond the first image's planes belong to further OME images: not read.
        if planes <= pages && planes > 0 {
            let kept: Vec<(char, u64)> = dims
                .into_iter()
                .filter(|(_, n)| !squeeze || *n > 1)
                .collect();
            lead = kept.iter().map(|(_, n)| *n).collect();
            axes = kept.iter().map(|(c, _)| c.to_ascii_lowercase()).collect();
            return Ok(ImageStack {
                format,
                pattern: pattern.to_string(),
                base: base.to_path_buf(),
                files,
                pages: planes,
                plane: header.plane,
                dtype: header.dtype,
                lead,
                axes,
            });
        }
    }
    if single && pages == 1 && !squeeze {
        lead = vec![1];
    }
    Ok(ImageStack {
        format,
        pattern: pattern.to_string(),
        base: base.to_path_buf(),
        files,
        pages,
        plane: header.plane,
        dtype: header.dtype,
        lead,
        axes,
    })
}

fn changed(name: &str, why: impl std::fmt::Display) -> ImageError {
    err(
        code::CHANGED,
        format!("{name} changed since the program was checked ({why}); check and run again"),
    )
}

fn buf_of(d: tiff::decoder::DecodingResult) -> Option<Buf> {
    use tiff::decoder::DecodingResult as R;
    Some(match d {
        R::U8(v) => Buf::U8(v),
        R::U16(v) => Buf::U16(v),
        R::U32(v) => Buf::U32(v),
        R::U64(v) => Buf::U64(v),
        R::I8(v) => Buf::I8(v),
        R::I16(v) => Buf::I16(v),
        R::I32(v) => Buf::I32(v),
        R::I64(v) => Buf::I64(v),
        R::F32(v) => Buf::F32(v),
        R::F64(v) => Buf::F64(v),
        _ => return None,
    })
}

/// A decoder kept per worker thread for the pages of a multi-page file, so reading page
/// `k` after page `k - 1` does not walk the directory chain from the start again.
struct Kept {
    path: PathBuf,
    len: u64,
    modified_ns: u64,
    decoder: tiff::decoder::Decoder<BufReader<File>>,
}

thread_local! {
    static KEPT: std::cell::RefCell<Option<Kept>> = const { std::cell::RefCell::new(None) };
}

fn decode_tiff_page(
    stack: &ImageStack,
    file: &ImageFile,
    page: u64,
) -> Result<tiff::decoder::DecodingResult, ImageError> {
    let name = &file.name;
    let path = stack.path_of(file);
    let fresh = || -> Result<tiff::decoder::Decoder<BufReader<File>>, ImageError> {
        tiff_decoder(name, &path).map_err(|e| changed(name, e))
    };
    let decode = |d: &mut tiff::decoder::Decoder<BufReader<File>>| {
        if page > 0 {
            d.seek_to_image(page as usize)
                .map_err(|e| changed(name, e))?;
        }
        let got = tiff_page(name, d).map_err(|e| changed(name, e))?;
        if got.plane != stack.plane || got.dtype != stack.dtype {
            return Err(changed(
                name,
                format!(
                    "it now holds {} where {} {} was checked",
                    got.describe(),
                    stack.dtype,
                    crate::geom::fmt_shape(&stack.plane)
                ),
            ));
        }
        let mut out = tiff::decoder::DecodingResult::U8(Vec::new());
        d.read_image_to_buffer(&mut out).map(|_| out).map_err(|e| {
            err(
                code::UNREADABLE,
                format!("cannot decode {name}{}: {e}", page_suffix(stack, page)),
            )
        })
    };
    if stack.pages == 1 {
        return decode(&mut fresh()?);
    }
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let reuse = matches!(&*kept, Some(k) if k.path == path && k.len == file.len && k.modified_ns == file.modified_ns);
        if !reuse {
            *kept = Some(Kept {
                path: path.clone(),
                len: file.len,
                modified_ns: file.modified_ns,
                decoder: fresh()?,
            });
        }
        let k = kept.as_mut().expect("set above");
        let out = decode(&mut k.decoder);
        if out.is_err() {
            *kept = None;
        }
        out
    })
}

fn page_suffix(stack: &ImageStack, page: u64) -> String {
    if stack.pages > 1 {
        format!(" (page {page})")
    } else {
        String::new()
    }
}

fn decode_png(stack: &ImageStack, file: &ImageFile) -> Result<Buf, ImageError> {
    let name = &file.name;
    let path = stack.path_of(file);
    let f = File::open(&path).map_err(|e| changed(name, e))?;
    let mut d = png::Decoder::new(BufReader::new(f));
    d.set_transformations(png::Transformations::IDENTITY);
    let mut r = d.read_info().map_err(|e| changed(name, e))?;
    let header = png_plane(name, r.info()).map_err(|e| changed(name, e))?;
    if header.plane != stack.plane || header.dtype != stack.dtype {
        return Err(changed(name, format!("it now holds {}", header.describe())));
    }
    let size = r
        .output_buffer_size()
        .ok_or_else(|| err(code::UNREADABLE, format!("{name}: the image is too large")))?;
    let mut bytes = vec![0u8; size];
    r.next_frame(&mut bytes)
        .map_err(|e| err(code::UNREADABLE, format!("cannot decode {name}: {e}")))?;
    Ok(match stack.dtype {
        DType::U16 => Buf::U16(
            bytes
                .chunks_exact(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .collect(),
        ),
        _ => Buf::U8(bytes),
    })
}

/// Decode plane `p` (C order over the leading axes): the whole plane, `stack.plane` in
/// C order. A file whose size or modification time differs from the check's, or whose
/// header now says something else, is an error naming it.
pub fn read_plane(stack: &ImageStack, p: u64) -> Result<Buf, ImageError> {
    let file = stack.files.get((p / stack.pages) as usize).ok_or_else(|| {
        err(
            code::CHANGED,
            format!("plane {p} is outside the stack {}", stack.pattern),
        )
    })?;
    let page = p % stack.pages;
    let path = stack.path_of(file);
    let (len, modified_ns) = identity(&path).map_err(|e| changed(&file.name, e))?;
    if len != file.len || modified_ns != file.modified_ns {
        return Err(changed(
            &file.name,
            if len != file.len {
                format!("{} bytes, {} when checked", len, file.len)
            } else {
                "its modification time differs".to_string()
            },
        ));
    }
    let buf = match stack.format {
        ImageFormat::Tiff => {
            let d = decode_tiff_page(stack, file, page)?;
            buf_of(d).ok_or_else(|| {
                err(
                    code::UNSUPPORTED,
                    format!("{}: unsupported sample format", file.name),
                )
            })?
        }
        ImageFormat::Png => decode_png(stack, file)?,
    };
    let want = crate::geom::saturating_product(&stack.plane) as usize;
    if buf.len() != want || buf.dtype() != stack.dtype {
        return Err(changed(
            &file.name,
            format!(
                "{} {} elements decoded, {want} expected",
                buf.len(),
                buf.dtype()
            ),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec![
            "f10.tif", "f2.tif", "f1.tif", "f02.tif", "g.tif", "f.tif", "f100a",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            ["f.tif", "f1.tif", "f2.tif", "f02.tif", "f10.tif", "f100a", "g.tif"]
        );
        assert_eq!(natural_cmp("a_2_b10", "a_2_b9"), Ordering::Greater);
    }

    #[test]
    fn ome_dimension_order() {
        let xml = r#"<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="4" SizeY="3" SizeZ="5" SizeC="2" SizeT="1"></Pixels></Image></OME>"#;
        assert_eq!(ome_axes(xml), Some(vec![('T', 1), ('C', 2), ('Z', 5)]));
        assert_eq!(ome_axes("ImageJ=1.11a\nimages=3"), None);
    }
}
