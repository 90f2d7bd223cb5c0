#!/usr/bin/env bash
# Run every test: sets up the Python oracle environment (numpy, scipy, zarr-python) in
# .venv so the interop and NumPy-parity tests run instead of skipping, then cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
if py=$(bash scripts/python-env.sh | tail -n 1) && [ -x "$py" ]; then
    export TESSERA_PYTHON="$py"
else
    echo "warning: no Python oracle environment; the Python-backed tests will be skipped" >&2
fi
cargo test --all-targets "$@"
cargo test --doc
