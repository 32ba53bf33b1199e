"""The `ray start` command of a head or worker pod, from its group's `rayStartParams`.

Rules (docs/behaviour.md, Pods and Services, with the choices this project made):

- User params are validated: keys must be flag names (no leading dashes, no `=`),
  values one line; `num-cpus`, `num-gpus`, `memory` and `object-store-memory` must be
  whole numbers (Ray's options are integers; `$VAR` references are allowed), `port`,
  `metrics-export-port`, `dashboard-port` and `dashboard-agent-listen-port` port
  numbers (the operator uses them); `head` on a worker is refused. Anything wrong
  raises `InvalidSpecError` naming the field, e.g.
  `spec.workerGroupSpecs[1].rayStartParams["num-cpus"]`, and the fix.
- The group's Ray-level `resources` map sets `num-cpus`, `memory`, `num-gpus` (keys
  `cpu`, `memory`, any GPU-like key, case-insensitive) and adds the rest to the custom
  `resources` JSON; its `labels` map becomes `labels=k1=v1,k2=v2` (as upstream).
- From container 0's resources, when the param is absent: `num-cpus` from the CPU
  limit, else the CPU request; `memory` from the memory limit (bytes); `num-gpus` from
  the first (sorted) limit whose key ends in `gpu` or is an NVIDIA MIG slice. Ray's
  `--num-cpus`/`--num-gpus`/`--memory` accept integers only, so fractional amounts
  round up (500m CPU -> 1), exactly as upstream and Ray's own autoscaler do.
  `google.com/tpu` and `aws.amazon.com/neuroncore` limits add `TPU`/`neuron_cores` to
  the custom resources unless one of them is already there.
- Defaults when absent: head `dashboard-host=0.0.0.0`; all `metrics-export-port=8080`,
  `dashboard-agent-listen-port=52365`; worker `address=<head-fqdn>:<gcs port>` (a
  user-set worker `address` is kept, as upstream does). Always: `block` on (the
  container must not exit), and with in-tree autoscaling the head gains `no-monitor`.
  With `gcsFaultToleranceOptions` the head gets `redis-password`/`redis-username`
  pointing at the env vars that carry them, so secrets never appear in the command.
- Flags are emitted in key order: `"true"` -> `--key`; `"false"` -> dropped; any
  case. `log-color`, `include-dashboard` and `include-log-monitor` always keep their
  value (`--log-color=false`, `--include-dashboard=true`): Ray's options for them take
  a value, so a bare flag would fail. Other values -> `--key=value`, made shell-safe
  by `shell.shell_word`.
- The Ray container then runs `/bin/bash -c -- "<user command and args joined by
  spaces> && ulimit -n 65536; <ray start ...>"` (`ulimit -n 65536; <ray start ...>`
  when there is none), as KubeRay joins them: bash reads it as `(user && ulimit);
  ray start`, so `ray start` runs even when the user's command fails. If the user's
  command or args already run `ray start`, or the annotation
  `ray.io/overwrite-container-cmd: "true"` is set, command and args stay as written;
  the generated command is always available in `KUBERAY_GEN_RAY_START_CMD`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import constants as c
from .. import spec as cluster_spec
from ..errors import InvalidSpecError
from ..quantity import parse_quantity, round_up
from ..spec import Body, NodeGroup
from .shell import shell_word, unquote

ULIMIT = "ulimit -n 65536"
SHELL = ("/bin/bash", "-c", "--")

KEEP_VALUE_FLAGS = frozenset({"log-color", "include-dashboard", "include-log-monitor"})
INTEGER_PARAMS = frozenset({"num-cpus", "num-gpus", "memory", "object-store-memory"})
PORT_PARAMS = frozenset(
    {"port", "metrics-export-port", "dashboard-port", "dashboard-agent-listen-port"}
)
# Kubernetes resource names whose amount Ray counts as a custom resource.
ACCELERATOR_RESOURCES = {"google.com/tpu": "TPU", "aws.amazon.com/neuroncore": "neuron_cores"}

REDIS_PASSWORD_ENV = "REDIS_PASSWORD"
REDIS_USERNAME_ENV = "REDIS_USERNAME"

_DIGITS = re.compile(r"[0-9]+")
_FLAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_ENV_REFERENCE = re.compile(r"\$(?:[A-Za-z_]\w*|\{[A-Za-z_]\w*\}|\([A-Za-z_]\w*\))")
_MIG = re.compile(r"nvidia\.com/mig-\d+g\.\d+gb")
_RAY_START = re.compile(r"\bray\s+start\b")


def is_gpu_resource(key: str) -> bool:
    """GPU-like Kubernetes resource names: `nvidia.com/gpu`, `amd.com/gpu`, any name
    ending in `gpu`, and NVIDIA MIG slices such as `nvidia.com/mig-1g.5gb`."""
    key = key.lower()
    return key.endswith("gpu") or _MIG.fullmatch(key) is not None


@dataclass(frozen=True, slots=True)
class RayStart:
    params: dict[str, str]  # final params, values as they appear after `--key=`
    command: str  # "ray start --head --block ..."


def _param_field(group: NodeGroup, key: str) -> str:
    return f'{group.path}.rayStartParams["{key}"]'


def _as_text(value: Any, field: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    raise InvalidSpecError(field, f"must be a string, got {value!r}: quote the value in YAML")


def _check_param(group: NodeGroup, key: str, value: str) -> None:
    field = _param_field(group, key)
    if not _FLAG_NAME.fullmatch(key):
        raise InvalidSpecError(
            field,
            "is not a `ray start` flag name: write the flag without leading dashes and "
            'without "=", e.g. "num-cpus"',
        )
    if key == "head" and not group.is_head:
        raise InvalidSpecError(field, "a worker group cannot start a head node: remove it")
    if any(ch in value for ch in "\n\r\0"):
        raise InvalidSpecError(field, "contains a line break: values must be a single line")
    if key in INTEGER_PARAMS and not (_DIGITS.fullmatch(value) or _ENV_REFERENCE.fullmatch(value)):
        raise InvalidSpecError(
            field,
            f"{value!r} is not a whole number: `ray start --{key}` takes an integer "
            f'{"(bytes) " if "memory" in key else ""}such as "4"; round it or remove the '
            "param to derive it from the container's resources",
        )
    if key in PORT_PARAMS:
        cluster_spec.parse_port(value, field)


def _read_resources_json(group: NodeGroup, value: str, autoscaling: bool) -> dict[str, Any]:
    field = _param_field(group, "resources")
    example = '\'"{\\"TPU\\": 4}"\''
    try:
        resources = json.loads(unquote(value))
    except ValueError:
        resources = None
    if not isinstance(resources, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in resources.values()
    ):
        raise InvalidSpecError(
            field,
            "must be a JSON object of resource name to amount, quoted for the shell as "
            f"upstream expects, e.g. resources: {example}",
        )
    if autoscaling:
        # Ray's autoscaler reads this param from the RayCluster itself: it drops the
        # first and last character and all backslashes, then parses JSON.
        try:
            json.loads(value[1:-1].replace("\\", ""))
        except ValueError:
            raise InvalidSpecError(
                field,
                "Ray's autoscaler cannot read it: with enableInTreeAutoscaling the JSON "
                f"must be wrapped in quotes, e.g. resources: {example}",
            ) from None
    return resources


def _group_resources(group: NodeGroup, params: dict[str, str], custom: dict[str, Any]) -> None:
    """The group's Ray-level `resources` map (it wins over rayStartParams)."""
    for name, amount in (group.raw.get("resources") or {}).items():
        field = f'{group.path}.resources["{name}"]'
        try:
            number = parse_quantity(amount)
        except ValueError as err:
            raise InvalidSpecError(field, f"{err}") from None
        if number < 0:
            raise InvalidSpecError(field, "must not be negative")
        lowered = str(name).lower()
        if lowered == "cpu":
            params["num-cpus"] = str(round_up(number))
        elif lowered == "memory":
            params["memory"] = str(round_up(number))
        elif is_gpu_resource(lowered):
            params["num-gpus"] = str(round_up(number))
        else:
            custom[str(name)] = (
                int(number) if number == number.to_integral_value() else float(number)
            )


