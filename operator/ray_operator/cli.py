"""`ray-operator`: the command line.

    ray-operator run --namespace team-a --namespace team-b
    ray-operator run --all-namespaces

Credentials: in-cluster (ServiceAccount) when running in a pod, else KUBECONFIG.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__


def _wait_for_crd(api_client, namespaces: list[str]) -> None:
    """The RayCluster CRD must exist before the watches start: wait for it (say so
    every half minute) rather than retry failing watches.

    The CRD is read when RBAC allows it; a namespaced install may hold no cluster-scoped
    permission at all, and then a 403 on the CRD makes the wait list RayClusters in the
    first watched namespace instead (a Role allows that; 404 means no CRD yet).
    `namespaces` empty: all of them."""
    import time

    from kubernetes.client.rest import ApiException

    from .constants import CRD_NAME
    from .kube import KubeApi

    api, log = KubeApi(api_client), logging.getLogger("ray_operator")
    read_crd = True
    waited = 0.0
    while True:
        try:
            if read_crd:
                if api.crd_exists(CRD_NAME):
                    return
            else:
                # 404 while there is no CRD
                api.list_cluster_keys(namespaces[0] if namespaces else None)
                return
        except ApiException as err:
            if err.status == 403 and read_crd:
                log.info("may not read CRD %s: probing the RayClusters of %s instead",
                         CRD_NAME, namespaces[0] if namespaces else "all namespaces")  # fmt: skip
                read_crd = False
                continue
            if err.status != 404:
                log.warning("cannot read CRD %s yet: %s %s", CRD_NAME, err.status, err.reason)
        except Exception as err:  # API server not reachable yet: keep waiting
            log.warning("cannot reach the API server yet: %r", err)
        if waited % 30 == 0:
            log.warning("CRD %s not installed yet: waiting for it", CRD_NAME)
        time.sleep(2)
        waited += 2


def _run(args: argparse.Namespace) -> int:
    from . import health, logs, metrics

    if not args.namespace and not args.all_namespaces:
        print("error: pass --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    if args.qps < 0 or args.burst < 0:
        print("error: --qps and --burst must not be negative", file=sys.stderr)
        return 2
    logs.configure(args.log_format, args.verbose)
    status = health.Health()
    # Served first, before the heavy imports (the Kubernetes client: most of the
    # start-up time) and before leader election: a restarted or waiting replica is
    # alive, and its metrics are scraped, from its first half second.
    health.serve(status, args.liveness)
    if args.metrics_address:
        metrics.serve(args.metrics_address)

    import asyncio

    from . import credentials
    from .handlers import OperatorConfig
    from .handlers import run as serve
    from .kube import KubeApi
    from .rayjob.reconciler import RayJobConfig
    from .reconciler import ReconcilerConfig

    identity = os.environ.get("POD_NAME") or f"{os.uname().nodename}-{os.getpid()}"
    tokens = credentials.token_file()
    factory = credentials.api_client_factory(f"ray-operator/{__version__} ({identity})", tokens)
    timeout = (min(5.0, args.api_timeout), args.api_timeout)
    if args.qps > 0:
        from .kube import set_rate_limit

        set_rate_limit(args.qps, args.burst or max(1, int(2 * args.qps)))
    _wait_for_crd(factory(), args.namespace)
    elector = None
    if args.leader_elect:
        from .leader import LeaderElector

        namespace = args.leader_election_namespace or os.environ.get("POD_NAMESPACE")
        if not namespace:
            print(
                "error: --leader-elect needs --leader-election-namespace or POD_NAMESPACE",
                file=sys.stderr,
            )
            return 2
        status.expect("leader election", 4 * args.lease_duration)
        elector = LeaderElector(
            KubeApi(factory(), timeout, tokens=tokens),
            namespace,
            args.leader_election_id,
            identity,
            lease_seconds=args.lease_duration,
            renew_deadline=args.renew_deadline,
            retry_period=args.retry_period,
            on_progress=lambda: status.beat("leader election"),
        )
        elector.acquire()
    config = OperatorConfig(
        api_client_factory=factory,
        namespaces=[] if args.all_namespaces else args.namespace,
        workers=args.workers,
        reconciler=ReconcilerConfig(
            max_pods_per_cluster=args.max_pods_per_cluster,
            api_threads=args.api_threads,
            redis_cleanup=args.gcs_ft_redis_cleanup,
        ),
        rayjobs=RayJobConfig(dashboard_timeout=args.dashboard_timeout),
        api_timeout=timeout,
        watch_timeout=args.watch_timeout,
        resync_seconds=args.resync_seconds,
        pass_timeout=args.pass_timeout,
        health=status,
        fence=elector.fence if elector else None,
        tokens=tokens,
        on_shutdown=elector.release if elector else lambda: None,
    )
    logging.getLogger("ray_operator").info(
        "ray-operator %s (%s) watching %s",
        __version__,
        identity,
        "all namespaces" if args.all_namespaces else ", ".join(args.namespace),
    )
    asyncio.run(serve(config))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ray-operator", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="reconcile RayClusters")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    run.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        help="liveness endpoint URL to serve; port 0 picks a free port (default %(default)s)",
    )
    run.add_argument(
        "--metrics-address",
        default="0.0.0.0:8080",
        help="serve Prometheus /metrics here; empty to disable (%(default)s)",
    )
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="only the holder of a Lease reconciles (for replicas > 1)",
    )
    run.add_argument(
        "--leader-election-namespace",
        default="",
        help="namespace of the Lease (default: $POD_NAMESPACE)",
    )
    run.add_argument(
        "--leader-election-id",
        default="ray-operator-leader",
        help="name of the Lease (default %(default)s)",
    )
    run.add_argument(
        "--lease-duration", type=float, default=15.0, help="leader Lease duration, seconds"
    )
    run.add_argument(
        "--renew-deadline",
        type=float,
        default=10.0,
        help="the leader stops writing when it could not renew for this long, seconds",
    )
    run.add_argument(
        "--retry-period", type=float, default=2.0, help="leader election retry period, seconds"
    )
    run.add_argument(
        "--api-timeout",
        type=float,
        default=30.0,
        help="seconds one API call may stay silent before it is abandoned (%(default)s)",
    )
    run.add_argument(
        "--watch-timeout",
        type=float,
        default=30.0,
        help="seconds one watch request lasts; a silent watch is dropped 15 s later (%(default)s)",
    )
    run.add_argument(
        "--resync-seconds",
        type=float,
        default=300.0,
        help="reconcile every RayCluster this often even without events; 0: never (%(default)s)",
    )
    run.add_argument(
        "--pass-timeout",
        type=float,
        default=120.0,
        help="seconds one reconcile may run before it is abandoned and retried (%(default)s)",
    )
    run.add_argument("--log-format", choices=["json", "text"], default="json")
    run.add_argument("--verbose", action="store_true")
    run.add_argument("--workers", type=int, default=4, help="clusters reconciled concurrently")
    run.add_argument(
        "--api-threads", type=int, default=16, help="concurrent API calls (pod creates and deletes)"
    )
    run.add_argument(
        "--qps",
        type=float,
        default=0.0,
        help="client-side limit on the operator's API requests per second; 0: none "
        "(KubeRay's --qps)",
    )
    run.add_argument(
        "--burst",
        type=int,
        default=0,
        help="requests allowed at once above --qps; 0: twice --qps (KubeRay's --burst)",
    )
    run.add_argument(
        "--dashboard-timeout",
        type=float,
        default=5.0,
        help="seconds one call to a Ray dashboard's job API may take (RayJobs)",
    )
    run.add_argument(
        "--max-pods-per-cluster",
        type=int,
        default=10_000,
        help="refuse to create more pods than this for one RayCluster",
    )
    run.add_argument(
        "--gcs-ft-redis-cleanup",
        action=argparse.BooleanOptionalAction,
        # KubeRay's switch is this environment variable: a Deployment written for it
        # keeps working.
        default=os.environ.get("ENABLE_GCS_FT_REDIS_CLEANUP", "").lower() != "false",
        help="GCS fault tolerance: keep a finalizer on FT RayClusters and delete their "
        "keys from Redis with a Job when they are deleted (default: on, unless "
        "ENABLE_GCS_FT_REDIS_CLEANUP=false)",
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
