"""Bearer tokens that come from a file are re-read when it changes: the operator
outlives any one token (kubelet-rotated projected tokens, a kubeconfig `tokenFile`)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ray_operator import credentials
from ray_operator.credentials import TokenFile, api_client_factory


def _write(path: Path, token: str, mtime_ns: int) -> None:
    path.write_text(token + "\n")
    os.utime(path, ns=(mtime_ns, mtime_ns))  # no reliance on the clock's resolution


def test_the_token_follows_the_file(tmp_path):
    path = tmp_path / "token"
    _write(path, "first", 1_000)
    tokens = TokenFile(path)
    assert tokens.current() == "first"
    _write(path, "second", 2_000)
    assert tokens.current() == "second"


def test_a_missing_or_empty_file_keeps_the_last_good_token(tmp_path):
    path = tmp_path / "token"
    _write(path, "good", 1_000)
    tokens = TokenFile(path)
    assert tokens.current() == "good"
    path.unlink()
    assert tokens.current() == "good"
    _write(path, "", 3_000)
    assert tokens.current() == "good"


def test_reload_says_whether_the_token_changed(tmp_path):
    path = tmp_path / "token"
    _write(path, "a", 1_000)
    tokens = TokenFile(path)
    tokens.current()
    assert not tokens.reload()
    _write(path, "b", 1_000)  # same mtime: only a forced reload sees it (the 401 path)
    assert tokens.current() == "a"
    assert tokens.reload() and tokens.current() == "b"


def _kubeconfig(tmp_path: Path, user: dict) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "op",
        "clusters": [{"name": "local", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "op", "user": user}],
        "contexts": [{"name": "op", "context": {"cluster": "local", "user": "op"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_kubeconfig_token_file_is_found_relative_to_the_kubeconfig(tmp_path, monkeypatch):
    _write(tmp_path / "token", "from-file", 1_000)
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, {"tokenFile": "token"})))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    tokens = credentials.token_file()
    assert tokens is not None and tokens.path == tmp_path / "token"


def test_an_inline_token_has_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, {"token": "inline"})))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert credentials.token_file() is None


def test_every_request_carries_the_current_token(tmp_path, monkeypatch):
    path = tmp_path / "token"
    _write(path, "one", 1_000)
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, {"tokenFile": "token"})))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    make = api_client_factory("ray-operator/test (me)", credentials.token_file())
    api_client = make()
    assert api_client.user_agent == "ray-operator/test (me)"
    auth = api_client.configuration.auth_settings()["BearerToken"]["value"]
    assert auth == "Bearer one"
    _write(path, "two", 2_000)
    assert api_client.configuration.auth_settings()["BearerToken"]["value"] == "Bearer two"
