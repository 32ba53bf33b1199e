"""Development tooling for ray-operator, never shipped in its package or image.

- `devcluster`: a local Kubernetes control plane (etcd, kube-apiserver, kwok nodes and
  optional real nodes), the demo, and the images built without a registry.
- `crd`: generates `crds/`, the chart's copy and `docs/reference.md` from one source.
"""
