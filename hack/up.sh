#!/usr/bin/env bash
# `make up`: the main job on the local control plane. Starts the cluster, installs
# the CRDs and user roles, runs the operator (which serves and registers its
# admission webhooks), applies the examples through those webhooks, and keeps the
# operator in the foreground until Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export KUBECONFIG="$root/.cluster/kubeconfig"
export PATH="$(hack/controlplane/build.sh):$PATH"
hack/controlplane/up.sh >/dev/null

kubectl apply --server-side -k crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s \
  crd/sessions.kabin.dev crd/drives.kabin.dev crd/environmentconfigs.kabin.dev >/dev/null
kubectl apply --server-side -f manifests/rbac/users.yaml >/dev/null

.venv/bin/kabin operator "$@" &
operator=$!
trap 'kill -TERM $operator 2>/dev/null; wait $operator' INT TERM EXIT

# Examples go through admission (users stamped, environments checked): wait for it.
for _ in $(seq 150); do
  hooks=$(kubectl get mutatingwebhookconfiguration webhooks.kabin.dev \
    -o jsonpath='{.webhooks[*].name}' 2>/dev/null || true)
  [[ -n "$hooks" ]] && break
  sleep 0.2
done
kubectl apply --server-side -f examples/

cat <<MSG

kabin is running: the operator is in the foreground (Ctrl-C stops it). In another shell:
  export KUBECONFIG=$KUBECONFIG
  kubectl get kabin -A --watch
  kubectl describe session my-notebook
MSG
wait $operator
