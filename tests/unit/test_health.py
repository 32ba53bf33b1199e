"""/healthz: progress bounds on a fake clock, and the endpoint itself on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from ray_operator.health import Health, serve


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_part_is_stalled_only_past_its_bound():
    clock = Clock()
    health = Health(clock)
    health.expect("watch /api/v1/pods", 90)
    clock.now = 90
    assert health.problems() == []
    clock.now = 91
    assert health.problems() == ["watch /api/v1/pods: no progress for 91s (bound 90s)"]
    health.beat("watch /api/v1/pods")
    assert health.problems() == []


def test_beats_of_undeclared_parts_are_ignored_and_checks_are_added():
    clock = Clock()
    health = Health(clock)
    health.beat("nobody")
    health.add_check(lambda: ["a reconcile has been running for 400s"])
    clock.now = 1e6
    assert health.problems() == ["a reconcile has been running for 400s"]


@pytest.fixture
def endpoint():
    health = Health(Clock())
    server, url = serve(health, "http://127.0.0.1:0/healthz")
    yield health, url
    server.shutdown()
    server.server_close()


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_port_zero_serves_on_a_free_port_and_reports_it(endpoint):
    _, url = endpoint
    assert url.startswith("http://127.0.0.1:") and not url.startswith("http://127.0.0.1:0/")
    assert _get(url) == (200, {"ok": True, "problems": []})


def test_a_stalled_part_answers_500_with_the_reason(endpoint):
    health, url = endpoint
    health.add_check(lambda: ["event loop: no progress for 31s (bound 30s)"])
    status, body = _get(url)
    assert status == 500 and body["problems"] == ["event loop: no progress for 31s (bound 30s)"]


def test_other_paths_are_404(endpoint):
    _, url = endpoint
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url.replace("/healthz", "/other"), timeout=5)
    assert err.value.code == 404
