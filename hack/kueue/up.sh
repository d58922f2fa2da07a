#!/usr/bin/env bash
# Runs Kueue (hack/tools/build.sh kueue: built from its Go module, pinned) against the
# local control plane, as a process beside it, the way kabin's own webhooks are served
# outside a cluster: its CRDs applied, its webhooks registered with a URL on 127.0.0.1
# and a CA made here, its visibility API (queue positions) aggregated through an
# ExternalName Service. Called by hack/controlplane/up.sh; KABIN_KUEUE=0 leaves it out.
# Idempotent: the objects are applied again, and a Kueue that answers is left running.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state="$root/.cluster/kueue"
kubeconfig="$root/.cluster/kubeconfig"
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }
HEALTH=127.0.0.1:18081 WEBHOOK_PORT=19443 VISIBILITY_PORT=18082

bin=$("$root/hack/tools/build.sh" kueue)
version=$(awk '$1 == "require" && $2 == "sigs.k8s.io/kueue" {print $3}' "$root/hack/tools/kueue/go.mod")
crds="$(dirname "$bin")/crds"
if [[ ! -d $crds ]]; then  # Kueue's own CRDs, from the same module, kept beside the binary
  src=$(cd "$root/hack/tools/kueue" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kueue@$version" |
        sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$crds.tmp" && cp "$src"/config/components/crd/bases/*.yaml "$crds.tmp/" && mv "$crds.tmp" "$crds"
fi

mkdir -p "$state/webhook"
if [[ ! -s $state/ca.crt ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kabin-local-kueue-ca" \
    -keyout "$state/ca.key" -out "$state/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$state/webhook/tls.key" \
    -out "$state/tls.csr" 2>/dev/null
  openssl x509 -req -in "$state/tls.csr" -CA "$state/ca.crt" -CAkey "$state/ca.key" -CAcreateserial \
    -days 3650 -extfile <(printf "subjectAltName=IP:127.0.0.1,DNS:localhost") \
    -out "$state/webhook/tls.crt" 2>/dev/null
fi
# Kueue reads its metrics and visibility certificates from fixed paths, even with metrics off.
for dir in /etc/kueue/metrics/certs /visibility; do
  mkdir -p "$dir" && cp "$state/webhook/tls.crt" "$state/webhook/tls.key" "$dir/"
done

cat > "$state/config.yaml" <<YAML
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
leaderElection: {leaderElect: false}
health: {healthProbeBindAddress: "$HEALTH"}
metrics: {bindAddress: "0"}
webhook: {host: 127.0.0.1, port: $WEBHOOK_PORT, certDir: "$state/webhook"}
internalCertManagement: {enable: false}
visibilityServer: {bindAddress: 127.0.0.1, bindPort: $VISIBILITY_PORT}
manageJobsWithoutQueueName: false
managedJobsNamespaceSelector:
  matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, kueue-system]}]
integrations: {frameworks: ["pod"], labelKeysToCopy: ["kabin.dev/session"]}
# Usage-based fair sharing between the LocalQueues of a ClusterQueue that asks for it
# (spec.admissionScope): a user's recent use counts against their next turn.
admissionFairSharing: {usageHalfLifeTime: "1h", usageSamplingInterval: "5s"}
YAML

kc apply --server-side --force-conflicts -f "$crds" >/dev/null
kc create namespace kueue-system --dry-run=client -o yaml | kc apply -f - >/dev/null
ca=$(base64 -w0 < "$state/ca.crt")
python3 - "$ca" "$WEBHOOK_PORT" "$VISIBILITY_PORT" > "$state/registration.json" <<'PY'
import json, sys
ca, port, visibility = sys.argv[1], sys.argv[2], int(sys.argv[3])
def hook(name, path, group, resources, operations, queued=False):
    h = {
        "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "failurePolicy": "Fail",
        "clientConfig": {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca},
        "rules": [{"apiGroups": [group], "apiVersions": ["v1" if group == "" else "v1beta2"],
                   "operations": operations, "resources": resources}],
        "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
            "operator": "NotIn", "values": ["kube-system", "kueue-system"]}]},
    }
    if queued:  # only queued pods wait for Kueue's answer: a Kueue that is down blocks no other pod
        h["objectSelector"] = {"matchExpressions": [{"key": "kueue.x-k8s.io/queue-name", "operator": "Exists"}]}
    return h
k = "kueue.x-k8s.io"
m = lambda kind: f"/mutate-kueue-x-k8s-io-v1beta2-{kind}"
v = lambda kind: f"/validate-kueue-x-k8s-io-v1beta2-{kind}"
items = [
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
     "metadata": {"name": "kueue-mutating-webhook-configuration"}, "webhooks": [
        hook("mpod.kb.io", "/mutate--v1-pod", "", ["pods"], ["CREATE"], queued=True),
        hook("mworkload.kb.io", m("workload"), k, ["workloads"], ["CREATE"]),
        hook("mclusterqueue.kb.io", m("clusterqueue"), k, ["clusterqueues"], ["CREATE"]),
        hook("mresourceflavor.kb.io", m("resourceflavor"), k, ["resourceflavors"], ["CREATE"]),
    ]},
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
     "metadata": {"name": "kueue-validating-webhook-configuration"}, "webhooks": [
        hook("vpod.kb.io", "/validate--v1-pod", "", ["pods"], ["CREATE", "UPDATE"], queued=True),
        hook("vworkload.kb.io", v("workload"), k, ["workloads", "workloads/status"], ["CREATE", "UPDATE"]),
        hook("vclusterqueue.kb.io", v("clusterqueue"), k, ["clusterqueues"], ["CREATE", "UPDATE"]),
        hook("vresourceflavor.kb.io", v("resourceflavor"), k, ["resourceflavors"], ["CREATE", "UPDATE"]),
        hook("vcohort.kb.io", v("cohort"), k, ["cohorts"], ["CREATE", "UPDATE"]),
    ]},
    # The visibility API, aggregated: the API server resolves an ExternalName Service to
    # https://<name>:<port>, here Kueue's own server on loopback.
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "visibility-server", "namespace": "kueue-system"},
     "spec": {"type": "ExternalName", "externalName": "localhost", "ports": [{"port": visibility}]}},
    {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
     "metadata": {"name": "v1beta2.visibility.kueue.x-k8s.io"},
     "spec": {"group": "visibility.kueue.x-k8s.io", "version": "v1beta2", "groupPriorityMinimum": 100,
              "versionPriority": 100, "insecureSkipTLSVerify": True,
              "service": {"name": "visibility-server", "namespace": "kueue-system", "port": visibility}}},
]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
kc wait --for=condition=Established --timeout=60s -f "$crds" >/dev/null
kc apply --server-side --force-conflicts -f "$state/registration.json" >/dev/null

if curl -fsS "http://$HEALTH/readyz" >/dev/null 2>&1; then exit 0; fi
if [[ -f $state/pid ]]; then kill "$(cat "$state/pid")" 2>/dev/null || true; fi
# setsid: its own process group, so that a test's Ctrl-C does not reach it.
setsid "$bin" --config "$state/config.yaml" --kubeconfig "$kubeconfig" --zap-log-level=info \
  >> "$state/kueue.log" 2>&1 < /dev/null &
echo $! > "$state/pid"
for _ in $(seq 120); do
  if curl -fsS "http://$HEALTH/readyz" >/dev/null 2>&1; then exit 0; fi
  kill -0 "$(cat "$state/pid")" 2>/dev/null || { tail -20 "$state/kueue.log" >&2; exit 1; }
  sleep 0.5
done
echo "kueue did not become ready; see $state/kueue.log" >&2
exit 1
