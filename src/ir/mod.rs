//! The array IR: an arena of `Node`s (one `Op` each, typed by `ArrayType`) addressed by
//! `NodeId`, plus the program's sinks. Ops describe themselves (elementwise or not, halo
//! footprint, cost) so passes never match builtin names.

pub mod bounds;
pub mod coarsen;
pub mod images;
pub mod native;
pub mod notes;
mod print;
mod pyblock;
pub mod verify;

pub use print::{
    fmt_scalar, print_program, print_scalar_at, to_dot, type_summary, type_summary_with,
};

pub use coarsen::CoarsenMethod;

use crate::data::Buf;
use crate::diag::Span;
use crate::dtype::DType;
use crate::geom::Shape;
use std::fmt;

#[derive(
    serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// Element type, shape and chunk shape of an array value; all known at check time.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArrayType {
    pub dtype: DType,
    pub shape: Shape,
    pub chunks: Shape,
}

impl ArrayType {
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Elements (saturating; checked types never saturate, see `check::sizes`).
    pub fn size(&self) -> u64 {
        crate::geom::saturating_product(&self.shape)
    }

    pub fn nbytes(&self) -> u64 {
        self.size().saturating_mul(self.dtype.size() as u64)
    }

    /// Bytes of one whole chunk (saturating, like `nbytes`).
    pub fn chunk_bytes(&self) -> u64 {
        crate::geom::saturating_product(&self.chunks).saturating_mul(self.dtype.size() as u64)
    }
}

impl fmt::Display for ArrayType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{} chunks {}",
            self.dtype,
            crate::geom::fmt_shape(&self.shape),
            crate::geom::fmt_shape(&self.chunks)
        )
    }
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    /// Logical not on bool, bitwise not on integers.
    Invert,
    Abs,
    Sqrt,
    Exp,
    Log,
    /// Real part (complex), identity otherwise.
    Real,
    Imag,
    Angle,
}

impl UnaryOp {
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Invert => "invert",
            UnaryOp::Abs => "abs",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Real => "real",
            UnaryOp::Imag => "imag",
            UnaryOp::Angle => "angle",
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Xor,
    /// NaN-propagating maximum (`np.maximum`).
    Max,
    /// NaN-propagating minimum (`np.minimum`).
    Min,
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::FloorDiv => "floordiv",
            BinaryOp::Mod => "mod",
            BinaryOp::Pow => "pow",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Xor => "xor",
            BinaryOp::Max => "maximum",
            BinaryOp::Min => "minimum",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }
}

/// How to extend an array past its edge (scipy.ndimage modes).
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq)]
pub enum Boundary {
    /// d c b a | a b c d | d c b a
    Reflect,
    /// d c b | a b c d | c b a
    Mirror,
    /// a a a | a b c d | d d d
    Nearest,
    /// b c d | a b c d | a b c
    Wrap,
    /// cval | a b c d | cval
    Constant(f64),
    /// No padding at the array edge: the block is simply smaller there.
    None,
}

impl Boundary {
    pub const NAMES: [&'static str; 6] =
        ["reflect", "mirror", "nearest", "wrap", "constant", "none"];

    pub fn name(&self) -> &'static str {
        match self {
            Boundary::Reflect => "reflect",
            Boundary::Mirror => "mirror",
            Boundary::Nearest => "nearest",
            Boundary::Wrap => "wrap",
            Boundary::Constant(_) => "constant",
            Boundary::None => "none",
        }
    }
}

/// One axis of a basic index, applied to an input axis.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AxisIndex {
    /// Elements `start, start+step, ...`, `len` of them (step may be negative).
    Range { start: u64, step: i64, len: u64 },
    /// A single element: the axis is dropped.
    Int(u64),
    /// `none`: a new axis of length 1 (consumes no input axis).
    NewAxis,
}

