"""The scenarios of the benchmark (see bench/README.md). Each adds figures to a
Results: one sample per repeat, so every figure gets min/median/max."""

from __future__ import annotations

import copy
import logging
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ray_operator import constants as c
from ray_operator_dev.devcluster.controlplane import free_port
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group

from .apimetrics import ApiCost, Snapshot
from .env import BENCH_LABEL, KUBERAY, Bench, worker_pod_shape
from .fakedashboard import FakeDashboards
from .machinecpu import MachineCpu
from .report import Results
from .watch import PodWatch, RayClusterWatch

log = logging.getLogger("bench")
CEILING_CPU = "CPU ms per pod to created"  # a key of Scenarios.ceilings


@dataclass
class Config:
    repeat: int = 3
    timeout: float = 900.0
    # 201 and 500: the pods of `big` and `many`, each compared with a ceiling of its size
    ceiling_pods: list[int] = field(default_factory=lambda: [201, 500, 2000])
    ceiling_concurrency: int = 32
    big_workers: int = 200  # in two groups
    # recovery: where the SIGKILLs fall; 1: at half of the pods, n > 1: at 0, 1/(n-1),
    # ..., all of them created (each kill point is one run per repeat)
    recovery_kill_points: int = 1
    many_clusters: int = 100
    many_namespaces: int = 10
    many_workers: int = 4
    thousand_clusters: int = 1000  # 1 head + thousand_workers each, opt-in scenario
    thousand_namespaces: int = 50
    thousand_workers: int = 3
    scale_base: int = 100
    scale_step: int = 100
    steady_seconds: float = 300.0
    memory_ray_pods: list[int] = field(default_factory=lambda: [1000, 5000])
    memory_cluster_pods: int = 200  # 1 head + 199 workers per RayCluster
    unrelated_pods: int = 10_000
    resync_clusters: int = 1000  # head-only RayClusters
    resync_namespaces: int = 10
    resync_autoscaling_every: int = 10  # every 10th of them with in-tree autoscaling
    resync_interval: float = 20.0  # --resync-seconds for the measured operator
    rayjobs: int = 50  # small RayJobs (head + 1 worker), HTTPMode, fake dashboards
    rayjob_seconds: float = 2.0  # how long each (fake) Ray job runs

    def peak_pods(self, selected: list[str]) -> int:
        """Most pods alive at once: the kept clusters of big, recovery, many and scale
        (steady state runs on them) plus a ceiling run; or the memory scenario alone."""
        kept = {
            "big": self.big_workers + 1,
            "recovery": self.big_workers + 1,
            "many": self.many_clusters * (self.many_workers + 1),
            "thousand": self.thousand_clusters * (self.thousand_workers + 1),
            "scale": 2 * (self.scale_base + self.scale_step + 1),
            "steady": self.big_workers + 1,
        }
        ceiling = max(self.ceiling_pods, default=0) if "ceiling" in selected else 0
        together = sum(n for name, n in kept.items() if name in selected) + ceiling
        if "resync" in selected:
            together += self.resync_clusters
        if "rayjobs" in selected:
            together += 2 * self.rayjobs
        memory = 0
        if "memory" in selected:
            memory = max(self.memory_ray_pods, default=0) + self.unrelated_pods
        return max(together, memory, 1)


def labelled(body: dict[str, Any], kind: str) -> dict[str, Any]:
    """Put the bench label on every pod template (the operator copies template labels
    onto the pods), so one watch selects exactly one scenario's pods."""
    body = copy.deepcopy(body)
    spec = body["spec"]
    for template in [spec["headGroupSpec"]["template"]] + [
        g["template"] for g in spec.get("workerGroupSpecs", [])
    ]:
        template.setdefault("metadata", {}).setdefault("labels", {})[BENCH_LABEL] = kind
    return body


def big_cluster_body(name: str, workers: int, kind: str) -> dict[str, Any]:
    small = workers // 2
    return labelled(
        raycluster(
            name,
            worker_group("small", small, cpu="1", memory="2Gi"),
            worker_group("large", workers - small, cpu="4", memory="8Gi"),
        ),
        kind,
    )


