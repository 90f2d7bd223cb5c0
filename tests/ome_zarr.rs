//! OME-Zarr (NGFF) images: pyramids written by ome-zarr-py's `write_image` and by
//! ngff-zarr, both NGFF 0.4 (Zarr v2) and 0.5 (Zarr v3), open at every level with the axes,
//! units, scale and translation those libraries' own readers report, and the data they
//! wrote, bit for bit; bad images and bad levels are diagnostics before anything runs.

mod common;

use common::{oracle_python, read_all, run_cli, run_python, sha256, TempDir};
use std::path::Path;

/// Writes four images and prints, per image and level, one line in the form Tessera's
/// `print(k, a.shape, a.axes, a.units, a.scale, a.translation)` takes, then the data's hash.
const MAKE_IMAGES: &str = r#"
import hashlib, numpy as np, zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr.writer import write_image
from ome_zarr.format import FormatV04, FormatV05
import ngff_zarr as nz

rng = np.random.default_rng(11)
data = rng.integers(0, 60000, size=(12, 40, 36), dtype=np.uint16)

def tup(v):
    v = list(v)
    return "(" + ", ".join(v) + ("," if len(v) == 1 else "") + ")"

def line(k, a, axes, units, scale, trans):
    a = np.ascontiguousarray(np.asarray(a))
    h = hashlib.sha256(a.astype(a.dtype.newbyteorder('<')).tobytes()).hexdigest()
    print(f"{k} {tup(str(s) for s in a.shape)} {tup(repr(x) for x in axes).replace(chr(39), chr(34))} "
          f"{tup('none' if u is None else chr(34) + u + chr(34) for u in units)} "
          f"{tup(repr(float(x)) for x in scale)} {tup(repr(float(x)) for x in trans)} {h}")

units = {"z": "micrometer", "y": "micrometer", "x": "micrometer"}
for name, fmt in [("ozp04.ome.zarr", FormatV04()), ("ozp05.ome.zarr", FormatV05())]:
    root = zarr.open_group(parse_url(name, mode="w", fmt=fmt).store, mode="w", zarr_format=fmt.zarr_format)
    write_image(data, root, axes="zyx", fmt=fmt, scale_factors=(2, 4),
                scale={"z": 2.0, "y": 0.5, "x": 0.5}, axes_units=units)
    print(name)
    node = list(Reader(parse_url(name))())[0]
    axes = node.metadata["axes"]
    for k, (d, ct) in enumerate(zip(node.data, node.metadata["coordinateTransformations"])):
        sc = next(t["scale"] for t in ct if t["type"] == "scale")
        tr = next((t["translation"] for t in ct if t["type"] == "translation"), [0.0] * 3)
        line(k, d.compute(), [a["name"] for a in axes], [a.get("unit") for a in axes], sc, tr)

for v, name in [("0.4", "nz04.ome.zarr"), ("0.5", "nz05.ome.zarr")]:
    img = nz.to_ngff_image(data, dims=["z", "y", "x"], scale={"z": 2.0, "y": 0.5, "x": 0.5},
                           translation={"z": 1.0, "y": 0.0, "x": 0.0}, axes_units=units)
    nz.to_ngff_zarr(name, nz.to_multiscales(img, scale_factors=[2, 4]), version=v)
    print(name)
    ms = nz.from_ngff_zarr(name)
    names = [a.name for a in ms.metadata.axes]
    for k, im in enumerate(ms.images):
        line(k, im.data.compute(), names, [a.unit for a in ms.metadata.axes],
             [im.scale[n] for n in names], [im.translation[n] for n in names])
"#;

/// Tessera's view of every level of `image`, in the oracle's line format (the hash of
/// the level as Tessera reads and writes it).
fn tessera_levels(dir: &Path, image: &str, levels: usize) -> Vec<String> {
    let mut script = String::new();
    for k in 0..levels {
        script.push_str(&format!(
            "let a{k} = zarr(\"{image}\", level={k})\nprint({k}, a{k}.shape, a{k}.axes, a{k}.units, a{k}.scale, a{k}.translation)\na{k}.write(\"out/{image}-{k}.zarr\")\n"
        ));
    }
    std::fs::write(dir.join("read.tsr"), &script).unwrap();
    let out = run_cli(dir, &["run", "read.tsr", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), levels, "{stdout}");
    (0..levels)
        .map(|k| {
            let (b, _) = read_all(&dir.join(format!("out/{image}-{k}.zarr")));
            format!("{} {}", lines[k], sha256(&b))
        })
        .collect()
}

