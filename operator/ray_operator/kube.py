"""The one layer that talks to the API server.

Plain JSON over the official client's connection pool and authentication, run in a
thread pool by the reconciler. The generated API methods are bypassed on purpose: they
validate bodies against their models (which refuse quantities written as numbers, such
as `nvidia.com/gpu: 1`, that the API server accepts) and building model objects costs
far more time and memory than a reconcile needs. Lists are reduced to slim observed
views at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from . import constants as c
from .credentials import TokenFile
from .observed import ObservedJob, ObservedPod, ObservedService, controller_uid

log = logging.getLogger(__name__)
REPORTING_COMPONENT = "ray-operator"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
RBAC = "/apis/rbac.authorization.k8s.io/v1"

# kind -> collection path below /namespaces/{ns}
CHILD_PATHS = {
    "Service": "/api/v1/namespaces/{ns}/services",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "Role": RBAC + "/namespaces/{ns}/roles",
    "RoleBinding": RBAC + "/namespaces/{ns}/rolebindings",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
}


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clusters(namespace: str | None) -> str:
    """The RayClusters of a namespace (None: of all namespaces)."""
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{c.GROUP}/{c.VERSION}{where}/{c.PLURAL}"


def _rayjobs(namespace: str | None) -> str:
    """The RayJobs of a namespace (None: of all namespaces)."""
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{c.GROUP}/{c.VERSION}{where}/{c.JOB_PLURAL}"


def _batch_jobs(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


@dataclass(frozen=True)
class Needs:
    """An RBAC permission an API method needs; `scope` says where it is granted:
    "namespace" (each watched namespace), "cluster" (cluster-scoped objects) or
    "leader" (the Lease in the operator's own namespace)."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    scope: str = "namespace"


# Method name -> what it needs. The chart's RBAC is checked against this table
# (tests/chart/test_rbac.py, through rbac.py): no verb granted that no call uses, no call
# without its verb.
API_PERMISSIONS: dict[str, tuple[Needs, ...]] = {}
F = TypeVar("F", bound=Callable[..., Any])


def needs(*permissions: Needs) -> Callable[[F], F]:
    def mark(method: F) -> F:
        API_PERMISSIONS[method.__name__] = permissions
        return method

    return mark


CLUSTERS = (c.GROUP, c.PLURAL)
RAYJOBS = (c.GROUP, c.JOB_PLURAL)
BATCH_JOBS = ("batch", "jobs")
CHILD_RESOURCES = {
    "Service": ("", "services"), "Secret": ("", "secrets"),
    "ServiceAccount": ("", "serviceaccounts"),
    "Role": ("rbac.authorization.k8s.io", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
    "Ingress": ("networking.k8s.io", "ingresses"),
}  # fmt: skip
ALL_CHILD_PATHS = {kind: path.replace("/namespaces/{ns}", "") for kind, path in CHILD_PATHS.items()}
# The autoscaler's RBAC objects, in the order they are made; `list_labelled_children`
# reads them.
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding")
CHILD_NEEDS = tuple(Needs(group, res, ("get", "create")) for group, res in CHILD_RESOURCES.values())


class LostLeadership(RuntimeError):
    """A write was refused because this replica no longer surely holds the Lease."""


# The fence of the write this thread is sending, checked again by the connection right
# before each send to the socket: a process frozen (SIGSTOP, a stalled node) after the
# first check but before its bytes leave must not deliver them late. What is left is
# the window between that last check and the system call: a few bytecodes.
_sending = threading.local()


def _check_fence() -> None:
    fence = getattr(_sending, "fence", None)
    if fence is not None:
        fence()


class _FencedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def send(self, data: Any) -> None:
        _check_fence()
        super().send(data)


class _FencedHTTPConnection(urllib3.connection.HTTPConnection):
    def send(self, data: Any) -> None:
        _check_fence()
        super().send(data)


class _FencedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _FencedHTTPSConnection


class _FencedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _FencedHTTPConnection


# A single API call that hears nothing for this long is abandoned: a silently dropped
# connection (a failed NAT or load balancer) would otherwise block its thread forever.
DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
JSON = "application/json"
WHOLE_PAGE = 5000  # items per page of a list of whole objects (decoded item by item)
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"\s*")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RateLimiter:
    """Client-side limit on API requests, like client-go's QPS and burst (KubeRay's
    `--qps`/`--burst`): a token bucket holding up to `burst` requests that refills at
    `qps` per second. `acquire` reserves a token and sleeps until it is due, so callers
    queue in arrival order and the long-run rate never exceeds `qps`."""

    def __init__(
        self,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"need qps > 0 and burst >= 1, got qps={qps} burst={burst}")
        self.qps, self.burst = qps, burst
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()

    def acquire(self) -> float:
        """Take one token, waiting for it if needed; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1  # below zero: reserved by callers already waiting
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


# One limiter for every KubeApi of the process (set by `ray-operator run --qps`); None
# means no limit. Watches count once, when they are opened.
_rate_limiter: RateLimiter | None = None


def set_rate_limit(qps: float, burst: int) -> None:
    """Limit this process's API requests to `qps` per second with bursts of `burst`;
    qps 0 removes the limit."""
    global _rate_limiter
    _rate_limiter = RateLimiter(qps, burst) if qps > 0 else None


class KubeApi:
    """`fence`, if set, is called before every write but the Lease's own and raises
    LostLeadership when this replica may no longer act (see leader.py). `tokens`, if
    set, is re-read once when a call is answered 401."""

    def __init__(
        self,
        api_client: client.ApiClient,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        fence: Callable[[], None] | None = None,
        tokens: TokenFile | None = None,
    ) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self.fence = fence
        self.tokens = tokens
        if fence is not None:
            pools = api_client.rest_client.pool_manager
            pools.pool_classes_by_scheme = {"http": _FencedHTTPPool, "https": _FencedHTTPSPool}
        self.instance = os.environ.get("POD_NAME") or socket.gethostname()

    def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: tuple[float, float] | None = None,
        gzip: bool = False,
    ) -> Any:
        fence = self.fence if method in WRITE_METHODS and "/leases" not in path else None
        if fence is not None:
            fence()  # refuse early, and once more right before the bytes leave (above)
        headers = {"Accept": accept}
        if gzip:  # the API server compresses big answers (lists) when asked to
            headers["Accept-Encoding"] = "gzip"
        if body is not None:
            headers["Content-Type"] = content_type
        if _rate_limiter is not None:
            _rate_limiter.acquire()
        for attempt in (1, 2):
            # Serialised afresh each time: the auth header is read from the credentials.
            verb, url, sent_headers, sent_body, _ = self.api_client.param_serialize(
                method=method, resource_path=path, query_params=query or [],
                header_params=dict(headers), body=body, auth_settings=["BearerToken"],
            )  # fmt: skip
            _sending.fence = fence
            try:
                response = self.api_client.call_api(
                    verb, url, header_params=sent_headers, body=sent_body,
                    _request_timeout=timeout or self.timeout,
                )  # fmt: skip
            finally:
                _sending.fence = None
            if response.status == 401 and attempt == 1 and self.tokens and self.tokens.reload():
                response.read()
                continue  # the token file was rotated: once more with the new token
            break
        if not 200 <= response.status <= 299:
            data = response.read()
            raise ApiException.from_response(
                http_resp=response, body=data.decode(errors="replace"), data=None
            )
        return response

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> dict[str, Any]:
        """One API call; raises ApiException (status, reason, body) on a non-2xx, and
        urllib3's errors when the connection fails or stays silent past the timeout."""
        data = self._send(method, path, body, query, content_type, accept).read()
        return json.loads(data) if data else {}

    def watch(
        self, path: str, query: list[tuple[str, str]], accept: str, read_timeout: float
    ) -> Iterator[dict[str, Any]]:
        """The events of one watch request, decoded as they arrive (one JSON object per
        line), until the server ends it. `read_timeout` bounds the silence between two
        reads: a dead connection raises instead of blocking. The connection is released
        when the caller stops iterating."""
        response = self._send(
            "GET", path, query=[*query, ("watch", "true")], accept=accept,
            timeout=(self.timeout[0], read_timeout),
        ).response  # fmt: skip
        try:
            pending = b""
            for chunk in response.stream(amt=None, decode_content=False):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.close()  # unread events must not go back to the pool
            response.release_conn()

    def list_pages(
        self,
        path: str,
        query: list[tuple[str, str]],
        accept: str,
        page_size: int = 500,
        item_by_item: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """The pages of a paged list; the last page carries the list's resourceVersion.
        `item_by_item`: a page's "items" is an iterator that decodes one item at a time
        (whole pods: the page is never held decoded all at once, see `list_fields`),
        and its "metadata" is complete once the items have been iterated."""
        token = ""
        while True:
            query_page = [*query, ("limit", str(page_size))]
            query_page += [("continue", token)] if token else []
            # Compressed: a restart's lists are most of what the operator ever receives
            # (whole pods: about a tenth of the bytes).
            data = self._send("GET", path, query=query_page, accept=accept, gzip=True).read()
            if item_by_item:
                page = _lazy_page(data.decode())
                yield page
                for _ in page["items"]:  # whatever the caller left: the metadata is last
                    pass
            else:
                page = json.loads(data)
                yield page
            token = page["metadata"].get("continue") or ""
            if not token:
                return

    @needs(
        Needs(*CLUSTERS, ("list",)), Needs(*RAYJOBS, ("list",)),
        Needs("", "pods", ("list",)), Needs("", "services", ("list",)),
        Needs("batch", "jobs", ("list",)),
    )  # fmt: skip
    def list_collection(
        self, path: str, query: list[tuple[str, str]], metadata_only: bool = True
    ) -> Iterator[dict]:
        """Pages of a watched collection (listwatch.py): RayClusters, RayJobs, Ray pods,
        Services or Jobs, by default metadata only. Whole objects come in big pages
        decoded item by item: few requests, and one item held whole at a time."""
        if metadata_only:
            return self.list_pages(path, query, METADATA_LIST)
        return self.list_pages(path, query, JSON, WHOLE_PAGE, item_by_item=True)

    @needs(
        Needs(*CLUSTERS, ("watch",)), Needs(*RAYJOBS, ("watch",)),
        Needs("", "pods", ("watch",)), Needs("", "services", ("watch",)),
        Needs("batch", "jobs", ("watch",)),
    )  # fmt: skip
    def watch_collection(
        self,
        path: str,
        query: list[tuple[str, str]],
        read_timeout: float,
        metadata_only: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Watch events of a watched collection (listwatch.py), by default metadata
        only."""
        return self.watch(path, query, METADATA_ONLY if metadata_only else JSON, read_timeout)

    @needs(Needs("apiextensions.k8s.io", "customresourcedefinitions", ("get",), "cluster"))
    def crd_exists(self, name: str) -> bool:
        """Its metadata only: the whole RayCluster CRD, schema and all, is 165 KiB."""
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        return self._get_or_none(path, METADATA_ONLY) is not None

    def _get_or_none(self, path: str, accept: str = JSON) -> dict[str, Any] | None:
        try:
            return self.request("GET", path, accept=accept)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    # -- reads -------------------------------------------------------------------------

    @needs(Needs(*CLUSTERS, ("get",)))
    def get_cluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(f"{_clusters(namespace)}/{quote(name)}")

    @needs(Needs(*CLUSTERS, ("list",)))
    def list_clusters(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every RayCluster in a namespace (None: everywhere), whole, in compressed
        pages: what a periodic resync starts each pass from, instead of a GET each."""
        pages = self.list_collection(_clusters(namespace), [], metadata_only=False)
        return [item for page in pages for item in page["items"]]

    @needs(Needs(*CLUSTERS, ("list",)))
    def list_cluster_keys(self, namespace: str | None) -> list[tuple[str, str]]:
        """(namespace, name) of every RayCluster in a namespace (None: everywhere),
        metadata only and paged: how the CRD wait probes for RayClusters where it may
        not read the CRD (cli.py)."""
        return [
            (item["metadata"]["namespace"], item["metadata"]["name"])
            for page in self.list_pages(_clusters(namespace), [], METADATA_LIST)
            for item in page.get("items") or []
        ]

    @needs(Needs("", "pods", ("list",)))
    def list_cluster_pods(
        self, namespace: str, cluster: str
    ) -> tuple[list[ObservedPod], str | None]:
        """Every pod of one cluster, by server-side label selector (a consistent read,
        so pods created just before a crash are always seen), and the list's
        resourceVersion."""
        listing = self.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods",
            query=[("labelSelector", f"{c.LABEL_CLUSTER}={cluster}")],
        )  # fmt: skip
        pods = [ObservedPod.from_dict(p) for p in listing.get("items", [])]
        return pods, (listing.get("metadata") or {}).get("resourceVersion")

    @needs(Needs("", "pods", ("list",)))
    def list_head_pods(self, namespace: str, cluster: str) -> list[dict[str, Any]]:
        """The head pods of one cluster, whole (a SidecarMode RayJob reads its
        submitter container's status from them)."""
        selector = f"{c.LABEL_CLUSTER}={cluster},{c.LABEL_NODE_TYPE}={c.NODE_TYPE_HEAD}"
        listing = self.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", selector)]
        )
        return list(listing.get("items") or [])

    @needs(Needs("batch", "jobs", ("list",)))
    def list_jobs(self, namespace: str, selector: str) -> list[ObservedJob]:
        """Jobs by server-side label selector (the Redis cleanup Jobs of one cluster)."""
        listing = self.request(
            "GET", f"/apis/batch/v1/namespaces/{namespace}/jobs",
            query=[("labelSelector", selector)],
        )  # fmt: skip
        return [ObservedJob.from_dict(j) for j in listing.get("items", [])]

    @needs(Needs("", "services", ("get",)))
    def get_service(self, namespace: str, name: str) -> ObservedService | None:
        svc = self._get_or_none(f"/api/v1/namespaces/{namespace}/services/{quote(name)}")
        return ObservedService.from_dict(svc) if svc else None

    @needs(*(Needs(*CHILD_RESOURCES[kind], ("list",)) for kind in RBAC_KINDS))
    def list_labelled_children(
        self, kind: str, namespace: str | None
    ) -> list[tuple[str, str, str, str | None]]:
        """(namespace, cluster, name, controller uid) of every child of `kind` (one of
        RBAC_KINDS) that a RayCluster's label names, in a namespace (None: all of
        them), as metadata: one request where a restart or resync would otherwise GET
        each autoscaling cluster's own."""
        path = CHILD_PATHS[kind].format(ns=namespace) if namespace else ALL_CHILD_PATHS[kind]
        return [
            (meta["namespace"], meta["labels"][c.LABEL_CLUSTER], meta["name"], controller_uid(meta))
            for page in self.list_pages(path, [("labelSelector", c.LABEL_CLUSTER)], METADATA_LIST)
            for meta in (item["metadata"] for item in page.get("items") or [])
        ]

    @needs(Needs("", "serviceaccounts", ("get",)))
    def service_account_exists(self, namespace: str, name: str) -> bool:
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{quote(name)}"
        return self._get_or_none(path) is not None

    @needs(Needs("", "secrets", ("get",)))
    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """One value of a Secret, decoded; None if the Secret or the key is missing.
        Callers hand it to where it is needed and never log it."""
        secret = self._get_or_none(f"/api/v1/namespaces/{namespace}/secrets/{quote(name)}")
        if secret is None:
            return None
        if (value := (secret.get("stringData") or {}).get(key)) is not None:
            return str(value)
        encoded = (secret.get("data") or {}).get(key)
        return base64.b64decode(encoded).decode() if encoded is not None else None

    @needs(Needs("", "secrets", ("get",)))
    def secret_keys(self, namespace: str, name: str) -> set[str] | None:
        """The keys of a Secret (never its values), None if there is no such Secret."""
        secret = self._get_or_none(f"/api/v1/namespaces/{namespace}/secrets/{quote(name)}")
        if secret is None:
            return None
        return set(secret.get("data") or {}) | set(secret.get("stringData") or {})

    # -- writes ------------------------------------------------------------------------

    @needs(Needs("", "pods", ("create",)))
    def create_pod(self, namespace: str, body: dict[str, Any]) -> tuple[str, str | None]:
        """Create a pod: (its name, its resourceVersion)."""
        created = self.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)
        return created["metadata"]["name"], created["metadata"].get("resourceVersion")

    @needs(Needs("batch", "jobs", ("create",)))
    def create_job(self, body: dict[str, Any]) -> bool:
        """Create a Job; False if one of that name exists already (409)."""
        return self._create(f"/apis/batch/v1/namespaces/{body['metadata']['namespace']}/jobs", body)

    @needs(Needs("", "pods", ("patch",)))
    def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> bool:
        """Merge `annotations` into a pod's metadata; False if the pod is gone."""
        return self._accepted(
            404, "PATCH", f"/api/v1/namespaces/{namespace}/pods/{quote(name)}",
            {"metadata": {"annotations": annotations}}, MERGE_PATCH,
        )  # fmt: skip

    @needs(Needs("", "pods", ("delete",)))
    def delete_pod(self, namespace: str, name: str) -> bool:
        """Delete; False if it was already gone (that is fine)."""
        return self._delete(f"/api/v1/namespaces/{namespace}/pods/{quote(name)}")

    @needs(*CHILD_NEEDS)
    def create_or_get(
        self, obj: dict[str, Any], check_first: bool = True
    ) -> tuple[bool, dict[str, Any]]:
        """Create a namespaced child (a kind of CHILD_PATHS) unless
        one of that name exists: (created, the object now there; {} if it vanished), so
        the caller can check whose it is. Checking first with a GET keeps a resync free
        of write requests (a create answered 409 is still a write request)."""
        collection = CHILD_PATHS[obj["kind"]].format(ns=obj["metadata"]["namespace"])
        path = f"{collection}/{quote(obj['metadata']['name'])}"
        if check_first and (existing := self._get_or_none(path)):
            return False, existing
        try:
            return True, self.request("POST", collection, obj)
        except ApiException as err:
            if err.status != 409:
                raise
        return False, self._get_or_none(path) or {}

    @needs(Needs(c.GROUP, f"{c.PLURAL}/status", ("patch",)))
    def replace_status(self, namespace: str, name: str, status: dict[str, Any]) -> str:
        """Returns the RayCluster's new resourceVersion. A JSON patch replaces the whole
        status, so fields that went away are removed (a merge patch would keep them)."""
        patched = self.request(
            "PATCH", f"{_clusters(namespace)}/{quote(name)}/status",
            [{"op": "add", "path": "/status", "value": status}], content_type=JSON_PATCH,
        )  # fmt: skip
        return patched["metadata"]["resourceVersion"]

    # -- leader election (leader.py) -------------------------------------------------

    @needs(Needs("coordination.k8s.io", "leases", ("get",), "leader"))
    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(f"{LEASES.format(ns=namespace)}/{quote(name)}")

    @needs(Needs("coordination.k8s.io", "leases", ("create",), "leader"))
    def create_lease(self, namespace: str, name: str, spec: dict[str, Any]) -> bool:
        """False if another replica created it first."""
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec,
        }  # fmt: skip
        return self._create(LEASES.format(ns=namespace), body)

    @needs(Needs("coordination.k8s.io", "leases", ("update",), "leader"))
    def update_lease(self, lease: dict[str, Any], spec: dict[str, Any]) -> bool:
        """Replace the Lease's spec; its resourceVersion makes this a compare-and-swap,
        so False (409) when another replica wrote it since we read it."""
        meta = lease["metadata"]
        body = {**lease, "spec": spec}
        return self._accepted(
            409, "PUT", f"{LEASES.format(ns=meta['namespace'])}/{quote(meta['name'])}", body
        )

    @needs(Needs(*CLUSTERS, ("patch",)))
    def add_finalizer(self, cluster: dict[str, Any], finalizer: str) -> str:
        """Append a finalizer; returns the new resourceVersion. The test makes it a
        compare-and-swap on the list we read (a 422 if it changed meanwhile), so a
        finalizer another writer added is never dropped."""
        meta = cluster["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if finalizer in finalizers:
            return meta["resourceVersion"]
        path = f"{_clusters(meta['namespace'])}/{quote(meta['name'])}"
        if finalizers:
            ops = [
                {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
            ]
        else:  # no list to test: the resourceVersion guards the whole object instead
            ops = [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": meta["resourceVersion"],
                },
                {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
            ]
        patched = self.request("PATCH", path, ops, content_type=JSON_PATCH)
        return patched["metadata"]["resourceVersion"]

    @needs(Needs(*CLUSTERS, ("patch",)))
    def remove_finalizers(self, cluster: dict[str, Any], finalizers: list[str]) -> None:
        """Remove these finalizers in one write; each removal is guarded by a test of the
        entry it removes (a 422 if the list changed since we read it)."""
        meta = cluster["metadata"]
        present = list(meta.get("finalizers") or [])
        indices = sorted((present.index(f) for f in set(finalizers) if f in present), reverse=True)
        if not indices:
            return
        ops: list[dict[str, Any]] = []
        for index in indices:  # from the end, so earlier indices stay valid
            path = f"/metadata/finalizers/{index}"
            ops += [{"op": "test", "path": path, "value": present[index]},
                    {"op": "remove", "path": path}]  # fmt: skip
        self.request(
            "PATCH", f"{_clusters(meta['namespace'])}/{quote(meta['name'])}", ops,
            content_type=JSON_PATCH,
        )  # fmt: skip

    @needs(Needs("", "events", ("create",)))
    def post_event(self, cluster: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the RayCluster, or on the RayJob given (what `kubectl
        describe` shows). Failing to post one is logged, never raised: events are best
        effort."""
        meta = cluster["metadata"]
        kind = cluster.get("kind") or c.KIND
        now = now_rfc3339()
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": c.API_VERSION, "kind": kind, "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta.get("uid"),
            },
            "type": type_, "reason": reason, "message": message[:1024],
            "source": {"component": REPORTING_COMPONENT},
            "reportingComponent": REPORTING_COMPONENT, "reportingInstance": self.instance,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }  # fmt: skip
        try:
            self.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", event)
        except ApiException as err:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], err.reason)

    # -- RayJobs (rayjob/reconciler.py) ----------------------------------------------

    @needs(Needs(*RAYJOBS, ("get",)))
    def get_rayjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(f"{_rayjobs(namespace)}/{quote(name)}")

    @needs(Needs(*RAYJOBS, ("list",)))
    def list_rayjob_keys(self, namespace: str | None) -> list[tuple[str, str]]:
        """(namespace, name) of every RayJob, metadata only (the periodic resync)."""
        return [
            (item["metadata"]["namespace"], item["metadata"]["name"])
            for page in self.list_pages(_rayjobs(namespace), [], METADATA_LIST)
            for item in page.get("items") or []
        ]

    @needs(Needs(c.GROUP, f"{c.JOB_PLURAL}/status", ("patch",)))
    def replace_rayjob_status(self, rayjob: dict[str, Any], status: dict[str, Any]) -> str:
        """Replace the whole status, only if the RayJob is still the version the status
        was computed from (409/422 otherwise: the next pass recomputes it)."""
        meta = rayjob["metadata"]
        patched = self.request(
            "PATCH", f"{_rayjobs(meta['namespace'])}/{quote(meta['name'])}/status",
            [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
             {"op": "add", "path": "/status", "value": status}],
            content_type=JSON_PATCH,
        )  # fmt: skip
        return patched["metadata"]["resourceVersion"]

    @needs(Needs(*RAYJOBS, ("patch",)))
    def set_rayjob_finalizer(self, rayjob: dict[str, Any], finalizer: str, present: bool) -> None:
        meta = rayjob["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if (finalizer in finalizers) == present:
            return
        if present:
            ops = [{"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}]
            if finalizers:
                ops = [{"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}]
        else:
            index = finalizers.index(finalizer)
            ops = [{"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
                   {"op": "remove", "path": f"/metadata/finalizers/{index}"}]  # fmt: skip
        self.request(
            "PATCH", f"{_rayjobs(meta['namespace'])}/{quote(meta['name'])}", ops,
            content_type=JSON_PATCH,
        )  # fmt: skip

    @needs(Needs(*RAYJOBS, ("delete",)))
    def delete_rayjob(self, namespace: str, name: str) -> bool:
        return self._delete(f"{_rayjobs(namespace)}/{quote(name)}")

    @needs(Needs(*CLUSTERS, ("create",)))
    def create_cluster(self, body: dict[str, Any]) -> bool:
        """False if a RayCluster of that name exists already (the caller reads it)."""
        return self._create(_clusters(body["metadata"]["namespace"]), body)

    @needs(Needs(*CLUSTERS, ("delete",)))
    def delete_cluster(self, namespace: str, name: str) -> bool:
        return self._delete(f"{_clusters(namespace)}/{quote(name)}")

    @needs(Needs(*CLUSTERS, ("patch",)))
    def suspend_worker_groups(self, cluster: dict[str, Any]) -> None:
        """Set suspend on every worker group (deletionStrategy DeleteWorkers)."""
        meta = cluster["metadata"]
        groups = (cluster.get("spec") or {}).get("workerGroupSpecs") or []
        ops = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]}
        ]
        ops += [{"op": "add", "path": f"/spec/workerGroupSpecs/{i}/suspend", "value": True}
                for i in range(len(groups))]  # fmt: skip
        self.request(
            "PATCH", f"{_clusters(meta['namespace'])}/{quote(meta['name'])}", ops,
            content_type=JSON_PATCH,
        )  # fmt: skip

    @needs(Needs(*BATCH_JOBS, ("get",)))
    def get_batch_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(f"{_batch_jobs(namespace)}/{quote(name)}")

    @needs(Needs(*BATCH_JOBS, ("create",)))
    def create_batch_job(self, body: dict[str, Any]) -> bool:
        return self._create(_batch_jobs(body["metadata"]["namespace"]), body)

    @needs(Needs(*BATCH_JOBS, ("delete",)))
    def delete_batch_job(self, namespace: str, name: str) -> bool:
        """Background propagation: the Job's pods go too (the API's default for Jobs
        orphans them)."""
        return self._delete(
            f"{_batch_jobs(namespace)}/{quote(name)}",
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
        )

    def _accepted(
        self, refusal: int, method: str, path: str, body: Any = None,
        content_type: str = "application/json",
    ) -> bool:  # fmt: skip
        """True once the API server took the write; False when it refused it with
        `refusal` (409: the object exists, or changed since it was read; 404: it is
        gone), which the caller expects. Any other error is raised."""
        try:
            self.request(method, path, body, content_type=content_type)
            return True
        except ApiException as err:
            if err.status == refusal:
                return False
            raise

    def _create(self, collection: str, body: dict[str, Any]) -> bool:
        return self._accepted(409, "POST", collection, body)

    def _delete(self, path: str, body: dict[str, Any] | None = None) -> bool:
        return self._accepted(404, "DELETE", path, body)


def list_fields(text: str) -> Iterator[tuple[str, Any]]:
    """The top-level fields of a JSON list response as (name, value), except that each
    element of "items" comes on its own as ("item", element): decoding a list of 1,000
    pods at once holds all of them whole, and the memory that takes stays with the
    process (measured: +12 MiB of RSS for 500 pods per page, +3 MiB for 100)."""

    def skip(pos: int) -> int:
        return _SPACE.match(text, pos).end()  # type: ignore[union-attr]

    def expect(pos: int, char: str) -> int:
        if text[pos : pos + 1] != char:
            raise ValueError(f"malformed list response at {pos}: expected {char!r}")
        return skip(pos + 1)

    pos = expect(skip(0), "{")
    if text[pos : pos + 1] == "}":
        return
    while True:
        name, pos = _DECODER.raw_decode(text, pos)
        pos = expect(skip(pos), ":")
        if name == "items" and text[pos : pos + 1] == "[":
            pos = skip(pos + 1)
            while text[pos : pos + 1] != "]":
                item, pos = _DECODER.raw_decode(text, pos)
                yield "item", item
                pos = skip(pos)
                if text[pos : pos + 1] != "]":
                    pos = expect(pos, ",")
            pos = skip(pos + 1)
        else:
            value, pos = _DECODER.raw_decode(text, pos)
            yield name, value
            pos = skip(pos)
        if text[pos : pos + 1] == "}":
            return
        pos = expect(pos, ",")


def _lazy_page(text: str) -> dict[str, Any]:
    """A list page whose "items" decodes as it is iterated (see `list_fields`); its
    "metadata" is filled in as the fields go by."""
    metadata: dict[str, Any] = {}

    def items() -> Iterator[dict[str, Any]]:
        for name, value in list_fields(text):
            if name == "item":
                yield value
            elif name == "metadata" and isinstance(value, dict):
                metadata.update(value)

    return {"metadata": metadata, "items": items()}
