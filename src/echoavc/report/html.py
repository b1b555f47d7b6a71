"""The self-contained HTML screening report: one file, inline style and script, thumbnails embedded.

Works offline: nothing is fetched; full-size overlays are linked as files beside ``report.html``.
Every input string is HTML-escaped and every relative link URL-quoted, because file names come
from users and can hold ``<``, ``&``, quotes, spaces, ``#`` and ``%``.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from html import escape
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping
from urllib.parse import quote

import cv2
import numpy as np

from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_bytes, atomic_write_text
from echoavc.report.overlay import encode_png, png_data_uri, thumbnail

BANNER = "Research use only \u2014 not for clinical diagnosis"
REPORT_NAME = "report.html"
EXAM_THUMB_WIDTH = 160
# Frames are many; smaller pictures keep a 400-thumbnail report to a few megabytes.
FRAME_THUMB_WIDTH = 96

STATUS_WORDS = {
    "decided": "decided",
    "no_cone": "no ultrasound cone found",
    "no_valve": "no aortic valve found",
    "low_confidence": "valve found with low confidence",
    "other_phase": "other phase (not screened)",
    "other_view": "other view: not screened",
    "m_mode": "M-mode: not screened",
    "spectral_doppler": "spectral Doppler: not screened",
    "colour_doppler": "colour over the valve: not screened",
}

_DASH = "\u2014"
_MAX_DEPTH = 8


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _path(value: Any, parts: int = 2) -> str:
    """A file path as HTML: its last ``parts`` components (an ellipsis for the rest), the whole path on hover,
    so long input paths do not push the thumbnails off a 1280 px screen."""
    text = "" if value is None else str(value)
    bits = text.replace("\\", "/").split("/")
    if len(bits) <= parts:
        return _e(text)
    return f'<span class="path" title="{_e(text)}">{_e(chr(0x2026) + "/" + "/".join(bits[-parts:]))}</span>'


def _href(rel: str) -> str:
    """A relative posix path as an escaped, URL-quoted attribute value."""
    return _e(quote(rel, safe="/"))


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fmt(value: Any, digits: int = 2) -> str:
    x = _num(value)
    if x is None:
        return _DASH if value is None or value == "" else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{x:.{digits}f}"


def _fmt_interval(p: Any, interval: Any) -> str:
    text = _fmt(p)
    if _num(p) is not None and isinstance(interval, (list, tuple)) and len(interval) == 2:
        lo, hi = _num(interval[0]), _num(interval[1])
        if lo is not None and hi is not None:
            text += f" [{lo:.2f}, {hi:.2f}]"
    return text


def _sort_attr(value: Any) -> str:
    """``data-sort`` for a numeric cell; missing values sort last (the script treats "" so)."""
    x = _num(value)
    return f' data-sort="{x!r}"' if x is not None else ' data-sort=""'


def _safe_rel(rel: Any) -> PurePosixPath | None:
    """The overlay path if it is a relative path that stays inside out_dir, else None."""
    if not isinstance(rel, (str, Path)) or str(rel) in ("", "."):
        return None
    p = PurePosixPath(rel.as_posix() if isinstance(rel, Path) else rel)
    if p.is_absolute() or ".." in p.parts:
        return None
    return p


def write_overlay(out_dir: str | Path, rel_path: str | Path, image: np.ndarray) -> str:
    """Write ``image`` (uint8 grey or RGB) as a PNG at ``out_dir / rel_path`` atomically; return rel_path (posix).

    The returned string is what the report's ``overlay`` fields hold.
    """
    p = _safe_rel(rel_path)
    if p is None:
        raise EchoAVCError("overlay path must be relative and stay inside the output folder", rel_path)
    atomic_write_bytes(Path(out_dir) / p, encode_png(image))
    return p.as_posix()


class _Thumbnails:
    """Reads overlay files once and hands out embedded thumbnails until the budget is spent."""

    def __init__(self, out_dir: Path, budget: int):
        self.out_dir = out_dir
        self.left = max(0, int(budget))
        self._cache: dict[tuple[str, int], tuple[str, int, int] | None] = {}

    def exists(self, rel: PurePosixPath | None) -> bool:
        return rel is not None and (self.out_dir / rel).is_file()

    def data_uri(self, rel: PurePosixPath, width: int) -> tuple[str, int, int] | None:
        """(data URI, width, height) of the thumbnail, or None when unreadable or over budget."""
        if self.left <= 0:
            return None
        key = (rel.as_posix(), width)
        if key not in self._cache:
            self._cache[key] = self._make(rel, width)
        uri = self._cache[key]
        if uri is not None:
            self.left -= 1
        return uri

    def prefetch(self, wanted: list[tuple[Any, int]], threads: int) -> None:
        """Make the first thumbnails the tables will ask for (``(overlay, width)`` in table order) on ``threads``
        threads: decoding the overlays is most of the report's time, and OpenCV lets go of the GIL meanwhile."""
        todo: list[tuple[PurePosixPath, int]] = []
        seen: set[tuple[str, int]] = set(self._cache)
        for value, width in wanted:
            if len(todo) >= self.left:
                break
            rel = _safe_rel(value)
            if rel is not None and (rel.as_posix(), width) not in seen and self.exists(rel):
                seen.add((rel.as_posix(), width))
                todo.append((rel, width))
        if threads <= 1 or len(todo) < 2:
            return  # made on demand, in order
        with ThreadPoolExecutor(min(threads, len(todo))) as pool:
            for (rel, width), made in zip(todo, pool.map(lambda t: self._make(*t), todo)):
                self._cache[(rel.as_posix(), width)] = made

    def _make(self, rel: PurePosixPath, width: int) -> tuple[str, int, int] | None:
        try:
            # imdecode of the bytes, not imread: imread fails silently on non-ASCII paths on some platforms.
            raw = np.fromfile(str(self.out_dir / rel), dtype=np.uint8)
            bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
        except (OSError, ValueError):
            return None
        if bgr is None or bgr.size == 0:
            return None
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        small = thumbnail(rgb, min(width, rgb.shape[1]))  # never enlarge a small picture
        return png_data_uri(small), small.shape[1], small.shape[0]


