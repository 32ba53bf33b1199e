"""Lists of whole objects decoded item by item (kube.list_fields)."""

from __future__ import annotations

import json

import pytest

from ray_operator.kube import _lazy_page, list_fields


def test_every_field_and_each_item_come_in_order():
    body = {
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "42", "continue": "abc"},
        "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b", "x": [1, {"y": "]"}]}}],
    }
    for text in (
        json.dumps(body),
        json.dumps(body, indent=2),
        json.dumps(body, separators=(",", ":")),
    ):
        assert list(list_fields(text)) == [
            ("kind", "PodList"),
            ("apiVersion", "v1"),
            ("metadata", body["metadata"]),
            ("item", body["items"][0]),
            ("item", body["items"][1]),
        ]


def test_empty_and_null_items():
    assert list(list_fields('{"metadata": {}, "items": []}')) == [("metadata", {})]
    assert list(list_fields('{"items": null}')) == [("items", None)]
    assert list(list_fields("{}")) == []


def test_the_page_metadata_is_complete_once_its_items_are_read_wherever_it_stands():
    page = _lazy_page('{"items": [{"n": 1}], "metadata": {"resourceVersion": "7"}}')
    assert list(page["items"]) == [{"n": 1}] and page["metadata"] == {"resourceVersion": "7"}


def test_a_malformed_response_raises():
    with pytest.raises(ValueError):
        list(list_fields('{"items": [1] "metadata": {}}'))
    with pytest.raises(ValueError):
        list(list_fields("[]"))
    with pytest.raises(ValueError):
        list(list_fields('{"items": [{"a": 1} {"b": 2}]}'))  # a missing comma
