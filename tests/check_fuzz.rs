//! Random and mangled scripts through parse + check + plan: never a panic, every failure
//! is diagnosed with a code and a span inside the source, and checking always finishes.

mod common;

use common::{Rng, TempDir};
use std::path::Path;
use tessera::Engine;

const TOKENS: &[&str] = &[
    "let",
    "x",
    "y",
    "=",
    "zeros",
    "((4, 4))",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "==",
    "<",
    "&",
    "|",
    "~",
    "not",
    "and",
    "1",
    "2.5",
    "-3",
    "\"u8\"",
    "\"out.zarr\"",
    ".write",
    ".map",
    ".overlap",
    ".astype",
    "gaussian(1)",
    "median(3)",
    "arange(10)",
    "random((8, 8))",
    "none",
    "...",
    "fn",
    "f",
    "|b|",
    "b",
    "for",
    "in",
    "if",
    "else",
    "{",
    "}",
    "\n",
    ";",
    "print",
    "where",
    "clip",
    "x.shape",
    "x[0]",
    "x[::2]",
    "(0:2, 1:3)",
    "region=",
    "regions=",
    "overwrite=true",
    "chunks=",
    "rois",
    "values()",
    "range(3)",
    "sqrt",
    "true",
    "false",
    "1e308",
    "9223372036854775807",
];

fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for dir in ["examples", "tests/errors", "stdlib"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "tsr") {
                v.push(std::fs::read_to_string(e.path()).unwrap());
            }
        }
    }
    v.sort();
    v
}

fn check_one(engine: &mut Engine, src: &str) {
    match engine.check("fuzz.tsr", src) {
        Ok(_) => {
            // Whatever checks must also plan.
            let _ = engine
                .plan("fuzz.tsr", src)
                .expect("a checked script plans");
        }
        Err(diags) => {
            assert!(!diags.is_empty());
            for d in &diags {
                assert_eq!(d.code.len(), 5, "{d}");
                if let Some(sp) = d.span() {
                    assert!(
                        sp.start <= sp.end
                            && sp.end as usize <= engine.sources().text(sp.src).len(),
                        "span out of range: {d}"
                    );
                }
            }
            let _ = engine.render(&diags, false);
        }
    }
}

#[test]
fn random_and_mangled_scripts_never_panic() {
    let dir = TempDir::new("fuzz");
    let mut engine = Engine::new().with_base_dir(dir.path());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let seeds = seeds();
    // Token soups.
    for _ in 0..600 {
        let n = 1 + rng.below(30);
        let src: Vec<&str> = (0..n).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
        check_one(&mut engine, &src.join(" "));
    }
    // Mutations of real scripts: delete, duplicate or swap spans, flip bytes.
    for _ in 0..900 {
        let base = seeds[rng.below(seeds.len())].clone().into_bytes();
        let mut b = base.clone();
        for _ in 0..1 + rng.below(4) {
            if b.is_empty() {
                break;
            }
            let i = rng.below(b.len());
            let j = (i + rng.below(12)).min(b.len());
            match rng.below(4) {
                0 => {
                    b.drain(i..j);
                }
                1 => {
                    let piece: Vec<u8> = b[i..j].to_vec();
                    let at = rng.below(b.len());
                    b.splice(at..at, piece);
                }
                2 => {
                    let alphabet = b"()[]{},.:=+-*/|&~ \n0123456789\"xyz";
                    b[i] = alphabet[rng.below(alphabet.len())]
                }
                _ => {
                    let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                    b.splice(i..i, t.iter().copied());
                }
            }
        }
        let src = String::from_utf8_lossy(&b).into_owned();
        check_one(&mut engine, &src);
    }
    // Pathological programs finish with a diagnostic.
    for src in [
        "fn f(x) = f(x) + f(x)\nf(1)",
        "for i in range(3000000) { let y = i }",
        "let x = zeros((4,4))\nfor i in range(5000000) { let x = x + 1 }",
        "fn f(n) = if n { 1 } else { 2 }\nf(1)",
    ] {
        check_one(&mut engine, src);
    }
}
