"""OCI image archives written directly from files on this machine: no registry, no
daemon. Deterministic (sorted entries, fixed times and owners), so the same files give
the same image digest and a cache keyed by content stays valid.

The archive is an OCI image layout in a tar (`oci-archive:`), which `ctr images
import` loads into containerd under the name in its index annotations.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

# `.invalid` can never resolve (RFC 6761): these names cannot be pulled from anywhere.
LOCAL_PREFIX = "devcluster.invalid/"


@dataclass
class Layer:
    """Files for one layer: path in the image -> (host file or bytes, mode)."""

    files: dict[str, tuple[Path | bytes, int]] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, int] = field(default_factory=dict)  # empty directories: path -> mode

    def tar_bytes(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            dirs = sorted({str(Path(p).parent) for p in [*self.files, *self.symlinks]} - {".", "/"})
            for d in _with_parents(sorted({*dirs, *self.dirs})):
                mode = self.dirs.get("/" + d, self.dirs.get(d, 0o755))
                tar.addfile(_info(d, tarfile.DIRTYPE, mode))
            for path in sorted(self.symlinks):
                info = _info(path, tarfile.SYMTYPE, 0o777)
                info.linkname = self.symlinks[path]
                tar.addfile(info)
            for path in sorted(self.files):
                source, mode = self.files[path]
                data = source.read_bytes() if isinstance(source, Path) else source
                info = _info(path, tarfile.REGTYPE, mode)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def _with_parents(dirs: list[str]) -> list[str]:
    out: set[str] = set()
    for d in dirs:
        parts = Path(d.lstrip("/")).parts
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(out)


def _info(path: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type, info.mode, info.mtime = kind, mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _sha256(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    h = hashlib.sha256()
    with data.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _blob(tar: tarfile.TarFile, data: bytes | Path, media_type: str) -> dict:
    digest = _sha256(data)
    info = _info(f"blobs/sha256/{digest}", tarfile.REGTYPE, 0o644)
    if isinstance(data, bytes):
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:  # a layer file: streamed, never held in memory
        info.size = data.stat().st_size
        with data.open("rb") as f:
            tar.addfile(info, f)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": info.size}


def write_archive(
    path: Path, name: str, layer_tars: list[bytes | Path], config: dict[str, object]
) -> str:
    """Write an OCI archive of an image `name` (amd64 linux) with uncompressed layers
    (tar bytes or tar files) and the image `config` (Entrypoint, Cmd, Env, ...).
    Returns the manifest digest."""
    diff_ids = [f"sha256:{_sha256(t)}" for t in layer_tars]
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        layers = [_blob(tar, t, "application/vnd.oci.image.layer.v1.tar") for t in layer_tars]
        cfg = _blob(tar, _json(image_config), "application/vnd.oci.image.config.v1+json")
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg,
            "layers": layers,
        }
        desc = _blob(tar, _json(manifest), "application/vnd.oci.image.manifest.v1+json")
        desc["annotations"] = {
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1],
        }
        for fname, body in (
            ("oci-layout", {"imageLayoutVersion": "1.0.0"}),
            ("index.json", {"schemaVersion": 2, "manifests": [desc]}),
        ):
            data = _json(body)
            info = _info(fname, tarfile.REGTYPE, 0o644)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)
    return desc["digest"]


def _json(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