/// A native filter kernel with scipy.ndimage's numerics. `params` holds sigma or size,
/// one value for every axis or one per axis; a kernel value is rank-agnostic until `map`
/// applies it, which expands `params` to the array's rank.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Kernel {
    pub kind: KernelKind,
    pub params: Vec<f64>,
    pub truncate: f64,
    /// The derivative axis of `sobel` (negative counts from the end).
    pub axis: i64,
    /// `params` in this physical unit (`gaussian(2.0, unit="micrometer")`), converted to
    /// pixels by `map` from the array's scale; `None`: pixels.
    #[serde(default)]
    pub unit: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub enum KernelKind {
    Gaussian,
    Uniform,
    Median,
    Minimum,
    Maximum,
    Sobel,
    Laplace,
    GaussianGradientMagnitude,
    /// A kernel a host program registered (`Engine::register_kernel`); its `params` are
    /// the script's arguments in parameter order. Lives in the host process only, so a
    /// plan that uses one cannot be exported.
    #[serde(skip)]
    Native(native::NativeRef),
}

impl KernelKind {
    pub fn name(&self) -> &str {
        match self {
            KernelKind::Gaussian => "gaussian",
            KernelKind::Uniform => "uniform",
            KernelKind::Median => "median",
            KernelKind::Minimum => "minimum",
            KernelKind::Maximum => "maximum",
            KernelKind::Sobel => "sobel",
            KernelKind::Laplace => "laplace",
            KernelKind::GaussianGradientMagnitude => "gaussian_gradient_magnitude",
            KernelKind::Native(n) => n.0.name(),
        }
    }
}

/// The largest kernel radius accepted (per axis): footprints up to 2,097,153 samples. A
/// footprint longer than an axis is legal and costs work bounded by the axis (the stencil
/// folds it onto the array); this cap only refuses parameters whose weights alone would
/// take gigabytes.
pub const MAX_KERNEL_RADIUS: u64 = 1 << 20;

impl Kernel {
    pub fn name(&self) -> &str {
        self.kind.name()
    }

    /// Per-axis parameters for an array of rank `ndim` (None: wrong count). A native
    /// kernel's parameters are its arguments, whatever the rank.
    pub fn params_for(&self, ndim: usize) -> Option<Vec<f64>> {
        if matches!(self.kind, KernelKind::Native(_)) {
            return Some(self.params.clone());
        }
        match self.params.len() {
            0 => Some(vec![]),
            1 => Some(vec![self.params[0]; ndim]),
            n if n == ndim => Some(self.params.clone()),
            _ => None,
        }
    }

    /// The largest footprint radius per axis, in the units of the kernel's parameter:
    /// `truncate * sigma + 0.5` for gaussians, `size / 2` for box filters.
    pub fn radius_f64(&self, p: f64) -> f64 {
        match self.kind {
            KernelKind::Gaussian | KernelKind::GaussianGradientMagnitude => {
                if p > 1e-15 {
                    (self.truncate * p + 0.5).floor()
                } else {
                    0.0
                }
            }
            KernelKind::Uniform
            | KernelKind::Median
            | KernelKind::Minimum
            | KernelKind::Maximum => (p / 2.0).floor(),
            KernelKind::Sobel | KernelKind::Laplace => 1.0,
            KernelKind::Native(_) => 0.0,
        }
    }

    /// The halo per axis: scipy's footprint radius (`int(truncate*sigma + 0.5)` for
    /// gaussians, `size // 2` for box filters, 1 for sobel and laplace).
    pub fn radius(&self, ndim: usize) -> Vec<u64> {
        let p = self.params_for(ndim).unwrap_or_else(|| vec![0.0; ndim]);
        match &self.kind {
            KernelKind::Gaussian | KernelKind::GaussianGradientMagnitude => p
                .iter()
                .map(|s| {
                    if *s > 1e-15 {
                        (self.truncate * s + 0.5) as u64
                    } else {
                        0
                    }
                })
                .collect(),
            KernelKind::Uniform
            | KernelKind::Median
            | KernelKind::Minimum
            | KernelKind::Maximum => p.iter().map(|s| (*s as u64) / 2).collect(),
            KernelKind::Sobel | KernelKind::Laplace => vec![1; ndim],
            KernelKind::Native(n) => {
                let args = native::KernelArgs::new(n.0.params(), &self.params);
                let mut h = n.0.halo_for(&args, ndim);
                h.resize(ndim, 0);
                h
            }
        }
    }
}

