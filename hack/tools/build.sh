#!/usr/bin/env bash
# Builds a Go tool from the module proxy, once per version: build.sh helm|promtool|traefik|local-path|kueue.
#
# The version is pinned in the go.mod of the wrapper module beside this script
# (helm/, promtool/); the binary is cached outside the checkout, keyed by that
# go.mod and go.sum, so every clone on this machine reuses it. Prints its path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tool=${1:?usage: build.sh helm|promtool|traefik|local-path|kueue}
modver() { awk -v m="$2" '$1 == m || ($1 == "require" && $2 == m) {print ($1 == m ? $2 : $3); exit}' "$here/$1/go.mod"; }
case $tool in
  helm)
    pkg=helm.sh/helm/v3/cmd/helm
    # As helm's Makefile does: its version, and the Kubernetes version that `helm
    # template` and `helm lint` assume, from the client-go it is built with.
    kube=$(modver helm k8s.io/client-go); kube=${kube#v0.}
    ldflags="-X helm.sh/helm/v3/internal/version.version=$(modver helm helm.sh/helm/v3)"
    for p in lint/rules chartutil; do
      ldflags+=" -X helm.sh/helm/v3/pkg/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$p.k8sVersionMinor=${kube%%.*}"
    done ;;
  promtool)
    pkg=github.com/prometheus/prometheus/cmd/promtool
    ldflags="-X github.com/prometheus/common/version.Version=$(modver promtool github.com/prometheus/prometheus)" ;;
  traefik)
    pkg=github.com/traefik/traefik/v3/cmd/traefik
    ldflags="-X github.com/traefik/traefik/v3/pkg/version.Version=$(modver traefik github.com/traefik/traefik/v3)" ;;
  local-path)
    pkg=github.com/rancher/local-path-provisioner
    ldflags="-X main.VERSION=$(modver local-path github.com/rancher/local-path-provisioner)" ;;
  kueue)
    pkg=sigs.k8s.io/kueue/cmd/kueue
    ldflags="-X sigs.k8s.io/kueue/pkg/version.GitVersion=$(modver kueue sigs.k8s.io/kueue)" ;;
  *) echo "build.sh: unknown tool $tool" >&2; exit 2 ;;
esac
sum=$(cat "$0" "$here/$tool/go.mod" "$here/$tool/go.sum" | sha256sum | cut -c1-12)
out="${KABIN_CACHE:-$HOME/.cache/kabin}/$tool-$sum/$tool"
if [[ ! -x $out ]]; then
  echo ">> building $tool ($(date +%T))" >&2
  mkdir -p "$(dirname "$out")"
  (cd "$here/$tool" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg") >&2
  mv "$out.tmp" "$out"
  echo ">> built $out ($(date +%T))" >&2
fi
echo "$out"
