"""docs/conformance.md stays true to the CRD: every field of our CRD is listed, every
field listed as served (or served differently) exists in it, and every row says one
of the three verdicts."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.conftest import REPO

DOC = REPO / "docs" / "conformance.md"
CRD_FILE = REPO / "crds" / "ray.io_rayclusters.yaml"
VERDICTS = {"served", "served differently", "not served"}
# Kubernetes types embedded whole: listed once, at the field that embeds them.
EMBEDDED = {
    "template", "headService", "securityContext", "env", "envFrom", "volumeMounts",
    "valueFrom", "conditions", "command", "args",
}  # fmt: skip
ROW = re.compile(r"^\| `([^`]+)` \| (yes|no) \| (yes|no) \| ([a-z ]+) \| (.*) \|$")


def crd_fields() -> set[str]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    v1 = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    root = v1["schema"]["openAPIV3Schema"]["properties"]
    out: set[str] = set()

    def walk(node: dict[str, Any], path: str) -> None:
        for name, sub in (node.get("properties") or {}).items():
            field = f"{path}.{name}"
            out.add(field)
            if name in EMBEDDED or (name == "resources" and "properties" in sub):
                continue  # ResourceRequirements; Ray's `resources` maps have no properties
            items = sub.get("items") or {}
            if sub.get("type") == "array" and "properties" in items:
                walk(items, f"{field}[]")
            elif "properties" in sub:
                walk(sub, field)

    walk(root["spec"], "spec")
    walk(root["status"], "status")
    return out


def rows() -> dict[str, tuple[str, str, str, str]]:
    found: dict[str, tuple[str, str, str, str]] = {}
    for line in DOC.read_text().splitlines():
        if line.startswith("## RayJob"):
            break  # the RayJob section has its own, shorter table
        if not line.startswith("| `"):
            continue
        match = ROW.match(line)
        assert match, f"malformed row: {line}"
        field, v161, master, verdict, notes = match.groups()
        assert field not in found, f"{field} listed twice"
        assert verdict in VERDICTS, f"{field}: {verdict!r}"
        if verdict != "served":
            assert notes.strip(), f"{field}: say why it is {verdict}"
        found[field] = (v161, master, verdict, notes)
    return found


def test_every_crd_field_is_listed() -> None:
    missing = crd_fields() - set(rows())
    assert not missing, f"add to docs/conformance.md: {sorted(missing)}"


def test_every_served_field_exists_in_the_crd() -> None:
    fields = crd_fields()
    claimed = {f for f, (_, _, verdict, _) in rows().items() if verdict != "not served"}
    assert not claimed - fields, f"listed as served but not in the CRD: {claimed - fields}"


def test_fields_absent_from_the_crd_are_not_served() -> None:
    fields = crd_fields()
    for field, (_, _, verdict, notes) in rows().items():
        if field not in fields:
            assert verdict == "not served" and "Not in the CRD" in notes, field


def test_kuberay_161_fields_are_all_served_in_some_way() -> None:
    """The target: nothing of v1.6.1 is silently missing from the CRD."""
    fields = crd_fields()
    for field, (v161, _, _, _) in rows().items():
        if v161 == "yes":
            assert field in fields, f"KubeRay v1.6.1 field {field} missing from the CRD"
