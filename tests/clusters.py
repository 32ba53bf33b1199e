"""Small verbs over one namespace's RayClusters, their pods and events, for
integration tests."""

from __future__ import annotations

import time

from kubernetes import client

from ray_operator import constants as c
from tests.kubehelpers import wait_for


class Clusters:
    """Small verbs over one namespace's RayClusters and pods."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def create(self, body: dict) -> dict:
        return self.custom.create_namespaced_custom_object(
            c.GROUP, c.VERSION, self.ns, c.PLURAL, body
        )

    def get(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, c.PLURAL, name)

    def patch(self, name: str, patch: dict | list) -> dict:
        kind = "json-patch" if isinstance(patch, list) else "merge-patch"
        return self.custom.patch_namespaced_custom_object(
            c.GROUP,
            c.VERSION,
            self.ns,
            c.PLURAL,
            name,
            patch,
            _content_type=f"application/{kind}+json",
        )

    def scale_as_autoscaler(
        self, name: str, group_index: int, replicas: int, workers_to_delete: list[str]
    ) -> dict:
        """What Ray's autoscaler sends to scale down (docs/autoscaler-protocol.md): one
        JSON patch replacing a group's replicas and its scaleStrategy, by list index."""
        group = f"/spec/workerGroupSpecs/{group_index}"
        return self.patch(
            name,
            [
                {"op": "replace", "path": f"{group}/replicas", "value": replicas},
                {
                    "op": "replace",
                    "path": f"{group}/scaleStrategy",
                    "value": {"workersToDelete": workers_to_delete},
                },
            ],
        )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, c.PLURAL, name)

    def pods(self, name: str, group: str | None = None, alive: bool = True) -> list[client.V1Pod]:
        selector = f"{c.LABEL_CLUSTER}={name}"
        if group:
            selector += f",{c.LABEL_GROUP}={group}"
        pods = self.core.list_namespaced_pod(self.ns, label_selector=selector).items
        return [p for p in pods if not (alive and p.metadata.deletion_timestamp)]

    def wait_state(self, name: str, state: str = c.STATE_READY, timeout: float = 90) -> dict:
        """Wait until the status reports `state` for the current spec (observedGeneration
        at the generation): a `ready` written before the last spec change is stale."""
        last: dict = {}

        def reached():
            nonlocal last
            body = self.get(name)
            last = body.get("status", {})
            current = last.get("observedGeneration") == body["metadata"].get("generation")
            return body if last.get("state") == state and current else None

        try:
            return wait_for(reached, timeout=timeout, what=f"{name} state={state}")
        except TimeoutError as err:
            raise TimeoutError(f"{err}; status: {last}") from None

    def wait_pods(self, name: str, count: int, group: str | None = None, timeout: float = 90):
        def counted():
            pods = self.pods(name, group)
            return (pods,) if len(pods) == count else None  # a tuple: truthy even if empty

        what = f"{count} pods of {name}/{group or '*'}"
        return wait_for(counted, timeout=timeout, what=what)[0]

    def events(self, name: str) -> list[client.CoreV1Event]:
        return self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={name},involvedObject.kind=RayCluster"
        ).items

    def warnings(self, name: str, reason: str) -> list[client.CoreV1Event]:
        return [e for e in self.events(name) if e.type == "Warning" and e.reason == reason]

    def wait_warning(self, name: str, reason: str, timeout: float = 60) -> client.CoreV1Event:
        found = wait_for(lambda: self.warnings(name, reason), timeout, what=f"Warning {reason}")
        return found[0]

    def condition(self, name: str, type_: str) -> dict | None:
        conditions = self.get(name).get("status", {}).get("conditions") or []
        return next((x for x in conditions if x["type"] == type_ and x["status"] == "True"), None)

    def settle(self, name: str, timeout: float = 60) -> None:
        """Make the operator run one more pass of `name` that provably starts after this
        call, and wait until it has ended: the way to show that something did *not*
        happen without sleeping. It bumps the generation with a change no pass acts on
        (an annotation of the head Service, which exists already) and waits until the
        status reports that generation: the status is written after the pass's plan."""
        probe = f"{time.monotonic_ns()}"
        body = self.patch(
            name, {"spec": {"headServiceAnnotations": {"ray-operator.test/settle": probe}}}
        )
        generation = body["metadata"]["generation"]
        wait_for(
            lambda: self.get(name).get("status", {}).get("observedGeneration", 0) >= generation,
            timeout=timeout,
            what=f"a pass of {name} at generation {generation}",
        )
