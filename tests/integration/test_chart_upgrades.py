# ruff: noqa: F811 (fixtures imported from test_chart are parameters here)
"""Upgrades that do not clobber running clusters, on the local control plane.

- Helm 4 (server-side apply) keeps the replica count Ray's autoscaler chose through a
  `helm upgrade` that changes another group or another value: the chart leaves an
  autoscaled group's `replicas` out, and `workerGroupSpecs` is a list map keyed by
  `groupName`, so the apply merges group by group.
- Helm 3 (a JSON merge patch from the previous manifest to the new one) keeps it only
  when nothing inside `workerGroupSpecs` changed; any change there replaces the whole
  list, and every autoscaled group's `replicas` returns to the CRD default 0 (the
  operator then keeps minReplicas) with its `workersToDelete` gone. This test pins down
  exactly that, as the chart README documents it.
- Upgrading from the previous chart version: `--reuse-values` lacks the new chart's
  defaults and fails; `--reset-then-reuse-values` works; a renamed value is refused by
  the schema naming the key, and the README's migration (get values, rename, upgrade
  with `--reset-values -f`) works.
- `operator.enabled: false` installs only RayClusters, and a missing watched namespace
  fails the install naming it unless `createNamespaces` creates it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from ray_operator import constants as c
from tests.chart.render import CHART, REPO, HelmError
from tests.clusters import Clusters
from tests.integration.test_chart import (  # noqa: F401 (fixtures)
    SMALL,
    Helm,
    chart_with_changed_crd,
    helm4_cli,
    helm_cli,
    make_namespace,
    release_name,
    restore_crd,
)
from tests.kubehelpers import wait_for

# The chart's last version before these changes (the commit this branch started from).
PREVIOUS_CHART_COMMIT = "ee0378c"


def autoscaled(**labels: str) -> dict[str, Any]:
    """A team's release: no operator, no CRD, one autoscaled cluster with two groups."""
    return {
        "operator": {"enabled": False},
        "crds": {"install": False},
        "rayClusters": {"auto": {
            "labels": labels,
            "head": {"resources": SMALL},
            "autoscaling": {"enabled": True},
            "workerGroups": {
                "cpu": {"minReplicas": 1, "maxReplicas": 8, "resources": SMALL},
                "gpu": {"minReplicas": 0, "maxReplicas": 2, "resources": SMALL},
            },
        }},
    }  # fmt: skip


def groups(api: client.ApiClient, namespace: str, name: str = "auto") -> dict[str, Any]:
    body = client.CustomObjectsApi(api).get_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.PLURAL, name
    )
    return {g["groupName"]: g for g in body["spec"]["workerGroupSpecs"]}


def autoscaler_patch(api: client.ApiClient, namespace: str, group: str, replicas: int,
                     to_delete: list[str], name: str = "auto") -> None:  # fmt: skip
    """What Ray's autoscaler sends, for the group named `group`."""
    index = list(groups(api, namespace, name)).index(group)
    Clusters(api, namespace).scale_as_autoscaler(name, index, replicas, to_delete)


