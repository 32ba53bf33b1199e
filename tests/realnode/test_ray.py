"""Ray end to end on the real node: the chart's operator image runs as a pod (its own
probes, its projected token), and a RayCluster it builds boots for real: a head, two
worker groups and the autoscaler sidecar, every container Ready through its real
probes; workers join through the head Service's DNS name; a job submitted through the
dashboard's job API runs tasks on both groups; the autoscaler scales a group up and
down; a killed head container is restarted by the kubelet and the workers come back;
deleting the RayCluster leaves no container or netns.

Pod specs are the operator's as generated; only images, resource sizes and node
selection (the real node's selector and toleration) differ from the other tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ray_operator_dev.devcluster import ControlPlane, podnet, tools_bin_dir
from ray_operator_dev.devcluster.images import OPERATOR_IMAGE, RAY_IMAGE, Builder
from ray_operator_dev.devcluster.nodeimages import import_archive
from tests.kubehelpers import wait_for
from tests.realnode.conftest import apply, kubectl
from tests.realnode.manifests import PLACEMENT

REPO = Path(__file__).resolve().parents[2]
NS = "ray-e2e"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def images(real_cp: ControlPlane) -> None:
    """Both images, from the cache (`make images`) or built now, imported."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("real node: mmdebstrap missing for the images (make real-node-deps)")
    start = time.monotonic()
    builder = Builder()
    archives = [builder.ray(), builder.operator()]
    TIMINGS["images (cached or built)"] = time.monotonic() - start
    assert real_cp.node is not None
    start = time.monotonic()
    for archive in archives:
        import_archive(real_cp.node.containerd_socket, archive)
    TIMINGS["image import"] = time.monotonic() - start


def helm(cp: ControlPlane, *args: str) -> str:
    env = {"KUBECONFIG": str(cp.kubeconfig), "PATH": f"{tools_bin_dir()}:/usr/bin:/bin",
           "HOME": str(cp.root)}  # fmt: skip
    result = subprocess.run([str(tools_bin_dir() / "helm"), *args], env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def pods(cp: ControlPlane, namespace: str, selector: str) -> list[dict]:
    out = kubectl(cp, "get", "pods", "-n", namespace, "-l", selector, "-o", "json")
    return json.loads(out)["items"]


def all_ready(items: list[dict], count: int) -> bool:
    def ready(p: dict) -> bool:
        statuses = p.get("status", {}).get("containerStatuses") or []
        return bool(statuses) and all(s.get("ready") for s in statuses)

    live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
    return len(live) == count and all(ready(p) for p in live)


@pytest.fixture(scope="module")
def operator(real_cp: ControlPlane, images: None) -> Iterator[None]:
    repository, tag = OPERATOR_IMAGE.rsplit(":", 1)
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "watchNamespaces": [NS],
        **PLACEMENT,
    }
    values_file = real_cp.root / "operator-values.json"
    values_file.write_text(json.dumps(values))
    kubectl(real_cp, "create", "namespace", NS)
    start = time.monotonic()
    helm(real_cp, "install", "ray-operator", str(REPO / "charts" / "ray-operator"),
         "-n", "ray-system", "--create-namespace", "-f", str(values_file))  # fmt: skip
    wait_for(lambda: all_ready(pods(real_cp, "ray-system", "app.kubernetes.io/name=ray-operator"),
                               1), timeout=180, what="the operator pod Ready")  # fmt: skip
    TIMINGS["operator: helm install -> Ready"] = time.monotonic() - start
    yield


def ray_container(name: str, cpu: str, memory: str) -> dict:
    return {
        "name": name,
        "image": RAY_IMAGE,
        "resources": {"requests": {"cpu": cpu, "memory": memory},
                      "limits": {"cpu": "1", "memory": memory}},
    }  # fmt: skip


def group(name: str, replicas: int, max_replicas: int) -> dict:
    return {
        "groupName": name,
        "replicas": replicas,
        "minReplicas": replicas,
        "maxReplicas": max_replicas,
        "rayStartParams": {"num-cpus": "1", "resources": f'"{{\\"{name}\\": 1}}"'},
        "template": {"spec": {**PLACEMENT, "containers": [ray_container("ray-worker", "200m",
                                                                         "1Gi")]}},
    }  # fmt: skip


