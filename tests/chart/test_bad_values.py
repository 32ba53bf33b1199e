"""Bad values fail at `helm template` (and so at install) with a message naming the key:
the JSON schema for types, unknown keys and empty images; template checks for what a
schema cannot say (min > max in a group, unwatched namespaces, ...)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.render import HelmError, render_chart


def cluster(**fields: Any) -> dict[str, Any]:
    return {"rayClusters": {"x": fields}}


CASES = {
    # wrong types
    "replicaCount-string": ({"replicaCount": "two"}, ["/replicaCount", "want integer"]),
    "watchNamespaces-string": ({"watchNamespaces": "team-a"}, ["/watchNamespaces", "want array"]),
    "crds-install-string": ({"crds": {"install": "yes"}}, ["/crds/install", "want boolean"]),
    "group-replicas-string": (
        cluster(workerGroups={"cpu": {"replicas": "3"}}),
        ["/rayClusters/x/workerGroups/cpu/replicas", "want integer"],
    ),
    "group-tolerations-map": (
        cluster(workerGroups={"cpu": {"tolerations": {"key": "a"}}}),
        ["/rayClusters/x/workerGroups/cpu/tolerations", "want array"],
    ),
    "autoscaling-enabled-string": (
        cluster(autoscaling={"enabled": "on"}),
        ["/rayClusters/x/autoscaling/enabled", "want boolean"],
    ),
    "bad-enum": ({"config": {"logFormat": "xml"}}, ["/config/logFormat", "json"]),
    "negative-replicas": (
        cluster(workerGroups={"cpu": {"replicas": -1}}),
        ["/rayClusters/x/workerGroups/cpu/replicas", "minimum"],
    ),
    # unknown keys, at every level
    "unknown-top-level": ({"replicas": 2}, ["additional properties 'replicas' not allowed"]),
    "unknown-nested": (
        {"metrics": {"serviceMonitor": {"enable": True}}},
        ["/metrics/serviceMonitor", "'enable' not allowed"],
    ),
    "unknown-cluster-key": (cluster(workers={}), ["/rayClusters/x", "'workers' not allowed"]),
    "unknown-group-key": (
        cluster(workerGroups={"cpu": {"replica": 1}}),
        ["/rayClusters/x/workerGroups/cpu", "'replica' not allowed"],
    ),
    "replicas-on-head": (cluster(head={"replicas": 1}), ["/rayClusters/x/head", "'replicas'"]),
    "unknown-autoscaler-option": (
        cluster(autoscaling={"enabled": True, "options": {"idleTimeout": 5}}),
        ["/rayClusters/x/autoscaling/options", "'idleTimeout' not allowed"],
    ),
    # names: template checks naming the key and the rule (JSON schema's propertyNames
    # is reported by Helm's schema library under a random path)
    "cluster-name-uppercase": (
        {"rayClusters": {"Team_A": {}}},
        ['rayClusters key "Team_A"', "DNS-1035 label", "starting with a letter"],
    ),
    "cluster-name-digit-first": ({"rayClusters": {"1st": {}}}, ['key "1st"', "DNS-1035"]),
    "cluster-name-too-long": (
        {"rayClusters": {"c" * 55: {}}},
        [f'rayClusters key "{"c" * 55}"', "at most 54 characters (it has 55)", "head-svc"],
    ),
    "group-name-too-long": (
        cluster(workerGroups={"g" * 64: {"replicas": 1}}),
        [
            f'rayClusters.x.workerGroups key "{"g" * 64}"',
            "worker group name",
            "at most 63 characters (it has 64)",
        ],
    ),
    "group-name-underscore": (
        cluster(workerGroups={"gpu_a100": {}}),
        ['rayClusters.x.workerGroups key "gpu_a100"', "DNS-1123 label"],
    ),
    "group-named-headgroup": (
        cluster(workerGroups={"headgroup": {}}),
        ['workerGroups key "headgroup"', "must not be named headgroup"],
    ),
    "cluster-namespace-bad": (
        cluster(namespace="Team_A"),
        ["rayClusters.x.namespace", "a namespace must be a DNS-1123 label"],
    ),
    "watch-namespace-bad": (
        {"watchNamespaces": ["ok", "Team_A"]},
        ["watchNamespaces[1]", "a namespace must be a DNS-1123 label"],
    ),
    # empty images
    "empty-operator-image": ({"image": {"repository": ""}}, ["/image/repository", "minLength"]),
    "empty-ray-image": (
        cluster(workerGroups={"gpu": {"image": {"repository": ""}}}),
        ["/rayClusters/x/workerGroups/gpu/image/repository", "minLength"],
    ),
    "empty-default-ray-image": (
        {"rayClusterDefaults": {"group": {"image": {"repository": ""}}}},
        ["/rayClusterDefaults/group/image/repository", "minLength"],
    ),
    # cross-field checks in templates
    "min-greater-than-max": (
        cluster(workerGroups={"gpu": {"minReplicas": 3, "maxReplicas": 1}}),
        ["rayClusters.x.workerGroups.gpu", "minReplicas (3)", "maxReplicas (1)"],
    ),
    "unwatched-namespace": (
        {"watchNamespaces": ["a"], **cluster(namespace="b")},
        ["rayClusters.x.namespace", '"b"', "watchNamespaces"],
    ),
    "auth-twice": (
        cluster(authOptions={"mode": "token"}, extraSpec={"authOptions": {"mode": "disabled"}}),
        ["rayClusters.x.authOptions", "both set"],
    ),
    "auth-mode-unknown": (
        cluster(authOptions={"mode": "password"}),
        ["/rayClusters/x/authOptions/mode", "disabled"],
    ),
    "gcs-ft-twice": (
        cluster(
            gcsFaultToleranceOptions={"redisAddress": "a:1"},
            extraSpec={"gcsFaultToleranceOptions": {"redisAddress": "b:1"}},
        ),
        ["rayClusters.x.gcsFaultToleranceOptions", "both set"],
    ),
    "extra-spec-collides": (
        cluster(extraSpec={"workerGroupSpecs": []}),
        ["rayClusters.x.extraSpec.workerGroupSpecs"],
    ),
    "service-monitor-without-service": (
        {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}},
        ["metrics.serviceMonitor.enabled", "metrics.service.enabled"],
    ),
    "same-port-twice": ({"metrics": {"port": 8081}}, ["metrics.port", "probes.port"]),
    "renew-deadline-not-below-lease": (
        {"replicaCount": 2, "leaderElection": {"renewDeadlineSeconds": 15}},
        ["retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds", "got 2, 15, 15"],
    ),
    "existing-sa-without-name": (
        {"serviceAccount": {"create": False}},
        ["serviceAccount.name"],
    ),
}


@pytest.mark.parametrize(("values", "messages"), CASES.values(), ids=CASES.keys())
def test_bad_values_fail_naming_the_key(values: dict[str, Any], messages: list[str]) -> None:
    with pytest.raises(HelmError) as failure:
        render_chart(values=values)
    text = str(failure.value)
    for message in messages:
        assert message in text, f"{message!r} not in helm's message:\n{text}"


def test_image_repository_removed_from_every_layer_fails_in_template(tmp_path) -> None:
    # `null` deletes the default; the schema cannot see the merged result, the template can
    values_file = tmp_path / "v.yaml"
    values_file.write_text(
        "rayClusterDefaults:\n  group:\n    image:\n      repository: null\n"
        "rayClusters:\n  x:\n    workerGroups:\n      cpu:\n        replicas: 1\n"
    )
    with pytest.raises(HelmError, match=r"rayClusters\.x\.head\.image\.repository is empty"):
        render_chart(values_files=[values_file])
