#!/usr/bin/env bash
# Installs UniversalSeg with its test extras into a fresh virtual environment, then lints and runs the tests.
#
# The environment is created anew on every run, from the project's own files only, so a package that happens
# to be installed on this machine cannot hide a dependency that pyproject.toml fails to declare.
#
#   bash scripts/test_fresh_venv.sh [PYTEST ARGS...]
#
# UNIVERSALSEG_TEST_VENV sets the environment's folder (default: .venv-fresh-test in the checkout; it is
# deleted and rebuilt each run, so never point it at an environment you use).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${UNIVERSALSEG_TEST_VENV:-.venv-fresh-test}"
python="${PYTHON:-python3}"

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet -e ".[test]"
"$venv/bin/python" -m ruff check .
"$venv/bin/python" -m pytest "$@"
