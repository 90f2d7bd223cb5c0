//! Elementwise arithmetic with NumPy 2's exact semantics (integer wrapping, floor division
//! and remainder as `npy_divmod`, NaN-propagating maximum/minimum), applied to slices of
//! one dtype. Both operands of a binary op already have one dtype (the checker casts).

use crate::data::Buf;
use crate::dtype::DType;
use crate::ir::{BinaryOp, UnaryOp};
use num_complex::{Complex32, Complex64};

/// Per-element behaviour of one element type. Operations a dtype does not support are
/// rejected by the checker and never reach here; they return a neutral value.
pub trait Num: Copy + PartialEq + Send + Sync + 'static {
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    fn floordiv(self, o: Self) -> Self;
    fn rem(self, o: Self) -> Self;
    fn pow(self, o: Self) -> Self;
    fn maximum(self, o: Self) -> Self;
    fn minimum(self, o: Self) -> Self;
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn neg(self) -> Self;
    fn invert(self) -> Self;
    fn abs(self) -> Self;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn log(self) -> Self;
    fn lt(self, o: Self) -> bool;
    fn le(self, o: Self) -> bool;
}

macro_rules! int_num {
    ($($t:ty)*) => {$(
        impl Num for $t {
            #[inline] fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            #[inline] fn sub(self, o: Self) -> Self { self.wrapping_sub(o) }
            #[inline] fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            #[inline] fn div(self, o: Self) -> Self { self.floordiv(o) }
            #[inline]
            fn floordiv(self, o: Self) -> Self {
                // NumPy: division by zero gives 0; floor semantics for mixed signs.
                if o == 0 {
                    return 0;
                }
                let q = self.wrapping_div(o);
                #[allow(unused_comparisons)]
                if (self.wrapping_rem(o) != 0) && ((self < 0) != (o < 0)) {
                    q.wrapping_sub(1)
                } else {
                    q
                }
            }
            #[inline]
            fn rem(self, o: Self) -> Self {
                if o == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(o);
                #[allow(unused_comparisons)]
                if r != 0 && ((r < 0) != (o < 0)) {
                    r.wrapping_add(o)
                } else {
                    r
                }
            }
            #[inline]
            fn pow(self, o: Self) -> Self {
                #[allow(unused_comparisons)]
                if o < 0 {
                    // Negative integer powers raise in NumPy; constants are refused at
                    // check time, array exponents give 0.
                    return 0;
                }
                let mut base = self;
                let mut e = o as u64;
                let mut acc: Self = 1;
                while e > 0 {
                    if e & 1 == 1 {
                        acc = acc.wrapping_mul(base);
                    }
                    base = base.wrapping_mul(base);
                    e >>= 1;
                }
                acc
            }
            #[inline] fn maximum(self, o: Self) -> Self { if self >= o { self } else { o } }
            #[inline] fn minimum(self, o: Self) -> Self { if self <= o { self } else { o } }
            #[inline] fn and(self, o: Self) -> Self { self & o }
            #[inline] fn or(self, o: Self) -> Self { self | o }
            #[inline] fn xor(self, o: Self) -> Self { self ^ o }
            #[inline] fn neg(self) -> Self { (0 as $t).wrapping_sub(self) }
            #[inline] fn invert(self) -> Self { !self }
            #[inline]
            fn abs(self) -> Self {
                #[allow(unused_comparisons)]
                if self < 0 { (0 as $t).wrapping_sub(self) } else { self }
            }
            #[inline] fn sqrt(self) -> Self { self }
            #[inline] fn exp(self) -> Self { self }
            #[inline] fn log(self) -> Self { self }
            #[inline] fn lt(self, o: Self) -> bool { self < o }
            #[inline] fn le(self, o: Self) -> bool { self <= o }
        }
    )*};
}
int_num!(i8 i16 i32 i64 u8 u16 u32 u64);

