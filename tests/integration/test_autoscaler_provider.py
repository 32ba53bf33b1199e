"""Ray's own KubeRay clients against this operator: the v1 `KubeRayNodeProvider` and the
v2 `KubeRayProvider`, unmodified, pointed at the local API server and authenticated
with a token of the ServiceAccount the operator created for the cluster, so the Role
the operator wrote is what allows every call. Only where Ray finds the server, the CA
and the token is replaced (tests/ray_harness.py: `kuberay_client`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from kubernetes import client

from ray_operator import constants as c
from tests.clusters import Clusters
from tests.kubehelpers import service_account_client, wait_for
from tests.manifests import raycluster, worker_group
from tests.operator_process import OperatorProcess
from tests.ray_harness import autoscaler_credentials, kuberay_client, service_account_exists

TAG_NODE_TYPE = "ray-user-node-type"  # ray.autoscaler.tags.TAG_RAY_USER_NODE_TYPE


def two_groups(name: str) -> dict:
    return raycluster(
        name,
        worker_group("small", 0, cpu="1", memory="1Gi", maxReplicas=4),
        worker_group("large", 0, cpu="4", memory="8Gi", maxReplicas=2),
        enableInTreeAutoscaling=True,
    )


@pytest.fixture
def autoscaled(
    clusters, namespace, run_operator, control_plane, tmp_path
) -> Callable[[str], tuple[OperatorProcess, AbstractContextManager[Any]]]:
    """`autoscaled(name)`: start the operator, create the cluster, wait for its head and
    the autoscaler's ServiceAccount. Returns the operator process and a context manager
    giving Ray's KubeRay modules aimed at the local API server with that
    ServiceAccount's token."""

    def make(name: str) -> tuple[OperatorProcess, AbstractContextManager[Any]]:
        operator = run_operator(namespace)
        clusters.create(two_groups(name))
        (head,) = clusters.wait_pods(name, 1, c.HEAD_GROUP)
        creds = autoscaler_credentials(
            clusters.core,
            namespace,
            name,
            control_plane.server,
            control_plane.pki.ca_cert,
            tmp_path,
        )
        return operator, kuberay_client(creds, head_pod=head.metadata.name)

    return make


def _group_state(clusters: Clusters, name: str) -> dict[str, tuple[int, list[str]]]:
    return {
        g["groupName"]: (g["replicas"], (g.get("scaleStrategy") or {}).get("workersToDelete", []))
        for g in clusters.get(name)["spec"]["workerGroupSpecs"]
    }


def _running(clusters: Clusters, name: str, group: str, count: int) -> list[client.V1Pod]:
    def ready() -> tuple[list[client.V1Pod]] | None:
        pods = clusters.pods(name, group)
        running = [p for p in pods if p.status.phase == "Running" and p.status.container_statuses]
        return (running,) if len(pods) == count and len(running) == count else None

    return wait_for(ready, timeout=60, what=f"{count} running pods of {name}/{group}")[0]


def _names(pods: list[client.V1Pod]) -> list[str]:
    return sorted(p.metadata.name for p in pods)


