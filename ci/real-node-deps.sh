#!/usr/bin/env bash
# What a real node needs beyond the control plane (opt-in; `make real-node-deps`):
#   - Debian packages: containerd, runc, the CNI plugins (bridge, host-local,
#     loopback), iptables (kube-proxy), busybox-static (the node's smoke-test image),
#     mmdebstrap (the Debian rootfs of `make images`), buildah (builds
#     operator/Dockerfile unchanged, without a daemon, in a test),
#     gcc + libc6-dev (the pod sandbox's `pause`, built from the Kubernetes source);
#   - kubelet, kube-proxy, CoreDNS and pause, built into the tool cache
#     (ci/build-tools.sh --real-nodes).
# Installs packages only when one is missing (apt-get update once, then install), and
# only as root; without root it says so and succeeds (the real-node tests then skip).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
packages=(containerd runc containernetworking-plugins iptables busybox-static gcc libc6-dev mmdebstrap buildah)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    # Not an error: the real-node tests skip, naming what is missing.
    echo "[real-node-deps] missing ${missing[*]}; installing them needs root: skipped" >&2
    exit 0
  fi
  echo "[real-node-deps] installing ${missing[*]}" >&2
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
exec bash "$here/build-tools.sh" --real-nodes
