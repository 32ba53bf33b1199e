"""The full loop with real Ray: Ray's autoscaler v2 scales a RayCluster through this
operator, with real Ray nodes on loopback standing in for the pods (tests/ray_harness.py).

1. demand (Ray tasks) -> the autoscaler patches `replicas` of both groups -> the
   operator creates the pods -> kwok runs them -> the harness starts a Ray node per pod
   -> the nodes join, the tasks run there -> idle -> the autoscaler patches `replicas`
   down + `workersToDelete` -> the operator deletes exactly those pods;
2. new demand -> the autoscaler's scale-up patch also clears the lists;
3. `maxReplicas` lowered below the pods -> the operator warns, picks no victim, and the
   autoscaler removes the surplus through `workersToDelete`.

The timeline is printed (`pytest -s`) with the latencies of each step; the assertions
are about order and outcome, never about timings. About 70 s on two cores.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from ray_operator import constants as c
from tests.clusters import Clusters
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group
from tests.ray_harness import RayHarness, Timeline

NAME = "loop"
IDLE_TIMEOUT_S = 8

DRIVER = r"""
import json, os, sys, time
import ray

address, node_ip = sys.argv[1], sys.argv[2]
cpu_tasks, special_tasks = int(sys.argv[3]), int(sys.argv[4])
ray.init(address=address, _node_ip_address=node_ip, log_to_driver=False, logging_level="WARNING")

def say(event, **kw):
    print(json.dumps({"event": event, **kw}), flush=True)

@ray.remote(num_cpus=1)
def where(i):
    time.sleep(3)
    return {"task": i, "pod": os.environ.get("RAY_CLOUD_INSTANCE_ID"),
            "group": os.environ.get("RAY_NODE_TYPE_NAME")}

refs = [where.remote(i) for i in range(cpu_tasks)]
special = where.options(resources={"special": 1})
refs += [special.remote(cpu_tasks + i) for i in range(special_tasks)]
say("submitted", count=len(refs))
pending = list(refs)
while pending:
    done, pending = ray.wait(pending, num_returns=1)
    say("task done", **ray.get(done[0]))
