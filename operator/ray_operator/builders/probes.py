"""Liveness and readiness probes for the Ray container, used where the user set none
(each probe separately, as upstream: a user's readiness probe does not stop the
default liveness probe).

Ray >= 2.53 serves one health endpoint, `/api/healthz` on the dashboard agent port,
probed with HTTP GET. Older Ray (and any `rayVersion` that is absent or does not start
with a version number: the check below works everywhere) is probed by running `wget`
in the container against `/api/local_raylet_healthz` on the agent port, and on the
head also `/api/gcs_healthz` on the dashboard port.

Timings: readiness 10 s initial delay, every 5 s, unready after 10 failures; liveness
30 s, every 5 s, restarted after 120 failures (10 minutes: a busy raylet is not killed
for a slow answer). Timeouts are 2 s on workers and 5 s on the head, whose older check
makes two requests. Each `wget` tries once (`--tries 1`), with a 2 s timeout, 10 s for
the GCS check, as KubeRay runs them.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .. import constants as c

HEALTH_PATH = "/api/healthz"
RAYLET_HEALTH_PATH = "/api/local_raylet_healthz"
GCS_HEALTH_PATH = "/api/gcs_healthz"
UNIFIED_HEALTH_SINCE = (2, 53)
WGET_TIMEOUT_S = 2
# KubeRay's GCS check waits longer (its default readiness failure threshold, 10, used
# as seconds); the probe's own timeout (5 s on the head) still bounds it.
GCS_WGET_TIMEOUT_S = 10

READINESS = {"initialDelaySeconds": 10, "periodSeconds": 5, "failureThreshold": 10}
LIVENESS = {"initialDelaySeconds": 30, "periodSeconds": 5, "failureThreshold": 120}
TIMEOUT_S = {c.NODE_TYPE_HEAD: 5, c.NODE_TYPE_WORKER: 2}

_VERSION = re.compile(r"v?(\d+)\.(\d+)")


def has_unified_health_check(ray_version: str | None) -> bool:
    match = _VERSION.match(str(ray_version or "").strip())
    if match is None:
        return False
    return (int(match[1]), int(match[2])) >= UNIFIED_HEALTH_SINCE


def _wget(port: int, path: str, timeout_s: int = WGET_TIMEOUT_S) -> str:
    # --tries 1: a failed check fails now rather than after wget's 20 retries.
    return f"wget --tries 1 -T {timeout_s} -q -O- http://localhost:{port}{path} | grep success"


def health_check(
    node_type: str, ray_version: str | None, agent_port: int, dashboard_port: int
) -> dict[str, Any]:
    """The probe action: `httpGet` or `exec`."""
    if has_unified_health_check(ray_version):
        return {"httpGet": {"path": HEALTH_PATH, "port": agent_port}}
    checks = [_wget(agent_port, RAYLET_HEALTH_PATH)]
    if node_type == c.NODE_TYPE_HEAD:
        checks.append(_wget(dashboard_port, GCS_HEALTH_PATH, GCS_WGET_TIMEOUT_S))
    return {"exec": {"command": ["bash", "-c", " && ".join(checks)]}}


def default_probes(
    node_type: str, ray_version: str | None, agent_port: int, dashboard_port: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(livenessProbe, readinessProbe)."""
    action = health_check(node_type, ray_version, agent_port, dashboard_port)
    common = {"timeoutSeconds": TIMEOUT_S[node_type], "successThreshold": 1}
    liveness = {**action, **LIVENESS, **common}
    readiness = {**action, **READINESS, **common}
    # Separate copies: the two probes must not share nested dicts.
    return copy.deepcopy(liveness), copy.deepcopy(readiness)
