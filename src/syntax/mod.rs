//! Surface syntax: the pest grammar (`grammar/tessera.pest`) and the conversion of pest
//! pairs into the spanned AST of `ast`. pest's `Rule` never leaves this module.

pub mod ast;
mod parse;

pub use parse::parse;

/// Is `name` a reserved word (never a name a script can bind or call)?
pub fn is_keyword(name: &str) -> bool {
    parse::errors::KEYWORDS.contains(&name)
}
