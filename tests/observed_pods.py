"""Observed pods for unit tests of the planner and the status calculation."""

from __future__ import annotations

from ray_operator import constants as c
from ray_operator.observed import ObservedPod


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
