//! Dense, typed element buffers in C order: the unit of data that `io` reads and writes
//! and `exec` computes on.

use crate::dtype::DType;
use num_complex::{Complex32, Complex64};

/// A dense C-order buffer of one dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum Buf {
    Bool(Vec<bool>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    C64(Vec<Complex32>),
    C128(Vec<Complex64>),
}

/// Run `$body` with `$v` bound to the inner `Vec` of a `Buf`, whatever its dtype.
#[macro_export]
macro_rules! with_buf {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            $crate::data::Buf::Bool($v) => $body,
            $crate::data::Buf::I8($v) => $body,
            $crate::data::Buf::I16($v) => $body,
            $crate::data::Buf::I32($v) => $body,
            $crate::data::Buf::I64($v) => $body,
            $crate::data::Buf::U8($v) => $body,
            $crate::data::Buf::U16($v) => $body,
            $crate::data::Buf::U32($v) => $body,
            $crate::data::Buf::U64($v) => $body,
            $crate::data::Buf::F32($v) => $body,
            $crate::data::Buf::F64($v) => $body,
            $crate::data::Buf::C64($v) => $body,
            $crate::data::Buf::C128($v) => $body,
        }
    };
}

impl Buf {
    /// A zero-filled buffer of `len` elements.
    pub fn zeros(dtype: DType, len: usize) -> Buf {
        match dtype {
            DType::Bool => Buf::Bool(vec![false; len]),
            DType::I8 => Buf::I8(vec![0; len]),
            DType::I16 => Buf::I16(vec![0; len]),
            DType::I32 => Buf::I32(vec![0; len]),
            DType::I64 => Buf::I64(vec![0; len]),
            DType::U8 => Buf::U8(vec![0; len]),
            DType::U16 => Buf::U16(vec![0; len]),
            DType::U32 => Buf::U32(vec![0; len]),
            DType::U64 => Buf::U64(vec![0; len]),
            DType::F32 => Buf::F32(vec![0.0; len]),
            DType::F64 => Buf::F64(vec![0.0; len]),
            DType::C64 => Buf::C64(vec![Complex32::new(0.0, 0.0); len]),
            DType::C128 => Buf::C128(vec![Complex64::new(0.0, 0.0); len]),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Buf::Bool(_) => DType::Bool,
            Buf::I8(_) => DType::I8,
            Buf::I16(_) => DType::I16,
            Buf::I32(_) => DType::I32,
            Buf::I64(_) => DType::I64,
            Buf::U8(_) => DType::U8,
            Buf::U16(_) => DType::U16,
            Buf::U32(_) => DType::U32,
            Buf::U64(_) => DType::U64,
            Buf::F32(_) => DType::F32,
            Buf::F64(_) => DType::F64,
            Buf::C64(_) => DType::C64,
            Buf::C128(_) => DType::C128,
        }
    }

