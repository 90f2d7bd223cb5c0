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

# A plate with one well holding one field: the field's image is opened by its path.
from ome_zarr.writer import write_plate_metadata, write_well_metadata
plate = zarr.open_group(parse_url("plate.zarr", mode="w", fmt=FormatV05()).store, mode="w", zarr_format=3)
write_plate_metadata(plate, ["B"], ["03"], ["B/03"], fmt=FormatV05())
well = plate.require_group("B").require_group("03")
write_well_metadata(well, [{"path": "0"}], fmt=FormatV05())
write_image(data, well.require_group("0"), axes="zyx", fmt=FormatV05(), scale_factors=(2, 4),
            scale={"z": 2.0, "y": 0.5, "x": 0.5}, axes_units=units)
print("plate.zarr/B/03/0")
node = list(Reader(parse_url("plate.zarr/B/03/0"))())[0]
for k, (d, ct) in enumerate(zip(node.data, node.metadata["coordinateTransformations"])):
    sc = next(t["scale"] for t in ct if t["type"] == "scale")
    tr = next((t["translation"] for t in ct if t["type"] == "translation"), [0.0] * 3)
    line(k, d.compute(), [a["name"] for a in node.metadata["axes"]],
         [a.get("unit") for a in node.metadata["axes"]], sc, tr)

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
    // (A field of a plate is a path inside it.)
    let flat = image.replace('/', "_");
    let mut script = String::new();
    for k in 0..levels {
        script.push_str(&format!(
            "let a{k} = zarr(\"{image}\", level={k})\nprint({k}, a{k}.shape, a{k}.axes, a{k}.units, a{k}.scale, a{k}.translation)\na{k}.write(\"out/{flat}-{k}.zarr\")\n"
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
            let (b, _) = read_all(&dir.join(format!("out/{flat}-{k}.zarr")));
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
        // An image's path (no spaces) starts its levels' lines.
        if !l.contains(' ') {
            images.push((l.to_string(), Vec::new()));
        } else {
            images.last_mut().unwrap().1.push(l.to_string());
        }
    }
    assert_eq!(images.len(), 5, "{oracle}");
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

/// Checks what `WRITE_SCRIPT` wrote with ome-zarr-py's and ngff-zarr's readers (ngff-zarr
/// validating against the NGFF schemas): the levels, axes, units and scales, the data, and
/// every level against `block_reduce` of the level above (mean in the image's dtype for
/// the image, scipy's mode of the padded blocks for the labels).
const CHECK_WRITTEN: &str = r#"
import numpy as np, zarr, scipy.stats
from skimage.measure import block_reduce
from skimage.util import view_as_blocks
import ngff_zarr as nz
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader, Label, Multiscales

src = np.asarray(zarr.open_array("src.zarr", mode="r"))
lab0 = np.asarray(zarr.open_array("lab.zarr", mode="r"))

def mode(x, f):
    pad = [(0, (-n) % k) for n, k in zip(x.shape, f)]
    b = view_as_blocks(np.pad(x, pad), tuple(f))
    b = b.reshape(b.shape[:x.ndim] + (-1,))
    return scipy.stats.mode(b, axis=-1, keepdims=False).mode.astype(x.dtype)

for group, first, reduce in [("w.ome.zarr", src, lambda a: block_reduce(a, (2, 2, 2), np.mean).astype(a.dtype)),
                             ("w.ome.zarr/labels/nuclei", lab0, lambda a: mode(a, (2, 2, 2)))]:
    ms = nz.from_ngff_zarr(group, validate=True)
    assert len(ms.images) == 3, (group, len(ms.images))
    assert [a.name for a in ms.metadata.axes] == ["z", "y", "x"]
    assert [a.unit for a in ms.metadata.axes] == ["micrometer"] * 3, ms.metadata.axes
    above = None
    for k, im in enumerate(ms.images):
        got = np.asarray(im.data)
        f = 2 ** k
        assert im.scale == {"z": 2.0 * f, "y": 0.5 * f, "x": 0.5 * f}, (group, k, im.scale)
        if k == 0:
            assert np.array_equal(got, first), group
        else:
            want = reduce(above)
            assert got.shape == want.shape and got.dtype == want.dtype, (group, k, got.shape, want.shape)
            assert np.array_equal(got, want), (group, k)
        above = got
    assert zarr.open_array(f"{group}/0", mode="r").chunks == (6, 16, 16)

nodes = list(Reader(parse_url("w.ome.zarr"))())
image = [n for n in nodes if any(isinstance(s, Multiscales) for s in n.specs) and not any(isinstance(s, Label) for s in n.specs)]
labels = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
assert len(image) == 1 and len(labels) == 1, [n.specs for n in nodes]
assert [d.shape for d in image[0].data] == [(11, 41, 37), (6, 21, 19), (3, 11, 10)]
assert np.array_equal(np.asarray(image[0].data[0]), src)
assert np.array_equal(np.asarray(labels[0].data[1]), np.asarray(ms.images[1].data))
attrs = zarr.open_group("w.ome.zarr/labels", mode="r").attrs.asdict()
assert attrs["ome"]["labels"] == ["nuclei"], attrs
# NGFF 0.5: every level array names its dimensions as the axes do.
for level in ["0", "1", "2", "labels/nuclei/0", "labels/nuclei/2"]:
    names = zarr.open_array("w.ome.zarr/" + level, mode="r").metadata.dimension_names
    assert names == ("z", "y", "x"), (level, names)
print("ok")
"#;

const WRITE_SCRIPT: &str = r#"let x = zarr("src.zarr")
x.write_ome("w.ome.zarr", levels=3, axes="zyx", scale=(2.0, 0.5, 0.5), units="micrometer", chunks=(6, 16, 16))
let lab = zarr("lab.zarr")
lab.write_ome("w.ome.zarr", label="nuclei", levels=3, axes="zyx", scale=(2.0, 0.5, 0.5), units="micrometer", chunks=(6, 16, 16))
"#;

#[test]
fn written_pyramids_read_back_in_ome_zarr_py_and_ngff_zarr() {
    let t = TempDir::new("ome-write");
    let dir = t.path();
    let py = oracle_python();
    run_python(
        &py,
        dir,
        r#"
import numpy as np, zarr
rng = np.random.default_rng(5)
x = rng.integers(0, 65535, size=(11, 41, 37), dtype=np.uint16)
zarr.create_array("src.zarr", shape=x.shape, chunks=(4, 16, 16), dtype=x.dtype)[...] = x
lab = rng.integers(0, 5, size=x.shape).astype(np.uint32)
zarr.create_array("lab.zarr", shape=x.shape, chunks=(4, 16, 16), dtype=lab.dtype)[...] = lab
"#,
    );
    std::fs::write(dir.join("w.tsr"), WRITE_SCRIPT).unwrap();
    let out = run_cli(dir, &["run", "w.tsr", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run_python(&py, dir, CHECK_WRITTEN).trim(), "ok");
    // Tessera reads back its own image with the frame it wrote (translation: block
    // centres, as the pyramid's mean puts them).
    std::fs::write(
        dir.join("r.tsr"),
        "let b = zarr(\"w.ome.zarr\", level=1)\nprint(b.scale, b.translation, b.units)\n",
    )
    .unwrap();
    let out = run_cli(dir, &["run", "r.tsr", "--quiet"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "(4.0, 1.0, 1.0) (1.0, 0.25, 0.25) (\"micrometer\", \"micrometer\", \"micrometer\")"
    );
}

#[test]
fn metadata_is_written_last_and_resume_spans_levels() {
    let t = TempDir::new("ome-resume");
    let dir = t.path();
    let py = oracle_python();
    run_python(
        &py,
        dir,
        r#"
import numpy as np, zarr
x = np.arange(16 * 32 * 32, dtype=np.uint16).reshape(16, 32, 32)
zarr.create_array("src.zarr", shape=x.shape, chunks=(8, 8, 8), dtype=x.dtype)[...] = x
"#,
    );
    // A run that fails part-way (a chunk of the source is damaged) leaves levels but no
    // image metadata; once the chunk is repaired, --resume finishes and writes it.
    let chunk = dir.join("src.zarr/c/1/3/3");
    let saved = std::fs::read(&chunk).unwrap();
    std::fs::write(
        dir.join("w.tsr"),
        "zarr(\"src.zarr\").write_ome(\"p.ome.zarr\", levels=3, chunks=8)\n",
    )
    .unwrap();
    std::fs::write(&chunk, b"not zstd").unwrap();
    let out = run_cli(dir, &["run", "w.tsr", "--quiet", "--workers", "1"]);
    assert!(!out.status.success(), "the damaged chunk must fail the run");
    assert!(dir.join("p.ome.zarr/0").is_dir());
    assert!(
        !dir.join("p.ome.zarr/zarr.json").exists(),
        "an interrupted pyramid must not carry image metadata"
    );
    std::fs::write(&chunk, saved).unwrap();
    let out = run_cli(dir, &["run", "w.tsr", "--quiet", "--resume"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = r#"
import numpy as np, ngff_zarr as nz
from skimage.measure import block_reduce
ms = nz.from_ngff_zarr("p.ome.zarr", validate=True)
x = np.arange(16 * 32 * 32, dtype=np.uint16).reshape(16, 32, 32)
for im in ms.images:
    assert np.array_equal(np.asarray(im.data), x), im.data.shape
    x = block_reduce(x, (2, 2, 2), np.mean).astype(np.uint16)
print(len(ms.images))
"#;
    assert_eq!(run_python(&py, dir, check).trim(), "3");
}

#[test]
fn bad_axes_strings_are_diagnostics() {
    let t = TempDir::new("ome-axes");
    let dir = t.path();
    for (axes, what) in [
        ("zyy", "repeated"),
        ("zyq", "unknown axis"),
        ("yx", "name 2 axes but the array has 3"),
        ("yzc", "out of order"),
    ] {
        let e = check_fails(
            dir,
            &format!("zeros((4, 8, 8), dtype=\"u8\").write_ome(\"o.ome.zarr\", axes=\"{axes}\")\n"),
            "E0454",
        );
        assert!(e.contains(what), "{axes}: {e}");
    }
    let e = check_fails(
        dir,
        "zeros((4, 8, 8), dtype=\"u8\").write_ome(\"o.ome.zarr\", label=\"n\", method=\"mean\")\n",
        "E0218",
    );
    assert!(e.contains("mode"), "{e}");
    check_fails(
        dir,
        "zeros((4, 8, 8), dtype=\"u8\").write_ome(\"o.ome.zarr\", version=\"0.4\")\n",
        "E0451",
    );
    assert!(!dir.join("o.ome.zarr").exists());
}

/// Metadata follows the operations (elementwise keeps it, indexing moves the origin,
/// reductions drop axes, coarsen multiplies the scale), and kernel sizes in physical
/// units become pixels per axis from the scale (sigma 1 µm over 2 / 0.5 / 0.5 µm pixels is
/// sigma 0.5 / 2 / 2 pixels, equal to scipy's `gaussian_filter` with those sigmas).
#[test]
fn metadata_flows_and_physical_kernel_sizes() {
    let t = TempDir::new("ome-flow");
    let dir = t.path();
    let py = oracle_python();
    run_python(
        &py,
        dir,
        r#"
import numpy as np, ngff_zarr as nz
x = np.random.default_rng(2).random((10, 24, 20)).astype(np.float32)
np.save("x.npy", x)
img = nz.to_ngff_image(x, dims=["z", "y", "x"], scale={"z": 2.0, "y": 0.5, "x": 0.5},
                       axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"})
nz.to_ngff_zarr("f.ome.zarr", nz.to_multiscales(img, scale_factors=[]), version="0.5")
"#,
    );
    std::fs::write(
        dir.join("f.tsr"),
        r#"let a = zarr("f.ome.zarr")
let b = (a * 2 + 1).map(median(3))
let c = a[2:8, 4:, ::2]
let d = a.coarsen(2)
let e = a.max(axis=0)
print(b.scale, c.translation, c.scale, d.scale, d.translation, e.axes)
a.map(gaussian(1.0, unit="micrometer")).write("g.zarr")
a.map(uniform(1.5, unit="micrometer")).write("u.zarr")
"#,
    )
    .unwrap();
    let out = run_cli(dir, &["run", "f.tsr", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "(2.0, 0.5, 0.5) (4.0, 2.0, 0.0) (2.0, 0.5, 1.0) (4.0, 1.0, 1.0) (1.0, 0.25, 0.25) (\"y\", \"x\")"
    );
    let check = r#"
import numpy as np, zarr, scipy.ndimage as ndi
x = np.load("x.npy")
g = np.asarray(zarr.open_array("g.zarr", mode="r"))
want = ndi.gaussian_filter(x, sigma=(0.5, 2.0, 2.0), mode="reflect")
assert np.allclose(g, want, rtol=1e-5, atol=1e-6), abs(g - want).max()
u = np.asarray(zarr.open_array("u.zarr", mode="r"))
# 1.5 um boxes: 1 pixel in z (2 um), 3 in y and x (0.5 um).
want = ndi.uniform_filter(x, size=(1, 3, 3), mode="reflect")
assert np.allclose(u, want, rtol=1e-5, atol=1e-6), abs(u - want).max()
print("ok")
"#;
    assert_eq!(run_python(&py, dir, check).trim(), "ok");
    let e = check_fails(
        dir,
        "let z = zeros((8, 8)).map(gaussian(1.0, unit=\"micrometer\"))\n",
        "E0203",
    );
    assert!(e.contains("physical scale"), "{e}");
    check_fails(dir, "let k = gaussian(1.0, unit=\"parsec\")\n", "E0203");
}

/// Fractal ROI tables (AnnData, written by anndata as Zarr v2 and v3) become the pixel
/// regions fractal's `convert_ROI_table_to_indices` computes from the table as anndata
/// reads it: `round(x_micrometer / pixel size)` to `round((x + len_x) / pixel size)` per
/// axis, here with the image's scale from ngff-zarr.
#[test]
fn fractal_roi_tables_become_pixel_regions() {
    let t = TempDir::new("ome-rois");
    let dir = t.path();
    let py = oracle_python();
    let want = run_python(
        &py,
        dir,
        r#"
import warnings; warnings.simplefilter("ignore")
import numpy as np, anndata as ad, pandas as pd, ngff_zarr as nz
cols = ["x_micrometer", "y_micrometer", "z_micrometer", "len_x_micrometer", "len_y_micrometer", "len_z_micrometer"]
X = np.array([[0.0, 0.0, 0.0, 13.0, 16.25, 4.0], [13.0, 16.25, 1.0, 12.999, 16.25, 2.0],
              [6.5, 3.25, 0.0, 3.3, 6.6, 1.0]], dtype=np.float32)
for version, fmt in [("0.4", 2), ("0.5", 3)]:
    name = f"roi{fmt}.ome.zarr"
    img = nz.to_ngff_image(np.zeros((4, 100, 80), np.uint16), dims=["z", "y", "x"],
                           scale={"z": 1.0, "y": 0.325, "x": 0.325},
                           axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"})
    nz.to_ngff_zarr(name, nz.to_multiscales(img, scale_factors=[]), version=version)
    ad.settings.zarr_write_format = fmt
    ad.AnnData(X=X, obs=pd.DataFrame(index=["FOV_1", "FOV_2", "FOV_3"]), var=pd.DataFrame(index=cols)).write_zarr(f"{name}/tables/FOV_ROI_table")
    t = ad.read_zarr(f"{name}/tables/FOV_ROI_table")
    px = {"z": 1.0, "y": 0.325, "x": 0.325}
    regions = []
    for row in t.to_df().itertuples():
        r = row._asdict()
        b = []
        for a, n in zip("zyx", (4, 100, 80)):
            s = round(r[f"{a}_micrometer"] / px[a]); e = round((r[f"{a}_micrometer"] + r[f"len_{a}_micrometer"]) / px[a])
            b.append(f"{min(s, n)}:{min(e, n)}")
        regions.append("(" + ", ".join(b) + ")")
    print("[" + ", ".join(regions) + "]")
"#,
    );
    std::fs::write(
        dir.join("r.tsr"),
        "print(rois(\"roi2.ome.zarr/tables/FOV_ROI_table\"))\nprint(rois(\"roi3.ome.zarr/tables/FOV_ROI_table\"))\n",
    )
    .unwrap();
    let out = run_cli(dir, &["run", "r.tsr", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want.trim());
}

/// `regionprops(...).write_table(path)` writes an AnnData table anndata reads: the same
/// columns and values as skimage's `regionprops_table`, one row per label (named by it),
/// listed in the image's `tables` group.
#[test]
fn regionprops_tables_are_anndata() {
    let t = TempDir::new("ome-table");
    let dir = t.path();
    let py = oracle_python();
    run_python(
        &py,
        dir,
        r#"
import numpy as np, zarr
x = np.random.default_rng(4).integers(0, 100, size=(30, 40), dtype=np.uint16)
zarr.create_array("x.zarr", shape=x.shape, chunks=(16, 16), dtype=x.dtype)[...] = x
"#,
    );
    std::fs::write(
        dir.join("t.tsr"),
        "let x = zarr(\"x.zarr\")\nlet l = label(x > 70)\nregionprops(l, intensity=x).write_table(\"img.ome.zarr/tables/nuclei\")\n",
    )
    .unwrap();
    let out = run_cli(dir, &["run", "t.tsr", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = r#"
import numpy as np, zarr, anndata as ad, scipy.ndimage as ndi
from skimage.measure import regionprops_table
x = np.asarray(zarr.open_array("x.zarr", mode="r"))
lab, n = ndi.label(x > 70)
want = regionprops_table(lab, intensity_image=x, properties=("label", "area", "centroid", "bbox", "mean_intensity", "min_intensity", "max_intensity"))
t = ad.read_zarr("img.ome.zarr/tables/nuclei")
assert t.n_obs == n, (t.n_obs, n)
assert list(t.obs_names) == [str(i) for i in range(1, n + 1)]
for j, c in enumerate(t.var_names):
    assert np.allclose(t.X[:, j], np.asarray(want[c], dtype=float)), c
assert zarr.open_group("img.ome.zarr/tables", mode="r").attrs["tables"] == ["nuclei"]
print(len(t.var_names))
"#;
    assert_eq!(run_python(&py, dir, check).trim(), "11");
}
