//! NumPy-style printing of computed elements for the REPL. Up to `THRESHOLD` elements
//! print in full (`tessera::format_values`); larger results print NumPy's summary, the
//! first and last `EDGE` items of every axis with `...` between, so `x.values()` of a
//! large slice does not flood the terminal.

use crate::data::Buf;

/// NumPy's default `threshold`: more elements than this are summarised.
pub(crate) const THRESHOLD: usize = 1000;
/// NumPy's default `edgeitems`.
const EDGE: u64 = 3;

/// The kept indices of one axis, with `None` where the `...` goes.
fn kept(n: u64) -> Vec<Option<u64>> {
    if n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    }
}

/// Text of `b` (C order, `shape`) as NumPy prints it.
pub(crate) fn format(b: &Buf, shape: &[u64]) -> String {
    let total: u64 = shape.iter().product();
    if total as usize <= THRESHOLD || shape.is_empty() || b.len() as u64 != total {
        return crate::format_values(b, shape);
    }
    // Gather the edge elements into a small buffer, in C order of the kept indices.
    let axes: Vec<Vec<u64>> = shape
        .iter()
        .map(|n| kept(*n).into_iter().flatten().collect())
        .collect();
    let small_shape: Vec<u64> = axes.iter().map(|a| a.len() as u64).collect();
    let count: usize = small_shape.iter().product::<u64>() as usize;
    let strides = crate::geom::strides(shape);
    let mut small = Buf::zeros(b.dtype(), count);
    let mut idx = vec![0usize; shape.len()];
    for k in 0..count {
        let src: usize = idx
            .iter()
            .enumerate()
            .map(|(d, i)| axes[d][*i] as usize * strides[d])
            .sum();
        small.copy_range(k, b, src, 1);
        // Odometer step over the kept indices.
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < axes[d].len() {
                break;
            }
            idx[d] = 0;
        }
    }
    // Format the cells together so they share one width (and float layout), then cut
    // the one-line text back into cells.
    let line = crate::format_values(&small, &[count as u64]);
    let inner = line
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .unwrap_or("");
    let chars: Vec<char> = inner.chars().collect();
    let w = (chars.len() + 1) / count.max(1);
    if w == 0 || chars.len() + 1 != w * count {
        // Not the layout expected: print everything rather than something wrong.
        return crate::format_values(b, shape);
    }
    let cells: Vec<String> = (0..count)
        .map(|k| chars[k * w..k * w + w - 1].iter().collect())
        .collect();
    let mut out = String::new();
    let mut next = 0;
    nest(&cells, shape, 0, &mut next, &mut out);
    out
}

/// Write axis `depth` onwards; `next` walks the cells in order.
fn nest(cells: &[String], shape: &[u64], depth: usize, next: &mut usize, out: &mut String) {
    out.push('[');
    let items = kept(shape[depth]);
    if depth + 1 == shape.len() {
        let row: Vec<String> = items
            .iter()
            .map(|i| match i {
                Some(_) => {
                    let c = cells.get(*next).cloned().unwrap_or_default();
                    *next += 1;
                    c
                }
                None => "...".to_string(),
            })
            .collect();
        out.push_str(&row.join(" "));
    } else {
        let blank = "\n".repeat(shape.len() - depth - 1);
        for (k, i) in items.iter().enumerate() {
            if k > 0 {
                // As NumPy: rows of a matrix on new lines, matrices of a 3-D array
                // separated by blank lines.
                out.push_str(&blank);
                out.push_str(&" ".repeat(depth + 1));
            }
            match i {
                Some(_) => nest(cells, shape, depth + 1, next, out),
                None => out.push_str("..."),
            }
        }
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_arrays_print_in_full() {
        let b = Buf::I64((0..6).collect());
        assert_eq!(format(&b, &[2, 3]), "[[0 1 2]\n [3 4 5]]");
    }

    #[test]
    fn large_arrays_are_summarised_like_numpy() {
        let b = Buf::I64((0..10000).collect());
        assert_eq!(
            format(&b, &[100, 100]),
            "[[   0    1    2 ...   97   98   99]\n \
             [ 100  101  102 ...  197  198  199]\n \
             [ 200  201  202 ...  297  298  299]\n \
             ...\n \
             [9700 9701 9702 ... 9797 9798 9799]\n \
             [9800 9801 9802 ... 9897 9898 9899]\n \
             [9900 9901 9902 ... 9997 9998 9999]]"
        );
        let b = Buf::F64((0..2000).map(|i| i as f64 / 2.0).collect());
        // NumPy prints `[  0.    0.5   1.  ... 998.5 999.  999.5]` too.
        assert_eq!(
            format(&b, &[2000]),
            "[  0.    0.5   1.  ... 998.5 999.  999.5]"
        );
    }

    #[test]
    fn summarised_3d_blocks_are_separated_by_blank_lines() {
        let b = Buf::U8((0..2 * 2 * 1001).map(|i| (i % 7) as u8).collect());
        let t = format(&b, &[2, 2, 1001]);
        assert!(t.starts_with("[[[0 1 2 ... "), "{t}");
        assert!(t.contains("]]\n\n [["), "{t}");
    }
}
