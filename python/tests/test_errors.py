"""Diagnostics raise TesseraError with the code and span; bad inputs raise TypeError."""

import warnings

import numpy as np
import pytest

import tessera


def test_unknown_name_has_code_and_span():
    src = "x + missing_name"
    with pytest.raises(tessera.TesseraError) as info:
        tessera.eval(src, x=np.ones(4))
    err = info.value
    assert err.code == "E0101"
    start, end = err.span
    assert src[start:end] == "missing_name"
    assert "missing_name" in str(err)
    assert "E0101" in err.rendered and "missing_name" in err.rendered


def test_type_error_before_running(tmp_path):
    out = tmp_path / "never.zarr"
    src = f'(x + "text").write("{out}")'
    with pytest.raises(tessera.TesseraError) as info:
        tessera.run(src, x=np.ones(4))
    assert info.value.code.startswith("E02")
    assert src[slice(*info.value.span)] in src
    assert not out.exists()


def test_check_raises_too():
    with pytest.raises(tessera.TesseraError) as info:
        tessera.check("let y = x[0, 0]", x=np.ones(4))
    assert info.value.code.startswith("E03") or info.value.code.startswith("E02")
    assert info.value.rendered


def test_missing_path_names_it():
    with pytest.raises(tessera.TesseraError) as info:
        tessera.eval("p + 1", p="/nonexistent/input.zarr")
    assert info.value.code == "E0401"
    assert "/nonexistent/input.zarr" in info.value.rendered
    assert info.value.source == "<input p>"


@pytest.mark.parametrize(
    "array, what",
    [
        (np.array(["a", "b"]), "dtype"),
        (np.array([object(), 1], dtype=object), "dtype"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "dtype"),
        (np.ones((4, 6))[:, ::2], "C-contiguous"),
        (np.ones(4, dtype=">f8"), "byte order"),
        (np.ones(4, dtype=np.float16), "dtype"),
    ],
)
def test_unsupported_arrays_name_the_input(array, what):
    with pytest.raises(TypeError) as info:
        tessera.eval("bad + 1", bad=array)
    assert "`bad`" in str(info.value) and what in str(info.value)


def test_unused_input_warns():
    with pytest.warns(tessera.TesseraWarning, match="`unused`"):
        assert tessera.eval("1 + 1", unused=np.ones(3)) == 2


def test_used_input_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tessera.eval("x.sum()", x=np.ones(3))


def test_resume_refuses_memory_inputs(tmp_path):
    with pytest.raises(tessera.TesseraError) as info:
        tessera.run(f'(x + 1).write("{tmp_path / "o.zarr"}")', resume=True, x=np.ones(8))
    assert info.value.code == "E0800"


def test_engine_survives_an_error():
    e = tessera.Engine()
    e.eval("let a = 2")
    with pytest.raises(tessera.TesseraError):
        e.eval("let b = a + nope")
    assert e.eval("a * 3") == 6
