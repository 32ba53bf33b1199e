"""Where the operator's API credentials come from, and how they stay fresh.

In a pod: the projected ServiceAccount token, which the kubelet rotates in place. Outside
(tests, `make demo`): KUBECONFIG, where a user may carry a `tokenFile`. A token read
once expires with the process still running (an inline token ends it), so a token that
comes from a file is re-read whenever the file changes, and once more on a 401 (the
file may have been rotated between two stats). A token no file backs is left as it is.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import yaml
from kubernetes import client, config

log = logging.getLogger(__name__)

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
POOL_SIZE = 32


class TokenFile:
    """A bearer token backed by a file; `current()` is cheap (one stat)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime_ns = -1
        self._token = ""

    def current(self) -> str:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return self._token  # keep the last good token while the file is swapped
        with self._lock:
            if mtime != self._mtime_ns:
                self._reload(mtime)
            return self._token

    def reload(self) -> bool:
        """Read the file again whatever its mtime; True if the token changed."""
        with self._lock:
            before = self._token
            try:
                self._reload(self.path.stat().st_mtime_ns)
            except OSError:
                return False
            return self._token != before

    def _reload(self, mtime: int) -> None:
        token = self.path.read_text().strip()
        if token:
            if self._token and token != self._token:
                log.info("bearer token in %s changed: using the new one", self.path)
            self._token, self._mtime_ns = token, mtime


def kubeconfig_path() -> str:
    """KUBECONFIG's first file, read now (the client library reads it at import)."""
    return (os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")).split(
        os.pathsep
    )[0]


def _kubeconfig_token_file() -> Path | None:
    """The current context's `tokenFile` in KUBECONFIG (first file), if any."""
    path = kubeconfig_path()
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except OSError:
        return None
    context = _named(doc, "contexts", doc.get("current-context")).get("context") or {}
    user = _named(doc, "users", context.get("user")).get("user") or {}
    token_file = user.get("tokenFile")
    if not token_file:
        return None
    token_path = Path(token_file)
    return token_path if token_path.is_absolute() else Path(path).parent / token_path


def _named(doc: dict, section: str, name: object) -> dict:
    return next((x for x in doc.get(section) or [] if x.get("name") == name), {})


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not os.environ.get("KUBECONFIG")


def token_file() -> TokenFile | None:
    """The file the operator's bearer token comes from, if one does."""
    if in_cluster():
        return TokenFile(IN_CLUSTER_TOKEN)
    path = _kubeconfig_token_file()
    return TokenFile(path) if path else None


def api_client_factory(user_agent: str, tokens: TokenFile | None) -> Callable[[], client.ApiClient]:
    """Makes ApiClients with the operator's credentials; the token, if a file backs it,
    is read from `tokens` on every request (a stat; re-read only when it changed)."""

    def make() -> client.ApiClient:
        if in_cluster():
            config.load_incluster_config()
            cfg = client.Configuration.get_default_copy()
        else:
            cfg = client.Configuration()
            config.load_kube_config(config_file=kubeconfig_path(), client_configuration=cfg)
        cfg.connection_pool_maxsize = POOL_SIZE
        if tokens is not None:

            def refresh(c: client.Configuration) -> None:
                c.api_key["BearerToken"] = f"Bearer {tokens.current()}"
                c.api_key_prefix.pop("BearerToken", None)

            cfg.refresh_api_key_hook = refresh
        api_client = client.ApiClient(cfg)
        api_client.user_agent = user_agent
        return api_client

    return make
