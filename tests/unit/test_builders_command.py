"""Every rayStartParams rule (docs/behaviour.md, Pods and Services), and the container
command around it."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from typing import Any

import pytest

from ray_operator import spec as groups
from ray_operator.builders.command import container_command, is_gpu_resource, ray_start
from ray_operator.builders.shell import is_plain_word, shell_word
from ray_operator.errors import InvalidSpecError

from .builders_support import cluster, frozen, ray_container, worker

FQDN = "demo-head-svc.ns.svc.cluster.local"


def head_cmd(
    params: dict[str, Any] | None = None, container: dict[str, Any] | None = None, **spec: Any
) -> str:
    body = cluster(
        head={"rayStartParams": params} if params is not None else {},
        head_container=container,
        **spec,
    )
    return ray_start(body, groups.head_group(body)).command


def worker_cmd(
    params: dict[str, Any] | None = None, container: dict[str, Any] | None = None, **group: Any
) -> str:
    fields = dict(group)
    if params is not None:
        fields["rayStartParams"] = params
    body = cluster(workers=[worker(container=container, **fields)])
    return ray_start(body, groups.worker_group(body, 0)).command


def flags(command: str) -> list[str]:
    """The words after `ray start` (and `--head`), as bash would pass them."""
    words = shlex.split(command)
    assert words[:2] == ["ray", "start"]
    return [w for w in words[2:] if w != "--head"]


def flag_map(command: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for word in flags(command):
        key, sep, value = word[2:].partition("=")
        out[key] = value if sep else None
    return out


def resources(
    cpu: str | None = None,
    memory: str | None = None,
    *,
    requests: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    limits = {**({"cpu": cpu} if cpu else {}), **({"memory": memory} if memory else {}), **extra}
    return ray_container(resources={"limits": limits, "requests": requests or {}})


# -- command shape --------------------------------------------------------------------


def test_head_command_starts_with_head_and_has_defaults() -> None:
    command = head_cmd()
    assert command.startswith("ray start --head ")
    assert flag_map(command) == {
        "block": None,
        "dashboard-agent-listen-port": "52365",
        "dashboard-host": "0.0.0.0",
        "metrics-export-port": "8080",
    }


def test_worker_command_joins_the_head_service() -> None:
    command = worker_cmd()
    assert command.startswith(f"ray start --address={FQDN}:6379 ")
    assert "--head" not in command
    assert flag_map(command) == {
        "address": f"{FQDN}:6379",
        "block": None,
        "dashboard-agent-listen-port": "52365",
        "metrics-export-port": "8080",
    }


def test_omitted_and_empty_ray_start_params_are_the_same() -> None:
    assert head_cmd(None) == head_cmd({})
    assert worker_cmd(None) == worker_cmd({})


def test_keys_are_emitted_sorted() -> None:
    params = {"z-flag": "1", "a-flag": "2", "m-flag": "3", "object-store-memory": "100"}
    keys = [w[2:].partition("=")[0] for w in flags(worker_cmd(params))]
    assert keys == sorted(keys)
    assert {"z-flag", "a-flag", "m-flag", "object-store-memory"} <= set(keys)


# -- defaults and what overrides them -------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dashboard-host", "127.0.0.1"),
        ("metrics-export-port", "9090"),
        ("dashboard-agent-listen-port", "52366"),
    ],
)
def test_user_values_beat_defaults_on_head(key: str, value: str) -> None:
    assert flag_map(head_cmd({key: value}))[key] == value


@pytest.mark.parametrize(
    ("key", "value"), [("metrics-export-port", "9091"), ("dashboard-agent-listen-port", "52367")]
)
def test_user_values_beat_defaults_on_workers(key: str, value: str) -> None:
    assert flag_map(worker_cmd({key: value}))[key] == value


def test_worker_never_gets_dashboard_host() -> None:
    assert "dashboard-host" not in flag_map(worker_cmd())


def test_user_address_on_worker_is_kept_as_upstream_does() -> None:
    assert flag_map(worker_cmd({"address": "other-head:7000"}))["address"] == "other-head:7000"


def test_head_port_param_moves_the_worker_address() -> None:
    body = cluster(head={"rayStartParams": {"port": "7000"}})
    command = ray_start(body, groups.worker_group(body, 0)).command
    assert flag_map(command)["address"] == f"{FQDN}:7000"


def test_cluster_domain_is_used_in_the_worker_address() -> None:
    body = cluster()
    command = ray_start(body, groups.worker_group(body, 0), cluster_domain="corp.internal").command
    assert flag_map(command)["address"] == "demo-head-svc.ns.svc.corp.internal:6379"


@pytest.mark.parametrize("value", ["false", "False", "true", "0"])
def test_block_is_always_on(value: str) -> None:
    assert flag_map(worker_cmd({"block": value}))["block"] is None
    assert flag_map(head_cmd({"block": value}))["block"] is None


def test_head_key_on_the_head_is_dropped_not_doubled() -> None:
    command = head_cmd({"head": "true"})
    assert shlex.split(command).count("--head") == 1


# -- true / false ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "True", "TRUE"])
def test_true_becomes_a_bare_flag(value: str) -> None:
    command = worker_cmd({"disable-usage-stats": value})
    assert "--disable-usage-stats" in flags(command)
    assert flag_map(command)["disable-usage-stats"] is None


@pytest.mark.parametrize("value", ["false", "False", "FALSE"])
def test_false_is_dropped(value: str) -> None:
    assert "disable-usage-stats" not in flag_map(worker_cmd({"disable-usage-stats": value}))


@pytest.mark.parametrize("key", ["log-color", "include-dashboard", "include-log-monitor"])
@pytest.mark.parametrize("value", ["false", "true", "False"])
def test_three_flags_keep_their_value(key: str, value: str) -> None:
    assert flag_map(head_cmd({key: value}))[key] == value


def test_log_color_takes_other_values_too() -> None:
    assert flag_map(head_cmd({"log-color": "auto"}))["log-color"] == "auto"


# -- resources from the container ------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        (resources(cpu="2"), "2"),
        (resources(cpu="500m"), "1"),  # Ray's --num-cpus is an integer: round up
        (resources(cpu="1500m"), "2"),
        (resources(cpu="3", requests={"cpu": "1"}), "3"),  # the limit wins
        (resources(requests={"cpu": "4"}), "4"),  # no limit: the request
        (resources(requests={"cpu": "250m"}), "1"),
        (resources(cpu="0", requests={"cpu": "2"}), "2"),  # a zero limit counts as none
        (resources(cpu=4), "4"),  # hand-written bodies may carry numbers
    ],
)
def test_num_cpus_from_limit_else_request(container: dict[str, Any], expected: str) -> None:
    assert flag_map(worker_cmd(container=container))["num-cpus"] == expected
    assert flag_map(head_cmd(container=container))["num-cpus"] == expected


def test_no_cpu_anywhere_means_no_num_cpus() -> None:
    assert "num-cpus" not in flag_map(worker_cmd(container=resources(memory="1Gi")))


def test_explicit_num_cpus_beats_the_container() -> None:
    command = worker_cmd({"num-cpus": "0"}, container=resources(cpu="8"))
    assert flag_map(command)["num-cpus"] == "0"


@pytest.mark.parametrize(
    ("memory", "expected"),
    [
        ("2Gi", "2147483648"),
        ("1.5Gi", "1610612736"),
        ("129M", "129000000"),
        ("128974848", "128974848"),
        ("1e9", "1000000000"),
    ],
)
def test_memory_from_limit_in_bytes(memory: str, expected: str) -> None:
    assert flag_map(worker_cmd(container=resources(memory=memory)))["memory"] == expected


def test_memory_request_alone_sets_nothing() -> None:
    assert "memory" not in flag_map(worker_cmd(container=resources(requests={"memory": "4Gi"})))


def test_explicit_memory_beats_the_container() -> None:
    command = worker_cmd({"memory": "1000"}, container=resources(memory="2Gi"))
    assert flag_map(command)["memory"] == "1000"


@pytest.mark.parametrize(
    "key",
    ["nvidia.com/gpu", "amd.com/gpu", "example.com/gpu", "nvidia.com/mig-1g.5gb", "NVIDIA.COM/GPU"],
)
def test_num_gpus_from_any_gpu_like_limit(key: str) -> None:
    command = worker_cmd(container=resources(**{key: "2"}))
    assert flag_map(command)["num-gpus"] == "2"


@pytest.mark.parametrize("key", ["example.com/fpga", "google.com/tpu", "nvidia.com/gpu-memory"])
def test_other_limits_are_not_gpus(key: str) -> None:
    assert "num-gpus" not in flag_map(worker_cmd(container=resources(**{key: "2"})))


def test_zero_gpus_and_request_only_gpus_set_nothing() -> None:
    assert "num-gpus" not in flag_map(worker_cmd(container=resources(**{"nvidia.com/gpu": "0"})))
    only_request = resources(requests={"nvidia.com/gpu": "1"})
    assert "num-gpus" not in flag_map(worker_cmd(container=only_request))


def test_first_gpu_key_in_sorted_order_wins() -> None:
    command = worker_cmd(container=resources(**{"nvidia.com/gpu": "1", "amd.com/gpu": "3"}))
    assert flag_map(command)["num-gpus"] == "3"


def test_explicit_num_gpus_beats_the_container() -> None:
    command = worker_cmd({"num-gpus": "0"}, container=resources(**{"nvidia.com/gpu": "4"}))
    assert flag_map(command)["num-gpus"] == "0"


def test_tpu_limit_adds_a_custom_resource() -> None:
    command = worker_cmd(container=resources(**{"google.com/tpu": "4"}))
    assert json.loads(flag_map(command)["resources"] or "") == {"TPU": 4}


def test_tpu_already_in_resources_is_not_overwritten() -> None:
    params = {"resources": '"{\\"TPU\\": 8}"'}
    command = worker_cmd(params, container=resources(**{"google.com/tpu": "4"}))
    assert json.loads(flag_map(command)["resources"] or "") == {"TPU": 8}


def test_is_gpu_resource() -> None:
    assert is_gpu_resource("nvidia.com/gpu")
    assert is_gpu_resource("nvidia.com/mig-2g.32gb")
    assert not is_gpu_resource("cpu")


# -- the group's Ray-level resources and labels -------------------------------------------


def test_group_resources_set_ray_params_and_win() -> None:
    command = worker_cmd(
        {"num-cpus": "1"},
        container=resources(cpu="2", memory="1Gi"),
        resources={"CPU": "4", "memory": "8Gi", "GPU": "1", "TPU": "4", "accel": "500m"},
    )
    got = flag_map(command)
    assert (got["num-cpus"], got["memory"], got["num-gpus"]) == ("4", "8589934592", "1")
    assert json.loads(got["resources"] or "") == {"TPU": 4, "accel": 0.5}


def test_group_resources_merge_with_the_resources_param() -> None:
    command = worker_cmd({"resources": '"{\\"A\\": 1}"'}, resources={"B": "2"})
    assert json.loads(flag_map(command)["resources"] or "") == {"A": 1, "B": 2}


def test_group_labels_become_the_labels_flag() -> None:
    command = worker_cmd({"labels": "x=1"}, labels={"zone": "b", "team": "ml"})
    assert flag_map(command)["labels"] == "team=ml,zone=b"


def test_bad_group_resource_names_its_field() -> None:
    with pytest.raises(InvalidSpecError) as err:
        worker_cmd(resources={"CPU": "lots"})
    assert err.value.field == 'spec.workerGroupSpecs[0].resources["CPU"]'


# -- autoscaling and fault tolerance ---------------------------------------------------------


def test_head_with_autoscaling_gains_no_monitor() -> None:
    assert flag_map(head_cmd(enableInTreeAutoscaling=True))["no-monitor"] is None
    assert (
        flag_map(head_cmd({"no-monitor": "false"}, enableInTreeAutoscaling=True))["no-monitor"]
        is None
    )


def test_no_monitor_only_on_an_autoscaling_head() -> None:
    assert "no-monitor" not in flag_map(head_cmd())
    body = cluster(enableInTreeAutoscaling=True)
    assert "no-monitor" not in flag_map(ray_start(body, groups.worker_group(body, 0)).command)


def test_fault_tolerance_passes_redis_credentials_by_reference() -> None:
    secret = {"valueFrom": {"secretKeyRef": {"name": "redis", "key": "password"}}}
    command = head_cmd(
        gcsFaultToleranceOptions={
            "redisAddress": "redis:6379",
            "redisPassword": secret,
            "redisUsername": {"value": "ray"},
        }
    )
    assert '--redis-password="$REDIS_PASSWORD"' in command
    assert '--redis-username="$REDIS_USERNAME"' in command
    assert "redis:6379" not in command  # the address travels as an env var


def test_fault_tolerance_leaves_workers_alone() -> None:
    body = cluster(
        gcsFaultToleranceOptions={"redisAddress": "redis:6379", "redisPassword": {"value": "pw"}}
    )
    command = ray_start(body, groups.worker_group(body, 0)).command
    assert "redis" not in command


# -- shell safety -------------------------------------------------------------------------------


def test_wrapped_resources_json_is_passed_as_written() -> None:
    value = '"{\\"TPU\\": 4}"'
    command = worker_cmd({"resources": value})
    assert f"--resources={value}" in command
    assert json.loads(flag_map(command)["resources"] or "") == {"TPU": 4}


def test_single_quoted_resources_json_is_passed_as_written() -> None:
    value = "'{\"TPU\": 4}'"
    assert f"--resources={value}" in worker_cmd({"resources": value})


def test_raw_resources_json_is_quoted_without_autoscaling() -> None:
    command = worker_cmd({"resources": '{"A": 1, "B": 2}'})
    assert json.loads(flag_map(command)["resources"] or "") == {"A": 1, "B": 2}


@pytest.mark.parametrize(
    ("value", "ray_gets"),
    [
        ("hello world", "hello world"),
        ("a;rm -rf /", "a;rm -rf /"),
        ("$(whoami)", "$(whoami)"),
        ("`id`", "`id`"),
        ("x*", "x*"),
        ("{a,b}", "{a,b}"),
        ("it's", "it's"),
        ("/tmp/ray", "/tmp/ray"),
    ],
)
def test_values_that_are_not_plain_words_reach_ray_literally(value: str, ray_gets: str) -> None:
    assert flag_map(worker_cmd({"temp-dir": value}))["temp-dir"] == ray_gets


@pytest.mark.parametrize("value", ["$MY_VAR", "${MY_VAR}", '"$MY_VAR"', "prefix-$MY_VAR"])
def test_env_references_are_left_for_bash(value: str) -> None:
    assert f"--node-name={value}" in worker_cmd({"node-name": value})


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_passes_each_value_as_one_argument() -> None:
    values = ["a b", '"{\\"TPU\\": 4}"', "{x,y}", "*", "$(echo hi)", "it's", "$HOME_X", "p;q"]
    params = {f"k{i}": v for i, v in enumerate(values)}
    command = worker_cmd(params)
    script = f'printf "%s\\n" {command.removeprefix("ray start ")}'
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True, env={"HOME_X": "/h"}
    )
    args = [line for line in out.stdout.splitlines() if line.startswith("--k")]
    assert args == [
        "--k0=a b",
        '--k1={"TPU": 4}',
        "--k2={x,y}",
        "--k3=*",
        "--k4=$(echo hi)",
        "--k5=it's",
        "--k6=/h",
        "--k7=p;q",
    ]


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("abc", True),
        ("a b", False),
        ('"a b"', True),
        ("'a", False),
        ("a\\", False),
        ("${A:-b}", False),
    ],
)
def test_plain_word_detection(text: str, plain: bool) -> None:
    assert is_plain_word(text) is plain
    assert (shell_word(text) == text) is plain


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "key", "fix"),
    [
        ({"--num-cpus": "1"}, "--num-cpus", "without leading dashes"),
        ({"num-cpus=1": "1"}, "num-cpus=1", "flag name"),
        ({"num cpus": "1"}, "num cpus", "flag name"),
        ({"": "1"}, "", "flag name"),
        ({"temp-dir": "/tmp\n/ray"}, "temp-dir", "single line"),
        ({"node-name": "a\rb"}, "node-name", "single line"),
        ({"num-cpus": "0.5"}, "num-cpus", "integer"),
        ({"num-cpus": "\u00b2"}, "num-cpus", "integer"),  # str.isdigit() would say yes
        ({"num-gpus": "1.0"}, "num-gpus", "integer"),
        ({"memory": "4Gi"}, "memory", "integer (bytes)"),
        ({"object-store-memory": "-1"}, "object-store-memory", "integer"),
        ({"metrics-export-port": "http"}, "metrics-export-port", "port number"),
        ({"dashboard-agent-listen-port": "70000"}, "dashboard-agent-listen-port", "port number"),
        ({"head": "true"}, "head", "cannot start a head"),
        ({"resources": "TPU=4"}, "resources", "JSON object"),
        ({"resources": '"{\\"TPU\\": \\"four\\"}"'}, "resources", "JSON object"),
        ({"temp-dir": ["a"]}, "temp-dir", "must be a string"),
    ],
)
def test_bad_worker_params_name_the_field_and_the_fix(
    params: dict[str, Any], key: str, fix: str
) -> None:
    body = cluster(workers=[worker("a"), worker("b", rayStartParams=params)])
    with pytest.raises(InvalidSpecError) as err:
        ray_start(body, groups.worker_group(body, 1))
    assert err.value.field == f'spec.workerGroupSpecs[1].rayStartParams["{key}"]'
    assert fix in err.value.message
    assert str(err.value).startswith(err.value.field)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"port": "gcs"}, "port"),
        ({"port": "\u00b2"}, "port"),
        ({"dashboard-port": "0"}, "dashboard-port"),
    ],
)
def test_bad_head_params_name_the_field(params: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        head_cmd(params)
    assert err.value.field == f'spec.headGroupSpec.rayStartParams["{key}"]'


def test_raw_resources_json_is_refused_when_the_autoscaler_must_read_it() -> None:
    body = cluster(
        enableInTreeAutoscaling=True, workers=[worker(rayStartParams={"resources": '{"TPU": 4}'})]
    )
    with pytest.raises(InvalidSpecError, match="wrapped in quotes") as err:
        ray_start(body, groups.worker_group(body, 0))
    assert err.value.field == 'spec.workerGroupSpecs[0].rayStartParams["resources"]'


@pytest.mark.parametrize("value", ["$(CPUS)", "$CPUS", "${CPUS}"])
def test_integer_params_may_reference_env_vars(value: str) -> None:
    assert flag_map(worker_cmd({"num-cpus": value}))["num-cpus"] == value


def test_non_string_scalars_are_read_as_text() -> None:
    got = flag_map(worker_cmd({"num-cpus": 4, "disable-usage-stats": True}))
    assert got["num-cpus"] == "4"
    assert got["disable-usage-stats"] is None


def test_bad_container_quantity_names_its_field() -> None:
    with pytest.raises(InvalidSpecError) as err:
        worker_cmd(container=resources(cpu="two"))
    assert (
        err.value.field
        == "spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits['cpu']"
    )


def test_building_never_changes_the_body() -> None:
    body = cluster(
        enableInTreeAutoscaling=True,
        head={"rayStartParams": {"num-cpus": "0"}},
        workers=[
            worker(rayStartParams={"block": "false"}, resources={"TPU": "4"}, labels={"a": "b"})
        ],
    )
    before = frozen(body)
    ray_start(body, groups.head_group(body))
    ray_start(body, groups.worker_group(body, 0))
    assert body == before


# -- the container command ---------------------------------------------------------------------


START = "ray start --head --block"


def test_container_without_command_runs_ulimit_then_ray_start() -> None:
    assert container_command({}, START, overwrite=False) == (
        ["/bin/bash", "-c", "--"],
        [f"ulimit -n 65536; {START}"],
    )


@pytest.mark.parametrize(
    ("container", "user_part"),
    [
        ({"command": ["echo", "hi"]}, "echo hi"),
        ({"args": ["pip install x"]}, "pip install x"),
        ({"command": ["bash", "-c"], "args": ["echo a; echo b"]}, "bash -c echo a; echo b"),
    ],
)
def test_user_command_runs_before_ray_start(container: dict[str, Any], user_part: str) -> None:
    command, args = container_command(container, START, overwrite=False) or ([], [])
    assert command == ["/bin/bash", "-c", "--"]
    assert args == [f"{user_part} && ulimit -n 65536; {START}"]


@pytest.mark.parametrize("user", ["true", "false"])
def test_ray_start_runs_even_if_the_user_command_fails(user: str) -> None:
    """KubeRay's joining, run by a real bash: `ray` is a stub that says it ran."""
    wrapped = container_command({"command": [user]}, "ray start --head", overwrite=False)
    assert wrapped is not None
    stub = "ray() { echo RAY-RAN; }; "
    done = subprocess.run(["bash", "-c", stub + wrapped[1][0]], capture_output=True, text=True)
    assert "RAY-RAN" in done.stdout


