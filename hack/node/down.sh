#!/usr/bin/env bash
# Stops the real node and puts the host back as hack/node/up.sh found it: the node's
# pods and their network, the kubelet, kube-proxy's and the kubelet's iptables
# chains, containerd, the Node object, the sysctls, the bridge, the route, the
# kubelet's mounts and cgroups, and the directories it made. Run it before the
# control plane stops (it deletes the Node through the API server).
set -uo pipefail
source "$(dirname "$0")/env.sh"
[[ -d $state || -d $run ]] || exit 0
bin=$("$here/build.sh" 2>/dev/null) && export PATH="$bin:$PATH"

stop() {  # stop <name>: SIGTERM by saved pid, then SIGKILL after 10 s
  local pidfile="$state/$1.pid"
  [[ -f $pidfile ]] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

# The drives' provisioner, and its StorageClass: the simulated one is the default again.
stop local-path
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }
kc delete storageclass kabin-local --ignore-not-found --wait=false >/dev/null 2>&1
kc annotate storageclass kabin-sim storageclass.kubernetes.io/is-default-class=true --overwrite >/dev/null 2>&1

# The pods first, through the runtime, so CNI DEL removes their addresses and NAT.
stop kubelet
if [[ -S $run/containerd.sock ]]; then
  export CONTAINERD_ADDRESS=$run/containerd.sock CONTAINERD_NAMESPACE=k8s.io
  for task in $(ctr tasks list -q 2>/dev/null); do ctr tasks kill -s KILL "$task" >/dev/null 2>&1; done
  sleep 0.5
  for task in $(ctr tasks list -q 2>/dev/null); do ctr tasks delete -f "$task" >/dev/null 2>&1; done
  # containerd's root is kept (its images are a cache): its containers and sandboxes go.
  for c in $(ctr containers list -q 2>/dev/null); do ctr containers delete "$c" >/dev/null 2>&1; done
  for sb in $(ctr sandboxes list 2>/dev/null | awk 'NR > 1 {print $1}'); do ctr sandboxes remove -f "$sb" >/dev/null 2>&1; done
fi
for netns in /run/netns/cni-*; do
  [[ -e $netns ]] || continue
  CNI_COMMAND=DEL CNI_CONTAINERID=kabin CNI_NETNS="$netns" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
    /usr/lib/cni/bridge < "$state/cni/10-kabin.conflist" >/dev/null 2>&1 || true
  umount "$netns" 2>/dev/null; rm -f "$netns"
done
stop kube-proxy
command -v kube-proxy >/dev/null && kube-proxy --cleanup >/dev/null 2>&1
stop containerd
# A shim whose task was gone before containerd stopped can outlive it: none of ours stays.
pkill -KILL -f -- "containerd-shim-runc-v2 .*-address $run/containerd.sock" 2>/dev/null
kc delete node "$node" --wait=false >/dev/null 2>&1

# The host as it was.
if [[ -f $state/sysctls.saved ]]; then
  while IFS= read -r line; do sysctl -q -w "$line" >/dev/null 2>&1; done < "$state/sysctls.saved"
fi
if [[ -f $state/routes ]]; then
  while IFS= read -r route; do ip route del $route 2>/dev/null; done < "$state/routes"
fi
for table in iptables ip6tables; do
  command -v $table >/dev/null || continue
  for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY; do
    for parent in INPUT OUTPUT FORWARD; do
      while $table -t filter -D $parent -j $chain 2>/dev/null; do :; done
    done
    $table -t filter -F $chain 2>/dev/null && $table -t filter -X $chain 2>/dev/null
  done
  for t in nat mangle filter; do
    for chain in KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
      $table -t $t -F $chain 2>/dev/null && $table -t $t -X $chain 2>/dev/null
    done
  done
  # The bridge plugin's masquerade chains of pods that are gone (by rule number: the
  # rules carry quoted comments).
  for chain in $($table -t nat -S 2>/dev/null | awk '/^-N CNI-/ {print $2}'); do
    for number in $($table -t nat -L POSTROUTING -n --line-numbers | awk -v c="$chain" '$2 == c {print $1}' | sort -rn); do
      $table -t nat -D POSTROUTING "$number" 2>/dev/null
    done
    $table -t nat -F "$chain" 2>/dev/null; $table -t nat -X "$chain" 2>/dev/null
  done
done
ip link del kabin0 2>/dev/null
# The kubelet bind-mounts its root dir onto itself, and pods' volumes beneath it;
# containerd mounts each sandbox's /dev/shm and each container's rootfs.
awk -v a="$state/" -v b="$run/" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' /proc/self/mounts \
  | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
for hierarchy in /sys/fs/cgroup/*/; do
  [[ -d $hierarchy/kubepods ]] || continue
  find "$hierarchy/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null
done
if [[ -f $state/created-dirs ]]; then
  while IFS= read -r dir; do
    grep -q " $dir" /proc/self/mounts && umount -l "$dir" 2>/dev/null
    rm -rf "$dir"
  done < "$state/created-dirs"
fi
rm -rf "$run" "$state"
