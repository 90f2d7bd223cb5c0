//! Tessera: an array language for chunked Zarr arrays far larger than memory.
//!
//! A script is parsed, lowered to a typed array IR (every dtype and shape is checked
//! before anything runs), optimized, planned into chunk tasks and run in parallel,
//! streaming chunks from storage to storage:
//!
//! ```
//! use tessera::{Engine, RunOptions};
//!
//! let dir = std::env::temp_dir().join(format!("tessera-doc-{}", std::process::id()));
//! let out = dir.join("out.zarr");
//! let script = format!(
//!     "let x = arange(12, chunks=5)\n(x * 2 + 1).write({:?})\nprint(x.shape)",
//!     out.to_str().unwrap()
//! );
//! let mut engine = Engine::new();
//! let checked = engine.check("doc.tsr", &script).expect("valid script");
//! assert_eq!(checked.bindings[0].1, "i64[12] chunks [5]");
//! let report = engine.run("doc.tsr", &script, &RunOptions::default()).expect("runs");
//! assert_eq!(report.printed, vec!["(12,)"]);
//! # std::fs::remove_dir_all(&dir).ok();
//! ```
//!
//! A host program adds kernels written in Rust (`Engine::register_kernel`); scripts call
//! them like builtin kernels, with the halo their footprint asks for:
//!
//! ```
//! use tessera::{dtype::DType, Engine, NativeKernel, RunOptions};
//!
//! // out[i] = in[i - 1] + in[i + 1] along a 1-D array (a halo of 1).
//! let neighbours = NativeKernel::new("neighbours", |input, out| {
//!     let x = input.to_f64();
//!     let mut o = out.view_mut::<f64>().ok_or("f64 output")?;
//!     for (i, v) in o.iter_mut().enumerate() {
//!         *v = x[i] + x[i + 2];
//!     }
//!     Ok(())
//! })
//! .halo(1)
//! .output_dtype(DType::F64);
//! let mut engine = Engine::new();
//! engine.register_kernel(neighbours).unwrap();
//! let report = engine
//!     .run(
//!         "doc.tsr",
//!         "print(arange(6, chunks=2).map(neighbours()).values())",
//!         &RunOptions::default(),
//!     )
//!     .unwrap();
//! // reflect at the edges: [0 0 1 2 3 4 5 5]
//! assert_eq!(report.printed, vec!["[1. 2. 4. 6. 8. 9.]"]);
//! ```

pub mod check;
pub mod cluster;
pub mod data;
pub mod diag;
mod driver;
pub mod dtype;
pub mod exec;
pub mod geom;
pub mod io;
pub mod ir;
pub mod lower;
pub mod opt;
pub mod plan;
pub mod repl;
pub mod stdlib;
pub mod syntax;
pub mod worker;

pub use diag::{Diagnostic, Severity};
pub use driver::{
    format_array, format_values, Checked, Computed, Engine, Evaluated, LazyArray, NamedInput,
    Planned, RunReport,
};
pub use exec::{Progress, RunOptions};
pub use ir::native::{BlockIn, BlockOut, KernelArgs, NativeKernel};
