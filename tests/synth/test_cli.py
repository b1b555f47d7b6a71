"""``echoavc synth`` and the gallery."""

from __future__ import annotations

import cv2
import pytest
from typer.testing import CliRunner

from echoavc.cli import app


def test_synth_command_writes_cohort_and_gallery(tmp_path):
    out = tmp_path / "c"
    res = CliRunner().invoke(app, ["synth", "--patients", "2", "--out", str(out), "--seed", "3",
                                   "--frames-per-exam", "3", "--gallery", "--no-progress", "--workers", "1"])
    assert res.exit_code == 0, res.output
    for name in ("frames.csv", "labels.csv", "maxqda_valves.csv", "cohort.json", "gallery.png"):
        assert (out / name).is_file()
    img = cv2.imread(str(out / "gallery.png"))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 1000


def assert_one_line_error(res, *fragments, code=2):
    """A user error as the CLI promises it: the exit code, the reason on one line, no traceback."""
    assert isinstance(res.exception, SystemExit), f"crashed: {res.exception!r}"
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    text = " ".join(res.output.split())  # typer boxes usage errors over several lines: judge the words
    for f in fragments:
        assert f in text, (f, res.output)


def test_synth_command_rejects_bad_prevalence(tmp_path):
    res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path), "--prevalence", "2"])
    assert_one_line_error(res, "Invalid value for '--prevalence'", "less than or equal to 1")
    assert not (tmp_path / "frames.csv").exists()


def test_synth_command_reports_a_bad_output_folder_in_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    res = CliRunner().invoke(app, ["synth", "--out", str(blocker / "c"), "--patients", "1", "--no-progress",
                                   "--workers", "1"])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), f"{res.output} {res.exception!r}"
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(blocker) in lines[0], res.output


def test_the_error_check_rejects_a_crash(tmp_path, monkeypatch):
    """What the old ``exit_code != 0`` let through: an uncaught exception (exit 1, a traceback in --debug)."""
    import echoavc.synth.cohort

    def crash(*a, **k):
        raise ValueError("prevalence out of range")

    monkeypatch.setattr(echoavc.synth.cohort, "make_cohort", crash)
    res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path), "--prevalence", "0.5"])
    assert res.exit_code != 0  # the old assertion passes on a crash ...
    with pytest.raises(AssertionError, match="crashed"):
        assert_one_line_error(res, "prevalence")  # ... the new one does not


def test_gallery_without_reference_clips_says_so_and_downloads_nothing(cohort, tmp_path, monkeypatch):
    import pydicom.data

    from echoavc.synth.gallery import make_gallery

    asked = []

    def not_installed(name, read=False, download=True):
        asked.append(download)
        return None

    monkeypatch.setattr(pydicom.data, "get_testdata_file", not_installed)
    with pytest.warns(UserWarning, match="reference clips missing.*pip install pydicom-data"):
        sheet = make_gallery(cohort.out_dir, tmp_path / "g.png")
    assert asked and not any(asked)  # always asked with download=False
    assert cv2.imread(str(sheet)) is not None
