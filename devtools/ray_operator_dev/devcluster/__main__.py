"""Command line: `python -m ray_operator_dev.devcluster up|down|status|demo [--dir DIR]`.

`up` starts a control plane whose processes outlive this command, and prints the
kubeconfig path plus `export` lines for a shell; `down` stops exactly those processes;
`demo` is the main job (see demo.py)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from .controlplane import ControlPlane, ControlPlaneError, stop_from_state, tools_bin_dir

DEFAULT_DIR = Path(tempfile.gettempdir()) / "ray-operator-devcluster"


def _running(root: Path) -> bool:
    state = root / "state.json"
    if not state.exists():
        return False
    pids = json.loads(state.read_text())["pids"]
    return any(Path(f"/proc/{pid}").exists() for pid in pids.values())


def _print_usage(root: Path) -> None:
    state = json.loads((root / "state.json").read_text())
    print(f"kubeconfig: {state['kubeconfig']}")
    print(f"logs:       {root / 'logs'}")
    print("# use it from a shell:")
    print(f"export KUBECONFIG={state['kubeconfig']}")
    print(f'export PATH={tools_bin_dir()}:"$PATH"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ray_operator_dev.devcluster")
    parser.add_argument("command", choices=["up", "down", "status", "demo"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="run directory")
    parser.add_argument(
        "--real-nodes",
        type=int,
        default=0,
        help="`up`: also start a real node (containerd, kubelet, kube-proxy, CoreDNS; "
        "needs root and `make real-node-deps`)",
    )
    args = parser.parse_args(argv)
    root: Path = args.dir.resolve()

    if args.command == "status":
        if not _running(root):
            print(f"no control plane running from {root}")
            return 1
        _print_usage(root)
        return 0
    if args.command == "down":
        if not (root / "state.json").exists():
            print(f"no control plane recorded in {root}")
            return 0
        stopped = stop_from_state(root)  # a real node: drained and swept first
        shutil.rmtree(root, ignore_errors=True)
        print(f"stopped {', '.join(stopped) or 'nothing (already gone)'}; removed {root}")
        return 0

    if args.command == "demo":
        from .demo import run

        if _running(root):
            stop_from_state(root)
        shutil.rmtree(root, ignore_errors=True)
        return run(root)

    if _running(root):
        print(f"already running from {root}")
        _print_usage(root)
        return 0
    shutil.rmtree(root, ignore_errors=True)
    try:
        ControlPlane(root=root, real_nodes=args.real_nodes).start()
    except ControlPlaneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    _print_usage(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
