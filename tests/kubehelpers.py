"""Small helpers for tests that talk to the local control plane."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.2, what: str = ""
) -> T:
    """Poll until `predicate()` returns something truthy; return it. Raises on timeout
    with the last value seen, so a failing test says what it was waiting for."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what or predicate}; last: {last!r}"
    )


def create_namespace(core: client.CoreV1Api, name: str) -> str:
    """A namespace ready for pods (its default ServiceAccount exists)."""
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for_default_service_account(core, name)
    return name


def wait_for_default_service_account(core: client.CoreV1Api, namespace: str) -> None:
    def exists() -> bool:
        try:
            core.read_namespaced_service_account("default", namespace)
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise

    wait_for(exists, timeout=30, what=f"ServiceAccount default in {namespace}")


def service_account_client(
    admin: client.ApiClient, namespace: str, name: str, create: bool = True
) -> client.ApiClient:
    """An ApiClient that authenticates as ServiceAccount `namespace/name` with a real
    token from the TokenRequest API (the same kind a pod gets mounted)."""
    core = client.CoreV1Api(admin)
    if create:
        try:
            core.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
            )
        except ApiException as err:
            if err.status != 409:
                raise
    token = core.create_namespaced_service_account_token(
        name,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    ).status.token
    cfg = client.Configuration()
    cfg.host = admin.configuration.host
    cfg.ssl_ca_cert = admin.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


def apply_crds(api: client.ApiClient, paths: list[Path]) -> None:
    """Create or replace CRDs from files and wait until each is Established."""
    ext = client.ApiextensionsV1Api(api)
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            name = doc["metadata"]["name"]
            try:
                current = ext.read_custom_resource_definition(name)
                doc["metadata"]["resourceVersion"] = current.metadata.resource_version
                ext.replace_custom_resource_definition(name, doc)
            except ApiException as err:
                if err.status != 404:
                    raise
                ext.create_custom_resource_definition(doc)
            wait_for(lambda n=name: _established(ext, n), timeout=30, what=f"CRD {name}")


def _established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    crd = ext.read_custom_resource_definition(name)
    return any(
        c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])
    )