def test_helm4_upgrade_keeps_the_autoscaler_replicas(
    helm4_cli: Helm, api_client: client.ApiClient, namespace: str, release_name: str,
    crd_installed,
) -> None:  # fmt: skip
    helm4_cli.install(release_name, namespace, autoscaled())
    assert groups(api_client, namespace)["cpu"]["replicas"] == 0  # the CRD default
    autoscaler_patch(api_client, namespace, "cpu", 5, ["auto-cpu-worker-x"])

    # another value (a label of the cluster) and another group (gpu's maxReplicas)
    changed = autoscaled(team="a")
    changed["rayClusters"]["auto"]["workerGroups"]["gpu"]["maxReplicas"] = 4
    helm4_cli.upgrade(release_name, namespace, changed)
    after = groups(api_client, namespace)
    assert after["cpu"]["replicas"] == 5
    assert after["cpu"]["scaleStrategy"] == {"workersToDelete": ["auto-cpu-worker-x"]}
    assert after["gpu"]["maxReplicas"] == 4

    # the same group's own settings too: only the fields the chart renders change
    changed["rayClusters"]["auto"]["workerGroups"]["cpu"]["maxReplicas"] = 10
    helm4_cli.upgrade(release_name, namespace, changed)
    after = groups(api_client, namespace)
    assert (after["cpu"]["replicas"], after["cpu"]["maxReplicas"]) == (5, 10)
    body = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.PLURAL, "auto"
    )
    assert body["metadata"]["labels"]["team"] == "a"
    helm_fields = json.dumps(
        [m for m in body["metadata"]["managedFields"] if m["manager"] == "helm"]
    )
    assert '"f:maxReplicas"' in helm_fields and '"f:replicas"' not in helm_fields


def test_helm4_upgrade_refuses_to_reset_a_replicas_set_by_hand(
    helm4_cli: Helm, api_client: client.ApiClient, namespace: str, release_name: str,
    crd_installed,
) -> None:  # fmt: skip
    """Without autoscaling the chart owns replicas: a `kubectl patch` of it conflicts
    with the next Helm 4 upgrade, which fails instead of resetting it in silence."""
    values = autoscaled()
    cluster = values["rayClusters"]["auto"]
    cluster["autoscaling"] = {"enabled": False}
    cluster["workerGroups"]["cpu"]["replicas"] = 1
    helm4_cli.install(release_name, namespace, values)
    autoscaler_patch(api_client, namespace, "cpu", 3, [])
    cluster["workerGroups"]["gpu"]["maxReplicas"] = 4
    with pytest.raises(HelmError, match=r"(?s)conflict.*replicas"):
        helm4_cli.upgrade(release_name, namespace, values)
    assert groups(api_client, namespace)["cpu"]["replicas"] == 3


def test_helm3_upgrade_resets_autoscaler_replicas_only_when_a_group_changes(
    helm_cli: Helm, api_client: client.ApiClient, namespace: str, release_name: str,
    crd_installed,
) -> None:  # fmt: skip
    helm_cli.install(release_name, namespace, autoscaled())
    autoscaler_patch(api_client, namespace, "cpu", 5, ["auto-cpu-worker-x"])

    # a change outside workerGroupSpecs: the list is not in the patch, replicas stays
    helm_cli.upgrade(release_name, namespace, autoscaled(team="a"))
    assert groups(api_client, namespace)["cpu"]["replicas"] == 5

    # a change to another group: Helm 3 replaces the whole list
    changed = autoscaled(team="a")
    changed["rayClusters"]["auto"]["workerGroups"]["gpu"]["maxReplicas"] = 4
    helm_cli.upgrade(release_name, namespace, changed)
    after = groups(api_client, namespace)
    assert after["gpu"]["maxReplicas"] == 4
    assert after["cpu"]["replicas"] == 0  # reset: the operator keeps minReplicas (1)
    assert after["cpu"].get("scaleStrategy", {}).get("workersToDelete", []) == []


# -- upgrading from the previous chart version ---------------------------------------------


def previous_chart(tmp_path: Path) -> Path:
    """The chart as it was at PREVIOUS_CHART_COMMIT, extracted from git."""
    archive = tmp_path / "previous.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(archive), PREVIOUS_CHART_COMMIT,
         "charts/ray-operator"], cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "previous", filter="data")
    return tmp_path / "previous" / "charts" / "ray-operator"


