#!/usr/bin/env bash
# Starts one real node, `realnode-1`, beside the simulated ones and joins it to the
# local control plane: containerd 2 and runc, Debian's CNI plugins (a bridge on
# 10.246.1.0/24, outside kwok's fake 10.244.0.0/16), the kubelet and kube-proxy, all
# built from the Go module proxy (hack/node/build.sh). Images come from no registry:
# they are built here with buildah and imported into containerd (hack/node/images.sh).
#
# The node is tainted `kabin.dev/real-node:NoSchedule` and labelled
# `kabin.dev/node=real`: only pods that ask for it (an EnvironmentConfig's pod
# overrides) land there, and the simulated nodes keep GPUs, bursts and scale.
#
# What the kubelet changes on the host (sysctls, iptables chains, directories,
# cgroups) is recorded before it starts, and hack/node/down.sh puts it back.
# Where a real node cannot run (not root, no cgroups, no iptables), this says so in
# one line and exits 0: the cluster goes on with simulated nodes only.
set -euo pipefail
source "$(dirname "$0")/env.sh"
pod_cidr=10.246.1.0/24

unable() {
  [[ $(id -u) == 0 ]] || { echo "not root"; return; }
  [[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] || { echo "no memory cgroup"; return; }
  command -v iptables >/dev/null || { echo "no iptables"; return; }
  [[ -x /usr/lib/cni/bridge ]] || { echo "no CNI plugins (containernetworking-plugins)"; return; }
  command -v buildah >/dev/null || { echo "no buildah"; return; }
  [[ -f "$pki/ca.key" ]] || { echo "no cluster CA at $pki"; return; }
  [[ "${KABIN_REAL_NODE:-1}" != 0 ]] || { echo "KABIN_REAL_NODE=0"; return; }
}
if why=$(unable) && [[ -n $why ]]; then
  echo "no real node ($why): sessions run on simulated nodes only" >&2
  exit 0
fi

bin=$("$here/build.sh")
export PATH="$bin:$PATH"
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }
alive() { [[ -f "$state/$1.pid" ]] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }
ready() { [[ $(kc get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]; }

# The real node's drives are the default StorageClass (the control plane's topology, applied
# again on each start, marks the simulated one default).
local_default() {
  kc annotate storageclass kabin-sim storageclass.kubernetes.io/is-default-class=false --overwrite >/dev/null
}
if alive kubelet && alive containerd && alive kube-proxy && alive local-path && ready; then
  local_default
  echo "real node $node is already running" >&2
  exit 0
fi
"$here/down.sh" >/dev/null 2>&1 || true  # a half-started node: start again from clean
mkdir -p "$state" "$run"
ip=$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1); exit}')
[[ -n $ip ]] || ip=$(hostname -I | awk '{print $1}')

# -- what the host looks like now, for down.sh ------------------------------------
{
  for key in vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.ip_forward \
    net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables; do
    value=$(sysctl -n "$key" 2>/dev/null) && echo "$key=$value"
  done
} > "$state/sysctls.saved"
: > "$state/created-dirs"
# /var/lib/kabin-sim: the simulated StorageClass's volumes are hostPath directories there.
# /var/lib/kabin-drives: the drives of the `kabin-local` StorageClass (below).
for dir in /var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/containerd /run/netns \
  /var/lib/kabin-sim /var/lib/kabin-drives; do
  [[ -e $dir ]] || echo "$dir" >> "$state/created-dirs"
done
# kernel.panic_on_oops=1 (the kubelet's default) turns an oops into a reboot; the
# kubelet is told not to insist (protectKernelDefaults false), and down.sh restores it.

