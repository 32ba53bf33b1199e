"""docs/reference.md is generated from the CRD file and the constants: it must be
current, and it must state the facts the operator actually uses."""

from __future__ import annotations

from ray_operator import constants as c
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
