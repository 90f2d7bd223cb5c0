"""examples/notebook.ipynb runs headless (nbclient) and its outputs equal SciPy's answers."""

import os
import shutil
import sys

import nbformat
import numpy as np
import scipy.ndimage as ndi
import zarr
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOK = os.path.join(HERE, "..", "..", "examples", "notebook.ipynb")


def text_of(cell):
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(o["text"])
        elif "data" in o:
            out.append(o["data"].get("text/plain", ""))
    return "".join(out)


def html_of(cell):
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.get("outputs", []))


def expected():
    """The notebook's image and workflow, computed with NumPy and SciPy."""
    rng = np.random.default_rng(16)
    img = np.zeros((256, 256), dtype=np.float32)
    for y, x in rng.integers(16, 240, size=(12, 2)):
        img[y - 6 : y + 6, x - 6 : x + 6] = 1.0
    img += rng.normal(0, 0.05, img.shape).astype(np.float32)
    smooth = ndi.gaussian_filter(img, 2.0, mode="reflect", truncate=4.0)
    labels, n = ndi.label(smooth > 0.5)
    return smooth, labels, n


def test_notebook_runs_headless_with_the_right_outputs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel is this interpreter (the venv the package is installed in).
    from ipykernel.kernelspec import install

    kdir = tmp_path / "kernels"
    install(prefix=str(kdir), kernel_name="python3")
    os.environ["JUPYTER_PATH"] = str(kdir / "share" / "jupyter")
    spec = kdir / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    assert spec.exists() and sys.executable
    work = tmp_path / "run"
    work.mkdir()
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    client.execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]
    smooth, labels, n = expected()

    # The lazy array's rich display: the Rust summary and the chunk grid picture.
    lazy = html_of(cells[1])
    assert "array f32[256, 256]" in lazy and "<svg" in lazy
    assert "16 chunks" in lazy and "grid [4, 4]" in lazy and "tasks" in lazy

    assert f"regions: {n}" in text_of(cells[3])
    assert f"total area: {int((labels > 0).sum())}" in text_of(cells[5])
    assert "centroid-0" in text_of(cells[5])

    assert "written: (256, 256) float32" in text_of(cells[7])
    written = zarr.open_array(str(work / "smooth.zarr"), mode="r")[:]
    np.testing.assert_allclose(written, smooth, rtol=1e-5, atol=1e-6)
    shutil.rmtree(work)
