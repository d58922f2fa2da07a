#!/usr/bin/env bash
# What the tests need from Debian beyond Python, Go and Node.js: a real sshd and ssh
# client (the activity tests), Chromium (the dashboard's browser tests, driven by
# Playwright), and for the real node: the CNI plugins, iptables, buildah (its images)
# and busybox-static (a test image). Installs only what is missing; needs root or sudo
# the first time.
set -euo pipefail
need=()
[[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v chromium >/dev/null || need+=(chromium)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v buildah >/dev/null || need+=(buildah)
[[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v openssl >/dev/null || need+=(openssl)
((${#need[@]})) || exit 0
sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
echo "installing ${need[*]} from Debian" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
