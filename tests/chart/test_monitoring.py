"""Metrics Service, ServiceMonitor, PodMonitor and PrometheusRule, each behind a toggle."""

from __future__ import annotations

import re

import pytest

from tests.chart.render import by_kind, one, render_chart

ALL_ON = {
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
    }
}
MONITORING_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")


def test_monitoring_objects_are_off_by_default() -> None:
    docs = render_chart()
    for kind in MONITORING_KINDS:
        assert not by_kind(docs, kind)
    assert one(docs, "Service")["metadata"]["name"] == "release-ray-operator-metrics"


@pytest.mark.parametrize("kind", MONITORING_KINDS)
def test_each_monitoring_object_has_its_own_toggle(kind: str) -> None:
    key = {"ServiceMonitor": "serviceMonitor", "PodMonitor": "podMonitor",
           "PrometheusRule": "prometheusRule"}[kind]  # fmt: skip
    docs = render_chart(values={"metrics": {key: {"enabled": True}}})
    assert [d["kind"] for d in docs if d["kind"] in MONITORING_KINDS] == [kind]


def test_service_monitor_selects_the_metrics_service() -> None:
    docs = render_chart(values=ALL_ON, namespace="ops")
    service = one(docs, "Service")
    monitor = one(docs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    # the Service selects the operator pods and targets the container's metrics port
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_pod_monitor_scrapes_ray_pods_metrics_port() -> None:
    monitor = one(render_chart(values=ALL_ON), "PodMonitor")
    assert monitor["spec"]["selector"] == {"matchLabels": {"ray.io/is-ray-node": "yes"}}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}


def test_pod_monitor_follows_watched_namespaces_or_its_own_list() -> None:
    values = {**ALL_ON, "watchNamespaces": ["a", "b"]}
    monitor = one(render_chart(values=values), "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["a", "b"]}
    values = {"metrics": {"podMonitor": {"enabled": True, "namespaces": ["x"]}}}
    monitor = one(render_chart(values=values), "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["x"]}


def test_monitor_labels_interval_and_relabelings() -> None:
    relabel = [{"action": "labeldrop", "regex": "pod_template_hash"}]
    values = {"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s",
                                             "labels": {"release": "prom"},
                                             "metricRelabelings": relabel}}}  # fmt: skip
    monitor = one(render_chart(values=values), "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"
    assert monitor["spec"]["endpoints"][0]["metricRelabelings"] == relabel


def test_prometheus_rule_alerts_read_the_operator_metrics() -> None:
    rule = one(render_chart(values=ALL_ON, namespace="ops"), "PrometheusRule")
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {
        "RayOperatorDown",
        "RayOperatorStalled",
        "RayOperatorReconcileErrors",
        "RayClusterNotReady",
    }
    job = 'job="release-ray-operator-metrics", namespace="ops"'
    assert alerts["RayOperatorDown"]["expr"] == f"absent(up{{{job}}} == 1)"
    assert alerts["RayOperatorStalled"]["expr"] == f"max(ray_operator_stalled{{{job}}}) == 1"
    assert "ray_operator_reconcile_errors_total" in alerts["RayOperatorReconcileErrors"]["expr"]
    assert "[10m]" in alerts["RayOperatorReconcileErrors"]["expr"]
    not_ready = alerts["RayClusterNotReady"]
    assert re.search(r'ray_operator_rayclusters\{.*state!~"ready\|suspended"', not_ready["expr"])
    assert not_ready["for"] == "15m"
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        # Prometheus templating survives Helm templating
        assert "{{ include" not in alert["annotations"]["description"]
    assert "{{ $value" in alerts["RayClusterNotReady"]["annotations"]["description"]


def test_prometheus_rule_alerts_are_tunable() -> None:
    values = {"metrics": {"prometheusRule": {
        "enabled": True, "alertLabels": {"team": "ml"},
        "operatorDown": {"enabled": False},
        "clusterNotReady": {"for": "30m", "severity": "critical"},
        "reconcileErrors": {"threshold": 20, "window": "5m"},
        "extraRules": [{"alert": "Custom", "expr": "vector(1)"}],
    }}}  # fmt: skip
    rule = one(render_chart(values=values), "PrometheusRule")
    alerts = {r.get("alert"): r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(alerts) == {
        "RayOperatorStalled", "RayOperatorReconcileErrors", "RayClusterNotReady", "Custom",
    }  # fmt: skip
    assert alerts["RayClusterNotReady"]["for"] == "30m"
    assert alerts["RayClusterNotReady"]["labels"] == {"severity": "critical", "team": "ml"}
    assert alerts["RayOperatorReconcileErrors"]["expr"].endswith("[5m])) > 20")


def test_service_monitor_namespace_and_honor_labels() -> None:
    values = {"metrics": {"serviceMonitor": {"enabled": True, "namespace": "monitoring",
                                             "honorLabels": True}}}  # fmt: skip
    docs = render_chart(values=values, show_only=["templates/servicemonitor.yaml"], namespace="ops")
    (sm,) = docs
    assert sm["metadata"]["namespace"] == "monitoring"
    # it still selects the metrics Service in the release namespace
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True
    (default,) = render_chart(
        values={"metrics": {"serviceMonitor": {"enabled": True}}},
        show_only=["templates/servicemonitor.yaml"], namespace="ops",
    )  # fmt: skip
    assert default["metadata"]["namespace"] == "ops"
    assert "honorLabels" not in default["spec"]["endpoints"][0]