/// A reduction over some axes (NumPy's `sum mean min max std var argmin argmax`).
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Mean,
    Min,
    Max,
    Std,
    Var,
    Argmin,
    Argmax,
}

impl ReduceOp {
    pub const ALL: [ReduceOp; 8] = [
        ReduceOp::Sum,
        ReduceOp::Mean,
        ReduceOp::Min,
        ReduceOp::Max,
        ReduceOp::Std,
        ReduceOp::Var,
        ReduceOp::Argmin,
        ReduceOp::Argmax,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Min => "min",
            ReduceOp::Max => "max",
            ReduceOp::Std => "std",
            ReduceOp::Var => "var",
            ReduceOp::Argmin => "argmin",
            ReduceOp::Argmax => "argmax",
        }
    }

    pub fn parse(name: &str) -> Option<ReduceOp> {
        ReduceOp::ALL.iter().copied().find(|r| r.name() == name)
    }
}

/// Which discrete Fourier transform `Op::Fft` computes along its axis.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FftKind {
    /// numpy.fft.fft: complex output of the same length.
    Forward,
    /// numpy.fft.ifft: inverse, scaled by 1/n.
    Inverse,
    /// numpy.fft.rfft: real input, n//2 + 1 complex outputs.
    Real,
}

impl FftKind {
    pub fn name(self) -> &'static str {
        match self {
            FftKind::Forward => "fft",
            FftKind::Inverse => "ifft",
            FftKind::Real => "rfft",
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub enum Op {
    /// A Zarr array on disk.
    Zarr {
        path: String,
    },
    /// An image stack (`tiff`, `png`): plane `p` (C order over the leading axes) is one
    /// file or page, decoded whole; its chunks are single planes.
    Images {
        stack: std::sync::Arc<images::ImageStack>,
    },
    /// Every element the same value (`zeros`, `ones`, `full`, scalar constants).
    Fill {
        value: Buf,
    },
    /// `start + i * step` along a 1-D array.
    Arange {
        start: f64,
        step: f64,
    },
    /// Deterministic uniform noise: a pure function of (seed, flat index).
    Random {
        seed: u64,
    },
    Unary {
        op: UnaryOp,
        x: NodeId,
    },
    /// Inputs already cast to one common dtype by the checker (except `Pow` exponents).
    Binary {
        op: BinaryOp,
        a: NodeId,
        b: NodeId,
    },
    Where {
        cond: NodeId,
        a: NodeId,
        b: NodeId,
    },
    Cast {
        x: NodeId,
    },
    /// NumPy-style broadcast of `x` to this node's shape.
    Broadcast {
        x: NodeId,
    },
    /// Basic indexing.
    Index {
        x: NodeId,
        axes: Vec<AxisIndex>,
    },
    /// A stencil with a halo read from neighbouring chunks and a boundary mode at the edge.
    Stencil {
        x: NodeId,
        kernel: Kernel,
        halo: Vec<u64>,
        boundary: Boundary,
    },
    /// A fused elementwise expression over `inputs` (created by `opt::fuse_elementwise`).
    Fused {
        inputs: Vec<NodeId>,
        expr: FusedExpr,
    },
    /// A reduction over `axes` of `x` (sorted, distinct). Its result is computed by a
    /// stage of its own before anything reads it (partials per chunk, combined in a
    /// fixed order) and held in memory.
    /// (`keepdims=true` is a reshape of this result, so both spellings share one node.)
    Reduce {
        x: NodeId,
        op: ReduceOp,
        axes: Vec<usize>,
        ddof: u64,
    },
    /// Output axis `i` is input axis `perm[i]`.
    Transpose {
        x: NodeId,
        perm: Vec<usize>,
    },
    /// The same elements in C order, another shape.
    Reshape {
        x: NodeId,
    },
    /// The same array with other chunks (`ty.chunks`).
    Rechunk {
        x: NodeId,
    },
    /// Inputs (one dtype, equal shapes but on `axis`) joined along `axis`.
    Concat {
        inputs: Vec<NodeId>,
        axis: usize,
    },
    /// A discrete Fourier transform along `axis` (the whole axis is read at once).
    Fft {
        x: NodeId,
        axis: usize,
        kind: FftKind,
    },
    /// Connected components of a mask (non-zero is foreground), numbered as
    /// `scipy.ndimage.label`. A stage scans every chunk and resolves a label table before
    /// anything reads it; reading a region then relabels the chunks it touches.
    Label {
        x: NodeId,
        connectivity: usize,
    },
    /// Block downsample (`skimage.measure.block_reduce`): output element `i` reduces the
    /// block `i*factors .. (i+1)*factors` of `x` with `method`. Partial blocks at the end
    /// of an axis are padded with zeros that take part in the reduction, or dropped
    /// (`trim`).
    Coarsen {
        x: NodeId,
        factors: Vec<u64>,
        method: CoarsenMethod,
        trim: bool,
    },
    /// A user's Python function applied to every block of `x` (the blocks of `x`'s chunk
    /// grid, each grown by `halo` with `boundary` and trimmed back afterwards). Output
    /// block `b` is the function's result on input block `b`; see `PyBlock`.
    PyBlock(Box<PyBlock>),
}

/// A Python block function: where it lives and the keyword arguments it is called with.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct PyFunc {
    /// As written: `tiles.py:count_nuclei` or `pkg.module:func`.
    pub spec: String,
    /// The module's file (resolved against the script's directory), or none for an
    /// importable module.
    pub file: Option<std::path::PathBuf>,
    /// The module name to import (a file's stem for files).
    pub module: String,
    pub func: String,
    /// Keyword arguments as one JSON object, keys in the order written.
    pub kwargs: String,
    /// Seconds one call may take before its worker is stopped.
    pub timeout: Option<f64>,
    /// The Python interpreter that runs it.
    pub interpreter: std::path::PathBuf,
    /// A digest of the module file's bytes when the script was lowered (empty for an
    /// importable module): a worker that imported another version of the file, earlier
    /// in a REPL or notebook session, imports it again.
    #[serde(default)]
    pub stamp: String,
}

impl PyFunc {
    /// Identifies the function with its arguments (and its file's version) inside one
    /// worker.
    pub fn key(&self) -> String {
        format!("{}\u{1f}{}\u{1f}{}", self.spec, self.kwargs, self.stamp)
    }

