"""Read the pinned tool versions from ci/versions.env (the one file that pins them)."""

from __future__ import annotations

from pathlib import Path

VERSIONS_FILE = Path(__file__).resolve().parent.parent / "ci" / "versions.env"


def pinned(name: str) -> str:
    for line in VERSIONS_FILE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    raise KeyError(f"{name} is not pinned in {VERSIONS_FILE}")
