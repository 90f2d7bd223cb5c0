//! Surface syntax: the pest grammar (`grammar/tessera.pest`) and the conversion of pest
//! pairs into the spanned AST of `ast`. pest's `Rule` never leaves this module.

pub mod ast;
mod parse;

pub use parse::parse;
