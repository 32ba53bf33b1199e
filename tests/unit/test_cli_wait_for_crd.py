"""`ray-operator run --namespace ...` waits for the RayCluster API before watching: by
reading the CRD when allowed, else (403) by listing RayClusters in a watched namespace,
which a namespaced install's Role allows."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from ray_operator import cli, kube


class FakeApi:
    def __init__(self, answers: dict[str, list[int]]) -> None:
        self.answers = answers  # path -> statuses to answer in turn (200: success)
        self.calls: list[tuple[str, Any]] = []

    def __call__(self, _api_client: Any) -> FakeApi:
        return self

    def request(self, method: str, path: str, query: Any = None) -> dict[str, Any]:
        self.calls.append((path, query))
        status = self.answers[path].pop(0)
        if status != 200:
            raise ApiException(status=status, reason="x")
        return {}


CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rayclusters.ray.io"
LIST = "/apis/ray.io/v1/namespaces/team-a/rayclusters"


@pytest.fixture
def no_sleep(monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _: None)


def test_reads_the_crd_when_allowed(monkeypatch, no_sleep) -> None:
    fake = FakeApi({CRD: [404, 200]})
    monkeypatch.setattr(kube, "KubeApi", fake)
    cli._wait_for_crd(object(), ["team-a"])
    assert [p for p, _ in fake.calls] == [CRD, CRD]


def test_forbidden_crd_falls_back_to_listing_rayclusters(monkeypatch, no_sleep) -> None:
    fake = FakeApi({CRD: [403], LIST: [404, 404, 200]})  # 404: no CRD yet
    monkeypatch.setattr(kube, "KubeApi", fake)
    cli._wait_for_crd(object(), ["team-a", "team-b"])
    assert [p for p, _ in fake.calls] == [CRD, LIST, LIST, LIST]
    assert fake.calls[-1][1] == [("limit", "1")]