say("all done")
ray.shutdown()
"""


def loop_cluster() -> dict:
    special = worker_group(
        "special",
        0,
        cpu="1",
        memory="1Gi",
        maxReplicas=1,
        rayStartParams={"resources": '"{\\"special\\": 1}"'},
    )
    body = raycluster(
        NAME,
        # one CPU worker always (minReplicas), up to two
        worker_group("cpu", 0, cpu="1", memory="1Gi", minReplicas=1, maxReplicas=2),
        special,
        enableInTreeAutoscaling=True,
        autoscalerOptions={"version": "v2", "idleTimeoutSeconds": IDLE_TIMEOUT_S},
    )
    # The head takes no tasks: all demand must be met by workers.
    body["spec"]["headGroupSpec"]["rayStartParams"] = {"num-cpus": "0"}
    return body


@dataclass(frozen=True)
class Seen:
    """One change seen by a watch: when (timeline seconds) and at which etcd revision.
    The revision (resourceVersion) orders changes of different objects exactly, as one
    etcd serves them all here; watch delivery times alone may not."""

    time: float
    revision: int


class Recorder:
    """Watches the RayCluster's worker groups and its worker pods; marks the timeline."""

    def __init__(self, api_client: client.ApiClient, namespace: str, timeline: Timeline) -> None:
        self.api_client, self.ns, self.timeline = api_client, namespace, timeline
        # every distinct {group: (replicas, workersToDelete)} of the spec, in order
        self.specs: list[tuple[Seen, dict[str, tuple[int, tuple[str, ...]]]]] = []
        self.pods: dict[str, dict[str, Seen]] = {}  # pod -> state -> first seen
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(self._clusters,), daemon=True),
            threading.Thread(target=self._watch, args=(self._pods,), daemon=True),
        ]

    def start(self) -> Recorder:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def _watch(self, stream: Callable[[watch.Watch, str | None], None]) -> None:
        """Run `stream` in short watches (so `stop` is prompt), each resuming at the
        resourceVersion the last one reached: no change is missed in between."""
        version: str | None = None
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                stream(w, version)
                version = w.resource_version
            except ApiException as err:
                if err.status != 410:
                    raise
                version = None  # expired: list again (seen states are kept)
            finally:
                w.stop()

    def _seen(self, obj_meta: dict | client.V1ObjectMeta, label: str, detail: str) -> Seen:
        rv = (
            obj_meta["resourceVersion"] if isinstance(obj_meta, dict) else obj_meta.resource_version
        )
        return Seen(self.timeline.mark(label, detail), int(rv))

    def _clusters(self, w: watch.Watch, version: str | None) -> None:
        custom = client.CustomObjectsApi(self.api_client)
        for event in w.stream(
            custom.list_namespaced_custom_object, c.GROUP, c.VERSION, self.ns, c.PLURAL,
            field_selector=f"metadata.name={NAME}", timeout_seconds=2, resource_version=version,
        ):  # fmt: skip
            body = event["object"]
            groups = {
                g["groupName"]: (
                    g.get("replicas", 0),
                    tuple((g.get("scaleStrategy") or {}).get("workersToDelete") or ()),
                )
                for g in body["spec"].get("workerGroupSpecs", [])
            }
            if not self.specs or self.specs[-1][1] != groups:
                seen = self._seen(body["metadata"], "raycluster spec", json.dumps(groups))
                self.specs.append((seen, groups))
            if self._stop.is_set():
                return

    def _pods(self, w: watch.Watch, version: str | None) -> None:
        core = client.CoreV1Api(self.api_client)
        selector = f"{c.LABEL_CLUSTER}={NAME},{c.LABEL_NODE_TYPE}={c.NODE_TYPE_WORKER}"
        for event in w.stream(
            core.list_namespaced_pod, self.ns, label_selector=selector, timeout_seconds=2,
            resource_version=version,
        ):  # fmt: skip
            pod = event["object"]
            name = pod.metadata.name
            if event["type"] == "DELETED":
                state = "deleted"
            elif pod.metadata.deletion_timestamp:
                state = "terminating"
            else:
                state = "running" if pod.status.phase == "Running" else "created"
            states = self.pods.setdefault(name, {})
            if state == "running" and "created" not in states:
                states["created"] = self._seen(pod.metadata, "pod created", name)
            if state not in states:
                states[state] = self._seen(pod.metadata, f"pod {state}", name)
            if self._stop.is_set():
                return


