"""What the operator's ServiceAccount must be granted, derived from the code: the
permissions each API method declares (`kube.API_PERMISSIONS`, the watches' lists
included) and what the operator hands on to the autoscaler Roles it creates (RBAC
forbids granting a permission one does not hold). The chart's templates are checked
against this (tests/chart/test_rbac.py), so the two cannot drift."""

from __future__ import annotations

from .builders.autoscaler import autoscaler_rules
from .kube import API_PERMISSIONS, Needs

Rules = dict[tuple[str, str], set[str]]  # (apiGroup, resource) -> verbs


def delegated() -> tuple[Needs, ...]:
    """The autoscaler Role's rules at their widest (idle termination policy Delete)."""
    widest = {"spec": {"idleTerminationOptions": {"policy": "Delete"}}}
    return tuple(
        Needs(group, resource, tuple(rule["verbs"]))
        for rule in autoscaler_rules(widest)
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    )


def required(scope: str) -> Rules:
    """Every verb the operator needs in `scope`: "namespace", "cluster" or "leader"."""
    everything = [n for methods in API_PERMISSIONS.values() for n in methods]
    rules: Rules = {}
    for need in (*everything, *delegated()):
        if need.scope == scope:
            rules.setdefault((need.group, need.resource), set()).update(need.verbs)
    return rules
