"""Small verbs over one namespace's RayJobs, for integration tests."""

from __future__ import annotations

import json
import urllib.request

from kubernetes import client

from ray_operator import constants as c
from ray_operator_dev.devcluster.controlplane import free_port
from tests.kubehelpers import wait_for


def cluster_spec(dashboard_port: int | None = None, workers: int = 0) -> dict:
    """A head-only Ray 2.60 cluster (one small worker group if asked); the head's
    dashboard port is the one the harness serves it on."""
    ports = [{"name": "dashboard", "containerPort": dashboard_port or free_port()}]
    spec: dict = {
        "rayVersion": "2.60.0",
        "headGroupSpec": {
            "rayStartParams": {"num-cpus": "1"},
            "template": {
                "spec": {
                    "containers": [
                        {"name": "ray-head", "image": "rayproject/ray:2.60.0", "ports": ports}
                    ]
                }
            },
        },
    }
    if workers:
        spec["workerGroupSpecs"] = [{
            "groupName": "cpu", "replicas": workers, "minReplicas": 0, "maxReplicas": workers,
            "rayStartParams": {"num-cpus": "1"},
            "template": {"spec": {"containers": [{"name": "ray-worker",
                                                  "image": "rayproject/ray:2.60.0"}]}},
        }]  # fmt: skip
    return spec


def rayjob(name: str, **spec) -> dict:
    body = {"rayClusterSpec": cluster_spec(), **spec}
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.JOB_KIND,
        "metadata": {"name": name},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


class RayJobs:
    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)

    def create(self, body: dict) -> dict:
        return self.custom.create_namespaced_custom_object(
            c.GROUP, c.VERSION, self.ns, c.JOB_PLURAL, body
        )

    def get(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(
            c.GROUP, c.VERSION, self.ns, c.JOB_PLURAL, name
        )

    def status(self, name: str) -> dict:
        return self.get(name).get("status") or {}

    def cluster(self, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(
                c.GROUP, c.VERSION, self.ns, c.PLURAL, name
            )
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def wait_cluster_name(self, name: str, timeout: float = 60) -> str:
        return wait_for(
            lambda: self.status(name).get("rayClusterName"), timeout, what=f"{name}'s cluster"
        )

    def wait_deployment(self, name: str, *wanted: str, timeout: float = 120) -> dict:
        last: dict = {}

        def reached() -> dict | None:
            nonlocal last
            last = self.status(name)
            return last if last.get("jobDeploymentStatus") in wanted else None

        try:
            return wait_for(reached, timeout, interval=0.3, what=f"{name} in {wanted}")
        except TimeoutError as err:
            raise AssertionError(f"{err}; last status: {json.dumps(last)[:1500]}") from None

    def events(self, name: str) -> list[client.CoreV1Event]:
        return self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={name},involvedObject.kind=RayJob"
        ).items

    def reasons(self, name: str, type_: str | None = None) -> list[str]:
        return [e.reason for e in self.events(name) if type_ is None or e.type == type_]


def dashboard_jobs(url: str) -> list[dict]:
    """Every job the dashboard knows (Ray's own list)."""
    with urllib.request.urlopen(f"{url}/api/jobs/", timeout=10) as response:
        return json.loads(response.read())
