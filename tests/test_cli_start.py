"""The CLI starts without the heavy libraries: every command's start (``echoavc --help`` included) imports each
stage's cli module, and a stage package that imported all its submodules made each start pay about a second
for pandas, SciPy, pydicom and OpenCV (echoavc.lazy). Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "scipy", "sklearn", "pydicom", "cv2", "torch", "timm", "onnxruntime", "ultralytics")


def _run(code: str):
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_library():
    loaded = _run(f"import json, sys, echoavc.cli; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert loaded == []


def test_a_lazy_export_is_the_same_object_as_its_submodules_and_unknown_names_fail():
    got = _run(
        "import json\n"
        "import echoavc.dataset.folders as folders\n"  # the submodule first: the package name stays the function
        "import echoavc.dataset as ds, echoavc.evaluate as ev, echoavc.evaluate.intervals as iv\n"
        "from echoavc.dataset import materialise\n"
        "try:\n    ds.no_such_name; missing = False\nexcept AttributeError:\n    missing = True\n"
        "print(json.dumps([materialise is folders.materialise, ev.wilson is iv.wilson, 'make_split' in dir(ds),"
        " missing]))")
    assert got == [True, True, True, True]
