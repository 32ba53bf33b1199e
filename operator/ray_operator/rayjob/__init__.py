"""RayJob (ray.io/v1): a Ray job on a new or existing RayCluster.

- `builders.py`: the RayCluster, the submitter Job, the `ray job submit` command line
  and the dashboard's submit request (pure);
- `planner.py`: KubeRay's jobDeploymentStatus state machine: observed facts in,
  actions and the new status out (pure);
- `dashboard.py`: the dashboard's job REST API, bounded by a timeout;
- `reconciler.py`: the shell: observe, plan, act, write the status.
"""
