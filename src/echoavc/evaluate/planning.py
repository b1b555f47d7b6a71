"""Will a threshold chosen on validation exams hold on new exams? The odds, before anything is trained.

``echoavc train`` sets the exam threshold on the validation exams (highest with recall >= ``min_recall``, or
Youden's), and that threshold then meets, or misses, a goal such as "recall >= 0.90 and specificity >= 0.70" on
every new set of exams. With a few dozen validation exams the threshold itself is uncertain, and a test set of a
few dozen exams adds its own sampling error: a model that ranks exams well can still miss the goal often. This
module puts a number on it, to size validation and test sets and to judge whether a goal is reachable at all.

The model (binormal, equal variance): a calcified exam's score is N(d, 1), a normal exam's N(0, 1), with
d = sqrt(2) * Phi^-1(AUROC), so that P(calcified scores above normal) = AUROC. Only the ranks matter to the
threshold rules, so any monotone score (a probability, a logit) gives the same odds. Each draw simulates the
validation exams, applies the product's own rule (``evaluate.classification.choose_threshold`` or ``youden``)
and gives the exact binomial chance that a test set of the given size meets both goals at that threshold. Test
sets screened with one bundle share its threshold, so the chance that all of ``test_sets`` of them meet the goal
is the mean over draws of that chance to the power ``test_sets`` (not the single chance to that power).

Unequal variances, a shift between validation and test exams, and the test AUROC's own criterion are left out:
real odds differ by those (the AUROC criterion can only lower them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from echoavc.errors import EchoAVCError

__all__ = ["ThresholdOdds", "threshold_odds", "RULES", "VALIDATION", "TEST", "GOAL_RECALL", "GOAL_SPECIFICITY"]

#: the exam threshold rules ``echoavc train`` offers that depend on the validation exams (ScreeningSettings)
RULES = ("recall", "youden")

#: defaults: the demo's validation exams and held-out sets (calcified, normal), and issue 13's goal
VALIDATION = (32, 31)
TEST = (24, 24)
GOAL_RECALL = 0.90
GOAL_SPECIFICITY = 0.70


@dataclass(frozen=True)
class ThresholdOdds:
    """What :func:`threshold_odds` found; chances are Monte Carlo means over ``draws`` validation sets."""

    auroc: float
    rule: str
    validation: tuple[int, int]  #: calcified, normal validation exams
    test: tuple[int, int]  #: calcified, normal exams per test set
    goal_recall: float
    goal_specificity: float
    test_sets: int
    draws: int
    chance_one: float  #: one test set meets both goals
    chance_all: float  #: every one of ``test_sets`` test sets (one threshold) meets both
    chance_recall: float  #: one test set meets the recall goal
    chance_specificity: float  #: one test set meets the specificity goal
    expected_recall: float  #: mean over draws of the per-exam recall at the chosen threshold
    expected_specificity: float
    #: largest Monte Carlo standard error of the chances above
    monte_carlo_se: float

    def line(self) -> str:
        vc, vn = self.validation
        tc, tn = self.test
        every = f"; all {self.test_sets} (one threshold) {self.chance_all:.2f}" if self.test_sets > 1 else ""
        return (f"AUROC {self.auroc:.3f}, {self.rule} on {vc} + {vn} validation exams -> test sets of {tc} + {tn}: "
                f"recall >= {self.goal_recall:g} and specificity >= {self.goal_specificity:g} on one "
                f"{self.chance_one:.2f}{every} (recall alone {self.chance_recall:.2f}, specificity alone "
                f"{self.chance_specificity:.2f}; expected recall {self.expected_recall:.2f}, specificity "
                f"{self.expected_specificity:.2f}; binormal, {self.draws} draws, Monte Carlo SE <= "
                f"{self.monte_carlo_se:.3f})")


def threshold_odds(auroc: float, validation: tuple[int, int] = VALIDATION, test: tuple[int, int] = TEST,
                   rule: str = "recall", min_recall: float | None = None, goal_recall: float = GOAL_RECALL,
                   goal_specificity: float = GOAL_SPECIFICITY, test_sets: int = 1, draws: int = 10_000,
                   seed: int = 0) -> ThresholdOdds:
    """The chance that the exam threshold ``rule`` picks on ``validation`` (calcified, normal) exams of a model
    with this ``auroc`` meets both goals on a test set of ``test`` (calcified, normal) exams, and on all of
    ``test_sets`` such sets. ``rule``: "recall" (highest with recall >= ``min_recall``, by default
    ``ScreeningSettings.min_recall``, as ``echoavc train``) or "youden". See the module for the model."""
    # numpy and SciPy here, not at import: the CLI imports this module for its defaults at every start
    import numpy as np
    from scipy.stats import binom, norm

    from echoavc.evaluate.classification import choose_threshold, fewest_for_share, youden
    from echoavc.settings import ScreeningSettings

    if min_recall is None:
        min_recall = ScreeningSettings().min_recall

    if not 0.5 < auroc < 1.0:
        raise EchoAVCError(f"AUROC must lie between 0.5 and 1 (exclusive), not {auroc!r}")
    if rule not in RULES:
        raise EchoAVCError(f"rule must be one of {', '.join(RULES)}, not {rule!r}")
    counts = {"validation": validation, "test": test}
    for name, (pos, neg) in counts.items():
        if int(pos) < 1 or int(neg) < 1:
            raise EchoAVCError(f"{name} needs at least one calcified and one normal exam, not {pos} + {neg}")
    for name, v in (("min_recall", min_recall), ("goal_recall", goal_recall), ("goal_specificity", goal_specificity)):
        if not 0.0 < v <= 1.0:
            raise EchoAVCError(f"{name} must lie in (0, 1], not {v!r}")
    if test_sets < 1 or draws < 100:
        raise EchoAVCError(f"test_sets must be >= 1 and draws >= 100, not {test_sets} and {draws}")
    d = math.sqrt(2.0) * float(norm.ppf(auroc))
    (vc, vn), (tc, tn) = (int(validation[0]), int(validation[1])), (int(test[0]), int(test[1]))
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(vc, int), np.zeros(vn, int)]
    thresholds = np.empty(draws)
    for i in range(draws):
        score = np.r_[rng.normal(d, 1.0, vc), rng.normal(0.0, 1.0, vn)]
        thresholds[i] = choose_threshold(y, score, min_recall) if rule == "recall" else youden(y, score, call_none=True)
    recall = norm.sf(thresholds - d)  # a calcified test exam at or above the threshold
    specificity = norm.cdf(thresholds)  # a normal test exam below it
    # exact binomial chance that the test set's proportions reach the goals at each draw's threshold
    q_recall = binom.sf(fewest_for_share(goal_recall, tc) - 1, tc, recall)
    q_spec = binom.sf(fewest_for_share(goal_specificity, tn) - 1, tn, specificity)
    q = q_recall * q_spec
    label = f"highest threshold with recall >= {min_recall:g}" if rule == "recall" else "Youden's threshold"
    se = max(float(np.std(v) / math.sqrt(draws)) for v in (q, q ** test_sets, q_recall, q_spec))
    return ThresholdOdds(round(float(auroc), 4), label, (vc, vn), (tc, tn), float(goal_recall),
                         float(goal_specificity), int(test_sets), int(draws), float(np.mean(q)),
                         float(np.mean(q ** test_sets)), float(np.mean(q_recall)), float(np.mean(q_spec)),
                         float(np.mean(recall)), float(np.mean(specificity)), se)
