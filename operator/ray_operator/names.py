"""Names of a RayCluster's children.

- head Service: `<cluster>-head-svc`, and its in-cluster DNS name
  `<cluster>-head-svc.<namespace>.svc.<domain>`;
- pods: `generateName` `<cluster>-head-` and `<cluster>-<group>-worker-`. The API server
  appends 5 random characters, so a prefix may be at most 58 characters for the pod
  name to stay within 63. Longer prefixes are trimmed here, readably: the fixed
  `-head-`/`-worker-` tail is kept and the cluster and group parts give up characters
  (the longer one first), so every pod still shows which cluster and group it is from.
  (The API server would otherwise cut the prefix at 58 characters, tail and all.)
- the Redis cleanup Job of a GCS fault-tolerant cluster: `<cluster>-redis-cleanup`,
  its last 63 characters as KubeRay trims it (a Job's name becomes a label value of its
  pods), never starting with '-' or '.'.
"""

from __future__ import annotations

import re

from . import constants as c

POD_NAME_MAX = 63
RANDOM_SUFFIX_LENGTH = 5
GENERATE_NAME_MAX = POD_NAME_MAX - RANDOM_SUFFIX_LENGTH

_NOT_DNS_LABEL = re.compile(r"[^a-z0-9-]+")


def head_service_name(cluster_name: str) -> str:
    return f"{cluster_name}-head-svc"


def head_service_fqdn(
    cluster_name: str, namespace: str, cluster_domain: str = c.DEFAULT_CLUSTER_DOMAIN
) -> str:
    return f"{head_service_name(cluster_name)}.{namespace}.svc.{cluster_domain}"


def _dns_part(text: str) -> str:
    """Lower-case `text` and replace anything but letters, digits and '-' with '-'
    (group names such as `GPU_Group` or `a.b` still give valid pod names)."""
    return _NOT_DNS_LABEL.sub("-", text.lower())


def _fit(parts: list[str], budget: int) -> list[str]:
    """Shorten the longest part, one character at a time, until the parts joined with
    '-' fit `budget`; trimmed parts lose trailing '-' so no '--' shows."""
    parts = list(parts)
    while len("-".join(parts)) > budget:
        longest = max(range(len(parts)), key=lambda i: len(parts[i]))
        parts[longest] = parts[longest][:-1]
    return [p.rstrip("-") or "x" for p in parts]


def head_pod_generate_name(cluster_name: str) -> str:
    tail = f"-{c.NODE_TYPE_HEAD}-"
    (cluster,) = _fit([_dns_part(cluster_name)], GENERATE_NAME_MAX - len(tail))
    return f"{cluster}{tail}"


def worker_pod_generate_name(cluster_name: str, group_name: str) -> str:
    tail = f"-{c.NODE_TYPE_WORKER}-"
    cluster, group = _fit(
        [_dns_part(cluster_name), _dns_part(group_name)], GENERATE_NAME_MAX - len(tail)
    )
    return f"{cluster}-{group}{tail}"


JOB_NAME_MAX = 63


def redis_cleanup_job_name(cluster_name: str) -> str:
    return f"{cluster_name}-redis-cleanup"[-JOB_NAME_MAX:].lstrip("-.")