    /// The digest kept in `stamp` for a module file.
    pub fn file_stamp(file: &std::path::Path) -> String {
        use sha2::Digest;
        let bytes = std::fs::read(file).unwrap_or_default();
        let d = sha2::Sha256::digest(&bytes);
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// `Op::PyBlock`'s description: output axis `o` of a block comes from input axis
/// `axis_of[o]` (none: a new axis) and has the length `block[o]` in every block, or the
/// input block's own length where `block[o]` is none (ragged edge blocks included).
/// Input axes in `dropped` are read whole (a single chunk) and absent from the output.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct PyBlock {
    pub x: NodeId,
    pub func: std::sync::Arc<PyFunc>,
    pub halo: Vec<u64>,
    pub boundary: Boundary,
    pub axis_of: Vec<Option<usize>>,
    pub block: Vec<Option<u64>>,
    pub dropped: Vec<usize>,
}

/// The body of a fused elementwise kernel: a little register program.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct FusedExpr {
    pub instrs: Vec<Instr>,
}

/// One instruction of a fused kernel; each writes register `i` (its own index) and reads
/// earlier registers.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub enum Instr {
    /// Load fused input number `n` (already broadcast to the output shape).
    Input(usize, DType),
    Const(Buf),
    Unary(UnaryOp, usize, DType),
    Binary(BinaryOp, usize, usize, DType),
    Where(usize, usize, usize, DType),
    Cast(usize, DType),
}

