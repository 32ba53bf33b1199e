"""Observed state and stored RayClusters for unit tests of the planner and status."""

from __future__ import annotations

from typing import Any

from ray_operator import constants as c
from ray_operator.model import Plan
from ray_operator.observed import Observed, ObservedPod, ObservedService
from ray_operator.planner import default_builders, plan
from tests.manifests import raycluster

BUILDERS = default_builders()
SERVICE = ObservedService("rc-head-svc", "None", (("gcs-server", 6379),))


def cluster(*groups: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """RayCluster `rc` as the API server stores it (namespace, uid, generation)."""
    body = raycluster("rc", *groups, **spec)
    body["metadata"].update({"namespace": "ns", "uid": "uid-1", "generation": 1})
    return body


def run(
    body: dict[str, Any], *pods: ObservedPod, service: ObservedService | None = SERVICE
) -> Plan:
    return plan(body, Observed(pods=pods, head_service=service), BUILDERS)


def pod(
    name: str,
    group: str = "cpu",
    phase: str = "Running",
    ready: bool = True,
    terminating: bool = False,
    created: str = "2026-01-01T00:00:00Z",
    template: str | None = None,
) -> ObservedPod:
    node_type = c.NODE_TYPE_HEAD if group == c.HEAD_GROUP else c.NODE_TYPE_WORKER
    return ObservedPod(
        name, node_type, group, phase, ready, terminating, "127.64.0.1", template, created
    )


def head(name: str = "rc-head-x", **kw) -> ObservedPod:
    return pod(name, c.HEAD_GROUP, **kw)
