"""The one layer that talks to the API server.

Synchronous calls on the official client, run in a thread pool by the reconciler.
Lists are read raw (`_preload_content=False`) and reduced to slim observed views at
once: the client's model objects cost far more time and memory than we need.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from . import constants as c
from .observed import ObservedPod, ObservedService

log = logging.getLogger(__name__)
REPORTING_COMPONENT = "ray-operator"
JSON_PATCH = "application/json-patch+json"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _raw(response: Any) -> dict[str, Any]:
    return json.loads(response.data)


class KubeApi:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.rbac = client.RbacAuthorizationV1Api(api_client)
        self.instance = os.environ.get("POD_NAME") or socket.gethostname()

    # -- reads -------------------------------------------------------------------------

    def get_cluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.PLURAL, name
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list_cluster_pods(self, namespace: str, cluster: str) -> list[ObservedPod]:
        """Every pod of one cluster, by server-side label selector (a consistent read,
        so pods created just before a crash are always seen)."""
        response = self.core.list_namespaced_pod(
            namespace, label_selector=f"{c.LABEL_CLUSTER}={cluster}", _preload_content=False
        )
        return [ObservedPod.from_dict(p) for p in _raw(response).get("items", [])]

    def get_service(self, namespace: str, name: str) -> ObservedService | None:
        try:
            response = self.core.read_namespaced_service(name, namespace, _preload_content=False)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return ObservedService.from_dict(_raw(response))

    # -- writes ------------------------------------------------------------------------

    def create_pod(self, namespace: str, body: dict[str, Any]) -> str:
        response = self.core.create_namespaced_pod(namespace, body, _preload_content=False)
        return _raw(response)["metadata"]["name"]

    def delete_pod(self, namespace: str, name: str) -> bool:
        """Delete; False if it was already gone (that is fine)."""
        try:
            self.core.delete_namespaced_pod(name, namespace, _preload_content=False)
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise

    def create_if_missing(self, obj: dict[str, Any], check_first: bool = True) -> bool:
        """Create a namespaced child (Service, ServiceAccount, Role, RoleBinding);
        False if it already existed. Checking first with a GET keeps a resync free of
        write requests (a create answered 409 is still a write request)."""
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        read, create = {
            "Service": (self.core.read_namespaced_service, self.core.create_namespaced_service),
            "ServiceAccount": (
                self.core.read_namespaced_service_account,
                self.core.create_namespaced_service_account,
            ),
            "Role": (self.rbac.read_namespaced_role, self.rbac.create_namespaced_role),
            "RoleBinding": (
                self.rbac.read_namespaced_role_binding,
                self.rbac.create_namespaced_role_binding,
            ),
        }[obj["kind"]]
        try:
            if check_first:
                read(name, namespace, _preload_content=False)
                return False
        except ApiException as err:
            if err.status != 404:
                raise
        try:
            create(namespace, obj, _preload_content=False)
            return True
        except ApiException as err:
            if err.status == 409:
                return False
            raise

    def service_account_exists(self, namespace: str, name: str) -> bool:
        try:
            self.core.read_namespaced_service_account(name, namespace, _preload_content=False)
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise

    def replace_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        # A JSON patch replaces the whole status, so fields that went away are removed
        # (a merge patch would keep them).
        self.custom.patch_namespaced_custom_object_status(
            c.GROUP,
            c.VERSION,
            namespace,
            c.PLURAL,
            name,
            [{"op": "add", "path": "/status", "value": status}],
            _content_type=JSON_PATCH,
        )

    def remove_finalizer(self, cluster: dict[str, Any], finalizer: str) -> None:
        meta = cluster["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if finalizer not in finalizers:
            return
        index = finalizers.index(finalizer)
        self.custom.patch_namespaced_custom_object(
            c.GROUP,
            c.VERSION,
            meta["namespace"],
            c.PLURAL,
            meta["name"],
            [
                {"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
                {"op": "remove", "path": f"/metadata/finalizers/{index}"},
            ],
            _content_type=JSON_PATCH,
        )

    def post_event(self, cluster: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the RayCluster (what `kubectl describe` shows). Failing to
        post one is logged, never raised: events are best effort."""
        meta = cluster["metadata"]
        now = now_rfc3339()
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": c.API_VERSION,
                "kind": c.KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": REPORTING_COMPONENT},
            "reportingComponent": REPORTING_COMPONENT,
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], event, _preload_content=False)
        except ApiException as err:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], err.reason)