macro_rules! float_num {
    ($($t:ty)*) => {$(
        impl Num for $t {
            #[inline] fn add(self, o: Self) -> Self { self + o }
            #[inline] fn sub(self, o: Self) -> Self { self - o }
            #[inline] fn mul(self, o: Self) -> Self { self * o }
            #[inline] fn div(self, o: Self) -> Self { self / o }
            #[inline]
            fn floordiv(self, o: Self) -> Self {
                if o == 0.0 {
                    return self / o;
                }
                divmod(self, o).0
            }
            #[inline]
            fn rem(self, o: Self) -> Self {
                if o == 0.0 {
                    return self % o;
                }
                divmod(self, o).1
            }
            #[inline] fn pow(self, o: Self) -> Self { self.powf(o) }
            #[inline]
            fn maximum(self, o: Self) -> Self {
                if self >= o || self.is_nan() { self } else { o }
            }
            #[inline]
            fn minimum(self, o: Self) -> Self {
                if self <= o || self.is_nan() { self } else { o }
            }
            #[inline] fn and(self, _o: Self) -> Self { self }
            #[inline] fn or(self, _o: Self) -> Self { self }
            #[inline] fn xor(self, _o: Self) -> Self { self }
            #[inline] fn neg(self) -> Self { -self }
            #[inline] fn invert(self) -> Self { self }
            #[inline] fn abs(self) -> Self { <$t>::abs(self) }
            #[inline] fn sqrt(self) -> Self { <$t>::sqrt(self) }
            #[inline] fn exp(self) -> Self { <$t>::exp(self) }
            #[inline] fn log(self) -> Self { <$t>::ln(self) }
            #[inline] fn lt(self, o: Self) -> bool { self < o }
            #[inline] fn le(self, o: Self) -> bool { self <= o }
        }
    )*};
}
float_num!(f32 f64);

/// NumPy's `npy_divmod` for floats: (floor quotient, remainder with the divisor's sign).
#[inline]
fn divmod<T: num_traits_float::Float>(a: T, b: T) -> (T, T) {
    let zero = T::zero();
    let mut m = a % b;
    let mut div = (a - m) / b;
    if m != zero {
        if (b < zero) != (m < zero) {
            m = m + b;
            div = div - T::one();
        }
    } else {
        m = zero.copysign(b);
    }
    let q = if div != zero {
        let mut f = div.floor();
        if div - f > T::half() {
            f = f + T::one();
        }
        f
    } else {
        zero.copysign(a / b)
    };
    (q, m)
}

/// The few float operations `divmod` needs, for f32 and f64.
mod num_traits_float {
    pub trait Float:
        Copy
        + PartialOrd
        + std::ops::Add<Output = Self>
        + std::ops::Sub<Output = Self>
        + std::ops::Div<Output = Self>
        + std::ops::Rem<Output = Self>
    {
        fn zero() -> Self;
        fn one() -> Self;
        fn half() -> Self;
        fn floor(self) -> Self;
        fn copysign(self, sign: Self) -> Self;
    }
    macro_rules! imp {
        ($($t:ty)*) => {$(
            impl Float for $t {
                fn zero() -> Self { 0.0 }
                fn one() -> Self { 1.0 }
                fn half() -> Self { 0.5 }
                fn floor(self) -> Self { <$t>::floor(self) }
                fn copysign(self, sign: Self) -> Self { <$t>::copysign(self, sign) }
            }
        )*};
    }
    imp!(f32 f64);
}

impl Num for bool {
    #[inline]
    fn add(self, o: Self) -> Self {
        self | o
    }
    #[inline]
    fn sub(self, o: Self) -> Self {
        self ^ o
    }
    #[inline]
    fn mul(self, o: Self) -> Self {
        self & o
    }
    #[inline]
    fn div(self, _o: Self) -> Self {
        self
    }
    #[inline]
    fn floordiv(self, _o: Self) -> Self {
        self
    }
    #[inline]
    fn rem(self, _o: Self) -> Self {
        self
    }
    #[inline]
    fn pow(self, o: Self) -> Self {
        self | !o
    }
    #[inline]
    fn maximum(self, o: Self) -> Self {
        self | o
    }
    #[inline]
    fn minimum(self, o: Self) -> Self {
        self & o
    }
    #[inline]
    fn and(self, o: Self) -> Self {
        self & o
    }
    #[inline]
    fn or(self, o: Self) -> Self {
        self | o
    }
    #[inline]
    fn xor(self, o: Self) -> Self {
        self ^ o
    }
    #[inline]
    fn neg(self) -> Self {
        self
    }
    #[inline]
    fn invert(self) -> Self {
        !self
    }
    #[inline]
    fn abs(self) -> Self {
        self
    }
    #[inline]
    fn sqrt(self) -> Self {
        self
    }
    #[inline]
    fn exp(self) -> Self {
        self
    }
    #[inline]
    fn log(self) -> Self {
        self
    }
    #[inline]
    fn lt(self, o: Self) -> bool {
        !self & o
    }
    #[inline]
    fn le(self, o: Self) -> bool {
        !self | o
    }
}

