"""Helpers shared by test modules (import as ``from testkit import ...``; conftest files are not modules)."""

from __future__ import annotations

import contextlib
import logging
from html.parser import HTMLParser
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def shipped_file(name: str) -> Path:
    """A file shipped with pydicom or pydicom-data, by exact name (never a glob: that goes online)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)  # never a download: the guard would fail the test
    if path is None:  # a declared test dependency: missing means a broken install, not a reason to skip
        pytest.fail(f"{name} not installed: pydicom-data is a test dependency (pip install -e '.[test]')")
    return Path(path)


def need_tool(name: str) -> str:
    """The path of an external program a test calls. Missing: a skip on a developer machine, a failure where the
    tools are required (``ECHOAVC_REQUIRE_TOOLS``, set by .ci/run after installing them)."""
    import os
    import shutil

    path = shutil.which(name)
    if path is None:
        if os.environ.get("ECHOAVC_REQUIRE_TOOLS"):
            pytest.fail(f"{name} is required (ECHOAVC_REQUIRE_TOOLS is set) but not installed")
        pytest.skip(f"{name} is not installed")
    return path


def dciodvfy_errors(path) -> list[str]:
    """dciodvfy's error lines for ``path`` (dicom3tools: .ci/run installs it; missing, a skip here and a failure
    where tools are required or under CI)."""
    import os
    import shutil
    import subprocess

    if shutil.which("dciodvfy") is None and os.environ.get("CI") == "true":
        pytest.fail("dciodvfy (dicom3tools) is not installed")
    tool = need_tool("dciodvfy")
    res = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")]


#: Every ultrasound file shipped in pydicom and pydicom-data (Modality US), by name.
ULTRASOUND_FILES = [
    "ExplVR_BigEnd.dcm", "examples_jpeg2k.dcm", "examples_palette.dcm", "examples_rgb_color.dcm",
    "examples_ybr_color.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "OBXXXX1A.dcm", "OBXXXX1A_2frame.dcm",
    "OBXXXX1A_expb.dcm", "OBXXXX1A_expb_2frame.dcm", "OBXXXX1A_rle.dcm", "OBXXXX1A_rle_2frame.dcm",
    "US1_J2KI.dcm", "US1_J2KR.dcm", "US1_UNCI.dcm", "US1_UNCR.dcm", "color-pl.dcm", "color-px.dcm",
    "color3d_jpeg_baseline.dcm", "gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm",
]


# ---------------------------------------------------------------- HTML reports

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Tags the report may use; anything else means input text leaked in as markup.
ALLOWED = VOID | {"html", "head", "title", "style", "script", "body", "h1", "h2", "h3", "p", "div", "span", "b",
                  "a", "table", "thead", "tbody", "tr", "th", "td", "dl", "dt", "dd", "ul", "li"}


class StrictChecker(HTMLParser):
    """Every non-void tag closed, in order; no unknown tags; collects links, ids and table rows."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.imgs: list[dict] = []
        self.ids: list[str] = []
        self.doctype = None
        self.tables: dict[str, dict] = {}
        self._table: list[str] = []
        self.text: list[str] = []

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ALLOWED:
            self.errors.append(f"unexpected tag <{tag}> at {self.getpos()}")
        for k in ("href", "src"):
            if k in a:
                self.links.append(a[k])
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a)
        if tag == "table":
            self._table.append(a.get("id", f"anon{len(self.tables)}"))
            self.tables[self._table[-1]] = {"body_rows": 0, "imgs": 0, "links": 0, "head": []}
        if self._table and "tbody" in self.stack:
            t = self.tables[self._table[-1]]
            if tag == "tr" and self.stack[-1] == "tbody":
                t["body_rows"] += 1
            if tag == "img":
                t["imgs"] += 1
            if tag == "a":
                t["links"] += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag not in VOID:
            self.errors.append(f"self-closed non-void <{tag}/> at {self.getpos()}")
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            self.errors.append(f"end tag for void </{tag}> at {self.getpos()}")
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} does not close {self.stack[-1:]}")
            return
        self.stack.pop()
        if tag == "table":
            self._table.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] in ("script", "style"):
            return
        self.text.append(data)
        if self._table and self.stack and self.stack[-1] == "th":
            self.tables[self._table[-1]]["head"].append(data)


def check_html(text: str) -> StrictChecker:
    p = StrictChecker()
    p.feed(text)
    p.close()
    assert not p.errors, p.errors
    assert not p.stack, f"unclosed tags: {p.stack}"
    assert p.doctype and p.doctype.lower() == "doctype html"
    return p


@contextlib.contextmanager
def ultralytics_records():
    """The records Ultralytics' logger lets through while the block runs (a list, filled as they come). Its own
    handler keeps the stream it was made with, so capfd and capsys do not reliably see what it prints."""
    from ultralytics.utils import LOGGER

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    LOGGER.addHandler(handler)
    try:
        yield records
    finally:
        LOGGER.removeHandler(handler)
