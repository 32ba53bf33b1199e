"""The generated RayCluster CRD: current, small enough, and complete against the API reference."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ray_operator_dev.crd import generate
from ray_operator_dev.crd.podtemplate import (
    CORE,
    KubernetesSchemas,
    SchemaConversionError,
    kubernetes_version,
    locate_openapi,
)

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "ray.io_rayclusters.yaml"


@pytest.fixture(scope="module")
def openapi_path() -> Path:
    version = kubernetes_version(REPO / "ci" / "versions.env")
    if shutil.which("go") is None:
        pytest.skip("the Go toolchain is needed to find the Kubernetes OpenAPI document")
    return locate_openapi(version)


@pytest.fixture(scope="module")
def k8s(openapi_path: Path) -> KubernetesSchemas:
    return KubernetesSchemas.from_file(openapi_path)


@pytest.fixture(scope="module")
def core_definitions(openapi_path: Path) -> dict[str, Any]:
    return json.loads(openapi_path.read_text())["components"]["schemas"]


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_FILE.read_text())


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")


@pytest.fixture(scope="module")
def root(version: dict[str, Any]) -> dict[str, Any]:
    return version["schema"]["openAPIV3Schema"]


@pytest.fixture(scope="module")
def spec(root: dict[str, Any]) -> dict[str, Any]:
    return root["properties"]["spec"]


@pytest.fixture(scope="module")
def head(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["properties"]["headGroupSpec"]


@pytest.fixture(scope="module")
def group(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["properties"]["workerGroupSpecs"]["items"]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node under `node`, with a readable path."""
    if not isinstance(node, dict):
        return
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


# -- the file ----------------------------------------------------------------------------


def test_generated_file_is_current(k8s: KubernetesSchemas) -> None:
    expected = generate.render(generate.build_crd(k8s))
    assert CRD_FILE.read_text() == expected, f"{CRD_FILE.relative_to(REPO)} is stale: run make crds"


