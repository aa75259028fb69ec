#!/usr/bin/env bash
# Optional: compile the HTTP codec modules (and two small helpers) with mypyc, in place.
#
#   scripts/build-mypyc.sh            # build (needs mypy, which brings mypyc, and a C compiler)
#   scripts/build-mypyc.sh --clean    # remove the compiled modules: pure Python again
#   scripts/build-mypyc.sh --list     # the modules it compiles
#
# Python imports an extension module (*.so) before the .py beside it, so after a build the
# listed modules run compiled and everything else stays Python; the default install, the
# tests and CI never need this. A compiled module does not see later edits to its .py:
# run --clean (or build again) after changing one of the listed files.
#
# The list is what compiles and keeps the tests' behaviour (bench/README.md, "Per-core
# cost (issue 15)"): modules whose classes have no uncompiled base class and are never
# weakly referenced (a native class cannot be: telemetry/histogram.py stays Python). Compiling a
# class over a Python base (Twisted's Protocol, our Service, Body) is not safe with mypyc
# here: a native class over a Python base crashed the interpreter when freed with a weak
# reference to it, and Python subclasses of a compiled class are refused.
set -euo pipefail
cd "$(dirname "$0")/.."

MODULES=(
  l5d_twisted/http/reader.py
  l5d_twisted/http/codec.py
  l5d_twisted/http/exchange.py
  l5d_twisted/http/message.py
  l5d_twisted/http/timeouts.py
  l5d_twisted/http/hop.py
  l5d_twisted/telemetry/stats.py
  l5d_twisted/router/headers.py
)

clean() {
  for m in "${MODULES[@]}"; do
    rm -f "${m%.py}".cpython-*.so
  done
  rm -f ./*__mypyc.cpython-*.so
  rm -rf build/mypyc
}

case "${1:-}" in
  --clean)
    clean
    echo "removed the compiled modules"
    exit 0
    ;;
  --list)
    printf '%s\n' "${MODULES[@]}"
    exit 0
    ;;
  "") ;;
  *)
    echo "usage: $0 [--clean|--list]" >&2
    exit 2
    ;;
esac

command -v mypyc >/dev/null || { echo "mypyc not found: pip install mypy" >&2; exit 1; }
clean
# mypyc writes its C sources and objects under ./build; keep them apart from other builds
mkdir -p build/mypyc
MYPYC_OPT_LEVEL="${MYPYC_OPT_LEVEL:-3}" mypyc "${MODULES[@]}" >build/mypyc/build.log 2>&1 || {
  tail -30 build/mypyc/build.log >&2
  exit 1
}
python3 - "${MODULES[@]}" <<'EOF'
import importlib
import sys

for path in sys.argv[1:]:
    name = path[: -len(".py")].replace("/", ".")
    module = importlib.import_module(name)
    if not module.__file__ or not module.__file__.endswith(".so"):
        sys.exit(f"{name} did not load compiled: {module.__file__}")
print(f"compiled {len(sys.argv) - 1} modules (scripts/build-mypyc.sh --clean to undo)")
EOF