class Phase:
    """API cost and CPU seconds of one measured phase."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.before: Snapshot = bench.snapshot()
        self.cpu_before = bench.component_cpu()
        self.passes_before = bench.op_reconciles()
        self.started = time.monotonic()

    def end(self) -> tuple[ApiCost, dict[str, float]]:
        cost = self.bench.snapshot() - self.before
        return cost, self.cpu_so_far()

    def cpu_so_far(self) -> dict[str, float]:
        """CPU seconds of each process since the phase began."""
        cpu_after = self.bench.component_cpu()
        return {
            k: round(v - self.cpu_before[k], 2)
            for k, v in cpu_after.items()
            if k in self.cpu_before and v >= self.cpu_before[k]
        }


class Scenarios:
    def __init__(self, bench: Bench, cfg: Config, results: Results) -> None:
        self.b, self.cfg, self.r = bench, cfg, results
        self.clusters = RayClusterWatch(bench.admin)
        self.clusters.start()
        self.clusters.synced.wait(60)
        self.namespaces: list[str] = []  # every namespace with Ray pods, for cleanup
        # the ceiling's figures of this run, by (which, size): its pods/s to "created"
        # and to "Running" (percentages compare with the ceiling of the same control
        # plane and minutes) and its whole-machine CPU ms per pod to created, CEILING_CPU
        # (a creation that keeps every core busy reaches at most the ceiling's CPU per
        # pod over its own, of the ceiling's rate)
        self.ceilings: dict[tuple[str, int], list[float]] = {}
        self.machine = MachineCpu()
        self.shape = worker_pod_shape(big_cluster_body("shape", 2, "shape"))

    # -- helpers -----------------------------------------------------------------------

    def _namespace(self, prefix: str) -> str:
        ns = self.b.namespace(prefix)
        self.namespaces.append(ns)
        return ns

    def _watch(self, kind: str, namespace: str | None = None) -> PodWatch:
        watch = PodWatch(self.b.admin, f"{BENCH_LABEL}={kind}", namespace)
        watch.start()
        if not watch.synced.wait(120):
            raise TimeoutError(f"pod watch {kind} did not sync")
        return watch

    def _record_phase(
        self, scenario: str, phase: str, p: Phase, extra: dict | None = None, pods: int = 0
    ) -> dict[str, float]:
        """Record the phase's API cost and CPU; returns its CPU seconds per process."""
        cost, cpu = p.end()
        if pods:
            self.r.add(scenario, "operator API requests per pod", cost.operator_total() / pods,
                       "requests", "watches included")  # fmt: skip
            self.r.add(scenario, "operator KiB received per pod",
                       cost.operator_bytes() / 1024 / pods, "KiB",
                       "from the API server, TLS included")  # fmt: skip
            self.r.add(scenario, "CPU ms per pod, all processes", 1000 * sum(cpu.values()) / pods,
                       "ms", "control plane + operator")  # fmt: skip
            if "ray-operator" in cpu:
                self.r.add(scenario, "operator CPU ms per pod", 1000 * cpu["ray-operator"] / pods,
                           "ms")  # fmt: skip
            # each operator's own counter: ours counts passes, KubeRay's Reconcile calls
            self.r.add(scenario, "reconcile passes per pod",
                       (self.b.op_reconciles() - p.passes_before) / pods, "passes")  # fmt: skip
        self.r.add_api(f"{scenario}: {phase}", cost.as_json())
        self.r.add_detail(f"{scenario}: {phase}", {"cpu_seconds": cpu, **(extra or {})})
        if "ray-operator" in cpu:
            self.r.add(scenario, f"{phase}: operator CPU", cpu["ray-operator"], "s")
        self.r.add(scenario, f"{phase}: operator API requests", cost.operator_total(), "requests")
        return cpu

    def _idle(self, quiet: float = 2.0) -> None:
        self.b.wait_operator_idle(quiet=quiet, timeout=self.cfg.timeout)

    def clear(self, namespaces: list[str]) -> None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self.b.clear_namespace, namespaces))
        if self.b.operator is not None and self.b.operator.alive():
            self._idle()

    # -- 1. ceiling --------------------------------------------------------------------

    def ceiling(self) -> None:
        """A plain concurrent client POSTs N Ray-worker-shaped pods (no operator
        involved): pods/s to created and to Running, the limit of this control plane."""
        ns = self._namespace("ceiling")
        for n in self.cfg.ceiling_pods:
            for rep in range(self.cfg.repeat):
                watch = self._watch("ceiling", ns)
                p = Phase(self.b)
                load = self.b.bare_pods(ns, n, "ceiling", self.cfg.ceiling_concurrency, self.shape)
                out = load.result(self.cfg.timeout)
                if out["n_errors"]:
                    raise RuntimeError(f"ceiling client errors: {out['errors']}")
                t0 = out["started"]
                created = watch.wait(
                    lambda n=n, w=watch: w.created >= n, self.cfg.timeout, "created"
                )
                cpu_created = p.cpu_so_far()
                running = watch.wait(
                    lambda n=n, w=watch: w.n_ready() >= n, self.cfg.timeout, "Running"
                )
                watch.stop()
                tag = f"N={n}"
                self.ceilings.setdefault(("created", n), []).append(n / (created - t0))
                self.ceilings.setdefault(("Running", n), []).append(n / (running - t0))
                self.ceilings.setdefault((CEILING_CPU, n), []).append(
                    self._machine_to_created("1 ceiling", f" ({tag})", n, t0, created)
                )
                self.r.add("1 ceiling", f"pods/s to created ({tag})", n / (created - t0), "pods/s")
                self.r.add("1 ceiling", f"pods/s to Running ({tag})", n / (running - t0), "pods/s")
                self.r.add("1 ceiling", f"seconds to created ({tag})", created - t0, "s")
                self.r.add("1 ceiling", f"seconds to Running ({tag})", running - t0, "s")
                cost, cpu = p.end()
                cpu["client"] = round(out.get("client_cpu_s", 0.0), 2)
                self.r.add(
                    "1 ceiling", f"CPU ms per pod, all processes ({tag})",
                    1000 * sum(cpu.values()) / n, "ms",
                    "control plane + client, created to Running",
                )  # fmt: skip
                self.r.add_api(f"1 ceiling: {tag}", cost.as_json())
                self.r.add_detail(f"1 ceiling: {tag}", {"cpu_seconds": cpu})
                self.r.add_detail(f"1 ceiling: {tag} to created", {"cpu_seconds": cpu_created})
                log.info("ceiling %s rep %d: created %.2fs, Running %.2fs", tag, rep,
                         created - t0, running - t0)  # fmt: skip
                self.b.clear_namespace(ns)

    def _machine_to_created(
        self, scenario: str, suffix: str, n: int, t0: float, created: float
    ) -> float:
        """Whole-machine CPU (every process) from t0 to the last pod created: ms per
        pod, and how busy the cores were. Returns the ms per pod."""
        busy = self.machine.busy(t0, created)
        per_pod = 1000 * busy / n
        self.r.add(scenario, f"CPU ms per pod to created, whole machine{suffix}", per_pod,
                   "ms", "every process on the machine, from /proc/stat")  # fmt: skip
        self.r.add(scenario, f"cores busy to created{suffix}",
                   100 * busy / ((created - t0) * self.machine.cores), "%",
                   f"of {self.machine.cores} cores")  # fmt: skip
        return per_pod

    def _ceiling(self, which: str, n: int) -> float | None:
        """This run's median ceiling figure `which` at the size closest to n."""
        sizes = [size for w, size in self.ceilings if w == which]
        if not sizes:
            return None
        size = min(sizes, key=lambda s: abs(s - n))
        return statistics.median(self.ceilings[(which, size)])

    def _creation(
        self,
        s: str,
        watch: PodWatch,
        n: int,
        t0: float,
        created: float,
        running: float,
        ready: tuple[str, float],
        cpu_created: dict[str, float],
    ) -> None:
        """The figures of a creation from `t0`: seconds and rates to all `n` pods
        created and Running, seconds to `ready` (its figure's name, when), extra pods,
        and the CPU it took until the last pod was created (`cpu_created`: each
        process's, from the phase's start)."""
        self.r.add(s, "seconds to first pod created", watch.first_added() - t0, "s")
        self.r.add(s, "seconds to all created", created - t0, "s")
        self.r.add(s, "seconds to all Running", running - t0, "s")
        self.r.add(s, f"seconds to {ready[0]}", ready[1] - t0, "s")
        self.r.add(s, "pods/s to created", n / (created - t0), "pods/s")
        self.r.add(s, "pods/s to Running", n / (running - t0), "pods/s")
        self._fraction(s, "created", n, n / (created - t0))
        self._fraction(s, "Running", n, n / (running - t0))
        self.r.add(s, "extra pods created", watch.created - n, "pods", "must be 0")
        per_pod = self._machine_to_created(s, "", n, t0, created)
        ceiling = self._ceiling(CEILING_CPU, n)
        if ceiling:
            self.r.add(
                s, "CPU bound: pods/s to created / ceiling", 100 * ceiling / per_pod, "%",
                "the ceiling's whole-machine CPU per pod over this one's: the most of the "
                "ceiling's rate this CPU per pod allows",
            )  # fmt: skip
        if "ray-operator" in cpu_created:
            self.r.add(s, "operator CPU ms per pod to created",
                       1000 * cpu_created["ray-operator"] / n, "ms")  # fmt: skip
        self.r.add_detail(f"{s}: apply to all created", {"cpu_seconds": cpu_created})

    def _fraction(self, scenario: str, which: str, n: int, rate: float) -> None:
        ceiling = self._ceiling(which, n)
        if ceiling:
            self.r.add(scenario, f"pods/s to {which} / ceiling", 100 * rate / ceiling, "%")

    # -- 2. one big cluster --------------------------------------------------------------

    def big(self) -> None:
        """1 head + 200 workers in two groups: apply -> all created -> Running -> ready."""
        n = self.cfg.big_workers + 1
        for rep in range(self.cfg.repeat):
            ns = self._namespace("big")
            watch = self._watch("big", ns)
            self._idle()
            p = Phase(self.b)
            t0 = time.monotonic()
            self.b.create_cluster(ns, big_cluster_body("big", self.cfg.big_workers, "big"))
            key = f"{ns}/big"
            created = watch.wait(lambda w=watch: w.created >= n, self.cfg.timeout, "created")
            cpu_created = p.cpu_so_far()
            running = watch.wait(lambda w=watch: w.n_ready() >= n, self.cfg.timeout, "Running")
            self.clusters.wait(
                lambda k=key: self.clusters.converged(k, self.cfg.big_workers),
                self.cfg.timeout,
                "big ready",
            )
            ready = self.clusters.clusters[key].became_ready or time.monotonic()
            self._idle()
            watch.stop()
            s = "2 big cluster"
            self._creation(s, watch, n, t0, created, running, ("status ready", ready), cpu_created)
            self._record_phase(s, "apply to ready", p, pods=n)
            log.info("big rep %d: created %.2fs, Running %.2fs, ready %.2fs", rep,
                     created - t0, running - t0, ready - t0)  # fmt: skip
            if rep < self.cfg.repeat - 1:
                self.clear([ns])

    # -- 3. many clusters ----------------------------------------------------------------

    def many(self) -> None:
        """100 RayClusters x (1 head + 4 workers) across 10 namespaces, applied at once."""
        cfg = self.cfg
        for rep in range(cfg.repeat):
            namespaces, _ = self._at_once(
                "3 many clusters", f"many-{rep}", cfg.many_clusters, cfg.many_namespaces,
                cfg.many_workers,
            )  # fmt: skip
            if rep < cfg.repeat - 1:
                self.clear(namespaces)

    def _at_once(
        self, s: str, kind: str, clusters: int, n_namespaces: int, workers: int
    ) -> tuple[list[str], dict[str, float]]:
        """`clusters` small RayClusters (1 head + `workers`) spread over `n_namespaces`,
        applied concurrently: seconds to all created / Running / ready, API cost and CPU
        of apply to all ready. Returns the namespaces and that phase's CPU seconds."""
        cfg = self.cfg
        n = clusters * (workers + 1)
        namespaces = [self._namespace(f"{kind}-{i}") for i in range(n_namespaces)]
        watch = self._watch(kind)
        bodies = [
            (
                namespaces[i % len(namespaces)],
                labelled(raycluster(f"rc{i:03d}", worker_group("w", workers)), kind),
            )
            for i in range(clusters)
        ]
        keys = [f"{ns}/{body['metadata']['name']}" for ns, body in bodies]
        self._idle()
        self.b.reset_peak_rss()
        p = Phase(self.b)
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda nb: self.b.create_cluster(*nb), bodies))
        applied = time.monotonic()
        created = watch.wait(lambda w=watch: w.created >= n, cfg.timeout, "created")
        cpu_created = p.cpu_so_far()
        running = watch.wait(lambda w=watch: w.n_ready() >= n, cfg.timeout, "Running")
        self.clusters.wait(
            lambda keys=keys: all(self.clusters.converged(k, workers) for k in keys),
            cfg.timeout,
            "all ready",
        )
        ready = max(self.clusters.clusters[k].became_ready or 0.0 for k in keys)
        self._idle()
        watch.stop()
        self.r.add(s, "seconds to apply all (harness)", applied - t0, "s")
        self._creation(s, watch, n, t0, created, running, ("all ready", ready), cpu_created)
        cpu = self._record_phase(s, "apply to all ready", p, pods=n)
        log.info("%s: created %.2fs, Running %.2fs, ready %.2fs", kind,
                 created - t0, running - t0, ready - t0)  # fmt: skip
        return namespaces, cpu

    # -- 10. a thousand clusters -----------------------------------------------------------

    def thousand(self) -> None:
        """1,000 RayClusters x (1 head + 3 workers) across 50 namespaces, applied at once:
        the figures of `many`, plus the operator's RSS (at the end, and its peak since the
        apply) and the CPU seconds of the API server, etcd and kwok over the same phase."""
        cfg, s = self.cfg, "10 thousand clusters"
        for rep in range(cfg.repeat):
            namespaces, cpu = self._at_once(
                s, f"thousand-{rep}", cfg.thousand_clusters, cfg.thousand_namespaces,
                cfg.thousand_workers,
            )  # fmt: skip
            stats = self.b.op_stats()
            self.r.add(s, "operator RSS at the end", stats.rss_kib / 1024, "MiB")
            self.r.add(s, "operator peak RSS (VmHWM)", stats.hwm_kib / 1024, "MiB",
                       "from the apply on")  # fmt: skip
            for proc in ("kube-apiserver", "etcd", "kwok"):
                self.r.add(s, f"apply to all ready: {proc} CPU", cpu.get(proc, -1), "s")
            if rep < cfg.repeat - 1:
                self.clear(namespaces)

    # -- 4. scale events -----------------------------------------------------------------

    def scale(self) -> None:
        """+/-100 workers on running clusters: via `replicas` (no autoscaling), and as
        Ray's autoscaler does it (in-tree autoscaling: `replicas` up; one JSON patch
        with `replicas` down plus `workersToDelete`)."""
        cfg = self.cfg
        base, step = cfg.scale_base, cfg.scale_step
        ns = self._namespace("scale")
        watch = self._watch("scale", ns)
        self.b.create_cluster(ns, labelled(raycluster("plain", worker_group("w", base)), "scale"))
        self.b.create_cluster(
            ns,
            labelled(
                raycluster("auto", worker_group("w", base), enableInTreeAutoscaling=True), "scale"
            ),
        )
        for name in ("plain", "auto"):
            self.clusters.wait(
                lambda k=f"{ns}/{name}": self.clusters.converged(k, base), cfg.timeout, name
            )
        self._idle()

        def replicas(value: int) -> dict[str, Any]:
            return {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": value}

        def to_delete(names: list[str]) -> dict[str, Any]:
            return {
                "op": "replace",
                "path": "/spec/workerGroupSpecs/0/scaleStrategy",
                "value": {"workersToDelete": names},
            }

        for rep in range(cfg.repeat):
            self._scale_event(watch, ns, "plain", f"replicas +{step}", [replicas(base + step)],
                              base + step)  # fmt: skip
            self._scale_event(watch, ns, "plain", f"replicas -{step}", [replicas(base)], base)
            self._scale_event(watch, ns, "auto", f"autoscaling replicas +{step}",
                              [replicas(base + step), to_delete([])], base + step)  # fmt: skip
            alive = self.b.pod_names(ns, "auto", "w")
            victims = sorted(random.Random(rep).sample(alive, step))
            survivors = set(alive) - set(victims)
            # As Ray's autoscaler: once every listed pod is gone, it empties the list
            # again (docs/autoscaler-protocol.md); that patch is part of the event.
            self._scale_event(watch, ns, "auto", f"workersToDelete -{step}",
                              [replicas(base), to_delete(victims)], base, survivors,
                              then=[to_delete([])])  # fmt: skip
        watch.stop()

    def _scale_event(
        self,
        watch: PodWatch,
        ns: str,
        name: str,
        label: str,
        patch: list[dict[str, Any]],
        target: int,
        survivors: set[str] | None = None,
        then: list[dict[str, Any]] | None = None,
    ) -> None:
        """One patch, measured until pods and status converge; `then`, a second patch
        sent once the pods are all there or all gone (and every listed pod removed)."""
        key = f"{ns}/{name}"
        before_alive = watch.n_alive(key, "w")
        self._idle()
        p = Phase(self.b)
        t0 = time.monotonic()
        self.b.patch_cluster(ns, name, patch)
        acted = watch.wait(lambda: watch.n_alive(key, "w") == target, self.cfg.timeout, label)
        converged = watch.wait(
            lambda: watch.n_present(key, "w") == target and watch.n_ready(key, "w") == target,
            self.cfg.timeout,
            label,
        )
        status = self.clusters.wait(
            lambda: self.clusters.converged(key, target), self.cfg.timeout, label
        )
        if then:
            self.b.patch_cluster(ns, name, then)
        self._idle()
        s = "4 scale events"
        what = "created" if target > before_alive else "deletes issued"
        self.r.add(s, f"{label}: seconds to all {what}", acted - t0, "s")
        self.r.add(s, f"{label}: seconds to converge", max(converged, status) - t0, "s")
        if survivors is not None:
            alive = {
                pod
                for (_, pod), st in watch.pods.items()
                if st.cluster == key and st.group == "w" and st.alive
            }
            wrong = len(alive ^ survivors)  # listed pods kept, or other pods deleted
            self.r.add(s, f"{label}: wrong pods deleted or kept", wrong, "pods", "must be 0")
        self._record_phase(s, label, p)
        log.info("scale %s: %s %.2fs, converged %.2fs", label, what, acted - t0,
                 max(converged, status) - t0)  # fmt: skip

    # -- 5. steady state -----------------------------------------------------------------

    def steady(self) -> None:
        """Everything ready, nothing changes: API writes (must be 0), reads per minute,
        operator CPU; and a restart with everything ready (a full resync)."""
        cfg = self.cfg
        if not self.clusters.clusters:
            ns = self._namespace("steady")
            self.b.create_cluster(ns, big_cluster_body("big", cfg.big_workers, "steady"))
            self.clusters.wait(
                lambda: self.clusters.converged(f"{ns}/big", cfg.big_workers), cfg.timeout, "big"
            )
        s = "5 steady state"
        pods = sum(max(st.desired_workers, 0) + 1 for st in self.clusters.clusters.values())
        self.r.add_detail(s, {"rayclusters": len(self.clusters.clusters), "ray_pods": pods})
        for rep in range(cfg.repeat):
            self._idle(quiet=3.0)
            p = Phase(self.b)
            t0 = time.monotonic()
            self.b.stop_operator()
            self.b.start_operator()
            # Idle alone is not enough: an operator waiting for a leader Lease (KubeRay
            # with its chart's defaults) has not reconciled anything yet, and neither
            # have the watches that only its controllers start. Every cluster's pass
            # after the restart is the resync this phase measures.
            self.b.wait_operator_reconciled(len(self.clusters.clusters), self.cfg.timeout)
            resynced = time.monotonic()
            self._idle(quiet=3.0)
            cost, _ = p.end()
            self.r.add(s, "restart + resync: seconds until every cluster reconciled",
                       resynced - t0, "s")  # fmt: skip
            self.r.add(s, "restart + resync: seconds until idle", time.monotonic() - t0 - 3.0, "s")
            self.r.add(s, "restart + resync: writes", cost.operator_writes(), "requests",
                       "must be 0")  # fmt: skip
            self.r.add(s, "restart + resync: reads (get+list)", cost.operator_reads(), "requests")
            self.r.add(s, "restart + resync: all requests", cost.operator_total(), "requests",
                       "watches included")  # fmt: skip
            self.r.add(s, "restart + resync: KiB received", cost.operator_bytes() / 1024,
                       "KiB", "from the API server, TLS included")  # fmt: skip
            self.r.add_api(f"{s}: restart + resync", cost.as_json())

            time.sleep(2.0)
            p = Phase(self.b)
            time.sleep(cfg.steady_seconds)
            cost, cpu = p.end()
            minutes = cfg.steady_seconds / 60
            self.r.add(s, "idle: writes", cost.operator_writes(), "requests", "must be 0")
            self.r.add(s, "idle: reads (get+list) per minute", cost.operator_reads() / minutes,
                       "requests/min")  # fmt: skip
            self.r.add(s, "idle: all requests per minute", cost.operator_total() / minutes,
                       "requests/min")  # fmt: skip
            self.r.add(s, "idle: writes by any client on Ray resources", cost.server_writes(),
                       "requests", "kwok node leases etc. included")  # fmt: skip
            self.r.add(s, "idle: operator CPU", cpu.get("ray-operator", -1), "s")
            self.r.add(s, "idle: operator RSS", self.b.op_stats().rss_kib / 1024, "MiB")
            self.r.add_api(f"{s}: idle {cfg.steady_seconds:.0f}s", cost.as_json())
            self.r.add_detail(f"{s}: idle", {"cpu_seconds": cpu, "pods": pods})
            log.info("steady rep %d: writes %d, reads/min %.1f, cpu %.2fs", rep,
                     cost.operator_writes(), cost.operator_reads() / minutes,
                     cpu.get("ray-operator", -1))  # fmt: skip

    # -- 6. memory -----------------------------------------------------------------------

    def memory(self) -> None:
        """Operator RSS idle, with 1,000 and 5,000 Ray pods, then with 10,000 unrelated
        (non-Ray) pods added; and after a restart with all of them there."""
        cfg = self.cfg
        s = "6 memory"
        for rep in range(cfg.repeat):
            self.clear(self.namespaces)
            self.namespaces = []
            self.b.stop_operator()
            self.b.start_operator()
            self.b.wait_operator_leading(cfg.timeout)  # a standby's RSS is not the figure
            self._idle(quiet=5.0)
            self.r.add(s, "RSS idle (no RayClusters)", self._rss(), "MiB")
            ns = self._namespace("mem")
            kind = f"mem-{rep}"
            watch = self._watch(kind, ns)
            clusters: list[str] = []
            for total in cfg.memory_ray_pods:
                while len(clusters) * cfg.memory_cluster_pods < total:
                    name = f"m{len(clusters):03d}"
                    body = labelled(
                        raycluster(name, worker_group("w", cfg.memory_cluster_pods - 1)), kind
                    )
                    self.b.create_cluster(ns, body)
                    clusters.append(name)
                n = len(clusters) * cfg.memory_cluster_pods
                watch.wait(lambda n=n, w=watch: w.n_ready() >= n, cfg.timeout, f"{n} Ray pods")
                keys = [f"{ns}/{k}" for k in clusters]
                self.clusters.wait(
                    lambda keys=keys: all(
                        self.clusters.converged(k, cfg.memory_cluster_pods - 1) for k in keys
                    ),
                    cfg.timeout,
                    "memory clusters ready",
                )
                self._idle(quiet=3.0)
                self.r.add(s, f"RSS with {n:,} Ray pods", self._rss(), "MiB")
            with_ray = self._rss()
            watch.stop()
            if cfg.unrelated_pods:
                other = self._namespace("unrelated")
                uwatch = self._watch("unrelated", other)
                load = self.b.bare_pods(other, cfg.unrelated_pods, "unrelated", 32, self.shape)
                out = load.result(cfg.timeout)
                if out["n_errors"]:
                    raise RuntimeError(f"unrelated pods: {out['errors']}")
                uwatch.wait(
                    lambda w=uwatch: w.n_ready() >= cfg.unrelated_pods,
                    cfg.timeout,
                    "unrelated Running",
                )
                uwatch.stop()
                self._idle(quiet=3.0)
                time.sleep(2.0)
                rss = self._rss()
                self.r.add(s, f"RSS with {n:,} Ray + {cfg.unrelated_pods:,} unrelated pods",
                           rss, "MiB")  # fmt: skip
                self.r.add(s, "RSS growth from unrelated pods", rss - with_ray, "MiB",
                           "must be ~0")  # fmt: skip
            self.r.add(s, "peak RSS (VmHWM) of that process", self.b.op_stats().hwm_kib / 1024,
                       "MiB")  # fmt: skip
            self.b.stop_operator()
            self.b.start_operator()
            self.b.wait_operator_reconciled(len(clusters), cfg.timeout)  # see steady()
            self._idle(quiet=5.0)
            self.r.add(s, "RSS after a restart with all of them", self._rss(), "MiB")
            log.info("memory rep %d done", rep)

    def _rss(self) -> float:
        return round(self.b.op_stats().rss_kib / 1024, 1)

    # -- 7. recovery ---------------------------------------------------------------------

    def recovery(self) -> None:
        """SIGKILL the operator when half of a 1 + 200 cluster's pods exist (or at each
        of `recovery_kill_points`), restart it: seconds to converge, and duplicate pods
        (must be 0)."""
        cfg = self.cfg
        n = cfg.big_workers + 1
        points = cfg.recovery_kill_points
        kill_at = [n // 2] if points <= 1 else [n * k // (points - 1) for k in range(points)]
        for rep in range(cfg.repeat):
            for at in kill_at:
                self._recover(rep, at)

    def _recover(self, rep: int, kill_at: int) -> None:
        cfg = self.cfg
        n = cfg.big_workers + 1
        s = "7 recovery"
        ns = self._namespace("recovery")
        watch = self._watch("recovery", ns)
        self._idle()
        t0 = time.monotonic()
        self.b.create_cluster(ns, big_cluster_body("big", cfg.big_workers, "recovery"))
        watch.wait(lambda w=watch: w.created >= kill_at, cfg.timeout, "the kill point")
        assert self.b.operator is not None
        self.b.operator.kill()
        killed = time.monotonic()
        at_kill = watch.created
        self.b.start_operator()
        restarted = time.monotonic()
        key = f"{ns}/big"
        watch.wait(lambda w=watch: w.n_ready() >= n, cfg.timeout, "Running")
        self.clusters.wait(
            lambda k=key: self.clusters.converged(k, cfg.big_workers), cfg.timeout, "ready"
        )
        ready = self.clusters.clusters[key].became_ready or time.monotonic()
        self._idle(quiet=3.0)
        heads = sum(1 for st in watch.pods.values() if st.group == c.HEAD_GROUP)
        watch.stop()
        self.r.add(s, "pods created before the kill", at_kill, "pods")
        self.r.add(s, "seconds from kill to restarted (metrics up)", restarted - killed, "s")
        self.r.add(s, "seconds from kill to ready", ready - killed, "s")
        self.r.add(s, "seconds from apply to ready", ready - t0, "s")
        self.r.add(s, "duplicate pods", watch.created - n, "pods", "must be 0")
        self.r.add(s, "head pods created", heads, "pods", "must be 1")
        log.info("recovery rep %d: kill at %d pods, ready %.2fs after kill, %d duplicates",
                 rep, at_kill, ready - killed, watch.created - n)  # fmt: skip
        self.clear([ns])

    # -- 8. periodic resync --------------------------------------------------------------

    def resync(self) -> None:
        """What one periodic resync costs with N converged RayClusters (head only,
        every `resync_autoscaling_every`th with in-tree autoscaling, hence its RBAC):
        API requests by kind, operator CPU, and writes (must be 0). The operator runs
        with a short --resync-seconds; each measured phase spans exactly one resync,
        from an idle operator to idle again."""
        cfg, s = self.cfg, "8 resync"
        if self.b.which == KUBERAY:  # its resync period is a flag our harness cannot time
            log.info("resync: skipped for KubeRay (it reads its resyncs from informer caches)")
            return
        namespaces = [self._namespace(f"resync{i}") for i in range(cfg.resync_namespaces)]
        bodies = [
            (
                namespaces[i % len(namespaces)],
                labelled(
                    raycluster(
                        f"r{i:04d}", enableInTreeAutoscaling=i % cfg.resync_autoscaling_every == 0
                    ),
                    "resync",
                ),
            )
            for i in range(cfg.resync_clusters)
        ]
        keys = [f"{ns}/{body['metadata']['name']}" for ns, body in bodies]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda nb: self.b.create_cluster(*nb), bodies))
        self.clusters.wait(
            lambda: all(self.clusters.converged(k, 0) for k in keys), cfg.timeout, "all ready"
        )
        usual = list(self.b.operator_args)
        self.b.operator_args = [*usual, f"--resync-seconds={cfg.resync_interval:g}"]
        self.b.stop_operator()
        self.b.start_operator()
        try:
            self._idle(quiet=3.0)
            for rep in range(cfg.repeat):
                self._next_resync(started=False)  # the resync in progress, if any, ends
                self._idle(quiet=2.0)
                p = Phase(self.b)
                self._next_resync(started=True)
                self._idle(quiet=2.0)
                cost, cpu = p.end()
                self.r.add(s, "clusters", len(keys), "RayClusters")
                self.r.add(s, "reads (get+list) per resync", cost.operator_reads(), "requests")
                self.r.add(s, "reads per cluster", cost.operator_reads() / len(keys),
                           "requests")  # fmt: skip
                self.r.add(s, "writes per resync", cost.operator_writes(), "requests",
                           "must be 0")  # fmt: skip
                self.r.add(s, "operator CPU per resync", cpu.get("ray-operator", -1), "s")
                self.r.add_api(f"{s}: one resync", cost.as_json())
                log.info("resync rep %d: %d reads, %d writes, %.2fs operator CPU", rep,
                         cost.operator_reads(), cost.operator_writes(),
                         cpu.get("ray-operator", -1))  # fmt: skip
        finally:
            self.b.operator_args = usual
            self.b.stop_operator()
            self.b.start_operator()
        self.clear(namespaces)

    def _next_resync(self, started: bool) -> None:
        """Wait until the operator's resync counter moves once more."""
        before = self.b.op_metrics().get("ray_operator_resyncs_total", 0.0)
        wait_for(
            lambda: self.b.op_metrics().get("ray_operator_resyncs_total", 0.0) > before,
            timeout=self.cfg.resync_interval * 3 + 60,
            interval=0.1,
            what="the next resync" if started else "a resync",
        )

    # -- 9. RayJobs ------------------------------------------------------------------------

    def rayjobs(self) -> None:
        """N small RayJobs (HTTPMode, head + 1 worker, shutdownAfterJobFinishes, TTL 0)
        applied at once, through to Complete and their clusters deleted. Each head pod
        IP gets a fake dashboard (bench/fakedashboard.py): the job runs rayjob_seconds.
        Per job: seconds from apply to Running (cluster ready, job handed to Ray) and
        to Complete."""
        if self.b.which == KUBERAY:  # it calls the dashboard by the head Service's DNS
            log.info("rayjobs: skipped for KubeRay (its dashboard client needs cluster DNS)")
            return
        port = free_port()
        for rep in range(self.cfg.repeat):
            self._rayjob_round(rep, port)

    def _rayjob_round(self, rep: int, port: int) -> None:
        cfg, s = self.cfg, "9 rayjobs"
        ns = self._namespace(f"rayjobs{rep}")
        dashboards = FakeDashboards(port, cfg.rayjob_seconds)
        body = labelled(raycluster("x", worker_group("w", 1)), "rayjobs")["spec"]
        body["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"] = [
            {"name": "dashboard", "containerPort": port}
        ]
        names = [f"job{i:03d}" for i in range(cfg.rayjobs)]
        self._idle()
        p = Phase(self.b)
        applied: dict[str, float] = {}
        for name in names:
            self.b.custom.create_namespaced_custom_object(
                c.GROUP, c.VERSION, ns, c.JOB_PLURAL,
                {"apiVersion": c.API_VERSION, "kind": c.JOB_KIND, "metadata": {"name": name},
                 "spec": {"entrypoint": "python job.py", "submissionMode": c.MODE_HTTP,
                          "shutdownAfterJobFinishes": True, "rayClusterSpec": body}},
            )  # fmt: skip
            applied[name] = time.monotonic()
        running: dict[str, float] = {}
        complete: dict[str, float] = {}

        def progress() -> bool:
            for pod in self.b.core.list_namespaced_pod(
                ns, label_selector=f"{c.LABEL_NODE_TYPE}={c.NODE_TYPE_HEAD}"
            ).items:
                if pod.status.pod_ip and pod.status.phase == "Running":
                    dashboards.serve(pod.status.pod_ip)
            jobs = self.b.custom.list_namespaced_custom_object(
                c.GROUP, c.VERSION, ns, c.JOB_PLURAL
            )["items"]
            now = time.monotonic()
            for job in jobs:
                name, st = job["metadata"]["name"], job.get("status") or {}
                if st.get("jobDeploymentStatus") in (c.DEPLOY_RUNNING, c.DEPLOY_COMPLETE):
                    running.setdefault(name, now)  # cluster ready, the job goes to Ray
                if st.get("jobDeploymentStatus") == c.DEPLOY_COMPLETE:
                    complete.setdefault(name, now)
            return len(complete) == len(names)

        try:
            wait_for(progress, cfg.timeout, interval=0.2, what="all RayJobs Complete")
            wait_for(
                lambda: not self.b.custom.list_namespaced_custom_object(
                    c.GROUP, c.VERSION, ns, c.PLURAL
                )["items"],
                cfg.timeout, interval=0.5, what="every RayJob's cluster deleted",
            )  # fmt: skip
            cleaned = time.monotonic()
            self._idle()
        finally:
            dashboards.close()
        t0 = min(applied.values())
        to_running = sorted(running[n] - applied[n] for n in names)
        to_complete = sorted(complete[n] - applied[n] for n in names)
        self.r.add(s, "RayJobs", len(names), "jobs")
        self.r.add(s, "apply to Running per job, median", to_running[len(names) // 2], "s")
        self.r.add(s, "apply to Running per job, max", to_running[-1], "s")
        self.r.add(s, "apply to Complete per job, median", to_complete[len(names) // 2], "s")
        self.r.add(s, "apply to all clusters deleted", cleaned - t0, "s")
        self.r.add(s, "Ray jobs submitted", dashboards.jobs.submits, "jobs", "must be N")
        cost, cpu = p.end()
        phase = f"{s}: apply to all Complete and cleaned up"
        self.r.add_api(phase, cost.as_json())
        self.r.add_detail(phase, {"cpu_seconds": cpu})
        self.r.add(s, "operator CPU", cpu.get("ray-operator", -1), "s")
        self.r.add(s, "operator CPU per job", cpu.get("ray-operator", -1) / len(names), "s")
        self.r.add(s, "operator API requests", cost.operator_total(), "requests")
        self.r.add(s, "operator API requests per job", cost.operator_total() / len(names),
                   "requests")  # fmt: skip
        log.info("rayjobs rep %d: Running median %.2fs, Complete median %.2fs, all cleaned "
                 "%.2fs, operator %.2fs CPU, %d API requests", rep,
                 to_running[len(names) // 2], to_complete[len(names) // 2], cleaned - t0,
                 cpu.get("ray-operator", -1), cost.operator_total())  # fmt: skip
        self.clear([ns])


SCENARIOS: dict[str, Callable[[Scenarios], None]] = {
    "ceiling": Scenarios.ceiling,
    "big": Scenarios.big,
    "recovery": Scenarios.recovery,
    "many": Scenarios.many,
    "scale": Scenarios.scale,
    "steady": Scenarios.steady,
    "memory": Scenarios.memory,
    "resync": Scenarios.resync,
    "rayjobs": Scenarios.rayjobs,
    "thousand": Scenarios.thousand,
}
OPT_IN = ("thousand",)  # run only when named in --scenarios