def test_ray_autoscaler_scales_through_the_operator(
    api_client, namespace, run_operator, control_plane
):
    clusters = Clusters(api_client, namespace)
    run_operator(namespace)
    clusters.create(loop_cluster())
    harness = RayHarness.with_autoscaler(
        clusters.core, namespace, NAME, control_plane.server, control_plane.pki.ca_cert
    )
    timeline = harness.timeline
    recorder = Recorder(api_client, namespace, timeline)
    results: list[dict] = []

    def on_line(line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if event["event"] == "task done":
            results.append(event)
        detail = f"{event['pod']} ({event['group']})" if "pod" in event else ""
        timeline.mark(f"driver: {event['event']}", detail)

    def demand(what: str, cpu_tasks: int, special_tasks: int) -> None:
        timeline.mark("demand", what)
        driver = harness.run_driver(DRIVER, str(cpu_tasks), str(special_tasks), on_line=on_line)
        wait_for(lambda: driver.poll() is not None, timeout=120, interval=0.5, what=what)
        assert driver.returncode == 0, f"driver failed: {driver.returncode}"

    failed = True
    try:
        recorder.start()
        harness.start()
        # the head and the one CPU worker of minReplicas come up; the autoscaler starts
        wait_for(lambda: len(harness.joined()) == 2, timeout=90, what="head and min worker")
        wait_for(lambda: harness.autoscaler is not None, what="autoscaler started")

        # 1. Scale up (both groups), run the tasks, scale down after the idle timeout.
        demand("phase 1: 3 CPU tasks + 1 special task", 3, 1)
        wait_for(
            lambda: len(clusters.pods(NAME, "cpu")) == 1 and not clusters.pods(NAME, "special"),
            timeout=90,
            interval=0.5,
            what="scale-down to minReplicas",
        )
        victims = set().union(*(_victims(g) for _, g in recorder.specs))
        # 2. New demand while the list still names the (gone) pods: Ray's autoscaler
        # scales up and clears the list in the same patch; the operator follows.
        wait_for(lambda: len(harness.joined()) == 2, what="the removed Ray nodes gone")
        assert _victims(recorder.specs[-1][1]), "the list should still name the gone pods"
        demand("phase 2: 1 special task", 0, 1)
        wait_for(
            lambda: not _victims(recorder.specs[-1][1]),
            timeout=30,
            what="workersToDelete cleared by Ray's autoscaler",
        )
        survivors = {p.metadata.name for p in clusters.pods(NAME, "cpu")}

        # 3. maxReplicas lowered below the pods: the operator warns and picks no victim;
        # Ray's autoscaler removes the surplus for that reason. (A long idle timeout for
        # the group rules out idle termination as the cause.)
        (surplus,) = clusters.pods(NAME, "special")
        timeline.mark("demand", "phase 3: special maxReplicas 1 -> 0")
        clusters.patch(
            NAME,
            [
                {"op": "replace", "path": "/spec/workerGroupSpecs/1/maxReplicas", "value": 0},
                {"op": "add", "path": "/spec/workerGroupSpecs/1/idleTimeoutSeconds", "value": 600},
            ],
        )
        warning = wait_for(
            lambda: [e for e in clusters.events(NAME) if e.reason == "PodsAboveMaxReplicas"],
            timeout=20,
            what="the operator's Warning",
        )[0]
        timeline.mark("operator: Warning", warning.reason)
        wait_for(lambda: not clusters.pods(NAME, "special"), timeout=60, what="surplus removed")
        wait_for(lambda: _failure(clusters) is None, timeout=20, what="condition cleared")
        timeline.mark("operator: condition cleared", c.COND_REPLICA_FAILURE)
        autoscaler_log = harness.autoscaler_log()
        failed = False
    finally:
        recorder.stop()
        harness.stop()
        print("\n--- timeline (seconds since the harness started) ---\n" + timeline.render())
        if failed:
            print(harness.logs())
        harness.cleanup()
    assert harness.errors == []
    _check(timeline, recorder, results, victims, survivors)
    # Phase 3: listed by Ray for the max constraint, then deleted by the operator.
    phase3 = timeline.events("demand")[2][0]
    listed = next(
        s for s, g in recorder.specs if s.time > phase3 and surplus.metadata.name in _victims(g)
    )
    assert listed.revision < recorder.pods[surplus.metadata.name]["terminating"].revision
    assert f"{warning.message}".startswith("spec.workerGroupSpecs[1].maxReplicas: group 'special'")
    assert "Removing 1 nodes of type special (max number of worker nodes per type reached)" in (
        autoscaler_log
    )


def _failure(clusters: Clusters) -> dict | None:
    conditions = clusters.get(NAME).get("status", {}).get("conditions", [])
    return next((x for x in conditions if x["type"] == c.COND_REPLICA_FAILURE), None)


def _group(pod: str) -> str:
    return pod.split("-")[1]  # loop-<group>-worker-xxxxx


def _victims(groups: dict[str, tuple[int, tuple[str, ...]]]) -> set[str]:
    return {name for _, names in groups.values() for name in names}


def _check(
    timeline: Timeline,
    recorder: Recorder,
    results: list[dict],
    victims: set[str],
    survivors: set[str],
) -> None:
    phase1, phase2, phase3 = (when for when, _, _ in timeline.events("demand"))
    pods = recorder.pods
    # Phase 1 scale-up: Ray's autoscaler raised both groups (cpu to its maxReplicas);
    # only then did the operator create one pod per group, whose Ray nodes joined.
    before = next(g for seen, g in reversed(recorder.specs) if seen.time < phase1)
    up, spec = next((seen, g) for seen, g in recorder.specs if g["special"][0] == 1)
    assert phase1 < up.time < phase2
    assert spec["cpu"][0] == 2, spec
    new_pods = {n for n, st in pods.items() if phase1 < st["created"].time < phase2}
    assert sorted(_group(n) for n in new_pods) == ["cpu", "special"], new_pods
    for pod in new_pods:
        raised = next(
            seen
            for seen, g in recorder.specs
            if seen.time > phase1 and g[_group(pod)][0] > before[_group(pod)][0]
        )
        assert raised.revision < pods[pod]["created"].revision, "pod before the patch"
        assert pods[pod]["created"].time < timeline.first("ray node joined", pod)
    first = results[:4]
    assert sorted(r["task"] for r in first) == [0, 1, 2, 3]
    assert next(r for r in first if r["task"] == 3)["group"] == "special"
    # (Task 3 needed the `special` resource that only the new pods' Ray nodes have: the
    # tasks ran on the joined nodes. "joined" is seen by polling, so its timestamp may
    # trail the driver's; no order is asserted between the two.)
    done1 = timeline.first("driver: all done")
    assert done1 is not None

    # Scale-down: Ray's autoscaler listed one pod per group; the operator deleted
    # exactly those, each after it was listed; the other CPU worker (minReplicas) stayed.
    assert sorted(_group(n) for n in victims) == ["cpu", "special"], victims
    deleted = {n for n, st in pods.items() if "deleted" in st and st["deleted"].time < phase2}
    assert deleted == victims
    for pod in victims:
        listed = next(seen for seen, g in recorder.specs if pod in _victims(g))
        assert done1 < listed.time
        assert listed.revision < pods[pod]["terminating"].revision <= pods[pod]["deleted"].revision
    assert len(survivors) == 1 and not survivors & victims

    # Phase 2: the scale-up patch also cleared the lists (Ray's code, not ours) and the
    # new task ran on the new pod; nothing listed came back.
    up2 = next(g for seen, g in recorder.specs if phase2 < seen.time < phase3)
    assert up2["special"][0] == 1 and not _victims(up2), up2
    listed_specs = [g for seen, g in recorder.specs if _victims(g) and seen.time < phase3]
    assert all(_victims(g) <= victims for g in listed_specs)
    assert [r["group"] for r in results[4:]] == ["special"]
    assert not {n for n, st in pods.items() if "deleted" not in st} & victims
    # Every Ray node ran until its pod went away.
    assert not timeline.events("ray node exited"), timeline.events("ray node exited")

    created = max(pods[p]["created"].time for p in new_pods)
    down = min(next(seen for seen, g in recorder.specs if p in _victims(g)).time for p in victims)
    rows = [
        ("demand -> autoscaler's scale-up patch", up.time - phase1),
        ("scale-up patch -> pods created (operator)", created - up.time),
        (
            "pods created -> their Ray nodes joined",
            max(timeline.first("ray node joined", p) for p in new_pods) - created,
        ),
        ("tasks done -> scale-down patch (idle timeout)", down - done1),
        (
            "scale-down patch -> listed pods gone (operator)",
            max(pods[p]["deleted"].time for p in victims) - down,
        ),
    ]
    print("--- latencies ---")
    for what, seconds in rows:
        print(f"{what:<50} {seconds:6.2f}s")
