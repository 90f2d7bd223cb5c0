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
/// A script argument misused: an `--arg` the script never reads, a value that does not
/// parse as the type of its `arg(name, default)`, or `arg(name)` with neither a default
/// nor a value.
pub const SCRIPT_ARG: &str = "E0105";
/// A kernel a host program registered failed at run time: its implementation returned an
/// error or panicked on a block, or filled the block with the wrong length or dtype (the
/// message names the kernel and the chunk).
pub const KERNEL_FAILED: &str = "E0106";
/// A kernel a host program registered gave an unusable footprint for the array it is
/// applied to (not one halo per axis, or a radius above the kernel limit).
pub const KERNEL_FOOTPRINT: &str = "E0107";

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
/// A `coarsen` factor that is not an integer (a float, a string, ...).
pub const COARSEN_FACTOR_TYPE: &str = "E0215";
/// A `coarsen` factor below 1, or with `trim=true` longer than its axis (nothing would be
/// left of it).
pub const COARSEN_FACTOR_RANGE: &str = "E0216";
/// `coarsen` factors whose count is neither 1 nor the array's rank.
pub const COARSEN_FACTOR_COUNT: &str = "E0217";
/// An unknown `coarsen` reduction (`reduce=`).
pub const COARSEN_METHOD: &str = "E0218";
/// A `coarsen` reduction the array's dtype does not support (`mode` of floats, `mean` of
/// complex numbers, ...).
pub const COARSEN_DTYPE: &str = "E0219";

/// Shapes that do not broadcast together.
pub const SHAPE_MISMATCH: &str = "E0301";
/// An index or region outside the array.
pub const OUT_OF_BOUNDS: &str = "E0302";
/// An index with the wrong number of axes.
pub const BAD_INDEX: &str = "E0303";
/// An array whose element count exceeds 2^63 - 1 or whose byte size exceeds 2^63 - 1
/// bytes (`geom::MAX_ELEMENTS`, `geom::MAX_BYTES`), or a shape whose arithmetic (a sum
/// of axis lengths, a product of dimensions) does not fit.
pub const ARRAY_TOO_LARGE: &str = "E0304";
/// A chunk shape whose element count or byte size exceeds the same limits.
pub const CHUNK_TOO_LARGE: &str = "E0305";

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
/// An output that contains, or lies inside, an array the program reads or writes (a group
/// around an input, an array inside another output).
pub const NESTED_ARRAYS: &str = "E0409";
/// An output path that names no array of its own: empty, ending in `.` or `..`, the
/// working directory, or an ancestor of it or of any path the program reads or writes.
pub const UNSAFE_OUTPUT: &str = "E0410";
/// Replacing an output would delete something Zarr does not own: a user's file inside the
/// old array, or a `.tessera-tmp` directory Tessera did not create.
pub const NOT_OWNED: &str = "E0411";
/// A symbolic link inside an existing output: writing would follow it out of the store.
pub const SYMLINK_IN_STORE: &str = "E0412";
/// An output another live run on this host is writing (its lock names the holder).
pub const OUTPUT_LOCKED: &str = "E0413";
/// An output whose lock names a run on another host, which cannot be checked from here.
pub const LOCKED_ELSEWHERE: &str = "E0414";
/// An output's lock file cannot be created or written.
pub const LOCK_FAILED: &str = "E0415";

/// `tiff(pattern)` or `png(pattern)` whose glob matches no file (the message names the
/// pattern).
pub const IMAGE_NO_MATCH: &str = "E0430";
/// An image stack whose files (or pages) differ in shape or dtype: the message names the
/// first file that differs from the first file, and both shapes and dtypes.
pub const IMAGE_MIXED: &str = "E0431";
/// An image file that cannot be opened, is not a TIFF (or PNG) file, or cannot be decoded
/// (the message names the file).
pub const IMAGE_UNREADABLE: &str = "E0432";
/// An image whose samples have no Tessera dtype or that the decoder does not read:
/// 1-, 2-, 4-bit, 12-bit or float16 samples, palette or inverted grayscale, separate
/// sample planes, an unknown compression (the message names the file and the format).
pub const IMAGE_UNSUPPORTED: &str = "E0433";
/// An image file that changed between the check and the run (its size, modification
/// time or header differs); a runtime error naming the file. Check and run again.
pub const IMAGE_CHANGED: &str = "E0434";
/// An image pattern that is not a valid glob (an unclosed `[`, a `**` not alone in its
/// component).
pub const IMAGE_BAD_PATTERN: &str = "E0435";