def test_check_mode_reports_a_stale_file(
    openapi_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "crd.yaml"
    out.write_text(CRD_FILE.read_text())
    assert generate.main(["--check", "--output", str(out), "--openapi", str(openapi_path)]) == 0
    out.write_text(CRD_FILE.read_text().replace("maxItems: 64", "maxItems: 65"))
    assert generate.main(["--check", "--output", str(out), "--openapi", str(openapi_path)]) == 1
    assert "is stale: run make crds" in capsys.readouterr().err
    assert "maxItems: 65" in out.read_text()  # --check never writes


def test_compact_json_fits_in_the_last_applied_annotation(crd: dict[str, Any]) -> None:
    size = len(generate.compact_json(crd).encode())
    assert size < generate.ANNOTATION_LIMIT
    assert size < generate.SIZE_BUDGET, f"{size:,} bytes: over the budget with headroom"


# -- the resource ------------------------------------------------------------------------


def test_names_scope_and_subresources(crd: dict[str, Any], version: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == "rayclusters.ray.io"
    assert crd["spec"]["group"] == "ray.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"] == {
        "kind": "RayCluster",
        "listKind": "RayClusterList",
        "plural": "rayclusters",
        "singular": "raycluster",
        "categories": ["all"],
    }
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    assert version["subresources"] == {"status": {}}


def test_v1alpha1_is_served_with_v1_fields_and_no_conversion(crd: dict[str, Any]) -> None:
    """As KubeRay: v1alpha1 served, v1 stored, conversion None (no stanza)."""
    v1, legacy = crd["spec"]["versions"]
    assert (legacy["name"], legacy["served"], legacy["storage"]) == ("v1alpha1", True, False)
    assert "conversion" not in crd["spec"]
    assert legacy["subresources"] == v1["subresources"]
    assert legacy["additionalPrinterColumns"] == v1["additionalPrinterColumns"]

    def fields(version: dict[str, Any]) -> set[str]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        return set(spec["properties"])

    assert fields(legacy) == fields(v1)  # stored as is and read as v1: same fields
    spec = legacy["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    head = spec["headGroupSpec"]["properties"]
    for kept in (head["template"], head["headService"]):
        assert kept["x-kubernetes-preserve-unknown-fields"] is True
    # Our own fields keep their validation.
    assert spec["workerGroupSpecs"]["items"]["x-kubernetes-validations"]


def test_printer_columns_match_the_reference(version: dict[str, Any]) -> None:
    # name, JSONPath, priority: as docs/behaviour.md, Resource, lists them
    reference = [
        ("desired workers", ".status.desiredWorkerReplicas", 0),
        ("available workers", ".status.availableWorkerReplicas", 0),
        ("cpus", ".status.desiredCPU", 0),
        ("memory", ".status.desiredMemory", 0),
        ("gpus", ".status.desiredGPU", 0),
        ("tpus", ".status.desiredTPU", 1),
        ("status", ".status.state", 0),
        ("age", ".metadata.creationTimestamp", 0),
        ("head pod IP", ".status.head.podIP", 1),
        ("head service IP", ".status.head.serviceIP", 1),
    ]
    columns = version["additionalPrinterColumns"]
    assert [(col["name"], col["jsonPath"], col.get("priority", 0)) for col in columns] == reference
    types = {col["name"]: col["type"] for col in columns}
    assert types["desired workers"] == types["available workers"] == "integer"
    assert types["age"] == "date"


# -- the spec ----------------------------------------------------------------------------

SPEC_FIELDS = {
    "headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling",
    "autoscalerOptions", "headServiceAnnotations", "suspend", "managedBy",
    "gcsFaultToleranceOptions", "upgradeStrategy", "idleTerminationOptions", "idleSuspend",
    "authOptions",
}  # fmt: skip
HEAD_FIELDS = {
    "template", "rayStartParams", "serviceType", "headService", "enableIngress",
    "ingressOptions", "resources", "labels",
}  # fmt: skip
GROUP_FIELDS = {
    "groupName", "replicas", "minReplicas", "maxReplicas", "numOfHosts", "rayStartParams",
    "template", "scaleStrategy", "suspend", "idleTimeoutSeconds", "resources", "labels",
}  # fmt: skip
AUTOSCALER_FIELDS = {
    "resources", "image", "imagePullPolicy", "securityContext", "idleTimeoutSeconds",
    "upscalingMode", "version", "env", "envFrom", "volumeMounts", "command", "args",
}  # fmt: skip
STATUS_FIELDS = {
    "state", "reason", "observedGeneration", "lastUpdateTime", "stateTransitionTimes",
    "readyWorkerReplicas", "availableWorkerReplicas", "desiredWorkerReplicas",
    "minWorkerReplicas", "maxWorkerReplicas", "desiredCPU", "desiredMemory", "desiredGPU",
    "desiredTPU", "endpoints", "head", "conditions",
}  # fmt: skip


def test_every_spec_field_of_the_reference_is_present(
    spec: dict[str, Any], head: dict[str, Any], group: dict[str, Any]
) -> None:
    props = spec["properties"]
    assert set(props) == SPEC_FIELDS
    assert spec["required"] == ["headGroupSpec"]
    assert set(head["properties"]) == HEAD_FIELDS
    assert head["required"] == ["template"]
    assert set(group["properties"]) == GROUP_FIELDS
    assert set(group["required"]) == {"groupName", "template"}
    assert set(props["autoscalerOptions"]["properties"]) == AUTOSCALER_FIELDS
    gcs = props["gcsFaultToleranceOptions"]["properties"]
    assert set(gcs) == {
        "redisAddress",
        "redisPassword",
        "redisUsername",
        "externalStorageNamespace",
    }
    for credential in ("redisPassword", "redisUsername"):
        assert set(gcs[credential]["properties"]) == {"value", "valueFrom"}
        assert "secretKeyRef" in gcs[credential]["properties"]["valueFrom"]["properties"]
    assert set(group["properties"]["scaleStrategy"]["properties"]) == {"workersToDelete"}
    auth = props["authOptions"]["properties"]
    assert set(auth) == {"mode", "secretName", "enableK8sTokenAuth"}
    assert auth["mode"]["enum"] == ["disabled", "token"]
    assert "default" not in auth["mode"]  # as KubeRay's CRD: unset stays unset
    assert set(props["idleTerminationOptions"]["properties"]) == {"timeoutSeconds", "policy"}


def test_status_fields(root: dict[str, Any]) -> None:
    status = root["properties"]["status"]["properties"]
    assert set(status) == STATUS_FIELDS
    for quantity in ("desiredCPU", "desiredMemory", "desiredGPU", "desiredTPU"):
        assert status[quantity]["x-kubernetes-int-or-string"] is True
    assert set(status["head"]["properties"]) == {"podIP", "podName", "serviceIP", "serviceName"}
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {
        "type", "status", "lastTransitionTime", "reason", "message",
    }  # fmt: skip
    assert status["stateTransitionTimes"]["additionalProperties"]["format"] == "date-time"


def test_every_validation_rule_has_a_message(root: dict[str, Any]) -> None:
    """The API server's default message for a failed CEL rule repeats the rule and
    names no fix. (What each rule accepts and refuses is proven against the API server
    in tests/integration/test_crd_validation.py.)"""
    rules = [rule for _, node in walk(root) for rule in node.get("x-kubernetes-validations", [])]
    assert rules
    assert [rule for rule in rules if not rule.get("message")] == []


def test_own_fields_have_descriptions(root: dict[str, Any], head: dict[str, Any]) -> None:
    props = root["properties"]
    own = [
        props["spec"],
        head,
        props["spec"]["properties"]["workerGroupSpecs"]["items"],
        props["spec"]["properties"]["autoscalerOptions"],
        props["spec"]["properties"]["gcsFaultToleranceOptions"],
        props["status"],
    ]
    for node in own:
        for name, sub in node["properties"].items():
            assert sub.get("description"), f"{name} has no description"


# -- the pod template --------------------------------------------------------------------


def templates(head: dict[str, Any], group: dict[str, Any]) -> list[dict[str, Any]]:
    return [head["properties"]["template"], group["properties"]["template"]]


def test_pod_template_covers_every_podspec_field(
    head: dict[str, Any], group: dict[str, Any], core_definitions: dict[str, Any]
) -> None:
    podspec = core_definitions[CORE + "PodSpec"]["properties"]
    container = core_definitions[CORE + "Container"]["properties"]
    volume = core_definitions[CORE + "Volume"]["properties"]
    for template in templates(head, group):
        spec = template["properties"]["spec"]
        assert set(spec["properties"]) == set(podspec)
        items = spec["properties"]["containers"]["items"]
        assert set(items["properties"]) == set(container)
        assert {"env", "resources", "volumeMounts", "ports", "readinessProbe"} <= set(
            items["properties"]
        )
        assert set(spec["properties"]["volumes"]["items"]["properties"]) == set(volume)
        assert spec["required"] == ["containers"]
        assert spec["properties"]["containers"]["minItems"] == 1
        assert items["required"] == ["name"]
        assert template["required"] == ["spec"]
        limits = items["properties"]["resources"]["properties"]["limits"]["additionalProperties"]
        assert limits["x-kubernetes-int-or-string"] is True and "pattern" in limits
        metadata = template["properties"]["metadata"]["properties"]
        assert set(metadata) == {"annotations", "generateName", "labels", "name", "namespace"}


def test_pod_template_is_structural_pruned_and_lean(
    head: dict[str, Any], group: dict[str, Any]
) -> None:
    for template in templates(head, group):
        for path, node in walk(template["properties"]["spec"], "spec"):
            assert "x-kubernetes-preserve-unknown-fields" not in node, path
            assert "description" not in node, path
            assert "type" in node or node.get("x-kubernetes-int-or-string"), path
            assert not any(key.startswith("x-kubernetes-patch") for key in node), path
            if "default" in node:
                # the only defaults kept: those of list-map keys that are not required
                kept = {".ports[].protocol": "TCP", ".imagePullSecrets[].name": ""}
                assert any(path.endswith(k) and node["default"] == v for k, v in kept.items()), path


def test_autoscaler_options_reuse_the_derived_core_schemas(
    spec: dict[str, Any], head: dict[str, Any]
) -> None:
    autoscaler = spec["properties"]["autoscalerOptions"]["properties"]
    container = head["properties"]["template"]["properties"]["spec"]["properties"]["containers"]
    container_props = container["items"]["properties"]
    for field in ("env", "envFrom", "volumeMounts", "securityContext", "resources"):
        ours = {k: v for k, v in autoscaler[field].items() if k != "description"}
        assert ours == container_props[field], field


# -- the derivation ----------------------------------------------------------------------


def test_conversion_rejects_what_it_cannot_translate() -> None:
    unknown = KubernetesSchemas({"A": {"type": "object", "nullable": True}})
    with pytest.raises(SchemaConversionError, match="nullable"):
        unknown.get("A")
    loop = KubernetesSchemas(
        {"A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/A"}}}}
    )
    with pytest.raises(SchemaConversionError, match="recursive"):
        loop.get("A")
    untyped = KubernetesSchemas({"A": {"properties": {}}})
    with pytest.raises(SchemaConversionError, match="no type"):
        untyped.get("A")