@pytest.mark.parametrize(
    "container",
    [
        {"command": ["/bin/bash", "-c", "ray start --head --block"]},
        {"args": ["sleep 1 && ray  start --address=x:6379"]},
        {"command": ["ray"], "args": ["start", "--head"]},
    ],
)
def test_user_command_with_ray_start_is_left_alone(container: dict[str, Any]) -> None:
    assert container_command(container, START, overwrite=False) is None


def test_overwrite_annotation_leaves_the_command_alone() -> None:
    assert container_command({"command": ["python", "main.py"]}, START, overwrite=True) is None


@pytest.mark.parametrize(
    ("cluster_annotations", "template_annotations", "expected"),
    [
        ({"ray.io/overwrite-container-cmd": "true"}, {}, True),
        ({}, {"ray.io/overwrite-container-cmd": "TRUE"}, True),
        ({"ray.io/overwrite-container-cmd": "false"}, {}, False),
        ({}, {}, False),
    ],
)
def test_overwrite_annotation_on_cluster_or_template(
    cluster_annotations: dict[str, str], template_annotations: dict[str, str], expected: bool
) -> None:
    group = worker()
    group["template"]["metadata"] = {"annotations": template_annotations}
    body = cluster(annotations=cluster_annotations, workers=[group])
    assert groups.overwrite_container_cmd(body, groups.worker_group(body, 0)) is expected
