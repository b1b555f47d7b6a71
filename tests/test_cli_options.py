"""One spelling across the CLI: ``--data DATASET`` for a dataset folder (``--table`` still works) and
``--split SPLIT`` (default DATA/split.json) for the split file."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from echoavc.cli import app
from echoavc.cliutil import DATA_HELP, SPLIT_HELP

runner = CliRunner()

#: Every sub-command that takes a dataset folder (the output of ``echoavc dataset build``).
DATA_COMMANDS = [
    ("dataset", "split"), ("dataset", "materialise"), ("dataset", "export"), ("augment",), ("train",),
    ("detector", "train"), ("detector", "evaluate"),
    ("classifier", "train"), ("classifier", "evaluate"), ("classifier", "explain"),
    ("experiments", "table1"), ("experiments", "table2"), ("experiments", "table3"), ("experiments", "table4"),
    ("evaluate",), ("views", "train"), ("views", "evaluate"),
]


def _is_option(p) -> bool:  # typer vendors its own click: duck-type instead of isinstance(click.Option)
    return getattr(p, "param_type_name", None) == "option"


def _commands(cmd, path: tuple = ()):
    """(path, command) for every leaf command, and for groups that run a callback of their own (augment)."""
    if hasattr(cmd, "commands"):
        if path and any(_is_option(p) for p in cmd.params):
            yield path, cmd
        for name, sub in cmd.commands.items():
            yield from _commands(sub, path + (name,))
    else:
        yield path, cmd


def _options(path: tuple) -> dict:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return {p.name: p for p in cmd.params if _is_option(p)}


@pytest.mark.parametrize("path", DATA_COMMANDS, ids=lambda p: " ".join(p))
def test_every_dataset_command_takes_data(path):
    res = runner.invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    text = " ".join(re.sub(r"[\u2500-\u257f]", " ", res.output).split())  # without rich's box, unwrapped
    assert "--data" in text and "DATASET" in text and "--table is the old name" in text, text
    opts = _options(path)
    assert opts["data"].opts == ["--data", "--table"] and opts["data"].help == DATA_HELP
    if "split" in opts:
        assert opts["split"].opts == ["--split"] and opts["split"].help == SPLIT_HELP
        assert opts["split"].default is None  # None: DATA/split.json


def test_no_other_spelling_anywhere():
    """Whatever command takes --data/--table or --split, it is the shared option (same name, same help)."""
    seen = set()
    for path, cmd in _commands(typer.main.get_command(app)):
        for p in cmd.params:
            if not _is_option(p):
                continue
            if {"--data", "--table"} & set(p.opts):
                assert p.name == "data" and p.opts == ["--data", "--table"], (path, p.opts)
                seen.add(path)
            if "--split" in p.opts:
                assert p.name == "split" and p.help == SPLIT_HELP, (path, p.opts)
    assert seen == set(DATA_COMMANDS)


@pytest.mark.parametrize("path", [("dataset", "split"), ("dataset", "export"), ("dataset", "materialise"),
                                  ("augment",), ("detector", "train")], ids=lambda p: " ".join(p))
def test_old_table_spelling_still_works(path, tmp_path):
    missing = tmp_path / "no_such_dataset"
    extra = [] if path in (("augment",), ("dataset", "split")) else ["--out", str(tmp_path / "out")]
    outputs = []
    for spelling in ("--data", "--table"):
        res = runner.invoke(app, [*path, spelling, str(missing), *extra])
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and "no table.csv" in lines[0], res.output
        outputs.append(res.output)
    assert outputs[0] == outputs[1]


def test_cli_shows_echoavc_warnings_by_category_not_by_text(capsys):
    """What the CLI shows is chosen by warning category: ours, one line each; a library's warning that happens to
    say "pretrained" stays hidden."""
    import warnings

    from echoavc.classifier.model import PretrainedWarning
    from echoavc.cliutil import err, user_warnings
    from echoavc.errors import EchoAVCWarning

    with err.capture() as cap:
        with user_warnings():
            warnings.warn("timm: the pretrained argument is deprecated", UserWarning)
            warnings.warn("no calibration (one class); probabilities are sigmoid(logit)", EchoAVCWarning)
            warnings.warn("efficientnet_b0: no pretrained weights; training from scratch", PretrainedWarning)
    shown = cap.get()
    assert "no calibration" in shown and "training from scratch" in shown
    assert "deprecated" not in shown and shown.count("warning:") == 2
    with err.capture() as cap, pytest.raises(RuntimeError):
        with user_warnings():  # a failed command shows its error, not warnings on the way
            warnings.warn("half done", EchoAVCWarning)
            raise RuntimeError("boom")
    assert "half done" not in cap.get()


def test_error_outside_a_command_keeps_its_brackets(monkeypatch, capsys):
    """An error raised outside a command's own handler still prints its reason whole, brackets and all."""
    import echoavc.cli as cli
    from echoavc.errors import EchoAVCError

    def broken_app():
        raise EchoAVCError("engine ray: install it with pip install 'echoavc[ray]'")

    monkeypatch.setattr(cli, "app", broken_app)
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    assert "pip install 'echoavc[ray]'" in capsys.readouterr().err
