//! Discrete Fourier transforms along one axis (rustfft), NumPy's conventions: `fft`
//! unscaled, `ifft` scaled by 1/n, `rfft` keeping n//2 + 1 outputs. Single-precision
//! input computes in single precision (NumPy 2's pocketfft does the same), everything
//! else in double. Plans are cached per thread and length.

use crate::data::Buf;
use crate::geom::{strides, Region};
use crate::ir::FftKind;
use num_complex::Complex;
use rustfft::{FftNum, FftPlanner};
use std::cell::RefCell;

thread_local! {
    static PLAN32: RefCell<FftPlanner<f32>> = RefCell::new(FftPlanner::new());
    static PLAN64: RefCell<FftPlanner<f64>> = RefCell::new(FftPlanner::new());
}

/// Transform `src` (the input over `in_region`: the whole axis, and the output region on
/// every other axis) and keep the outputs `out_region` asks for along `axis`.
/// `src` is already complex (c64 or c128).
pub fn transform(
    src: Buf,
    in_shape: &[u64],
    axis: usize,
    kind: FftKind,
    out_region: &Region,
) -> Buf {
    match src {
        Buf::C64(v) => Buf::C64(
            PLAN32.with(|p| lanes(&mut p.borrow_mut(), v, in_shape, axis, kind, out_region)),
        ),
        Buf::C128(v) => Buf::C128(
            PLAN64.with(|p| lanes(&mut p.borrow_mut(), v, in_shape, axis, kind, out_region)),
        ),
        other => unreachable!("transform of {:?} input", other.dtype()),
    }
}

fn lanes<T: FftNum>(
    planner: &mut FftPlanner<T>,
    v: Vec<Complex<T>>,
    in_shape: &[u64],
    axis: usize,
    kind: FftKind,
    out_region: &Region,
) -> Vec<Complex<T>> {
    let n = in_shape[axis] as usize;
    let fft = match kind {
        FftKind::Inverse => planner.plan_fft_inverse(n),
        _ => planner.plan_fft_forward(n),
    };
    let (k0, k1) = (
        out_region.start[axis] as usize,
        out_region.end[axis] as usize,
    );
    let keep = k1 - k0;
    let st = strides(in_shape);
    let step = st[axis];
    let outer: usize = in_shape[..axis].iter().product::<u64>() as usize;
    let inner = step;
    let mut out_shape: Vec<u64> = in_shape.to_vec();
    out_shape[axis] = keep as u64;
    let ost = strides(&out_shape);
    let mut out = vec![Complex::new(T::zero(), T::zero()); outer * keep * inner];
    let mut line = vec![Complex::new(T::zero(), T::zero()); n];
    let mut scratch = vec![Complex::new(T::zero(), T::zero()); fft.get_inplace_scratch_len()];
    let scale = T::from_f64(1.0 / n as f64).expect("a float");
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * step + i;
            for (k, x) in line.iter_mut().enumerate() {
                *x = v[base + k * step];
            }
            if n > 0 {
                fft.process_with_scratch(&mut line, &mut scratch);
            }
            let obase = o * keep * ost[axis] + i;
            for k in 0..keep {
                let mut y = line[k0 + k];
                if kind == FftKind::Inverse {
                    y = Complex::new(y.re * scale, y.im * scale);
                }
                out[obase + k * ost[axis]] = y;
            }
        }
    }
    out
}
