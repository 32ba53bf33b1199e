"""docs/reference.md is generated from the CRD file and the constants: it must be
current, and it must state the facts the operator actually uses."""

from __future__ import annotations

import re
from pathlib import Path

from ray_operator import constants as c
from ray_operator.handlers import CHILD_WAKE_DELAY
from ray_operator.reconciler import STATUS_PACE
from ray_operator_dev.crd import docs


def test_reference_doc_is_current():
    assert docs.DOC.read_text() == docs.render(), "run: python -m ray_operator_dev.crd.docs"


def test_reference_doc_states_labels_ports_and_defaults_from_the_single_sources():
    text = docs.render()
    for name, port in c.DEFAULT_PORTS.items():
        assert f"| `{name}` | {port} |" in text
    for label in (c.LABEL_CLUSTER, c.LABEL_NODE_TYPE, c.LABEL_GROUP, c.LABEL_IDENTIFIER):
        assert f"| `{label}` |" in text
    assert f"| `maxReplicas` | integer | `{c.DEFAULT_MAX_REPLICAS}` |" in text
    assert "| `scaleStrategy` | object | `{}` |" in text
    assert "| desired workers | `.status.desiredWorkerReplicas` |  |" in text


def _seconds(value: float) -> str:
    return f"{value:g} s"


def test_design_doc_states_the_wake_delay_and_status_pace_the_code_uses():
    """docs/design.md explains both delays by their value; each phrase that states one
    must agree with the constant (a change of either must change the prose too)."""
    design = Path(__file__).resolve().parents[2] / "docs" / "design.md"
    text = " ".join(design.read_text().split())  # one line: phrases wrap anywhere
    phrases = {
        CHILD_WAKE_DELAY: (
            "A child's event queues its cluster {} later (`CHILD_WAKE_DELAY`)",
            "at the price of reacting to a pod {} later",
        ),
        STATUS_PACE: (
            "is written at most every {} (`STATUS_PACE`",
            "can lag by up to {}:",
            "written at most every {} per cluster",
        ),
    }
    for value, templates in phrases.items():
        for template in templates:
            stated = re.findall(re.escape(template).replace(r"\{\}", r"([0-9.]+ s)"), text)
            assert stated == [_seconds(value)], (template, stated)
