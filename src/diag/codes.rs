//! Stable diagnostic codes. Codes never change meaning once published; retired codes are
//! not reused. The first digit is the stage: 0 syntax, 1 names, 2 types and values,
//! 3 shapes and regions, 4 storage, 5 evaluation and runtime. `W` codes are warnings.

/// The parser met something it did not expect.
pub const PARSE: &str = "E0001";
/// A literal that cannot be represented (integer overflow, bad escape).
pub const BAD_LITERAL: &str = "E0002";

/// A name that is not bound.
pub const UNKNOWN_NAME: &str = "E0101";
/// A method or property the receiver does not have.
pub const UNKNOWN_METHOD: &str = "E0102";
/// A keyword argument the callee does not take.
pub const UNKNOWN_KEYWORD: &str = "E0103";
/// Too many or too few positional arguments, or an argument given twice.
pub const ARITY: &str = "E0104";

/// A value of the wrong kind or dtype for an operation.
pub const TYPE_MISMATCH: &str = "E0201";
/// A dtype Tessera does not support, or a dtype an operation refuses.
pub const UNSUPPORTED_DTYPE: &str = "E0202";
/// A parameter value out of its domain (zero chunk size, negative sigma, unknown codec...).
pub const BAD_VALUE: &str = "E0203";
/// Calling something that is not a function.
pub const NOT_CALLABLE: &str = "E0204";
/// An `if` condition that is not a scalar known before running.
pub const BAD_CONDITION: &str = "E0205";
/// A kernel whose footprint radius is above `ir::MAX_KERNEL_RADIUS` (a huge sigma, size or
/// truncate), which no array needs and whose weights alone would exhaust memory.
pub const KERNEL_TOO_LARGE: &str = "E0206";
/// A regions file (`rois(path)`, JSON or CSV) that does not hold valid regions: the message
/// names the file and the line and column (CSV) or region (JSON) at fault.
pub const BAD_ROIS: &str = "E0207";

/// Shapes that do not broadcast together.
pub const SHAPE_MISMATCH: &str = "E0301";
/// An index or region outside the array.
pub const OUT_OF_BOUNDS: &str = "E0302";
/// An index with the wrong number of axes.
pub const BAD_INDEX: &str = "E0303";

/// An input path that does not exist.
pub const PATH_NOT_FOUND: &str = "E0401";
/// A path that exists but is not a Zarr array.
pub const NOT_ZARR: &str = "E0402";
/// A Zarr array whose dtype or codec Tessera cannot read.
pub const UNSUPPORTED_STORE: &str = "E0403";
/// An output that exists, written without `overwrite=true`.
pub const OUTPUT_EXISTS: &str = "E0404";
/// An output location that cannot be created or written.
pub const UNWRITABLE: &str = "E0405";
/// Reading a chunk failed while running.
pub const READ_FAILED: &str = "E0406";
/// Writing a chunk failed while running.
pub const WRITE_FAILED: &str = "E0407";
/// Two sinks of one program write the same output path.
pub const DUPLICATE_OUTPUT: &str = "E0408";

/// `values()` or printing of an array too large to hold in memory.
pub const TOO_LARGE: &str = "E0501";
/// Recursion deeper than the evaluator allows.
pub const RECURSION: &str = "E0502";
/// The run was cancelled.
pub const CANCELLED: &str = "E0503";
/// `--resume` of an output whose completion record belongs to another plan (the script,
/// an input's metadata or the Tessera version changed), or is damaged.
pub const RESUME_MISMATCH: &str = "E0505";

/// A stored chunk whose compressed data declares more decoded bytes than the chunk's shape
/// holds (a damaged or hostile "decompression bomb"); refused before it is decoded.
pub const CHUNK_TOO_LARGE: &str = "E0508";

/// An explicit overlap smaller than the kernel's footprint.
pub const OVERLAP_TOO_SMALL: &str = "W0301";
/// The plan's projected memory is above `--memory`.
pub const OVER_MEMORY: &str = "E0504";
/// A bug in Tessera itself (never a user mistake).
pub const INTERNAL: &str = "E0599";
