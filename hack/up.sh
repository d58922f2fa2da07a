#!/usr/bin/env bash
# `make up`: the main job on the local control plane. Starts the cluster (with its real
# node and Kueue), installs the CRDs and user roles, runs the operator (which serves and
# registers its admission webhooks), the gateway (Skaha's REST API and the dashboard)
# and Traefik (each session's own host, checked by the gateway), signs the local user
# in, applies the examples in their namespace through those webhooks, writes
# .cluster/kabin.env, and keeps them in the foreground until Ctrl-C. Their logs go to
# .cluster/logs/; the terminal shows the URLs, the token and the sessions coming up.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export KUBECONFIG="$root/.cluster/kubeconfig"
export PATH="$(hack/controlplane/build.sh):$PATH"
hack/controlplane/up.sh >/dev/null
logs="$root/.cluster/logs"; mkdir -p "$logs"

kubectl apply --server-side -k crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s \
  crd/sessions.kabin.dev crd/drives.kabin.dev crd/environmentconfigs.kabin.dev >/dev/null
.venv/bin/python hack/chart.py --user-roles | kubectl apply --server-side -f - >/dev/null
# Sessions wait their turn in Kueue (hack/kueue/up.sh runs it): one ClusterQueue, a
# LocalQueue per user made by the gateway, and that queue as sessions' default.
kubectl apply --server-side -f hack/kueue/queues.yaml >/dev/null
export KABIN_QUEUE=kabin KABIN_GATEWAY_CLUSTER_QUEUE=kabin

# The local user signs in to the gateway with a token from kube-apiserver's static
# token file format, made once and kept in .cluster/.
user=${KABIN_USER:-$(id -un)}
tokens="$root/.cluster/gateway-tokens.csv"
if [[ ! -s "$tokens" ]] || ! grep -q ",$user,$user," "$tokens"; then
  echo "$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))'),$user,$user,\"kabin:users\"" >> "$tokens"
fi
token=$(grep ",$user,$user," "$tokens" | head -1 | cut -d, -f1)
port=${KABIN_GATEWAY_PORT:-8000}
sessions_port=${KABIN_SESSIONS_PORT:-8088}
url="http://127.0.0.1:$port"
# Each session on a host of its own (another origin than the dashboard), through
# Traefik, which asks the gateway about every request. *.localhost is loopback.
export KABIN_SESSIONS_URL="http://sessions.localhost:$sessions_port" \
  KABIN_GATEWAY_SESSIONS_URL="http://sessions.localhost:$sessions_port" \
  KABIN_GATEWAY_PUBLIC_URL="$url" KABIN_SSH_HOST=127.0.0.1 \
  KABIN_INGRESS_ANNOTATIONS="{\"traefik.ingress.kubernetes.io/router.middlewares\": \"$(hack/traefik.sh middlewares)\"}"
# Real session pods run kabin's own image (built for the real node) as their agent, and
# reach the API server at this machine's address.
api_port=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}' | sed 's/.*://')
node_ip=$(kubectl get node realnode-1 -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}' 2>/dev/null || true)
export KABIN_AGENT_IMAGE="localhost/kabin:$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
[[ -n $node_ip ]] && export KABIN_AGENT_API_SERVER="$node_ip:$api_port"

# The operator serves the admission webhooks: one that crashes is started again at
# once, as a Deployment's restartPolicy would, so creates are refused only for moments.
(
  trap 'kill -TERM $child 2>/dev/null; wait $child; exit 0' INT TERM
  while true; do
    .venv/bin/kabin operator "$@" >> "$logs/operator.log" 2>&1 & child=$!
    wait $child && break
    echo "kabin operator exited ($?); starting it again" >&2
    sleep 1
  done
) &
operator=$!
KABIN_GATEWAY_PROVISION_NAMESPACES=true .venv/bin/kabin gateway --port "$port" --token-file "$tokens" \
  >> "$logs/gateway.log" 2>&1 &
gateway=$!
hack/traefik.sh start "$root/.cluster/traefik" "$sessions_port" "$url" >/dev/null
watcher=""
stop() {
  [[ -n $watcher ]] && kill "$watcher" 2>/dev/null
  hack/traefik.sh stop "$root/.cluster/traefik"
  kill -TERM $operator $gateway 2>/dev/null; wait $operator $gateway
}
trap stop EXIT
trap 'exit 0' INT TERM  # Ctrl-C is how it ends: stop (above) runs on the way out

# Examples go through admission (users stamped, environments checked): wait for it.
for _ in $(seq 150); do
  hooks=$(kubectl get mutatingwebhookconfiguration webhooks.kabin.dev \
    -o jsonpath='{.webhooks[*].name}' 2>/dev/null || true)
  [[ -n "$hooks" ]] && break
  sleep 0.2
done
# The first request makes the user's namespace, locked down, with their RoleBinding to
# `kabin-user`.
for _ in $(seq 150); do
  curl -fsS -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port/skaha/v1/session" && break
  sleep 0.2
done
namespace=$(.venv/bin/python -c "from kabin.gateway.identity import namespace_of; print(namespace_of('$user', 'kabin-{user}'))")
kubectl apply --server-side $(printf -- '-f %s ' examples/envcfg-*.yaml) >/dev/null
# The sessions that really run on the real node (session-*-here.yaml); the simulated
# examples stay in examples/ for clusters with GPUs. The shell lets your own ssh keys in.
keys=$(cat ~/.ssh/id_*.pub 2>/dev/null || true)
.venv/bin/python - "$keys" examples/drive-*.yaml examples/session-*-here.yaml <<'PY' \
  | kubectl apply --server-side --as "$user" --as-group kabin:users -n "$namespace" -f - >/dev/null
import json, sys, yaml
keys, files = sys.argv[1], sys.argv[2:]
for path in files:
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc["kind"] == "Session" and doc["spec"]["type"] == "ssh" and keys:
            doc["spec"]["env"] = [{"name": "SSH_AUTHORIZED_KEYS", "value": keys}]
        if doc:
            print("---\n" + json.dumps(doc))
PY

# What a script needs to reach kabin as this user: `source .cluster/kabin.env`.
cat > "$root/.cluster/kabin.env" <<ENV
KABIN_URL=$url
KABIN_USER=$user
KABIN_TOKEN=$token
KABIN_TOKEN_FILE=$tokens
KUBECONFIG=$KUBECONFIG
ENV

cat <<MSG

kabin is running: the operator, the gateway and Traefik are in the foreground (Ctrl-C
stops them; their logs are in .cluster/logs/ and .cluster/traefik/).
  Dashboard:   $url/   (your sessions: my-lab, my-code, my-desktop-here and
               my-shell-here run on this machine's real node; open them from there)
  Skaha's API: $url/skaha   (v0 and v1)
  Sign in as $user with the token: $token
    python: skaha.session.Session(server="$url/skaha", token="$token")
    shell:  source .cluster/kabin.env; CANFAR_URL=\$KABIN_URL/skaha/v1 CANFAR_TOKEN=\$KABIN_TOKEN canfar ps
  Sessions open at http://<name>.$namespace.sessions.localhost:$sessions_port/ for you alone.
  ssh: kubectl get session my-shell-here -n $namespace -o jsonpath='{.status.connectURL}'
       (logs in with your ~/.ssh/id_*.pub$([[ -n $keys ]] || echo "; you have none: ssh-keygen, then make up again"))
  Another user: add a line to $tokens (the gateway reads it again).
  Your sessions are in namespace $namespace:
MSG
kubectl get sessions -n "$namespace" --watch &
watcher=$!
wait $operator $gateway
