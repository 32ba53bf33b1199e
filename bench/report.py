"""Figures (min/median/max over repeats), machine info, versions, the table and the
JSON file."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ray_operator_dev.toolcache import pinned_versions

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("ray-operator", "kubernetes", "urllib3", "prometheus-client")


@dataclass
class Figure:
    scenario: str
    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    note: str = ""

    def summary(self) -> dict[str, Any]:
        s = self.samples
        return {
            "scenario": self.scenario,
            "figure": self.name,
            "unit": self.unit,
            "min": min(s) if s else None,
            "median": statistics.median(s) if s else None,
            "max": max(s) if s else None,
            "samples": s,
            "note": self.note,
        }


@dataclass
class Results:
    figures: dict[tuple[str, str], Figure] = field(default_factory=dict)
    api: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    details: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, scenario: str, name: str, value: float, unit: str, note: str = "") -> None:
        fig = self.figures.setdefault((scenario, name), Figure(scenario, name, unit, note=note))
        fig.samples.append(round(float(value), 3))

    def median(self, scenario: str, name: str) -> float | None:
        fig = self.figures.get((scenario, name))
        return statistics.median(fig.samples) if fig and fig.samples else None

    def add_api(self, phase: str, cost: dict[str, Any]) -> None:
        self.api.setdefault(phase, []).append(cost)

    def add_detail(self, phase: str, detail: dict[str, Any]) -> None:
        self.details.setdefault(phase, []).append(detail)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if value == int(value) and abs(value) >= 1:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(results: Results) -> str:
    rows = [("scenario", "figure", "min", "median", "max", "unit", "n")]
    for fig in results.figures.values():
        s = fig.summary()
        rows.append(
            (
                fig.scenario,
                fig.name,
                _fmt(s["min"]),
                _fmt(s["median"]),
                _fmt(s["max"]),
                fig.unit,
                str(len(fig.samples)),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = [
            cell.ljust(widths[j]) if j in (0, 1, 5) else cell.rjust(widths[j])
            for j, cell in enumerate(row)
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(samples: list[float]) -> str:
    if not samples:
        return "-"
    if len(samples) == 1:
        return _fmt(samples[0])
    return f"{_fmt(statistics.median(samples))} [{_fmt(min(samples))}-{_fmt(max(samples))}]"


def compare_rows(figures: dict[str, list[dict[str, Any]]]) -> list[tuple[str, ...]]:
    """(scenario, figure, one cell per operator, unit, n per operator) for every figure
    any operator has, in first-seen order; a cell is `median [min-max]`."""
    names = list(figures)
    order: dict[tuple[str, str], str] = {}
    by: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for name in names:
        by[name] = {}
        for fig in figures[name]:
            key = (fig["scenario"], fig["figure"])
            order.setdefault(key, fig["unit"])
            by[name][key] = fig
    rows = []
    for (scenario, figure), unit in order.items():
        cells = [_cell(by[n].get((scenario, figure), {}).get("samples", [])) for n in names]
        counts = "/".join(
            str(len(by[n].get((scenario, figure), {}).get("samples", []))) for n in names
        )
        rows.append((scenario, figure, *cells, unit, counts))
    return rows


def compare_table(results: dict[str, Results]) -> str:
    """Every figure of every operator side by side: median [min-max], n."""
    figures = {n: [f.summary() for f in r.figures.values()] for n, r in results.items()}
    rows = [("scenario", "figure", *results, "unit", "n"), *compare_rows(figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    text = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    text.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(text)


def api_table(results: Results) -> str:
    """Per phase: the operator's requests by verb and resource (median over repeats)."""
    lines = ["| phase | operator requests (median per repeat, from its FlowSchemas) |", "|---|---|"]
    for phase, costs in results.api.items():
        keys = sorted({k for cost in costs for k in cost["operator"]})
        medians = {k: statistics.median(cost["operator"].get(k, 0) for cost in costs) for k in keys}
        parts = [f"{k} {_fmt(n)}" for k, n in medians.items() if n]
        total = _fmt(statistics.median(cost["operator_total"] for cost in costs))
        lines.append(f"| {phase} | total {total}: {', '.join(parts) or 'none'} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def versions() -> dict[str, Any]:
    pinned = pinned_versions()
    python = {}
    for name in PACKAGES:
        try:
            python[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            python[name] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", "operator"],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {"tools": pinned, "python_packages": python, "git_commit": commit,
            "operator_tree_modified": dirty}  # fmt: skip


def write_json(path: Path, results: Results, meta: dict[str, Any]) -> None:
    body = {
        **meta,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "figures": [f.summary() for f in results.figures.values()],
        "api_cost": results.api,
        "details": results.details,
    }
    path.write_text(json.dumps(body, indent=2) + "\n")


def write_json_peers(path: Path, results: dict[str, Results], meta: dict[str, Any]) -> None:
    """A run of `--peer`: the same as write_json, once per operator."""
    body = {
        **meta,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "operators": {
            name: {
                "figures": [f.summary() for f in r.figures.values()],
                "api_cost": r.api,
                "details": r.details,
            }
            for name, r in results.items()
        },
    }
    path.write_text(json.dumps(body, indent=2) + "\n")


def _median_api(costs: list[dict[str, Any]]) -> str:
    keys = sorted({k for cost in costs for k in cost["operator"]})
    medians = {k: statistics.median(cost["operator"].get(k, 0) for cost in costs) for k in keys}
    parts = ", ".join(f"{k} {_fmt(n)}" for k, n in medians.items() if n)
    total = _fmt(statistics.median(cost["operator_total"] for cost in costs))
    return f"{total}{': ' + parts if parts else ''}"


def markdown_peers(body: dict[str, Any]) -> str:
    """A `--peer` results file: figures side by side, then each operator's requests."""
    ops = body["operators"]
    names = list(ops)
    lines = [
        f"Command: `{body['command']}` (started {body['started']}, "
        f"{body.get('wall_seconds', 0) / 60:.0f} min); runs in this order: "
        + ", ".join(r["operator"] for r in body.get("runs", [])),
        "",
        "| scenario | figure | " + " | ".join(names) + " | unit | n |",
        "|---|---|" + "---:|" * len(names) + "---|---|",
    ]
    for row in compare_rows({n: ops[n]["figures"] for n in names}):
        lines.append("| " + " | ".join(row) + " |")
    for name in names:
        lines += ["", f"API requests of {name} per phase (median over runs):", ""]
        lines += ["| phase | requests |", "|---|---|"]
        for phase, costs in ops[name]["api_cost"].items():
            lines.append(f"| {phase} | {_median_api(costs)} |")
    return "\n".join(lines) + "\n"


def markdown(body: dict[str, Any]) -> str:
    """A results JSON file as Markdown tables (the figures part of bench/RESULTS.md)."""
    if "operators" in body:
        return markdown_peers(body)
    m0, m1 = body["machine_at_start"], body.get("machine_at_end", {})
    v = body["versions"]
    load0 = " ".join(f"{x:.2f}" for x in m0["load_average"])
    load1 = " ".join(f"{x:.2f}" for x in m1.get("load_average", []))
    lines = [
        f"Command: `{body['command']}` (started {body['started']}, "
        f"{body.get('wall_seconds', 0) / 60:.0f} min)",
        "",
        f"Machine: {m0['cpu_model']}, {m0['cpus']} CPUs, {m0['memory_gib']} GiB, "
        f"Linux {m0['kernel']}, Python {m0['python']}; load average (1/5/15 min) "
        f"{load0} at start, {load1} at end.",
        "",
        "Versions: "
        + ", ".join(f"{k} {val}" for k, val in v["tools"].items())
        + "; "
        + ", ".join(f"{k} {val}" for k, val in v["python_packages"].items())
        + f"; commit {v['git_commit'][:12]}"
        + (" (operator/ modified)" if v.get("operator_tree_modified") else ""),
        "",
        f"kwok nodes: {body['kwok_nodes']['nodes']} x {body['kwok_nodes']['pods_per_node']} pods.",
        "",
        "| scenario | figure | min | median | max | unit | n |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for fig in body["figures"]:
        note = f" ({fig['note']})" if fig.get("note") else ""
        lines.append(
            f"| {fig['scenario']} | {fig['figure']}{note} | {_fmt(fig['min'])} | "
            f"{_fmt(fig['median'])} | {_fmt(fig['max'])} | {fig['unit']} | "
            f"{len(fig['samples'])} |"
        )
    lines += [
        "",
        "API requests of the operator per phase (median over repeats; from its "
        "FlowSchemas in the API server's /metrics):",
        "",
        "| phase | requests |",
        "|---|---|",
    ]
    for phase, costs in body["api_cost"].items():
        keys = sorted({k for cost in costs for k in cost["operator"]})
        medians = {k: statistics.median(cost["operator"].get(k, 0) for cost in costs) for k in keys}
        parts = ", ".join(f"{k} {_fmt(n)}" for k, n in medians.items() if n)
        total = _fmt(statistics.median(cost["operator_total"] for cost in costs))
        lines.append(f"| {phase} | {total}{': ' + parts if parts else ''} |")
    lines += ["", "CPU seconds per process and phase (median over repeats):", ""]
    lines += ["| phase | CPU seconds |", "|---|---|"]
    for phase, details in body["details"].items():
        cpus = [d["cpu_seconds"] for d in details if "cpu_seconds" in d]
        if not cpus:
            continue
        keys = sorted({k for cpu in cpus for k in cpu})
        parts = ", ".join(
            f"{k} {statistics.median(cpu.get(k, 0) for cpu in cpus):.2f}" for k in keys
        )
        lines.append(f"| {phase} | {parts} |")
    return "\n".join(lines) + "\n"
