#!/usr/bin/env bash
# `make image`: build the Dockerfile's image for real on a machine with no container
# engine and no registry: buildah (Debian's package) builds it without a daemon
# (chroot isolation, vfs storage), on bases made here from Debian packages with
# debootstrap, since Docker Hub cannot be reached. Then it checks the image: kabin
# runs in it as user 65532, and every installed distribution is the version
# requirements.lock pins. Prints the image's name.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tag=${KABIN_IMAGE:-localhost/kabin:$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)}
source "$root/hack/bases.sh"
minbase
base localhost/kabin-base-python:$suite 'python3 python3-venv ca-certificates'
base localhost/kabin-base-node:$suite 'nodejs npm ca-certificates'

echo ">> building $tag ($(date +%T))" >&2
# This machine reaches the package registries through a TLS-inspecting proxy: its CA
# bundle goes in as a build secret, never into a layer.
buildah build --quiet --layers --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt \
  --build-arg PYTHON_IMAGE=localhost/kabin-base-python:$suite \
  --build-arg NODE_IMAGE=localhost/kabin-base-node:$suite \
  -t "$tag" . >/dev/null
echo ">> built $tag ($(date +%T))" >&2

# What runs in it, as whom, with what.
ctr=$(buildah from "$tag")
trap 'buildah rm "$ctr" >/dev/null' EXIT
[[ $(buildah run --user 65532:65532 "$ctr" -- id -u) == 65532 ]]
buildah run --user 65532:65532 "$ctr" -- kabin --help >/dev/null
buildah run --user 65532:65532 "$ctr" -- python3 -c 'import kabin.handlers, kabin.webhooks, kabin.gateway.routes'
buildah run --env HOME=/tmp "$ctr" -- /opt/kabin/bin/pip freeze --exclude-editable \
  | grep -v '^kabin' | sort > build/image-freeze.txt
grep -v '^#' requirements.lock | grep . | sort | diff - build/image-freeze.txt >&2 \
  || { echo "the image's packages differ from requirements.lock (above)" >&2; exit 1; }
# With the local control plane up (make cluster-up), the image's operator runs against
# it for 20 s, as 65532, from a copy of the kubeconfig that user may read.
kubeconfig=$root/.cluster/kubeconfig
[[ -f $kubeconfig ]] && export PATH="$(hack/controlplane/build.sh):$PATH"
if [[ ${KABIN_IMAGE_CHECK_OPERATOR:-1} != 0 && -f $kubeconfig ]] \
  && kubectl --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
  kube=$(mktemp -d); pki=$(dirname "$(awk '/certificate-authority:/ {print $2; exit}' "$kubeconfig")")
  cp "$pki"/{ca.crt,admin.crt,admin.key} "$kube"/
  sed "s#$pki#/kube#g" "$kubeconfig" > "$kube/config"
  chmod 755 "$kube"; chmod 644 "$kube"/*
  timeout 20 buildah run --user 65532:65532 --env HOME=/tmp --env KUBECONFIG=/kube/config \
    --env KABIN_METRICS_PORT=0 --env KABIN_WEBHOOK_MANAGED=false -v "$kube:/kube:ro" "$ctr" \
    -- kabin operator --namespace kabin-image-check > build/image-operator.log 2>&1 || true
  rm -rf "$kube"
  grep -q "Cache loaded" build/image-operator.log && ! grep -q Traceback build/image-operator.log \
    || { echo "the image's operator did not start (build/image-operator.log)" >&2; exit 1; }
  echo ">> the image's operator started against the local control plane" >&2
fi
echo ">> $tag: kabin runs as 65532; its $(wc -l < build/image-freeze.txt) packages are requirements.lock's; $(buildah images --format '{{.Size}}' "$tag")" >&2
echo "$tag"
