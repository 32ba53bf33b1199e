"""RBAC: exactly the rules the operator needs, in cluster or namespaced mode. "Needs"
comes from the code's own table of API calls, so a verb granted but never used, or a
call without its verb, fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ray_operator.rbac import required
from tests.chart.render import by_kind, one, render_chart

# What the code needs, from the table of API calls (operator/ray_operator/kube.py).
RECONCILE_RULES = required("namespace")
CRD_RULES = required("cluster")
LEADER_RULES = required("leader")
CHART = Path(__file__).resolve().parents[2] / "charts" / "ray-operator"


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


def test_namespaced_mode_roles_per_namespace_and_nothing_cluster_wide() -> None:
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
    # the operator waits for the CRD through a RayCluster list when it may not read it
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")


CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace"}


def test_single_namespace_install_creates_no_cluster_scoped_object() -> None:
    values = {
        "watchNamespaces": ["ops"], "crds": {"install": False},
        "rbac": {"aggregateUserRoles": False}, "replicaCount": 2,
        "rayClusters": {"team": {"workerGroups": {"cpu": {"replicas": 1}}}},
    }  # fmt: skip
    docs = render_chart(values=values, namespace="ops")
    assert not [d["kind"] for d in docs if d["kind"] in CLUSTER_SCOPED]
    assert {d["metadata"].get("namespace") for d in docs} == {"ops"}
    assert {"Deployment", "Role", "RoleBinding", "RayCluster"} <= {d["kind"] for d in docs}


def test_aggregated_user_roles_extend_admin_edit_and_view() -> None:
    docs = render_chart(show_only=["templates/userroles.yaml"])
    edit = one(docs, "ClusterRole", "release-ray-operator-rayclusters-edit")
    view = one(docs, "ClusterRole", "release-ray-operator-rayclusters-view")
    agg = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k for k, v in edit["metadata"]["labels"].items() if k.startswith(agg) and v == "true"} \
        == {agg + "admin", agg + "edit"}  # fmt: skip
    assert {k for k in view["metadata"]["labels"] if k.startswith(agg)} == {agg + "view"}
    assert flatten(edit["rules"])[("ray.io", "rayclusters")] >= {"create", "update", "delete"}
    assert flatten(edit["rules"])[("ray.io", "rayjobs")] >= {"create", "update", "delete"}
    assert flatten(view["rules"]) == {
        ("ray.io", resource): {"get", "list", "watch"}
        for resource in ("rayclusters", "rayclusters/status", "rayjobs", "rayjobs/status")
    }
    off = {"rbac": {"aggregateUserRoles": False}}
    assert not render_chart(values=off, show_only=["templates/userroles.yaml"])


def test_leader_election_role_only_with_several_replicas() -> None:
    assert not by_kind(render_chart(show_only=["templates/rbac.yaml"]), "Role")
    docs = render_chart(
        values={"replicaCount": 2}, show_only=["templates/rbac.yaml"], namespace="ops"
    )
    role = one(docs, "Role", "release-ray-operator-leader-election")
    assert role["metadata"]["namespace"] == "ops"
    assert flatten(role["rules"]) == LEADER_RULES
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named == [{
        "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
        "resourceNames": ["release-ray-operator-leader"], "verbs": ["get", "update"],
    }]  # fmt: skip
    binding = one(docs, "RoleBinding", "release-ray-operator-leader-election")
    assert binding["metadata"]["namespace"] == "ops"


def test_rbac_can_be_left_to_the_user() -> None:
    assert not render_chart(values={"rbac": {"create": False}}, show_only=["templates/rbac.yaml"])


def test_the_chart_readme_lists_exactly_these_rules() -> None:
    """The RBAC table users read before installing is the table of API calls too."""
    section = (CHART / "README.md").read_text().split("\n## RBAC\n", 1)[1].split("\n#", 1)[0]
    table: dict[tuple[str, str], set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("API group", "---"):
            continue
        group = "" if cells[0] == "core" else cells[0].strip("`")
        # "create; get, update (its own Lease only)"
        verbs = {v.strip() for v in re.split("[,;]", re.sub(r"\(.*?\)", "", cells[2]))} - {""}
        for resource in re.findall(r"`([^`]+)`", cells[1]):
            table.setdefault((group, resource), set()).update(verbs)
    assert table == {**RECONCILE_RULES, **CRD_RULES, **LEADER_RULES}
