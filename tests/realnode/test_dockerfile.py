"""operator/Dockerfile, unchanged, builds a working image: buildah runs it without a
daemon. Its base is the `make images` Debian rootfs plus the `python` name the official
Python images provide, given through the Dockerfile's own BASE_IMAGE argument, since no
image registry is reachable here. pip inside the build reads this machine's pip
configuration and CA bundle, mounted for the build only (how a build behind a proxy
gets them; nothing of it lands in the image).

The image runs as uid 65532, reports the package version, and holds none of the
development tooling (`ray_operator_dev`)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import ray_operator
from ray_operator_dev.devcluster.images import Builder

REPO = Path(__file__).resolve().parents[2]
HOST_BUILD_MOUNTS = [
    f"{path}:{path}:ro"
    for path in (Path("/etc/pip.conf"), Path("/etc/ssl/certs/ca-certificates.crt"))
    if path.exists()
]


@pytest.fixture(scope="module")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    if shutil.which("buildah") is None or shutil.which("mmdebstrap") is None:
        pytest.skip("buildah or mmdebstrap missing (make real-node-deps)")
    store = tmp_path_factory.mktemp("buildah")
    command = ["buildah", "--root", str(store / "root"), "--runroot", str(store / "run"),
               "--storage-driver", "vfs"]  # fmt: skip
    yield command
    subprocess.run([*command, "rm", "--all"], capture_output=True)
    subprocess.run(["rm", "-rf", str(store)], check=False)


def run(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=900)
    assert result.returncode == 0, (
        f"$ {' '.join(args)}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result.stdout


def test_the_dockerfile_builds_a_non_root_image_without_dev_tooling(buildah: list[str]) -> None:
    base = buildah_base(buildah)
    mounts = [arg for mount in HOST_BUILD_MOUNTS for arg in ("-v", mount)]
    run(*buildah, "bud", "--isolation", "chroot", *mounts, "--build-arg",
        f"BASE_IMAGE={base}", "-f", "operator/Dockerfile", "-t", "localhost/ray-operator:test",
        ".", cwd=REPO)  # fmt: skip
    config = run(*buildah, "inspect", "--format", "{{.OCIv1.Config.User}} "
                 "{{.OCIv1.Config.Entrypoint}}", "localhost/ray-operator:test")  # fmt: skip
    assert config.split()[0] == "65532:65532", config
    container = run(*buildah, "from", "localhost/ray-operator:test").strip()
    in_image = [*buildah, "run", "--isolation", "chroot", container, "--"]
    assert run(*in_image, "ray-operator", "--version").strip() == ray_operator.__version__
    assert run(*in_image, "id", "-u").strip() == "65532"
    probe = "import importlib.util as u; print(u.find_spec('ray_operator_dev'))"
    assert run(*in_image, "/opt/ray-operator/bin/python", "-c", probe).strip() == "None"
    listing = run(*in_image, "/opt/ray-operator/bin/python", "-c",
                  "import ray_operator, pathlib; print(*sorted(p.name for p in "
                  "pathlib.Path(ray_operator.__file__).parent.iterdir()))")  # fmt: skip
    assert "devcluster" not in listing and "crd" not in listing.split(), listing


def buildah_base(buildah: list[str]) -> str:
    """The `make images` Debian rootfs (python3, venv) as a local image, with the
    `python` command the Dockerfile's default base has."""
    rootfs = Builder().base_rootfs()
    container = run(*buildah, "from", "scratch").strip()
    run(*buildah, "add", container, str(rootfs), "/")
    run(*buildah, "run", "--isolation", "chroot", container, "--",
        "ln", "-sf", "/usr/bin/python3", "/usr/local/bin/python")  # fmt: skip
    run(*buildah, "commit", container, "localhost/ray-operator-base:test")
    return "localhost/ray-operator-base:test"
