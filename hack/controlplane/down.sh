#!/usr/bin/env bash
# `make cluster-down`: stop the local control plane and remove every file of it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state="$root/.cluster"
# The real node first: its teardown deletes the Node through the API server.
"$root/hack/node/down.sh" || true
"$root/hack/kueue/down.sh" || true
if [[ -d "$state/kwok" ]]; then
  bin=$("$here/build.sh")
  PATH="$bin:$PATH" KWOK_WORKDIR="$state/kwok" \
    kwokctl delete cluster --name kabin --kubeconfig "$state/kubeconfig" >/dev/null 2>&1 || true
fi
# kwokctl signals its processes without waiting for them; wait, then insist.
for _ in $(seq 50); do
  pgrep -f "$state/" >/dev/null || break
  sleep 0.2
done
pkill -KILL -f "$state/" 2>/dev/null || true
rm -rf "$state"
