//! NumPy-style printing of computed elements for the REPL (`tessera::format_array`, the
//! same text scripts' `print` gives): up to 1000 elements print in full, larger results
//! print NumPy's summary.

pub(crate) use crate::driver::format_array as format;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Buf;

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
        // NumPy's text (values over three decades print in scientific notation).
        assert_eq!(
            format(&b, &[2000]),
            "[0.000e+00 5.000e-01 1.000e+00 ... 9.985e+02 9.990e+02 9.995e+02]"
        );
        let b = Buf::F64((0..1200).map(|i| (i % 50) as f64 / 4.0).collect());
        assert_eq!(
            format(&b, &[1200]),
            "[ 0.    0.25  0.5  ... 11.75 12.   12.25]"
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
