"""Checks over the source files themselves: nothing downloads at run time, and every file compiles cleanly."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sources() -> list[Path]:
    return sorted(p for folder in ("src", "benchmarks", "tests") for p in (ROOT / folder).rglob("*.py"))


def test_every_pydicom_test_data_lookup_passes_download_false():
    """pydicom's test-data lookups fetch a missing file from the internet unless told not to."""
    offenders = []
    for path in _sources():
        text = path.read_text()
        if "get_testdata_file" not in text:
            continue
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                    "get_testdata_file", "get_testdata_files"):
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get("download"), ast.Constant) and kw["download"].value is False):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_no_source_has_an_invalid_escape_sequence():
    """``"\\ "`` in a plain string is a DeprecationWarning now (a SyntaxWarning from Python 3.12, later an error)."""
    import warnings

    offenders = []
    for path in _sources():
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            warnings.simplefilter("error", SyntaxWarning)
            try:
                compile(path.read_text(), str(path), "exec")
            except (SyntaxError, DeprecationWarning, SyntaxWarning) as exc:
                offenders.append(f"{path.relative_to(ROOT)}: {exc}")
    assert not offenders, offenders
