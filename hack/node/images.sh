#!/usr/bin/env bash
# The real node's images, built here (no registry is reachable) and cached as OCI
# archives under ~/.cache/kabin/images, keyed by what they are made from:
#   localhost/kabin-pause:1    the pod sandbox (hack/node/pause, a static Go binary)
#   localhost/kabin-busybox:1  Debian's busybox-static, for tests and probes
#   localhost/kabin-<name>:1   the session images of images/<name>/Containerfile, on
#                              the Debian bases of hack/bases.sh: notebook (JupyterLab),
#                              ssh (OpenSSH), desktop (IceWM, TigerVNC, noVNC)
#   localhost/kabin:<version>  kabin's own image (hack/image.sh), the agent sidecar's
#
# images.sh build            build the archives that are missing; print their paths
# images.sh import SOCKET [LIST]  build, then import them into containerd at SOCKET,
#                                 all but those LIST names, and add them to LIST
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache="${KABIN_CACHE:-$HOME/.cache/kabin}/images"
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
mkdir -p "$cache"

archive() {  # archive <name> <key>: the archive's path for this version of the image
  echo "$cache/$1-$(echo "$2" | sha256sum | cut -c1-12).tar"
}

from_scratch() {  # from_scratch <image> <archive> <file> <path in image> [entrypoint]
  local image=$1 out=$2 file=$3 path=$4 entry=${5:-}
  local ctr; ctr=$(buildah from scratch)
  buildah copy --quiet --chmod 0755 "$ctr" "$file" "$path" >/dev/null
  [[ -n $entry ]] && buildah config --entrypoint "$entry" "$ctr"
  buildah commit --quiet "$ctr" "$image" >/dev/null
  buildah rm "$ctr" >/dev/null
  buildah push --quiet "$image" "oci-archive:$out.part:$image" >/dev/null
  mv "$out.part" "$out"
}

pause() {
  local key; key=$(cat "$here/pause/main.go" "$here/pause/go.mod" | sha256sum)
  local out; out=$(archive pause "$key")
  if [[ ! -f $out ]]; then
    echo ">> building localhost/kabin-pause:1" >&2
    local tmp; tmp=$(mktemp -d)
    (cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/pause" .)
    from_scratch localhost/kabin-pause:1 "$out" "$tmp/pause" /pause '["/pause"]'
    rm -rf "$tmp"
  fi
  echo "$out"
}

busybox() {
  if [[ ! -x /bin/busybox ]] || ! /bin/busybox --list | grep -qx wget || ldd /bin/busybox >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static >/dev/null
  fi
  local key; key="$(sha256sum /bin/busybox) $(sed -n '/^busybox() {/,/^}/p' "$0" | sha256sum)"
  local out; out=$(archive busybox "$key")
  if [[ ! -f $out ]]; then
    echo ">> building localhost/kabin-busybox:1" >&2
    local ctr; ctr=$(buildah from scratch)
    buildah copy --quiet --chmod 0755 "$ctr" /bin/busybox /bin/busybox >/dev/null
    buildah run "$ctr" -- /bin/busybox --install -s /bin
    buildah run "$ctr" -- /bin/mkdir -m 1777 /tmp
    buildah config --cmd '["/bin/sh"]' --user 65534:65534 "$ctr"
    buildah commit --quiet "$ctr" localhost/kabin-busybox:1 >/dev/null
    buildah rm "$ctr" >/dev/null
    buildah push --quiet localhost/kabin-busybox:1 "oci-archive:$out.part:localhost/kabin-busybox:1" >/dev/null
    mv "$out.part" "$out"
  fi
  echo "$out"
}

session_image() {  # session_image <name>: images/<name>/Containerfile, built on the bases
  local dir="$root/images/$1" image="localhost/kabin-$1:1"
  local key; key=$(cat "$dir"/* "$root/hack/bases.sh" | sha256sum)
  local out; out=$(archive "$1" "$key")
  if [[ ! -f $out ]]; then
    echo ">> building $image ($(date +%T))" >&2
    # shellcheck source=../bases.sh
    source "$root/hack/bases.sh"
    minbase
    base "localhost/kabin-base-python:$suite" 'python3 python3-venv ca-certificates'
    # The registries are reached through a TLS-inspecting proxy: its CA bundle goes in as
    # a build secret, never into a layer.
    buildah build --quiet --layers --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt \
      --build-arg "BASE=localhost/kabin-base-python:$suite" -t "$image" "$dir" >/dev/null
    buildah push --quiet "$image" "oci-archive:$out.part:$image" >/dev/null
    mv "$out.part" "$out"
    echo ">> built $image ($(date +%T))" >&2
  fi
  echo "$out"
}

kabin_image() {  # kabin's own image, for the agent: rebuilt when its sources change
  local version; version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml")
  local image="localhost/kabin:$version"
  local key; key=$(cd "$root" && git ls-files -s -- Dockerfile pyproject.toml requirements.lock operator \
    | sha256sum; cd "$root" && git diff HEAD -- Dockerfile pyproject.toml requirements.lock operator | sha256sum)
  local out; out=$(archive kabin "$key")
  if [[ ! -f $out ]]; then
    # The image's own checks, less running its operator (make test's test_image does).
    KABIN_IMAGE="$image" KABIN_IMAGE_CHECK_OPERATOR=0 "$root/hack/image.sh" >/dev/null
    buildah push --quiet "$image" "oci-archive:$out.part:$image" >/dev/null
    mv "$out.part" "$out"
  fi
  echo "$out"
}

archives=("$(pause)" "$(busybox)" "$(kabin_image)")
for dir in "$root"/images/*/; do archives+=("$(session_image "$(basename "$dir")")"); done
case "${1:-build}" in
  build) printf '%s\n' "${archives[@]}" ;;
  import)
    socket=${2:?usage: images.sh import SOCKET [LIST]} list=${3:-/dev/null}
    for a in "${archives[@]}"; do
      # An archive's name is keyed by what it is made from: one in LIST is there already.
      grep -qxF "$a" "$list" 2>/dev/null && continue
      # ctr warns of cgroup v1 on every call: keep its output for a failure only.
      out=$(ctr --address "$socket" -n k8s.io images import "$a" 2>&1) \
        || { echo "importing $a failed: $out" >&2; exit 1; }
      [[ $list == /dev/null ]] || echo "$a" >> "$list"
    done ;;
  *) echo "usage: images.sh build | import SOCKET [LIST]" >&2; exit 2 ;;
esac
