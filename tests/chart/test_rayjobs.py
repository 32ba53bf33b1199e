"""`rayJobs:` in values: RayJobs on a new cluster (built like `rayClusters` entries) or
an existing one, valid against the RayJob CRD; bad values fail naming the key."""

from __future__ import annotations

import pytest
import yaml

from tests.chart.openapi import errors
from tests.chart.render import CHART, by_kind, helm, one, render_chart

JOB = {
    "entrypoint": "python -c 'print(1)'",
    "submissionMode": "HTTPMode",
    "shutdownAfterJobFinishes": True,
    "ttlSecondsAfterFinished": 60,
    "runtimeEnv": {"env_vars": {"A": "b"}},
    "cluster": {"workerGroups": {"cpu": {"replicas": 1}}},
}


def test_rayjob_on_a_new_cluster_uses_the_rayclusters_defaults() -> None:
    docs = render_chart(values={"rayJobs": {"train": JOB}})
    job = one(docs, "RayJob", "train")
    spec = job["spec"]
    assert spec["entrypoint"] == "python -c 'print(1)'"
    assert spec["submissionMode"] == "HTTPMode"
    assert spec["ttlSecondsAfterFinished"] == 60 and spec["shutdownAfterJobFinishes"] is True
    assert yaml.safe_load(spec["runtimeEnvYAML"]) == {"env_vars": {"A": "b"}}
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"] == "rayproject/ray:2.60.0"
    assert [g["groupName"] for g in cluster["workerGroupSpecs"]] == ["cpu"]
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "rayjob"
    assert not by_kind(docs, "RayCluster")  # the operator creates it, not Helm
    assert errors(job) == []


def test_rayjob_on_an_existing_cluster() -> None:
    values = {"rayJobs": {"q": {"entrypoint": "true", "clusterName": "shared", "enabled": True}}}
    job = one(render_chart(values=values), "RayJob", "q")
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": "shared"}
    assert "rayClusterSpec" not in job["spec"]
    assert errors(job) == []


def test_disabled_rayjob_is_not_rendered() -> None:
    assert not by_kind(render_chart(values={"rayJobs": {"x": {**JOB, "enabled": False}}}), "RayJob")


@pytest.mark.parametrize(
    ("job", "words"),
    [
        ({"cluster": {"rayVersion": "2.60.0"}}, "rayJobs.j.entrypoint is empty"),
        ({"entrypoint": "x"}, "rayJobs.j: set cluster"),
        ({"entrypoint": "x", "cluster": {"rayVersion": "2.60.0"}, "clusterName": "c"}, "not both"),
        ({"entrypoint": "x", "cluster": {"namespace": "a"}}, "rayJobs.j.cluster: namespace"),
        ({"entrypoint": "x", "clusterName": "c", "submissionMode": "Batch"}, "submissionMode"),
        ({"entrypoint": "x", "clusterName": "c", "ttlSeconds": 1}, "ttlSeconds"),
        ({"entrypoint": "x", "clusterName": "c", "backoffLimit": -1}, "backoffLimit"),
        (
            {
                "entrypoint": "x",
                "cluster": {"workerGroups": {"g": {"minReplicas": 3, "maxReplicas": 1}}},
            },
            "rayJobs.j.cluster.workerGroups.g: minReplicas",
        ),
    ],
)
def test_bad_rayjob_values_fail_naming_the_key(job: dict, words: str, tmp_path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"rayJobs": {"j": job}}))
    result = helm("template", "r", str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr
