"""API cost, read from the API server's own /metrics.

Three counters are read before and after every phase:

- `apiserver_request_total` by verb and resource: every client's requests (the
  operator's, the harness's, the scheduler's, kwok's, ...), restricted to the resources
  the operator touches;
- `apiserver_flowcontrol_dispatched_requests_total` by FlowSchema: the operator runs
  under its own identity, and `install_flow_schemas` gives that identity one FlowSchema
  per (verb, resource), all on the built-in `exempt` priority level (so it is never
  queued, exactly like the admin identity of the ceiling client). The diff of those
  counters is the operator's own requests by verb and resource, as counted by the API
  server. Watches are dispatched when they start, so they count at once (unlike in
  `apiserver_request_total`, which counts a watch when it ends);
- the bytes the API server sent: `apiserver_response_sizes` (bodies of GET and LIST)
  plus `apiserver_watch_events_sizes` (every watch event, initial events of a
  streaming list included), both by resource over every client, restricted to the
  resources the operator touches. The metrics carry no user, so the harness's own
  watches (one per scenario on pods and RayClusters) are counted too: the same for
  every operator, except for the events its own writes cause.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

OPERATOR_USER = "ray-operator-bench"
SCHEMA_PREFIX = "bench-op-"
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# (API group, resource[/subresource]) the operator reads or writes; anything else it
# does lands in the catch-all schema `bench-op-other`.
RESOURCES = (
    ("", "pods"),
    ("", "services"),
    ("", "events"),
    ("events.k8s.io", "events"),
    ("", "serviceaccounts"),
    ("", "namespaces"),
    ("batch", "jobs"),  # GCS fault tolerance: the Redis cleanup Jobs (watched)
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("ray.io", "rayclusters"),
    ("ray.io", "rayclusters/status"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("coordination.k8s.io", "leases"),
    # what KubeRay's operator also watches or touches (the peer of `--peer kuberay`)
    ("ray.io", "rayjobs"),
    ("ray.io", "rayservices"),
    ("ray.io", "raycronjobs"),
    ("networking.k8s.io", "ingresses"),
    ("", "endpoints"),
)
# The same set, as `apiserver_request_total` labels them (resource, subresource).
WATCHED_BY_SERVER = {
    (group, *(res.split("/", 1) if "/" in res else (res, "")))
    for group, res in RESOURCES
    if res != "leases"  # kwok's node heartbeats: noise
}
# apiserver_request_total spells verbs in upper case and adds APPLY and WATCHLIST.
SERVER_WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"})

_BYTES = ("apiserver_response_sizes_sum{", "apiserver_watch_events_sizes_sum{")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} ([0-9.eE+-]+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def schema_name(verb: str, resource: str, group: str = "") -> str:
    # events.k8s.io events are told from core events by their group
    qualified = f"{resource}.{group}" if group == "events.k8s.io" else resource
    return f"{SCHEMA_PREFIX}{verb}-{qualified.replace('/', '-')}"


def flow_schemas() -> list[dict[str, Any]]:
    """One FlowSchema per (verb, resource) for the operator's user, then a catch-all."""
    subject = {"kind": "User", "user": {"name": OPERATOR_USER}}
    schemas = []
    for group, resource in RESOURCES:
        for verb in VERBS:
            schemas.append(
                {
                    "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                    "kind": "FlowSchema",
                    "metadata": {"name": schema_name(verb, resource, group)},
                    "spec": {
                        "matchingPrecedence": 100,
                        "priorityLevelConfiguration": {"name": "exempt"},
                        "rules": [
                            {
                                "subjects": [subject],
                                "resourceRules": [
                                    {
                                        "verbs": [verb],
                                        "apiGroups": [group],
                                        "resources": [resource],
                                        "clusterScope": True,
                                        "namespaces": ["*"],
                                    }
                                ],
                            }
                        ],
                    },
                }
            )
    schemas.append(
        {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": f"{SCHEMA_PREFIX}other"},
            "spec": {
                "matchingPrecedence": 101,
                "priorityLevelConfiguration": {"name": "exempt"},
                "rules": [
                    {
                        "subjects": [subject],
                        "resourceRules": [
                            {
                                "verbs": ["*"],
                                "apiGroups": ["*"],
                                "resources": ["*"],
                                "clusterScope": True,
                                "namespaces": ["*"],
                            }
                        ],
                        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                    }
                ],
            },
        }
    )
    return schemas


