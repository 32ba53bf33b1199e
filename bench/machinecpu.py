"""How busy the whole machine's cores were between two moments.

On 2 cores every process of a run (control plane, operator, harness, load client)
competes for the same CPU, so a creation that keeps every core busy is bound by the CPU
it needs per pod, not by anyone's latency. A thread samples the busy time of all cores
(/proc/stat) every 50 ms; `busy(t0, t1)` interpolates between samples, so a window can
start at a moment read later (the load client's own start time) without counting what
came before it (that client's process start-up).
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import deque
from pathlib import Path

from .env import CLK_TCK

INTERVAL = 0.05  # seconds between samples
KEPT = 24_000  # samples: 20 minutes, longer than any one phase


def busy_core_seconds() -> float:
    """Busy time of all cores since boot: /proc/stat's first line minus idle and iowait
    (guest time is already inside user and nice)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class MachineCpu:
    def __init__(self) -> None:
        self.cores = os.cpu_count() or 1
        self._samples: deque[tuple[float, float]] = deque(maxlen=KEPT)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="machine-cpu", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        # Read under the lock: two threads sampling at once still append in time order.
        with self._lock:
            self._samples.append((time.monotonic(), busy_core_seconds()))

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._sample()

    def stop(self) -> None:
        self._stop.set()

    def busy(self, t0: float, t1: float) -> float:
        """Core-seconds all processes used between two time.monotonic() moments, the
        later one no later than now."""
        self._sample()
        with self._lock:
            samples = list(self._samples)
        return self._at(samples, t1) - self._at(samples, t0)

    @staticmethod
    def _at(samples: list[tuple[float, float]], t: float) -> float:
        i = bisect.bisect_left(samples, (t, float("-inf")))
        if i == 0:
            return samples[0][1]
        if i == len(samples):
            return samples[-1][1]
        (ta, a), (tb, b) = samples[i - 1], samples[i]
        return a + (b - a) * (t - ta) / (tb - ta) if tb > ta else b
