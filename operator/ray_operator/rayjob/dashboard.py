"""The Ray dashboard's job REST API (`/api/jobs/`), as the operator uses it in HTTPMode
and to follow every job: get a job's details, submit, stop. Plain urllib, one request
per call, each bounded by `timeout` seconds (connect and each read), so a head that is
down or silent costs one worker thread that long and no more."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from .. import constants as c

DEFAULT_TIMEOUT = 5.0


class DashboardError(RuntimeError):
    """The dashboard could not be reached, or answered something unexpected."""


class Dashboard:
    def __init__(self, address: str, timeout: float = DEFAULT_TIMEOUT, token: str | None = None):
        self.address = address.rstrip("/")
        self.timeout = timeout
        self.token = token

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.address + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("x-ray-authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except (OSError, ValueError) as err:  # refused, timed out, unresolvable, bad URL
            raise DashboardError(f"{method} {self.address}{path}: {err}") from None

    def job_info(self, job_id: str) -> dict[str, Any] | None:
        """Ray's JobDetails of the job, None if the cluster has no such job."""
        status, data = self._call("GET", c.JOB_API_PATH + quote(job_id))
        if status == 404:
            return None
        if status != 200:
            raise DashboardError(f"job {job_id}: HTTP {status}: {data[:200]!r}")
        try:
            return json.loads(data)
        except ValueError:
            raise DashboardError(f"job {job_id}: not JSON: {data[:200]!r}") from None

    def submit(self, request: dict[str, Any]) -> str:
        """Submit; a job already submitted under this ID counts as submitted (a pass
        that died after its request reached Ray must not fail the next one)."""
        status, data = self._call("POST", c.JOB_API_PATH, request)
        text = data.decode(errors="replace")
        if 200 <= status <= 299:
            return str(json.loads(data).get("submission_id") or request["submission_id"])
        if "already" in text and "submission_id" in text:
            return str(request["submission_id"])
        raise DashboardError(f"submit {request.get('submission_id')}: HTTP {status}: {text[:300]}")

    def stop(self, job_id: str) -> bool:
        """Ask Ray to stop the job; False if there is no such job."""
        status, data = self._call("POST", f"{c.JOB_API_PATH}{quote(job_id)}/stop")
        if status == 404:
            return False
        if not 200 <= status <= 299:
            raise DashboardError(f"stop {job_id}: HTTP {status}: {data[:200]!r}")
        return True
