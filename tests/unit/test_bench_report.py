"""The benchmark's pure parts: side-by-side rows, alternation, the API server's byte
metrics, the FlowSchema names, and the sizes of the opt-in scenario (no control plane)."""

from bench.__main__ import _alternated, make_config, parse_args
from bench.apimetrics import Snapshot, flow_schemas
from bench.env import nodes_for
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