def chart_with_old_value_name(tmp_path: Path) -> Path:
    """The current chart as an older version would have it: `config.workers` was then
    called `config.threads`."""
    chart = tmp_path / "old-name"
    shutil.copytree(CHART, chart)
    values = chart / "values.yaml"
    text = values.read_text()
    assert text.count("\n  workers: 4\n") == 1
    values.write_text(text.replace("\n  workers: 4\n", "\n  threads: 4\n"))
    schema_file = chart / "values.schema.json"
    schema = json.loads(schema_file.read_text())
    props = schema["properties"]["config"]["properties"]
    props["threads"] = props.pop("workers")
    schema_file.write_text(json.dumps(schema))
    deployment = chart / "templates" / "deployment.yaml"
    deployment.write_text(
        deployment.read_text().replace(".Values.config.workers", ".Values.config.threads")
    )
    return chart


def deployment_args(api: client.ApiClient, namespace: str, release: str) -> list[str]:
    deployment = client.AppsV1Api(api).read_namespaced_deployment(
        f"{release}-ray-operator", namespace
    )
    return deployment.spec.template.spec.containers[0].args


def test_upgrade_from_the_previous_chart_version(
    helm_cli: Helm, api_client: client.ApiClient, namespace: str, release_name: str,
    tmp_path: Path, crd_installed,
) -> None:  # fmt: skip
    values = {"crds": {"install": False}, "config": {"workers": 2},
              "rayClusters": {"demo": {"head": {"resources": SMALL},
                                       "workerGroups": {"cpu": {"replicas": 2}}}}}  # fmt: skip
    helm_cli.install(release_name, namespace, values, chart=previous_chart(tmp_path))

    # --reuse-values keeps the old chart's defaults too: the new keys are missing
    with pytest.raises(HelmError, match="operator"):
        helm_cli.run("upgrade", release_name, str(CHART), "-n", namespace, "--reuse-values")
    # --reset-then-reuse-values: the new defaults plus the values given last time
    helm_cli.run("upgrade", release_name, str(CHART), "-n", namespace, "--reset-then-reuse-values")
    assert "--workers=2" in deployment_args(api_client, namespace, release_name)
    assert groups(api_client, namespace, "demo")["cpu"]["replicas"] == 2


def test_upgrade_across_a_renamed_value(
    helm_cli: Helm, api_client: client.ApiClient, namespace: str, release_name: str,
    tmp_path: Path, crd_installed,
) -> None:  # fmt: skip
    old = chart_with_old_value_name(tmp_path)
    values = {"crds": {"install": False}}
    helm_cli.install(release_name, namespace, values, "--set", "config.threads=3", chart=old)
    assert "--workers=3" in deployment_args(api_client, namespace, release_name)

    # the old name is refused, naming it
    with pytest.raises(HelmError, match=r"(?s)/config.*'threads' not allowed"):
        helm_cli.run(
            "upgrade", release_name, str(CHART), "-n", namespace, "--reset-then-reuse-values"
        )
    # the README's migration: get the values, rename, upgrade with them alone
    given = json.loads(helm_cli.run("get", "values", release_name, "-n", namespace, "-o", "json"))
    given["config"]["workers"] = given["config"].pop("threads")
    migrated = tmp_path / "migrated.json"
    migrated.write_text(json.dumps(given))
    helm_cli.run(
        "upgrade", release_name, str(CHART), "-n", namespace, "--reset-values", "-f", str(migrated)
    )
    assert "--workers=3" in deployment_args(api_client, namespace, release_name)


# -- a team's release without the operator; namespaces --------------------------------------


def test_operator_disabled_installs_only_rayclusters(
    helm4_cli: Helm, api_client: client.ApiClient, namespace: str, release_name: str,
    crd_installed,
) -> None:  # fmt: skip
    out = helm4_cli.install(release_name, namespace, autoscaled())
    assert "no operator (operator.enabled=false)" in out
    manifest = helm4_cli.run("get", "manifest", release_name, "-n", namespace)
    kinds = sorted(line.split(":", 1)[1].strip() for line in manifest.splitlines()
                   if line.startswith("kind:"))  # fmt: skip
    assert kinds == ["RayCluster"]
    assert client.AppsV1Api(api_client).list_namespaced_deployment(namespace).items == []
    assert "cpu" in groups(api_client, namespace)


