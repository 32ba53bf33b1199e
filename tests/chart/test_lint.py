"""Linters and documentation: helm lint --strict, ct lint, values documented in step."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from ray_operator_dev.toolcache import pinned
from tests.chart import values_doc
from tests.chart.render import CHART, REPO, helm, render_chart

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))


@pytest.mark.parametrize(
    "values_file", [None, *CI_VALUES, CHART / "examples" / "heterogeneous-values.yaml"],
    ids=lambda p: p.name if p else "defaults",
)  # fmt: skip
def test_helm_lint_strict(values_file) -> None:
    args = ["lint", "--strict", str(CHART)]
    if values_file:
        args += ["--values", str(values_file)]
    proc = helm(*args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


@pytest.mark.parametrize(
    "values_file", [None, *CI_VALUES, CHART / "examples" / "heterogeneous-values.yaml"],
    ids=lambda p: p.name if p else "defaults",
)  # fmt: skip
def test_helm4_lint_strict_and_template_match_helm3(values_file) -> None:
    """Helm 4 lints the chart as cleanly and renders exactly the same manifests."""
    args = ["--values", str(values_file)] if values_file else []
    proc = helm("lint", "--strict", str(CHART), *args, check=False, binary="helm4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout
    template = ["template", "r", str(CHART), "--namespace", "ops", *args]

    def docs(binary: str) -> list:
        return [d for d in yaml.safe_load_all(helm(*template, binary=binary).stdout) if d]

    assert docs("helm4") == docs("helm")


def test_both_helms_report_the_pinned_kubernetes_version(tmp_path) -> None:
    """What charts see as .Capabilities.KubeVersion without a cluster (helm template,
    lint): the pinned version, for both builds."""
    chart = tmp_path / "kv"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: kv\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kv}\n"
        "data: {minor: {{ .Capabilities.KubeVersion.Minor | quote }}}\n"
    )
    minor = pinned("KUBERNETES_VERSION").split(".")[1]
    for binary in ("helm", "helm4"):
        out = yaml.safe_load(helm("template", "kv", str(chart), binary=binary).stdout)
        assert out["data"]["minor"] == minor, binary


def test_ct_lint() -> None:
    proc = subprocess.run(
        ["bash", str(REPO / "ci" / "ct-lint.sh")], capture_output=True, text=True, timeout=300,
        cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "All charts linted successfully" in proc.stdout


def test_every_value_is_documented() -> None:
    rows, problems = values_doc.analyse()
    assert not problems, "\n".join(problems)
    assert len(rows) > 50


def test_readme_values_table_is_generated_from_values() -> None:
    readme = (CHART / "README.md").read_text()
    wanted = values_doc.readme_with_table(readme, values_doc.table())
    assert readme == wanted, "chart README is stale: run python -m tests.chart.values_doc --write"


def test_schema_covers_exactly_the_values_keys() -> None:
    """Every key of values.yaml is in the schema (else the chart rejects its own
    defaults) and every schema property of a fixed section exists in values.yaml."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    def walk(value: dict, node: dict, path: str) -> None:
        node = resolve(node)
        props = node.get("properties")
        if props is None:
            return  # a free-form map (labels, resources, ...)
        assert node.get("additionalProperties") is False, f"{path or '/'} accepts unknown keys"
        assert set(value) <= set(props), f"{path}: {set(value) - set(props)} not in schema"
        for key, child in value.items():
            if isinstance(child, dict):
                walk(child, props[key], f"{path}.{key}")

    walk(values, schema, "")
    documented = set(schema["properties"]) - {"global"}
    assert documented == set(values), "top-level schema keys and values.yaml differ"


def test_head_and_worker_groups_accept_every_shared_group_setting() -> None:
    defs = json.loads((CHART / "values.schema.json").read_text())["$defs"]
    shared = set(defs["groupSettings"]["properties"])
    assert shared <= set(defs["head"]["properties"])
    assert shared <= set(defs["workerGroup"]["properties"])
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["rayClusterDefaults"]["group"]) == shared


def test_readme_describes_every_raycluster_field() -> None:
    defs = json.loads((CHART / "values.schema.json").read_text())["$defs"]
    readme = (CHART / "README.md").read_text()
    fields = (
        set(defs["rayCluster"]["properties"]) | set(defs["head"]["properties"])
        | set(defs["workerGroup"]["properties"]) | set(defs["autoscalerOptions"]["properties"])
    )  # fmt: skip
    missing = sorted(f for f in fields if f"`{f}`" not in readme)
    assert not missing, f"chart README does not describe {missing}"


def test_packaged_chart_carries_the_crds(tmp_path) -> None:
    """`helm package` keeps files/crds/ (real files, not links out of the chart), so an
    installed .tgz templates the same CRD."""
    helm("package", str(CHART), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("ray-operator-*.tgz")
    docs = render_chart(chart=package)
    kinds = [d["kind"] for d in docs]
    assert "CustomResourceDefinition" in kinds


def test_example_header_installs_first_then_adds_the_clusters_with_a_namespace() -> None:
    """The example's header commands work on a fresh cluster: the CRD comes with a
    first install, the clusters with an upgrade; both name the namespace."""
    header = (CHART / "examples" / "heterogeneous-values.yaml").read_text().split("\n\n")[0]
    commands = [line.lstrip("# ").strip() for line in header.splitlines()
                if line.lstrip("# ").startswith("helm ")]  # fmt: skip
    assert [c.split()[1] for c in commands] == ["install", "upgrade"]
    for command in commands:
        assert " -n ray-system" in command
    assert "-f charts/ray-operator/examples/heterogeneous-values.yaml" in commands[1]
    assert "--reset-then-reuse-values" in commands[1]
