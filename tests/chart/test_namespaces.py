"""createNamespaces, and the `helm test` pod that must not outlive the release."""

from __future__ import annotations

from tests.chart.render import by_kind, one, render_chart


def test_create_namespaces_creates_the_watched_ones_but_the_release_namespace() -> None:
    values = {"watchNamespaces": ["ops", "team-a", "team-b"], "createNamespaces": True}
    docs = render_chart(values=values, namespace="ops")
    created = by_kind(docs, "Namespace")
    assert sorted(n["metadata"]["name"] for n in created) == ["team-a", "team-b"]
    for ns in created:
        assert ns["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert ns["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_namespaces_are_not_created_by_default() -> None:
    docs = render_chart(values={"watchNamespaces": ["team-a"]})
    assert not by_kind(docs, "Namespace")


def test_test_pod_is_deleted_pass_or_fail() -> None:
    pod = one(render_chart(show_only=["templates/tests/test-operator.yaml"]), "Pod")
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    policies = set(annotations["helm.sh/hook-delete-policy"].split(","))
    assert policies == {"before-hook-creation", "hook-succeeded", "hook-failed"}
    # its log is printed before a failed pod is deleted
    assert annotations["helm.sh/hook-output-log-policy"] == "hook-failed"
