#!/usr/bin/env bash
# Stops the Kueue that hack/kueue/up.sh started (its files go with .cluster/).
set -euo pipefail
pid_file="$(cd "$(dirname "$0")/../.." && pwd)/.cluster/kueue/pid"
[[ -f $pid_file ]] || exit 0
pid=$(cat "$pid_file")
kill "$pid" 2>/dev/null || exit 0
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
kill -KILL "$pid" 2>/dev/null || true
