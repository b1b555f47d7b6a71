"""MAXQDA-style CSV of valve rectangles (the paper's annotation export).

Schema (column names configurable through :class:`~echoavc.settings.MaxqdaColumns`)::

    image,code,x,y,width,height,coordinate_space
    <source_sha256>:<frame_index>,Aortic valve,212.0,180.5,96.0,88.0,original

``image`` may also be the ingest ``image_path`` or its file name; separate
``source_sha256`` and ``frame_index`` columns are used when present. ``x``/``y`` are
the top-left corner, ``width``/``height`` the size, in pixel-edge coordinates of
``coordinate_space`` (``original`` | ``standard``; the ``--space`` option when the
column is absent or empty). The separator (comma, semicolon or tab) is detected.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from echoavc.annotations.boxes import (
    SPACES, BoxFile, FrameIndex, Problem, ValveBox, boxes_in_space, check_space, fmt,
)
from echoavc.files import atomic_write_text, csv_text
from echoavc.errors import EchoAVCError
from echoavc.settings import MaxqdaColumns

CODE = "Aortic valve"


def read_maxqda(path: str | Path, frames: FrameIndex, space: str = "original",
                columns: MaxqdaColumns | None = None) -> BoxFile:
    c = columns or MaxqdaColumns()
    check_space(space)
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, sep=None, engine="python")
    except FileNotFoundError:
        raise EchoAVCError("no such file", path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise EchoAVCError(f"cannot read as CSV ({type(exc).__name__})", path) from None
    df.columns = [str(x).strip() for x in df.columns]
    split_key = c.source_sha256 in df.columns and c.frame_index in df.columns
    need = [c.x, c.y, c.width, c.height] + ([] if split_key else [c.image])
    missing = [n for n in need if n not in df.columns]
    if missing:
        raise EchoAVCError(f"missing column(s) {', '.join(missing)} (found: {', '.join(df.columns)}); "
                           "set the column names with --column NAME=HEADER", path)
    out = BoxFile()
    for i, row in enumerate(df.to_dict("records")):
        where = f"{path.name} row {i + 2}"
        if c.codes and c.code in row and row[c.code].strip() not in c.codes:
            continue
        try:
            key = frames.resolve(row.get(c.image), row.get(c.source_sha256) if split_key else None,
                                 row.get(c.frame_index) if split_key else None)
        except KeyError as exc:
            out.problems.append(Problem("error", where, f"box not joined: {exc.args[0]}"))
            continue
        try:
            x, y, w, h = (float(str(row[n]).replace(",", ".")) for n in (c.x, c.y, c.width, c.height))
        except ValueError:
            out.problems.append(Problem("error", where, "x, y, width or height is not a number"))
            continue
        row_space = str(row.get(c.space, "") or "").strip().lower() or space
        if row_space not in SPACES:
            out.problems.append(Problem("error", where, f"unknown coordinate space {row_space!r}"))
            continue
        out.boxes.append(ValveBox(key, x, y, x + w, y + h, row_space, origin=f"maxqda:{where}"))
    return out


def write_maxqda(boxes: list[ValveBox], path: str | Path, frames: FrameIndex, space: str = "original",
                 columns: MaxqdaColumns | None = None) -> Path:
    c = columns or MaxqdaColumns()
    rows = [{c.image: b.key, c.code: CODE, c.x: fmt(b.x1), c.y: fmt(b.y1), c.width: fmt(b.width),
             c.height: fmt(b.height), c.space: space} for b in boxes_in_space(boxes, frames, space)]
    atomic_write_text(path, csv_text([c.image, c.code, c.x, c.y, c.width, c.height, c.space], rows))
    return Path(path)