def test_missing_watched_namespace_fails_unless_created(
    helm_cli: Helm, api_client: client.ApiClient, namespace: str, release_name: str,
    crd_installed,
) -> None:  # fmt: skip
    missing = f"absent-{uuid.uuid4().hex[:6]}"
    values = {"crds": {"install": False}, "watchNamespaces": [missing],
              "rbac": {"aggregateUserRoles": False}}  # fmt: skip
    with pytest.raises(HelmError, match=f'namespaces "{missing}" not found'):
        helm_cli.install(release_name, namespace, values)
    helm_cli.uninstall(release_name, namespace)  # the failed release

    values["createNamespaces"] = True
    out = helm_cli.install(release_name, namespace, values)
    assert missing in out
    core = client.CoreV1Api(api_client)
    created = core.read_namespace(missing)
    assert created.metadata.annotations["helm.sh/resource-policy"] == "keep"
    rbac = client.RbacAuthorizationV1Api(api_client)
    assert rbac.read_namespaced_role(f"{release_name}-ray-operator", missing).rules
    helm_cli.uninstall(release_name, namespace)
    assert core.read_namespace(missing).status.phase == "Active"  # kept
    core.delete_namespace(missing)


# -- rollback and the kept CRD ---------------------------------------------------------------


def test_rollback_rolls_the_crd_back_and_a_kept_crd_needs_take_ownership(
    helm_cli: Helm, api_client: client.ApiClient, namespace: str, release_name: str,
    tmp_path: Path, restore_crd,
) -> None:  # fmt: skip
    ext = client.ApiextensionsV1Api(api_client)

    def columns() -> list[str]:
        version = ext.read_custom_resource_definition(c.CRD_NAME).spec.versions[0]
        return [col.name for col in version.additional_printer_columns]

    lean = {"rbac": {"aggregateUserRoles": False}, "tests": {"enabled": False}}
    helm_cli.install(release_name, namespace, lean, "--take-ownership")
    helm_cli.upgrade(release_name, namespace, lean, chart=chart_with_changed_crd(tmp_path))
    assert "upgrade-test" in columns()
    helm_cli.run("rollback", release_name, "1", "-n", namespace, "--wait")
    assert "upgrade-test" not in columns()  # the CRD went back with the release

    helm_cli.uninstall(release_name, namespace)
    assert ext.read_custom_resource_definition(c.CRD_NAME)  # kept
    other = f"{release_name}-b"
    with pytest.raises(HelmError, match="cannot be imported into the current release"):
        helm_cli.install(other, namespace, lean)
    helm_cli.releases.remove((other, namespace))  # refused before it was recorded
    helm_cli.install(other, namespace, lean, "--take-ownership")
    crd = ext.read_custom_resource_definition(c.CRD_NAME)
    assert crd.metadata.annotations["meta.helm.sh/release-name"] == other


# -- the helm test pod -------------------------------------------------------------------------


def test_failed_helm_test_leaves_no_pod_behind(
    helm_cli: Helm, api_client: client.ApiClient, namespace: str, release_name: str,
    crd_installed,
) -> None:  # fmt: skip
    """kwok never completes a container: the test plays the kubelet and reports the
    test pod Failed. Helm deletes it anyway (hook-failed), so uninstall leaves none."""
    core = client.CoreV1Api(api_client)
    helm_cli.install(release_name, namespace, {"crds": {"install": False}})
    result = helm_cli.test_as_kubelet(core, release_name, namespace, "Failed")
    assert "error" in result, result.get("out")
    test_pod = f"{release_name}-ray-operator-test"

    def phase() -> str | None:
        try:
            return core.read_namespaced_pod(test_pod, namespace).status.phase
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    wait_for(lambda: phase() is None, timeout=60, what="failed test pod deleted by Helm")
    helm_cli.uninstall(release_name, namespace)
    assert phase() is None  # nothing of the test outlives the release
