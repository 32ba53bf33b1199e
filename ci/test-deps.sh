#!/usr/bin/env bash
# Debian packages the integration tests use beyond the control plane (`make test-deps`,
# run by `make test` and `make test-integration`):
#   - redis-server (with redis-cli): the Redis that GCS fault-tolerance tests clean up
#     (tests/integration/test_gcs_ft_cleanup.py), run on a loopback port by the tests
#     themselves; the package's own service is not needed.
# Installs only what is missing (apt-get update once, then install), and only as root;
# without root it says so and succeeds (those tests then skip, naming the package).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Exit 2 (no root to install): the tests that need the packages skip.
bash "$here/apt-install.sh" test-deps redis-server || [[ $? -eq 2 ]]
