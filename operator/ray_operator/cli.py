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


def _api_client_factory():
    from kubernetes import client, config

    def make() -> client.ApiClient:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            config.load_incluster_config()
            cfg = client.Configuration.get_default_copy()
        else:
            cfg = client.Configuration()
            config.load_kube_config(client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        return client.ApiClient(cfg)

    return make


def _wait_for_crd(api_client) -> None:
    """Without kopf's cluster-wide scanning, the RayCluster CRD must exist before the
    watches start: wait for it (say so every half minute) rather than serve nothing."""
    import time

    from kubernetes.client.rest import ApiException

    from .constants import CRD_NAME
    from .kube import KubeApi

    api, log = KubeApi(api_client), logging.getLogger("ray_operator")
    waited = 0.0
    while True:
        try:
            api.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
            )
            return
        except ApiException as err:
            if err.status != 404:
                raise
        if waited % 30 == 0:
            log.warning("CRD %s not installed yet: waiting for it", CRD_NAME)
        time.sleep(2)
        waited += 2


def _run(args: argparse.Namespace) -> int:
    import kopf

    from .handlers import OperatorConfig, build_registry
    from .reconciler import ReconcilerConfig

    if not args.namespace and not args.all_namespaces:
        print("error: pass --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=False,
    )
    factory = _api_client_factory()
    if not args.all_namespaces:
        _wait_for_crd(factory())
    config = OperatorConfig(
        api_client_factory=factory,
        namespaces=[] if args.all_namespaces else args.namespace,
        workers=args.workers,
        reconciler=ReconcilerConfig(
            max_pods_per_cluster=args.max_pods_per_cluster,
            api_threads=args.api_threads,
        ),
    )
    if args.metrics_address:
        from . import metrics

        metrics.serve(args.metrics_address)
    if args.leader_elect:
        from .leader import LeaderElector

        namespace = args.leader_election_namespace or os.environ.get("POD_NAMESPACE")
        if not namespace:
            print(
                "error: --leader-elect needs --leader-election-namespace or POD_NAMESPACE",
                file=sys.stderr,
            )
            return 2
        identity = os.environ.get("POD_NAME") or f"{os.uname().nodename}-{os.getpid()}"
        LeaderElector(factory(), namespace, args.leader_election_id, identity).acquire()
    registry, _ = build_registry(config)
    logging.getLogger("ray_operator").info(
        "ray-operator %s watching %s",
        __version__,
        "all namespaces" if args.all_namespaces else ", ".join(args.namespace),
    )
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=args.all_namespaces,
        namespaces=args.namespace or [],
        liveness_endpoint=args.liveness,
    )
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
        help="liveness endpoint URL to serve (default %(default)s)",
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
    run.add_argument("--log-format", choices=["json", "text"], default="json")
    run.add_argument("--verbose", action="store_true")
    run.add_argument("--workers", type=int, default=4, help="clusters reconciled concurrently")
    run.add_argument(
        "--api-threads", type=int, default=16, help="concurrent API calls (pod creates and deletes)"
    )
    run.add_argument(
        "--max-pods-per-cluster",
        type=int,
        default=10_000,
        help="refuse to create more pods than this for one RayCluster",
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
