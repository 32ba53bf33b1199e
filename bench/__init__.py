"""Benchmarks of the ray-operator on the local control plane: `python -m bench`.

Reconcile speed, API cost (read from the API server's own /metrics) and operator memory,
each compared with the ceiling of the same control plane. See bench/README.md.
"""
