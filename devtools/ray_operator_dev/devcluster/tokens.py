"""Keep a ServiceAccount token file fresh, as the kubelet does for a pod's projected
token: `make demo` runs the operator as a local process with the chart's
ServiceAccount, and a token written once would end it when it expires.

    python -m ray_operator_dev.devcluster.tokens --kubeconfig ADMIN --namespace NS \\
        --account SA --file PATH [--lifetime 3600]

A new token is requested and swapped in (write, then rename: readers never see half a
file) at 80 % of the previous one's lifetime, the kubelet's rule.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from kubernetes import client, config


def issue(admin: client.ApiClient, namespace: str, account: str, lifetime: int) -> str:
    request = {"spec": {"audiences": [], "expirationSeconds": lifetime}}
    return (
        client.CoreV1Api(admin)
        .create_namespaced_service_account_token(account, namespace, request)
        .status.token
    )


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.chmod(0o600)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ray_operator_dev.devcluster.tokens")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--file", required=True, type=Path)
    parser.add_argument("--lifetime", type=int, default=3600)
    args = parser.parse_args(argv)
    admin = config.new_client_from_config(config_file=str(args.kubeconfig))
    while True:
        try:
            write_atomically(args.file, issue(admin, args.namespace, args.account, args.lifetime))
            time.sleep(0.8 * args.lifetime)
        except Exception as err:  # the control plane restarting: try again soon
            print(f"token refresh failed: {err!r}", flush=True)
            time.sleep(10)


if __name__ == "__main__":
    raise SystemExit(main())
