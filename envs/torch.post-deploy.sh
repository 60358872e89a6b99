#!/usr/bin/env bash
# Install the in-repo nucflow package into the freshly created env (dependencies come from conda).
set -euo pipefail
python -m pip install --no-deps --no-build-isolation .