/// A Zarr group opened as an image that is not an OME-Zarr (NGFF) image: the message says
/// what is missing (`multiscales`, `axes`, `datasets`, a dataset's `path`, ...).
pub const NOT_OME: &str = "E0450";
/// An OME-Zarr image of an NGFF version Tessera does not read (it reads 0.4 and 0.5).
pub const OME_VERSION: &str = "E0451";
/// `zarr(image, level=k)` with no level `k`: the message lists the levels.
pub const OME_LEVEL: &str = "E0452";
/// OME-Zarr axes whose count differs from the array's rank (or from a scale's length).
pub const OME_AXES: &str = "E0453";
/// An `axes=` string of `write_ome` that is not a valid NGFF axis list: an unknown or
/// repeated letter, a count that differs from the rank, time/channel/space out of order,
/// or other than 2 or 3 space axes.
pub const OME_AXES_SPEC: &str = "E0454";

/// A remote store (`s3://`, `http(s)://`) that cannot be reached: connection refused,
/// DNS failure, timeouts or server errors that outlasted the retries.
pub const REMOTE_UNREACHABLE: &str = "E0440";
/// A missing bucket, or no array at the key or URL.
pub const REMOTE_NOT_FOUND: &str = "E0441";
/// Missing AWS credentials, or credentials the store rejects (403).
pub const REMOTE_CREDENTIALS: &str = "E0442";
/// A write to an `http://` or `https://` URL (HTTP stores are read-only).
pub const REMOTE_READ_ONLY: &str = "E0443";
/// `overwrite=true` of an existing array in an object store, which cannot be replaced
/// atomically (objects cannot be renamed).
pub const REMOTE_OVERWRITE: &str = "E0444";
/// A malformed remote URL (no bucket, a query string, `..` above the bucket).
pub const BAD_URL: &str = "E0445";

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
pub const DECODE_BOMB: &str = "E0508";

/// A cluster engine's command is not installed: `sbatch`/`squeue` for Slurm, a Python with
/// the `hyperqueue` package for HyperQueue (the message names the command).
pub const ENGINE_MISSING: &str = "E0710";
/// A cluster engine is installed but does not answer (no Slurm controller, no HyperQueue
/// server); the message names the command and quotes its error.
pub const ENGINE_DOWN: &str = "E0711";
/// The engine refused a submission (`sbatch` or HyperQueue's submit failed); nothing of the
/// run is left behind.
pub const JOB_REJECTED: &str = "E0712";
/// A unit of tasks kept failing on the cluster: the run stops, naming the stage, tasks,
/// the worker's errors (chunk, region, cause) and its log.
pub const TASK_FAILED: &str = "E0713";
/// The cluster run was cancelled (`tessera cancel DIR`).
pub const RUN_CANCELLED: &str = "E0714";
/// `tessera status`/`cancel` of a directory that holds no exported plan or cluster run.
pub const NOT_A_PLAN_DIR: &str = "E0715";
/// `--resume` of a cluster run whose plan changed since it was exported.
pub const RESUME_CHANGED: &str = "E0716";
/// The engine dropped the run's jobs with tasks unfinished (cancelled or killed outside
/// Tessera).
pub const ENGINE_LOST: &str = "E0717";
/// The plan directory cannot be used: it holds something else, is still in use by queued
/// jobs, or cannot be written.
pub const PLAN_DIR: &str = "E0718";
/// `tessera plan --export` failed for a cluster run (its diagnostics follow).
pub const EXPORT_FAILED: &str = "E0719";

