#!/usr/bin/env bash
# Lints the charts under charts/ with chart-testing (ct): Chart.yaml against ct's schema,
# yamllint on Chart.yaml and values files, `helm lint --strict` once per
# charts/<chart>/ci/*-values.yaml. Needs ct and helm (ci/build-tools.sh), and yamllint
# and yamale (the dev extras of pyproject.toml, e.g. in .venv).
#   ci/ct-lint.sh [extra ct lint flags]
# Env: RAY_OPERATOR_TOOLS (tool cache root, default ~/.cache/ray-operator-tools).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${RAY_OPERATOR_TOOLS:-$HOME/.cache/ray-operator-tools}
# shellcheck source=versions.env
source "$repo/ci/versions.env"
etc="$cache/ct-$CT_VERSION/etc"
export PATH="$cache/bin:$repo/.venv/bin:$PATH"

for tool in ct helm yamllint yamale; do
  if ! command -v "$tool" >/dev/null; then
    echo "ct-lint: $tool not found (run make tools and make venv)" >&2
    exit 1
  fi
done
for file in lintconf.yaml chart_schema.yaml; do
  if [[ ! -f "$etc/$file" ]]; then
    echo "ct-lint: $etc/$file is missing (run make tools)" >&2
    exit 1
  fi
done

# ct finds charts through git, so it runs from the repository root.
cd "$repo"
exec ct lint --config ci/ct.yaml \
  --lint-conf "$etc/lintconf.yaml" \
  --chart-yaml-schema "$etc/chart_schema.yaml" \
  --all "$@"
