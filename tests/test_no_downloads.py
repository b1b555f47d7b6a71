"""Nothing downloads at run time: every call of pydicom's test-data lookups (which fetch a missing file from the
internet unless told not to) in the package, the benchmarks and the tests passes ``download=False``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_pydicom_test_data_lookup_passes_download_false():
    offenders = []
    for path in sorted(p for folder in ("src", "benchmarks", "tests") for p in (ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                    "get_testdata_file", "get_testdata_files"):
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get("download"), ast.Constant) and kw["download"].value is False):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
