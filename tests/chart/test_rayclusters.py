"""RayClusters from values: heterogeneous groups, shared defaults, autoscaling."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from ray_operator import constants as c
from tests.chart.render import CHART, HelmError, by_kind, one, render_chart

EXAMPLE = CHART / "examples" / "heterogeneous-values.yaml"


def clusters(values: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, dict[str, Any]]:
    docs = render_chart(values=values, show_only=["templates/rayclusters.yaml"], **kwargs)
    return {d["metadata"]["name"]: d for d in by_kind(docs, c.KIND)}


def groups(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}


def ray_container(template: dict[str, Any]) -> dict[str, Any]:
    return template["spec"]["containers"][c.RAY_CONTAINER_INDEX]


def test_no_clusters_by_default() -> None:
    assert clusters() == {}


def test_minimal_cluster_is_a_valid_looking_raycluster() -> None:
    cluster = clusters({"rayClusters": {"tiny": {}}}, namespace="ml")["tiny"]
    assert cluster["apiVersion"] == c.API_VERSION
    assert cluster["metadata"]["namespace"] == "ml"
    spec = cluster["spec"]
    assert spec["rayVersion"] == "2.60.0"
    assert spec["enableInTreeAutoscaling"] is False
    assert spec["workerGroupSpecs"] == []
    head = spec["headGroupSpec"]
    assert head["rayStartParams"] == {}
    container = ray_container(head["template"])
    assert container["name"] == "ray-head"
    assert container["image"] == "rayproject/ray:2.60.0"
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}


def test_heterogeneous_example() -> None:
    cluster = clusters(values_files=[EXAMPLE])["demo"]
    spec = cluster["spec"]
    assert cluster["metadata"]["labels"]["team"] == "research"
    assert spec["headServiceAnnotations"] == {"example.com/purpose": "demo"}
    head = spec["headGroupSpec"]
    assert head["rayStartParams"] == {"num-cpus": "0"}
    assert ray_container(head["template"])["resources"]["limits"]["cpu"] == "2"
    by_name = groups(cluster)
    assert list(by_name) == ["cpu", "gpu", "highmem"]  # sorted by name, stable
    cpu, gpu, highmem = by_name["cpu"], by_name["gpu"], by_name["highmem"]
    assert (cpu["replicas"], cpu["minReplicas"], cpu["maxReplicas"]) == (2, 1, 10)
    assert cpu["template"]["spec"]["nodeSelector"] == {"node-pool": "cpu"}
    gpu_container = ray_container(gpu["template"])
    assert gpu_container["name"] == "ray-worker"
    assert gpu_container["image"] == "rayproject/ray:2.60.0-gpu"  # tag merged over repository
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == "1"  # quantities: strings
    assert gpu["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert gpu["rayStartParams"] == {"resources": '"{\\"accelerator\\": 1}"'}
    assert highmem["rayStartParams"] == {"object-store-memory": "20000000000"}
    # groupDefaults reach every group, head included
    for template in [head["template"], *(g["template"] for g in by_name.values())]:
        assert {"name": "RAY_LOG_TO_STDERR", "value": "1"} in ray_container(template)["env"]


def test_several_clusters_in_several_namespaces() -> None:
    values = {
        "watchNamespaces": ["a", "b"],
        "rayClusters": {
            "one": {"namespace": "a", "workerGroups": {"cpu": {"replicas": 1}}},
            "two": {"namespace": "b", "rayVersion": "2.50.0",
                    "workerGroups": {"gpu": {"replicas": 2}, "cpu": {"replicas": 3}}},
            "off": {"enabled": False, "namespace": "a"},
        },
    }  # fmt: skip
    rendered = clusters(values)
    assert sorted(rendered) == ["one", "two"]
    assert rendered["one"]["metadata"]["namespace"] == "a"
    assert rendered["two"]["metadata"]["namespace"] == "b"
    assert rendered["two"]["spec"]["rayVersion"] == "2.50.0"
    assert list(groups(rendered["two"])) == ["cpu", "gpu"]


def test_layered_defaults_global_then_cluster_then_group() -> None:
    values = {
        "rayClusterDefaults": {"group": {
            "image": {"repository": "corp/ray", "tag": "1"},
            "nodeSelector": {"pool": "ray", "zone": "z1"},
            "tolerations": [{"key": "ray", "operator": "Exists"}],
            "rayStartParams": {"metrics-export-port": 8080},
            "labels": {"cost-center": "42"},
        }},
        "rayClusters": {"x": {
            "groupDefaults": {"image": {"tag": "2"}, "rayStartParams": {"log-color": False}},
            "workerGroups": {
                "plain": {"replicas": 1},
                "special": {
                    "replicas": 1,
                    "image": {"repository": "corp/ray-gpu"},
                    "nodeSelector": {"zone": "z2"},
                    "tolerations": [],
                    "labels": {"gpu": "yes"},
                    "rayStartParams": {"num-gpus": 1},
                },
            },
        }},
    }  # fmt: skip
    by_name = groups(clusters(values)["x"])
    plain, special = by_name["plain"], by_name["special"]
    assert ray_container(plain["template"])["image"] == "corp/ray:2"
    assert ray_container(special["template"])["image"] == "corp/ray-gpu:2"
    assert plain["template"]["spec"]["nodeSelector"] == {"pool": "ray", "zone": "z1"}
    assert special["template"]["spec"]["nodeSelector"] == {"pool": "ray", "zone": "z2"}
    assert plain["template"]["spec"]["tolerations"] == [{"key": "ray", "operator": "Exists"}]
    assert "tolerations" not in special["template"]["spec"]  # [] replaces the default
    assert special["template"]["metadata"]["labels"] == {"cost-center": "42", "gpu": "yes"}
    assert plain["rayStartParams"] == {"metrics-export-port": "8080", "log-color": "false"}
    assert special["rayStartParams"] == {
        "metrics-export-port": "8080", "log-color": "false", "num-gpus": "1",
    }  # fmt: skip


def test_group_pod_settings_reach_the_pod_template() -> None:
    group = {
        "replicas": 1, "numOfHosts": 2, "suspend": True, "idleTimeoutSeconds": 300,
        "maxReplicas": 2147483647,
        "imagePullSecrets": [{"name": "regcred"}],
        "serviceAccountName": "ray-worker",
        "priorityClassName": "batch",
        "affinity": {"podAntiAffinity": {}},
        "podSecurityContext": {"fsGroup": 100},
        "securityContext": {"runAsUser": 1000},
        "annotations": {"a": "b"},
        "envFrom": [{"configMapRef": {"name": "ray-env"}}],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "extraContainers": [{"name": "sidecar", "image": "busybox"}],
    }  # fmt: skip
    worker = groups(clusters({"rayClusters": {"x": {"workerGroups": {"w": group}}}})["x"])["w"]
    assert worker["numOfHosts"] == 2 and worker["suspend"] is True
    assert worker["idleTimeoutSeconds"] == 300
    assert worker["maxReplicas"] == 2147483647
    spec = worker["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["serviceAccountName"] == "ray-worker"
    assert spec["priorityClassName"] == "batch"
    assert spec["affinity"] == {"podAntiAffinity": {}}
    assert spec["securityContext"] == {"fsGroup": 100}
    assert spec["volumes"] == group["volumes"]
    assert [ct["name"] for ct in spec["containers"]] == ["ray-worker", "sidecar"]
    ray = spec["containers"][0]
    assert ray["securityContext"] == {"runAsUser": 1000}
    assert ray["envFrom"] == group["envFrom"]
    assert ray["volumeMounts"] == group["volumeMounts"]
    assert worker["template"]["metadata"]["annotations"] == {"a": "b"}


def test_quantities_render_as_strings() -> None:
    resources = {"limits": {"cpu": 4, "memory": 1000000, "nvidia.com/gpu": 1, "x": 0.5},
                 "requests": {"cpu": "500m"}}  # fmt: skip
    values = {"rayClusters": {"x": {
        "head": {"resources": resources},
        "autoscaling": {"enabled": True, "options": {"resources": resources}},
    }}}  # fmt: skip
    spec = clusters(values)["x"]["spec"]
    expected = {"limits": {"cpu": "4", "memory": "1000000", "nvidia.com/gpu": "1", "x": "0.5"},
                "requests": {"cpu": "500m"}}  # fmt: skip
    assert ray_container(spec["headGroupSpec"]["template"])["resources"] == expected
    assert spec["autoscalerOptions"]["resources"] == expected


def test_disabled_group_is_left_out() -> None:
    values = {"rayClusters": {"x": {"workerGroups": {
        "a": {"replicas": 1}, "b": {"replicas": 1, "enabled": False}}}}}  # fmt: skip
    assert list(groups(clusters(values)["x"])) == ["a"]


def test_autoscaling_on() -> None:
    values = {"rayClusters": {"auto": {
        "autoscaling": {"enabled": True, "options": {
            "upscalingMode": "Conservative", "idleTimeoutSeconds": 30, "version": "v2",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
        }},
        "workerGroups": {"cpu": {"minReplicas": 1, "maxReplicas": 5}},
    }}}  # fmt: skip
    spec = clusters(values)["auto"]["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"] == values["rayClusters"]["auto"]["autoscaling"]["options"]
    assert groups({"spec": spec})["cpu"]["maxReplicas"] == 5
    # the autoscaler owns replicas: left out, so no upgrade resets it
    assert "replicas" not in groups({"spec": spec})["cpu"]


def test_replicas_of_an_autoscaled_group_is_refused() -> None:
    values = {"rayClusters": {"auto": {"autoscaling": {"enabled": True},
              "workerGroups": {"cpu": {"replicas": 2, "minReplicas": 1}}}}}  # fmt: skip
    with pytest.raises(
        HelmError, match=r"rayClusters\.auto\.workerGroups\.cpu\.replicas: with autoscaling"
    ):
        clusters(values)


def test_autoscaling_off_drops_the_options() -> None:
    values = {"rayClusters": {"x": {
        "autoscaling": {"enabled": False, "options": {"idleTimeoutSeconds": 30}}}}}  # fmt: skip
    spec = clusters(values)["x"]["spec"]
    assert spec["enableInTreeAutoscaling"] is False
    assert "autoscalerOptions" not in spec


def test_auth_options_are_passed_through() -> None:
    auth = {"mode": "token", "secretName": "ray-token"}
    values = {"rayClusters": {"x": {"authOptions": auth}}}
    assert clusters(values)["x"]["spec"]["authOptions"] == auth


def test_cluster_level_fields_and_extra_spec() -> None:
    values = {"rayClusters": {"x": {
        "suspend": True, "upgradeStrategy": "Recreate", "annotations": {"note": "hi"},
        "head": {"serviceType": "NodePort"},
        "extraSpec": {"managedBy": c.MANAGED_BY_US,
                      "gcsFaultToleranceOptions": {"redisAddress": "redis:6379"}},
    }}}  # fmt: skip
    cluster = clusters(values)["x"]
    spec = cluster["spec"]
    assert spec["suspend"] is True
    assert spec["upgradeStrategy"] == {"type": "Recreate"}
    assert spec["headGroupSpec"]["serviceType"] == "NodePort"
    assert spec["managedBy"] == c.MANAGED_BY_US
    assert spec["gcsFaultToleranceOptions"] == {"redisAddress": "redis:6379"}
    assert cluster["metadata"]["annotations"] == {"note": "hi"}


def test_ray_container_is_first_and_named_for_its_role() -> None:
    values = {"rayClusterDefaults": {"group": {"extraContainers": [{"name": "a", "image": "b"}]}},
              "rayClusters": {"x": {"workerGroups": {"w": {"replicas": 1}}}}}  # fmt: skip
    spec = clusters(values)["x"]["spec"]
    assert spec["headGroupSpec"]["template"]["spec"]["containers"][0]["name"] == "ray-head"
    assert groups({"spec": spec})["w"]["template"]["spec"]["containers"][0]["name"] == "ray-worker"


def test_rayclusters_render_alongside_the_operator() -> None:
    docs = render_chart(values_files=[EXAMPLE])
    assert one(docs, c.KIND, "demo")
    assert one(docs, "Deployment")


# -- every pod field: podSpec/container passthrough, headService, GCS FT, extraSpec ------


def crd_pod_schema() -> tuple[dict, dict]:
    crd = yaml.safe_load((CHART / "files" / "crds" / "ray.io_rayclusters.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    pod = spec["properties"]["headGroupSpec"]["properties"]["template"]["properties"]["spec"]
    return pod["properties"], pod["properties"]["containers"]["items"]["properties"]


def test_pod_and_container_passthrough_cover_every_field_the_chart_does_not_set() -> None:
    """values.schema.json lists every PodSpec and container field of the CRD, with its
    type, except those the chart sets from its own keys: no field is unreachable."""
    defs = json.loads((CHART / "values.schema.json").read_text())["$defs"]
    pod, container = crd_pod_schema()
    group_keys = set(defs["groupSettings"]["properties"])
    own_pod = {"containers", "volumes", "nodeSelector", "tolerations", "affinity",
               "priorityClassName", "serviceAccountName", "imagePullSecrets"}  # fmt: skip
    # securityContext: podSecurityContext; serviceAccount: deprecated alias
    assert set(defs["podSpec"]["properties"]) == set(pod) - own_pod - {
        "securityContext",
        "serviceAccount",
    }
    assert own_pod - {"containers"} <= group_keys
    own_container = {"name", "image", "imagePullPolicy", "resources", "env", "envFrom",
                     "securityContext", "volumeMounts"}  # fmt: skip
    assert set(defs["container"]["properties"]) == set(container) - own_container
    for key, schema in defs["podSpec"]["properties"].items():
        assert schema.get("type") == pod[key].get("type"), key


def test_pod_fields_reach_head_and_workers_with_layering() -> None:
    values = {"rayClusters": {"x": {
        "groupDefaults": {
            "podSpec": {"runtimeClassName": "nvidia", "dnsPolicy": "None",
                        "dnsConfig": {"nameservers": ["10.0.0.10"]}},
            "container": {"lifecycle": {"preStop": {"exec": {"command": ["ray", "stop"]}}}},
        },
        "head": {"podSpec": {"initContainers": [{"name": "init", "image": "busybox"}]},
                 "container": {"command": ["bash", "-c"], "args": ["x"]}},
        "workerGroups": {"cpu": {"replicas": 1, "podSpec": {
            "dnsPolicy": "ClusterFirst",
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                           "whenUnsatisfiable": "DoNotSchedule"}]}}},
    }}}  # fmt: skip
    spec = clusters(values)["x"]["spec"]
    head = spec["headGroupSpec"]["template"]["spec"]
    worker = groups({"spec": spec})["cpu"]["template"]["spec"]
    assert head["runtimeClassName"] == worker["runtimeClassName"] == "nvidia"
    assert head["initContainers"][0]["name"] == "init" and "initContainers" not in worker
    assert (head["dnsPolicy"], worker["dnsPolicy"]) == ("None", "ClusterFirst")  # merged
    assert worker["dnsConfig"] == {"nameservers": ["10.0.0.10"]}
    assert worker["topologySpreadConstraints"][0]["topologyKey"] == "zone"
    assert head["containers"][0]["command"] == ["bash", "-c"]
    assert head["containers"][0]["name"] == "ray-head"
    for pod in (head, worker):
        assert pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] == ["ray", "stop"]


def test_head_service_gcs_fault_tolerance_and_extra_head_group_spec() -> None:
    ft = {"redisAddress": "redis:6379", "externalStorageNamespace": "ns",
          "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "r", "key": "p"}}}}  # fmt: skip
    values = {"rayClusters": {"x": {
        "gcsFaultToleranceOptions": ft,
        "head": {"serviceType": "NodePort",
                 "service": {"metadata": {"labels": {"l": "v"}},
                             "spec": {"sessionAffinity": "ClientIP"}}},
        "extraSpec": {"headGroupSpec": {"rayStartParams": {"num-cpus": "0"},
                                        "template": {"spec": {"hostname": "head"}}},
                      "idleSuspend": False},
    }}}  # fmt: skip
    spec = clusters(values)["x"]["spec"]
    assert spec["gcsFaultToleranceOptions"] == ft
    head = spec["headGroupSpec"]
    assert head["serviceType"] == "NodePort"
    assert head["headService"] == {"metadata": {"labels": {"l": "v"}},
                                   "spec": {"sessionAffinity": "ClientIP"}}  # fmt: skip
    assert head["rayStartParams"] == {"num-cpus": "0"}
    assert head["template"]["spec"]["hostname"] == "head"
    assert head["template"]["spec"]["containers"][0]["name"] == "ray-head"  # merged, kept
    assert spec["idleSuspend"] is False


def test_pod_field_the_chart_sets_is_refused_in_the_passthrough() -> None:
    for values, where in [
        ({"rayClusters": {"x": {"head": {"podSpec": {"volumes": []}}}}},
         "/rayClusters/x/head/podSpec"),
        ({"rayClusters": {"x": {"groupDefaults": {"container": {"image": "x"}}}}},
         "/rayClusters/x/groupDefaults/container"),
        ({"rayClusterDefaults": {"group": {"podSpec": {"runtimeClassName": 3}}}},
         "/rayClusterDefaults/group/podSpec/runtimeClassName"),
    ]:  # fmt: skip
        with pytest.raises(HelmError, match=where):
            clusters(values)


def test_default_env_labels_and_annotations_reach_every_pod_of_every_cluster() -> None:
    """KubeRay's defaultContainerEnvs, for the clusters the chart declares: appended
    after a group's own env (whose same-named variable wins); labels and annotations
    of rayClusterDefaults.group merge key by key, so they reach every pod too."""
    values = {
        "rayClusterDefaults": {
            "env": [{"name": "CORP_PROXY", "value": "p"}, {"name": "TZ", "value": "UTC"}],
            "group": {"labels": {"team": "ml"}, "annotations": {"cost": "42"}},
        },
        "rayClusters": {
            "a": {"workerGroups": {"cpu": {"replicas": 1, "labels": {"g": "1"},
                                           "env": [{"name": "TZ", "value": "CET"}]}}},
            "b": {"head": {"env": [{"name": "OWN", "value": "1"}]}},
        },
    }  # fmt: skip
    rendered = clusters(values)
    a_head = rendered["a"]["spec"]["headGroupSpec"]["template"]
    a_cpu = groups(rendered["a"])["cpu"]["template"]
    b_head = rendered["b"]["spec"]["headGroupSpec"]["template"]
    env = lambda t: [(e["name"], e["value"]) for e in ray_container(t)["env"]]  # noqa: E731
    assert env(a_head) == [("CORP_PROXY", "p"), ("TZ", "UTC")]
    assert env(a_cpu) == [("TZ", "CET"), ("CORP_PROXY", "p")]
    assert env(b_head) == [("OWN", "1"), ("CORP_PROXY", "p"), ("TZ", "UTC")]
    for template in (a_head, a_cpu, b_head):
        assert template["metadata"]["labels"]["team"] == "ml"
        assert template["metadata"]["annotations"] == {"cost": "42"}
    assert a_cpu["metadata"]["labels"]["g"] == "1"
