"""Token authentication (`spec.authOptions`), as KubeRay v1.6.1 does it.

- `mode: token` turns it on: every Ray container (head and workers), the workers'
  `wait-gcs-ready` init container (its `ray health-check` talks to the GCS) and the
  autoscaler sidecar get `RAY_AUTH_MODE=token` and either
  - `RAY_AUTH_TOKEN` from key `auth_token` of Secret `secretName`, or else of the
    Secret the operator generates, named after the cluster (`secret_name`), or
  - with `enableK8sTokenAuth`, `RAY_ENABLE_K8S_TOKEN_AUTH=true` and the pod's own
    ServiceAccount token projected at /var/run/secrets/ray.io/serviceaccount/token
    (Ray checks callers with a TokenReview; no Secret at all).
  Each variable is added only where the container has none of that name. No `ray
  start` flag is involved: Ray reads the env.
- The generated Secret (`build_auth_secret`) is made once, when it is missing, and
  never rewritten (a new token would lock out the running pods). It carries the
  cluster label and a controller ownerReference, so it goes with the cluster. As in
  KubeRay it is also made for `authOptions: {}` (mode unset), which injects nothing.
- Ray reads tokens since 2.52 and Kubernetes tokens since 2.55: older or unknown
  `rayVersion`s are refused (`problems`), as KubeRay refuses them.

The token itself is random and therefore made by the caller (`with_token`), so this
module stays pure.
"""

from __future__ import annotations

import base64
import copy
import re
import string
from typing import Any

from .. import constants as c
from .. import spec as cluster_spec
from ..spec import Body
from .meta import owner_reference

MODE_TOKEN = "token"
MODE_DISABLED = "disabled"
TOKEN_KEY = "auth_token"
TOKEN_BYTES = 32
RAY_AUTH_MODE = "RAY_AUTH_MODE"
RAY_AUTH_TOKEN = "RAY_AUTH_TOKEN"
RAY_ENABLE_K8S_TOKEN_AUTH = "RAY_ENABLE_K8S_TOKEN_AUTH"
K8S_TOKEN_VOLUME = "ray-token"
K8S_TOKEN_DIR = "/var/run/secrets/ray.io/serviceaccount"
MIN_RAY_FOR_TOKEN = (2, 52, 0)
MIN_RAY_FOR_K8S_TOKEN = (2, 55, 0)
SECRET_NAME_MAX = 50  # KubeRay keeps the last 50 characters of longer names
FIELD = "spec.authOptions"

# Kubernetes' generic version grammar: an optional "v", numbers joined by dots (at
# least two), anything after them ignored.
_GENERIC_VERSION = re.compile(r"^\s*v?([0-9]+(?:\.[0-9]+)*)(.*)$", re.DOTALL)


def options(cluster: Body) -> dict[str, Any] | None:
    raw = cluster_spec.spec_of(cluster).get("authOptions")
    return dict(raw) if raw is not None else None


def token_auth(cluster: Body) -> bool:
    """Ray's token authentication is on (only `mode: token` turns it on)."""
    return (options(cluster) or {}).get("mode") == MODE_TOKEN


def k8s_token_auth(cluster: Body) -> bool:
    return bool((options(cluster) or {}).get("enableK8sTokenAuth"))


def user_secret(cluster: Body) -> str | None:
    return (options(cluster) or {}).get("secretName") or None


def secret_name(cluster: Body) -> str:
    """The Secret holding the token: `secretName`, else the generated one's name."""
    return user_secret(cluster) or generated_secret_name(cluster_spec.cluster_name(cluster))


def generated_secret_name(cluster_name: str) -> str:
    """The cluster's name, cut to its last 50 characters; a first character that is a
    digit or punctuation becomes `r` (KubeRay's rule, kept so names match after a
    migration)."""
    name = cluster_name[-SECRET_NAME_MAX:]
    if name and (name[0].isdigit() or name[0] in string.punctuation):
        name = "r" + name[1:]
    return name


def wants_generated_secret(cluster: Body) -> bool:
    opts = options(cluster)
    if opts is None or opts.get("mode") == MODE_DISABLED:
        return False
    return not opts.get("enableK8sTokenAuth") and not opts.get("secretName")


