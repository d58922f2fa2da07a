#!/usr/bin/env bash
# `make cluster-up`: start (building first, if needed) the local control plane.
#
# A real kube-apiserver, etcd, kube-controller-manager and kube-scheduler run
# as local processes under `kwokctl --runtime binary`, with RBAC and admission
# on; kwok simulates the nodes labelled `type: kwok` and their kubelets
# (stages.yaml), and one real node, a kubelet with containerd and runc on this
# machine, joins beside them (hack/node/up.sh; KABIN_REAL_NODE=0 leaves it out),
# and Kueue runs against it (hack/kueue/up.sh; KABIN_KUEUE=0 leaves it out).
# Everything lives in .cluster/ of the checkout; nothing is downloaded at start.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state="$root/.cluster"
name=kabin
kubeconfig="$state/kubeconfig"

bin=$("$here/build.sh")
export PATH="$bin:$PATH" KWOK_WORKDIR="$state/kwok"
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }

healthy() { [[ -f "$kubeconfig" ]] && kc get --raw /readyz >/dev/null 2>&1; }

if healthy; then
  echo "cluster '$name' is already running" >&2
elif [[ -d "$KWOK_WORKDIR/clusters/$name" ]] && kwokctl start cluster --name "$name" >&2 && healthy; then
  echo "cluster '$name' restarted" >&2
else
  kwokctl delete cluster --name "$name" --kubeconfig "$kubeconfig" >/dev/null 2>&1 || true
  rm -rf "$state"
  mkdir -p "$state"
  sed "s|LOGS_FILE|$here/pod.log|" "$here/stages.yaml" > "$state/kwok.yaml"
  args=(
    --name "$name" --runtime binary
    --config "$state/kwok.yaml"
    --kubeconfig "$kubeconfig"
    --kube-authorization --kube-admission
    --kube-apiserver-binary "$bin/kube-apiserver"
    --kube-controller-manager-binary "$bin/kube-controller-manager"
    --kube-scheduler-binary "$bin/kube-scheduler"
    --kwok-controller-binary "$bin/kwok"
    --etcd-binary "$bin/etcd"
    # kwokctl passes an empty --node-ip; nodes need an address the API server
    # can reach for `kubectl logs` (the kwok controller serves the kubelet API).
    --extra-args kwok-controller=node-ip=127.0.0.1
    # Node names do not resolve here; reach the kubelets by address.
    --extra-args kube-apiserver=kubelet-preferred-address-types=InternalIP
    # kwok simulates only its own nodes: by default it takes every node over, the real
    # one's Lease and pods too.
    --extra-args kwok-controller=manage-all-nodes=false
    --extra-args kwok-controller=manage-nodes-with-label-selector=type=kwok
    # The real kubelet serves logs and exec only to a client it knows: the API server
    # calls it with the admin certificate (kwok's simulated kubelets take anything).
    --extra-args "kube-apiserver=kubelet-client-certificate=$KWOK_WORKDIR/clusters/$name/pki/admin.crt"
    --extra-args "kube-apiserver=kubelet-client-key=$KWOK_WORKDIR/clusters/$name/pki/admin.key"
    # Every interactive session has a ClusterIP Service; the default range (a /24)
    # runs out at 254 of them. A cluster's usual /12.
    --extra-args kube-apiserver=service-cluster-ip-range=10.96.0.0/12
    # A restarted kwok controller has a new identity, and takes a node over only
    # once the node's Lease from its previous life expires: 40 s x the heartbeat
    # factor 5 by default. 4 x 5 = 20 s makes `kwokctl stop` and `start` look like
    # a kubelet restart instead of a 200 s outage.
    --node-lease-duration-seconds 4
    --wait 60s
  )
  if [[ "${1:-}" == "--dry-run" ]]; then exec kwokctl create cluster "${args[@]}" --dry-run; fi
  kwokctl create cluster "${args[@]}" >&2
fi

kc apply --server-side --force-conflicts -f "$here/topology.yaml" >/dev/null
kc wait --for=condition=Ready node --selector type=kwok --timeout=60s >/dev/null
"$root/hack/node/up.sh"
# Kueue beside it: queues, quotas and fair sharing for sessions that name a queue.
[[ ${KABIN_KUEUE:-1} == 0 ]] || "$root/hack/kueue/up.sh"
echo "export KUBECONFIG=$kubeconfig"
