"""The `%%tessera` cell magic in an in-process IPython shell, and the lazy-array display."""

import numpy as np
import pytest
import scipy.ndimage as ndi

from IPython.core.interactiveshell import InteractiveShell

import tessera
from tessera.notebook import LazyArray, chunk_grid_svg


@pytest.fixture()
def shell():
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "tessera")
    yield sh
    sh.reset()
    InteractiveShell.clear_instance()


def cell(sh, line, body):
    return sh.run_cell_magic("tessera", line, body)


def test_bindings_persist_and_output_goes_back_to_python(shell):
    a = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    shell.user_ns["a"] = a
    cell(shell, "-i a", "let y = a * 2.0\n")
    cell(shell, "-o total", "y.sum()\n")
    total = shell.user_ns["total"]
    assert np.isclose(total, (a * 2.0).sum(dtype=np.float64), rtol=1e-5)
    cell(shell, "-o y", "let z = y + 1.0\n")
    np.testing.assert_array_equal(shell.user_ns["y"], a * np.float32(2.0))


def test_final_array_is_lazy_with_the_repl_summary(shell):
    a = np.arange(100 * 80, dtype=np.float32).reshape(100, 80)
    shell.user_ns["a"] = tessera.chunked(a, (25, 40))
    v = cell(shell, "-i a", "a.map(gaussian(1.5))\n")
    assert isinstance(v, LazyArray)
    assert v.shape == (100, 80) and v.chunks == (25, 40) and v.dtype == np.float32
    # The Rust summary, as the REPL prints it.
    assert v.summary.startswith("array f32[100, 80]")
    assert "8 chunks" in v.summary and "grid [4, 2]" in v.summary
    assert "31.2 KiB" in v.summary or "31.25 KiB" in v.summary, v.summary
    assert "tasks" in v.summary
    page = v._repr_html_()
    assert "<svg" in page and "array f32[100, 80]" in page
    # 4 row boundaries + 1 and 2 column boundaries + 1 lines in the picture.
    assert page.count("<line") == 5 + 3
    np.testing.assert_allclose(
        v.compute(), ndi.gaussian_filter(a, 1.5, mode="reflect"), rtol=1e-5, atol=1e-3
    )
    # The lazy value is bound in the session: later cells can use it by name.
    out = cell(shell, "-o m", f"{v.name}.max()\n")
    assert out is None and np.isclose(shell.user_ns["m"], v.compute().max())


def test_errors_raise_tessera_error(shell):
    with pytest.raises(tessera.TesseraError) as e:
        cell(shell, "", "nope + 1\n")
    assert e.value.code.startswith("E")
    with pytest.raises(NameError, match="missing_var"):
        cell(shell, "-i missing_var", "1\n")
    with pytest.raises(ValueError, match="unknown option"):
        cell(shell, "--frobnicate", "1\n")


def test_chunk_grid_svg_caps_lines():
    svg = chunk_grid_svg((10_000,), (10,))
    assert svg.count("<line") == 25 + 2
    assert chunk_grid_svg((), ()) == ""


def test_regionprops_table_to_pandas_equals_skimage(shell):
    import skimage.measure as skm

    rng = np.random.default_rng(5)
    mask = ndi.gaussian_filter(rng.random((80, 70)), 2.0) > 0.5
    shell.user_ns["m"] = tessera.chunked(mask, (20, 35))
    t = cell(shell, "-i m", "regionprops(label(m))\n")
    assert isinstance(t, tessera.notebook.Table) and "regionprops" in repr(t)
    df = t.to_pandas()
    labels, n = ndi.label(mask)
    want = skm.regionprops_table(labels, properties=("label", "area", "centroid"))
    assert len(df) == n > 1
    np.testing.assert_array_equal(df["label"], want["label"])
    np.testing.assert_array_equal(df["area"], want["area"])
    np.testing.assert_allclose(df["centroid-0"], want["centroid-0"], rtol=1e-9)
    np.testing.assert_allclose(df["centroid-1"], want["centroid-1"], rtol=1e-9)
