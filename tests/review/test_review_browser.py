"""The review app in a real browser (Debian's headless Chromium through the system chromedriver): the list, sorting,
an exam, a clip playing, a decision overridden with the keyboard, a box redrawn with the mouse, undo, export;
blinded mode; and the static report at 1280 px."""

from __future__ import annotations

import json
import time

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from echoavc.review.app import make_app
from echoavc.review.serve import running_app
from echoavc.review.store import ReviewStore

pytestmark = pytest.mark.slow


def _wait(driver, cond, timeout: float = 10):
    # a page reloading after an answer: elements of the old page go stale or missing for a moment (Chromium
    # sometimes says so as a plain inspector error, "Node with given id does not belong to the document")
    def checked(d):
        try:
            return cond(d)
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                raise StaleElementReferenceException(str(exc)) from None
            raise
    return WebDriverWait(driver, timeout, poll_frequency=0.05,
                         ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(checked)


def _probabilities(driver) -> list[float | None]:
    cells = driver.find_elements(By.CSS_SELECTOR, "#exams tbody tr.exam-row td:nth-child(3)")
    return [float(c.get_attribute("data-sort")) if c.get_attribute("data-sort") else None for c in cells]


def test_list_sort_exam_play_keyboard_override_box_undo_export(browser, results, reviewed_cohort, tmp_path):
    from typer.testing import CliRunner

    from echoavc.cli import app as cli

    d = browser
    with running_app(make_app(results, reviewer="dr-b")) as url:
        d.get(url + "/")
        assert "Research use only" in d.find_element(By.ID, "banner").text
        rows = d.find_elements(By.CSS_SELECTOR, "tr.exam-row")
        assert len(rows) == len(reviewed_cohort.report.exams) >= 8
        # sort by probability: ascending, then descending on a second click
        head = d.find_element(By.CSS_SELECTOR, "th[data-key=probability]")
        head.click()
        p = _probabilities(d)
        known = [x for x in p if x is not None]  # undetermined exams (no probability) sort last either way
        assert p == sorted(known) + [None] * (len(p) - len(known)) and head.get_attribute("aria-sort") == "ascending"
        head.click()
        assert _probabilities(d) == sorted(known, reverse=True) + [None] * (len(p) - len(known))
        # filter by id
        first = d.find_elements(By.CSS_SELECTOR, "tr.exam-row")[0].get_attribute("data-exam")
        d.find_element(By.ID, "f-text").send_keys(first[-6:])
        assert [r.get_attribute("data-exam") for r in d.find_elements(By.CSS_SELECTOR, "tr.exam-row")
                if r.is_displayed()] == [first]
        d.find_element(By.ID, "f-text").clear()
        d.find_element(By.ID, "f-text").send_keys(" ")
        d.find_element(By.TAG_NAME, "h1").click()
        # keyboard: j moves the selection to the second row; Enter opens that exam
        body = d.find_element(By.TAG_NAME, "body")
        body.send_keys("j")
        second = d.find_element(By.CSS_SELECTOR, "tr.exam-row.selected").get_attribute("data-exam")
        assert second == d.find_elements(By.CSS_SELECTOR, "tr.exam-row")[1].get_attribute("data-exam")
        body.send_keys("\ue007")  # Enter
        _wait(d, lambda d: "/exam/" in d.current_url)
        root = d.find_element(By.ID, "exam")
        assert root.get_attribute("data-exam") == second
        model = root.get_attribute("data-model-decision")

        # play a clip (the longest): the frame shown changes while it plays
        clip = max(d.find_elements(By.CSS_SELECTOR, ".clip"),
                   key=lambda c: len(json.loads(c.get_attribute("data-clip"))["frames"]))
        n = len(json.loads(clip.get_attribute("data-clip"))["frames"])
        assert n >= 2
        frame = clip.find_element(By.CSS_SELECTOR, "img.frame")
        seen = {frame.get_attribute("src")}
        clip.find_element(By.CSS_SELECTOR, "button.play").click()
        t0 = time.monotonic()
        while len(seen) < min(n, 3) and time.monotonic() - t0 < 5:
            seen.add(frame.get_attribute("src"))
            time.sleep(0.03)
        clip.find_element(By.CSS_SELECTOR, "button.play").click()  # pause
        assert len(seen) == min(n, 3) and all("/files/review/frames/" in s for s in seen)
        assert _wait(d, lambda d: d.execute_script("return arguments[0].naturalWidth", frame)) == 640

        # override the model's decision with the keyboard
        key, decision = ("n", "not calcified") if model == "calcified" else ("y", "calcified")
        d.find_element(By.TAG_NAME, "body").send_keys(key)
        _wait(d, lambda d: "(corrected)" in d.find_element(By.ID, "answer").text)
        assert d.find_element(By.ID, "answer").text.startswith(decision)
        answer = ReviewStore(results).exams()[second]
        assert (answer["decision"], answer["status"], answer["reviewer"]) == (decision, "corrected", "dr-b")

        # the valve box with the mouse: first move it (drag from inside it), then redraw it (drag from outside)
        clip = d.find_element(By.CSS_SELECTOR, ".clip")
        data = json.loads(clip.get_attribute("data-clip"))
        f = data["frames"][int(clip.find_element(By.CSS_SELECTOR, ".seek").get_attribute("value"))]
        svg = clip.find_element(By.CSS_SELECTOR, "svg.boxes")
        w = svg.size["width"]
        scale = 640 / w  # standard pixels per CSS pixel
        key = (data["sha"], f["frame_index"])

        def drag(start, delta, saves: int):
            (ActionChains(d).move_to_element_with_offset(svg, int(start[0] - w / 2), int(start[1] - w / 2))
             .click_and_hold().move_by_offset(delta[0] // 2, delta[1] // 2)
             .move_by_offset(delta[0] - delta[0] // 2, delta[1] - delta[1] // 2).release().perform())
            _wait(d, lambda d: d.find_element(By.ID, "msg").text.startswith("box saved")
                  and len([a for a in ReviewStore(results).audit() if a["action"] == "box"]) == saves)
            return ReviewStore(results).boxes()[key]

        old = f["model_box"]
        centre = ((old[0] + old[2]) / 2 / scale, (old[1] + old[3]) / 2 / scale)
        moved = drag(centre, (-30, -25), 1)
        want = [min(max(v, 0), 640) for v in (old[0] - 30 * scale, old[1] - 25 * scale, old[2] - 30 * scale,
                                               old[3] - 25 * scale)]
        assert all(abs(a - b) <= 2 * scale for a, b in zip(moved, want)), (moved, want)
        start = (w - 12, w - 12)  # bottom right: outside the moved box (its right edge is 30 px further left)
        assert start[0] * scale > moved[2]
        drawn = drag(start, (-90, -70), 2)
        want = [(start[0] - 90) * scale, (start[1] - 70) * scale, start[0] * scale, start[1] * scale]
        assert all(abs(a - b) <= 2 * scale for a, b in zip(drawn, want)), (drawn, want)
        review_box = clip.find_element(By.CSS_SELECTOR, ".review-box")
        assert review_box.get_attribute("visibility") == "visible"
        assert abs(float(review_box.get_attribute("width")) - (drawn[2] - drawn[0])) < 0.01

        # undo (keyboard): the redrawn box goes back to the moved one, the decision stays; the page reloads
        d.execute_script("window.beforeUndo = true")
        d.find_element(By.TAG_NAME, "body").send_keys("u")
        _wait(d, lambda d: ReviewStore(results).boxes()[key] == moved)
        assert ReviewStore(results).exams()[second]["decision"] == decision
        _wait(d, lambda d: d.execute_script("return !window.beforeUndo && document.readyState === 'complete'"))
        # mark the frame shown as the wrong view (keyboard w)
        d.find_element(By.TAG_NAME, "body").send_keys("w")
        _wait(d, lambda d: len(ReviewStore(results).views()) == 1)

    res = CliRunner().invoke(cli, ["review", "export", str(results), "--out", str(tmp_path / "export")])
    assert res.exit_code == 0, res.output
    labels = (tmp_path / "export" / "labels.csv").read_text().splitlines()
    assert len(labels) == 2 and labels[1].startswith(f"{second},,{int(decision == 'calcified')},")
    assert f"{data['sha']},{f['frame_index']},other" in (tmp_path / "export" / "views.csv").read_text().splitlines()


def test_blinded_mode_hides_the_models_answer_until_the_reviewer_records_one(browser, results, reviewed_cohort):
    d = browser
    exams = reviewed_cohort.report.exams
    with running_app(make_app(results, reviewer="dr-c", blinded=True)) as url:
        d.get(url + "/")
        source = d.page_source
        assert "Research use only" in source and "blinded" in source
        cells = d.find_elements(By.CSS_SELECTOR, "#exams tbody tr.exam-row td:nth-child(2)")
        assert len(cells) == len(exams) and all(c.text == "hidden (blinded)" for c in cells)
        assert "/files/overlays/" not in source  # overlays carry the call in their label
        for e in exams:
            assert e["probability"] is None or f">{e['probability']:.2f}<" not in source
        e = next(e for e in exams if e["probability"] is not None)
        d.get(f"{url}/exam/{e['exam_id']}")
        source = d.page_source
        assert d.find_elements(By.ID, "blind-note") and not d.find_elements(By.ID, "model-decision")
        assert not d.find_elements(By.CSS_SELECTOR, "svg.plot") and "/files/overlays/" not in source
        assert f"{e['probability']:.2f}" not in d.find_element(By.ID, "exam").text
        assert not d.find_elements(By.ID, "btn-confirm")  # nothing to confirm before seeing it
        d.find_element(By.TAG_NAME, "body").send_keys("y")
        _wait(d, lambda d: d.find_elements(By.ID, "model-decision"))
        assert d.find_element(By.ID, "model-decision").text == e["decision"]
        assert d.find_elements(By.CSS_SELECTOR, "svg.plot")
        assert ReviewStore(results).exams()[e["exam_id"]]["reviewer"] == "dr-c"


def test_static_report_thumbnails_fit_1280_px_and_paths_are_shortened(browser, reviewed_cohort):
    d = browser
    d.set_window_size(1280, 1000)
    d.get((reviewed_cohort.results / "report.html").as_uri())
    width = d.execute_script("return document.documentElement.clientWidth")
    assert d.execute_script("return document.documentElement.scrollWidth") <= width  # no sideways scrolling
    thumbs = d.find_elements(By.CSS_SELECTOR, "#exams img")
    assert thumbs
    for img in thumbs:
        assert img.rect["x"] + img.rect["width"] <= width, img.rect
    paths = d.find_elements(By.CSS_SELECTOR, "#exams span.path")
    assert paths
    for p in paths:
        full = p.get_attribute("title")
        assert full.endswith(p.text[1:]) and len(p.text) < len(full) and str(reviewed_cohort.study.root) in full