#[test]
fn images_of_ome_zarr_py_and_ngff_zarr_open_at_every_level() {
    let t = TempDir::new("ome-read");
    let dir = t.path();
    let oracle = run_python(&oracle_python(), dir, MAKE_IMAGES);
    let mut images: Vec<(String, Vec<String>)> = Vec::new();
    for l in oracle.lines() {
        if l.ends_with(".ome.zarr") {
            images.push((l.to_string(), Vec::new()));
        } else {
            images.last_mut().unwrap().1.push(l.to_string());
        }
    }
    assert_eq!(images.len(), 4, "{oracle}");
    for (image, want) in &images {
        assert_eq!(want.len(), 3, "{image}: three levels expected:\n{oracle}");
        let got = tessera_levels(dir, image, want.len());
        assert_eq!(&got, want, "{image}");
    }
    // `check` shows the frame, and the default level is 0.
    std::fs::write(
        dir.join("c.tsr"),
        "let a = zarr(\"nz05.ome.zarr\")\nlet b = zarr(\"ozp04.ome.zarr\", level=2)\n",
    )
    .unwrap();
    let out = run_cli(dir, &["check", "c.tsr"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(
        s.contains("a: u16[12, 40, 36]")
            && s.contains("axes zyx scale [2, 0.5, 0.5] translation [1, 0, 0] micrometer"),
        "{s}"
    );
    assert!(
        s.contains("b: u16[12, 10, 9]") && s.contains("axes zyx scale [2, 2, 2]"),
        "{s}"
    );
}

/// `tessera check` of `script` in `dir` fails with `code`; its stderr.
fn check_fails(dir: &Path, script: &str, code: &str) -> String {
    std::fs::write(dir.join("bad.tsr"), script).unwrap();
    let out = run_cli(dir, &["check", "bad.tsr"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{script}: check passed");
    assert!(
        err.contains(&format!("[{code}]")),
        "{script}: want {code}:\n{err}"
    );
    err
}

#[test]
fn bad_images_and_levels_are_diagnostics() {
    let t = TempDir::new("ome-bad");
    let dir = t.path();
    let py = oracle_python();
    run_python(
        &py,
        dir,
        r#"
import json, numpy as np, zarr
g = zarr.open_group("plain.zarr", mode="w", zarr_format=3)
g.create_array("a", shape=(4, 6), dtype="u1")
ms = [{"version": "0.4", "axes": [{"name": "y"}, {"name": "x"}],
       "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]},
                    {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [2, 2]}]}]}]
for name, attrs in [("v2.ome.zarr", {"multiscales": ms}),
                    ("v9.ome.zarr", {"multiscales": [dict(ms[0], version="0.9")]}),
                    ("axes.ome.zarr", {"multiscales": [dict(ms[0], axes=[{"name": "x"}])]}),
                    ("rank.ome.zarr", {"multiscales": [dict(ms[0], axes=[{"name": "z"}, {"name": "y"}, {"name": "x"}],
                        datasets=[{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}])]}),
                    ("noaxes.ome.zarr", {"multiscales": [{k: v for k, v in ms[0].items() if k != "axes"}]})]:
    g = zarr.open_group(name, mode="w", zarr_format=2)
    g.attrs.update(attrs)
    g.create_array("0", shape=(8, 8), dtype="u1")
    g.create_array("1", shape=(4, 4), dtype="u1")
"#,
    );
    let e = check_fails(dir, "let a = zarr(\"v2.ome.zarr\", level=2)\n", "E0452");
    assert!(e.contains("its levels are 0 (`0`), 1 (`1`)"), "{e}");
    let e = check_fails(dir, "let a = zarr(\"plain.zarr\")\n", "E0450");
    assert!(e.contains("no `attributes.ome.multiscales`"), "{e}");
    let e = check_fails(dir, "let a = zarr(\"noaxes.ome.zarr\")\n", "E0450");
    assert!(e.contains("no `axes`"), "{e}");
    let e = check_fails(dir, "let a = zarr(\"v9.ome.zarr\")\n", "E0451");
    assert!(e.contains("version 0.9"), "{e}");
    let e = check_fails(dir, "let a = zarr(\"axes.ome.zarr\")\n", "E0453");
    assert!(e.contains("2 values for 1 axes"), "{e}");
    let e = check_fails(dir, "let a = zarr(\"rank.ome.zarr\")\n", "E0453");
    assert!(
        e.contains("names 3 axes (z, y, x)") && e.contains("2 dimensions"),
        "{e}"
    );
    check_fails(dir, "let a = zarr(\"plain.zarr/a\", level=1)\n", "E0450");
    // A plain array is unchanged: no frame.
    std::fs::write(
        dir.join("p.tsr"),
        "let a = zarr(\"plain.zarr/a\")\nprint(a.axes, a.scale)\n",
    )
    .unwrap();
    let out = run_cli(dir, &["run", "p.tsr", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "none none");
}