macro_rules! complex_num {
    ($($t:ty)*) => {$(
        impl Num for $t {
            #[inline] fn add(self, o: Self) -> Self { self + o }
            #[inline] fn sub(self, o: Self) -> Self { self - o }
            #[inline] fn mul(self, o: Self) -> Self { self * o }
            #[inline] fn div(self, o: Self) -> Self { self / o }
            #[inline] fn floordiv(self, _o: Self) -> Self { self }
            #[inline] fn rem(self, _o: Self) -> Self { self }
            #[inline] fn pow(self, o: Self) -> Self { self.powc(o) }
            #[inline]
            fn maximum(self, o: Self) -> Self {
                if self.re.is_nan() || self.im.is_nan() || !Num::lt(self, o) { self } else { o }
            }
            #[inline]
            fn minimum(self, o: Self) -> Self {
                if self.re.is_nan() || self.im.is_nan() || Num::le(self, o) { self } else { o }
            }
            #[inline] fn and(self, _o: Self) -> Self { self }
            #[inline] fn or(self, _o: Self) -> Self { self }
            #[inline] fn xor(self, _o: Self) -> Self { self }
            #[inline] fn neg(self) -> Self { -self }
            #[inline] fn invert(self) -> Self { self }
            #[inline] fn abs(self) -> Self { <$t>::new(self.norm(), 0.0) }
            #[inline] fn sqrt(self) -> Self { <$t>::sqrt(self) }
            #[inline] fn exp(self) -> Self { <$t>::exp(self) }
            #[inline] fn log(self) -> Self { <$t>::ln(self) }
            // NumPy orders complex numbers lexicographically (real, then imaginary).
            #[inline]
            fn lt(self, o: Self) -> bool {
                self.re < o.re || (self.re == o.re && self.im < o.im)
            }
            #[inline]
            fn le(self, o: Self) -> bool {
                self.re < o.re || (self.re == o.re && self.im <= o.im)
            }
        }
    )*};
}
complex_num!(Complex32 Complex64);

fn bin_same<T: Num>(op: BinaryOp, a: &[T], b: &[T], out: &mut [T]) {
    macro_rules! go {
        ($f:expr) => {
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                *o = $f(*x, *y);
            }
        };
    }
    match op {
        BinaryOp::Add => go!(Num::add),
        BinaryOp::Sub => go!(Num::sub),
        BinaryOp::Mul => go!(Num::mul),
        BinaryOp::Div => go!(Num::div),
        BinaryOp::FloorDiv => go!(Num::floordiv),
        BinaryOp::Mod => go!(Num::rem),
        BinaryOp::Pow => go!(Num::pow),
        BinaryOp::Max => go!(Num::maximum),
        BinaryOp::Min => go!(Num::minimum),
        BinaryOp::And => go!(Num::and),
        BinaryOp::Or => go!(Num::or),
        BinaryOp::Xor => go!(Num::xor),
        _ => {}
    }
}

fn bin_cmp<T: Num>(op: BinaryOp, a: &[T], b: &[T], out: &mut [bool]) {
    macro_rules! go {
        ($f:expr) => {
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                *o = $f(*x, *y);
            }
        };
    }
    match op {
        BinaryOp::Eq => go!(|x: T, y: T| x == y),
        BinaryOp::Ne => go!(|x: T, y: T| x != y),
        BinaryOp::Lt => go!(|x: T, y: T| x.lt(y)),
        BinaryOp::Le => go!(|x: T, y: T| x.le(y)),
        BinaryOp::Gt => go!(|x: T, y: T| y.lt(x)),
        BinaryOp::Ge => go!(|x: T, y: T| y.le(x)),
        _ => {}
    }
}

