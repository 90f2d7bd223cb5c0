//! Halos deeper than a short axis — a 13-slice z-stack under `gaussian(4.5)` (radius 18),
//! `uniform(31)`, `maximum(29)` — in every boundary mode, bit for bit against
//! scipy.ndimage on the whole array (which extends the signal as often as needed), under
//! two chunkings; and a Python function given such a halo, trimmed back as dask's
//! `map_overlap`, against the same whole-array filter.

mod common;

use common::{oracle_python, read_all, run_cli, run_python, TempDir};
use std::path::Path;

const MODES: [&str; 5] = ["reflect", "mirror", "nearest", "wrap", "constant"];

/// (Tessera kernel, its radius, the scipy call on `a` with `mode=m, cval=0.5`).
const FILTERS: [(&str, u64, &str); 3] = [
    (
        "gaussian(4.5)",
        18,
        "ndi.gaussian_filter(a, 4.5, mode=m, cval=0.5)",
    ),
    (
        "uniform(31)",
        15,
        "ndi.uniform_filter(a, 31, mode=m, cval=0.5)",
    ),
    (
        "maximum(29)",
        14,
        "ndi.maximum_filter(a, 29, mode=m, cval=0.5)",
    ),
];

fn python(dir: &Path, code: &str) {
    run_python(&oracle_python(), dir, code);
}

fn run(dir: &Path, src: &str) {
    std::fs::write(dir.join("s.tsr"), src).unwrap();
    let py = oracle_python().display().to_string();
    let out = run_cli(dir, &["run", "s.tsr", "--quiet", "--python", &py]);
    assert!(
        out.status.success(),
        "tessera failed on\n{src}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn same(dir: &Path, got: &str, want: &str, what: &str) {
    let (g, gs) = read_all(&dir.join(got));
    let (w, ws) = read_all(&dir.join(want));
    assert_eq!(gs, ws, "{what}: shape");
    assert!(g == w, "{what}: differs from scipy");
}

fn input(dir: &Path) {
    python(
        dir,
        "import numpy as np, zarr\n\
         a = np.random.default_rng(7).random((13, 40, 36)).astype('f4')\n\
         for name, c in [('a.zarr', (5, 16, 16)), ('b.zarr', (13, 7, 9))]:\n\
         \x20   z = zarr.create_array(name, shape=a.shape, chunks=c, dtype='f4')\n\
         \x20   z[:] = a\n",
    );
}

#[test]
fn kernels_deeper_than_a_short_axis_equal_scipy_in_every_mode() {
    let t = TempDir::new("deep-kernels");
    let dir = t.path();
    input(dir);
    let mut code = String::from(
        "import numpy as np, zarr, scipy.ndimage as ndi\na = zarr.open_array('a.zarr')[:]\n",
    );
    for (i, (_, _, call)) in FILTERS.iter().enumerate() {
        for m in MODES {
            code.push_str(&format!(
                "m = '{m}'\nzarr.create_array('want-{i}-{m}.zarr', data={call})\n"
            ));
        }
    }
    python(dir, &code);
    for (i, (kernel, r, _)) in FILTERS.iter().enumerate() {
        // The default mode (reflect) with the halo inferred from the footprint.
        for src in ["a", "b"] {
            let out = format!("{src}-{i}-inferred.zarr");
            run(
                dir,
                &format!("zarr(\"{src}.zarr\").map({kernel}).write(\"{out}\")\n"),
            );
            same(
                dir,
                &out,
                &format!("want-{i}-reflect.zarr"),
                &format!("{kernel} inferred halo, {src}"),
            );
        }
        for m in MODES {
            for src in ["a", "b"] {
                let out = format!("{src}-{i}-{m}.zarr");
                run(
                    dir,
                    &format!(
                        "zarr(\"{src}.zarr\").overlap({r}, boundary=\"{m}\", cval=0.5).map({kernel}).write(\"{out}\")\n"
                    ),
                );
                same(
                    dir,
                    &out,
                    &format!("want-{i}-{m}.zarr"),
                    &format!("{kernel} mode {m}, {src}"),
                );
            }
        }
    }
}

/// A Python function's halo may be as deep as the axis (here 13, the z-stack's length,
/// with chunks of 5), in every mode, trimmed back as dask's `map_overlap`; one deeper than
/// the axis would hand it a block larger than the array and is refused before running.
#[test]
fn a_python_function_with_a_halo_as_deep_as_the_axis_equals_the_whole_array_filter() {
    let t = TempDir::new("deep-python");
    let dir = t.path();
    input(dir);
    std::fs::write(
        dir.join("f.py"),
        "import scipy.ndimage as ndi\n\n\
         def box(block):\n    return ndi.uniform_filter(block, 27, mode='constant')\n",
    )
    .unwrap();
    let mut code = String::from(
        "import numpy as np, zarr, scipy.ndimage as ndi\na = zarr.open_array('a.zarr')[:]\n",
    );
    for m in MODES {
        code.push_str(&format!(
            "zarr.create_array('want-{m}.zarr', data=ndi.uniform_filter(a, 27, mode='{m}', cval=0.5))\n"
        ));
    }
    python(dir, &code);
    for m in MODES {
        let out = format!("py-{m}.zarr");
        run(
            dir,
            &format!(
                "zarr(\"a.zarr\").overlap(13, boundary=\"{m}\", cval=0.5).map(python(\"f.py:box\")).write(\"{out}\")\n"
            ),
        );
        same(
            dir,
            &out,
            &format!("want-{m}.zarr"),
            &format!("python, mode {m}"),
        );
    }
    std::fs::write(
        dir.join("s.tsr"),
        "zarr(\"a.zarr\").overlap(14).map(python(\"f.py:box\")).write(\"deep.zarr\")\n",
    )
    .unwrap();
    let py = oracle_python().display().to_string();
    let out = run_cli(dir, &["run", "s.tsr", "--quiet", "--python", &py]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("[E0203]")
            && err.contains("overlap depth 14 on axis 0 is larger than the axis (13)"),
        "{err}"
    );
    assert!(!dir.join("deep.zarr").exists(), "something was written");
}
