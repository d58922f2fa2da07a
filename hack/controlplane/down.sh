#!/usr/bin/env bash
# `make cluster-down`: stop the local control plane and remove every file of it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state="$root/.cluster"
if [[ -d "$state/kwok" ]]; then
  bin=$("$here/build.sh")
  PATH="$bin:$PATH" KWOK_WORKDIR="$state/kwok" \
    kwokctl delete cluster --name kabin --kubeconfig "$state/kubeconfig" >&2 || true
fi
rm -rf "$state"