/// Apply a binary op to the first `n` elements. `a` and `b` share a dtype; `out` has the
/// result dtype (bool for comparisons).
pub fn binary(op: BinaryOp, a: &Buf, b: &Buf, out: &mut Buf, n: usize) {
    macro_rules! arms {
        ($($var:ident)*) => {
            if op.is_comparison() {
                let Buf::Bool(o) = out else {
                    unreachable!("comparison into a non-bool buffer")
                };
                match (a, b) {
                    $((Buf::$var(a), Buf::$var(b)) => bin_cmp(op, &a[..n], &b[..n], &mut o[..n]),)*
                    _ => unreachable!("comparison {:?} on mismatched buffers", op),
                }
            } else {
                match (a, b, out) {
                    $((Buf::$var(a), Buf::$var(b), Buf::$var(o)) => bin_same(op, &a[..n], &b[..n], &mut o[..n]),)*
                    _ => unreachable!("binary op {:?} on mismatched buffers", op),
                }
            }
        };
    }
    arms!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64 C64 C128)
}

fn un<T: Num>(op: UnaryOp, x: &[T], out: &mut [T]) {
    let f: fn(T) -> T = match op {
        UnaryOp::Neg => Num::neg,
        UnaryOp::Invert => Num::invert,
        UnaryOp::Abs => Num::abs,
        UnaryOp::Sqrt => Num::sqrt,
        UnaryOp::Exp => Num::exp,
        UnaryOp::Log => Num::log,
        UnaryOp::Real | UnaryOp::Imag | UnaryOp::Angle => |v| v,
    };
    for (o, v) in out.iter_mut().zip(x) {
        *o = f(*v);
    }
}

/// Apply a unary op to the first `n` elements. Same dtype in and out, except the complex
/// projections (`abs real imag angle` of complex give the real dtype).
pub fn unary(op: UnaryOp, x: &Buf, out: &mut Buf, n: usize) {
    match (x, out) {
        (Buf::C64(x), Buf::F32(o)) => {
            for (o, v) in o[..n].iter_mut().zip(&x[..n]) {
                *o = complex_part(op, v.re as f64, v.im as f64) as f32;
            }
        }
        (Buf::C128(x), Buf::F64(o)) => {
            for (o, v) in o[..n].iter_mut().zip(&x[..n]) {
                *o = complex_part(op, v.re, v.im);
            }
        }
        (Buf::F32(x), Buf::F32(o)) if matches!(op, UnaryOp::Imag | UnaryOp::Angle) => {
            for (o, v) in o[..n].iter_mut().zip(&x[..n]) {
                *o = real_part_op(op, *v as f64) as f32;
            }
        }
        (Buf::F64(x), Buf::F64(o)) if matches!(op, UnaryOp::Imag | UnaryOp::Angle) => {
            for (o, v) in o[..n].iter_mut().zip(&x[..n]) {
                *o = real_part_op(op, *v);
            }
        }
        (x, out) => {
            macro_rules! arms {
                ($($var:ident)*) => {
                    match (x, out) {
                        $((Buf::$var(x), Buf::$var(o)) => un(op, &x[..n], &mut o[..n]),)*
                        _ => unreachable!("unary op {:?} on mismatched buffers", op),
                    }
                };
            }
            arms!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64 C64 C128)
        }
    }
}

fn complex_part(op: UnaryOp, re: f64, im: f64) -> f64 {
    match op {
        UnaryOp::Abs => re.hypot(im),
        UnaryOp::Real => re,
        UnaryOp::Imag => im,
        _ => im.atan2(re),
    }
}

fn real_part_op(op: UnaryOp, v: f64) -> f64 {
    match op {
        UnaryOp::Imag => 0.0,
        _ => 0.0f64.atan2(v),
    }
}

/// `where(cond, a, b)` on the first `n` elements (a, b and out share a dtype).
pub fn select(cond: &Buf, a: &Buf, b: &Buf, out: &mut Buf, n: usize) {
    let Buf::Bool(c) = cond else {
        unreachable!("where condition is not bool")
    };
    macro_rules! arms {
        ($($var:ident)*) => {
            match (a, b, out) {
                $((Buf::$var(a), Buf::$var(b), Buf::$var(o)) => {
                    for i in 0..n {
                        o[i] = if c[i] { a[i] } else { b[i] };
                    }
                })*
                _ => unreachable!("where on mismatched buffers"),
            }
        };
    }
    arms!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64 C64 C128)
}