impl Instr {
    pub fn dtype(&self) -> DType {
        match self {
            Instr::Input(_, d)
            | Instr::Unary(_, _, d)
            | Instr::Binary(_, _, _, d)
            | Instr::Where(_, _, _, d)
            | Instr::Cast(_, d) => *d,
            Instr::Const(b) => b.dtype(),
        }
    }
}

impl Op {
    pub fn inputs(&self) -> Vec<NodeId> {
        match self {
            Op::Zarr { .. }
            | Op::Images { .. }
            | Op::Fill { .. }
            | Op::Arange { .. }
            | Op::Random { .. } => vec![],
            Op::Unary { x, .. }
            | Op::Cast { x }
            | Op::Broadcast { x }
            | Op::Index { x, .. }
            | Op::Stencil { x, .. }
            | Op::Reduce { x, .. }
            | Op::Transpose { x, .. }
            | Op::Reshape { x }
            | Op::Rechunk { x }
            | Op::Label { x, .. }
            | Op::Coarsen { x, .. }
            | Op::Fft { x, .. } => vec![*x],
            Op::PyBlock(b) => vec![b.x],
            Op::Binary { a, b, .. } => vec![*a, *b],
            Op::Where { cond, a, b } => vec![*cond, *a, *b],
            Op::Fused { inputs, .. } | Op::Concat { inputs, .. } => inputs.clone(),
        }
    }

    pub fn map_inputs(&mut self, mut f: impl FnMut(NodeId) -> NodeId) {
        match self {
            Op::Zarr { .. }
            | Op::Images { .. }
            | Op::Fill { .. }
            | Op::Arange { .. }
            | Op::Random { .. } => {}
            Op::Unary { x, .. }
            | Op::Cast { x }
            | Op::Broadcast { x }
            | Op::Index { x, .. }
            | Op::Stencil { x, .. }
            | Op::Reduce { x, .. }
            | Op::Transpose { x, .. }
            | Op::Reshape { x }
            | Op::Rechunk { x }
            | Op::Label { x, .. }
            | Op::Coarsen { x, .. }
            | Op::Fft { x, .. } => *x = f(*x),
            Op::PyBlock(b) => b.x = f(b.x),
            Op::Binary { a, b, .. } => {
                *a = f(*a);
                *b = f(*b);
            }
            Op::Where { cond, a, b } => {
                *cond = f(*cond);
                *a = f(*a);
                *b = f(*b);
            }
            Op::Fused { inputs, .. } | Op::Concat { inputs, .. } => {
                inputs.iter_mut().for_each(|i| *i = f(*i))
            }
        }
    }

    /// Its result needs every element of its input, so it is computed by a stage of its
    /// own before the stages that read it, and held whole.
    pub fn is_barrier(&self) -> bool {
        matches!(self, Op::Reduce { .. } | Op::Label { .. })
    }

