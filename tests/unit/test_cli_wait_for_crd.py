"""`ray-operator run --namespace ...` waits for the RayCluster API before watching: by
reading the CRD when allowed, else (403) by listing RayClusters in a watched namespace,
which a namespaced install's Role allows."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from ray_operator import cli, kube


class FakeApi:
    """The two declared calls the wait uses, answering statuses in turn (200: found)."""

    def __init__(self, crd: list[int], listing: list[int] | None = None) -> None:
        self.answers = {"crd": crd, "list": listing or []}
        self.calls: list[tuple[str, str]] = []

    def __call__(self, _api_client: Any) -> FakeApi:
        return self

    def _answer(self, what: str) -> int:
        status = self.answers[what].pop(0)
        if status not in (200, 404):
            raise ApiException(status=status, reason="x")
        return status

    def crd_exists(self, name: str) -> bool:
        self.calls.append(("crd", name))
        return self._answer("crd") == 200

    def list_cluster_keys(self, namespace: str | None) -> list[tuple[str, str]]:
        self.calls.append(("list", namespace or ""))
        if self._answer("list") == 404:  # no CRD yet: the API server has no such path
            raise ApiException(status=404, reason="Not Found")
        return []


@pytest.fixture
def no_sleep(monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _: None)


def test_reads_the_crd_when_allowed(monkeypatch, no_sleep) -> None:
    fake = FakeApi(crd=[404, 200])
    monkeypatch.setattr(kube, "KubeApi", fake)
    cli._wait_for_crd(object(), ["team-a"])
    assert fake.calls == [("crd", "rayclusters.ray.io"), ("crd", "rayclusters.ray.io")]


def test_forbidden_crd_falls_back_to_listing_rayclusters(monkeypatch, no_sleep) -> None:
    fake = FakeApi(crd=[403], listing=[404, 404, 200])
    monkeypatch.setattr(kube, "KubeApi", fake)
    cli._wait_for_crd(object(), ["team-a", "team-b"])
    assert fake.calls == [("crd", "rayclusters.ray.io")] + [("list", "team-a")] * 3
