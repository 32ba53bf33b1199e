"""The events a RayCluster gets (what `kubectl describe raycluster` shows).

Best effort and off the critical path: a pass never waits for its events, and a failed
post is logged, never raised. One Normal event sums up each (reason, group, detail) of
a pass instead of one per pod: the API server pays for every event, and a 200-pod
scale-up is one fact to a reader (client-go's recorder, which KubeRay uses, lets only a
burst of 25 through).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from .kube import KubeApi
from .model import Problem

log = logging.getLogger(__name__)

MAX_NAMES_IN_EVENT = 10


@dataclass(frozen=True, slots=True)
class PodWrite:
    """A pod this pass created or deleted, for the event that sums the pass up."""

    reason: str  # CreatedHeadPod, DeletedWorkerPod, ...
    group: str
    detail: str  # why it was deleted; "" for creates
    name: str


class EventRecorder:
    def __init__(self, api: KubeApi, executor: Executor) -> None:
        self.api = api
        self.executor = executor

    def post(self, cluster: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.executor.submit(
            self.api.post_event, cluster, type_, reason, message
        ).add_done_callback(_log_failure)

    def pods_written(self, cluster: dict[str, Any], done: Iterable[PodWrite]) -> None:
        names: dict[tuple[str, str, str], list[str]] = {}
        for write in done:
            names.setdefault((write.reason, write.group, write.detail), []).append(write.name)
        for (reason, group, detail), pods in names.items():
            self.post(cluster, "Normal", reason, pod_summary(reason, group, detail, pods))

    def new_problems(
        self, cluster: dict[str, Any], previous_message: str, problems: Iterable[Problem]
    ) -> None:
        """One Warning per problem the stored status did not show yet (not one per
        resync)."""
        for problem in problems:
            text = f"{problem.field}: {problem.message}"
            if text not in previous_message:
                self.post(cluster, "Warning", problem.reason, text)


def pod_summary(reason: str, group: str, detail: str, names: list[str]) -> str:
    """'Created 3 worker pods (group cpu): a, b, c'; 'Deleted head pod h (Failed)'."""
    verb = "Created" if reason.startswith("Created") else "Deleted"
    what = "head pod" if reason.endswith("HeadPod") else "worker pod"
    context = ", ".join(x for x in (f"group {group}" if what == "worker pod" else "", detail) if x)
    context = f" ({context})" if context else ""
    if len(names) == 1:
        return f"{verb} {what} {names[0]}{context}"
    shown = ", ".join(names[:MAX_NAMES_IN_EVENT])
    if len(names) > MAX_NAMES_IN_EVENT:
        shown += f" and {len(names) - MAX_NAMES_IN_EVENT} more"
    return f"{verb} {len(names)} {what}s{context}: {shown}"


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not post an event: %r", future.exception())
