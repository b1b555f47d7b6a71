"""The HTML screening report: valid, self-contained, escaped, and every link resolves."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest

from echoavc.errors import EchoAVCError
from echoavc.report import BANNER, write_overlay, write_report
from testkit import check_html, need_tool

EXAM_A = "A<1>&co"
EXAM_B = "B 'q\" #2"
SRC_A1 = "scan <1>.dcm"
SRC_A2 = "a&b #2 50%.dcm"
SRC_B = "plain file.dcm"
FAIL_SRC = "broken <file> & co.dcm"
FAIL_REASON = "not a DICOM file: preamble <DICM> & magic missing"
OVERLAY_A = "overlays/A<1>&co/drive #0 50%.png"
OVERLAY_FRAME = "overlays/A<1>&co/scan <1> f3.png"


def _picture(colour, size: int = 64) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = colour
    return img


def _inputs(out: Path):
    rel_a = write_overlay(out, OVERLAY_A, _picture((250, 10, 10), 640))  # a full standard frame
    rel_f = write_overlay(out, OVERLAY_FRAME, _picture((10, 10, 250)))
    exams = [
        {"exam_id": EXAM_A, "sources": [SRC_A1, SRC_A2], "n_frames": 3, "n_decided": 2, "probability": 0.934,
         "spread": [0.851, 0.981], "threshold": 0.5, "decision": "calcified", "reason": "",
         "driving_frame": {"source": SRC_A1, "frame_index": 0}, "overlay": rel_a},
        # Its overlay file was never written: the report must still build, without a thumbnail.
        {"exam_id": EXAM_B, "sources": [SRC_B], "n_frames": 2, "n_decided": 0, "probability": None,
         "spread": None, "threshold": 0.5, "decision": "undetermined", "reason": "no frame with a valve > 0.5",
         "driving_frame": None, "overlay": "overlays/missing <b>.png"},
    ]
    frames = [
        {"exam_id": EXAM_A, "source": SRC_A1, "frame_index": 0, "status": "decided", "status_text": "",
         "valve_score": 0.88, "valve_box": [200.0, 220.0, 330.0, 340.0], "probability": 0.93,
         "decision": "calcified", "overlay": rel_a},
        {"exam_id": EXAM_A, "source": SRC_A1, "frame_index": 3, "status": "decided", "status_text": "",
         "valve_score": 0.71, "valve_box": [190.0, 210.0, 320.0, 330.0], "probability": 0.41,
         "decision": "not calcified", "overlay": rel_f},
        {"exam_id": EXAM_A, "source": SRC_A2, "frame_index": 0, "status": "no_cone",
         "status_text": "cone not found <edge>", "valve_score": None, "valve_box": None, "probability": None,
         "decision": "", "overlay": ""},
        {"exam_id": EXAM_B, "source": SRC_B, "frame_index": 0, "status": "no_valve", "status_text": "",
         "valve_score": None, "valve_box": None, "probability": None, "decision": "", "overlay": ""},
        {"exam_id": EXAM_B, "source": SRC_B, "frame_index": 5, "status": "low_confidence",
         "status_text": "valve score 0.20 < 0.50", "valve_score": 0.2, "valve_box": [1, 2, 3, 4],
         "probability": None, "decision": "", "overlay": "overlays/gone.png"},
    ]
    card = {
        "name": "avc-screen <v1>",
        "created": "2025-01-02",
        "echoavc_version": "0.1.0",
        "versions": {"torch": "2.5", "ultralytics": "8.3"},
        "thresholds": {"valve_score": 0.5, "calcified": 0.4375},
        "training_data": [{"source": "synthetic", "patients": 80}, {"source": "site B", "patients": 12}],
        "validation": {"auroc": {"value": 0.93, "low": 0.85, "high": 0.98}, "n_patients": 40},
        "intended_use": "Research screening only",
        "limitations": ["PSAX views only", "trained on few vendors"],
    }
    failures = [{"source": FAIL_SRC, "reason": FAIL_REASON}]
    return exams, frames, card, failures


@pytest.fixture
def report(tmp_path):
    out = tmp_path / "report out"
    exams, frames, card, failures = _inputs(out)
    path = write_report(out, exams, frames, card, failures)
    text = path.read_text(encoding="utf-8")
    return out, path, text, check_html(text)


def test_report_is_written_atomically_and_is_valid_html(report):
    out, path, text, parsed = report
    assert path == out / "report.html" and path.is_file()
    assert not list(out.rglob("*.tmp"))
    assert '<meta charset="utf-8">' in text and '<html lang="en">' in text
    assert re.search(r"<title>echoavc screening report</title>", text)
    assert len(parsed.ids) == len(set(parsed.ids))


def test_every_link_is_embedded_or_an_existing_file(report):
    out, _, text, parsed = report
    assert parsed.links
    files = 0
    for link in parsed.links:
        if link.startswith("data:"):
            continue
        assert "://" not in link and not link.startswith("/"), link
        target = out / unquote(link)
        assert target.is_file(), f"{link!r} -> {target} does not exist"
        files += 1
    assert files >= 2
    # Self-contained: nothing fetched from elsewhere.
    assert "<link" not in text and "<script src" not in text


def test_banner_ids_and_names_appear_escaped(report):
    _, _, text, parsed = report
    visible = "".join(parsed.text)
    assert text.count(BANNER) >= 1
    for s in (EXAM_A, EXAM_B, SRC_A1, SRC_A2, SRC_B, FAIL_SRC, FAIL_REASON):
        assert s in visible, s  # shown to the reader as typed
    for raw in ("A<1>", "scan <1>", "<file>", "<DICM>", "<v1>", "<edge>", "a&b #2"):
        assert raw not in text, f"unescaped input {raw!r} in the HTML"
    assert "A&lt;1&gt;&amp;co" in text and "scan &lt;1&gt;.dcm" in text
    assert "B &#x27;q&quot; #2" in text


def test_failures_listed(report):
    _, _, _, parsed = report
    assert parsed.tables["failures"]["body_rows"] == 1
    assert FAIL_REASON in "".join(parsed.text)


def test_tables_have_one_row_per_exam_and_frame_and_statuses_in_words(report):
    _, _, text, parsed = report
    assert parsed.tables["exams"]["body_rows"] == 2
    assert parsed.tables["frames"]["body_rows"] == 5
    visible = "".join(parsed.text)
    for words in ("no ultrasound cone found", "no aortic valve found", "valve found with low confidence"):
        assert words in visible
    assert "low_confidence</td>" not in text
    assert "0.93 [0.85, 0.98]" in visible  # exam probability with its spread
    assert "<script>" in text and "data-sort" in text  # sortable tables


def test_thumbnails_embedded_linked_and_missing_overlay_has_none(report):
    out, _, text, parsed = report
    # Exam A and the two frames with overlay files get thumbnails; the missing ones do not.
    assert parsed.tables["exams"]["imgs"] == 1
    assert parsed.tables["frames"]["imgs"] == 2
    assert "overlay missing" in text
    for img in parsed.imgs:
        assert img["src"].startswith("data:image/png;base64,")
        png = base64.b64decode(img["src"].split(",", 1)[1])
        thumb = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert thumb is not None and thumb.shape[1] <= 160
        assert int(img["width"]) == thumb.shape[1] and int(img["height"]) == thumb.shape[0]
    # The 640x640 driving frame is shrunk: 160 px in the exam table, smaller in the frame table.
    assert int(parsed.imgs[0]["width"]) == 160 and int(parsed.imgs[1]["width"]) < 160
    # The exam thumbnail is the driving frame's overlay (red), not another picture.
    first = base64.b64decode(parsed.imgs[0]["src"].split(",", 1)[1])
    bgr = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)
    assert bgr[0, 0].tolist() == [10, 10, 250]
    # Linked to the full-size file (href URL-quoted so '#', '%', spaces resolve).
    assert 'href="overlays/A%3C1%3E%26co/drive%20%230%2050%25.png"' in text


def test_model_card_every_key_and_intervals(report):
    _, _, text, parsed = report
    visible = "".join(parsed.text)
    for key in ("name", "created", "echoavc_version", "versions", "thresholds", "training_data", "validation",
                "intended_use", "limitations", "auroc", "n_patients"):
        assert key in visible, key
    assert "0.93 [0.85, 0.98]" in visible.split("Model card", 1)[1]
    assert "avc-screen <v1>" in visible and "site B" in visible and "PSAX views only" in visible
    assert visible.count(BANNER) >= 2  # top of the page and at the model card


def test_thumbnail_budget_gives_text_links(tmp_path):
    out = tmp_path / "r"
    exams, frames, card, failures = _inputs(out)
    text = write_report(out, exams, frames, card, failures, max_thumbnails=1).read_text(encoding="utf-8")
    parsed = check_html(text)
    assert len(parsed.imgs) == 1
    assert parsed.tables["frames"]["links"] == 2 and parsed.tables["frames"]["imgs"] == 0


@pytest.mark.parametrize("budget", [400, 2])
def test_thumbnails_made_on_threads_give_the_same_report(tmp_path, budget, monkeypatch):
    """predict hands the report its workers' CPUs: the overlays are decoded on threads, none on the main one,
    and the page does not change (order, budget, missing and unreadable overlays, one overlay at two widths)."""
    import threading

    import echoavc.report.html as html

    decoded_on, decode = [], cv2.imdecode

    def imdecode(*args):
        decoded_on.append(threading.get_ident())
        return decode(*args)

    monkeypatch.setattr(html.cv2, "imdecode", imdecode)
    out = tmp_path / "r"
    exams, frames, card, failures = _inputs(out)
    (out / "bad.png").write_bytes(b"not a png")
    more = [write_overlay(out, f"overlays/more/f{i}.png", _picture((20 * i, 90, 250 - 20 * i), 96 + 8 * i))
            for i in range(6)]
    frames = [frames[0], {**frames[1], "overlay": "bad.png"}, *frames[1:],
              *({**frames[1], "frame_index": 10 + i, "overlay": rel} for i, rel in enumerate(more))]
    pages = []
    for t in (1, 3):
        decoded_on.clear()
        pages.append(write_report(out, exams, frames, card, failures, max_thumbnails=budget, threads=t).read_bytes())
        main = decoded_on.count(threading.get_ident())
        assert main == (len(decoded_on) if t == 1 else 0), (t, main, len(decoded_on))
    assert pages[0] == pages[1]
    assert len(check_html(pages[1].decode("utf-8")).imgs) == min(budget, 9)  # 1 exam + 8 readable frame overlays


def test_unreadable_overlay_and_empty_inputs_do_not_crash(tmp_path):
    out = tmp_path / "r"
    (out / "bad.png").parent.mkdir(parents=True)
    (out / "bad.png").write_bytes(b"not a png")
    frames = [{"exam_id": "x", "source": "s", "frame_index": 0, "status": "decided", "status_text": "",
               "valve_score": 0.9, "valve_box": None, "probability": 0.2, "decision": "not calcified",
               "overlay": "bad.png"}]
    parsed = check_html(write_report(out, [], frames, {}).read_text(encoding="utf-8"))
    assert parsed.imgs == [] and "bad.png" in parsed.links
    assert parsed.tables["frames"]["body_rows"] == 1
    assert BANNER in "".join(parsed.text)


def test_bad_inputs_raise_user_errors(tmp_path):
    with pytest.raises(EchoAVCError, match="relative"):
        write_overlay(tmp_path, "../escape.png", _picture((0, 0, 0)))
    with pytest.raises(EchoAVCError, match="exams entry 1"):
        write_report(tmp_path, ["not a dict"], [], {})
    assert write_overlay(tmp_path, Path("a b") / "c#.png", _picture((1, 2, 3))) == "a b/c#.png"


_FAKE_DOM = r"""
function cell(text, sort){ return {textContent: text, hasAttribute: function(k){ return sort !== undefined; },
  getAttribute: function(k){ return sort; }}; }
