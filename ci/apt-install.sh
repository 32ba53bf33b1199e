#!/usr/bin/env bash
# apt-install.sh WHO PACKAGE...: installs the Debian packages that are missing (one
# apt-get update, then install), only as root. Exit 0: all are installed. Exit 2: some
# are missing and there is no root to install them (said on stderr; not an error for
# the callers: the tests that need them skip, naming the package). Otherwise apt's
# own failure.
set -euo pipefail
who=$1
shift
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "[$who] missing ${missing[*]}; installing them needs root: skipped" >&2
  exit 2
fi
echo "[$who] installing ${missing[*]}" >&2
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
