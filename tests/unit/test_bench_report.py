"""The benchmark's pure parts: side-by-side rows, alternation, the API server's byte
metrics, the FlowSchema names, the sizes of the opt-in scenario, and the machine CPU
sampler (no control plane)."""

import time

import pytest

from bench.__main__ import _alternated, make_config, parse_args
from bench.apimetrics import Snapshot, flow_schemas
from bench.env import nodes_for
from bench.machinecpu import MachineCpu
from bench.report import compare_rows
from bench.scenarios import Config


def test_runs_alternate_so_each_operator_goes_first_as_often():
    assert _alternated(3, ["ours", "peer"]) == ["ours", "peer", "peer", "ours", "ours", "peer"]


def test_rows_show_every_figure_of_either_operator_with_its_own_count():
    figures = {
        "ours": [{"scenario": "3", "figure": "x", "unit": "s", "samples": [1.0, 3.0, 2.0]}],
        "peer": [
            {"scenario": "3", "figure": "x", "unit": "s", "samples": [5.0]},
            {"scenario": "3", "figure": "y", "unit": "s", "samples": [7.0]},
        ],
    }
    assert compare_rows(figures) == [
        ("3", "x", "2 [1-3]", "5", "s", "3/1"),
        ("3", "y", "-", "7", "s", "0/1"),
    ]


def test_bytes_sent_are_read_per_resource_and_diffed():
    def text(pods: int, watch: int) -> str:
        return (
            'apiserver_response_sizes_sum{component="apiserver",group="",resource="pods",'
            f'scope="namespace",subresource="",verb="LIST",version="v1"}} {pods}\n'
            'apiserver_watch_events_sizes_sum{group="",resource="pods",version="v1"} '
            f"{watch}\n"
        )

    cost = Snapshot.parse(text(300, 50)) - Snapshot.parse(text(100, 10))
    assert cost.bytes_sent() == {"response pods": 200, "watch pods": 40}
    assert cost.bytes_total() == 240


def test_flow_schema_names_are_unique():
    names = [s["metadata"]["name"] for s in flow_schemas()]
    assert len(names) == len(set(names))


def test_thousand_runs_only_when_named_and_sizes_the_kwok_nodes():
    assert "thousand" not in parse_args([]).scenarios.split(",")
    args = parse_args(["--scenarios", "thousand", "--thousand-clusters", "60",
                       "--thousand-namespaces", "6"])  # fmt: skip
    cfg = make_config(args)
    assert (cfg.thousand_clusters, cfg.thousand_namespaces, cfg.thousand_workers) == (60, 6, 3)
    assert Config().peak_pods(["thousand"]) == 4000  # 1,000 x (1 head + 3 workers)
    assert nodes_for(Config().peak_pods(["thousand"]), 250) == 18  # + 10 % headroom


def test_machine_cpu_interpolates_between_samples_and_clamps_outside_them():
    samples = [(10.0, 100.0), (10.1, 100.2), (10.2, 100.2)]
    assert MachineCpu._at(samples, 10.05) == pytest.approx(100.1)
    assert MachineCpu._at(samples, 10.15) == pytest.approx(100.2)  # cores idle meanwhile
    assert MachineCpu._at(samples, 9.0) == 100.0  # before the first sample
    assert MachineCpu._at(samples, 11.0) == 100.2  # after the last


def test_machine_cpu_counts_the_cpu_this_process_burns():
    machine = MachineCpu()
    try:
        t0, cpu0 = time.monotonic(), time.process_time()
        while time.process_time() - cpu0 < 0.3:  # a busy loop of 0.3 s of CPU
            pass
        t1 = time.monotonic()
        # /proc/stat ticks are 10 ms; other processes only add to it
        assert machine.busy(t0, t1) >= 0.25
        assert machine.busy(t0, t1) <= (t1 - t0) * machine.cores + 0.05
    finally:
        machine.stop()
