"""The benchmark's pure parts: side-by-side rows, alternation, the API server's byte
metrics and the FlowSchema names (no control plane)."""

from bench.__main__ import _alternated
from bench.apimetrics import Snapshot, flow_schemas
from bench.report import compare_rows


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
