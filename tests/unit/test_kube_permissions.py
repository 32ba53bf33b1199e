"""Every API call the operator makes declares the RBAC it needs: the chart's RBAC is
checked against that table (tests/chart/test_rbac.py), so an undeclared call would slip
through. These tests make sure none can."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import ray_operator
from ray_operator.kube import API_PERMISSIONS, KubeApi

TRANSPORT = {"request", "watch", "list_pages"}  # generic: only kube.py's methods use them
PACKAGE = Path(ray_operator.__file__).parent


def test_every_public_api_method_declares_its_permissions():
    public = {
        name
        for name, member in inspect.getmembers(KubeApi, inspect.isfunction)
        if not name.startswith("_") and name not in TRANSPORT
    }
    assert public - set(API_PERMISSIONS) == set()


def test_nothing_outside_kube_py_uses_the_generic_transport():
    """Runtime code outside kube.py calls declared methods only."""
    generic = re.compile(r"\bapi\w*\.(request|watch|list_pages)\(")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "kube.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if generic.search(line)
    ]
    assert offenders == []
