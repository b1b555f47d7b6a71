"""``echoavc evaluate`` refuses options that only mean something with ``--exams`` instead of ignoring them."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner


@pytest.mark.parametrize("option", ["--key", "--labels"])
def test_an_exams_only_option_without_exams_is_an_error_naming_it(tmp_path, option):
    from echoavc.evaluate.cli import evaluate_command

    app = typer.Typer()
    app.command()(evaluate_command)
    given = tmp_path / "given.file"
    r = CliRunner().invoke(app, ["--model", str(tmp_path / "bundle"), "--data", str(tmp_path / "table"),
                                 "--out", str(tmp_path / "out"), option, str(given)])
    assert r.exit_code == 2
    line = " ".join(r.output.split())  # rich may wrap the line in a narrow terminal
    assert f"{given}: {option} applies to --exams only" in line, r.output
    assert not (tmp_path / "out").exists() and not given.exists()