def test_v1_node_provider_launches_and_terminates_through_the_operator(clusters, autoscaled):
    name = "v1"
    _, kuberay = autoscaled(name)
    with kuberay as ray:
        config = ray.autoscaling_config.AutoscalingConfigProducer(name, clusters.ns)()
        provider = ray.node_provider.KubeRayNodeProvider(config["provider"], name)

        # One autoscaler update: read, decide, submit (BatchingNodeProvider's protocol).
        (head,) = provider.non_terminated_nodes({})
        assert provider.node_tags(head)["ray-node-type"] == "head"
        assert provider.safe_to_scale()
        provider.create_node({}, {TAG_NODE_TYPE: "small"}, 2)
        provider.create_node({}, {TAG_NODE_TYPE: "large"}, 1)
        provider.post_process()
        assert _group_state(clusters, name) == {"small": (2, []), "large": (1, [])}

        small = _running(clusters, name, "small", 2)
        (large,) = _running(clusters, name, "large", 1)
        nodes = provider.non_terminated_nodes({})
        assert sorted(nodes) == sorted([head, *_names(small), large.metadata.name])
        for pod in [*small, large]:
            tags = provider.node_tags(pod.metadata.name)
            assert tags["ray-node-status"] == "up-to-date"
            assert tags[TAG_NODE_TYPE] == pod.metadata.labels[c.LABEL_GROUP]
            assert provider.internal_ip(pod.metadata.name) == pod.status.pod_ip

        # Terminate one pod of each group in one update.
        victim, keep = _names(small)
        assert provider.safe_to_scale()
        provider.terminate_node(victim)
        provider.terminate_node(large.metadata.name)
        provider.post_process()
        assert _group_state(clusters, name) == {
            "small": (1, [victim]),
            "large": (0, [large.metadata.name]),
        }
        clusters.wait_pods(name, 0, "large")
        assert _names(clusters.wait_pods(name, 1, "small")) == [keep]

        # The next update sees them gone and clears the lists: Ray's code, not ours.
        assert sorted(provider.non_terminated_nodes({})) == sorted([head, keep])
        assert provider.safe_to_scale()
        assert _group_state(clusters, name) == {"small": (1, []), "large": (0, [])}
        clusters.settle(name)  # and nothing comes back
        assert _names(clusters.pods(name, "small")) == [keep]
        assert clusters.pods(name, "large") == []

        # Scale up again from there.
        provider.non_terminated_nodes({})
        provider.create_node({}, {TAG_NODE_TYPE: "large"}, 2)
        provider.post_process()
        assert _group_state(clusters, name)["large"] == (2, [])
        _running(clusters, name, "large", 2)


def test_v2_cloud_provider_launches_and_terminates_through_the_operator(clusters, autoscaled):
    name = "v2"
    _, kuberay = autoscaled(name)
    with kuberay as ray:
        config = ray.autoscaling_config.AutoscalingConfigProducer(name, clusters.ns)()
        # No GCS is needed for scaling (it serves in-place resize and idle termination).
        provider = ray.cloud_provider.KubeRayProvider(name, config["provider"], gcs_client=None)

        provider.launch({"small": 2, "large": 1}, request_id="launch-1")
        assert provider.poll_errors() == []
        assert _group_state(clusters, name) == {"small": (2, []), "large": (1, [])}
        small = _running(clusters, name, "small", 2)
        (large,) = _running(clusters, name, "large", 1)

        instances = provider.get_non_terminated()
        workers = {i: x for i, x in instances.items() if x.node_type != c.HEAD_GROUP}
        assert sorted(workers) == sorted([*_names(small), large.metadata.name])
        assert all(x.is_running for x in workers.values())
        assert {x.node_type for x in workers.values()} == {"small", "large"}
        (head,) = [x for x in instances.values() if x.node_type == c.HEAD_GROUP]
        assert head.node_kind == ray.cloud_provider.NodeKind.HEAD

        victim, keep = _names(small)
        provider.terminate([victim, large.metadata.name], request_id="terminate-1")
        assert provider.poll_errors() == []
        assert _group_state(clusters, name) == {
            "small": (1, [victim]),
            "large": (0, [large.metadata.name]),
        }
        clusters.wait_pods(name, 0, "large")
        assert _names(clusters.wait_pods(name, 1, "small")) == [keep]
        assert sorted(provider.get_non_terminated()) == sorted([head.cloud_instance_id, keep])

        # v2 clears finished lists with its next scale request, in the same patch.
        provider.launch({"large": 1}, request_id="launch-2")
        assert provider.poll_errors() == []
        assert _group_state(clusters, name) == {"small": (1, []), "large": (1, [])}
        (new_large,) = _running(clusters, name, "large", 1)
        assert new_large.metadata.name != large.metadata.name
        assert _names(clusters.pods(name, "small")) == [keep]


