"""Render the chart with `helm template` and hand the objects to tests as dicts.

    docs = render_chart(values={"watchNamespaces": ["a"]}, show_only=["templates/rbac.yaml"])

A test states the values it cares about and asserts on a few fields of the result, in
the style of Apache Airflow's chart tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "ray-operator"
TOOLS = Path(os.environ.get("RAY_OPERATOR_TOOLS", "~/.cache/ray-operator-tools")).expanduser()


class HelmError(RuntimeError):
    """`helm` exited non-zero; the message carries its stderr."""


def tool(name: str) -> str:
    """Path of a pinned tool (tool cache first, then PATH); fails loudly if missing."""
    cached = TOOLS / "bin" / name
    if cached.exists():
        return str(cached)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"{name} not found in {cached.parent} or PATH: run `make tools`")


def helm(
    *args: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 300,
    binary: str = "helm",
):  # fmt: skip
    """Run helm (`binary="helm4"`: Helm 4); return the CompletedProcess (raise HelmError
    on failure if `check`)."""
    proc = subprocess.run(
        [tool(binary), *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise HelmError(f"{binary} {' '.join(args[:2])} failed:\n{proc.stderr.strip()}")
    return proc


def render_chart(
    values: dict[str, Any] | None = None,
    show_only: Iterable[str] = (),
    name: str = "release",
    namespace: str = "ray-system",
    values_files: Iterable[Path | str] = (),
    chart: Path = CHART,
    extra_args: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """`helm template` the chart with `values` (and files) and return the non-empty
    documents, in the order Helm emits them. Raises HelmError (with helm's message) if
    rendering fails, e.g. on values the schema or a template check rejects."""
    args = ["template", name, str(chart), "--namespace", namespace]
    for path in values_files:
        args += ["--values", str(path)]
    args += list(extra_args)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="values-") as fh:
        if values:
            json.dump(values, fh)  # JSON is YAML, and keeps types exactly
            fh.flush()
            args += ["--values", fh.name]
        out = helm(*args).stdout
    wanted = {f"{chart.name}/{t}" for t in show_only}
    docs = []
    # Filter here rather than with --show-only, which fails on a template that renders
    # nothing (and "renders nothing" is a result tests assert on).
    for chunk in re.split(r"(?m)^---\s*$", out):
        source = re.search(r"(?m)^# Source: (\S+)", chunk)
        if wanted and (source is None or source[1] not in wanted):
            continue
        doc = yaml.safe_load(chunk)
        if doc:
            docs.append(doc)
    missing = {t for t in show_only if not (chart / t).exists()}
    if missing:
        raise FileNotFoundError(f"no such templates: {sorted(missing)}")
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The single object of `kind` (and `name`); fails if there is not exactly one."""
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def container_args(deployment: dict[str, Any]) -> list[str]:
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]
