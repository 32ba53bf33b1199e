"""The two small images every real node needs, made from files on this machine and
imported into its containerd: the pod sandbox (`pause`, built from the pinned
Kubernetes source) and `busybox` (Debian's static busybox: a shell, wget, nslookup),
for smoke tests of the node itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .ociimage import LOCAL_PREFIX, Layer, write_archive

PAUSE_IMAGE = f"{LOCAL_PREFIX}pause:node"
BUSYBOX_IMAGE = f"{LOCAL_PREFIX}busybox:node"
BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = ("sh", "wget", "nslookup", "cat", "sleep", "test", "ls", "ip", "nc")


def pause_archive(bin_dir: Path, out: Path) -> Path:
    layer = Layer(files={"/pause": (bin_dir / "pause", 0o755)})
    write_archive(out, PAUSE_IMAGE, [layer.tar_bytes()], {"Entrypoint": ["/pause"]})
    return out


def busybox_archive(out: Path) -> Path:
    layer = Layer(
        files={
            "/bin/busybox": (BUSYBOX, 0o755),
            "/etc/passwd": (b"root:x:0:0::/:/bin/sh\n", 0o644),
        },
        dirs={"/tmp": 0o1777},
        symlinks={f"/bin/{a}": "busybox" for a in BUSYBOX_APPLETS},
    )
    config = {"Entrypoint": ["/bin/sh"], "Env": ["PATH=/bin"]}
    write_archive(out, BUSYBOX_IMAGE, [layer.tar_bytes()], config)
    return out


def import_archive(containerd_address: Path, archive: Path) -> None:
    """Load an OCI archive into containerd's Kubernetes namespace, unpacked for the
    snapshotter the CRI plugin uses, so pods start without any pull."""
    ctr = shutil.which("ctr") or "ctr"
    subprocess.run(
        [ctr, "--address", str(containerd_address), "-n", "k8s.io", "images", "import",
         "--snapshotter", "overlayfs", str(archive)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