def test_v2_waits_for_the_operator_and_the_operator_deletes_only_listed_pods(
    clusters, namespace, autoscaled, run_operator
):
    """The handshake's step 3: while a listed pod still exists Ray changes nothing in
    that group. The operator is stopped to keep the pod there; once it runs again it
    deletes exactly the listed pod, leaves the list alone and Ray carries on."""
    name = "pending"
    operator, kuberay = autoscaled(name)
    with kuberay as ray:
        config = ray.autoscaling_config.AutoscalingConfigProducer(name, clusters.ns)()
        provider = ray.cloud_provider.KubeRayProvider(name, config["provider"], gcs_client=None)
        provider.launch({"small": 3}, request_id="launch-1")
        victim, *others = _names(_running(clusters, name, "small", 3))
        operator.stop()

        provider.terminate([victim], request_id="terminate-1")
        assert _group_state(clusters, name)["small"] == (2, [victim])
        provider.launch({"small": 1}, request_id="launch-2")
        (error,) = provider.poll_errors()
        assert "Waiting for them to be deleted" in str(error)
        assert _group_state(clusters, name)["small"] == (2, [victim])  # unchanged

        run_operator(namespace)
        assert _names(clusters.wait_pods(name, 2, "small")) == others
        clusters.settle(name)  # not recreated, the list untouched
        assert _names(clusters.pods(name, "small")) == others
        assert _group_state(clusters, name)["small"] == (2, [victim])

        provider.launch({"small": 1}, request_id="launch-3")
        assert provider.poll_errors() == []
        assert _group_state(clusters, name)["small"] == (3, [])
        assert victim not in _names(_running(clusters, name, "small", 3))


# The calls Ray's autoscaler makes (docs/autoscaler-protocol.md), and ones it must not get.
ALLOWED = [
    ("get", "", "pods", ""),
    ("list", "", "pods", ""),
    ("watch", "", "pods", ""),
    ("patch", "", "pods", ""),
    ("patch", "", "pods", "resize"),
    ("get", "ray.io", "rayclusters", ""),
    ("patch", "ray.io", "rayclusters", ""),
]
DENIED = [
    ("create", "", "pods", ""),
    ("delete", "", "pods", ""),
    ("update", "", "pods", ""),
    ("patch", "", "pods", "status"),
    ("delete", "ray.io", "rayclusters", ""),
    ("update", "ray.io", "rayclusters", ""),
    ("create", "ray.io", "rayclusters", ""),
    ("patch", "ray.io", "rayclusters", "status"),
    ("list", "ray.io", "rayclusters", ""),
    ("get", "", "secrets", ""),
    ("create", "", "services", ""),
]


def test_the_operators_role_grants_the_autoscaler_exactly_what_it_uses(
    clusters, namespace, api_client, run_operator
):
    run_operator(namespace)
    clusters.create(two_groups("rbac"))
    wait_for(lambda: service_account_exists(clusters.core, namespace, "rbac"), what="autoscaler SA")
    authz = client.AuthorizationV1Api(
        service_account_client(api_client, namespace, "rbac", create=False)
    )
    wait_for(lambda: _allowed(authz, namespace, *ALLOWED[0]), what="RoleBinding in effect")
    for verb, group, resource, sub in ALLOWED:
        assert _allowed(authz, namespace, verb, group, resource, sub), (verb, resource, sub)
    for verb, group, resource, sub in DENIED:
        assert not _allowed(authz, namespace, verb, group, resource, sub), (verb, resource, sub)
    # and nothing in any other namespace
    assert not _allowed(authz, "default", "get", "", "pods", "")


def _allowed(
    authz: client.AuthorizationV1Api, namespace: str, verb: str, group: str, resource: str, sub: str
) -> bool:
    review = authz.create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace,
                    verb=verb,
                    group=group,
                    resource=resource,
                    subresource=sub or None,
                )
            )
        )
    )
    return bool(review.status.allowed)
