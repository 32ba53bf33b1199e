"""`python -m bench.requestcost`: the API server's CPU per request, by kind of request.

Tells which of the operator's requests are worth removing. Each kind of request the
operator makes per RayCluster (and the harness's RayCluster create, for scale) is sent
`--count` times in a row to an idle local control plane, and the API server's CPU
seconds (from /proc) are divided by the count. Sequential on purpose: the figure is
cost, not throughput. Prints numbers only.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from kubernetes import config

from ray_operator.kube import KubeApi
from ray_operator_dev.devcluster import ControlPlane
from tests.kubehelpers import apply_crds
from tests.manifests import heterogeneous

from .env import REPO, proc_stats

NAMESPACE = "default"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.requestcost", description=__doc__)
    p.add_argument("--count", type=int, default=300, help="requests of each kind")
    args = p.parse_args(argv)
    cp = ControlPlane.in_temp_dir().start()
    try:
        api_client = config.new_client_from_config(config_file=str(cp.kubeconfig))
        apply_crds(api_client, sorted((REPO / "crds").glob("*.yaml")))
        api = KubeApi(api_client)
        apiserver = cp.processes["kube-apiserver"].pid
        time.sleep(3)  # let start-up work settle
        print(f"| request ({args.count} each, one at a time) | API server CPU ms | wall ms |")
        print("|---|---:|---:|")

        def measure(what: str, send: Callable[[int], object]) -> None:
            cpu, wall = proc_stats(apiserver).cpu_s, time.monotonic()
            for i in range(args.count):
                send(i)
            wall = time.monotonic() - wall
            time.sleep(0.5)  # work the requests left behind (watch fan-out)
            cpu = proc_stats(apiserver).cpu_s - cpu
            print(f"| {what} | {1000 * cpu / args.count:.2f} | {1000 * wall / args.count:.1f} |")

        clusters = f"/apis/ray.io/v1/namespaces/{NAMESPACE}/rayclusters"
        body = heterogeneous("rc", cpu_workers=2, gpu_workers=1)

        def create(i: int) -> object:
            return api.request("POST", clusters, {**body, "metadata": {"name": f"rc{i}"}})

        status = {"state": "ready", "desiredWorkerReplicas": 3}
        measure("create RayCluster (harness)", create)
        measure("GET RayCluster", lambda i: api.get_cluster(NAMESPACE, f"rc{i}"))
        measure(
            "PATCH RayCluster status", lambda i: api.replace_status(NAMESPACE, f"rc{i}", status)
        )
        measure("GET head Service", lambda i: api.get_service(NAMESPACE, f"rc{i}-head-svc"))
        measure("LIST pods by label", lambda i: api.list_cluster_pods(NAMESPACE, f"rc{i}"))
        measure(
            "POST event",
            lambda i: api.post_event(
                {"metadata": {"name": f"rc{i}", "namespace": NAMESPACE}}, "Normal", "Bench", "x"
            ),
        )
    finally:
        cp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