    /// Output element i depends only on input element i (after broadcasting).
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary { .. }
                | Op::Binary { .. }
                | Op::Where { .. }
                | Op::Cast { .. }
                | Op::Fused { .. }
        )
    }

    /// Reads no other node.
    pub fn is_source(&self) -> bool {
        self.inputs().is_empty()
    }

    /// Halo per axis this op reads around each output element, if any.
    pub fn footprint(&self) -> Option<&[u64]> {
        match self {
            Op::Stencil { halo, .. } => Some(halo),
            _ => None,
        }
    }

    /// Rough arithmetic cost per output element, for the optimizer's estimates.
    pub fn cost_per_element(&self) -> f64 {
        match self {
            Op::Zarr { .. } | Op::Images { .. } => 4.0,
            Op::Fill { .. }
            | Op::Arange { .. }
            | Op::Broadcast { .. }
            | Op::Index { .. }
            | Op::Transpose { .. }
            | Op::Reshape { .. }
            | Op::Rechunk { .. }
            | Op::Concat { .. } => 0.5,
            Op::Reduce { .. } => 2.0,
            Op::Label { .. } => 4.0,
            Op::Coarsen { factors, .. } => factors.iter().map(|f| *f as f64).product::<f64>(),
            Op::Fft { .. } => 20.0,
            Op::Random { .. } => 2.0,
            Op::Unary { .. } | Op::Binary { .. } | Op::Where { .. } | Op::Cast { .. } => 1.0,
            Op::Fused { expr, .. } => expr.instrs.len() as f64,
            Op::Stencil { halo, .. } => halo.iter().map(|h| 2.0 * *h as f64 + 1.0).sum(),
            // A call into another process: expensive, never recomputed lightly.
            Op::PyBlock(_) => 100.0,
        }
    }

    /// Short name for printing.
    pub fn name(&self) -> String {
        match self {
            Op::Zarr { .. } => "zarr".into(),
            Op::Images { stack } => stack.format.name().into(),
            Op::Fill { .. } => "fill".into(),
            Op::Arange { .. } => "arange".into(),
            Op::Random { .. } => "random".into(),
            Op::Unary { op, .. } => op.name().into(),
            Op::Binary { op, .. } => op.name().into(),
            Op::Where { .. } => "where".into(),
            Op::Cast { .. } => "astype".into(),
            Op::Broadcast { .. } => "broadcast".into(),
            Op::Index { .. } => "index".into(),
            Op::Stencil { kernel, .. } => kernel.name().into(),
            Op::Fused { .. } => "fused".into(),
            Op::Reduce { op, .. } => op.name().into(),
            Op::Transpose { .. } => "transpose".into(),
            Op::Reshape { .. } => "reshape".into(),
            Op::Rechunk { .. } => "rechunk".into(),
            Op::Concat { .. } => "concat".into(),
            Op::Fft { kind, .. } => kind.name().into(),
            Op::Label { .. } => "label".into(),
            Op::Coarsen { .. } => "coarsen".into(),
            Op::PyBlock(b) => format!("python {}", b.func.spec),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub ty: ArrayType,
    pub span: Span,
    /// The physical frame (axes, scale, translation) of an array read from an OME-Zarr
    /// image or derived from one; `None` for plain arrays.
    #[serde(default)]
    pub space: Option<std::sync::Arc<crate::io::ome::Spatial>>,
}

/// Options of a `write` sink, already validated.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct WriteSpec {
    /// The path as the script wrote it.
    pub path: String,
    /// Where it is on disk.
    pub resolved: std::path::PathBuf,
    /// Replacing an existing array: the run writes here, beside it, and the new array
    /// takes the old one's place only once every chunk is written (see `target`).
    pub staging: Option<std::path::PathBuf>,
    /// Shape of the output array (the array's, or `like=`'s for region-shaped data).
    pub shape: Shape,
    pub chunks: Shape,
    pub codec: String,
    pub level: Option<i32>,
    pub overwrite: bool,
    /// Write into an existing array, keeping everything outside the regions.
    pub existing: bool,
    /// Regions to write, in list order (later ones win where they overlap); empty means
    /// the whole array.
    pub regions: Vec<crate::geom::Region>,
    /// Per region: the axes given as single ints (absent from region-shaped data).
    pub int_axes: Vec<Vec<bool>>,
    /// The data has exactly the (single) region's shape and is placed at its offset.
    pub placed: bool,
    /// Fill value of a new output.
    pub fill: Buf,
    /// The output is an array this program reads (`zarr("a.zarr")` written back to
    /// "a.zarr"): every read sees it as it was before the run. The run writes a staged
    /// copy (its unchanged chunks hard links to the original's) that takes the array's
    /// place at the end.
    #[serde(default)]
    pub in_place: bool,
    /// Names of the axes, stored as the array's `dimension_names` (the levels of an
    /// OME-Zarr image: NGFF 0.5 asks for the axes' names there).
    #[serde(default)]
    pub dimension_names: Option<Vec<String>>,
}