@dataclass(frozen=True)
class Snapshot:
    # (VERB, group, resource, subresource) -> count, over every client
    server: Counter
    # FlowSchema name -> requests dispatched
    flows: Counter
    # (kind "response"|"watch", group, resource, subresource) -> bytes sent, every client
    sent: Counter
    # bytes through the operator's relay (bench/relay.py): "down" from the API server
    relay: Counter = field(default_factory=Counter)

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        server: Counter = Counter()
        flows: Counter = Counter()
        sent: Counter = Counter()
        for line in text.splitlines():
            if line.startswith(_BYTES):
                labels, value = _parse(line)
                kind = "response" if line.startswith("apiserver_response") else "watch"
                key = (
                    kind,
                    labels.get("group", ""),
                    labels.get("resource", ""),
                    labels.get("subresource", ""),
                )
                sent[key] += value
                continue
            if line.startswith("apiserver_request_total{"):
                labels, value = _parse(line)
                key = (
                    labels.get("verb", ""),
                    labels.get("group", ""),
                    labels.get("resource", ""),
                    labels.get("subresource", ""),
                )
                server[key] += value
            elif line.startswith("apiserver_flowcontrol_dispatched_requests_total{"):
                labels, value = _parse(line)
                flows[labels.get("flow_schema", "")] += value
        return cls(server, flows, sent)

    def __sub__(self, before: Snapshot) -> ApiCost:
        server = Counter({k: v - before.server.get(k, 0) for k, v in self.server.items()})
        flows = Counter({k: v - before.flows.get(k, 0) for k, v in self.flows.items()})
        sent = Counter({k: v - before.sent.get(k, 0) for k, v in self.sent.items()})
        relay = Counter({k: v - before.relay.get(k, 0) for k, v in self.relay.items()})
        return ApiCost(+server, +flows, +sent, +relay)


def _parse(line: str) -> tuple[dict[str, str], int]:
    match = _SAMPLE.match(line)
    if not match:
        return {}, 0
    return dict(_LABEL.findall(match.group(2))), int(float(match.group(3)))


@dataclass(frozen=True)
class ApiCost:
    """Requests in one phase: the server's view of the operator's resources, and the
    operator's own requests (its FlowSchemas)."""

    server: Counter
    flows: Counter
    sent: Counter = field(default_factory=Counter)
    relay: Counter = field(default_factory=Counter)

    def operator_bytes(self) -> int:
        """Bytes the API server sent the operator (TLS included), from its relay."""
        return self.relay.get("down", 0)

    def bytes_sent(self) -> dict[str, int]:
        """'response|watch resource[/sub]' -> bytes, every client, operator resources."""
        out: dict[str, int] = {}
        for (kind, group, resource, sub), count in sorted(self.sent.items()):
            if (group, resource, sub) not in WATCHED_BY_SERVER or count <= 0:
                continue
            out[f"{kind} {resource}{'/' + sub if sub else ''}"] = count
        return out

    def bytes_total(self) -> int:
        return sum(self.bytes_sent().values())

    def operator_requests(self) -> dict[str, int]:
        """'verb resource' -> count, the operator's requests only."""
        out: dict[str, int] = {}
        for name, count in sorted(self.flows.items()):
            if not name.startswith(SCHEMA_PREFIX) or count <= 0:
                continue
            rest = name[len(SCHEMA_PREFIX) :]
            if rest == "other":
                out["other"] = count
                continue
            verb, _, resource = rest.partition("-")
            out[f"{verb} {resource.replace('-', '/')}"] = count
        return out

    def operator_total(self) -> int:
        return sum(self.operator_requests().values())

    def operator_writes(self) -> int:
        return sum(n for k, n in self.operator_requests().items() if k.split(" ")[0] in WRITE_VERBS)

    def operator_reads(self) -> int:
        """get and list (watches are long-running: counted when they end)."""
        return sum(
            n for k, n in self.operator_requests().items() if k.split(" ")[0] in ("get", "list")
        )

    def server_requests(self) -> dict[str, int]:
        """'VERB resource[/sub]' -> count over every client, operator resources only."""
        out: dict[str, int] = {}
        for (verb, group, resource, sub), count in sorted(self.server.items()):
            if (group, resource, sub) not in WATCHED_BY_SERVER or count <= 0:
                continue
            out[f"{verb} {resource}{'/' + sub if sub else ''}"] = count
        return out

    def server_writes(self) -> int:
        return sum(
            n for k, n in self.server_requests().items() if k.split(" ")[0] in SERVER_WRITE_VERBS
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "operator": self.operator_requests(),
            "operator_total": self.operator_total(),
            "operator_writes": self.operator_writes(),
            "server_all_clients": self.server_requests(),
            "server_all_clients_writes": self.server_writes(),
            "operator_bytes_received": self.operator_bytes(),
            "operator_bytes_sent": self.relay.get("up", 0),
            "bytes_sent_all_clients": self.bytes_sent(),
            "bytes_sent_all_clients_total": self.bytes_total(),
        }
