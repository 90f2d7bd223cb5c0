#!/usr/bin/env bash
# Run every test, from a clean clone with nothing beside it:
#   1. scripts/python-env.sh makes (or reuses) the pinned numpy/scipy/zarr-python venv;
#   2. tests/oracle/generate.py writes the oracle fixtures into $TESSERA_FIXTURES
#      (default target/oracle-fixtures; does nothing when already up to date);
#   3. scripts/s3-local.sh starts (or reuses) the local S3 server (moto) for tests/remote.rs;
#   4. scripts/slurm-local.sh and scripts/hq-local.sh start the engines of the distributed tests
#      (tests/cluster.rs): a one-node Slurm and a HyperQueue server on loopback;
#   5. cargo test, with TESSERA_PYTHON and TESSERA_FIXTURES set for the tests;
#   6. the Python package (python/): `maturin develop` builds it into that venv, sharing
#      this target directory (so the root crate's compiled dependencies are reused), and
#      pytest runs python/tests.
# Without a working Python environment the command fails: no oracle test is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
die() {
    echo "test.sh: error: $*" >&2
    exit 1
}
py=$(bash scripts/python-env.sh | tail -n 1) \
    || die "no Python oracle environment: scripts/python-env.sh failed (it needs python3 >= 3.11 and PyPI, or TESSERA_VENV naming a ready venv); the oracle tests cannot run without it"
[[ -x "$py" ]] || die "scripts/python-env.sh named no runnable python (got '$py')"
export TESSERA_PYTHON="$py"
export TESSERA_FIXTURES="${TESSERA_FIXTURES:-$PWD/target/oracle-fixtures}"
"$py" tests/oracle/generate.py --out "$TESSERA_FIXTURES" \
    || die "tests/oracle/generate.py failed to write the oracle fixtures into $TESSERA_FIXTURES"
bash scripts/s3-local.sh >/dev/null \
    || die "scripts/s3-local.sh could not start the local S3 server (moto) that tests/remote.rs needs"
bash scripts/slurm-local.sh >/dev/null \
    || die "scripts/slurm-local.sh could not start Slurm for the distributed tests"
hq_dir=$(TESSERA_HQ_PYTHON="$py" bash scripts/hq-local.sh | tail -n 1) \
    || die "scripts/hq-local.sh could not start HyperQueue for the distributed tests"
export TESSERA_HQ_PYTHON="$py" HQ_SERVER_DIR="$hq_dir"
cargo test --all-targets "$@"
cargo test --doc
venv_dir=$(cd "$(dirname "$py")/.." && pwd)
[[ -x "$venv_dir/bin/maturin" ]] || die "no maturin in $venv_dir (scripts/python-env.sh installs it)"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" VIRTUAL_ENV="$venv_dir" \
    "$venv_dir/bin/maturin" develop --quiet --manifest-path python/Cargo.toml \
    || die "maturin could not build and install the Python package (python/) into $venv_dir"
"$py" -m pytest -q -p no:cacheprovider python/tests