impl WriteSpec {
    /// Where the run writes the array's chunks: the staging directory of a replacement,
    /// else the output itself.
    pub fn target(&self) -> &std::path::Path {
        self.staging.as_deref().unwrap_or(&self.resolved)
    }
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub enum SinkKind {
    Write(WriteSpec),
    /// Print the values of a small array (`print(x.values())`).
    PrintValues {
        label: String,
    },
    /// Region measurements of the label array `node` (`regionprops(l, intensity=x)`):
    /// printed, or written as CSV (atomically) to `csv`. With an intensity image, the next
    /// sink is its `PropsIntensity`.
    Props {
        label: String,
        intensity: bool,
        csv: Option<(String, std::path::PathBuf)>,
        /// Write `csv`'s path as an AnnData table (`write_table`) instead of CSV.
        #[serde(default)]
        anndata: bool,
    },
    /// The intensity image of the `Props` sink just before this one.
    PropsIntensity,
    /// Render a 2-D array as a PNG (`x.preview("p.png")`).
    Preview {
        path: String,
        resolved: std::path::PathBuf,
    },
}

/// An effect of the program: something that must be computed when it runs.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Sink {
    pub kind: SinkKind,
    pub node: NodeId,
    pub span: Span,
}

/// One piece of a printed line: text known at check time, or the values of a sink.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub enum PrintPiece {
    Text(String),
    Values(usize),
}

/// A `print` call: its pieces are joined by spaces when the program runs.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Effect {
    pub pieces: Vec<PrintPiece>,
}

/// A typed program: the node arena, its sinks and the effects in order.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Program {
    pub nodes: Vec<Node>,
    pub sinks: Vec<Sink>,
    pub effects: Vec<Effect>,
    /// What the optimizer's analysis passes decided (see `notes`).
    pub notes: notes::Notes,
    /// The most bytes one rechunk block task may hold: its block of input and the output
    /// chunk it makes (0: the default, `DEFAULT_BLOCK_BYTES`); set from the memory limit
    /// before optimizing.
    pub block_bytes: u64,
    /// Intermediate arrays the program writes and reads back (a rechunk staged through
    /// storage), removed once the run succeeds.
    pub temporaries: Vec<std::path::PathBuf>,
    /// Group metadata (OME-Zarr `zarr.json`) written once every output is complete, so an
    /// interrupted run never leaves a group that looks whole (`x.write_ome`).
    #[serde(default)]
    pub group_metadata: Vec<GroupMetadata>,
}

/// One group's `zarr.json`, written after the run.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct GroupMetadata {
    /// The group's directory.
    pub dir: std::path::PathBuf,
    /// Its attributes (`{"ome": ...}`).
    pub attributes: serde_json::Value,
    /// A label image: also list it under `ome.labels` of the `labels` group above `dir`.
    pub add_label: Option<String>,
}

/// Rechunk block tasks hold at most this much unless the memory limit asks for less.
pub const DEFAULT_BLOCK_BYTES: u64 = 256 << 20;

/// The rechunk block limit for a memory limit shared by `workers` tasks: half of each
/// task's share (the rest is for the chunk cache, reductions held and the process
/// itself), between 1 MiB and `DEFAULT_BLOCK_BYTES`.
pub fn block_bytes_for(memory_limit: Option<u64>, workers: usize) -> u64 {
    match memory_limit {
        Some(m) => (m / (2 * workers.max(1) as u64)).clamp(1 << 20, DEFAULT_BLOCK_BYTES),
        None => DEFAULT_BLOCK_BYTES,
    }
}

