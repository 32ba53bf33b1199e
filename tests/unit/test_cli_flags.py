"""`ray-operator run` flags whose default comes from KubeRay's operator env."""

from __future__ import annotations

import pytest

from ray_operator import cli


@pytest.mark.parametrize(
    ("env", "argv", "want"),
    [
        (None, [], True),
        ("true", [], True),
        ("FALSE", [], False),  # KubeRay's ENABLE_GCS_FT_REDIS_CLEANUP=false
        ("false", ["--gcs-ft-redis-cleanup"], True),  # the flag wins
        (None, ["--no-gcs-ft-redis-cleanup"], False),
    ],
)
def test_gcs_ft_redis_cleanup_flag(monkeypatch, env, argv, want):
    if env is None:
        monkeypatch.delenv("ENABLE_GCS_FT_REDIS_CLEANUP", raising=False)
    else:
        monkeypatch.setenv("ENABLE_GCS_FT_REDIS_CLEANUP", env)
    seen = {}
    monkeypatch.setattr(cli, "_run", lambda args: seen.setdefault("on", args.gcs_ft_redis_cleanup))
    cli.main(["run", "-n", "ns", *argv])
    assert seen["on"] is want
