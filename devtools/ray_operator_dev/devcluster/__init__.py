"""A local Kubernetes control plane (etcd, API server, controllers, scheduler, kwok)
for tests, the demo and benchmarks. See `python -m ray_operator_dev.devcluster --help`."""

from .controlplane import ControlPlane, ControlPlaneError, stop_from_state, tools_bin_dir
from .nodes import NodePool, fake_nodes

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "NodePool",
    "fake_nodes",
    "stop_from_state",
    "tools_bin_dir",
]