impl Program {
    /// The rechunk block limit in effect.
    pub fn block_limit(&self) -> u64 {
        if self.block_bytes == 0 {
            DEFAULT_BLOCK_BYTES
        } else {
            self.block_bytes
        }
    }

    pub fn add(&mut self, op: Op, ty: ArrayType, span: Span) -> NodeId {
        self.nodes.push(Node {
            op,
            ty,
            span,
            space: None,
        });
        NodeId(self.nodes.len() as u32 - 1)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// The physical frame of a node, if it has one.
    pub fn space(&self, id: NodeId) -> Option<&std::sync::Arc<crate::io::ome::Spatial>> {
        self.nodes[id.index()].space.as_ref()
    }

    pub fn ty(&self, id: NodeId) -> &ArrayType {
        &self.nodes[id.index()].ty
    }

    /// Nodes reachable from the sinks, in topological order (inputs first).
    pub fn live_nodes(&self) -> Vec<NodeId> {
        let mut seen = vec![false; self.nodes.len()];
        let mut order = Vec::new();
        for s in &self.sinks {
            self.post_order(s.node, &mut seen, &mut order);
        }
        order
    }

    /// Post-order walk from `root` (iterative: graphs can be deep).
    pub fn post_order(&self, root: NodeId, seen: &mut [bool], order: &mut Vec<NodeId>) {
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                order.push(id);
                continue;
            }
            if seen[id.index()] {
                continue;
            }
            seen[id.index()] = true;
            stack.push((id, true));
            for i in self.node(id).op.inputs().into_iter().rev() {
                if !seen[i.index()] {
                    stack.push((i, false));
                }
            }
        }
    }

    /// The widest halo, per axis, that any stencil feeding `id` reads (`None`: no stencil).
    pub fn max_halo(&self, id: NodeId) -> Option<Vec<u64>> {
        let mut seen = vec![false; self.nodes.len()];
        let mut order = Vec::new();
        self.post_order(id, &mut seen, &mut order);
        let mut total: Option<Vec<u64>> = None;
        for n in order {
            if let Some(h) = self.node(n).op.footprint() {
                let t = total.get_or_insert_with(|| vec![0; h.len()]);
                if t.len() == h.len() {
                    for (a, b) in t.iter_mut().zip(h) {
                        *a = (*a).max(*b);
                    }
                }
            }
        }
        total
    }

    /// `max_halo` of every node at once, in one pass over the arena (inputs precede their
    /// users), for describing many values of one program without walking its graph for
    /// each (`tessera check` of a long script).
    pub fn max_halos(&self) -> Vec<Option<Vec<u64>>> {
        fn merge(into: &mut Option<Vec<u64>>, h: &[u64]) {
            match into {
                None => *into = Some(h.to_vec()),
                Some(t) if t.len() == h.len() => {
                    for (a, b) in t.iter_mut().zip(h) {
                        *a = (*a).max(*b);
                    }
                }
                Some(_) => {}
            }
        }
        let mut out: Vec<Option<Vec<u64>>> = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let mut total: Option<Vec<u64>> = None;
            for i in n.op.inputs() {
                if let Some(Some(h)) = out.get(i.index()) {
                    merge(&mut total, h);
                }
            }
            if let Some(h) = n.op.footprint() {
                merge(&mut total, h);
            }
            out.push(total);
        }
        out
    }

    /// How many live nodes read each node.
    pub fn use_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.nodes.len()];
        for id in self.live_nodes() {
            for i in self.node(id).op.inputs() {
                counts[i.index()] += 1;
            }
        }
        for s in &self.sinks {
            counts[s.node.index()] += 1;
        }
        counts
    }
}
