"""Prometheus metrics of the operator, served at /metrics (`--metrics-address`)."""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "ray_operator_reconcile", "RayCluster reconciles run", registry=REGISTRY
)  # exported as ray_operator_reconcile_total
RECONCILE_ERRORS = Counter(
    "ray_operator_reconcile_errors",
    "Reconciles that raised and will be retried",
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "ray_operator_reconcile_duration_seconds",
    "Time spent in one reconcile",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
PODS_CREATED = Counter(
    "ray_operator_pods_created", "Ray pods created", ["node_type"], registry=REGISTRY
)
PODS_DELETED = Counter(
    "ray_operator_pods_deleted", "Ray pods deleted", ["node_type", "reason"], registry=REGISTRY
)
API_FAILURES = Counter(
    "ray_operator_api_failures", "API calls of a plan that failed", ["reason"], registry=REGISTRY
)
PASS_TIMEOUTS = Counter(
    "ray_operator_reconcile_timeouts",
    "Reconciles abandoned for running past --pass-timeout (retried)",
    registry=REGISTRY,
)
POD_OBSERVATIONS = Counter(
    "ray_operator_pod_observations",
    "Where a reconcile found its cluster's pods: the watch-fed cache, a consistent list "
    "(at start-up, after a failure, or when the watch lags), or nowhere yet (the pass "
    "waits for the watch to bring the operator's own writes)",
    ["source"],
    registry=REGISTRY,
)
RESYNCS = Counter(
    "ray_operator_resyncs", "Periodic full resyncs (every RayCluster queued)", registry=REGISTRY
)
WRITES_FENCED = Counter(
    "ray_operator_writes_fenced",
    "Writes refused because this replica no longer surely held the leader Lease",
    registry=REGISTRY,
)
LEADER = Gauge(
    "ray_operator_leader",
    "1 while this replica holds the leader Lease (only with --leader-elect)",
    registry=REGISTRY,
)
STALLED = Gauge(
    "ray_operator_stalled",
    "1 while /healthz fails: a watch, the event loop or a reconcile made no progress "
    "within its bound",
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "ray_operator_queue_depth",
    "RayClusters waiting for or in a reconcile",
    registry=REGISTRY,
)
CLUSTERS = Gauge(
    "ray_operator_rayclusters",
    "RayClusters by status.state (empty: not ready yet)",
    ["state"],
    registry=REGISTRY,
)
STATES = ("ready", "suspended", "")


def publish_states(by_cluster: dict[str, str]) -> None:
    tally = Tally(by_cluster.values())
    for state in STATES:
        CLUSTERS.labels(state=state).set(tally.get(state, 0))


def serve(address: str) -> None:
    """Serve /metrics on `host:port` from a background thread."""
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0", registry=REGISTRY)