def build_auth_secret(cluster: Body) -> dict[str, Any]:
    """The generated Secret, without its token (see `with_token`)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": generated_secret_name(cluster_spec.cluster_name(cluster)),
            "namespace": cluster_spec.cluster_namespace(cluster),
            "labels": {c.LABEL_CLUSTER: cluster_spec.cluster_name(cluster)},
            "ownerReferences": [owner_reference(cluster)],
        },
    }


def with_token(secret: dict[str, Any], random_bytes: bytes) -> dict[str, Any]:
    """The Secret with `auth_token` set: the bytes in standard base64 (44 characters
    for 32 bytes, as KubeRay's tokens)."""
    out = copy.deepcopy(secret)
    out["stringData"] = {TOKEN_KEY: base64.standard_b64encode(random_bytes).decode()}
    return out


def env(cluster: Body) -> list[dict[str, Any]]:
    """What each Ray process needs; empty unless `mode: token`."""
    if not token_auth(cluster):
        return []
    entries: list[dict[str, Any]] = [{"name": RAY_AUTH_MODE, "value": MODE_TOKEN}]
    if k8s_token_auth(cluster):
        entries.append({"name": RAY_ENABLE_K8S_TOKEN_AUTH, "value": "true"})
    else:
        ref = {"name": secret_name(cluster), "key": TOKEN_KEY}
        entries.append({"name": RAY_AUTH_TOKEN, "valueFrom": {"secretKeyRef": ref}})
    return entries


def add_k8s_token_volume(cluster: Body, pod_spec: dict[str, Any]) -> None:
    """With `enableK8sTokenAuth`: the pod's ServiceAccount token as volume `ray-token`
    (kept if the template already has a volume of that name)."""
    if not (token_auth(cluster) and k8s_token_auth(cluster)):
        return
    volumes = pod_spec.setdefault("volumes", [])
    if any(v.get("name") == K8S_TOKEN_VOLUME for v in volumes):
        return
    projected = {"sources": [{"serviceAccountToken": {"path": "token"}}]}
    volumes.append({"name": K8S_TOKEN_VOLUME, "projected": projected})


def add_to_container(cluster: Body, container: dict[str, Any]) -> None:
    """The env (each variable only if the container has none of that name) and, with
    `enableK8sTokenAuth`, the token's mount (only if no mount has its name or path)."""
    entries = env(cluster)
    if not entries:
        return
    present = {entry.get("name") for entry in container.get("env") or []}
    container.setdefault("env", []).extend(e for e in entries if e["name"] not in present)
    if not k8s_token_auth(cluster):
        return
    mounts = container.setdefault("volumeMounts", [])
    taken = {K8S_TOKEN_VOLUME, K8S_TOKEN_DIR}
    if any(m.get("name") in taken or m.get("mountPath") in taken for m in mounts):
        return  # the user's own mount of the token wins
    mounts.append({"name": K8S_TOKEN_VOLUME, "mountPath": K8S_TOKEN_DIR, "readOnly": True})


def parse_generic_version(text: str) -> tuple[int, ...] | None:
    match = _GENERIC_VERSION.match(text)
    if match is None:
        return None
    parts = tuple(int(p) for p in match[1].split("."))
    return parts if len(parts) >= 2 else None


def _at_least(version: tuple[int, ...], minimum: tuple[int, ...]) -> bool:
    width = max(len(version), len(minimum))
    pad = (0,) * width
    return (version + pad)[:width] >= (minimum + pad)[:width]


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in version)


def problems(cluster: Body) -> list[tuple[str, str]]:
    """(field, message) for each reason KubeRay v1.6.1 refuses the authOptions; the
    combinations of fields are also refused by the CRD, checked here for objects
    stored before it (or written through `ray.io/v1alpha1`)."""
    opts = options(cluster)
    if opts is None:
        return []
    out: list[tuple[str, str]] = []
    k8s = bool(opts.get("enableK8sTokenAuth"))
    if opts.get("mode") != MODE_TOKEN:
        if k8s:
            out.append(
                (
                    f"{FIELD}.enableK8sTokenAuth",
                    "needs authOptions.mode: token; set mode: token or drop enableK8sTokenAuth",
                )
            )
        return out
    if k8s and opts.get("secretName"):
        out.append(
            (
                f"{FIELD}.secretName",
                "cannot be set with enableK8sTokenAuth (Ray then checks Kubernetes tokens, "
                "not a shared one): drop one of them",
            )
        )
    raw = cluster_spec.spec_of(cluster).get("rayVersion")
    minimum = MIN_RAY_FOR_K8S_TOKEN if k8s else MIN_RAY_FOR_TOKEN
    what = "enableK8sTokenAuth" if k8s else "authOptions.mode: token"
    if not raw:
        out.append(
            (
                "spec.rayVersion",
                f"{what} needs Ray {_dotted(minimum)} or later and rayVersion is not set: "
                "set it to the Ray version of the images",
            )
        )
        return out
    version = parse_generic_version(str(raw))
    if version is None:
        out.append(
            (
                "spec.rayVersion",
                f"{raw!r} is not a version number such as {_dotted(minimum)}; {what} needs "
                f"Ray {_dotted(minimum)} or later",
            )
        )
    elif not _at_least(version, minimum):
        out.append(
            (
                "spec.rayVersion",
                f"{what} needs Ray {_dotted(minimum)} or later, rayVersion is {raw}: use "
                "newer Ray images or turn authentication off",
            )
        )
    return out
