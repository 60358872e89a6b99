#!/usr/bin/env bash
# Snakemake runs this inside the env right after creating it, from the directory it was launched
# in (the repository root; else set NUCFLOW_SRC to the repository). It installs the in-repo
# nucflow package: --no-deps because the env file holds every dependency, --no-build-isolation
# so the build uses the env's pinned setuptools and needs no network.
set -euo pipefail
src="${NUCFLOW_SRC:-$PWD}"
if ! grep -qs '^name = "nucflow"' "$src/pyproject.toml"; then
    echo "post-deploy: $src is not the nucflow repository; launch Snakemake from its root or" \
        "set NUCFLOW_SRC to it" >&2
    exit 1
fi
python -m pip install --no-deps --no-build-isolation --no-input --quiet "$src"
python -c "import nucflow"
