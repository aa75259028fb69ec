#!/usr/bin/env bash
# The whole test suite, set-up included: `bash scripts/test.sh [pytest args]`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HELM_CACHE_HOME="$PWD/.cache/helm/cache" HELM_CONFIG_HOME="$PWD/.cache/helm/config" HELM_DATA_HOME="$PWD/.cache/helm/data"
set +e
python3 -m pytest -q -ra "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "no test ran: failing"; exit 1; fi
exit "$rc"
