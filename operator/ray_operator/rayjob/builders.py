"""What a RayJob creates and sends, built from the RayJob alone (pure functions)."""

from __future__ import annotations

import copy
import json
import secrets
import shlex
import string
from typing import Any

import yaml

from .. import constants as c

Body = dict[str, Any]
_ALPHABET = string.ascii_lowercase + string.digits


class InvalidRayJob(ValueError):
    """A spec the CRD accepts but that cannot be run; the message names the field."""


def random_suffix(length: int = 5) -> str:
    """KubeRay's `<name>-<5 random characters>` suffix (lowercase letters and digits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def spec(rayjob: Body) -> Body:
    return rayjob.get("spec") or {}


def mode(rayjob: Body) -> str:
    return spec(rayjob).get("submissionMode") or c.MODE_K8S_JOB


def selector_cluster(rayjob: Body) -> str | None:
    """The existing RayCluster a clusterSelector names, or None."""
    selector = spec(rayjob).get("clusterSelector") or {}
    return selector.get(c.CLUSTER_SELECTOR_KEY) or None if selector else None


def owner_reference(rayjob: Body) -> Body:
    meta = rayjob["metadata"]
    return {
        "apiVersion": c.API_VERSION, "kind": c.JOB_KIND, "name": meta["name"],
        "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True,
    }  # fmt: skip


def origin_labels(rayjob: Body) -> dict[str, str]:
    return {
        c.LABEL_ORIGINATED_FROM_NAME: rayjob["metadata"]["name"],
        c.LABEL_ORIGINATED_FROM_CRD: c.ORIGINATED_FROM_RAYJOB,
    }


def runtime_env(rayjob: Body) -> Body | None:
    """runtimeEnvYAML parsed; InvalidRayJob unless it is a YAML mapping."""
    text = spec(rayjob).get("runtimeEnvYAML") or ""
    if not text.strip():
        return None
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidRayJob(f"spec.runtimeEnvYAML is not valid YAML: {err}") from None
    if not isinstance(parsed, dict):
        raise InvalidRayJob("spec.runtimeEnvYAML must be a YAML mapping (e.g. `pip: [...]`)")
    return parsed


def entrypoint_resources(rayjob: Body) -> dict[str, float] | None:
    text = spec(rayjob).get("entrypointResources") or ""
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in parsed.values()
    ):
        raise InvalidRayJob('spec.entrypointResources must be a JSON object of numbers: {"r": 1}')
    return parsed


def validate(rayjob: Body) -> None:
    """What the CRD cannot check; raises InvalidRayJob naming the field."""
    if mode(rayjob) == c.MODE_SIDECAR:
        raise InvalidRayJob(
            f"spec.submissionMode {c.MODE_SIDECAR} is not supported by this operator: use "
            f"{c.MODE_K8S_JOB} or {c.MODE_HTTP}"
        )
    runtime_env(rayjob)
    entrypoint_resources(rayjob)


# -- the RayCluster ----------------------------------------------------------------------


def cluster(rayjob: Body, name: str) -> Body:
    """The RayCluster of a RayJob with rayClusterSpec: the RayJob's labels and
    annotations plus the origin labels, controlled by the RayJob."""
    meta = rayjob["metadata"]
    labels = {**(meta.get("labels") or {}), **origin_labels(rayjob)}
    labels[c.LABEL_SUBMISSION_MODE] = mode(rayjob)
    out: Body = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(rayjob)],
        },
        "spec": copy.deepcopy(spec(rayjob)["rayClusterSpec"]),
    }
    if meta.get("annotations"):
        out["metadata"]["annotations"] = dict(meta["annotations"])
    return out


def dashboard_url(ray_cluster: Body, cluster_domain: str = c.DEFAULT_CLUSTER_DOMAIN) -> str | None:
    """`<head service>.<namespace>.svc.<domain>:<dashboard port>` (what KubeRay writes to
    status.dashboardURL), from the RayCluster's status; None before the Service exists."""
    status = ray_cluster.get("status") or {}
    service = (status.get("head") or {}).get("serviceName")
    if not service:
        return None
    port = (status.get("endpoints") or {}).get("dashboard") or str(c.DASHBOARD_PORT)
    namespace = ray_cluster["metadata"]["namespace"]
    return f"{service}.{namespace}.svc.{cluster_domain}:{port}"


def dashboard_address(ray_cluster: Body) -> str | None:
    """Where the operator itself reaches the dashboard: the head pod's IP and the
    dashboard port (no cluster DNS needed, so it works from outside the cluster too)."""
    status = ray_cluster.get("status") or {}
    ip = (status.get("head") or {}).get("podIP")
    if not ip:
        return None
    port = (status.get("endpoints") or {}).get("dashboard") or str(c.DASHBOARD_PORT)
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


# -- submission --------------------------------------------------------------------------