/// A value convertible to every element type with NumPy's `astype` (unsafe casting) rules
/// inside the representable range; out-of-range float→int follows Rust's saturating `as`.
pub trait CastFrom: Copy {
    fn to_f64(self) -> f64;
    fn to_i64(self) -> i64;
    fn to_u64(self) -> u64;
    fn is_integer() -> bool;
    fn is_nonzero(self) -> bool;
    fn im(self) -> f64 {
        0.0
    }
}

macro_rules! cast_from_int {
    ($($t:ty)*) => {$(
        impl CastFrom for $t {
            #[inline] fn to_f64(self) -> f64 { self as f64 }
            #[inline] fn to_i64(self) -> i64 { self as i64 }
            #[inline] fn to_u64(self) -> u64 { self as u64 }
            #[inline] fn is_integer() -> bool { true }
            #[inline] fn is_nonzero(self) -> bool { self != 0 }
        }
    )*};
}
cast_from_int!(i8 i16 i32 i64 u8 u16 u32 u64);

impl CastFrom for bool {
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn to_u64(self) -> u64 {
        self as u64
    }
    fn is_integer() -> bool {
        true
    }
    fn is_nonzero(self) -> bool {
        self
    }
}

impl CastFrom for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn to_u64(self) -> u64 {
        self as u64
    }
    fn is_integer() -> bool {
        false
    }
    fn is_nonzero(self) -> bool {
        self != 0.0
    }
}

impl CastFrom for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn to_u64(self) -> u64 {
        self as u64
    }
    fn is_integer() -> bool {
        false
    }
    fn is_nonzero(self) -> bool {
        self != 0.0
    }
}

impl CastFrom for Complex32 {
    fn to_f64(self) -> f64 {
        self.re as f64
    }
    fn to_i64(self) -> i64 {
        self.re as i64
    }
    fn to_u64(self) -> u64 {
        self.re as u64
    }
    fn is_integer() -> bool {
        false
    }
    fn is_nonzero(self) -> bool {
        self.re != 0.0 || self.im != 0.0
    }
    fn im(self) -> f64 {
        self.im as f64
    }
}

impl CastFrom for Complex64 {
    fn to_f64(self) -> f64 {
        self.re
    }
    fn to_i64(self) -> i64 {
        self.re as i64
    }
    fn to_u64(self) -> u64 {
        self.re as u64
    }
    fn is_integer() -> bool {
        false
    }
    fn is_nonzero(self) -> bool {
        self.re != 0.0 || self.im != 0.0
    }
    fn im(self) -> f64 {
        self.im
    }
}

