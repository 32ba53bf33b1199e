"""ray_operator: runs Ray clusters on Kubernetes (the RayCluster ray.io/v1 API).

Where things are:
- `builders/`   RayCluster -> desired pods, head Service, autoscaler RBAC (pure)
- `planner.py`  desired vs observed -> pods to create and delete (pure)
- `status.py`   observed -> RayCluster status (pure)
- `kube.py`     the only module that calls the API server
- `reconciler.py` one reconcile: observe, plan, act, report
- `handlers.py` wiring: watch events (`raywatch.py`, `childwatch.py`) -> work queue
- `crd/`        the CRD's single source; `devcluster/` the local control plane
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ray-operator")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"