def _overlay_cell(thumbs: _Thumbnails, rel_value: Any, width: int, alt: str) -> str:
    rel = _safe_rel(rel_value)
    if not thumbs.exists(rel):
        # Missing or unreadable: say so; a dead link would only confuse.
        return "<td>" + ("overlay missing" if rel_value else _DASH) + "</td>"
    href = _href(rel.as_posix())
    thumb = thumbs.data_uri(rel, width)
    if thumb is None:
        return f'<td><a href="{href}">overlay</a></td>'
    uri, w, h = thumb
    return f'<td><a href="{href}"><img src="{uri}" alt="{_e(alt)}" width="{w}" height="{h}"></a></td>'


def _decision_cell(decision: Any, reason: Any = "") -> str:
    d = "" if decision is None else str(decision)
    cls = {"calcified": "pos", "not calcified": "neg"}.get(d, "und")
    text = f'<span class="badge {cls}">{_e(d or _DASH)}</span>'
    if reason:
        text += f'<div class="why">{_e(reason)}</div>'
    return f'<td data-sort="{_e(d)}">{text}</td>'


def _check_rows(rows: Any, what: str, out_dir: Path) -> list[Mapping]:
    if rows is None:
        return []
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
        raise EchoAVCError(f"{what} must be a list of records", out_dir)
    rows = list(rows)
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise EchoAVCError(f"{what} entry {i + 1} is not a record (got {type(r).__name__})", out_dir)
    return rows


def _summary(exams: list[Mapping], frames: list[Mapping], failures: list[Mapping]) -> str:
    counts = {"calcified": 0, "not calcified": 0}
    for ex in exams:
        d = ex.get("decision")
        if d in counts:
            counts[d] += 1
    undetermined = len(exams) - sum(counts.values())
    decided = sum(1 for f in frames if f.get("status") == "decided")
    return (
        '<p class="summary">'
        f"{len(exams)} exam(s): <b>{counts['calcified']}</b> calcified, <b>{counts['not calcified']}</b> not calcified, "
        f"<b>{undetermined}</b> undetermined. {len(frames)} frame(s), {decided} decided. "
        f"{len(failures)} file(s) could not be read.</p>"
    )


def _grade_cell(ex: Mapping) -> str:
    p = ex.get("grade_probabilities")
    if ex.get("grade") is None or not isinstance(p, (list, tuple)):
        return f"<td>{_DASH}</td>"
    per = " / ".join(f"{_fmt(v)}" for v in p)
    # the decision's threshold is set for recall, the grade is the most likely class: a positive screen whose most
    # likely grade is 0 is coherent, but side by side it reads as a contradiction unless it is said
    why = ('<div class="why">screen positive (the decision\'s threshold is set for recall); most likely no '
           "calcium</div>" if ex.get("decision") == "calcified" and ex.get("grade") == 0 else "")
    return (f"<td{_sort_attr(ex.get('grade'))}><b>{_e(ex.get('grade'))}</b> (P per grade {_e(per)}; "
            f"{_e(ex.get('grade_frames'))} frames){why}</td>")


