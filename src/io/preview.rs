//! PNG previews of 2-D arrays (`:show`, and `x.preview(path)` once the language wires
//! it): auto-contrast greyscale for measurements, a colour map for label images, and a
//! small PNG encoder (chunks and CRC here, deflate from flate2).

use crate::data::Buf;
use std::io::Write;
use std::path::Path;

/// Largest preview side; bigger arrays should be sliced or strided first.
pub const MAX_SIDE: u64 = 4096;
/// Integer and bool images with at most this many distinct values are drawn as labels.
pub const MAX_LABELS: usize = 32;

/// Why an array cannot be previewed, with what to do instead.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    /// The array is an image, only too large (rather than the wrong shape).
    pub too_large: bool,
    pub message: String,
    pub help: String,
}

/// The 2-D shape an array previews as: axes of length 1 are dropped (a `[1, 512, 512]`
/// slice is an image).
pub fn image_shape(shape: &[u64]) -> Result<(u64, u64), Refusal> {
    let kept: Vec<u64> = shape.iter().copied().filter(|n| *n != 1).collect();
    let refuse = |help: &str| Refusal {
        too_large: false,
        message: format!(
            "a preview needs a 2-D array, not shape {}",
            crate::geom::fmt_shape(shape)
        ),
        help: help.to_string(),
    };
    let (h, w) = match kept[..] {
        [h, w] => (h, w),
        // A 1 x n or n x 1 image is still an image.
        [n] if shape.len() >= 2 => {
            if shape[shape.len() - 1] == 1 {
                (n, 1)
            } else {
                (1, n)
            }
        }
        [] if shape.len() >= 2 => (1, 1),
        _ if shape.len() < 2 => {
            return Err(refuse(
                "add an axis to show it as one row, e.g. `x[none, :]`",
            ))
        }
        _ => {
            return Err(refuse(
                "slice it to two axes first, e.g. `x[0]` or `x[0, 0]`",
            ))
        }
    };
    if h == 0 || w == 0 {
        return Err(Refusal {
            too_large: false,
            message: "the array is empty".into(),
            help: "slice a part that has elements".into(),
        });
    }
    if h > MAX_SIDE || w > MAX_SIDE {
        let s = h.max(w).div_ceil(MAX_SIDE).max(2);
        return Err(Refusal {
            too_large: true,
            message: format!("{h} x {w} is too large to preview (at most {MAX_SIDE} x {MAX_SIDE})"),
            help: format!("slice or stride it first, e.g. `x[::{s}, ::{s}]`"),
        });
    }
    Ok((h, w))
}

/// An element as a number: complex values by magnitude.
fn value_at(b: &Buf, i: usize) -> f64 {
    match b {
        Buf::C64(v) => v[i].norm() as f64,
        Buf::C128(v) => v[i].norm(),
        other => other.get_f64(i),
    }
}

/// The `q`-quantile (nearest rank) of finite values; reorders `v`.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    let (_, x, _) = v.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    *x
}

