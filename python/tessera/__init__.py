"""Tessera from Python: run array scripts over NumPy arrays, zarr arrays and Zarr stores.

    import numpy as np, tessera
    a = np.random.rand(4096, 4096).astype(np.float32)
    smooth = tessera.eval("x.map(gaussian(2.0))", x=a)     # a NumPy array
    tessera.run("x.map(gaussian(2.0)).write('s.zarr')", x=a)  # streams to storage
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

from ._tessera import EngineCore, Input, TesseraError, numpy_input, python_input

# Block functions (`python("f.py:f")`, callables passed as inputs) run in worker
# processes of this same interpreter, where NumPy and cloudpickle are installed.
os.environ.setdefault("TESSERA_PYTHON", sys.executable)

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


_FUNCTIONS_DIR: str | None = None


def _own_module(module: Any) -> bool:
    """Whether `module` is a file outside the standard library and installed packages."""
    import sysconfig

    path = getattr(module, "__file__", None)
    if not path:
        return False
    path = os.path.realpath(path)
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return not any(path.startswith(os.path.realpath(r) + os.sep) for r in roots)


def _callable_module(name: str, fn: Any) -> str:
    """Save `fn` with cloudpickle beside a module file that loads it, for the worker
    processes that run block functions; the `file.py:func` spec of that module."""
    global _FUNCTIONS_DIR
    import tempfile
    import uuid

    import cloudpickle

    # Functions of the user's own modules (a script, a test, a notebook's helpers) travel
    # by value: the worker processes may not be able to import those modules.
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    by_value = module is not None and module.__name__ != "__main__" and _own_module(module)
    try:
        if by_value:
            cloudpickle.register_pickle_by_value(module)
        try:
            data = cloudpickle.dumps(fn)
        finally:
            if by_value:
                cloudpickle.unregister_pickle_by_value(module)
    except Exception as e:  # pickling raises many kinds (TypeError, PicklingError, ...)
        raise TypeError(
            f"input `{name}`: the function cannot be pickled for Tessera's worker "
            f"processes ({type(e).__name__}: {e}); define it at the top level of a module "
            "or notebook cell, without open files, locks or sockets in its closure"
        ) from e
    if _FUNCTIONS_DIR is None:
        import atexit
        import shutil

        _FUNCTIONS_DIR = tempfile.mkdtemp(prefix="tessera-functions-")
        atexit.register(shutil.rmtree, _FUNCTIONS_DIR, True)
    stem = f"tessera_fn_{name}_{uuid.uuid4().hex[:12]}"
    with open(os.path.join(_FUNCTIONS_DIR, stem + ".pkl"), "wb") as f:
        f.write(data)
    with open(os.path.join(_FUNCTIONS_DIR, stem + ".py"), "w", encoding="utf-8") as f:
        f.write(
            f"# The callable passed to Tessera as `{name}`, loaded from its pickle.\n"
            "import os as _os\nimport cloudpickle as _cp\n"
            "with open(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "
            f"{stem + '.pkl'!r}), 'rb') as _f:\n"
            f"    {name} = _cp.load(_f)\n"
        )
    return f"{os.path.join(_FUNCTIONS_DIR, stem + '.py')}:{name}"


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
        return python_input(_callable_module(name, value))
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
        # What the last call wrote (paths), e.g. for showing a `preview` PNG.
        self.last_outputs: list[str] = []

    def set_progress(self, progress: Any = None) -> None:
        """Call `progress(done, total)` (chunks of the run) every few milliseconds while
        later calls run, whenever the count changed; None stops it."""
        self._core.set_progress(progress)

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
        self.last_outputs = _emit(rep).outputs
        return value

    def show(self, src: str, bind_as: str = "_shown", **inputs: Any) -> Any:
        """As `eval`, but a final array expression is left uncomputed: it is bound in the
        session as `bind_as` and returned as a `LazyArray` (the REPL's summary; a rich
        display in Jupyter; `.compute()` gives its elements)."""
        from .notebook import LazyArray, Table

        self.bind(**inputs)
        value, rep = self._core.show(src, bind_as, self._workers, self._memory)
        self.last_outputs = _emit(rep).outputs
        if isinstance(value, dict) and "lazy" in value:
            return LazyArray(self, value)
        if isinstance(value, dict) and "table" in value:
            return Table(self, value)
        return value

    def run(self, src: str, **inputs: Any) -> RunReport:
        """Evaluate an entry for its effects (writes, prints) and return the report."""
        self.bind(**inputs)
        _, rep = self._core.eval(src, self._workers, self._memory)
        r = _emit(rep)
        self.last_outputs = r.outputs
        return r


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


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tessera` registers the `%%tessera` cell magic (see tessera.notebook)."""
    from .notebook import load_ipython_extension as load

    load(ipython)
