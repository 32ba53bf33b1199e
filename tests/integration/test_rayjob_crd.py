"""The RayJob CRD on the real API server: KubeRay's manifests apply, bad ones are refused
at `kubectl apply` time with a message naming the field."""

from __future__ import annotations

import copy

import pytest
from kubernetes import client

from ray_operator import constants as c

pytestmark = pytest.mark.usefixtures("crd_installed")

CLUSTER_SPEC = {
    "rayVersion": "2.60.0",
    "headGroupSpec": {
        "rayStartParams": {},
        "template": {"spec": {"containers": [{"name": "ray-head", "image": "ray:2.60.0"}]}},
    },
}


def rayjob(name: str = "job", **spec) -> dict:
    body = {"entrypoint": "python -c 'print(1)'", "rayClusterSpec": CLUSTER_SPEC}
    body.update(spec)
    body = {k: v for k, v in body.items() if v is not None}
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.JOB_KIND,
        "metadata": {"name": name},
        "spec": copy.deepcopy(body),
    }


def create(api_client: client.ApiClient, ns: str, body: dict) -> dict:
    return client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        c.GROUP, c.VERSION, ns, c.JOB_PLURAL, body
    )


def refused(api_client: client.ApiClient, ns: str, body: dict) -> str:
    with pytest.raises(client.ApiException) as info:
        create(api_client, ns, body)
    assert info.value.status == 422, info.value.body
    return info.value.body


def test_kuberay_style_rayjob_is_accepted_with_defaults(api_client, namespace):
    made = create(
        api_client,
        namespace,
        rayjob(
            runtimeEnvYAML="pip: []\nenv_vars:\n  A: b\n",
            metadata={"owner": "me"},
            shutdownAfterJobFinishes=True,
            ttlSecondsAfterFinished=10,
            activeDeadlineSeconds=600,
            submitterConfig={"backoffLimit": 1},
            entrypointNumCpus=0.5,
            entrypointResources='{"r": 1}',
            deletionStrategy={
                "onSuccess": {"policy": "DeleteCluster"},
                "onFailure": {"policy": "DeleteNone"},
            },
        ),
    )
    spec = made["spec"]
    assert spec["submissionMode"] == c.MODE_K8S_JOB
    assert spec["backoffLimit"] == 0
    # The embedded cluster spec gets the RayCluster's own defaults.
    assert made["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"] == {}


def test_interactive_mode_needs_no_entrypoint(api_client, namespace):
    create(api_client, namespace, rayjob(entrypoint=None, submissionMode=c.MODE_INTERACTIVE))


def test_clusterselector_job_is_accepted(api_client, namespace):
    body = rayjob(rayClusterSpec=None, clusterSelector={c.CLUSTER_SELECTOR_KEY: "shared"})
    create(api_client, namespace, body)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"entrypoint": None}, "entrypoint is required"),
        ({"entrypoint": "   "}, "entrypoint is required"),
        (
            {"clusterSelector": {c.CLUSTER_SELECTOR_KEY: "x"}},
            "rayClusterSpec or clusterSelector, not both",
        ),
        ({"rayClusterSpec": None}, "one of rayClusterSpec or clusterSelector is required"),
        ({"rayClusterSpec": None, "clusterSelector": {"app": "x"}}, "clusterSelector must name"),
        ({"suspend": True}, "suspend needs shutdownAfterJobFinishes"),
        ({"ttlSecondsAfterFinished": 5}, "ttlSecondsAfterFinished needs shutdownAfterJobFinishes"),
        ({"submissionMode": "Batch"}, "submissionMode"),
        (
            {"submissionMode": c.MODE_INTERACTIVE, "backoffLimit": 2},
            "needs rayClusterSpec and a submissionMode",
        ),
        ({"activeDeadlineSeconds": 0}, "activeDeadlineSeconds"),
        ({"runtimeEnvYAML": "x" * (c.MAX_RUNTIME_ENV_YAML_LENGTH + 1)}, "runtimeEnvYAML"),
        ({"managedBy": "someone-else"}, "managedBy must be"),
        (
            {"deletionStrategy": {"onSuccess": {"policy": "DeleteCluster"}}},
            "deletionStrategy needs",
        ),
        (
            {"rayClusterSpec": {**CLUSTER_SPEC, "headGroupSpec": {"rayStartParams": {}}}},
            "spec.rayClusterSpec.headGroupSpec.template",
        ),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_rayjobs_are_refused_naming_the_field(api_client, namespace, spec, words):
    body = rayjob(**spec)
    assert words in refused(api_client, namespace, body)


def test_long_name_is_refused(api_client, namespace):
    body = rayjob(name="j" * (c.MAX_JOB_NAME_LENGTH + 1))
    assert "metadata.name must be at most" in refused(api_client, namespace, body)


def test_managed_by_is_immutable(api_client, namespace):
    create(api_client, namespace, rayjob(managedBy=c.MANAGED_BY_US))
    with pytest.raises(client.ApiException) as info:
        client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
            c.GROUP,
            c.VERSION,
            namespace,
            c.JOB_PLURAL,
            "job",
            {"spec": {"managedBy": c.MANAGED_BY_MULTIKUEUE}},
        )
    assert "managedBy is immutable" in info.value.body
