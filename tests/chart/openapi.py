"""Validate rendered objects against the schemas of the pinned Kubernetes version, as
Apache Airflow's chart tests do, without a cluster: built-in kinds against the OpenAPI
v3 documents that `k8s.io/kubernetes` ships (found through `ray_operator_dev.crd`'s module
lookup), custom resources against their CRDs' `openAPIV3Schema`.

Strict, like the API server's `fieldValidation=Strict`: an object schema with
properties and no `additionalProperties` rejects any other field, so a misspelt or
misplaced key in a template fails here.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

from ray_operator_dev import toolcache
from ray_operator_dev.crd.podtemplate import OPENAPI_FILE, kubernetes_version, locate_openapi

REPO = Path(__file__).resolve().parents[2]


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        open_ = "additionalProperties" in node or node.get("x-kubernetes-preserve-unknown-fields")
        if node.get("properties") and not open_:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@functools.cache
def _openapi_dir() -> Path:
    api_v1 = locate_openapi(kubernetes_version(REPO / "ci" / "versions.env"))
    return api_v1.parent if api_v1.name == Path(OPENAPI_FILE).name else api_v1


@functools.cache
def _document(group: str, version: str) -> dict[str, Any]:
    name = f"api__{version}_openapi.json" if not group else f"apis__{group}__{version}_openapi.json"
    return _strict(json.loads((_openapi_dir() / name).read_text()))


def _validator(group: str, version: str, name: str) -> jsonschema.protocols.Validator:
    uri = f"urn:k8s:{group or 'core'}:{version}"
    registry = Registry().with_resource(uri, Resource.opaque(_document(group, version)))
    schema = {"$ref": f"{uri}#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _builtin_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    group, _, version = api_version.rpartition("/")
    schemas = _document(group, version)["components"]["schemas"]
    name = next(
        (
            key
            for key, schema in schemas.items()
            if {"group": group, "version": version, "kind": kind}
            in schema.get("x-kubernetes-group-version-kind", [])
        ),
        None,
    )
    if name is None:
        raise KeyError(f"no schema for {api_version} {kind} in Kubernetes' OpenAPI")
    return _validator(group, version, name)


@functools.cache
def _object_meta() -> jsonschema.protocols.Validator:
    return _validator("", "v1", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")


def _crd_validators(paths: Iterable[Path]) -> dict[tuple[str, str], Any]:
    found = {}
    for path in paths:
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                # The API server checks a custom resource's metadata as ObjectMeta.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                found[(f"{group}/{version['name']}", kind)] = jsonschema.Draft202012Validator(
                    _strict(schema)
                )
    return found


@functools.cache
def _custom_validators() -> dict[tuple[str, str], Any]:
    return _crd_validators(sorted((REPO / "crds").glob("*.yaml")) + toolcache.prometheus_crds())


def errors(obj: dict[str, Any]) -> list[str]:
    """What is wrong with one object, each with the path of the offending field."""
    key = (obj["apiVersion"], obj["kind"])
    where = f"{obj['kind']} {obj.get('metadata', {}).get('name')}"
    found = []
    if custom := _custom_validators().get(key):
        object_meta = _object_meta().iter_errors(obj.get("metadata", {}))
        found += [("metadata", e) for e in object_meta]
        found += [("", e) for e in custom.iter_errors(obj)]
    else:
        found += [("", e) for e in _builtin_validator(*key).iter_errors(obj)]
    return [f"{where}: {_path(prefix, e)}: {e.message}" for prefix, e in found]


def _path(prefix: str, error: jsonschema.ValidationError) -> str:
    parts = ([prefix] if prefix else []) + [str(p) for p in error.absolute_path]
    return ".".join(parts) or "(root)"
