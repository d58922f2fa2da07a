#!/usr/bin/env bash
# Runs Traefik (built from the Go module proxy, hack/tools/build.sh traefik) as the
# local cluster's ingress controller, a process on this machine:
#   traefik.sh start <dir> <port> <gateway URL>   print its pid once it listens
#   traefik.sh stop <dir>
#   traefik.sh middlewares    the value of session Ingresses' router.middlewares
#
# Its Kubernetes Ingress provider routes the session Ingresses to their pods (on the
# real node, straight to the pod addresses). Each session Ingress names the file
# provider's middleware `kabin-auth` (the operator's ingress_annotations), a forwardAuth
# to the gateway's /_kabin/auth: every request to a session is checked there first.
# It listens on 127.0.0.1:<port> only; sessions are `http://<name>.<namespace>.
# sessions.localhost:<port>/...`, which browsers here resolve to loopback.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kubeconfig=${KUBECONFIG:-$root/.cluster/kubeconfig}
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }

start() {
  local dir=$1 port=$2 gateway=$3
  mkdir -p "$dir"
  local traefik; traefik=$("$root/hack/tools/build.sh" traefik)
  # Its own identity: reads what an ingress controller reads, writes Ingress status.
  kc apply --server-side -f - >/dev/null <<'EOF'
apiVersion: v1
kind: ServiceAccount
metadata: {name: traefik, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kabin-traefik}
rules:
- apiGroups: [""]
  resources: [services, secrets, nodes]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, ingressclasses]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kabin-traefik}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kabin-traefik}
subjects: [{kind: ServiceAccount, name: traefik, namespace: kube-system}]
EOF
  local server ca token
  server=$(kc config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kc config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')
  token=$(kc create token traefik -n kube-system --duration 24h)
  cat > "$dir/dynamic.yaml" <<EOF
http:
  middlewares:
    kabin-auth:
      forwardAuth:
        address: "${gateway%/}/_kabin/auth"
        # Traefik sets X-Forwarded-Host and -Uri itself; a client's are not believed.
        trustForwardHeader: false
    # code-server serves at /: a vscode session's base path is stripped (sessions of
    # other types keep theirs, which their servers are told: JupyterLab's base_url).
    kabin-strip-vscode:
      stripPrefixRegex:
        regex: ["^/session/vscode/[^/]+/[^/]+"]
    # While a session's pods are not Ready yet (or Traefik has not seen them Ready), a
    # page that reloads by itself instead of a bare 502/503.
    kabin-starting:
      errors:
        status: ["502-503"]
        service: kabin-gateway
        query: /_kabin/starting
  services:
    kabin-gateway:
      loadBalancer:
        servers: [{url: "${gateway%/}"}]
EOF
  cat > "$dir/traefik.yaml" <<EOF
entryPoints:
  web:
    address: "127.0.0.1:$port"
providers:
  kubernetesIngress:
    endpoint: "$server"
    token: "$token"
    certAuthFilePath: "$ca"
    # A session's route exists as soon as its Ingress does (503 until its pods are
    # Ready, shown as the starting page), and changes apply at once.
    allowEmptyServices: true
    throttleDuration: 0s
  file:
    filename: "$dir/dynamic.yaml"
log:
  level: ERROR
  filePath: "$dir/traefik.log"
accessLog:
  filePath: "$dir/access.log"
EOF
  chmod 600 "$dir/traefik.yaml"
  "$traefik" --configfile "$dir/traefik.yaml" >> "$dir/traefik.log" 2>&1 &
  local pid=$!
  echo "$pid" > "$dir/traefik.pid"
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$pid"; return; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "traefik did not start: $(tail -5 "$dir/traefik.log")" >&2
  exit 1
}

stop() {
  local pidfile="$1/traefik.pid"
  [[ -f $pidfile ]] || return 0
  kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start "$2" "$3" "$4" ;;
  stop) stop "$2" ;;
  # The middlewares start() defines, in order: the access check, vscode's base path
  # stripped, the starting page.
  middlewares) echo "kabin-auth@file,kabin-strip-vscode@file,kabin-starting@file" ;;
  *) echo "usage: traefik.sh start DIR PORT GATEWAY_URL | stop DIR | middlewares" >&2; exit 2 ;;
esac
