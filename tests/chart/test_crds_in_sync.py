"""The chart templates its CRDs from charts/ray-operator/files/crds/, a committed copy of
the repository's crds/ (Helm cannot read files outside the chart). They must match byte
for byte: `make crds` writes both."""

from __future__ import annotations

from tests.chart.render import CHART, REPO

CRDS = REPO / "crds"
CHART_CRDS = CHART / "files" / "crds"


def test_chart_crds_are_byte_identical_to_crds_dir() -> None:
    source = {p.name: p.read_bytes() for p in sorted(CRDS.glob("*.yaml"))}
    copy = {p.name: p.read_bytes() for p in sorted(CHART_CRDS.glob("*.yaml"))}
    assert source, f"no CRDs in {CRDS}"
    assert sorted(copy) == sorted(source), (
        f"{CHART_CRDS} holds {sorted(copy)}, crds/ holds {sorted(source)}: run make crds"
    )
    stale = [name for name in source if copy[name] != source[name]]
    assert not stale, f"{CHART_CRDS}/{stale} differ from crds/: run make crds"
