"""Why an exam's spread is not called a 95% interval, and that what ``echoavc evaluate`` calls one is one.

Simulations with known truth: each exam has a true calcification probability; its clips scatter around it
(between-clip variation) and its frames around their clip (within-clip variation, correlated within a clip).
"""

from __future__ import annotations

import numpy as np

from echoavc.evaluate.intervals import bootstrap_by_group, proportion_intervals
from echoavc.screening import ClipResult, FrameResult, exam_results


def _exam(rng, truth: float, n_clips: int, frames: int = 8, between: float = 0.12, within: float = 0.04):
    clip_means = np.clip(truth + rng.normal(0, between, n_clips), 0, 1)
    p = np.clip(np.repeat(clip_means, frames) + rng.normal(0, within, n_clips * frames), 0, 1)
    return p, np.repeat(np.arange(n_clips), frames)


def test_a_bootstrap_over_an_exams_few_clips_is_far_from_a_95_percent_interval():
    rng = np.random.default_rng(7)
    for n_clips, most in ((2, 0.75), (3, 0.85), (5, 0.92)):
        hits = 0
        sims = 150
        for _ in range(sims):
            p, clip = _exam(rng, 0.5, n_clips)
            # min_per_class=1: the raw bootstrap the exam record once used (evaluate refuses it below 5 units)
            iv = bootstrap_by_group(np.mean, clip, p, n_boot=200, seed=rng, min_per_class=1)
            hits += iv.lo <= 0.5 <= iv.hi
        # what the exam record used to call a "95% interval" covers the truth much less often
        assert hits / sims < most, (n_clips, hits / sims)


def test_the_exam_spread_is_named_a_range_and_covers_what_a_range_covers():
    rng = np.random.default_rng(11)
    hits, sims = 0, 300
    for i in range(sims):
        p, clip = _exam(rng, 0.5, 2)
        clips = [ClipResult(f"c{k}", f"c{k}", "E", [FrameResult("E", f"c{k}", j, "decided", 0.9, [0, 0, 1, 1],
                                                                float(v)) for j, v in enumerate(p[clip == k])], 0)
                 for k in range(2)]
        (e,) = exam_results(clips, 0.5)
        assert e["spread_of"] == "clips" and "interval" not in e
        hits += e["spread"][0] <= 0.5 <= e["spread"][1]
    # the range of two clip means holds the truth about half the time (1 - 2 * 0.5 ** 2), as a range should
    assert 0.4 < hits / sims < 0.6


def test_the_exact_interval_on_exam_recall_covers_the_truth_at_least_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    for n, recall in ((8, 0.9), (15, 0.8), (40, 0.95)):
        k = rng.binomial(n, recall, size=2000)
        cover = np.mean([proportion_intervals(int(x), n)["clopper-pearson"].contains(recall) for x in k])
        assert cover >= 0.94, (n, recall, cover)  # exact intervals are conservative: at or above 95%
