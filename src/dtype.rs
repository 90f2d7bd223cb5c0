//! Element types and NumPy 2 type promotion (NEP 50: Python scalars are "weak").

use std::fmt;

#[derive(
    serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum DType {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    C64,
    C128,
}

/// What kind of number a dtype holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Bool,
    Unsigned,
    Signed,
    Float,
    Complex,
}

/// A Python-style scalar literal's category, for NEP 50 weak promotion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeakKind {
    Bool,
    Int,
    Float,
}

pub const ALL: [DType; 13] = [
    DType::Bool,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
    DType::F32,
    DType::F64,
    DType::C64,
    DType::C128,
];

impl DType {
    /// Short name used in the language (`u16`, `f32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::C64 => "c64",
            DType::C128 => "c128",
        }
    }

    /// NumPy / Zarr v3 name (`uint16`, `float32`, ...).
    pub fn numpy_name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::C64 => "complex64",
            DType::C128 => "complex128",
        }
    }

    /// Accepts both the short and the NumPy spelling.
    pub fn parse(s: &str) -> Option<DType> {
        ALL.iter()
            .copied()
            .find(|d| d.name() == s || d.numpy_name() == s)
    }

    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 | DType::C64 => 8,
            DType::C128 => 16,
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            DType::Bool => Kind::Bool,
            DType::I8 | DType::I16 | DType::I32 | DType::I64 => Kind::Signed,
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => Kind::Unsigned,
            DType::F32 | DType::F64 => Kind::Float,
            DType::C64 | DType::C128 => Kind::Complex,
        }
    }

    pub fn is_integer(self) -> bool {
        matches!(self.kind(), Kind::Signed | Kind::Unsigned)
    }

    pub fn is_float(self) -> bool {
        self.kind() == Kind::Float
    }

    pub fn is_complex(self) -> bool {
        self.kind() == Kind::Complex
    }

    /// Bits of the integer / float part.
    fn bits(self) -> u32 {
        (self.size() * 8) as u32
    }

    /// Can every value of `self` be represented in `to` (NumPy "safe" casting)?
    pub fn can_cast_safely(self, to: DType) -> bool {
        use Kind::*;
        if self == to {
            return true;
        }
        match (self.kind(), to.kind()) {
            (Bool, _) => true,
            (_, Bool) => false,
            (Unsigned, Unsigned) | (Signed, Signed) => self.bits() <= to.bits(),
            (Unsigned, Signed) => self.bits() < to.bits(),
            (Signed, Unsigned) => false,
            (Unsigned | Signed, Float) => match to {
                DType::F32 => self.bits() <= 16,
                _ => true,
            },
            (Unsigned | Signed, Complex) => match to {
                DType::C64 => self.bits() <= 16,
                _ => true,
            },
            (Float, Float) => self.bits() <= to.bits(),
            (Float, Complex) => self.bits() * 2 <= to.bits(),
            (Complex, Complex) => self.bits() <= to.bits(),
            (Float | Complex, Signed | Unsigned) | (Complex, Float) => false,
        }
    }

    /// The complex dtype with this float's precision (f32 -> c64).
    pub fn to_complex(self) -> DType {
        match self {
            DType::F32 | DType::C64 => DType::C64,
            _ => DType::C128,
        }
    }

    /// The real dtype of a complex one (c64 -> f32); others unchanged.
    pub fn real_part(self) -> DType {
        match self {
            DType::C64 => DType::F32,
            DType::C128 => DType::F64,
            d => d,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `np.result_type(a, b)` for two arrays: the smallest dtype both cast to safely.
pub fn promote(a: DType, b: DType) -> DType {
    if a == b {
        return a;
    }
    if a.can_cast_safely(b) {
        return b;
    }
    if b.can_cast_safely(a) {
        return a;
    }
    // No direct order: search NumPy's candidate order for the first common target.
    const ORDER: [DType; 12] = [
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::F32,
        DType::F64,
        DType::C64,
        DType::C128,
    ];
    // Signed before unsigned at equal size is what NumPy picks (u8 + i8 -> i16); with no
    // integer home (u64 + i64) the float types remain, and NumPy gives f64.
    ORDER
        .iter()
        .copied()
        .filter(|t| a.can_cast_safely(*t) && b.can_cast_safely(*t))
        .min_by_key(|t| (t.size(), t.kind() == Kind::Unsigned))
        .unwrap_or(DType::F64)
}

/// NEP 50: an array of dtype `a` combined with a weak Python scalar of kind `w`.
pub fn promote_weak(a: DType, w: WeakKind) -> DType {
    match (a.kind(), w) {
        (_, WeakKind::Bool) => a,
        (Kind::Bool, WeakKind::Int) => DType::I64,
        (Kind::Bool, WeakKind::Float) => DType::F64,
        (Kind::Signed | Kind::Unsigned, WeakKind::Int) => a,
        (Kind::Signed | Kind::Unsigned, WeakKind::Float) => DType::F64,
        (Kind::Float | Kind::Complex, _) => a,
    }
}

/// The dtype a weak scalar has on its own (`1` is i64, `1.5` is f64).
pub fn weak_default(w: WeakKind) -> DType {
    match w {
        WeakKind::Bool => DType::Bool,
        WeakKind::Int => DType::I64,
        WeakKind::Float => DType::F64,
    }
}

/// The result dtype of true division `/` (integers and bool give f64).
pub fn true_divide(d: DType) -> DType {
    match d.kind() {
        Kind::Bool | Kind::Signed | Kind::Unsigned => DType::F64,
        _ => d,
    }
}

/// The dtype `sqrt`, `exp`, `log` compute in for an input dtype (NumPy's float loops:
/// small integers go to f32... no: NumPy picks the smallest float that holds the input safely).
pub fn float_result(d: DType) -> DType {
    match d {
        DType::Bool | DType::I8 | DType::U8 | DType::I16 | DType::U16 => {
            // NumPy uses float16 for 8-bit ints and float32 for 16-bit ints; Tessera has no
            // f16, so 8-bit ints also compute in f32 (documented difference).
            DType::F32
        }
        DType::I32 | DType::U32 | DType::I64 | DType::U64 => DType::F64,
        d => d,
    }
}

#[cfg(test)]
mod tests {
    use super::DType::*;
    use super::*;

    #[test]
    fn numpy_promotion_table() {
        // Values from numpy 2: np.result_type(a, b).
        let cases = [
            (U8, I8, I16),
            (U16, I16, I32),
            (U32, I32, I64),
            (U64, I64, F64),
            (U64, I8, F64),
            (U8, U16, U16),
            (I16, F32, F32),
            (U16, F32, F32),
            (I32, F32, F64),
            (U32, F32, F64),
            (I64, F32, F64),
            (F32, F64, F64),
            (C64, F64, C128),
            (C64, I16, C64),
            (C64, I32, C128),
            (Bool, U8, U8),
            (Bool, F32, F32),
            (I8, U32, I64),
        ];
        for (a, b, r) in cases {
            assert_eq!(promote(a, b), r, "{a} + {b}");
            assert_eq!(promote(b, a), r, "{b} + {a}");
        }
    }

    #[test]
    fn weak_scalars() {
        assert_eq!(promote_weak(U16, WeakKind::Int), U16);
        assert_eq!(promote_weak(U16, WeakKind::Float), F64);
        assert_eq!(promote_weak(F32, WeakKind::Float), F32);
        assert_eq!(promote_weak(Bool, WeakKind::Int), I64);
    }
}