def submit_request(rayjob: Body, job_id: str) -> Body:
    """The body of `POST /api/jobs/` (Ray's JobSubmitRequest)."""
    s = spec(rayjob)
    body: Body = {"entrypoint": s.get("entrypoint") or "", "submission_id": job_id}
    if s.get("metadata"):
        body["metadata"] = dict(s["metadata"])
    if (env := runtime_env(rayjob)) is not None:
        body["runtime_env"] = env
    if s.get("entrypointNumCpus"):
        body["entrypoint_num_cpus"] = s["entrypointNumCpus"]
    if s.get("entrypointNumGpus"):
        body["entrypoint_num_gpus"] = s["entrypointNumGpus"]
    if (resources := entrypoint_resources(rayjob)) is not None:
        body["entrypoint_resources"] = resources
    return body


def _ray_version_at_least(version: str, wanted: tuple[int, int]) -> bool:
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= wanted


def submit_command(rayjob: Body, dashboard: str, job_id: str) -> list[str]:
    """The submitter's shell words, KubeRay's K8sJobMode sequence: submit unless a job
    with this ID exists already (a retried submitter pod must not submit twice), with
    `--no-wait`, then follow the job's logs until it ends. Values are single-quoted for
    the shell (KubeRay double-quotes them, which lets the shell expand `$`)."""
    s = spec(rayjob)
    address = dashboard if dashboard.startswith("http://") else f"http://{dashboard}"
    cmd = ["if", "!", "ray", "job", "status", "--address", address, job_id, ">/dev/null", "2>&1",
           ";", "then", "ray", "job", "submit", "--address", address, "--no-wait"]  # fmt: skip
    if (env := runtime_env(rayjob)) is not None:
        cmd += ["--runtime-env-json", shlex.quote(json.dumps(env, separators=(",", ":")))]
    cluster_spec = s.get("rayClusterSpec")
    if s.get("metadata") and cluster_spec:
        if not _ray_version_at_least(str(cluster_spec.get("rayVersion") or ""), (2, 6)):
            raise InvalidRayJob("spec.metadata needs spec.rayClusterSpec.rayVersion >= 2.6.0")
        metadata = json.dumps(s["metadata"], separators=(",", ":"), sort_keys=True)
        cmd += ["--metadata-json", shlex.quote(metadata)]
    cmd += ["--submission-id", shlex.quote(job_id)]
    if s.get("entrypointNumCpus"):
        cmd += ["--entrypoint-num-cpus", f"{float(s['entrypointNumCpus']):f}"]
    if s.get("entrypointNumGpus"):
        cmd += ["--entrypoint-num-gpus", f"{float(s['entrypointNumGpus']):f}"]
    if s.get("entrypointResources"):
        cmd += ["--entrypoint-resources", shlex.quote(s["entrypointResources"])]
    cmd += ["--", (s.get("entrypoint") or "").strip(), ";", "fi", ";"]
    cmd += ["ray", "job", "logs", "--address", address, "--follow", shlex.quote(job_id)]
    return cmd


def _default_submitter_container(cluster_spec: Body) -> Body:
    head = (cluster_spec.get("headGroupSpec") or {}).get("template") or {}
    containers = (head.get("spec") or {}).get("containers") or [{}]
    return {
        "name": c.SUBMITTER_CONTAINER_NAME,
        "image": containers[c.RAY_CONTAINER_INDEX].get("image"),
        "resources": {
            "limits": {"cpu": c.SUBMITTER_CPU_LIMIT, "memory": c.SUBMITTER_MEMORY_LIMIT},
            "requests": {"cpu": c.SUBMITTER_CPU_REQUEST, "memory": c.SUBMITTER_MEMORY_REQUEST},
        },
    }


def submitter_job(rayjob: Body, ray_cluster: Body, dashboard: str, job_id: str) -> Body:
    """The K8sJobMode submitter: a batch Job named like the RayJob. Its first container
    runs the submit command unless the template gives a command of its own; it always
    gets the dashboard address and the submission ID in its environment."""
    s = spec(rayjob)
    meta = rayjob["metadata"]
    template = copy.deepcopy(s.get("submitterPodTemplate") or {})
    if not template:
        template = {
            "spec": {
                "containers": [_default_submitter_container(ray_cluster.get("spec") or {})],
                "restartPolicy": "Never",
            }
        }
    container = template["spec"]["containers"][c.RAY_CONTAINER_INDEX]
    if not container.get("command"):
        container["command"] = ["/bin/bash", "-ce", "--"]
        container["args"] = [" ".join(submit_command(rayjob, dashboard, job_id))]
    container["env"] = [
        *(container.get("env") or []),
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": c.ENV_DASHBOARD_ADDRESS, "value": dashboard},
        {"name": c.ENV_SUBMISSION_ID, "value": job_id},
    ]
    backoff = (s.get("submitterConfig") or {}).get("backoffLimit")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": {**origin_labels(rayjob), c.LABEL_CREATED_BY: c.CREATED_BY},
            "ownerReferences": [owner_reference(rayjob)],
        },
        "spec": {
            "backoffLimit": c.DEFAULT_SUBMITTER_BACKOFF_LIMIT if backoff is None else backoff,
            "template": template,
        },
    }
