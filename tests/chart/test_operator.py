"""The operator's objects: CRDs, ServiceAccount, Deployment, labels, NOTES-free basics."""

from __future__ import annotations

import pytest
import yaml

from tests.chart.render import CHART, by_kind, container_args, one, render_chart

CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def test_chart_yaml_declares_versions_and_maintainers() -> None:
    assert CHART_META["apiVersion"] == "v2"
    assert CHART_META["kubeVersion"]
    assert CHART_META["appVersion"]
    assert CHART_META["maintainers"] and CHART_META["maintainers"][0]["name"]


def test_defaults_render_the_operator_in_cluster_mode() -> None:
    docs = render_chart()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted([
        "CustomResourceDefinition", "CustomResourceDefinition",  # RayCluster, RayJob
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment", "Pod",
        "ClusterRole", "ClusterRole",  # the aggregated RayCluster editor and viewer
    ])  # fmt: skip
    assert not by_kind(docs, "RayCluster")
    assert not by_kind(docs, "ServiceMonitor")


def test_every_object_carries_the_standard_labels() -> None:
    docs = render_chart(
        values={"watchNamespaces": ["a"], "replicaCount": 2,
                "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True},
                            "prometheusRule": {"enabled": True}},
                "rayClusters": {"c": {"namespace": "a"}}},
    )  # fmt: skip
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert not missing, f"{doc['kind']} {doc['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/version"] == CHART_META["appVersion"]


@pytest.mark.parametrize("plural", ["rayclusters", "rayjobs"])
def test_crds_are_templated_with_keep_policy_and_labels(plural: str) -> None:
    docs = render_chart(show_only=["templates/crds.yaml"])
    crd = one(docs, "CustomResourceDefinition", f"{plural}.ray.io")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    # the body is the generated file's, integers untouched (no float round trip)
    source = next(
        d for d in yaml.safe_load_all((CHART / f"files/crds/ray.io_{plural}.yaml").read_text())
        if d
    )  # fmt: skip
    assert crd["spec"] == source["spec"]


def test_crds_can_be_left_out_and_unkept() -> None:
    docs = render_chart(values={"crds": {"install": False}})
    assert not by_kind(docs, "CustomResourceDefinition")
    crds = by_kind(render_chart(values={"crds": {"keep": False}}), "CustomResourceDefinition")
    assert len(crds) == 2
    for crd in crds:
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})


