#!/usr/bin/env bash
# `make up`: the main job on the local control plane. Starts the cluster, installs
# the CRDs and user roles, runs the operator (which serves and registers its
# admission webhooks) and the gateway (Skaha's REST API), signs the local user in,
# applies the examples in their namespace through those webhooks, and keeps both
# in the foreground until Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export KUBECONFIG="$root/.cluster/kubeconfig"
export PATH="$(hack/controlplane/build.sh):$PATH"
hack/controlplane/up.sh >/dev/null

kubectl apply --server-side -k crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s \
  crd/sessions.kabin.dev crd/drives.kabin.dev crd/environmentconfigs.kabin.dev >/dev/null
.venv/bin/python hack/chart.py --user-roles | kubectl apply --server-side -f - >/dev/null

# The local user signs in to the gateway with a token from kube-apiserver's static
# token file format, made once and kept in .cluster/.
user=${KABIN_USER:-$(id -un)}
tokens="$root/.cluster/gateway-tokens.csv"
if [[ ! -s "$tokens" ]] || ! grep -q ",$user,$user," "$tokens"; then
  echo "$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))'),$user,$user,\"kabin:users\"" >> "$tokens"
fi
token=$(grep ",$user,$user," "$tokens" | head -1 | cut -d, -f1)
port=${KABIN_GATEWAY_PORT:-8000}

# The operator serves the admission webhooks: one that crashes is started again at
# once, as a Deployment's restartPolicy would, so creates are refused only for moments.
(
  trap 'kill -TERM $child 2>/dev/null; wait $child; exit 0' INT TERM
  while true; do
    .venv/bin/kabin operator "$@" & child=$!
    wait $child && break
    echo "kabin operator exited ($?); starting it again" >&2
    sleep 1
  done
) &
operator=$!
KABIN_GATEWAY_PROVISION_NAMESPACES=true .venv/bin/kabin gateway --port "$port" --token-file "$tokens" &
gateway=$!
trap 'kill -TERM $operator $gateway 2>/dev/null; wait $operator $gateway' INT TERM EXIT

# Examples go through admission (users stamped, environments checked): wait for it.
for _ in $(seq 150); do
  hooks=$(kubectl get mutatingwebhookconfiguration webhooks.kabin.dev \
    -o jsonpath='{.webhooks[*].name}' 2>/dev/null || true)
  [[ -n "$hooks" ]] && break
  sleep 0.2
done
# The first request makes the user's namespace, locked down, with their RoleBinding to `kabin-user`.
for _ in $(seq 150); do
  curl -fsS -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port/skaha/v1/session" && break
  sleep 0.2
done
namespace=$(.venv/bin/python -c "from kabin.gateway.identity import namespace_of; print(namespace_of('$user', 'kabin-{user}'))")
kubectl apply --server-side $(printf -- '-f %s ' examples/envcfg-*.yaml)
kubectl apply --server-side --as "$user" --as-group kabin:users -n "$namespace" \
  $(printf -- '-f %s ' examples/drive-*.yaml examples/session-*.yaml)

cat <<MSG

kabin is running: the operator and the gateway are in the foreground (Ctrl-C stops them).
  Dashboard:   http://127.0.0.1:$port/   (the examples are your sessions there)
  Skaha's API: http://127.0.0.1:$port/skaha   (v0 and v1)
  Sign in as $user with the token: $token
    python: skaha.session.Session(server="http://127.0.0.1:$port/skaha", token="$token")
    shell:  CANFAR_URL=http://127.0.0.1:$port/skaha/v1 CANFAR_TOKEN=$token canfar ps
  Your sessions are in namespace $namespace. In another shell:
  export KUBECONFIG=$KUBECONFIG
  kubectl get kabin -n $namespace --watch
  kubectl describe session my-notebook -n $namespace
MSG
wait $operator $gateway
