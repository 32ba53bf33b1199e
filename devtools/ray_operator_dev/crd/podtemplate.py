"""Kubernetes core schemas (PodTemplateSpec and friends) derived from the pinned release.

Nothing here is typed by hand: the schemas come from the OpenAPI v3 document that the
pinned `k8s.io/kubernetes` module ships (`api/openapi-spec/v3/api__v1_openapi.json`),
located through the Go module cache (downloaded with `go mod download` when missing).
The version is `KUBERNETES_VERSION` in `ci/versions.env`.

A CRD only accepts *structural* schemas, so every definition is converted:

- `$ref` and single-element `allOf` wrappers are resolved and inlined (the core types
  have no cycles; a cycle would be reported, not looped on);
- `IntOrString` becomes `x-kubernetes-int-or-string: true`; `Quantity` too, plus the
  quantity grammar as a `pattern` (strings only) so `cpu: "2 cores"` fails at admission
  instead of when the operator creates the pod;
- `Time` becomes a `date-time` string;
- `ObjectMeta` (a template's `metadata`, an ephemeral volume's claim template) becomes a
  small object of `name`, `namespace`, `generateName`, `labels`, `annotations`: a CRD
  cannot embed the full ObjectMeta, and the API server ignores the rest in a template;
- `default`s are dropped, so the API server never injects core defaults into a stored
  RayCluster, except on a `x-kubernetes-list-map-keys` key that is not required (a CRD
  must have one of the two; today `protocol: TCP` of ports, `name: ""` of imagePullSecrets);
- kept: `type`, `format` (the formats a CRD knows), `required`, `items`, `properties`,
  `additionalProperties`, `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
  `x-kubernetes-map-type`; dropped: descriptions (size: see `generate.py`) and the keys
  a CRD rejects (`x-kubernetes-patch-*`, `x-kubernetes-unions`, `discriminator`, ...).
  Any key not listed in this module fails the conversion, so a new Kubernetes release
  that adds one is noticed rather than silently mistranslated.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

KUBERNETES_MODULE = "k8s.io/kubernetes"
OPENAPI_FILE = "api/openapi-spec/v3/api__v1_openapi.json"

CORE = "io.k8s.api.core.v1."
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
POD_TEMPLATE_SPEC = CORE + "PodTemplateSpec"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
OBJECT_META = META + "ObjectMeta"
TIME = META + "Time"
MICRO_TIME = META + "MicroTime"

# The Quantity grammar of k8s.io/apimachinery (signed decimal number, then a binary SI
# suffix, a decimal SI suffix or an exponent), as a regular expression.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

# Formats a CRD schema understands; others (e.g. "int-or-string") carry no meaning there.
CRD_FORMATS = frozenset({"int32", "int64", "float", "double", "byte", "date", "date-time"})

# Keys copied as they are, in this order (the order of the generated file).
_KEPT = ("type", "format", "required")
_KEPT_EXTENSIONS = ("x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type")
# Keys dropped on purpose. Anything else is an error.
_DROPPED = frozenset(
    {
        "description",
        "default",
        "x-kubernetes-patch-strategy",
        "x-kubernetes-patch-merge-key",
        "x-kubernetes-unions",
        "x-kubernetes-group-version-kind",
        "discriminator",
    }
)
_HANDLED = frozenset({"properties", "items", "additionalProperties", "allOf", "$ref"})


class SchemaConversionError(RuntimeError):
    """The Kubernetes OpenAPI document has something this module cannot translate."""


def small_object_meta() -> Schema:
    """The part of ObjectMeta that a template inside a CRD may carry."""
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "type": "object",
        "properties": {
            "annotations": copy.deepcopy(string_map),
            "generateName": {"type": "string"},
            "labels": copy.deepcopy(string_map),
            "name": {"type": "string"},
            "namespace": {"type": "string"},
        },
    }


@dataclass
class KubernetesSchemas:
    """Converted core schemas, by OpenAPI definition name (e.g. `io.k8s.api.core.v1.EnvVar`).

    `get()` returns a fresh deep copy each time, so callers may decorate the result.
    """

    definitions: Mapping[str, Any]
    quantity_pattern: bool = True
    _cache: dict[str, Schema] = field(default_factory=dict, repr=False)
    _stack: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def from_file(cls, path: Path, **options: Any) -> KubernetesSchemas:
        document = json.loads(path.read_text())
        return cls(document["components"]["schemas"], **options)

    def get(self, name: str) -> Schema:
        return copy.deepcopy(self._definition(name))

    def core(self, kind: str) -> Schema:
        """Shorthand for `get("io.k8s.api.core.v1." + kind)`."""
        return self.get(CORE + kind)

    def container_field(self, name: str) -> Schema:
        """The schema of one field of a Container (list types and all)."""
        return self.core("Container")["properties"][name]

    def pod_template_spec(self) -> Schema:
        return self.get(POD_TEMPLATE_SPEC)

    # -- conversion ----------------------------------------------------------------------

    def _definition(self, name: str) -> Schema:
        if name in self._cache:
            return self._cache[name]
        special = self._special(name)
        if special is not None:
            self._cache[name] = special
            return special
        if name in self._stack:
            raise SchemaConversionError(f"recursive schema: {' -> '.join([*self._stack, name])}")
        if name not in self.definitions:
            raise SchemaConversionError(f"no definition {name!r} in the OpenAPI document")
        self._stack.append(name)
        try:
            converted = self._convert(self.definitions[name], name)
        finally:
            self._stack.pop()
        self._cache[name] = converted
        return converted

    def _special(self, name: str) -> Schema | None:
        if name == INT_OR_STRING:
            return {"x-kubernetes-int-or-string": True}
        if name == QUANTITY:
            quantity: Schema = {"x-kubernetes-int-or-string": True}
            if self.quantity_pattern:
                quantity["pattern"] = QUANTITY_PATTERN
            return quantity
        if name in (TIME, MICRO_TIME):
            return {"type": "string", "format": "date-time"}
        if name == OBJECT_META:
            return small_object_meta()
        return None

    def _convert(self, node: Mapping[str, Any], where: str) -> Schema:
        reference = _reference(node, where)
        if reference is not None:
            return copy.deepcopy(self._definition(reference))
        unknown = set(node) - _DROPPED - _HANDLED - set(_KEPT) - set(_KEPT_EXTENSIONS)
        if unknown:
            raise SchemaConversionError(f"{where}: cannot translate keys {sorted(unknown)}")
        out: Schema = {}
        for key in _KEPT:
            if key == "format" and node.get("format") not in CRD_FORMATS:
                continue
            if key in node:
                out[key] = copy.deepcopy(node[key])
        if "type" not in out:
            raise SchemaConversionError(f"{where}: no type (not structural)")
        if "items" in node:
            out["items"] = self._convert(node["items"], f"{where}[]")
        if "properties" in node:
            out["properties"] = {
                name: self._convert(sub, f"{where}.{name}")
                for name, sub in node["properties"].items()
            }
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            out["additionalProperties"] = self._convert(extra, f"{where}{{}}")
        elif extra is not None:
            raise SchemaConversionError(f"{where}: additionalProperties {extra!r}")
        for key in _KEPT_EXTENSIONS:
            if key in node:
                out[key] = copy.deepcopy(node[key])
        if out.get("x-kubernetes-list-type") == "map":
            self._keep_list_map_key_defaults(node, out, where)
        return out

    def _keep_list_map_key_defaults(self, node: Mapping[str, Any], out: Schema, where: str) -> None:
        """A list-map key must be required or defaulted: keep the upstream default then."""
        source = node["items"]
        reference = _reference(source, where)
        if reference is not None:
            source = self.definitions[reference]
        item = out["items"]
        for key in out["x-kubernetes-list-map-keys"]:
            if key in item.get("required", ()):
                continue
            default = source["properties"][key].get("default")
            if default is None:
                raise SchemaConversionError(
                    f"{where}: list-map key {key!r} neither required nor defaulted"
                )
            item["properties"][key]["default"] = default


def _reference(node: Mapping[str, Any], where: str) -> str | None:
    """The definition a `$ref` or a one-element `allOf` points to, if the node is one."""
    if "$ref" in node:
        return str(node["$ref"]).rsplit("/", 1)[-1]
    if "allOf" in node:
        (only,) = node["allOf"]
        if set(only) != {"$ref"}:
            raise SchemaConversionError(f"{where}: allOf of something other than one $ref")
        return str(only["$ref"]).rsplit("/", 1)[-1]
    return None


# -- finding the OpenAPI document -----------------------------------------------------------


def kubernetes_version(versions_env: Path) -> str:
    """`KUBERNETES_VERSION` from `ci/versions.env`."""
    for line in versions_env.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key == "KUBERNETES_VERSION":
            return value.strip().strip("\"'")
    raise SchemaConversionError(f"KUBERNETES_VERSION is not set in {versions_env}")


def locate_openapi(version: str, *, download: bool = True) -> Path:
    """Path of `api__v1_openapi.json` of `k8s.io/kubernetes@version` in the module cache.

    Downloads the module with `go mod download` when it is not cached yet.
    """
    go = shutil.which("go")
    if go is None:
        raise SchemaConversionError(
            "the Go toolchain is needed to find k8s.io/kubernetes in the module cache"
        )
    modcache = subprocess.run(
        [go, "env", "GOMODCACHE"], check=True, capture_output=True, text=True
    ).stdout.strip()
    path = Path(modcache) / f"{KUBERNETES_MODULE}@{version}" / OPENAPI_FILE
    if path.is_file() or not download:
        return path
    # Outside any module, so a go.mod of the caller's working directory plays no part.
    with tempfile.TemporaryDirectory() as empty:
        result = subprocess.run(
            [go, "mod", "download", "-json", f"{KUBERNETES_MODULE}@{version}"],
            cwd=empty,
            capture_output=True,
            text=True,
            env={**os.environ, "GO111MODULE": "on", "GOFLAGS": ""},
        )
    if result.returncode != 0:
        raise SchemaConversionError(
            f"go mod download {KUBERNETES_MODULE}@{version} failed:\n{result.stdout}{result.stderr}"
        )
    directory = Path(json.loads(result.stdout)["Dir"])
    return directory / OPENAPI_FILE