def test_conversion_of_a_small_document() -> None:
    ref = "#/components/schemas/"
    apimachinery = "io.k8s.apimachinery.pkg."
    schemas = KubernetesSchemas(
        {
            "P": {
                "type": "object",
                "description": "dropped",
                "properties": {
                    "port": {"allOf": [{"$ref": ref + apimachinery + "util.intstr.IntOrString"}]},
                    "size": {"$ref": ref + apimachinery + "api.resource.Quantity"},
                    "at": {"$ref": ref + apimachinery + "apis.meta.v1.Time"},
                    "meta": {"allOf": [{"$ref": ref + apimachinery + "apis.meta.v1.ObjectMeta"}]},
                    "list": {
                        "type": "array",
                        "items": {"allOf": [{"$ref": ref + "Item"}], "default": {}},
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name", "protocol"],
                        "x-kubernetes-patch-merge-key": "name",
                    },
                },
            },
            "Item": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "default": ""},
                    "protocol": {"type": "string", "default": "TCP"},
                    "count": {"type": "integer", "format": "int32", "default": 1},
                },
            },
        },
        quantity_pattern=False,
    )
    converted = schemas.get("P")
    assert converted["properties"].pop("meta")["properties"]["labels"] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
    }
    assert converted == {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "size": {"x-kubernetes-int-or-string": True},
            "at": {"type": "string", "format": "date-time"},
            "list": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "protocol": {"type": "string", "default": "TCP"},
                        "count": {"type": "integer", "format": "int32"},
                    },
                },
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name", "protocol"],
            },
        },
    }
    # get() hands out copies: decorating one does not change the next.
    converted["properties"]["list"]["maxItems"] = 3
    assert "maxItems" not in schemas.get("P")["properties"]["list"]


def test_locate_openapi_downloads_a_missing_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in `go`: an empty module cache, and a `go mod download` that reports a Dir.
    module_dir = tmp_path / "downloaded"
    log = tmp_path / "calls"
    fake_go = tmp_path / "bin" / "go"
    fake_go.parent.mkdir()
    fake_go.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        f'if [ "$1" = env ]; then echo {tmp_path / "modcache"}; exit 0; fi\n'
        f'echo \'{{"Path": "k8s.io/kubernetes", "Dir": "{module_dir}"}}\'\n'
    )
    fake_go.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_go.parent))
    path = locate_openapi("v9.9.9")
    assert path == module_dir / "api/openapi-spec/v3/api__v1_openapi.json"
    assert "mod download -json k8s.io/kubernetes@v9.9.9" in log.read_text()
    assert locate_openapi("v9.9.9", download=False).is_relative_to(tmp_path / "modcache")
