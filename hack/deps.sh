#!/usr/bin/env bash
# What the tests need from Debian beyond Python, Go and Node.js: a real sshd and ssh
# client (the activity tests) and Chromium (the dashboard's browser tests, driven by
# Playwright). Installs only what is missing; needs root or sudo the first time.
set -euo pipefail
need=()
[[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v chromium >/dev/null || need+=(chromium)
((${#need[@]})) || exit 0
sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
echo "installing ${need[*]} from Debian" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
