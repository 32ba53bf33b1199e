"""The RayCluster CustomResourceDefinition, generated from one source of truth.

`schema.py` holds our fields, `podtemplate.py` derives the embedded Kubernetes types
from the pinned release, `generate.py` writes `crds/ray.io_rayclusters.yaml`.
"""
