"""What ships: the operator's package and image hold only what the operator runs.

The local control plane and the CRD generator live in `devtools/` (`ray_operator_dev`),
installed into the development virtualenv only. These tests read the packaging inputs
(setuptools' package discovery, the Docker build context, the imports) rather than
building an image, which needs a daemon this machine lacks.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "ray_operator"


def test_the_distribution_holds_the_runtime_package_only() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    where = config["packages"]["find"]["where"]
    found = {
        package
        for folder in where
        for package in find_packages(
            str(REPO / folder), include=config["packages"]["find"]["include"]
        )
    }
    assert found == {"ray_operator", "ray_operator.builders", "ray_operator.rayjob"}, found
    assert config["package-data"] == {"ray_operator": ["py.typed"]}


def test_the_runtime_package_never_imports_dev_tooling() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("ray_operator_dev")]
    assert offenders == []


def test_the_image_build_context_excludes_dev_tooling() -> None:
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "the context starts empty and lists what it lets in"
    allowed = [rule[1:].rstrip("/") for rule in rules if rule.startswith("!")]
    assert "operator/ray_operator" in allowed
    assert not [rule for rule in allowed if rule.startswith("devtools")]
    dockerfile = (REPO / "operator" / "Dockerfile").read_text()
    assert "COPY operator/ray_operator ./operator/ray_operator" in dockerfile
    assert "devtools" not in dockerfile