function th(){ var a = {}, h = null; return {attrs: a, addEventListener: function(e, f){ h = f; },
  click: function(){ h(); }, getAttribute: function(k){ return k in a ? a[k] : null; },
  setAttribute: function(k, v){ a[k] = v; }, removeAttribute: function(k){ delete a[k]; }}; }
var rows = [["b", "10"], ["a", "9"], ["c", ""], ["d", "100"]].map(function(x){
  return {name: x[0], cells: [cell(x[0]), cell(x[1], x[1])]}; });
var body = {rows: rows.slice(), appendChild: function(r){
  this.rows.splice(this.rows.indexOf(r), 1); this.rows.push(r); }};
var ths = [th(), th()];
var table = {tHead: {rows: [{cells: ths}]}, tBodies: [body]};
var document = {querySelectorAll: function(){ return [table]; }};
"""


def test_sort_script_is_numeric_aware_and_toggles(tmp_path):
    import subprocess

    from echoavc.report.html import _SCRIPT

    node = need_tool("node")
    probe = _FAKE_DOM + _SCRIPT + r"""
var order = function(){ return body.rows.map(function(r){ return r.name; }).join(""); };
ths[1].click(); var up = order() + ths[1].attrs["aria-sort"];
ths[1].click(); var down = order() + ths[1].attrs["aria-sort"];
ths[0].click(); var byName = order() + (ths[1].attrs["aria-sort"] === undefined);
console.log(up + " " + down + " " + byName);
"""
    (tmp_path / "probe.js").write_text(probe, encoding="utf-8")
    res = subprocess.run([node, str(tmp_path / "probe.js")], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    # Numbers as numbers (9 < 10 < 100, not "10" < "100" < "9"), empty last both ways, toggled by a second click.
    assert res.stdout.split() == ["abdcascending", "dbacdescending", "abcdtrue"]


def test_a_positive_screen_whose_most_likely_grade_is_0_says_so(tmp_path):
    """The grade column beside a recall-first decision: "calcified" with grade 0 is explained, other rows are not."""
    out = tmp_path / "graded"
    exams, frames, card, failures = _inputs(out)
    exams[0] = {**exams[0], "grade": 0, "grade_probabilities": [0.6, 0.3, 0.08, 0.02], "grade_frames": 2}
    text = write_report(out, exams, frames, card, failures).read_text(encoding="utf-8")
    check_html(text)
    assert "Grade 0-3" in text and text.count("most likely no calcium") == 1
    exams[0] = {**exams[0], "grade": 1, "grade_probabilities": [0.3, 0.4, 0.2, 0.1]}
    assert "most likely no calcium" not in write_report(out, exams, frames, card, failures).read_text(encoding="utf-8")
