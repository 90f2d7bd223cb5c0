"""Python callables passed directly as inputs (`tessera.run(s, f=fn)`), against dask
running the same function; 1 and 2 workers byte-identical."""

import threading

import dask.array as da
import numpy as np
import pytest
import zarr

import tessera


def scaled_log(block):
    return np.log1p(np.abs(block) * 3.0).astype(np.float32)


def tile_sum(block):
    return np.array([[block.sum(dtype=np.float64)]])


@pytest.fixture()
def image():
    return np.random.default_rng(3).normal(size=(120, 90)).astype(np.float32)


def test_map_with_a_callable_equals_dask(image):
    a = tessera.chunked(image, (40, 30))
    got = tessera.eval("x.map(f)", x=a, f=scaled_log)
    want = da.from_array(image, chunks=(40, 30)).map_blocks(scaled_log).compute()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_lambda_with_a_closure_in_an_engine(image):
    k = 0.25
    e = tessera.Engine()
    got = e.eval("x.map(g)", x=tessera.chunked(image, (60, 45)), g=lambda b: b * np.float32(k))
    np.testing.assert_array_equal(got, image * np.float32(k))


def test_map_blocks_with_a_callable_1_and_2_workers_identical(image, tmp_path):
    script = (
        "x.map_blocks(f, chunks=[1, 1], dtype=\"float64\").write(out)\n"
    )
    want = (
        da.from_array(image, chunks=(40, 30))
        .map_blocks(tile_sum, chunks=(1, 1), dtype=np.float64)
        .compute()
    )
    outs = []
    for w in (1, 2):
        p = tmp_path / f"w{w}.zarr"
        src = script.replace("out", repr(str(p)).replace("'", '"'))
        tessera.run(src, workers=w, x=tessera.chunked(image, (40, 30)), f=tile_sum)
        outs.append(zarr.open_array(str(p), mode="r")[:])
    np.testing.assert_array_equal(outs[0], want)
    assert outs[0].tobytes() == outs[1].tobytes()


def test_unpicklable_callable_is_a_type_error_naming_the_input(image):
    lock = threading.Lock()

    def holds_lock(b):
        with lock:
            return b

    with pytest.raises(TypeError, match="input `f`: the function cannot be pickled"):
        tessera.eval("x.map(f)", x=image, f=holds_lock)