# -- containerd --------------------------------------------------------------------
# Its root (images, their unpacked layers) is a cache kept between starts, outside the
# checkout like the binaries: importing the session images (about 1.2 GB) again at every
# start took most of a minute. down.sh removes its containers, not its images.
images="${KABIN_CACHE:-$HOME/.cache/kabin}/node-containerd"
mkdir -p "$images"
mkdir -p "$state/cni" "$state/containerd"
cat > "$state/cni/10-kabin.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kabin",
  "plugins": [
    {"type": "bridge", "bridge": "kabin0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$state/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
cat > "$state/containerd.toml" <<EOF
version = 3
root = '$images'
state = '$run/containerd'
[grpc]
  address = '$run/containerd.sock'
[ttrpc]
  address = '$run/containerd.sock.ttrpc'
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = 'localhost/kabin-pause:1'
[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # No process here may lower its OOM score (no CAP_SYS_RESOURCE): without this every
  # sandbox fails in runc with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = '$bin/runc'
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = '$state/cni'
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
EOF
containerd --config "$state/containerd.toml" > "$state/containerd.log" 2>&1 &
echo $! > "$state/containerd.pid"
for _ in $(seq 100); do [[ -S $run/containerd.sock ]] && break; sleep 0.1; done
[[ -S $run/containerd.sock ]] || { echo "containerd did not start: $(tail -5 "$state/containerd.log")" >&2; exit 1; }

# The images the node runs, built here and imported (no registry is reachable).
"$here/images.sh" import "$run/containerd.sock" "$images/imported" >&2

# -- the node's client certificate, from this cluster's CA -------------------------
mkdir -p "$state/pki"
openssl req -new -newkey rsa:2048 -nodes -keyout "$state/pki/node.key" \
  -subj "/O=system:nodes/CN=system:node:$node" -out "$state/pki/node.csr" 2>/dev/null
openssl x509 -req -in "$state/pki/node.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
  -CAcreateserial -days 365 -out "$state/pki/node.crt" \
  -extfile <(printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment') 2>/dev/null
server=$(kc config view --minify -o jsonpath='{.clusters[0].cluster.server}')
cat > "$state/kubelet.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: kabin, cluster: {server: "$server", certificate-authority: "$pki/ca.crt"}}]
users: [{name: $node, user: {client-certificate: "$state/pki/node.crt", client-key: "$state/pki/node.key"}}]
contexts: [{name: $node, context: {cluster: kabin, user: $node}}]
current-context: $node
EOF

# -- the kubelet --------------------------------------------------------------------
cat > "$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This is a cgroup v1 host (KEP-5573): the kubelet only warns with this.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$run/containerd.sock
address: $ip
port: 10350
healthzPort: 10348
readOnlyPort: 0
failSwapOn: false
protectKernelDefaults: false
podLogsDir: $state/pod-logs
volumePluginDir: $state/volume-plugins
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# The disk is shared with everything else here: evict nothing for it.
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
registerWithTaints: [{key: kabin.dev/real-node, effect: NoSchedule}]
maxPods: 30
EOF
kubelet --config "$state/kubelet.yaml" --kubeconfig "$state/kubelet.kubeconfig" \
  --hostname-override "$node" --node-ip "$ip" --root-dir "$state/kubelet" --cert-dir "$state/pki" \
  --node-labels "kabin.dev/node=real,type=real" > "$state/kubelet.log" 2>&1 &
echo $! > "$state/kubelet.pid"

# -- kube-proxy: ClusterIPs route to pods on this machine ---------------------------
# kwok's pods have fake addresses in 10.244.0.0/16: traffic to them (a Service of a
# simulated session) must not leave by the default route, so it goes nowhere.
ip route replace blackhole 10.244.0.0/16
echo "blackhole 10.244.0.0/16" > "$state/routes"
kube-proxy --kubeconfig "$kubeconfig" --hostname-override "$node" --proxy-mode iptables \
  --cluster-cidr 10.246.0.0/16 --conntrack-max-per-core 0 \
  --metrics-bind-address 127.0.0.1:10349 --healthz-bind-address 127.0.0.1:10356 \
  > "$state/kube-proxy.log" 2>&1 &
echo $! > "$state/kube-proxy.pid"

for _ in $(seq 120); do ready && break; sleep 0.5; done
if ! ready; then
  echo "real node $node did not become Ready; see $state/kubelet.log:" >&2
  tail -5 "$state/kubelet.log" >&2
  exit 1
fi
echo "real node $node is Ready ($ip, pods in $pod_cidr)" >&2

# -- storage: rancher's local-path-provisioner, the default StorageClass ------------
# A drive is a directory under /var/lib/kabin-drives, made by a helper pod (mode 0777:
# sessions run as any non-root UID) and removed when its volume is deleted. Every node
# of this cluster is this machine, so the directory is on a filesystem all of them
# share: local-path's shared-filesystem mode, which allows ReadWriteMany and pins no
# drive to a node. The volume is made when its first session is scheduled
# (WaitForFirstConsumer): on this node by a helper pod, a real directory; on a simulated
# node by kwok's pvc-provision stage at once (hack/controlplane/stages.yaml), and nothing
# is made, as nothing runs there to write (the helper's exit-code annotation lets kwok
# complete one that races it). So a burst of
# simulated sessions costs no real pods. local-path cannot grow a volume: the simulated
# `kabin-sim` class, no longer the default, keeps that (and clusters without a real node).
provisioner=$("$root/hack/tools/build.sh" local-path)
install -d -m 0711 /var/lib/kabin-drives
echo '{"sharedFileSystemPath": "/var/lib/kabin-drives"}' > "$state/local-path.json"
cat > "$state/local-path-helper.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: helper-pod
  annotations: {sim.kabin.dev/exit-code: "0"}
spec:
  tolerations: [{operator: Exists}]
  securityContext: {runAsUser: 0}
  containers:
  - name: helper-pod
    image: localhost/kabin-busybox:1
    imagePullPolicy: Never
EOF
kc apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: kabin-storage}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: kabin-storage}
data:
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "$VOL_DIR"
  teardown: |-
    #!/bin/sh
    set -eu
    rm -rf "$VOL_DIR"
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: local-path-provisioner, namespace: kabin-storage}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: kabin-local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
EOF
local_default
"$provisioner" start --kubeconfig "$kubeconfig" --namespace kabin-storage \
  --config "$state/local-path.json" --helper-pod-file "$state/local-path-helper.yaml" \
  --helper-image localhost/kabin-busybox:1 --service-account-name local-path-provisioner \
  --configmap-name local-path-config --provisioner-name rancher.io/local-path --worker-threads 32 \
  > "$state/local-path.log" 2>&1 &
echo $! > "$state/local-path.pid"
echo "drives: StorageClass kabin-local (local-path-provisioner) in /var/lib/kabin-drives" >&2
