//! The builtin registry: every entry dispatches (a call with valid arguments lowers
//! without an error), is documented (a doc line, `:help`, docs/BUILTINS.md), and the
//! committed reference equals the one generated from the registry.

use tessera::lower::registry::{Category, Registry};
use tessera::Engine;

/// A valid call of every standard builtin, over `x` (f32[8, 8] in 4x4 chunks), `m` (a
/// bool mask), `lab` (labels) and the files the test writes.
const CALLS: &[(&str, &str)] = &[
    ("zarr", "zarr(\"in.zarr\")"),
    ("tiff", "tiff(\"frames/*.tif\", squeeze=false)"),
    ("png", "png(\"frames/*.png\")"),
    ("zeros", "zeros((4, 4), dtype=\"u8\", chunks=2)"),
    ("ones", "ones((4, 4))"),
    ("full", "full((4, 4), 2.5)"),
    ("arange", "arange(0, 10, 2)"),
    ("random", "random((4, 4), seed=3)"),
    ("abs", "abs(x)"),
    ("sqrt", "sqrt(x)"),
    ("exp", "exp(x)"),
    ("log", "log(x)"),
    ("real", "real(x)"),
    ("imag", "imag(x)"),
    ("angle", "angle(x)"),
    ("stack", "stack([x, x], axis=0)"),
    ("concat", "concat([x, x], axis=1)"),
    ("fft", "fft(x, axis=-1)"),
    ("ifft", "ifft(x)"),
    ("rfft", "rfft(x)"),
    ("label", "label(m, connectivity=2)"),
    ("regionprops", "regionprops(lab, intensity=x)"),
    ("clip", "clip(x, 0, 1)"),
    ("where", "where(m, x, 0)"),
    ("maximum_of", "maximum_of(x, 1)"),
    ("minimum_of", "minimum_of(x, 1)"),
    ("print", "print(\"n\", 1, x)"),
    ("len", "len(x)"),
    ("range", "range(1, 5)"),
    ("arg", "arg(\"k\", 3)"),
    ("rois", "rois(\"r.json\")"),
    ("gaussian", "x.map(gaussian(1.5, truncate=3.0))"),
    ("uniform", "x.map(uniform(3))"),
    ("median", "x.map(median(3))"),
    ("minimum", "x.map(minimum(3))"),
    ("maximum", "x.map(maximum(3))"),
    ("sobel", "x.map(sobel(axis=0))"),
    ("laplace", "x.map(laplace())"),
    (
        "gaussian_gradient_magnitude",
        "x.map(gaussian_gradient_magnitude(1.0))",
    ),
    ("map", "x.overlap(1).map(uniform(3))"),
    ("overlap", "x.overlap((1, 2), boundary=\"nearest\")"),
    ("astype", "x.astype(\"u16\")"),
    ("write", "x.write(\"out.zarr\", codec=\"gzip\", level=1)"),
    ("values", "x[0:2, 0:2].values()"),
    ("sum", "x.sum(axis=0)"),
    ("mean", "x.mean()"),
    ("min", "x.min(axis=(0, 1))"),
    ("max", "x.max(keepdims=true)"),
    ("std", "x.std(ddof=1)"),
    ("var", "x.var(axis=1)"),
    ("argmin", "x.argmin()"),
    ("argmax", "x.argmax(axis=0)"),
    ("transpose", "x.transpose(1, 0)"),
    ("reshape", "x.reshape(4, 16)"),
    ("rechunk", "x.rechunk(8)"),
    ("coarsen", "x.coarsen(2, reduce=\"max\")"),
    (
        "write_ome",
        "x.write_ome(\"img.ome.zarr\", levels=2, axes=\"yx\", scale=0.5, units=\"micrometer\")",
    ),
    ("clip", "x.clip(0, 1)"),
    ("abs", "x.abs()"),
    ("preview", "x.preview(\"p.png\")"),
    ("python", "python(\"f.py:f\", level=2)"),
    (
        "map_blocks",
        "x.map_blocks(python(\"f.py:f\"), chunks=(1, 1), dtype=\"f64\")",
    ),
];

const PRELUDE: &str = "let x = random((8, 8), chunks=4)\n\
                       let m = x > 0.5\n\
                       let lab = label(m)\n";

fn setup() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.json"),
        "[{\"offset\": [0, 0], \"shape\": [2, 2]}]",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("f.py"),
        "def f(block, level=1):\n    return block.sum(keepdims=True)\n",
    )
    .unwrap();
    // Two TIFF planes and a PNG for `tiff(...)` and `png(...)`.
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    for i in 0..2 {
        let f = std::fs::File::create(frames.join(format!("f{i}.tif"))).unwrap();
        let mut t = tiff::encoder::TiffEncoder::new(f).unwrap();
        t.write_image::<tiff::encoder::colortype::Gray16>(4, 3, &[i; 12])
            .unwrap();
    }
    let f = std::fs::File::create(frames.join("f0.png")).unwrap();
    let mut p = png::Encoder::new(f, 4, 3);
    p.set_color(png::ColorType::Grayscale);
    p.set_depth(png::BitDepth::Eight);
    p.write_header()
        .unwrap()
        .write_image_data(&[7; 12])
        .unwrap();
    let mut e = Engine::new().with_base_dir(dir.path());
    e.run(
        "w.tsr",
        "zeros((4, 4), chunks=2).write(\"in.zarr\")\n",
        &Default::default(),
    )
    .unwrap();
    let e = Engine::new().with_base_dir(dir.path());
    (dir, e)
}

#[test]
fn every_entry_dispatches() {
    let (_dir, mut e) = setup();
    let reg = Registry::standard();
    for b in reg.iter() {
        let method = b.category == Category::Method;
        let Some((_, call)) = CALLS
            .iter()
            .find(|(n, c)| *n == b.name && c.contains(&format!(".{}(", b.name)) == method)
        else {
            panic!("no test call for the builtin `{}`", b.name);
        };
        let src = format!("{PRELUDE}let r = {call}\n");
        if let Err(d) = e.check("t.tsr", &src) {
            panic!("`{call}` does not lower:\n{}", e.render(&d, false));
        }
    }
}

#[test]
fn every_entry_is_documented() {
    let e = Engine::new();
    let overview = tessera::repl::help_text(&e, "");
    let reference = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/BUILTINS.md"),
    )
    .unwrap();
    for b in e.registry().iter() {
        assert!(!b.doc.trim().is_empty(), "`{}` has no doc line", b.name);
        assert!(
            overview.contains(&b.signature),
            "`:help` does not list {}",
            b.signature
        );
        let one = tessera::repl::help_text(&e, &b.name);
        assert!(one.contains(&b.doc), "`:help {}` lacks its doc", b.name);
        assert!(
            reference.contains(&format!("`{}` — {}", b.signature, b.doc)),
            "docs/BUILTINS.md lacks `{}`",
            b.signature
        );
    }
}

#[test]
fn committed_reference_is_generated() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/BUILTINS.md");
    let generated = Registry::standard().reference_markdown();
    if std::env::var_os("TESSERA_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == generated,
        "docs/BUILTINS.md is out of date: rerun with TESSERA_BLESS=1 cargo test --test registry"
    );
}