    pub fn len(&self) -> usize {
        with_buf!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held.
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// C-order little-endian bytes (what checksums hash).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.nbytes());
        match self {
            Buf::Bool(v) => out.extend(v.iter().map(|b| *b as u8)),
            Buf::I8(v) => out.extend(v.iter().map(|x| *x as u8)),
            Buf::U8(v) => out.extend_from_slice(v),
            Buf::I16(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Buf::I32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Buf::I64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Buf::U16(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Buf::U32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Buf::U64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Buf::F32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Buf::F64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Buf::C64(v) => v.iter().for_each(|x| {
                out.extend_from_slice(&x.re.to_le_bytes());
                out.extend_from_slice(&x.im.to_le_bytes());
            }),
            Buf::C128(v) => v.iter().for_each(|x| {
                out.extend_from_slice(&x.re.to_le_bytes());
                out.extend_from_slice(&x.im.to_le_bytes());
            }),
        }
        out
    }

    /// Element `i` widened to f64 (complex: the real part), for checksums and printing.
    pub fn get_f64(&self, i: usize) -> f64 {
        match self {
            Buf::Bool(v) => v[i] as u8 as f64,
            Buf::I8(v) => v[i] as f64,
            Buf::I16(v) => v[i] as f64,
            Buf::I32(v) => v[i] as f64,
            Buf::I64(v) => v[i] as f64,
            Buf::U8(v) => v[i] as f64,
            Buf::U16(v) => v[i] as f64,
            Buf::U32(v) => v[i] as f64,
            Buf::U64(v) => v[i] as f64,
            Buf::F32(v) => v[i] as f64,
            Buf::F64(v) => v[i],
            Buf::C64(v) => v[i].re as f64,
            Buf::C128(v) => v[i].re,
        }
    }
}

impl Buf {
    /// An empty buffer with room for `cap` elements, filled by appending (`extend_from`):
    /// nothing is zeroed only to be overwritten.
    pub fn with_capacity(dtype: DType, cap: usize) -> Buf {
        match dtype {
            DType::Bool => Buf::Bool(Vec::with_capacity(cap)),
            DType::I8 => Buf::I8(Vec::with_capacity(cap)),
            DType::I16 => Buf::I16(Vec::with_capacity(cap)),
            DType::I32 => Buf::I32(Vec::with_capacity(cap)),
            DType::I64 => Buf::I64(Vec::with_capacity(cap)),
            DType::U8 => Buf::U8(Vec::with_capacity(cap)),
            DType::U16 => Buf::U16(Vec::with_capacity(cap)),
            DType::U32 => Buf::U32(Vec::with_capacity(cap)),
            DType::U64 => Buf::U64(Vec::with_capacity(cap)),
            DType::F32 => Buf::F32(Vec::with_capacity(cap)),
            DType::F64 => Buf::F64(Vec::with_capacity(cap)),
            DType::C64 => Buf::C64(Vec::with_capacity(cap)),
            DType::C128 => Buf::C128(Vec::with_capacity(cap)),
        }
    }

    /// Append `len` elements from `src[src_off..]` (same dtype).
    pub fn extend_from(&mut self, src: &Buf, src_off: usize, len: usize) {
        macro_rules! arms {
            ($($v:ident)*) => {
                match (self, src) {
                    $((Buf::$v(d), Buf::$v(s)) => d.extend_from_slice(&s[src_off..src_off + len]),)*
                    _ => unreachable!("copy between buffers of different dtypes"),
                }
            };
        }
        arms!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64 C64 C128)
    }

    /// Copy `len` elements from `src[src_off..]` into `self[dst_off..]` (same dtype).
    pub fn copy_range(&mut self, dst_off: usize, src: &Buf, src_off: usize, len: usize) {
        macro_rules! arms {
            ($($v:ident)*) => {
                match (self, src) {
                    $((Buf::$v(d), Buf::$v(s)) => {
                        d[dst_off..dst_off + len].copy_from_slice(&s[src_off..src_off + len])
                    })*
                    _ => unreachable!("copy between buffers of different dtypes"),
                }
            };
        }
        arms!(Bool I8 I16 I32 I64 U8 U16 U32 U64 F32 F64 C64 C128)
    }
}

impl Buf {
    /// The inverse of `to_le_bytes`: `None` when the byte count is not a whole number of
    /// elements (or a bool byte is neither 0 nor 1).
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Option<Buf> {
        let size = dtype.size();
        if !bytes.len().is_multiple_of(size) {
            return None;
        }
        macro_rules! words {
            ($t:ty) => {
                bytes
                    .chunks_exact(size)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("element size")))
                    .collect()
            };
        }
        macro_rules! pairs {
            ($t:ty, $c:ident) => {
                bytes
                    .chunks_exact(size)
                    .map(|c| {
                        let h = size / 2;
                        $c::new(
                            <$t>::from_le_bytes(c[..h].try_into().expect("element size")),
                            <$t>::from_le_bytes(c[h..].try_into().expect("element size")),
                        )
                    })
                    .collect()
            };
        }
        Some(match dtype {
            DType::Bool => {
                if bytes.iter().any(|b| *b > 1) {
                    return None;
                }
                Buf::Bool(bytes.iter().map(|b| *b == 1).collect())
            }
            DType::I8 => Buf::I8(bytes.iter().map(|b| *b as i8).collect()),
            DType::U8 => Buf::U8(bytes.to_vec()),
            DType::I16 => Buf::I16(words!(i16)),
            DType::I32 => Buf::I32(words!(i32)),
            DType::I64 => Buf::I64(words!(i64)),
            DType::U16 => Buf::U16(words!(u16)),
            DType::U32 => Buf::U32(words!(u32)),
            DType::U64 => Buf::U64(words!(u64)),
            DType::F32 => Buf::F32(words!(f32)),
            DType::F64 => Buf::F64(words!(f64)),
            DType::C64 => Buf::C64(pairs!(f32, Complex32)),
            DType::C128 => Buf::C128(pairs!(f64, Complex64)),
        })
    }
}

/// A buffer is stored as its dtype and its little-endian bytes (bit for bit, NaNs too).
impl serde::Serialize for Buf {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        struct Bytes<'a>(&'a [u8]);
        impl serde::Serialize for Bytes<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(self.dtype().name())?;
        t.serialize_element(&Bytes(&self.to_le_bytes()))?;
        t.end()
    }
}

impl<'de> serde::Deserialize<'de> for Buf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Buf, D::Error> {
        struct ByteBuf(Vec<u8>);
        impl<'de> serde::Deserialize<'de> for ByteBuf {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ByteBuf, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = ByteBuf;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("the bytes of a buffer")
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v.to_vec()))
                    }
                    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<ByteBuf, A::Error> {
                        let mut out = Vec::new();
                        while let Some(b) = seq.next_element::<u8>()? {
                            out.push(b);
                        }
                        Ok(ByteBuf(out))
                    }
                }
                d.deserialize_byte_buf(V)
            }
        }
        let (name, bytes): (String, ByteBuf) = serde::Deserialize::deserialize(d)?;
        let dtype = DType::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown dtype {name:?}")))?;
        Buf::from_le_bytes(dtype, &bytes.0).ok_or_else(|| {
            serde::de::Error::custom(format!("{} bytes are not {name} elements", bytes.0.len()))
        })
    }
}
