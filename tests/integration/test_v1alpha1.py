"""`ray.io/v1alpha1` is served next to `ray.io/v1` (stored), without conversion, as
KubeRay serves it: an old manifest applies, the operator reconciles it, and it reads
back the same through either version."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from ray_operator import constants as c
from tests.clusters import Clusters
from tests.manifests import raycluster, worker_group


def test_a_v1alpha1_manifest_applies_and_is_reconciled(api_client, namespace, run_operator):
    clusters = Clusters(api_client, namespace)
    custom = client.CustomObjectsApi(api_client)
    run_operator(namespace)
    body = raycluster("old", worker_group("cpu", 2))
    body["apiVersion"] = "ray.io/v1alpha1"
    body["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"name": "gcs-server", "containerPort": 6379}
    ]
    custom.create_namespaced_custom_object(c.GROUP, "v1alpha1", namespace, c.PLURAL, body)

    status = clusters.wait_state("old")["status"]
    assert status["desiredWorkerReplicas"] == 2
    assert len(clusters.pods("old", "cpu")) == 2
    as_v1 = clusters.get("old")
    as_alpha = custom.get_namespaced_custom_object(c.GROUP, "v1alpha1", namespace, c.PLURAL, "old")
    assert as_v1["apiVersion"] == "ray.io/v1" and as_alpha["apiVersion"] == "ray.io/v1alpha1"
    assert as_alpha["spec"] == as_v1["spec"]
    assert as_alpha["status"]["state"] == c.STATE_READY

    # A change through v1alpha1 is acted on like any other.
    custom.patch_namespaced_custom_object(
        c.GROUP, "v1alpha1", namespace, c.PLURAL, "old",
        [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 1}],
        _content_type="application/json-patch+json",
    )  # fmt: skip
    clusters.wait_pods("old", 1, "cpu")


def test_v1alpha1_validates_our_fields(api_client, namespace, crd_installed):
    custom = client.CustomObjectsApi(api_client)
    body = raycluster("dup", worker_group("cpu", 1), worker_group("cpu", 1))
    body["apiVersion"] = "ray.io/v1alpha1"
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(c.GROUP, "v1alpha1", namespace, c.PLURAL, body)
    assert err.value.status == 422
    assert "groupName must be unique" in err.value.body