def raycluster(name: str) -> dict:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "rayVersion": "2.60.0",
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {
                "idleTimeoutSeconds": 10,
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"cpu": "500m", "memory": "512Mi"},
                },
            },
            "headGroupSpec": {
                "rayStartParams": {"num-cpus": "0"},
                "template": {
                    "spec": {**PLACEMENT, "containers": [ray_container("ray-head", "300m", "2Gi")]}
                },
            },
            "workerGroupSpecs": [group("group-a", 1, 2), group("group-b", 1, 1)],
        },
    }


def exec_head(cp: ControlPlane, cluster: str, *cmd: str) -> str:
    head = pods(cp, NS, f"ray.io/cluster={cluster},ray.io/node-type=head")[0]
    return kubectl(cp, "exec", "-n", NS, head["metadata"]["name"], "-c", "ray-head", "--", *cmd)


def dashboard(cp: ControlPlane, cluster: str) -> str:
    head = pods(cp, NS, f"ray.io/cluster={cluster},ray.io/node-type=head")[0]
    return f"http://{head['status']['podIP']}:8265"


def submit(url: str, entrypoint: str) -> str:
    req = urllib.request.Request(f"{url}/api/jobs/", method="POST",
                                 data=json.dumps({"entrypoint": entrypoint}).encode(),
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["submission_id"]


def job(url: str, job_id: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/jobs/{job_id}", timeout=30) as resp:
        return json.loads(resp.read())


JOB = """
import ray, socket
ray.init()
@ray.remote(num_cpus=0.1)
def where():
    return socket.gethostname()
print("RESULT", sorted(ray.get([where.options(resources={g: 0.5}).remote()
                               for g in ("group-a", "group-b")])))
"""


def test_raycluster_boots_joins_and_runs_a_job(real_cp: ControlPlane, operator: None) -> None:
    name = "e2e"
    start = time.monotonic()
    apply(real_cp, raycluster(name), namespace=NS)
    selector = f"ray.io/cluster={name}"
    wait_for(lambda: all_ready(pods(real_cp, NS, selector), 3), timeout=600,
             what="head + 2 workers, every container Ready")  # fmt: skip
    TIMINGS["RayCluster apply -> all Ready"] = time.monotonic() - start
    head = pods(real_cp, NS, f"{selector},ray.io/node-type=head")[0]
    assert {c["name"] for c in head["status"]["containerStatuses"]} == {"ray-head", "autoscaler"}

    # Workers joined through the head Service's DNS name (the operator's own env).
    worker = pods(real_cp, NS, f"{selector},ray.io/node-type=worker")[0]
    env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
    assert env["FQ_RAY_IP"].endswith(f".{NS}.svc.cluster.local"), env
    wait_for(lambda: _alive_ray_nodes(real_cp, name) == 3, timeout=120, what="3 Ray nodes")
    status = exec_head(real_cp, name, "ray", "status")
    for group_name in ("headgroup", "group-a", "group-b"):
        assert f" 1 {group_name}" in status, status

    url = dashboard(real_cp, name)
    start = time.monotonic()
    job_id = submit(url, f"python -c '{JOB}'")
    final = wait_for(lambda: (j := job(url, job_id))["status"] in ("SUCCEEDED", "FAILED",
                     "STOPPED") and j, timeout=300, what="the job finished")  # fmt: skip
    TIMINGS["job submit -> SUCCEEDED"] = time.monotonic() - start
    with urllib.request.urlopen(f"{url}/api/jobs/{job_id}/logs", timeout=30) as resp:
        logs = json.loads(resp.read())["logs"]
    assert final["status"] == "SUCCEEDED", logs
    workers = sorted(
        p["metadata"]["name"] for p in pods(real_cp, NS, f"{selector},ray.io/node-type=worker")
    )
    assert f"RESULT {workers}" in logs, logs
    print("timings:", json.dumps(TIMINGS, indent=2))


ALIVE_NODES = "import ray; ray.init(); print(sum(n['Alive'] for n in ray.nodes()))"


def _alive_ray_nodes(cp: ControlPlane, cluster: str) -> int:
    return int(exec_head(cp, cluster, "python", "-c", ALIVE_NODES).split()[-1])


# Two actors that each hold group-a's only custom resource: the second one needs a
# second group-a node, so the autoscaler scales the group up; once the job ends the
# actors are gone, the node idles and the autoscaler scales the group down again.
SCALE_JOB = """
import ray
ray.init()
@ray.remote(num_cpus=0, resources={"group-a": 1})
class Holder:
    def where(self):
        import socket
        return socket.gethostname()
holders = [Holder.remote() for _ in range(2)]
print("HOLDERS", sorted(ray.get([h.where.remote() for h in holders])))
"""


def group_replicas(cp: ControlPlane, cluster: str, group_name: str) -> int:
    body = json.loads(kubectl(cp, "get", "raycluster", "-n", NS, cluster, "-o", "json"))
    spec = next(g for g in body["spec"]["workerGroupSpecs"] if g["groupName"] == group_name)
    return spec["replicas"]


def test_autoscaler_scales_a_group_up_and_down(real_cp: ControlPlane, operator: None) -> None:
    name, selector = "e2e", "ray.io/cluster=e2e,ray.io/group=group-a"
    url = dashboard(real_cp, name)
    start = time.monotonic()
    job_id = submit(url, f"python -c '{SCALE_JOB}'")
    wait_for(lambda: group_replicas(real_cp, name, "group-a") == 2, timeout=120,
             what="the autoscaler raised group-a to 2 replicas")  # fmt: skip
    wait_for(lambda: all_ready(pods(real_cp, NS, selector), 2), timeout=300,
             what="a second group-a pod Ready")  # fmt: skip
    final = wait_for(lambda: (j := job(url, job_id))["status"] in ("SUCCEEDED", "FAILED",
                     "STOPPED") and j, timeout=300, what="the scale job finished")  # fmt: skip
    assert final["status"] == "SUCCEEDED", final
    TIMINGS["scale up: submit -> job done on 2 group-a nodes"] = time.monotonic() - start
    start = time.monotonic()
    wait_for(lambda: group_replicas(real_cp, name, "group-a") == 1, timeout=180,
             what="the autoscaler lowered group-a to 1 replica")  # fmt: skip
    wait_for(lambda: all_ready(pods(real_cp, NS, selector), 1), timeout=120,
             what="group-a back to one pod")  # fmt: skip
    TIMINGS["scale down: job done -> one group-a pod"] = time.monotonic() - start
    print("timings:", json.dumps(TIMINGS, indent=2))


def container_id(pod: dict, container: str) -> str:
    status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == container)
    return status["containerID"].split("://", 1)[1]


def test_killed_head_container_is_restarted_and_workers_rejoin(
    real_cp: ControlPlane, operator: None
) -> None:
    """SIGKILL the head's Ray container (the GCS dies with it; no GCS fault tolerance
    configured). The kubelet restarts the container in the same pod and the operator
    keeps that pod (same uid: nothing to recreate). Each worker loses the GCS; it comes
    back either restarted in place by the kubelet (its `ray start --block` exited) or
    replaced: a pod the autoscaler asked to delete (workersToDelete) or that ended, which
    the operator replaced with a fresh one, as its event says. Either way each group is
    back to its one Ready pod and the cluster to 3 Ray nodes."""
    name = "e2e"
    selector = f"ray.io/cluster={name}"
    head = pods(real_cp, NS, f"{selector},ray.io/node-type=head")[0]
    before = {p["metadata"]["uid"]: p["metadata"]["name"]
              for p in pods(real_cp, NS, f"{selector},ray.io/node-type=worker")}  # fmt: skip
    assert real_cp.node is not None
    start = time.monotonic()
    real_cp.node.ctr("tasks", "kill", "-s", "SIGKILL", container_id(head, "ray-head"))

    def head_restarted() -> bool:
        now = pods(real_cp, NS, f"{selector},ray.io/node-type=head")
        statuses = now[0]["status"].get("containerStatuses", []) if len(now) == 1 else []
        ray_head = next((s for s in statuses if s["name"] == "ray-head"), {})
        return ray_head.get("restartCount", 0) >= 1 and bool(ray_head.get("ready"))

    wait_for(head_restarted, timeout=300, what="the head container restarted and Ready")
    head_now = pods(real_cp, NS, f"{selector},ray.io/node-type=head")[0]
    assert head_now["metadata"]["uid"] == head["metadata"]["uid"], "the head pod was replaced"
    wait_for(lambda: _alive_ray_nodes(real_cp, name) == 3, timeout=300,
             what="both workers joined the new GCS")  # fmt: skip
    wait_for(lambda: all_ready(pods(real_cp, NS, selector), 3), timeout=120)
    TIMINGS["head killed -> 3 Ray nodes again"] = time.monotonic() - start

    events = json.loads(kubectl(real_cp, "get", "events", "-n", NS, "-o", "json"))["items"]
    deleted = [e["message"] for e in events if e["reason"] == "DeletedWorkerPod"]
    workers = pods(real_cp, NS, f"{selector},ray.io/node-type=worker")
    outcome = {}
    for pod in workers:
        restarts = pod["status"]["containerStatuses"][0]["restartCount"]
        if pod["metadata"]["uid"] in before:
            outcome[pod["metadata"]["name"]] = f"restarted in place ({restarts} restarts)"
            assert restarts >= 1, "a worker kept running through the loss of its GCS"
        else:
            outcome[pod["metadata"]["name"]] = "new pod (replacement)"
    replaced = [
        n for uid, n in before.items() if uid not in {p["metadata"]["uid"] for p in workers}
    ]
    for old in replaced:  # the operator says why it deleted each replaced worker
        assert any(old in m for m in deleted), (old, deleted)
    print("after the head was killed:", outcome, "operator deletions:", deleted)
    groups = sorted(p["metadata"]["labels"]["ray.io/group"] for p in workers)
    assert groups == ["group-a", "group-b"]


def test_deleting_the_raycluster_leaves_no_container_pod_or_netns(
    real_cp: ControlPlane, operator: None
) -> None:
    name = "e2e"
    assert real_cp.node is not None
    node = real_cp.node
    uids = {p["metadata"]["uid"] for p in pods(real_cp, NS, f"ray.io/cluster={name}")}
    mine = {cid: c for cid, c in node.containers().items()
            if c["labels"].get("io.kubernetes.pod.uid") in uids}  # fmt: skip
    netns = {c["netns"] for c in mine.values() if c["netns"].startswith("/var/run/netns/")}
    assert len(netns) == len(uids) == 3
    kubectl(real_cp, "delete", "raycluster", "-n", NS, name, "--wait=true", "--timeout=120s")
    wait_for(lambda: not pods(real_cp, NS, f"ray.io/cluster={name}"), timeout=120,
             what="no pod of the cluster")  # fmt: skip
    wait_for(lambda: not set(mine) & set(node.running_tasks()), timeout=120,
             what="no running container of the cluster")  # fmt: skip
    wait_for(lambda: not [p for p in netns if Path(p).exists()], timeout=120,
             what="no netns of the cluster")  # fmt: skip
    # The kubelet's container garbage collection (once a minute) removes the stopped
    # containers of deleted pods from containerd.
    wait_for(lambda: not set(mine) & set(node.containers()), timeout=150,
             what="containerd holds no container of the cluster")  # fmt: skip


def test_nothing_was_masqueraded(real_cp: ControlPlane, operator: None) -> None:
    """The network rule's "no masquerade", after every Ray test above sent its traffic
    (workers to the head, pods to CoreDNS and to the API server through the
    `kubernetes` Service): our RETURN is the first nat POSTROUTING rule, it saw the
    range's new connections, and kube-proxy's MASQUERADE rewrote no packet."""
    rows = podnet.postrouting_counters()
    postrouting = [(n, rule) for n, rule in rows if rule.startswith("POSTROUTING:")]
    first_packets, first_rule = postrouting[0]
    assert "RETURN" in first_rule and podnet.RULE_RANGE in first_rule, rows
    assert first_packets > 0, rows
    masqueraded = [(n, rule) for n, rule in rows if "MASQUERADE" in rule]
    assert masqueraded, f"kube-proxy's masquerade rule is expected to exist: {rows}"
    assert all(n == 0 for n, _ in masqueraded), rows
