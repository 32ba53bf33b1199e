"""`spec.authOptions` on the local control plane, proven with real Ray 2.60 on loopback
(tests/ray_harness.py resolves the pods' secretKeyRefs as a kubelet would).

1. `mode: token`: the operator generates Secret `<cluster>` (key `auth_token`, owned by
   the RayCluster); Ray's autoscaler, the head and a worker it scales up all run with
   the token; a driver without it is refused, one with it runs a task on that worker.
2. `secretName` naming a missing Secret: a ReplicaFailure condition and a Warning event
   naming the field; the pods reference that Secret; creating it clears the condition.
3. A `rayVersion` too old for tokens: refused with the field named, no pod created,
   other clusters of the namespace go on.
"""

from __future__ import annotations

import base64

from kubernetes import client

from ray_operator import constants as c
from tests.clusters import Clusters
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group
from tests.ray_harness import RayHarness

NAME = "auth"

DRIVER = r"""
import os, sys
import ray

ray.init(address=sys.argv[1], _node_ip_address=sys.argv[2], log_to_driver=False,
         logging_level="WARNING")

@ray.remote(num_cpus=1)
def where():
    return os.environ.get("RAY_NODE_TYPE_NAME")

print("RAN ON", ray.get(where.remote()), flush=True)
"""


def token_cluster(name: str, **auth: object) -> dict:
    body = raycluster(
        name,
        worker_group("cpu", 0, cpu="1", memory="1Gi", maxReplicas=1),
        enableInTreeAutoscaling=True,
        autoscalerOptions={"version": "v2", "idleTimeoutSeconds": 60},
        authOptions={"mode": "token", **auth},
    )
    # The head takes no task: the one task needs a worker the autoscaler adds.
    body["spec"]["headGroupSpec"]["rayStartParams"] = {"num-cpus": "0"}
    return body


def env_of(container: client.V1Container) -> dict[str, client.V1EnvVar]:
    return {e.name: e for e in container.env or []}


def test_token_auth_with_real_ray(api_client, namespace, run_operator, control_plane):
    clusters = Clusters(api_client, namespace)
    run_operator(namespace)
    clusters.create(token_cluster(NAME))

    secret = wait_for(lambda: _secret(clusters.core, namespace, NAME), what="token Secret")
    assert secret.metadata.labels == {c.LABEL_CLUSTER: NAME}
    (owner,) = secret.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == (c.KIND, NAME, True)
    token = base64.b64decode(secret.data["auth_token"]).decode()
    assert len(token) == 44 and len(base64.b64decode(token)) == 32

    (head,) = clusters.wait_pods(NAME, 1)
    for container in head.spec.containers:  # the Ray container and the autoscaler
        env = env_of(container)
        assert env["RAY_AUTH_MODE"].value == "token", container.name
        ref = env["RAY_AUTH_TOKEN"].value_from.secret_key_ref
        assert (ref.name, ref.key) == (NAME, "auth_token"), container.name

    harness = RayHarness.with_autoscaler(
        clusters.core, namespace, NAME, control_plane.server, control_plane.pki.ca_cert
    )
    failed = True
    try:
        harness.start()
        wait_for(lambda: len(harness.joined()) == 1, timeout=90, what="head joined")

        refused = harness.run_driver(DRIVER)
        wait_for(lambda: refused.poll() is not None, timeout=120, interval=0.5, what="refusal")
        assert refused.returncode != 0
        # Refused by the GCS for want of the token, not for any other reason.
        driver_log = (harness.workdir / "logs" / "driver.log").read_text(errors="replace")
        assert "InvalidAuthToken" in driver_log, driver_log[-2000:]

        lines: list[str] = []
        accepted = harness.run_driver(
            DRIVER, on_line=lines.append, env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
        )
        # The task needs a worker: Ray's autoscaler (with the token) scales the group
        # up, the operator creates the pod, the worker joins the head with the token.
        wait_for(lambda: accepted.poll() is not None, timeout=180, interval=0.5, what="driver")
        assert accepted.returncode == 0, harness.logs()
        assert "RAN ON cpu" in lines
        (worker,) = clusters.pods(NAME, "cpu")
        init = next(x for x in worker.spec.init_containers if x.name == "wait-gcs-ready")
        for container in (worker.spec.containers[0], init):
            assert env_of(container)["RAY_AUTH_TOKEN"].value_from.secret_key_ref.name == NAME
        assert not harness.errors, harness.errors
        failed = False
    finally:
        harness.stop()
        if failed:
            print(harness.logs())
        harness.cleanup()


def test_missing_user_secret_is_reported_and_bad_versions_refused(
    api_client, namespace, run_operator
):
    clusters = Clusters(api_client, namespace)
    run_operator(namespace)
    byo = raycluster(
        "byo", worker_group("cpu", 1), authOptions={"mode": "token", "secretName": "byo-token"}
    )
    old = raycluster("old", worker_group("cpu", 1), authOptions={"mode": "token"})
    old["spec"]["rayVersion"] = "2.40.0"
    plain = raycluster("plain", worker_group("cpu", 1))
    for body in (byo, old, plain):
        clusters.create(body)

    event = clusters.wait_warning("byo", "AuthSecretNotFound")
    assert event.message.startswith("spec.authOptions.secretName: Secret 'byo-token'")
    condition = wait_for(lambda: clusters.condition("byo", c.COND_REPLICA_FAILURE), what="cond")
    assert condition["reason"] == "AuthSecretNotFound"
    for pod in clusters.wait_pods("byo", 2):  # created anyway: they start once it exists
        ref = env_of(pod.spec.containers[0])["RAY_AUTH_TOKEN"].value_from.secret_key_ref
        assert (ref.name, ref.key) == ("byo-token", "auth_token")
    assert _secret(clusters.core, namespace, "byo") is None  # nothing generated

    event = clusters.wait_warning("old", "InvalidAuthOptions")
    assert event.message.startswith("spec.rayVersion: authOptions.mode: token needs Ray 2.52.0")
    clusters.wait_state("plain")  # the others go on
    assert clusters.pods("old") == []

    clusters.core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="byo-token"), string_data={"auth_token": "t" * 44}
        ),
    )
    wait_for(
        lambda: clusters.condition("byo", c.COND_REPLICA_FAILURE) is None,
        timeout=60,
        what="condition cleared once the Secret exists",
    )


def _secret(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Secret | None:
    try:
        return core.read_namespaced_secret(name, namespace)
    except client.ApiException as err:
        if err.status == 404:
            return None
        raise