def _container_quantity(group: NodeGroup, kind: str, key: str, value: Any) -> Any:
    try:
        return parse_quantity(value)
    except ValueError as err:
        field = f"{group.path}.template.spec.containers[0].resources.{kind}[{key!r}]"
        raise InvalidSpecError(field, str(err)) from None


def _container_resources(group: NodeGroup, params: dict[str, str], custom: dict[str, Any]) -> None:
    resources = group.ray_container().get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}

    if "num-cpus" not in params:
        for kind, source in (("limits", limits), ("requests", requests)):
            if "cpu" in source:
                cpu = _container_quantity(group, kind, "cpu", source["cpu"])
                if cpu != 0:
                    params["num-cpus"] = str(round_up(cpu))
                    break
    if "memory" not in params and "memory" in limits:
        memory = _container_quantity(group, "limits", "memory", limits["memory"])
        if memory != 0:
            params["memory"] = str(round_up(memory))
    has_accelerator = any(name in custom for name in ACCELERATOR_RESOURCES.values())
    for key in sorted(limits):
        amount = _container_quantity(group, "limits", key, limits[key])
        if amount == 0:
            continue
        if "num-gpus" not in params and is_gpu_resource(key):
            params["num-gpus"] = str(round_up(amount))
        elif not has_accelerator and key in ACCELERATOR_RESOURCES:
            custom[ACCELERATOR_RESOURCES[key]] = round_up(amount)
            has_accelerator = True


