# The Debian bases of kabin's images, made here with debootstrap and buildah (no
# registry is reachable): sourced by hack/image.sh and hack/node/images.sh.
# shellcheck shell=bash
suite=bookworm  # Debian 12: python3 is 3.11, as pyproject.toml requires
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
command -v buildah >/dev/null && command -v debootstrap >/dev/null || {
  sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq buildah debootstrap >/dev/null
}

minbase() {  # the smallest Debian system, made once with debootstrap
  local image=localhost/kabin-debian:$suite
  buildah inspect --type image "$image" >/dev/null 2>&1 && return
  echo ">> making $image with debootstrap from $mirror" >&2
  local rootfs; rootfs=$(mktemp -d)
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb
  local ctr; ctr=$(buildah from scratch)
  buildah copy --quiet "$ctr" "$rootfs" / >/dev/null
  buildah config --env LANG=C.UTF-8 "$ctr"
  buildah commit --quiet "$ctr" "$image" >/dev/null
  buildah rm "$ctr" >/dev/null
  rm -rf "$rootfs"
}

base() {  # base <image> <packages>: the smallest Debian with these packages, made once
  local image=$1 packages=$2
  buildah inspect --type image "$image" >/dev/null 2>&1 && return
  echo ">> making $image: Debian $suite with $packages" >&2
  local ctr; ctr=$(buildah from localhost/kabin-debian:$suite)
  buildah run "$ctr" -- sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends $packages >/dev/null \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb"
  buildah commit --quiet "$ctr" "$image" >/dev/null
  buildah rm "$ctr" >/dev/null
}