/// A distinct, bright colour for label number `k` (golden-angle hues).
fn label_colour(k: usize) -> [u8; 3] {
    let h = (k as f64 * 137.507_764) % 360.0;
    let (s, v) = (0.7, 0.95);
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let q = |f: f64| ((f + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    [q(r), q(g), q(b)]
}

/// Pixels of an image: (PNG colour type, bytes per pixel, pixel bytes).
pub fn render(b: &Buf, height: u64, width: u64) -> (u8, usize, Vec<u8>) {
    let n = (height * width) as usize;
    let n = n.min(b.len());
    let integral = !matches!(b, Buf::F32(_) | Buf::F64(_) | Buf::C64(_) | Buf::C128(_));
    if integral {
        let mut distinct: Vec<u64> = Vec::new();
        for i in 0..n {
            let key = b.get_f64(i).to_bits();
            if let Err(pos) = distinct.binary_search(&key) {
                if distinct.len() == MAX_LABELS {
                    distinct.clear();
                    break;
                }
                distinct.insert(pos, key);
            }
        }
        if !distinct.is_empty() {
            // Labels: 0 (background) is black, every other value its own colour, in
            // value order so the same labels always get the same colours.
            let mut values: Vec<f64> = distinct.iter().map(|k| f64::from_bits(*k)).collect();
            values.sort_by(|a, b| a.total_cmp(b));
            let nonzero: Vec<f64> = values.into_iter().filter(|v| *v != 0.0).collect();
            let mut px = Vec::with_capacity(n * 3);
            for i in 0..n {
                let v = b.get_f64(i);
                let c = match nonzero.iter().position(|x| *x == v) {
                    Some(k) => label_colour(k),
                    None => [0, 0, 0],
                };
                px.extend_from_slice(&c);
            }
            return (2, 3, px);
        }
    }
    let mut finite: Vec<f64> = (0..n)
        .map(|i| value_at(b, i))
        .filter(|x| x.is_finite())
        .collect();
    let (lo, hi) = if finite.is_empty() {
        (0.0, 0.0)
    } else {
        (quantile(&mut finite, 0.005), quantile(&mut finite, 0.995))
    };
    let px = (0..n)
        .map(|i| {
            let v = value_at(b, i);
            if !v.is_finite() {
                // NaN is black; infinities take the end they point at.
                return if v == f64::INFINITY { 255 } else { 0 };
            }
            if hi <= lo {
                // A constant image: mid grey says "no contrast" better than black.
                return 128;
            }
            ((v - lo) / (hi - lo) * 255.0).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    (0, 1, px)
}

/// CRC-32 (IEEE) as PNG chunks use it.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut table = [0u32; 256];
    for (i, e) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *e = c;
    }
    let mut crc = 0xFFFF_FFFFu32;
    for p in parts {
        for &byte in *p {
            crc = table[((crc ^ byte as u32) & 0xFF) as usize] ^ (crc >> 8);
        }
    }
    crc ^ 0xFFFF_FFFF
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// Encode 8-bit pixels (colour type 0 grey or 2 RGB) as a PNG file.
pub fn encode_png(width: u32, height: u32, colour: u8, bpp: usize, px: &[u8]) -> Vec<u8> {
    let mut out = vec![137, 80, 78, 71, 13, 10, 26, 10];
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, colour, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let row = width as usize * bpp;
    let mut raw = Vec::with_capacity((row + 1) * height as usize);
    for r in 0..height as usize {
        // Filter type 0: rows stored as they are.
        raw.push(0);
        let start = (r * row).min(px.len());
        let end = (start + row).min(px.len());
        raw.extend_from_slice(&px[start..end]);
        raw.resize(raw.len() + row - (end - start), 0);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = z.write_all(&raw);
    let data = z.finish().unwrap_or_default();
    chunk(&mut out, b"IDAT", &data);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Render an array's elements (C order, `shape`) and write the PNG to `path`, creating
/// its directory. Errors are messages for the user.
pub fn write_preview(path: &Path, b: &Buf, shape: &[u64]) -> Result<(), String> {
    let (h, w) = image_shape(shape).map_err(|r| format!("{}; {}", r.message, r.help))?;
    let (colour, bpp, px) = render(b, h, w);
    let png = encode_png(w as u32, h as u32, colour, bpp, &px);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_png_spec_example() {
        // The CRC of an IEND chunk is fixed by the format.
        assert_eq!(crc32(&[b"IEND", &[]]), 0xAE42_6082);
    }

    #[test]
    fn shapes() {
        assert_eq!(image_shape(&[3, 4]), Ok((3, 4)));
        assert_eq!(image_shape(&[1, 3, 4]), Ok((3, 4)));
        assert_eq!(image_shape(&[1, 5]), Ok((1, 5)));
        assert_eq!(image_shape(&[5, 1]), Ok((5, 1)));
        assert!(image_shape(&[5]).unwrap_err().help.contains("none"));
        assert!(image_shape(&[2, 3, 4]).unwrap_err().message.contains("2-D"));
        let big = image_shape(&[8192, 10]).unwrap_err();
        assert!(big.too_large && big.help.contains("x[::2, ::2]"));
        assert!(image_shape(&[0, 10]).is_err());
    }

    #[test]
    fn auto_contrast_maps_percentiles_to_the_full_range() {
        let v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let (colour, bpp, px) = render(&Buf::F32(v), 10, 100);
        assert_eq!((colour, bpp), (0, 1));
        assert_eq!(px[0], 0);
        assert_eq!(px[999], 255);
        assert!((120..=136).contains(&px[500]));
        let (_, _, px) = render(&Buf::F64(vec![2.0; 4]), 2, 2);
        assert_eq!(px, vec![128; 4]);
        let (_, _, px) = render(&Buf::F64(vec![f64::NAN, 1.0, 2.0, f64::INFINITY]), 2, 2);
        assert_eq!((px[0], px[3]), (0, 255));
    }

    #[test]
    fn labels_get_colours_and_background_is_black() {
        let (colour, bpp, px) = render(&Buf::U16(vec![0, 3, 3, 7]), 2, 2);
        assert_eq!((colour, bpp), (2, 3));
        assert_eq!(&px[0..3], &[0, 0, 0]);
        assert_eq!(px[3..6], px[6..9]);
        assert_ne!(px[3..6], px[9..12]);
        // Many distinct integers: an ordinary greyscale image.
        let (colour, _, _) = render(&Buf::I32((0..100).collect()), 10, 10);
        assert_eq!(colour, 0);
        let (colour, _, _) = render(&Buf::Bool(vec![true, false]), 1, 2);
        assert_eq!(colour, 2);
    }

    #[test]
    fn png_structure() {
        let png = encode_png(3, 2, 0, 1, &[0, 1, 2, 3, 4, 5]);
        assert_eq!(&png[..8], &[137, 80, 78, 71, 13, 10, 26, 10]);
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes([png[16], png[17], png[18], png[19]]), 3);
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
        // The image data inflates back to filter bytes plus rows.
        let idat = png.windows(4).position(|w| w == b"IDAT").unwrap();
        let len = u32::from_be_bytes([png[idat - 4], png[idat - 3], png[idat - 2], png[idat - 1]]);
        let data = &png[idat + 4..idat + 4 + len as usize];
        let mut d = flate2::read::ZlibDecoder::new(data);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut raw).unwrap();
        assert_eq!(raw, vec![0, 0, 1, 2, 0, 3, 4, 5]);
    }
}
