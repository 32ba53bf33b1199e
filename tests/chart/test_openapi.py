"""Every object the chart renders, for a matrix of values, is valid against the pinned
Kubernetes OpenAPI schemas (built-in kinds) or its CRD (RayCluster, Prometheus
Operator kinds), strictly: no unknown field anywhere."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.openapi import errors
from tests.chart.render import CHART, render_chart

MONITORING = {
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
    }
}
MATRIX: dict[str, dict[str, Any]] = {
    "defaults": {},
    "monitoring": MONITORING,
    "namespaced-ha": {"watchNamespaces": ["team-a", "team-b"], "replicaCount": 2},
    "rayjobs": {
        "rayJobs": {
            "new": {"entrypoint": "true", "cluster": {"workerGroups": {"cpu": {}}}},
            "existing": {"entrypoint": "true", "clusterName": "c", "submissionMode": "HTTPMode"},
        }
    },
    "autoscaling-cluster": {
        "rayClusters": {"auto": {"autoscaling": {"enabled": True}, "workerGroups": {"cpu": {}}}}
    },
}


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_rendered_objects_are_valid(case: str) -> None:
    docs = render_chart(values=MATRIX[case])
    assert docs
    problems = [problem for doc in docs for problem in errors(doc)]
    assert problems == []


def test_the_example_values_render_valid_objects() -> None:
    docs = render_chart(values_files=[CHART / "examples" / "heterogeneous-values.yaml"])
    assert any(doc["kind"] == "RayCluster" for doc in docs)
    assert [problem for doc in docs for problem in errors(doc)] == []


def test_a_misplaced_field_is_caught() -> None:
    """The check has teeth: a field the schema does not know fails with its path."""
    (deployment,) = [d for d in render_chart() if d["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    deployment["spec"]["replicas"] = "two"
    found = errors(deployment)
    assert any("containers.0" in e and "imagePullPolicyy" in e for e in found), found
    assert any(e.startswith("Deployment ") and "spec.replicas" in e for e in found), found