/// An explicit overlap smaller than the kernel's footprint.
pub const OVERLAP_TOO_SMALL: &str = "W0301";
/// The plan's projected memory is above `--memory`.
pub const OVER_MEMORY: &str = "E0504";
/// A bug in Tessera itself (never a user mistake).
pub const INTERNAL: &str = "E0599";

/// The Python interpreter for block functions cannot be started or cannot import NumPy.
pub const PY_INTERPRETER: &str = "E0601";
/// A Python function's module cannot be found: no such file, or no importable module.
pub const PY_MODULE_MISSING: &str = "E0602";
/// Importing a Python function's module raised (a syntax error, a failing import).
pub const PY_MODULE_ERROR: &str = "E0603";
/// The module has no function of that name, or the name is not callable.
pub const PY_FUNCTION_MISSING: &str = "E0604";
/// The function cannot be called with one block and the keyword arguments given.
pub const PY_ARITY: &str = "E0605";
/// The function raised an exception (its traceback is in the notes).
pub const PY_EXCEPTION: &str = "E0606";
/// The function returned something other than a NumPy array.
pub const PY_NOT_ARRAY: &str = "E0607";
/// The function returned a block of another shape than the one expected.
pub const PY_SHAPE: &str = "E0608";
/// The function returned a block of another dtype than the one declared or found at
/// check time (or one Tessera has no equivalent of).
pub const PY_DTYPE: &str = "E0609";
/// A Python worker process ended during a call (a crash, `os._exit`, a signal).
pub const PY_WORKER_DIED: &str = "E0610";
/// A call took longer than the function's `timeout=`.
pub const PY_TIMEOUT: &str = "E0611";
/// A malformed `python(...)` call: its spec, keyword values or `timeout=`.
pub const PY_BAD_SPEC: &str = "E0612";
/// `map` over a function that changes the block's shape, or `map_blocks` whose result
/// shape is not described (`chunks=`, `drop_axis=`, `new_axis=`).
pub const PY_NEEDS_CHUNKS: &str = "E0613";
/// Shared memory or the pipe to a Python worker failed.
pub const PY_IO: &str = "E0614";

// Host programs (the Python package): E0800–E0819.

/// A named input a host program handed over that cannot be used as asked: a name that is
/// not an identifier, or `resume` of a run that reads an array in the host's memory
/// (its contents are not recorded, so a changed array could not be noticed).
pub const HOST_INPUT: &str = "E0800";

// Exported plans (`tessera plan --export`, `tessera worker`): E0700–E0709.

/// A plan directory written by another plan format or another Tessera version.
pub const PLAN_VERSION: &str = "E0700";
/// A plan directory whose `plan.json` or program is unreadable, damaged or inconsistent.
pub const PLAN_DAMAGED: &str = "E0701";
/// Exporting into a plan directory that holds another plan (the script, an input, an
/// argument or the version changed): its completion records would mix two results.
pub const PLAN_CHANGED: &str = "E0702";
/// A worker finds an input whose metadata changed since the plan was exported.
pub const PLAN_INPUT_CHANGED: &str = "E0703";
/// A worker cannot find an input or an earlier stage's output that its stage reads.
pub const PLAN_INPUT_MISSING: &str = "E0704";
/// A task needs the partial results of an earlier stage that are not all recorded (that
/// stage has not finished).
pub const PLAN_RESULT_MISSING: &str = "E0705";
/// `tessera worker` given a stage or a task range the plan does not have.
pub const PLAN_TASK_RANGE: &str = "E0706";
/// The plan directory cannot be written (plan files, partial results, completion records).
pub const PLAN_WRITE: &str = "E0707";
/// A program that cannot be exported: it calls a kernel a host program registered
/// (`Engine::register_kernel`), which exists only inside that process.
pub const PLAN_NOT_EXPORTABLE: &str = "E0708";
