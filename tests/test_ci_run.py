""".ci/run stops when a tool the tests need cannot be installed (it used to warn and go on, so CI skipped the
tests that need it and passed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "run"


def _stub(folder: Path, name: str, body: str) -> None:
    p = folder / name
    p.write_text(f"#!/bin/sh\n{body}\n")
    p.chmod(0o755)


def _run_with(tmp_path: Path, tools: tuple[str, ...]) -> tuple[subprocess.CompletedProcess, Path]:
    """Run .ci/run with a PATH holding only ``tools`` (stubs), an apt-get that fails, and a python3 that records
    being called (it must not be, when a tool is missing)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    os.symlink(shutil.which("dirname"), bin_ / "dirname")
    marker = tmp_path / "python3_called"
    _stub(bin_, "apt-get", "exit 100")
    _stub(bin_, "python3", f"echo called > {marker}; exit 1")
    for t in tools:
        _stub(bin_, t, "exit 0")
    env = {"PATH": str(bin_), "HOME": str(tmp_path)}
    res = subprocess.run([shutil.which("bash"), str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    return res, marker


TOOLS = ("dciodvfy", "node", "Orthanc", "findscu", "storescu", "chromium", "chromedriver")


@pytest.mark.parametrize("present, missing", [((), "dciodvfy")] +
                         [(tuple(t for t in TOOLS if t != gone), gone) for gone in TOOLS])
def test_ci_fails_when_a_tool_cannot_be_installed(tmp_path, present, missing):
    res, marker = _run_with(tmp_path, present)
    assert res.returncode != 0
    assert f"error: {missing} is needed by the tests but could not be installed" in res.stderr, res.stderr
    assert not marker.exists()  # stopped before installing and running the tests


def test_ci_goes_on_to_the_tests_when_the_tools_are_there(tmp_path):
    res, marker = _run_with(tmp_path, TOOLS)
    assert marker.exists() and "error:" not in res.stderr  # reached the README's test command (the stub)


def test_a_missing_tool_fails_the_test_where_tools_are_required(monkeypatch):
    from testkit import need_tool

    monkeypatch.setenv("ECHOAVC_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match="no-such-tool-xyz is required"):
        need_tool("no-such-tool-xyz")
    monkeypatch.delenv("ECHOAVC_REQUIRE_TOOLS")
    with pytest.raises(pytest.skip.Exception):  # a developer machine without it: a skip
        need_tool("no-such-tool-xyz")
    assert need_tool("bash") == shutil.which("bash")
