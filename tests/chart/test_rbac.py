"""RBAC: exactly the rules the operator needs, in cluster or namespaced mode."""

from __future__ import annotations

from typing import Any

from tests.chart.render import by_kind, one, render_chart

RECONCILE_RULES = {
    ("ray.io", "rayclusters"): {"get", "list", "watch", "patch", "delete"},
    ("ray.io", "rayclusters/status"): {"get", "patch", "update"},
    ("", "pods"): {"get", "list", "watch", "create", "delete", "patch"},
    ("", "pods/resize"): {"patch"},
    ("", "services"): {"get", "list", "watch", "create"},
    ("", "events"): {"create", "patch"},
    ("", "serviceaccounts"): {"get", "create"},
    ("", "secrets"): {"get", "create"},  # authOptions' token Secret
    ("rbac.authorization.k8s.io", "roles"): {"get", "create"},
    ("rbac.authorization.k8s.io", "rolebindings"): {"get", "create"},
}
CRD_RULES = {("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"}}


def flatten(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, failing on wildcards and resourceNames surprises."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def assert_least_privilege(rules: list[dict[str, Any]]) -> None:
    # Secrets: get and create only; reading every Secret of a namespace (list, watch)
    # or changing one is never granted.
    secret_verbs = {v for rule in rules if "secrets" in rule["resources"] for v in rule["verbs"]}
    assert secret_verbs <= {"get", "create"}
    assert not any(rule.get("nonResourceURLs") for rule in rules)


def test_cluster_mode_one_cluster_role_with_exactly_the_needed_rules() -> None:
    docs = render_chart(show_only=["templates/rbac.yaml"], namespace="ops")
    assert sorted(d["kind"] for d in docs) == ["ClusterRole", "ClusterRoleBinding"]
    role = one(docs, "ClusterRole")
    assert flatten(role["rules"]) == {**RECONCILE_RULES, **CRD_RULES}
    assert_least_privilege(role["rules"])
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }  # fmt: skip
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "release-ray-operator", "namespace": "ops"}
    ]


def test_namespaced_mode_roles_per_namespace_and_only_crd_reading_cluster_wide() -> None:
    docs = render_chart(
        values={"watchNamespaces": ["team-a", "team-b"]}, show_only=["templates/rbac.yaml"],
        namespace="ops",
    )  # fmt: skip
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert flatten(role["rules"]) == RECONCILE_RULES
        assert_least_privilege(role["rules"])
    bindings = by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == "ops"
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert flatten(cluster_role["rules"]) == CRD_RULES
    (cluster_binding,) = by_kind(docs, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == cluster_role["metadata"]["name"]


def test_leader_election_role_only_with_several_replicas() -> None:
    assert not by_kind(render_chart(show_only=["templates/rbac.yaml"]), "Role")
    docs = render_chart(
        values={"replicaCount": 2}, show_only=["templates/rbac.yaml"], namespace="ops"
    )
    role = one(docs, "Role", "release-ray-operator-leader-election")
    assert role["metadata"]["namespace"] == "ops"
    leases = ("coordination.k8s.io", "leases")
    assert flatten(role["rules"]) == {leases: {"get", "create", "update"}}
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named == [{
        "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
        "resourceNames": ["release-ray-operator-leader"], "verbs": ["get", "update"],
    }]  # fmt: skip
    binding = one(docs, "RoleBinding", "release-ray-operator-leader-election")
    assert binding["metadata"]["namespace"] == "ops"


def test_rbac_can_be_left_to_the_user() -> None:
    assert not render_chart(values={"rbac": {"create": False}}, show_only=["templates/rbac.yaml"])
