//! Kernels a host program writes in Rust (`Engine::register_kernel`). A `NativeKernel`
//! describes itself — parameters, footprint (the halo per axis), dtype rule — so scripts
//! call it like a builtin kernel (`x.map(box_sum(3))`) and halo inference, checking,
//! planning and fusion boundaries treat it as any stencil. The stencil runtime hands its
//! implementation each output block's input with the halo already read from the
//! neighbouring chunks and extended past the array's edge by the boundary mode.

use crate::data::Buf;
use crate::dtype::DType;
use num_complex::{Complex32, Complex64};
use std::fmt;
use std::sync::Arc;

/// The implementation: fill `output` from `input` (the block plus its halo), or say why not.
pub type RunFn = dyn Fn(&BlockIn, &mut BlockOut) -> Result<(), String> + Send + Sync;
/// The halo per axis for an array of rank `ndim` (one entry per axis).
pub type FootprintFn = dyn Fn(&KernelArgs, usize) -> Vec<u64> + Send + Sync;
/// The output dtype for an input dtype, or why the input is refused.
pub type DTypeFn = dyn Fn(DType, &KernelArgs) -> Result<DType, String> + Send + Sync;
/// Why the arguments are out of the kernel's domain, if they are.
pub type CheckFn = dyn Fn(&KernelArgs) -> Result<(), String> + Send + Sync;

/// A parameter of a native kernel: a number (`Int` refuses fractions) with an optional
/// default.
#[derive(Clone, Debug, PartialEq)]
pub struct NativeParam {
    pub name: String,
    pub int: bool,
    pub default: Option<f64>,
}

/// A kernel written in Rust. Build it with `NativeKernel::new(name, run)` and the
/// builder methods; register it with `Engine::register_kernel`.
pub struct NativeKernel {
    name: String,
    doc: String,
    params: Vec<NativeParam>,
    footprint: Box<FootprintFn>,
    dtype: Box<DTypeFn>,
    check: Box<CheckFn>,
    run: Box<RunFn>,
}

impl fmt::Debug for NativeKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NativeKernel({})", self.name)
    }
}

impl NativeKernel {
    /// A kernel named `name` (the name scripts call) whose implementation is `run`. By
    /// default it has no parameters, no halo and keeps the input's dtype.
    pub fn new(
        name: &str,
        run: impl Fn(&BlockIn, &mut BlockOut) -> Result<(), String> + Send + Sync + 'static,
    ) -> NativeKernel {
        NativeKernel {
            name: name.to_string(),
            doc: String::new(),
            params: Vec::new(),
            footprint: Box::new(|_, ndim| vec![0; ndim]),
            dtype: Box::new(|d, _| Ok(d)),
            check: Box::new(|_| Ok(())),
            run: Box::new(run),
        }
    }

    /// The doc line `:help` and the reference show.
    pub fn doc(mut self, doc: &str) -> NativeKernel {
        self.doc = doc.to_string();
        self
    }

    /// An integer parameter (`None`: the script must give it).
    pub fn int_param(mut self, name: &str, default: Option<i64>) -> NativeKernel {
        self.params.push(NativeParam {
            name: name.to_string(),
            int: true,
            default: default.map(|d| d as f64),
        });
        self
    }

    /// A number parameter (`None`: the script must give it).
    pub fn float_param(mut self, name: &str, default: Option<f64>) -> NativeKernel {
        self.params.push(NativeParam {
            name: name.to_string(),
            int: false,
            default,
        });
        self
    }

    /// The halo per axis the implementation needs, from the arguments and the rank.
    pub fn footprint(
        mut self,
        f: impl Fn(&KernelArgs, usize) -> Vec<u64> + Send + Sync + 'static,
    ) -> NativeKernel {
        self.footprint = Box::new(f);
        self
    }

    /// The same halo on every axis.
    pub fn halo(self, radius: u64) -> NativeKernel {
        self.footprint(move |_, ndim| vec![radius; ndim])
    }

    /// The output dtype rule; an `Err` refuses the input with that message (E0202).
    pub fn dtype(
        mut self,
        f: impl Fn(DType, &KernelArgs) -> Result<DType, String> + Send + Sync + 'static,
    ) -> NativeKernel {
        self.dtype = Box::new(f);
        self
    }

    /// Refuse arguments out of the kernel's domain at check time (E0203 with the message).
    pub fn check(
        mut self,
        f: impl Fn(&KernelArgs) -> Result<(), String> + Send + Sync + 'static,
    ) -> NativeKernel {
        self.check = Box::new(f);
        self
    }

