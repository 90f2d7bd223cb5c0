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


def slow_block(b):
    import time

    time.sleep(0.15)
    return b + 1


def test_progress_callback_and_the_cell_progress_bar(shell, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = np.zeros((80, 80), dtype=np.float32)
    e = tessera.Engine(workers=1)
    seen = []
    e.set_progress(lambda done, total: seen.append((done, total)))
    e.run('x.map(f).write("p.zarr")', x=tessera.chunked(a, (20, 20)), f=slow_block)
    np.testing.assert_array_equal(e.eval('zarr("p.zarr")'), a + 1)
    assert seen, "no progress was reported"
    assert all(t == seen[0][1] for _, t in seen) and seen[0][1] >= 16
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and len(set(dones)) > 2
    # The cell magic draws a tqdm bar for a run this long (text on stderr outside Jupyter).
    shell.user_ns["a"] = tessera.chunked(a, (20, 20))
    shell.user_ns["f"] = slow_block
    cell(shell, "-i a,f -w 1", 'a.map(f).write("q.zarr")\n')
    np.testing.assert_array_equal(e.eval('zarr("q.zarr")'), a + 1)
    assert "chunk" in capsys.readouterr().err


def test_preview_is_shown_inline(shell, tmp_path, monkeypatch):
    from unittest import mock

    monkeypatch.chdir(tmp_path)
    shell.user_ns["a"] = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    with mock.patch("IPython.display.display") as shown:
        cell(shell, "-i a", 'a.preview("p.png")\n')
    images = [c.args[0] for c in shown.call_args_list]
    assert len(images) == 1 and images[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert images[0].data == (tmp_path / "p.png").read_bytes()
