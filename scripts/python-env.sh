#!/usr/bin/env bash
# python-env.sh — create (or reuse) the Python environment that Tessera's oracle tests
# (tests/python_oracle.rs) and the benchmark (bench/run.sh) compare against.
#
#   scripts/python-env.sh            # venv at $TESSERA_VENV, default <repo>/.venv
#   TESSERA_VENV=/tmp/tv scripts/python-env.sh
#
# Installs pinned versions of numpy / scipy / zarr / numcodecs (the oracle that
# tests/oracle/generate.py runs to make the test fixtures), moto's S3 server + boto3
# (scripts/s3-local.sh, tests/remote.rs), HyperQueue's Python API (the engine behind
# `--executor hyperqueue`, started on loopback by scripts/hq-local.sh), and maturin and
# pytest for the Python package (python/), and ome-zarr, ngff-zarr and anndata (the
# OME-Zarr oracle) with pip from PyPI.
# Idempotent: when the venv already holds exactly
# these pins (recorded in a marker file) it only verifies the imports and exits.
# The last line on stdout is always the venv's python executable; progress goes to stderr.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TESSERA_VENV:-$repo_root/.venv}"

# Pins: versions published on PyPI with wheels for CPython 3.11 on x86-64 Linux.
pins=(
    "numpy==2.4.6"
    "scipy==1.17.1"
    "zarr==3.1.6"
    "numcodecs==0.16.6"
    "dask[array]==2026.8.0"
    "dask-image==2026.5.0"
    "scikit-image==0.26.0"
    "tifffile==2026.3.3"
    "moto[server]==5.2.1"
    "boto3==1.43.11"
    # HyperQueue's Python API (server, workers and client in one wheel) for --executor hyperqueue
    "hyperqueue==0.27.0"
    "cloudpickle==3.1.2"
    "tqdm==4.70.1"
    # builds the Python package (python/) into this venv, and runs its tests (python/tests)
    "maturin==1.16.0"
    "pytest==9.0.3"
    # OME-Zarr (NGFF) readers and writers and AnnData tables, the oracle of tests/ome_zarr.rs
    "ome-zarr==0.18.0"
    "ngff-zarr==0.50.0"
    "anndata==0.12.19"
    # notebooks: the %%tessera cell magic, regionprops .to_pandas(), examples/notebook.ipynb run headless
    "ipython==9.18.1"
    "ipykernel==7.4.0"
    "nbclient==0.11.0"
    "nbformat==5.11.1"
    "pandas==2.3.3"
)
marker="$venv/.tessera-pins"
pins_text="$(printf '%s\n' "${pins[@]}")"

log() { printf 'python-env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

host_python="${PYTHON:-python3}"
command -v "$host_python" >/dev/null 2>&1 || die "no $host_python on PATH (Python 3.11+ is needed)"

py="$venv/bin/python"

imports_ok() {
    "$py" - <<'EOF' >/dev/null 2>&1
import numpy, scipy, zarr, numcodecs, dask.array, dask_image.ndfilters, skimage.measure, tifffile
import boto3, moto.server
from hyperqueue.cluster import LocalCluster
import pytest, maturin
import ome_zarr.writer, ngff_zarr, anndata
assert int(zarr.__version__.split(".")[0]) >= 3
EOF
}

# Fast path: marker matches the pins and everything imports.
if [[ -x "$py" && -f "$marker" ]] && [[ "$(cat "$marker")" == "$pins_text" ]] && imports_ok; then
    log "up to date: $venv"
    printf '%s\n' "$py"
    exit 0
fi

make_venv() {
    if "$host_python" -m venv "$venv" >&2 2>/dev/null; then
        return 0
    fi
    # A half-made venv (e.g. Debian's python3 without ensurepip) must not be reused.
    rm -rf "$venv"
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
        log "the venv module is missing; installing python3-venv with apt-get (running as root)"
        apt-get install -y python3-venv >&2 || { apt-get update >&2 && apt-get install -y python3-venv >&2; } || true
        if "$host_python" -m venv "$venv" >&2; then
            return 0
        fi
        rm -rf "$venv"
    fi
    log "falling back to virtualenv (pip install --user virtualenv)"
    "$host_python" -m pip install --user --quiet virtualenv >&2 \
        || die "could not create a virtualenv: neither 'python3 -m venv' nor virtualenv works"
    "$host_python" -m virtualenv "$venv" >&2 || die "virtualenv failed to create $venv"
}

if [[ ! -x "$py" ]]; then
    log "creating virtualenv at $venv"
    make_venv
fi
[[ -x "$py" ]] || die "no python at $py after creating the venv"

log "installing ${pins[*]}"
"$py" -m pip install --disable-pip-version-check --quiet "${pins[@]}" >&2 \
    || die "pip install failed (is PyPI reachable?)"
imports_ok || die "packages installed but 'import numpy, scipy, zarr, dask_image, skimage' fails in $py"
printf '%s\n' "$pins_text" >"$marker"
log "ready: $venv"
printf '%s\n' "$py"