    /// Always produce `d`, whatever the input.
    pub fn output_dtype(self, d: DType) -> NativeKernel {
        self.dtype(move |_, _| Ok(d))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn doc_line(&self) -> &str {
        &self.doc
    }

    pub fn params(&self) -> &[NativeParam] {
        &self.params
    }

    pub fn halo_for(&self, args: &KernelArgs, ndim: usize) -> Vec<u64> {
        (self.footprint)(args, ndim)
    }

    pub fn dtype_for(&self, input: DType, args: &KernelArgs) -> Result<DType, String> {
        (self.dtype)(input, args)
    }

    pub fn check_args(&self, args: &KernelArgs) -> Result<(), String> {
        (self.check)(args)
    }

    pub fn run(&self, input: &BlockIn, output: &mut BlockOut) -> Result<(), String> {
        (self.run)(input, output)
    }
}

/// A registered native kernel inside the IR: compared and hashed by identity.
#[derive(Clone)]
pub struct NativeRef(pub Arc<NativeKernel>);

impl PartialEq for NativeRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for NativeRef {}

impl std::hash::Hash for NativeRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as *const u8 as usize).hash(state);
    }
}

impl fmt::Debug for NativeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// The arguments a script gave a native kernel, by parameter name.
#[derive(Clone, Copy, Debug)]
pub struct KernelArgs<'a> {
    params: &'a [NativeParam],
    values: &'a [f64],
}

impl<'a> KernelArgs<'a> {
    pub fn new(params: &'a [NativeParam], values: &'a [f64]) -> KernelArgs<'a> {
        KernelArgs { params, values }
    }

    /// The value of parameter `name` (`None`: no such parameter).
    pub fn get(&self, name: &str) -> Option<f64> {
        let i = self.params.iter().position(|p| p.name == name)?;
        self.values.get(i).copied()
    }

    /// The value of an integer parameter (0 when there is no such parameter).
    pub fn int(&self, name: &str) -> i64 {
        self.get(name).unwrap_or(0.0) as i64
    }

    /// The value of a number parameter (0.0 when there is no such parameter).
    pub fn float(&self, name: &str) -> f64 {
        self.get(name).unwrap_or(0.0)
    }
}

/// Element types a block can be viewed as.
pub trait Element: Copy + 'static {
    fn slice(b: &Buf) -> Option<&[Self]>;
    fn slice_mut(b: &mut Buf) -> Option<&mut [Self]>;
}

macro_rules! element {
    ($t:ty, $v:ident) => {
        impl Element for $t {
            fn slice(b: &Buf) -> Option<&[Self]> {
                match b {
                    Buf::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(b: &mut Buf) -> Option<&mut [Self]> {
                match b {
                    Buf::$v(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

element!(bool, Bool);
element!(i8, I8);
element!(i16, I16);
element!(i32, I32);
element!(i64, I64);
element!(u8, U8);
element!(u16, U16);
element!(u32, U32);
element!(u64, U64);
element!(f32, F32);
element!(f64, F64);
element!(Complex32, C64);
element!(Complex64, C128);

/// The input of one output block: C-order values of the block grown by the halo on both
/// sides of every axis (`shape[a] = out_shape[a] + 2 * halo[a]`).
pub struct BlockIn<'a> {
    pub(crate) data: &'a Buf,
    pub(crate) shape: &'a [usize],
    pub(crate) halo: &'a [usize],
    pub(crate) origin: &'a [u64],
    pub(crate) args: KernelArgs<'a>,
}

impl BlockIn<'_> {
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The shape with the halo.
    pub fn shape(&self) -> &[usize] {
        self.shape
    }

    pub fn halo(&self) -> &[usize] {
        self.halo
    }

    /// Array coordinates of the output block's first element.
    pub fn origin(&self) -> &[u64] {
        self.origin
    }

    pub fn args(&self) -> &KernelArgs<'_> {
        &self.args
    }

    pub fn buf(&self) -> &Buf {
        self.data
    }

    /// The values as `T` (`None` when the input's dtype is not `T`).
    pub fn view<T: Element>(&self) -> Option<ndarray::ArrayViewD<'_, T>> {
        let s = T::slice(self.data)?;
        ndarray::ArrayViewD::from_shape(ndarray::IxDyn(self.shape), s).ok()
    }

    /// The values converted to f64 (complex: the real part).
    pub fn to_f64(&self) -> ndarray::ArrayD<f64> {
        let v: Vec<f64> = (0..self.data.len()).map(|i| self.data.get_f64(i)).collect();
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(self.shape), v)
            .expect("the block's length matches its shape")
    }
}

/// The output block to fill: the output dtype, the block's shape (no halo), zeros until
/// written.
pub struct BlockOut<'a> {
    pub(crate) data: &'a mut Buf,
    pub(crate) shape: &'a [usize],
}

impl BlockOut<'_> {
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn shape(&self) -> &[usize] {
        self.shape
    }

    /// The values as `T` to write (`None` when the output's dtype is not `T`).
    pub fn view_mut<T: Element>(&mut self) -> Option<ndarray::ArrayViewMutD<'_, T>> {
        let shape = self.shape;
        let s = T::slice_mut(self.data)?;
        ndarray::ArrayViewMutD::from_shape(ndarray::IxDyn(shape), s).ok()
    }

    pub fn buf_mut(&mut self) -> &mut Buf {
        self.data
    }
}
