"""A real Redis on loopback, and the kubelet's part for the operator's Redis cleanup Job.

`RedisServer` runs Debian's `redis-server` on a free 127.0.0.1 port (no persistence,
its own directory) and talks to it with `redis-cli`.

kwok makes the cleanup Job's pod Running but runs nothing in it. `run_cleanup_pod`
plays the kubelet: it runs the pod's own container command and args (`/bin/bash -c`
and the operator's `python -c` script) on this machine, with the container's env as
the kubelet resolves it (values, fieldRefs, secretKeyRefs) and `python` from this
virtualenv (Ray 2.60), then reports the exit through the API: phase Succeeded or
Failed, which the real Job controller turns into the Job's Complete or Failed.
Nothing in the command is replaced; `env_overrides` lets a test change a variable
(and says why).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from ray_operator_dev.devcluster.controlplane import free_port
from tests.kubehelpers import wait_for
from tests.ray_harness import base_env, container_env, secret_reader

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
MISSING = (
    None
    if REDIS_SERVER and REDIS_CLI
    else "redis-server/redis-cli not installed: run `make test-deps` (ci/test-deps.sh, root)"
)


@dataclass
class RedisServer:
    root: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        assert REDIS_SERVER, MISSING
        self.port = self.port or free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", str(self.root),
                "--protected-mode", "no",
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for(lambda: self.cli("PING") == "PONG", timeout=20, what=f"redis on {self.port}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def cli(self, *args: str) -> str:
        assert REDIS_CLI, MISSING
        out = subprocess.run(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        return out.stdout.strip()

    def seed(self, storage_namespace: str) -> None:
        """Keys as Ray's GCS writes them: hashes named `RAY<namespace>@<table>`."""
        for table in ("KV", "NODE", "JOB", "ACTOR"):
            self.cli("HSET", f"RAY{storage_namespace}@{table}", "key", "value")

    def keys(self, storage_namespace: str | None = None) -> set[str]:
        pattern = "*" if storage_namespace is None else f"RAY{storage_namespace}@*"
        return {k for k in self.cli("--scan", "--pattern", pattern).splitlines() if k}


@contextlib.contextmanager
def redis_server(root: Path) -> Iterator[RedisServer]:
    server = RedisServer(root).start()
    try:
        yield server
    finally:
        server.stop()


def job_pod(core: client.CoreV1Api, namespace: str, job: str, timeout: float = 60) -> client.V1Pod:
    """The Job's pod once kwok reports it Running."""

    def running() -> client.V1Pod | None:
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
        return next((p for p in pods if p.status.phase == "Running"), None)

    return wait_for(running, timeout=timeout, what=f"a Running pod of Job {job}")


@dataclass(frozen=True)
class PodRun:
    exit_code: int
    output: str
    seconds: float


def run_cleanup_pod(
    core: client.CoreV1Api, pod: client.V1Pod, env_overrides: dict[str, str] | None = None
) -> PodRun:
    """Run the pod's Ray container as the kubelet would, then report its end."""
    container = pod.spec.containers[0]
    env = base_env({**container_env(pod, container, secret_reader(core)), **(env_overrides or {})})
    started = time.monotonic()
    done = subprocess.run(
        [*(container.command or []), *(container.args or [])],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    seconds = time.monotonic() - started
    phase = "Succeeded" if done.returncode == 0 else "Failed"
    core.patch_namespaced_pod_status(
        pod.metadata.name, pod.metadata.namespace,
        {"status": {"phase": phase, "conditions": [{"type": "Ready", "status": "False"}]}},
    )  # fmt: skip
    return PodRun(done.returncode, done.stdout + done.stderr, seconds)
