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
status=0
bash "$here/apt-install.sh" real-node-deps "${packages[@]}" || status=$?
case $status in
  0) ;;
  2) exit 0 ;;  # no root: the real-node tests skip, naming what is missing
  *) exit "$status" ;;
esac
exec bash "$here/build-tools.sh" --real-nodes
