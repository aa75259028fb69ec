#!/usr/bin/env bash
# The whole test suite, set-up included: `bash scripts/test.sh [pytest args]`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/python.sh  # the Python setup.sh installed into
export HELM_CACHE_HOME="$PWD/.cache/helm/cache" HELM_CONFIG_HOME="$PWD/.cache/helm/config" HELM_DATA_HOME="$PWD/.cache/helm/data"
set +e
"$PYTHON" -m pytest -q -ra "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "no test ran: failing"; exit 1; fi
exit "$rc"