def test_deployment_pod_passes_restricted_pod_security() -> None:
    dep = one(render_chart(show_only=["templates/deployment.yaml"]), "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert next(v for v in pod["volumes"] if v["name"] == "tmp")["emptyDir"] is not None
    assert container["resources"]["requests"]["cpu"]
    assert not any(v.get("hostPath") for v in pod["volumes"])


def test_deployment_args_env_probes_and_image_defaults() -> None:
    dep = one(render_chart(show_only=["templates/deployment.yaml"]), "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"ray-operator:{CHART_META['appVersion']}"
    assert container["command"] == ["ray-operator", "run"]
    args = container_args(dep)
    assert "--all-namespaces" in args
    assert "--liveness=http://0.0.0.0:8081/healthz" in args
    assert "--metrics-address=0.0.0.0:8080" in args
    assert "--log-format=json" in args
    assert not [a for a in args if a.startswith("--leader-elect")]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8081, "metrics": 8080}
    assert dep["spec"]["strategy"]["type"] == "Recreate"  # never two unelected operators
    selector = dep["spec"]["selector"]["matchLabels"]
    assert "app.kubernetes.io/version" not in selector
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_deployment_scheduling_env_and_image_values() -> None:
    values = {
        "image": {"repository": "registry.example/ray-operator", "tag": "dev",
                  "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"pool": "system"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "pool", "operator": "In", "values": ["system"]}]}]}}},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-cluster-critical",
        "extraEnv": [{"name": "EXTRA", "value": "1"}],
        "extraArgs": ["--workers=9"],
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
        "podAnnotations": {"a": "b"},
        "podLabels": {"team": "ml"},
        "config": {"logFormat": "text", "verbose": True, "maxPodsPerCluster": 2147483647},
    }  # fmt: skip
    dep = one(render_chart(values=values, show_only=["templates/deployment.yaml"]), "Deployment")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    container = spec["containers"][0]
    assert container["image"] == "registry.example/ray-operator:dev"
    assert container["imagePullPolicy"] == "Always"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"pool": "system"}
    assert spec["affinity"] == values["affinity"]
    assert spec["tolerations"] == values["tolerations"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert {"name": "EXTRA", "value": "1"} in container["env"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert pod["metadata"]["annotations"] == {"a": "b"}
    assert pod["metadata"]["labels"]["team"] == "ml"
    args = container_args(dep)
    assert args[-1] == "--workers=9"
    assert "--log-format=text" in args and "--verbose" in args
    assert "--max-pods-per-cluster=2147483647" in args  # no 2.147483647e+09


def test_gcs_ft_redis_cleanup_is_on_unless_turned_off() -> None:
    def args(values: dict) -> list[str]:
        rendered = render_chart(values=values, show_only=["templates/deployment.yaml"])
        return container_args(one(rendered, "Deployment"))

    assert not [a for a in args({}) if "redis-cleanup" in a]  # the operator's default: on
    off = {"config": {"gcsFaultToleranceRedisCleanup": False}}
    assert "--no-gcs-ft-redis-cleanup" in args(off)


def test_namespaced_mode_passes_each_namespace() -> None:
    dep = one(
        render_chart(values={"watchNamespaces": ["team-a", "team-b"]},
                     show_only=["templates/deployment.yaml"]),
        "Deployment",
    )  # fmt: skip
    args = container_args(dep)
    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=team-a", "--namespace=team-b",
    ]  # fmt: skip


def test_leader_election_args_when_replicas_above_one() -> None:
    dep = one(
        render_chart(values={"replicaCount": 3}, namespace="ops",
                     show_only=["templates/deployment.yaml"]),
        "Deployment",
    )  # fmt: skip
    assert dep["spec"]["replicas"] == 3
    args = container_args(dep)
    assert "--leader-elect" in args
    assert "--leader-election-namespace=ops" in args
    assert "--leader-election-id=release-ray-operator-leader" in args
    assert "strategy" not in dep["spec"]  # rolling updates are safe with an elected leader


def test_metrics_can_be_turned_off() -> None:
    docs = render_chart(values={"metrics": {"enabled": False, "service": {"enabled": False}}})
    assert not by_kind(docs, "Service")
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert not [a for a in container["args"] if a.startswith("--metrics-address")]
    assert [p["name"] for p in container["ports"]] == ["health"]


def test_service_account_name_and_existing_account() -> None:
    docs = render_chart(values={"serviceAccount": {"name": "op", "annotations": {"x": "y"}}})
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"] == {**sa["metadata"], "name": "op", "annotations": {"x": "y"}}
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "op"
    assert one(docs, "ClusterRoleBinding")["subjects"][0]["name"] == "op"
    docs = render_chart(values={"serviceAccount": {"create": False, "name": "existing"}})
    assert not by_kind(docs, "ServiceAccount")
    assert one(docs, "ClusterRoleBinding")["subjects"][0]["name"] == "existing"


def test_names_follow_overrides() -> None:
    docs = render_chart(values={"fullnameOverride": "rop"})
    assert one(docs, "Deployment")["metadata"]["name"] == "rop"
    assert one(docs, "Service")["metadata"]["name"] == "rop-metrics"
    docs = render_chart(name="ray-operator")
    assert one(docs, "Deployment")["metadata"]["name"] == "ray-operator"


@pytest.mark.parametrize(
    ("values", "expect_metrics_url"),
    [({}, True), ({"metrics": {"enabled": False, "service": {"enabled": False}}}, False)],
)
def test_helm_test_pod(values: dict, expect_metrics_url: bool) -> None:
    pod = one(render_chart(values=values, show_only=["templates/tests/test-operator.yaml"]), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == "release-ray-operator"
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    url = "http://release-ray-operator-metrics.ray-system.svc:8080/metrics"
    assert env["METRICS_URL"] == (url if expect_metrics_url else "")
    compile(container["args"][0], "helm-test", "exec")  # the inline script is valid Python
    assert not by_kind(render_chart(values={"tests": {"enabled": False}}), "Pod")


def test_client_qps_and_burst_flags() -> None:
    deployment = one(render_chart(show_only=["templates/deployment.yaml"]), "Deployment")
    assert not [a for a in container_args(deployment) if a.startswith(("--qps", "--burst"))]
    values = {"config": {"qps": 50, "burst": 120}}
    deployment = one(render_chart(values=values, show_only=["templates/deployment.yaml"]),
                     "Deployment")  # fmt: skip
    assert {"--qps=50", "--burst=120"} <= set(container_args(deployment))
    values = {"config": {"qps": 7.5}}
    deployment = one(render_chart(values=values, show_only=["templates/deployment.yaml"]),
                     "Deployment")  # fmt: skip
    args = container_args(deployment)
    assert "--qps=7.5" in args and not [a for a in args if a.startswith("--burst")]
