"""Write the CustomResourceDefinitions: `crds/ray.io_rayclusters.yaml`, `crds/ray.io_rayjobs.yaml`.

    python -m ray_operator_dev.crd.generate          # (re)write the file, print its sizes
    python -m ray_operator_dev.crd.generate --check  # exit 1 if the file is stale

One source of truth: our fields in `schema.py`, the Kubernetes types they embed derived
from the pinned release's OpenAPI document by `podtemplate.py`.

Size. Client-side `kubectl apply` stores the whole object, as compact JSON, in the
annotation `kubectl.kubernetes.io/last-applied-configuration`, and all annotations of an
object together may not exceed 262,144 bytes. Upstream's CRD (full pod template with
descriptions, twice) is about 0.9 MB and cannot be applied that way. Measured for
Kubernetes v1.35.4 (the generator prints the current totals on every run):

- one derived PodTemplateSpec: 59 KB of compact JSON without descriptions, 274 KB
  with the upstream ones. It is embedded twice (head, worker group); autoscalerOptions
  adds ResourceRequirements, SecurityContext, EnvVar, ... and headService a Service;
- the whole CRD: 143 KB of compact JSON (612 KB if the Kubernetes descriptions were
  kept), 441 KB of YAML (mostly indentation, which the annotation does not store).

So the one thing trimmed is the descriptions inside the embedded Kubernetes types
(`kubectl explain pod.spec...` has them); our own fields keep theirs. Every PodSpec
field stays typed and pruned, there is no `x-kubernetes-preserve-unknown-fields`
anywhere: a misspelled field in a template is dropped by the API server (and rejected
by `kubectl`, whose field validation is Strict by default) instead of stored. The
quantity `pattern` costs 2.2 KB per template and catches `cpu: "2 cores"` at admission.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from ray_operator import constants as c
from ray_operator_dev.crd.podtemplate import KubernetesSchemas, kubernetes_version, locate_openapi
from ray_operator_dev.crd.rayjob_schema import build_rayjob_crd
from ray_operator_dev.crd.schema import LEGACY_VERSION, legacy_schema, raycluster_schema

REPO_ROOT = Path(__file__).resolve().parents[3]
OUTPUT = REPO_ROOT / "crds" / f"{c.GROUP}_{c.PLURAL}.yaml"
# Helm reads files only inside the chart, so the chart carries a byte-identical copy.
CHART_DIR = REPO_ROOT / "charts" / "ray-operator" / "files" / "crds"
CHART_COPY = CHART_DIR / OUTPUT.name
JOB_OUTPUT = REPO_ROOT / "crds" / f"{c.GROUP}_{c.JOB_PLURAL}.yaml"
VERSIONS_ENV = REPO_ROOT / "ci" / "versions.env"

ANNOTATION_LIMIT = 262_144  # bytes, all annotations of one object together
SIZE_BUDGET = 240_000  # what we allow ourselves, leaving room for other annotations

# `kubectl get rayclusters` columns (the same as upstream's).
PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "desired workers", "type": "integer", "jsonPath": ".status.desiredWorkerReplicas"},
    {"name": "available workers", "type": "integer", "jsonPath": ".status.availableWorkerReplicas"},
    {"name": "cpus", "type": "string", "jsonPath": ".status.desiredCPU"},
    {"name": "memory", "type": "string", "jsonPath": ".status.desiredMemory"},
    {"name": "gpus", "type": "string", "jsonPath": ".status.desiredGPU"},
    {"name": "tpus", "type": "string", "jsonPath": ".status.desiredTPU", "priority": 1},
    {"name": "status", "type": "string", "jsonPath": ".status.state"},
    {"name": "age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "head pod IP", "type": "string", "jsonPath": ".status.head.podIP", "priority": 1},
    {
        "name": "head service IP",
        "type": "string",
        "jsonPath": ".status.head.serviceIP",
        "priority": 1,
    },
]


def load_kubernetes_schemas(openapi: Path | None = None) -> KubernetesSchemas:
    """The core schemas of the pinned release (or of the given OpenAPI file)."""
    path = openapi or locate_openapi(kubernetes_version(VERSIONS_ENV))
    return KubernetesSchemas.from_file(path)


def build_crd(k8s: KubernetesSchemas) -> dict[str, Any]:
    v1 = raycluster_schema(k8s)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": c.CRD_NAME},
        "spec": {
            "group": c.GROUP,
            "names": {
                "kind": c.KIND,
                "listKind": f"{c.KIND}List",
                "plural": c.PLURAL,
                "singular": c.SINGULAR,
                "categories": ["all"],
            },
            "scope": "Namespaced",
            # v1 is stored; v1alpha1 is served too (as KubeRay serves it) so older
            # manifests apply. No conversion: the two differ only in name.
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": v1},
                    "subresources": {"status": {}},
                },
                {
                    "name": LEGACY_VERSION,
                    "served": True,
                    "storage": False,
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": legacy_schema(v1)},
                    "subresources": {"status": {}},
                },
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no anchors or aliases for repeated sub-schemas."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(crd: dict[str, Any]) -> str:
    header = (
        "# Generated by `python -m ray_operator_dev.crd.generate` from "
        "devtools/ray_operator_dev/crd/\n"
        "# and the Kubernetes OpenAPI document of the release pinned in ci/versions.env. "
        "Do not edit.\n"
    )
    body = yaml.dump(crd, Dumper=_Dumper, sort_keys=False, width=1_000_000, allow_unicode=True)
    return header + "---\n" + body


def compact_json(obj: Any) -> str:
    """The object as kubectl writes it into last-applied-configuration (Go's encoding)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def sizes(crd: dict[str, Any], text: str) -> dict[str, int]:
    return {
        "yaml_bytes": len(text.encode()),
        "compact_json_bytes": len(compact_json(crd).encode()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ray_operator_dev.crd.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    parser.add_argument("--openapi", type=Path, help="Kubernetes api__v1_openapi.json to use")
    args = parser.parse_args(argv)

    k8s = load_kubernetes_schemas(args.openapi)
    if args.output != OUTPUT:  # one CRD to a file of the caller's choice
        return _write(build_crd(k8s), [args.output], args.check)
    status = 0
    for crd, output in ((build_crd(k8s), OUTPUT), (build_rayjob_crd(k8s), JOB_OUTPUT)):
        status |= _write(crd, [output, CHART_DIR / output.name], args.check)
    return status


def _write(crd: dict[str, Any], targets: list[Path], check: bool) -> int:
    text = render(crd)
    measured = sizes(crd, text)
    print(
        f"{targets[0].name}: {measured['yaml_bytes']:,} bytes of YAML, "
        f"{measured['compact_json_bytes']:,} bytes of compact JSON "
        f"(budget {SIZE_BUDGET:,}; annotation limit {ANNOTATION_LIMIT:,})",
        file=sys.stderr,
    )
    if measured["compact_json_bytes"] > SIZE_BUDGET:
        print("error: the CRD is over the size budget", file=sys.stderr)
        return 1
    status = 0
    for target in targets:
        current = target.read_text() if target.exists() else ""
        if current == text:
            continue
        if check:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), "on disk", "generated", lineterm="", n=1
            )
            print("\n".join(list(diff)[:40]), file=sys.stderr)
            print(f"error: {target} is stale: run make crds", file=sys.stderr)
            status = 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {target}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
