#!/usr/bin/env bash
# Debian packages the integration tests use beyond the control plane (`make test-deps`,
# run by `make test` and `make test-integration`):
#   - redis-server (with redis-cli): the Redis that GCS fault-tolerance tests clean up
#     (tests/integration/test_gcs_ft_cleanup.py), run on a loopback port by the tests
#     themselves; the package's own service is not needed.
# Installs only what is missing (apt-get update once, then install), and only as root;
# without root it says so and succeeds (those tests then skip, naming the package).
set -euo pipefail
packages=(redis-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "[test-deps] missing ${missing[*]}; installing them needs root: skipped" >&2
  exit 0
fi
echo "[test-deps] installing ${missing[*]}" >&2
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
