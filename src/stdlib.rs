//! The standard library written in Tessera (`stdlib/*.tsr`), compiled into the binary and
//! loaded before every script.

/// (file name, source) of every stdlib file, in load order.
pub const FILES: &[(&str, &str)] = &[
    ("stdlib/core.tsr", include_str!("../stdlib/core.tsr")),
    ("stdlib/filters.tsr", include_str!("../stdlib/filters.tsr")),
];
