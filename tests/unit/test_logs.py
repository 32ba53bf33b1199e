"""The operator's log lines: JSON objects a log collector can parse, or plain text."""

from __future__ import annotations

import json
import logging

from ray_operator.logs import JsonFormatter


def test_a_json_line_carries_the_level_the_logger_and_the_message():
    record = logging.LogRecord("ray_operator.x", logging.WARNING, "f.py", 1, "a %s", ("b",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning" and entry["logger"] == "ray_operator.x"
    assert entry["message"] == "a b" and entry["time"].endswith("+00:00")


def test_an_exception_stays_inside_its_json_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, "f.py", 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exception"]
