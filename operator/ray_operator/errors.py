"""Errors the operator reports to users instead of crashing."""

from __future__ import annotations


class InvalidSpecError(ValueError):
    """A RayCluster spec that the API server accepted but that cannot work.

    `field` is the path users see in `kubectl explain` terms, e.g.
    `spec.workerGroupSpecs[1].rayStartParams["num-cpus"]`; `message` says what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
