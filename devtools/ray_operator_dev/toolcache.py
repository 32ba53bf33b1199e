"""Where `ci/build-tools.sh` put a pinned tool or test asset: one folder per name and
version (`ci/versions.env`) in the tool cache, complete once it holds `.done`."""

from __future__ import annotations

from pathlib import Path

from .devcluster.controlplane import DEFAULT_TOOLS

REPO = Path(__file__).resolve().parents[2]
VERSIONS = REPO / "ci" / "versions.env"


def pinned_versions() -> dict[str, str]:
    """Every `NAME=version` line of ci/versions.env (comments skipped)."""
    found = {}
    for line in VERSIONS.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            found[name.strip()] = value.strip()
    return found


def pinned(key: str) -> str:
    """A version from ci/versions.env, e.g. pinned("KUBERAY_VERSION")."""
    try:
        return pinned_versions()[key]
    except KeyError:
        raise KeyError(f"{key} is not pinned in {VERSIONS}") from None


def folder(name: str, version_key: str) -> Path:
    """The cache folder of `name` at its pinned version; raises naming the fix."""
    path = DEFAULT_TOOLS.expanduser() / f"{name}-{pinned(version_key)}"
    if not (path / ".done").exists():
        raise FileNotFoundError(f"{path} is missing or incomplete: run `make tools`")
    return path


def prometheus_crds() -> list[Path]:
    """The Prometheus Operator's ServiceMonitor, PodMonitor and PrometheusRule CRDs."""
    return sorted(
        (folder("prometheus-crds", "PROMETHEUS_OPERATOR_VERSION") / "crds").glob("*.yaml")
    )
