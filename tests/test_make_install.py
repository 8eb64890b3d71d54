"""What each README command installs (README, "Running"): `make run` the server alone, the
development tools with `make test`, the load generators with `make bench`. Read from make's
dry run (``-n -B``: every command printed, nothing run) and from pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
DEV_TOOLS = ("mypy", "ruff", "selenium", "matplotlib", "pytest", "py-spy", "schemathesis")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _installs(target: str) -> list[str]:
    """The ``pip install -e`` lines ``make TARGET`` would run on a machine without a venv."""
    assert MAKE is not None
    out = subprocess.run(  # noqa: S603 (fixed arguments)
        [MAKE, "-n", "-B", target, "VENV=/nonexistent/sphere-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [line for line in out.splitlines() if "pip install" in line and " -e " in line]


def test_make_run_installs_the_server_alone() -> None:
    installs = _installs("run")
    assert installs
    assert all("[" not in line for line in installs), installs


def test_the_server_s_dependencies_hold_no_development_tool() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = " ".join(project["dependencies"]).lower()
    assert not [tool for tool in DEV_TOOLS if tool in names]


def test_make_test_and_make_bench_add_their_extras() -> None:
    assert any("dev" in line for line in _installs("test"))
    assert any("bench" in line for line in _installs("bench"))
