#!/usr/bin/env bash
# Refreshes requirements/image.lock (and build.lock, the pinned setuptools/wheel that
# build the project's own wheel), image.lock being every package the image installs (the runtime
# dependencies of setup.py, transitively), pinned to one version with the sha256 of each
# of its files on PyPI.  scripts/build-image.sh installs them with `pip install
# --require-hashes`, so the image holds exactly these files.  Run it after changing
# install_requires, or to take newer releases (then rebuild and run tests/image).
#
#   bash scripts/lock-image.sh
#
# pip-tools runs in a throwaway venv: nothing is installed into the project's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check 'pip-tools>=7.4'
mkdir -p requirements
# Resolved for the image's interpreter: CPython 3.11 on Linux (Debian bookworm's python3).
CUSTOM_COMPILE_COMMAND="bash scripts/lock-image.sh" "$tmp/venv/bin/pip-compile" \
  --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --output-file requirements/image.lock setup.py
# The build backend that makes the project's wheel (in a venv of the build, not the image).
CUSTOM_COMPILE_COMMAND="bash scripts/lock-image.sh" "$tmp/venv/bin/pip-compile" \
  --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --output-file requirements/build.lock requirements/build.in
echo "lock: requirements/image.lock ($(grep -c '^[a-z0-9]' requirements/image.lock) packages)"
