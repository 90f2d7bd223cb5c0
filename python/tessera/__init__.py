"""Tessera from Python: run array scripts over NumPy arrays, zarr arrays and Zarr stores.

    import numpy as np, tessera
    a = np.random.rand(4096, 4096).astype(np.float32)
    smooth = tessera.eval("x.gaussian(2.0)", x=a)          # a NumPy array
    tessera.run("x.gaussian(2.0).write('s.zarr')", x=a)   # streams to storage
    tessera.check("let y = x * 2", x=a)                    # {'x': 'f32[...]', 'y': ...}

Named inputs are NumPy arrays (read in place, without a copy; `tessera.chunked(a, chunks)`
chooses their chunks), zarr-python arrays of a local store, or paths. Every script is
checked before anything runs; a refused or failing script raises `TesseraError`.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._tessera import EngineCore, Input, TesseraError, numpy_input

__all__ = [
    "Engine",
    "RunReport",
    "TesseraError",
    "TesseraWarning",
    "check",
    "chunked",
    "eval",
    "run",
]


class TesseraWarning(UserWarning):
    """A warning from checking a script (its rendered diagnostic is the message)."""


@dataclass
class RunReport:
    """What a run did: lines printed, chunk tasks computed and skipped, outputs written."""

    printed: list[str] = field(default_factory=list)
    tasks: int = 0
    skipped: int = 0
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Chunked:
    """A NumPy array with the chunk shape Tessera should read it by."""

    array: np.ndarray
    chunks: tuple[int, ...]


def chunked(array: np.ndarray, chunks: int | tuple[int, ...]) -> Chunked:
    """Pass `array` read through chunks of this shape (one int: the same on every axis)."""
    if isinstance(chunks, int):
        chunks = (chunks,)
    return Chunked(array, tuple(int(c) for c in chunks))


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*$", re.IGNORECASE)


def _memory(memory: int | str | None) -> int | None:
    """A memory limit in bytes from an int or a size such as '2GiB' or '500MB'."""
    if memory is None:
        return None
    if isinstance(memory, int):
        if memory <= 0:
            raise ValueError(f"memory={memory!r}: expected a positive number of bytes")
        return memory
    m = _SIZE.match(str(memory))
    if not m:
        raise ValueError(f"memory={memory!r}: expected a size such as '2GiB' or '500MB'")
    number, letter, binary = float(m.group(1)), m.group(2).upper(), m.group(3)
    power = "KMGT".index(letter) + 1 if letter else 0
    return int(number * (1024 if binary else 1000) ** power)


def _zarr_path(name: str, value: Any) -> str | None:
    """The local store path of a zarr-python array, or None when `value` is not one."""
    module = type(value).__module__ or ""
    if not module.startswith("zarr"):
        return None
    store = getattr(value, "store", None)
    root = getattr(store, "root", None)
    if root is None:
        raise TypeError(
            f"input `{name}`: only zarr arrays in a local directory store can be read "
            f"(this one is in {type(store).__name__}); pass a NumPy array or a path"
        )
    inner = (getattr(value, "path", "") or "").strip("/")
    return os.path.join(os.fspath(root), inner) if inner else os.fspath(root)


def _input(name: str, value: Any) -> Input | str:
    chunks = None
    if isinstance(value, Chunked):
        value, chunks = value.array, list(value.chunks)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OUSVMm":
            raise TypeError(
                f"input `{name}`: Tessera cannot read arrays of dtype {value.dtype} "
                "(numbers and bool only)"
            )
        return numpy_input(name, value, chunks)
    if chunks is not None:
        raise TypeError(f"input `{name}`: chunked() takes a NumPy array")
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    path = _zarr_path(name, value)
    if path is not None:
        return path
    if callable(value):
        raise TypeError(
            f"input `{name}`: Python functions cannot be passed directly yet; "
            "call them from the script with python('module.py:function')"
        )
    raise TypeError(
        f"input `{name}`: expected a NumPy array, a zarr array or a path, "
        f"not {type(value).__name__}"
    )


def _inputs(src: str, inputs: dict[str, Any]) -> list[tuple[str, Input | str]]:
    out = []
    for name, value in inputs.items():
        if not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", src):
            warnings.warn(
                f"the input `{name}` is not used by the script", TesseraWarning, stacklevel=3
            )
        out.append((name, _input(name, value)))
    return out


def _source(script_or_path: str | os.PathLike) -> tuple[str, str]:
    """(name, text) of a script given as text or as the path of a `.tsr` file."""
    if isinstance(script_or_path, os.PathLike) or (
        isinstance(script_or_path, str)
        and "\n" not in script_or_path
        and script_or_path.endswith(".tsr")
        and os.path.isfile(script_or_path)
    ):
        path = os.fspath(script_or_path)
        with open(path, encoding="utf-8") as f:
            return path, f.read()
    return "<script>", str(script_or_path)


def _emit(rep: dict) -> RunReport:
    for w in rep["warnings"]:
        warnings.warn(w, TesseraWarning, stacklevel=3)
    for line in rep["printed"]:
        print(line, file=sys.stdout)
    return RunReport(**rep)


class Engine:
    """A session whose bindings persist between calls, as in the REPL.

    >>> e = tessera.Engine()
    >>> e.eval("let y = x * 2", x=np.arange(4))
    >>> e.eval("y.sum()")
    12
    """

    def __init__(self, workers: int | None = None, memory: int | str | None = None):
        self._core = EngineCore()
        self._workers = workers
        self._memory = _memory(memory)
        # Arrays bound in the session stay alive as long as the engine may read them.
        self._keep: list[Any] = []

    def bind(self, **inputs: Any) -> None:
        """Bind each name to an input (a NumPy array, a zarr array or a path)."""
        for name, value in inputs.items():
            self._core.bind(name, _input(name, value))
            self._keep.append(value)

    def eval(self, src: str, **inputs: Any) -> Any:
        """Evaluate an entry (after binding `inputs`): the value of its final expression,
        arrays as NumPy arrays; None when it ends with a statement."""
        self.bind(**inputs)
        value, rep = self._core.eval(src, self._workers, self._memory)
        _emit(rep)
        return value

    def run(self, src: str, **inputs: Any) -> RunReport:
        """Evaluate an entry for its effects (writes, prints) and return the report."""
        self.bind(**inputs)
        _, rep = self._core.eval(src, self._workers, self._memory)
        return _emit(rep)


def run(
    script_or_path: str | os.PathLike,
    workers: int | None = None,
    memory: int | str | None = None,
    resume: bool = False,
    **inputs: Any,
) -> RunReport:
    """Check, plan and run a script (text or a `.tsr` path) with named inputs, within a
    memory limit (default: 60 % of the memory available); `resume=True` computes only the
    chunks an interrupted run of the same script left unfinished."""
    name, src = _source(script_or_path)
    ins = _inputs(src, inputs)
    rep = EngineCore().run_script(name, src, ins, workers, _memory(memory), resume)
    return _emit(rep)


def eval(expr_or_script: str, **inputs: Any) -> Any:  # noqa: A001 - the API's name
    """The value of an expression (or of a script's final expression) over named inputs:
    NumPy arrays for arrays, Python values for scalars."""
    name, src = _source(expr_or_script)
    ins = _inputs(src, inputs)
    core = EngineCore()
    for n, i in ins:
        core.bind(n, i)
    value, rep = core.eval(src, None, None)
    _emit(rep)
    return value


def check(script_or_path: str | os.PathLike, **inputs: Any) -> dict[str, str]:
    """Check a script without running it: each top-level binding (inputs first) with its
    type, e.g. {'x': 'f32[512, 512] chunks [512, 512]'}. Errors raise TesseraError."""
    name, src = _source(script_or_path)
    ins = _inputs(src, inputs)
    bindings, warns = EngineCore().check_script(name, src, ins)
    for w in warns:
        warnings.warn(w, TesseraWarning, stacklevel=2)
    return dict(bindings)
