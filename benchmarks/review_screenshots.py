"""The screenshots in docs/review/: the exam list and an exam page of a reviewed results folder, taken by headless
Chromium at 1280 px wide.

    python benchmarks/review_screenshots.py RESULTS docs/review
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from echoavc.review.app import make_app
from echoavc.review.serve import headless_chromium, running_app


def main(results: str, out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with running_app(make_app(results, reviewer="Dr Example")) as url:
        driver = headless_chromium(1280, 1000)
        try:
            driver.get(url + "/")
            time.sleep(0.5)
            driver.save_screenshot(str(out_dir / "list.png"))
            link = driver.find_elements("css selector", "tr.exam-row a")[0].get_attribute("href")
            driver.set_window_size(1280, 1250)
            driver.get(link)
            time.sleep(1.0)
            driver.save_screenshot(str(out_dir / "exam.png"))
        finally:
            driver.quit()


if __name__ == "__main__":
    main(*sys.argv[1:3])
