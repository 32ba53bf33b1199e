"""`operator.enabled: false`: a team's release with only RayClusters, for an operator
installed by another release; NOTES describes what was rendered."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.chart.render import CHART, by_kind, helm, render_chart

OPERATOR_KINDS = {
    "Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
    "RoleBinding", "Service", "ServiceMonitor", "PrometheusRule", "Pod",
}  # fmt: skip


def test_operator_off_renders_only_the_rayclusters() -> None:
    values = {
        "operator": {"enabled": False}, "crds": {"install": False}, "replicaCount": 2,
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                    "podMonitor": {"enabled": True}},
        "rayClusters": {"team-a": {"workerGroups": {"cpu": {"replicas": 1}}}},
    }  # fmt: skip
    docs = render_chart(values=values, namespace="team-a")
    assert sorted(d["kind"] for d in docs) == ["PodMonitor", "RayCluster"]
    assert not {d["kind"] for d in docs} & OPERATOR_KINDS
    (pm,) = by_kind(docs, "PodMonitor")
    # no operator here, so no watched namespaces: this release's namespace only
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["team-a"]}


def test_operator_off_still_checks_values() -> None:
    proc = helm(
        "template", "r", str(CHART), "--set", "operator.enabled=false",
        "--set", "rayClusters.Team_A.rayVersion=2.60.0", check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and 'rayClusters key "Team_A"' in proc.stderr


def notes(tmp_path: Path, *sets: str) -> str:
    """NOTES.txt rendered offline: `helm template` skips it, so a copy of the chart
    turns it into a named template that a manifest emits as a string."""
    chart = tmp_path / "chart"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        text = (chart / "templates" / "NOTES.txt").read_text()
        (chart / "templates" / "NOTES.txt").unlink()
        (chart / "templates" / "_notes.tpl").write_text(
            '{{- define "notes" -}}\n' + text + "{{- end }}\n"
        )
        (chart / "templates" / "notes.yaml").write_text('notes: {{ include "notes" . | toJson }}\n')
    args = ["template", "r", str(chart), "-n", "ops", "--show-only", "templates/notes.yaml"]
    for s in sets:
        args += ["--set", s]
    return yaml.safe_load(helm(*args).stdout)["notes"]


def test_notes_name_only_what_was_rendered(tmp_path: Path) -> None:
    default = notes(tmp_path)
    assert "ClusterRole r-ray-operator" in default and "Deployment r-ray-operator" in default
    no_rbac = notes(tmp_path, "rbac.create=false")
    assert "(ClusterRole r-ray-operator)" not in no_rbac
    assert "no RBAC" in no_rbac
    off = notes(
        tmp_path,
        "operator.enabled=false",
        "crds.install=false",
        "rayClusters.demo.rayVersion=2.60.0",
    )
    assert "Deployment" not in off and "rollout status" not in off and "helm test" not in off
    assert "no operator" in off and "ops/demo" in off
    assert "metrics: Service" not in off and "ServiceMonitor" not in off
    namespaced = notes(tmp_path, "watchNamespaces={team-a}")
    assert "team-a" in namespaced and "must exist" in namespaced
    created = notes(tmp_path, "watchNamespaces={team-a}", "createNamespaces=true")
    assert "creates the namespaces" in created