def _exam_table(exams: list[Mapping], thumbs: _Thumbnails) -> str:
    # the severity grade's column only when the model has a grade head (a binary-only report stays as it was)
    graded = any("grade_probabilities" in ex for ex in exams)
    head = ("Exam", "Sources", "Decision", "P(calcified) [range over clips, or frames]", "Threshold",
            "Frames decided / total",
            "Driving frame", "Overlay") + (("Grade 0-3 (ordinal model, beside the decision)",) if graded else ())
    out = ['<table class="sortable" id="exams"><thead><tr>']
    out += [f'<th scope="col">{h}</th>' for h in head]
    out.append("</tr></thead><tbody>")
    for ex in exams:
        sources = ex.get("sources") or []
        if isinstance(sources, str):
            sources = [sources]
        src_html = "<br>".join(_path(s) for s in sources) or _DASH
        n_frames, n_decided = ex.get("n_frames"), ex.get("n_decided")
        drv = ex.get("driving_frame")
        if isinstance(drv, Mapping):
            drv_html = f'{_path(drv.get("source"))} #{_e(drv.get("frame_index"))}'
        else:
            drv_html = _DASH
        out.append(
            "<tr>"
            f"<td>{_e(ex.get('exam_id'))}</td>"
            f"<td>{src_html}</td>"
            + _decision_cell(ex.get("decision"), ex.get("reason") or "")
            + f"<td{_sort_attr(ex.get('probability'))}>{_e(_fmt_interval(ex.get('probability'), ex.get('spread')))}</td>"
            f"<td{_sort_attr(ex.get('threshold'))}>{_e(_fmt(ex.get('threshold')))}</td>"
            f"<td{_sort_attr(n_decided)}>{_e(_fmt(n_decided))} / {_e(_fmt(n_frames))}</td>"
            f"<td>{drv_html}</td>"
            + _overlay_cell(thumbs, ex.get("overlay"), EXAM_THUMB_WIDTH, f"overlay of exam {ex.get('exam_id')}")
            + (_grade_cell(ex) if graded else "")
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _phase_words(fr: Mapping) -> str:
    """The valve phase and the source that decided it, e.g. "closed (ecg trace), end-diastole"."""
    phase = fr.get("phase") or ""
    if not phase:
        return _DASH
    src = str(fr.get("phase_source") or "").replace("_", " ")
    return phase + (f" ({src})" if src and src != "none" else "") + (", end-diastole" if fr.get("end_diastole") else "")


def _frame_table(frames: list[Mapping], thumbs: _Thumbnails) -> str:
    head = ("Exam", "Source", "Frame", "Status", "Details", "Valve phase", "Valve score", "Valve box", "P(calcified)",
            "Decision", "Overlay")
    out = ['<table class="sortable" id="frames"><thead><tr>']
    out += [f'<th scope="col">{h}</th>' for h in head]
    out.append("</tr></thead><tbody>")
    for fr in frames:
        status = fr.get("status") or ""
        status_words = STATUS_WORDS.get(status, str(status).replace("_", " ")) or _DASH
        box = fr.get("valve_box")
        if isinstance(box, (list, tuple)) and len(box) == 4 and all(_num(v) is not None for v in box):
            box_html = ", ".join(f"{_num(v):.0f}" for v in box)
        else:
            box_html = _DASH
        out.append(
            f'<tr class="st-{_e(status)}">'
            f"<td>{_e(fr.get('exam_id'))}</td>"
            f"<td>{_path(fr.get('source'))}</td>"
            f"<td{_sort_attr(fr.get('frame_index'))}>{_e(_fmt(fr.get('frame_index')))}</td>"
            f"<td>{_e(status_words)}</td>"
            f'<td class="details">{_e(fr.get("status_text") or "")}</td>'
            f"<td>{_e(_phase_words(fr))}</td>"
            f"<td{_sort_attr(fr.get('valve_score'))}>{_e(_fmt(fr.get('valve_score')))}</td>"
            f"<td>{_e(box_html)}</td>"
            f"<td{_sort_attr(fr.get('probability'))}>{_e(_fmt(fr.get('probability')))}</td>"
            + _decision_cell(fr.get("decision"))
            + _overlay_cell(thumbs, fr.get("overlay"), FRAME_THUMB_WIDTH,
                            f"overlay of {fr.get('source')} frame {fr.get('frame_index')}")
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _failures_section(failures: list[Mapping]) -> str:
    if not failures:
        return "<p>No input file failed.</p>"
    rows = "".join(f"<tr><td>{_path(f.get('source'))}</td><td>{_e(f.get('reason'))}</td></tr>" for f in failures)
    return ('<table class="sortable" id="failures"><thead><tr><th scope="col">Source</th>'
            f'<th scope="col">Reason</th></tr></thead><tbody>{rows}</tbody></table>')


def _is_interval(v: Any) -> bool:
    return isinstance(v, Mapping) and {"value", "low", "high"} <= set(v) and all(
        _num(v[k]) is not None or v[k] is None for k in ("value", "low", "high"))


def _scalar(v: Any) -> str:
    if v is None:
        return _DASH
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return _e(v)


def _card_value(v: Any, depth: int = 0) -> str:
    """A model-card value as HTML: intervals inline, dicts as definition lists, lists of records as tables."""
    if depth > _MAX_DEPTH:
        return _e(repr(v))
    if _is_interval(v):
        val, lo, hi = (_num(v[k]) for k in ("value", "low", "high"))
        text = f"{val:.2f}" if val is not None else _DASH
        if lo is not None and hi is not None:
            text += f" [{lo:.2f}, {hi:.2f}]"
        elif v.get("no_interval"):  # too few patients for a bootstrap interval (evaluate/intervals.py)
            text += f" [n/a ({v['no_interval']})]"
        extra = {k: x for k, x in v.items() if k not in ("value", "low", "high", "no_interval")}
        return _e(text) + (" " + _card_value(extra, depth + 1) if extra else "")
    if isinstance(v, Mapping):
        if not v:
            return _DASH
        items = "".join(f"<dt>{_e(k)}</dt><dd>{_card_value(x, depth + 1)}</dd>" for k, x in v.items())
        return f"<dl>{items}</dl>"
    if isinstance(v, (list, tuple)):
        if not v:
            return _DASH
        if all(isinstance(x, Mapping) and not any(isinstance(y, (Mapping, list, tuple)) for y in x.values())
               for x in v):
            cols: list = []
            for x in v:
                cols += [k for k in x if k not in cols]
            head = "".join(f'<th scope="col">{_e(c)}</th>' for c in cols)
            body = "".join("<tr>" + "".join(f"<td>{_scalar(x.get(c))}</td>" for c in cols) + "</tr>" for x in v)
            return f'<table class="card"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        if all(not isinstance(x, (Mapping, list, tuple)) for x in v):
            return _e(", ".join(str(x) for x in v)) if all(isinstance(x, (int, float)) for x in v) else \
                "<ul>" + "".join(f"<li>{_scalar(x)}</li>" for x in v) + "</ul>"
        return "<ul>" + "".join(f"<li>{_card_value(x, depth + 1)}</li>" for x in v) + "</ul>"
    return _scalar(v)


def _model_card_section(card: Any) -> str:
    if not isinstance(card, Mapping) or not card:
        return "<p>No model card was given.</p>"
    return f'<div class="card">{_card_value(card)}</div>'


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#1b1b1b;background:#fff}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
.banner{background:#b00020;color:#fff;font-weight:bold;font-size:1.15em;padding:.6em 1em;border-radius:4px}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#f1f1f1}table.sortable th{cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.badge{padding:0 .4em;border-radius:3px;white-space:nowrap}
.pos{background:#fbd5d2}.neg{background:#d4f2da}.und{background:#fff3b0}
.why{font-size:.85em;color:#555}.summary{font-size:1.05em}
tr.st-no_cone td,tr.st-no_valve td,tr.st-low_confidence td{color:#555}
img{display:block;border:0}.path{white-space:nowrap}td.details,.why{max-width:14em;overflow-wrap:anywhere}
dl{margin:0}dt{font-weight:bold}dd{margin:0 0 .3em 1.2em}
"""

# Numeric-aware, toggling sort; cells may carry data-sort. Empty values always sort last.
_SCRIPT = """
(function(){
  function key(td){
    if (!td) return {empty: true, num: null, text: ''};
    var v = td.hasAttribute('data-sort') ? td.getAttribute('data-sort') : td.textContent.trim();
    var n = parseFloat(v);
    return {empty: v === '', num: (v !== '' && isFinite(v)) ? n : null, text: v.toLowerCase()};
  }
  function cmp(a, b){
    if (a.empty || b.empty) return a.empty === b.empty ? 0 : (a.empty ? 1 : -1);
    if (a.num !== null && b.num !== null) return a.num - b.num;
    return a.text < b.text ? -1 : (a.text > b.text ? 1 : 0);
  }
  document.querySelectorAll('table.sortable').forEach(function(table){
    var ths = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(ths, function(th, col){
      th.title = 'Click to sort';
      th.addEventListener('click', function(){
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(ths, function(o){ o.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows).map(function(r, i){
          return {r: r, k: key(r.cells[col]), i: i};
        });
        rows.sort(function(a, b){
          var c = cmp(a.k, b.k);
          if (!a.k.empty && !b.k.empty && !asc) c = -c;
          return c || a.i - b.i;
        });
        rows.forEach(function(x){ body.appendChild(x.r); });
      });
    });
  });
})();
"""


def _unscreened_section(clips: list[Mapping]) -> str:
    """The clips not screened (their view, or the header), each with its reason; all clips when every one was."""
    rows = [c for c in clips if c.get("screened") == "no"]
    if not rows:
        return "<p>Every clip was taken as an aortic-valve short-axis view and screened.</p>"
    body = "".join(f"<tr><td>{_e(c.get('exam_id'))}</td><td>{_path(c.get('source'))}</td><td>{_e(c.get('view'))}</td>"
                   f"<td{_sort_attr(c.get('view_probability'))}>{_e(_fmt(c.get('view_probability')))}</td>"
                   f"<td>{_e(c.get('view_source'))}</td><td>{_e(c.get('reason'))}</td></tr>" for c in rows)
    return (f"<p>{len(rows)} of {len(clips)} clip(s) were not screened (not aortic-valve short-axis views); their "
            "frames are listed below with the same reason.</p>"
            '<table class="sortable" id="unscreened"><thead><tr><th scope="col">Exam</th><th scope="col">Source</th>'
            '<th scope="col">View</th><th scope="col">P(view)</th><th scope="col">Decided by</th>'
            f'<th scope="col">Reason</th></tr></thead><tbody>{body}</tbody></table>')


def write_report(out_dir: str | Path, exams, frames, model_card, failures=(),
                 title: str = "echoavc screening report", max_thumbnails: int = 400, clips=(),
                 threads: int = 1) -> Path:
    """Write ``out_dir/report.html`` (atomically) and return its path.

    ``exams``, ``frames``, ``failures`` are lists of plain dicts (see docs/report.md); ``overlay`` fields are
    paths relative to ``out_dir``. At most ``max_thumbnails`` thumbnails are embedded, exam rows first;
    further overlays get a text link, so large cohorts keep a small file. ``threads``: decode the overlays for the
    thumbnails on that many threads (the same report either way).
    """
    out_dir = Path(out_dir)
    exams = _check_rows(exams, "exams", out_dir)
    frames = _check_rows(frames, "frames", out_dir)
    failures = _check_rows(failures, "failures", out_dir)
    thumbs = _Thumbnails(out_dir, max_thumbnails)
    thumbs.prefetch([(ex.get("overlay"), EXAM_THUMB_WIDTH) for ex in exams]
                    + [(fr.get("overlay"), FRAME_THUMB_WIDTH) for fr in frames], threads)
    card_name = model_card.get("name") if isinstance(model_card, Mapping) else None
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f'<p class="banner" role="alert">{_e(BANNER)}</p>',
        f"<h1>{_e(title)}</h1>",
        f"<p>Model: {_e(card_name)}</p>" if card_name else "",
        _summary(exams, frames, failures),
        '<h2 id="exam-summary">Exams</h2>',
        "<p>One row per exam. The thumbnail shows the frame that drove the decision, with the valve box and "
        "Grad-CAM; click it for the full-size picture. Click a column header to sort.</p>",
        _exam_table(exams, thumbs),
        *(['<h2 id="clips-not-screened">Clips not screened</h2>', _unscreened_section(list(clips))] if clips else []),
        '<h2 id="frame-details">Frames</h2>',
        _frame_table(frames, thumbs),
        '<h2 id="failures-section">Files that could not be read</h2>',
        _failures_section(failures),
        '<h2 id="model-card">Model card</h2>',
        f'<p class="banner">{_e(BANNER)}</p>',
        _model_card_section(model_card),
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
    ]
    path = out_dir / REPORT_NAME
    atomic_write_text(path, "\n".join(p for p in parts if p) + "\n")
    return path
