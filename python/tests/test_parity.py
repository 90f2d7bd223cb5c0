"""NumPy and SciPy parity for arrays passed in from Python, and the shapes of results."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import zarr

import tessera

RNG = np.random.default_rng(16)


def test_elementwise_matches_numpy():
    a = RNG.random((300, 200), dtype=np.float32)
    b = RNG.random((300, 200), dtype=np.float32)
    got = tessera.eval("sqrt(x) * 2 + y", x=tessera.chunked(a, (64, 48)), y=b)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.float32 and got.shape == a.shape
    np.testing.assert_allclose(got, np.sqrt(a) * 2 + b, rtol=1e-6)


def test_integer_promotion_matches_numpy():
    x = RNG.integers(0, 60000, size=5000, dtype=np.uint16)
    got = tessera.eval("(x * 7 + 3) % 1000", x=tessera.chunked(x, 700))
    want = (x * 7 + 3) % 1000
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_gaussian_matches_scipy():
    a = RNG.random((256, 192), dtype=np.float32) * 100
    got = tessera.eval("x.map(gaussian(2.5))", x=tessera.chunked(a, 64))
    want = ndi.gaussian_filter(a, 2.5)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "expr, reference",
    [
        ("x.sum()", lambda a: a.sum()),
        ("x.mean()", lambda a: a.mean()),
        ("x.max(axis=0)", lambda a: a.max(axis=0)),
        ("x.min(axis=1)", lambda a: a.min(axis=1)),
        ("x.sum(axis=1, keepdims=true)", lambda a: a.sum(axis=1, keepdims=True)),
    ],
)
def test_reductions_match_numpy(expr, reference):
    a = RNG.integers(-1000, 1000, size=(120, 90), dtype=np.int32)
    got = tessera.eval(expr, x=tessera.chunked(a, (50, 40)))
    want = reference(a)
    assert np.asarray(got).shape == np.asarray(want).shape
    assert np.asarray(got).dtype == np.asarray(want).dtype
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_reduction_is_a_numpy_scalar():
    a = np.arange(1000, dtype=np.int64)
    got = tessera.eval("x.sum()", x=a)
    assert isinstance(got, np.int64) and got == a.sum()


def test_label_matches_scipy():
    mask = ndi.binary_opening(RNG.random((200, 160)) > 0.55)
    got = tessera.eval("label(m)", m=tessera.chunked(mask, 48))
    want, n = ndi.label(mask)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)
    assert got.max() == n


def test_tuple_of_values():
    a = RNG.random(1000)
    lo, hi, n = tessera.eval("(x.min(), x.max(), 3)", x=a)
    assert lo == a.min() and hi == a.max() and n == 3


def test_scalars_and_statements():
    assert tessera.eval("1 + 2") == 3
    assert tessera.eval("let y = 2") is None
    assert tessera.eval('"a" + "b"') == "ab"


def test_zarr_array_and_path_inputs(tmp_path):
    a = RNG.random((64, 64), dtype=np.float32)
    z = zarr.create_array(store=str(tmp_path / "a.zarr"), shape=a.shape, chunks=(32, 32), dtype="float32")
    z[:] = a
    np.testing.assert_allclose(tessera.eval("z * 2", z=z), a * 2)
    np.testing.assert_allclose(tessera.eval("p + 1", p=str(tmp_path / "a.zarr")), a + 1)


def test_run_writes_output(tmp_path, capsys):
    a = RNG.random((100, 80), dtype=np.float32)
    out = tmp_path / "b.zarr"
    rep = tessera.run(f'(x * 3).write("{out}")\nprint(x.shape)', x=tessera.chunked(a, 32))
    assert rep.tasks > 0 and rep.printed == ["(100, 80)"]
    assert capsys.readouterr().out == "(100, 80)\n"
    np.testing.assert_allclose(zarr.open_array(str(out))[:], a * 3, rtol=1e-6)


def test_run_reads_a_script_file(tmp_path):
    script = tmp_path / "double.tsr"
    out = tmp_path / "d.zarr"
    script.write_text(f'(x * 2).write("{out}")\n')
    a = np.arange(10, dtype=np.int16)
    tessera.run(str(script), workers=1, memory="256MiB", x=a)
    np.testing.assert_array_equal(zarr.open_array(str(out))[:], a * 2)


def test_check_returns_types():
    a = np.zeros((40, 30), dtype=np.uint16)
    types = tessera.check("let y = x / 2\nlet n = 3", x=tessera.chunked(a, 20))
    assert types == {
        "x": "u16[40, 30] chunks [20, 20]",
        "y": "f64[40, 30] chunks [20, 20]",
        "n": "int = 3",
    }


def test_engine_keeps_bindings():
    e = tessera.Engine(workers=2)
    a = RNG.random((50, 50))
    assert e.eval("let y = x * 2", x=a) is None
    np.testing.assert_allclose(e.eval("y.sum()"), (a * 2).sum())
    # Binding the name again leaves what earlier entries read unchanged.
    e.eval("let z = y + 0", x=np.zeros((50, 50)))
    np.testing.assert_allclose(e.eval("z"), a * 2)
    np.testing.assert_array_equal(e.eval("x"), np.zeros((50, 50)))
