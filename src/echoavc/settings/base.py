"""Shared pieces of the settings: the standard size, allowed values, their check, and JSON to settings."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping

from echoavc.errors import EchoAVCError

#: Side of the standard image (paper: 640x640, the YOLOv5 input, no distortion).
STANDARD_SIZE = 640

# ----------------------------------------------------------------------------- allowed values
# One home: the dataclasses check them on construction and the CLI offers them as choices.

COORDINATE_SPACES = ("original", "standard")
LABEL_IDS = ("auto", "original", "pseudonymous")
UNKNOWN_VIEWS = ("unlabelled", "background")
BALANCES = ("duplicate", "weights", "none")
ROTATIONS = ("copies", "online", "none")
MONITORS = ("loss", "auroc")
CALIBRATIONS = ("temperature", "isotonic", "none")
THRESHOLD_RULES = ("recall", "youden", "fixed")
CROSS_VALIDATE = ("auto", "always", "never")
EXAM_AGGREGATES = ("mean", "median", "max")
EXAM_THRESHOLD_RULES = ("recall", "youden", "frame")
#: Which frames predict screens (docs/phase.md): valve closed (the paper), all, the frame nearest end-diastole.
FRAME_POLICIES = ("closed", "all", "end-diastole")
#: Synthetic anatomy: the original generator, or thick speckled tissue with acquisition variety (docs/synth.md).
SYNTH_ANATOMIES = ("classic", "realistic")


def _check(obj, choices: dict[str, tuple] | None = None, shares: tuple[str, ...] = ()) -> None:
    """Raise one line for a field outside its allowed values (``choices``) or outside [0, 1] (``shares``)."""
    for name, allowed in (choices or {}).items():
        value = getattr(obj, name)
        if value not in allowed:
            raise EchoAVCError(f"{type(obj).__name__}.{name} must be one of {', '.join(allowed)}, not {value!r}")
    for name in shares:
        value = getattr(obj, name)
        if not 0.0 <= value <= 1.0:
            raise EchoAVCError(f"{type(obj).__name__}.{name} must be between 0 and 1, not {value!r}")



# ----------------------------------------------------------------------------- from JSON back to settings

#: Field names renamed since files were first written, {class name: {old: new}}: files written before
#: still read (one convention: ``batch`` for items per step, ``lr`` for the learning rate).
RENAMED_FIELDS: dict[str, dict[str, str]] = {
    "ClassifierSettings": {"batch_size": "batch"},
    "DetectorSettings": {"lr0": "lr"},
}


def from_dict(cls, data: Mapping, where=None):
    """Settings of dataclass ``cls`` from their JSON form (``dataclasses.asdict`` after a JSON round trip).

    Nested settings are rebuilt from their dicts and lists become tuples where the field is a tuple; fields
    absent from ``data`` keep their defaults; old field names (``RENAMED_FIELDS``) are read as the new ones.
    An unknown field is an error naming ``where`` (the file), not silently dropped: it would change results.
    """
    if not isinstance(data, Mapping):
        raise EchoAVCError(f"{cls.__name__}: expected a JSON object, not {type(data).__name__}", where)
    renamed = RENAMED_FIELDS.get(cls.__name__, {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in names and renamed.get(k) not in names]
    if unknown:
        raise EchoAVCError(f"unknown {cls.__name__} field(s) {', '.join(map(str, unknown))} (written by another "
                           "echoavc version?)", where)
    values = {renamed[k]: v for k, v in data.items() if k not in names}  # old names first: the new ones win
    values.update({k: v for k, v in data.items() if k in names})
    return cls(**{k: _from_json(hints[k], v, where) for k, v in values.items()})


def _from_json(hint, value, where):
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return from_dict(hint, value, where)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value
