#!/usr/bin/env bash
# Builds the local control plane from the Go module proxy, once per version set.
#
# The versions are pinned in one place: the go.mod of each wrapper module beside
# this script (kubernetes/, etcd/, kwok/). The binaries are cached outside the
# checkout, keyed by those versions and the go.sum hashes, so that every clone on
# this machine (CI's fresh clone included) reuses them. Prints the bin directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

modver() { awk -v m="$2" '$1 == m || ($1 == "require" && $2 == m) {print $NF; exit}' "$here/$1/go.mod"; }
K8S=$(modver kubernetes k8s.io/kubernetes)
ETCD=$(modver etcd go.etcd.io/etcd/server/v3)
KWOK=$(modver kwok sigs.k8s.io/kwok)
sum=$(cat "$here"/*/go.mod "$here"/*/go.sum | sha256sum | cut -c1-12)
bin="${KABIN_CACHE:-$HOME/.cache/kabin}/k8s-$K8S-etcd-$ETCD-kwok-$KWOK-$sum/bin"

want=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl)
missing=0
for b in "${want[@]}"; do [[ -x "$bin/$b" ]] || missing=1; done
if [[ $missing == 0 ]]; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
tmp=$(mktemp -d "$bin/../build.XXXX")
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod
minor=${K8S#v1.}; minor=${minor%%.*}

build() {  # build <module dir> <output> <ldflags> <package...>
  local dir=$1 out=$2 ldflags=$3; shift 3
  echo ">> building $* ($(date +%T))" >&2
  (cd "$here/$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out" "$@") >&2
}

v=k8s.io/component-base/version
cv=k8s.io/client-go/pkg/version
kflags="-X $v.gitVersion=$K8S -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
kflags+=" -X $cv.gitVersion=$K8S -X $cv.gitMajor=1 -X $cv.gitMinor=$minor -X $cv.gitTreeState=clean"
build kwok "$tmp/" "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S#v}" \
  sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
build etcd "$tmp/etcd" "" go.etcd.io/etcd/server/v3
build kubernetes "$tmp/" "$kflags" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
mv "$tmp"/* "$bin/"
echo ">> built into $bin ($(date +%T))" >&2
echo "$bin"
