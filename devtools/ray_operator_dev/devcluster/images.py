"""`make images`: the Ray image and the operator image, built without a registry or a
daemon, cached by content hash, imported into a real node's containerd.

- base: a Debian bookworm rootfs from mmdebstrap (python3, bash, wget, ca-certificates,
  procps). Pinned by content: the recipe below plus the apt sources' snapshot.
- ray: base + /opt/ray, a venv with `ray[default]` installed from images/ray.lock
  (pip --require-hashes). wget is there for the operator's probes.
- operator: base + /opt/ray-operator, the operator from operator/requirements.lock,
  laid out as operator/Dockerfile lays it out (same user, paths, entrypoint).

Each image is an OCI archive in the cache (`~/.cache/ray-operator-images/`), named by
a hash of everything that goes into it, so a warm run only hashes its inputs.
    python -m ray_operator_dev.devcluster.images [--print]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .ociimage import LOCAL_PREFIX, write_archive

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("RAY_OPERATOR_IMAGES", "~/.cache/ray-operator-images")).expanduser()
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "bash", "wget", "ca-certificates", "procps")
RAY_LOCK = REPO / "images" / "ray.lock"
OPERATOR_LOCK = REPO / "operator" / "requirements.lock"
RAY_IMAGE = f"{LOCAL_PREFIX}ray:2.60.0"
OPERATOR_IMAGE = f"{LOCAL_PREFIX}ray-operator:0.1.0"
# Bumped whenever venv_layer's steps change, so cached layers of older steps are rebuilt.
LAYER_RECIPE = "2: venv, wheels, operator user"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def _apt_sources() -> bytes:
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    return b"".join(f.read_bytes() for f in files if f.is_file())


# The base rootfs is a function of these (and the apt sources): its cache key.
MMDEBSTRAP_ARGS = (
    "--variant=minbase",
    "--mode=root",
    "--format=tar",
    f"--include={','.join(BASE_PACKAGES)}",
    # No apt lists or caches in the image.
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
)


@dataclass
class Builder:
    cache: Path = CACHE

    def base_key(self) -> str:
        return _digest(SUITE.encode(), "\0".join(MMDEBSTRAP_ARGS).encode(), _apt_sources())

    def base_rootfs(self) -> Path:
        """The Debian rootfs as a layer tar (cached)."""
        out = self.cache / f"base-{self.base_key()}.tar"
        if out.exists():
            return out
        log(f"mmdebstrap {SUITE} ({', '.join(BASE_PACKAGES)}) -> {out.name}")
        start = time.monotonic()
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.tar")
        subprocess.run(
            ["mmdebstrap", *MMDEBSTRAP_ARGS, SUITE, str(tmp)],
            check=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": "0"},  # reproducible file times
        )
        tmp.replace(out)
        log(f"base built in {time.monotonic() - start:.0f}s")
        return out

    def venv_layer(self, name: str, lock: Path, prefix: str, local: Path | None = None) -> Path:
        """A layer holding only `prefix`: a venv made in a copy of the base rootfs
        (chroot) with `lock` installed (--require-hashes) from wheels the host's pip
        downloaded, plus `local`, a project built into a wheel here. Nothing inside
        the chroot touches the network."""
        key = _digest(self.base_key().encode(), lock.read_bytes(), LAYER_RECIPE.encode(),
                      _tree_bytes(local) if local else b"")  # fmt: skip
        out = self.cache / f"{name}-{key}.tar"
        if out.exists():
            return out
        log(f"{name}: venv {prefix} from {lock.relative_to(REPO)} -> {out.name}")
        start = time.monotonic()
        base = self.base_rootfs()
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            root = Path(tmp) / "rootfs"
            root.mkdir()
            subprocess.run(["tar", "-C", str(root), "-xf", str(base)], check=True)
            wheels = root / "tmp" / "wheels"
            host_pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
            subprocess.run([*host_pip, "download", "--quiet", "--require-hashes", "--no-deps",
                            "--only-binary=:all:", "--dest", str(self.cache / "wheels"),
                            "-r", str(lock)], check=True)  # fmt: skip
            shutil.copytree(self.cache / "wheels", wheels)
            shutil.copy(lock, root / "tmp" / "lock.txt")
            if local is not None:
                subprocess.run([*host_pip, "wheel", "--quiet", "--no-deps", "--wheel-dir",
                                str(root / "tmp" / "local"), str(local)], check=True)  # fmt: skip
            pip = [f"{prefix}/bin/pip", "install", "--no-cache-dir", "--disable-pip-version-check",
                   "--no-index", "--find-links", "/tmp/wheels"]  # fmt: skip
            _chroot(root, "python3", "-m", "venv", prefix)
            _chroot(root, *pip, "--require-hashes", "-r", "/tmp/lock.txt")
            if local is not None:
                for whl in (root / "tmp" / "local").glob("*.whl"):
                    _chroot(root, *pip, "--no-deps", f"/tmp/local/{whl.name}")
                # The user operator/Dockerfile creates: kopf looks its name up.
                _chroot(root, "groupadd", "--gid", "65532", "ray-operator")
                _chroot(root, "useradd", "--uid", "65532", "--gid", "65532", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        "ray-operator")  # fmt: skip
            tmp_tar = out.with_suffix(".tmp.tar")
            with tarfile.open(tmp_tar, "w", format=tarfile.PAX_FORMAT) as tar:
                tar.add(root / prefix.lstrip("/"), arcname=prefix.lstrip("/"), filter=_normalise)
                if local is not None:
                    for etc in ("passwd", "group", "shadow", "gshadow"):
                        tar.add(root / "etc" / etc, arcname=f"etc/{etc}", filter=_normalise)
            tmp_tar.replace(out)
        log(f"{name}: built in {time.monotonic() - start:.0f}s")
        return out

    def current(self) -> set[Path]:
        """Every cached archive the current inputs use."""
        ray_venv = self.venv_layer("ray-venv", RAY_LOCK, "/opt/ray")
        op_venv = self.venv_layer("operator-venv", OPERATOR_LOCK, "/opt/ray-operator", REPO)
        return {self.base_rootfs(), ray_venv, op_venv, self.ray(), self.operator()}

    def ray(self) -> Path:
        layer = self.venv_layer("ray-venv", RAY_LOCK, "/opt/ray")
        return self._image("ray", RAY_IMAGE, [self.base_rootfs(), layer], {
            "Env": [f"PATH=/opt/ray/bin:{PATH}", "PYTHONUNBUFFERED=1"],
            "Cmd": ["/bin/bash"],
            "WorkingDir": "/tmp",
        })  # fmt: skip

    def operator(self) -> Path:
        layer = self.venv_layer("operator-venv", OPERATOR_LOCK, "/opt/ray-operator", REPO)
        # As operator/Dockerfile: its own user, no writable path but /tmp.
        return self._image("operator", OPERATOR_IMAGE, [self.base_rootfs(), layer], {
            "Env": [f"PATH=/opt/ray-operator/bin:{PATH}", "PYTHONDONTWRITEBYTECODE=1",
                    "PYTHONUNBUFFERED=1"],
            "User": "65532:65532",
            "Entrypoint": ["ray-operator", "run"],
            "Cmd": ["--all-namespaces"],
            "ExposedPorts": {"8080/tcp": {}, "8081/tcp": {}},
        })  # fmt: skip

    def prune(self, keep: set[Path]) -> None:
        """Remove cached archives of older inputs (each build names its own)."""
        for f in self.cache.glob("*.tar"):
            if f not in keep:
                f.unlink()

    def _image(self, name: str, ref: str, layers: list[Path], config: dict) -> Path:
        key = _digest(ref.encode(), repr(sorted(config.items())).encode(),
                      *(p.name.encode() for p in layers))  # fmt: skip
        out = self.cache / f"{name}-image-{key}.tar"
        if not out.exists():
            write_archive(out, ref, layers, config)
        return out


def _tree_bytes(root: Path) -> bytes:
    """What of the operator's source goes into its image (for the cache key)."""
    parts = [(root / "pyproject.toml").read_bytes(), (root / "README.md").read_bytes()]
    for f in sorted((root / "operator" / "ray_operator").rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            parts += [str(f.relative_to(root)).encode(), f.read_bytes()]
    return b"\0".join(parts)


def _chroot(root: Path, *args: str) -> None:
    subprocess.run(["chroot", str(root), *args], check=True, env={"PATH": PATH, "HOME": "/tmp"})


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ray_operator_dev.devcluster.images")
    parser.parse_args(argv)
    start = time.monotonic()
    builder = Builder()
    for name, build in (("ray", builder.ray), ("operator", builder.operator)):
        path = build()
        print(f"{name}: {path}")
    builder.prune(builder.current())
    log(f"done in {time.monotonic() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
