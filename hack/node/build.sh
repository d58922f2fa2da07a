#!/usr/bin/env bash
# Builds the real node's parts from the Go module proxy, once per version set: the
# kubelet and kube-proxy (from the control plane's k8s.io/kubernetes wrapper module,
# so they are the API server's version), containerd 2 with its runc shim and ctr, and
# runc. Cached outside the checkout, keyed by the versions and the wrapper's go.sum, so
# every clone on this machine reuses them. Prints the bin directory.
#
# CNI plugins (bridge, host-local, loopback, portmap) are Debian's
# containernetworking-plugins (hack/deps.sh); runc needs libseccomp.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
k8s_module="$here/../controlplane/kubernetes"
CONTAINERD=v2.2.9
RUNC=v1.3.4
K8S=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3; exit}' "$k8s_module/go.mod")
sum=$(cat "$0" "$k8s_module/go.mod" "$k8s_module/go.sum" | sha256sum | cut -c1-12)
bin="${KABIN_CACHE:-$HOME/.cache/kabin}/node-$K8S-containerd-$CONTAINERD-runc-$RUNC-$sum/bin"

want=(kubelet kube-proxy containerd containerd-shim-runc-v2 ctr runc)
missing=0
for b in "${want[@]}"; do [[ -x "$bin/$b" ]] || missing=1; done
if [[ $missing == 0 ]]; then echo "$bin"; exit 0; fi

if ! pkg-config --exists libseccomp 2>/dev/null; then
  sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    libseccomp-dev pkg-config >/dev/null
fi
mkdir -p "$bin"
tmp=$(mktemp -d "$bin/../build.XXXX")
trap 'rm -rf "$tmp"' EXIT
minor=${K8S#v1.}; minor=${minor%%.*}
v=k8s.io/component-base/version
kflags="-s -w -X $v.gitVersion=$K8S -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
echo ">> building kubelet and kube-proxy $K8S ($(date +%T))" >&2
(cd "$k8s_module" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$kflags" \
  -o "$tmp/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy) >&2
echo ">> building containerd $CONTAINERD ($(date +%T))" >&2
cv=github.com/containerd/containerd/v2/version
cflags="-s -w -X $cv.Version=$CONTAINERD -X $cv.Revision=kabin"
GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath -ldflags "$cflags" -tags "no_btrfs no_devmapper no_zfs" \
  "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD" \
  "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD" \
  "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD" >&2
echo ">> building runc $RUNC ($(date +%T))" >&2
GOBIN="$tmp" CGO_ENABLED=1 go install -trimpath -tags seccomp \
  -ldflags "-s -w -X main.version=${RUNC#v}" "github.com/opencontainers/runc@$RUNC" >&2
mv "$tmp"/* "$bin/"
echo ">> built into $bin ($(date +%T))" >&2
echo "$bin"
