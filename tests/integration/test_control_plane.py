"""Proof that the local control plane is the real thing: scheduling, kwok's fake kubelet,
garbage collection, RBAC with real ServiceAccount tokens, CRD schema + CEL validation
and Pod Security admission."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from ray_operator_dev.devcluster import ControlPlane
from tests.kubehelpers import apply_crds, wait_for


def _pod_ready(pod: client.V1Pod) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])
    )


def test_deployment_pods_run_on_fake_nodes(api_client, namespace):
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "c",
                                "image": "example.invalid/web:1",
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                            }
                        ]
                    },
                },
            },
        },
    )

    def ready_pods():
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        return pods if len(pods) == 3 and all(_pod_ready(p) for p in pods) else None

    pods = wait_for(ready_pods, timeout=60, what="3 Running/Ready pods")
    for pod in pods:
        assert pod.spec.node_name.startswith("kwok-")
        assert pod.status.pod_ip
    deployment = wait_for(
        lambda: (
            (d := apps.read_namespaced_deployment("web", namespace)).status.ready_replicas == 3
            and d
        )
    )
    assert deployment.status.available_replicas == 3


def test_gpu_node_takes_gpu_pods(api_client, namespace):
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "gpu"},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "example.invalid/cuda:1",
                        "resources": {"limits": {"nvidia.com/gpu": "2"}},
                    }
                ]
            },
        },
    )

    def ready_pod():
        pod = core.read_namespaced_pod("gpu", namespace)
        return pod if _pod_ready(pod) else None

    pod = wait_for(ready_pod, what="the GPU pod Running/Ready")
    assert pod.spec.node_name.startswith("kwok-gpu-")


def test_garbage_collection_follows_owner_references(api_client, namespace):
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dependent", "ownerReferences": [ref]}}
    )
    core.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
            return False
        except ApiException as err:
            return err.status == 404

    wait_for(dependent_gone, timeout=60, what="garbage collection of the dependent")


def test_rbac_denies_then_allows_service_account(api_client, namespace, sa_api_client):
    sa_client = sa_api_client(namespace, "reader")
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(sa_client).list_namespaced_pod(namespace)
    assert denied.value.status == 403

    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    pods = wait_for(
        lambda: _try_list(client.CoreV1Api(sa_client), namespace),
        timeout=30,
        what="RBAC grant to take effect",
    )
    assert pods.items == []


def _try_list(core: client.CoreV1Api, namespace: str):
    try:
        return core.list_namespaced_pod(namespace)
    except ApiException as err:
        if err.status == 403:
            return None
        raise


MIN_MAX_MESSAGE = "spec.min must not exceed spec.max: lower min or raise max"
WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.example"},
    "spec": {
        "group": "test.example",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "min": {"type": "integer", "minimum": 0},
                                    "max": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.min <= self.max",
                                        "message": MIN_MAX_MESSAGE,
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_schema_and_cel_rule_reject_invalid_objects(api_client, namespace, tmp_path):
    import yaml

    path = tmp_path / "widget.yaml"
    path.write_text(yaml.safe_dump(WIDGET_CRD))
    apply_crds(api_client, [path])
    custom = client.CustomObjectsApi(api_client)

    def create(spec: dict):
        body = {
            "apiVersion": "test.example/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": spec,
        }
        return custom.create_namespaced_custom_object(
            "test.example", "v1", namespace, "widgets", body, dry_run="All"
        )

    assert create({"min": 1, "max": 2})["spec"] == {"min": 1, "max": 2}
    with pytest.raises(ApiException) as cel:
        create({"min": 3, "max": 2})
    assert cel.value.status == 422
    assert MIN_MAX_MESSAGE in cel.value.body
    with pytest.raises(ApiException) as schema:
        create({"min": -1, "max": 2})
    assert schema.value.status == 422
    assert "spec.min" in schema.value.body


def test_restricted_pod_security_rejects_privileged_pod(api_client, namespace):
    core = client.CoreV1Api(api_client)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    privileged = {
        "metadata": {"name": "root"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "example.invalid/x:1",
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(namespace, privileged)
    assert err.value.status == 403
    assert "violates PodSecurity" in err.value.body
    assert "restricted" in err.value.body

    compliant = {
        "metadata": {"name": "ok"},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "c",
                    "image": "example.invalid/x:1",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "runAsUser": 1000,
                    },
                }
            ],
        },
    }
    assert core.create_namespaced_pod(namespace, compliant).metadata.name == "ok"


def test_two_control_planes_side_by_side(control_plane: ControlPlane, api_client):
    """A second run gets its own ports and directory, and stopping it stops exactly its
    own processes: the session's control plane keeps serving."""
    other = ControlPlane.in_temp_dir().start()
    try:
        assert other.root != control_plane.root
        assert set(other.ports.values()).isdisjoint(control_plane.ports.values())
        other_pids = {p.pid for p in other.processes.values()}
        assert other.request("/version")["gitVersion"].startswith("v1.")
    finally:
        other.cleanup()
    for pid in other_pids:
        assert not _alive(pid)
    for proc in control_plane.processes.values():
        assert proc.poll() is None
    assert client.CoreV1Api(api_client).list_namespace().items


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return False


def test_version_is_the_pinned_release(control_plane: ControlPlane):
    from ray_operator_dev.toolcache import pinned

    version = control_plane.request("/version")
    assert version["gitVersion"] == pinned("KUBERNETES_VERSION")