def ray_start_params(
    cluster: Body, group: NodeGroup, *, cluster_domain: str = c.DEFAULT_CLUSTER_DOMAIN
) -> dict[str, str]:
    """The complete, validated params for this group's `ray start`."""
    autoscaling = cluster_spec.autoscaling_enabled(cluster)
    params: dict[str, str] = {}
    for key, raw_value in group.ray_start_params.items():
        value = _as_text(raw_value, _param_field(group, str(key)))
        _check_param(group, str(key), value)
        params[str(key)] = value
    params.pop("head", None)  # the head gets --head from the command itself

    custom: dict[str, Any] = {}
    user_resources = params.get("resources")
    if user_resources is not None:
        custom.update(_read_resources_json(group, user_resources, autoscaling))
    before = dict(custom)
    _group_resources(group, params, custom)
    if group.raw.get("labels"):
        labels = group.raw["labels"]
        params["labels"] = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    _container_resources(group, params, custom)
    if custom != before:
        params["resources"] = shlex.quote(json.dumps(custom, sort_keys=True))

    if group.is_head:
        params.setdefault("dashboard-host", "0.0.0.0")
    else:
        params.setdefault(
            "address",
            f"{cluster_spec.head_fqdn(cluster, cluster_domain)}:{cluster_spec.gcs_port(cluster)}",
        )
    params.setdefault("metrics-export-port", str(c.METRICS_PORT))
    params.setdefault("dashboard-agent-listen-port", str(c.DASHBOARD_AGENT_PORT))
    params["block"] = "true"
    if group.is_head and autoscaling:
        params["no-monitor"] = "true"
    ft = cluster_spec.gcs_ft_options(cluster)
    if group.is_head and ft is not None:
        if ft.get("redisPassword") is not None:
            params["redis-password"] = f'"${REDIS_PASSWORD_ENV}"'
        if ft.get("redisUsername") is not None:
            params["redis-username"] = f'"${REDIS_USERNAME_ENV}"'
    return params


def format_flags(params: Mapping[str, str]) -> str:
    """`--key`/`--key=value` flags in key order (rules in the module doc)."""
    flags = []
    for key in sorted(params):
        value = params[key]
        if key in KEEP_VALUE_FLAGS:
            flags.append(f"--{key}={shell_word(value)}")
        elif value.lower() == "true":
            flags.append(f"--{key}")
        elif value.lower() != "false":
            flags.append(f"--{key}={shell_word(value)}")
    return " ".join(flags)


def ray_start(
    cluster: Body, group: NodeGroup, *, cluster_domain: str = c.DEFAULT_CLUSTER_DOMAIN
) -> RayStart:
    params = ray_start_params(cluster, group, cluster_domain=cluster_domain)
    head = " --head" if group.is_head else ""
    return RayStart(params, f"ray start{head} {format_flags(params)}")


def runs_ray_start(container: Body) -> bool:
    """Whether the container's own command or args already run `ray start`."""
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    return _RAY_START.search(" ".join(words)) is not None


def container_command(
    container: Body, ray_start_command: str, *, overwrite: bool
) -> tuple[list[str], list[str]] | None:
    """The Ray container's new (command, args), or None to leave them as written."""
    if overwrite or runs_ray_start(container):
        return None
    user = " ".join([*(container.get("command") or []), *(container.get("args") or [])]).strip()
    # KubeRay's joining: a failing user command skips only the ulimit, never Ray.
    script = (
        f"{user} && {ULIMIT}; {ray_start_command}" if user else f"{ULIMIT}; {ray_start_command}"
    )
    return list(SHELL), [script]