#[inline]
fn cast_slice<S: CastFrom>(x: &[S], out: &mut Buf, n: usize) {
    // Integer sources go through i64/u64 so wide values convert exactly (and wrap like C
    // when narrowing); float sources convert directly.
    macro_rules! int_target {
        ($o:expr, $t:ty) => {
            if S::is_integer() {
                for (o, v) in $o[..n].iter_mut().zip(x) {
                    *o = v.to_i64() as $t;
                }
            } else {
                for (o, v) in $o[..n].iter_mut().zip(x) {
                    *o = v.to_f64() as $t;
                }
            }
        };
    }
    match out {
        Buf::Bool(o) => o[..n]
            .iter_mut()
            .zip(x)
            .for_each(|(o, v)| *o = v.is_nonzero()),
        Buf::I8(o) => int_target!(o, i8),
        Buf::I16(o) => int_target!(o, i16),
        Buf::I32(o) => int_target!(o, i32),
        Buf::I64(o) => int_target!(o, i64),
        Buf::U8(o) => int_target!(o, u8),
        Buf::U16(o) => int_target!(o, u16),
        Buf::U32(o) => int_target!(o, u32),
        Buf::U64(o) => {
            if S::is_integer() {
                o[..n].iter_mut().zip(x).for_each(|(o, v)| *o = v.to_u64());
            } else {
                o[..n]
                    .iter_mut()
                    .zip(x)
                    .for_each(|(o, v)| *o = v.to_f64() as u64);
            }
        }
        Buf::F32(o) => {
            if S::is_integer() {
                // i64/u64 → f32 must round once, not via f64.
                o[..n].iter_mut().zip(x).for_each(|(o, v)| {
                    *o = if v.to_i64() < 0 {
                        v.to_i64() as f32
                    } else {
                        v.to_u64() as f32
                    }
                });
            } else {
                o[..n]
                    .iter_mut()
                    .zip(x)
                    .for_each(|(o, v)| *o = v.to_f64() as f32);
            }
        }
        Buf::F64(o) => {
            if S::is_integer() {
                o[..n].iter_mut().zip(x).for_each(|(o, v)| {
                    *o = if v.to_i64() < 0 {
                        v.to_i64() as f64
                    } else {
                        v.to_u64() as f64
                    }
                });
            } else {
                o[..n].iter_mut().zip(x).for_each(|(o, v)| *o = v.to_f64());
            }
        }
        Buf::C64(o) => o[..n].iter_mut().zip(x).for_each(|(o, v)| {
            let re = if S::is_integer() && v.to_i64() >= 0 {
                v.to_u64() as f32
            } else if S::is_integer() {
                v.to_i64() as f32
            } else {
                v.to_f64() as f32
            };
            *o = Complex32::new(re, v.im() as f32)
        }),
        Buf::C128(o) => o[..n].iter_mut().zip(x).for_each(|(o, v)| {
            let re = if S::is_integer() && v.to_i64() >= 0 {
                v.to_u64() as f64
            } else if S::is_integer() {
                v.to_i64() as f64
            } else {
                v.to_f64()
            };
            *o = Complex64::new(re, v.im())
        }),
    }
}

/// Convert the first `n` elements of `x` into `out`'s dtype.
pub fn cast(x: &Buf, out: &mut Buf, n: usize) {
    if x.dtype() == DType::U64 {
        // u64 → signed / float must not pass through i64.
        if let Buf::U64(v) = x {
            match out {
                Buf::F32(o) => {
                    o[..n].iter_mut().zip(v).for_each(|(o, v)| *o = *v as f32);
                    return;
                }
                Buf::F64(o) => {
                    o[..n].iter_mut().zip(v).for_each(|(o, v)| *o = *v as f64);
                    return;
                }
                _ => {}
            }
        }
    }
    crate::with_buf!(x, v => cast_slice(&v[..n], out, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_floor_division_matches_numpy() {
        assert_eq!(Num::floordiv(-7i32, 2), -4);
        assert_eq!(Num::rem(-7i32, 2), 1);
        assert_eq!(Num::rem(7i32, -2), -1);
        assert_eq!(Num::floordiv(5u8, 0), 0);
        assert_eq!(Num::rem(5u8, 0), 0);
        assert_eq!(Num::floordiv(i8::MIN, -1), i8::MIN);
    }

    #[test]
    fn float_divmod_matches_numpy() {
        assert_eq!(Num::floordiv(-7.0f64, 2.0), -4.0);
        assert_eq!(Num::rem(-7.0f64, 2.0), 1.0);
        assert_eq!(Num::rem(7.5f64, -2.0), -0.5);
        assert!(Num::rem(1.0f64, 0.0).is_nan());
        assert_eq!(Num::floordiv(1.0f64, 0.0), f64::INFINITY);
        assert!(Num::rem(-0.0f64, 1.0).is_sign_positive());
    }

    #[test]
    fn maximum_propagates_nan() {
        assert!(Num::maximum(f32::NAN, 1.0).is_nan());
        assert!(Num::maximum(1.0f32, f32::NAN).is_nan());
        assert!(Num::minimum(1.0f64, f64::NAN).is_nan());
    }

    #[test]
    fn casts_wrap_like_numpy() {
        let mut out = Buf::zeros(DType::U8, 3);
        cast(&Buf::I32(vec![-1, 256, 300]), &mut out, 3);
        assert_eq!(out, Buf::U8(vec![255, 0, 44]));
        let mut out = Buf::zeros(DType::I16, 2);
        cast(&Buf::F64(vec![-2.7, 3.9]), &mut out, 2);
        assert_eq!(out, Buf::I16(vec![-2, 3]));
    }
}
