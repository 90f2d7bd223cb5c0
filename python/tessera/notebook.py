"""Tessera in Jupyter: the `%%tessera` cell magic and rich display of lazy arrays.

    %load_ext tessera

    %%tessera -i a
    let smooth = x.gaussian(2.0)
    smooth                      # a lazy array: its summary and chunk grid, nothing computed

    %%tessera -o total
    smooth.sum()                # computed; `total` is now a NumPy value in Python

One `Engine` per kernel session keeps bindings between cells, as the REPL does.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import time
from typing import Any

import numpy as np

# Largest number of chunk lines drawn per axis; finer grids are drawn as this many.
_MAX_LINES = 24
_SIZE = 120
_PREVIEW = re.compile(r"""\.preview\(\s*["']([^"']+\.png)["']""", re.IGNORECASE)


class LazyArray:
    """An array a cell left uncomputed: the REPL's summary (shape, dtype, chunks, bytes,
    tasks) and, in Jupyter, a picture of its chunk grid. `compute()` (or `np.asarray`)
    computes its elements in the session that made it."""

    def __init__(self, engine: Any, info: dict):
        self._engine = engine
        self.name: str = info["lazy"]
        self.summary: str = info["summary"].rstrip("\n")
        self.dtype = np.dtype(info["dtype"])
        self.shape: tuple[int, ...] = tuple(info["shape"])
        self.chunks: tuple[int, ...] = tuple(info["chunks"])

    def compute(self) -> np.ndarray:
        return self._engine.eval(self.name)

    def __array__(self, dtype=None, copy=None):
        a = self.compute()
        return a.astype(dtype) if dtype is not None else a

    def __repr__(self) -> str:
        return self.summary

    def _repr_html_(self) -> str:
        return (
            '<div style="display:flex;gap:1.5em;align-items:flex-start">'
            f"<pre style='margin:0'>{html.escape(self.summary)}</pre>"
            f"{chunk_grid_svg(self.shape, self.chunks)}</div>"
        )


def _lines(n: int, c: int) -> list[float]:
    """Fractions (0..1) of an axis of length n where its chunk boundaries fall."""
    k = -(-n // c) if c > 0 else 1
    if k > _MAX_LINES:
        return [i / _MAX_LINES for i in range(_MAX_LINES + 1)]
    return [min(i * c, n) / n for i in range(k)] + [1.0]


def chunk_grid_svg(shape: tuple[int, ...], chunks: tuple[int, ...]) -> str:
    """An SVG of the chunk grid over the last two axes (one row for a 1-D array); the
    longer axis spans the full size, the other in proportion (at least a sliver)."""
    if not shape or any(n == 0 for n in shape):
        return ""
    if len(shape) == 1:
        rows, cols = (1, 1), (shape[0], chunks[0])
    else:
        rows, cols = (shape[-2], chunks[-2]), (shape[-1], chunks[-1])
    longest = max(rows[0], cols[0])
    h = max(_SIZE * rows[0] / longest, 12) if len(shape) > 1 else 12
    w = max(_SIZE * cols[0] / longest, 12)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 4:.0f}" height="{h + 4:.0f}" '
        f'class="tessera-chunks">',
        f'<rect x="2" y="2" width="{w:.1f}" height="{h:.1f}" '
        'style="fill:#ecb172a0;stroke:none"/>',
    ]
    for f in _lines(*cols):
        x = 2 + f * w
        parts.append(f'<line x1="{x:.1f}" y1="2" x2="{x:.1f}" y2="{h + 2:.1f}" stroke="black"/>')
    row_lines = _lines(*rows) if len(shape) > 1 else [0.0, 1.0]
    for f in row_lines:
        y = 2 + f * h
        parts.append(f'<line x1="2" y1="{y:.1f}" x2="{w + 2:.1f}" y2="{y:.1f}" stroke="black"/>')
    parts.append("</svg>")
    return "".join(parts)


def _parse(line: str) -> tuple[list[str], str | None, int | None]:
    """(-i names, -o name, -w workers) of a `%%tessera` line."""
    inputs: list[str] = []
    out = None
    workers = None
    words = shlex.split(line)
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("-i", "--input", "-o", "--output", "-w", "--workers"):
            if i + 1 >= len(words):
                raise ValueError(f"%%tessera: {w} needs a value")
            v = words[i + 1]
            if w in ("-i", "--input"):
                inputs.extend(n for n in v.split(",") if n)
            elif w in ("-o", "--output"):
                out = v
            else:
                workers = int(v)
            i += 2
        else:
            raise ValueError(
                f"%%tessera: unknown option {w!r} (use -i NAME[,NAME], -o NAME, -w WORKERS)"
            )
    return inputs, out, workers


class _Bar:
    """A notebook progress bar (tqdm.auto) for runs longer than half a second."""

    DELAY = 0.5

    def __init__(self):
        import time

        self._clock = time.monotonic
        self._t0 = self._clock()
        self.bar = None

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            if self._clock() - self._t0 < self.DELAY:
                return
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="chunk", desc="tessera")
        if self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Session:
    """The engine of one IPython kernel session."""

    def __init__(self, shell: Any):
        from . import Engine

        self.shell = shell
        self.engine = Engine()
        self.cells = 0

    def cell(self, line: str, cell: str) -> Any:
        from IPython.display import Image, display

        inputs, out, workers = _parse(line)
        missing = [n for n in inputs if n not in self.shell.user_ns]
        if missing:
            raise NameError(f"%%tessera -i: no Python variable named {', '.join(missing)}")
        if inputs:
            self.engine.bind(**{n: self.shell.user_ns[n] for n in inputs})
        self.cells += 1
        saved = self.engine._workers
        if workers is not None:
            self.engine._workers = workers
        started = time.time()
        bar = _Bar()
        self.engine.set_progress(bar.update)
        try:
            value = self.engine.show(cell, bind_as=f"_cell{self.cells}")
            if out is not None:
                if isinstance(value, LazyArray):
                    value = value.compute()
                elif isinstance(value, Table):
                    value = value.to_pandas()
                elif value is None:
                    value = self.engine.eval(out)
                self.shell.user_ns[out] = value
        finally:
            self.engine.set_progress(None)
            bar.close()
            self.engine._workers = saved
        # `preview("p.png")` calls the cell made: their images, inline.
        for path in _PREVIEW.findall(cell):
            if os.path.isfile(path) and os.path.getmtime(path) >= started - 1:
                display(Image(filename=path))
        return None if out is not None else value


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tessera`: register the `%%tessera` cell magic."""
    session: dict[str, _Session] = {}

    def tessera(line: str, cell: str) -> Any:
        if "s" not in session:
            session["s"] = _Session(ipython)
        return session["s"].cell(line, cell)

    tessera.__doc__ = (
        "%%tessera [-i NAME[,NAME]] [-o NAME] [-w WORKERS]: run the cell as Tessera in this "
        "kernel's session. -i binds Python variables (NumPy arrays, zarr arrays, paths); "
        "-o stores the cell's final value (computed) or the Tessera binding NAME in Python."
    )
    ipython.register_magic_function(tessera, magic_kind="cell", magic_name="tessera")


class Table:
    """A `regionprops` table a cell left uncomputed; `to_pandas()` computes it."""

    def __init__(self, engine: Any, info: dict):
        self._engine = engine
        self.name: str = info["table"]
        self.label: str = info["label"]

    def to_pandas(self):
        """The table as a pandas DataFrame (one row per label, as `write_csv` writes)."""
        import tempfile

        import pandas as pd

        with tempfile.TemporaryDirectory(prefix="tessera-table-") as d:
            path = os.path.join(d, "table.csv")
            self._engine.run(f"{self.name}.write_csv({json.dumps(path)})")
            return pd.read_csv(path)

    def __repr__(self) -> str:
        return f"<table {self.label}> (lazy: .to_pandas() computes it)"
