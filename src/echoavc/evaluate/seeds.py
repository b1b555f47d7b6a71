"""The seed registry: which synthetic-cohort seeds may be tuned on and which are kept for evaluation.

A figure measured on a cohort whose seed was used to choose a preset, a threshold or a recipe is optimistic in
the same way validation figures are. So seeds are split once, here (docs/evaluation.md, "Seed registry"):

- **tuning** seeds, 0 - 899 999: training cohorts, and every cohort anyone has looked at while choosing
  settings (the presets were tuned on the old benchmark and demo seeds 101, 202, 303, 404, 505, 2026, 2027);
- **evaluation** seeds, 900 000 - 999 999: held-out cohorts only, reported on and never tuned on.

Benchmarks and the demo call :func:`require_evaluation_seed` before reporting on a held-out cohort.
"""

from __future__ import annotations

from echoavc.errors import EchoAVCError

__all__ = ["TUNING_SEEDS", "EVALUATION_SEEDS", "is_evaluation_seed", "require_evaluation_seed"]

TUNING_SEEDS = range(0, 900_000)
EVALUATION_SEEDS = range(900_000, 1_000_000)


def is_evaluation_seed(seed: int) -> bool:
    return int(seed) in EVALUATION_SEEDS


def require_evaluation_seed(seed: int, what: str = "held-out cohort") -> int:
    """``seed`` when it is an evaluation seed; else a one-line EchoAVCError saying why a report is refused."""
    if not is_evaluation_seed(seed):
        raise EchoAVCError(
            f"refused: seed {seed} for the {what} is a tuning seed (settings may have been chosen on it); report "
            f"only on evaluation seeds {EVALUATION_SEEDS.start}-{EVALUATION_SEEDS.stop - 1} (docs/evaluation.md)")
    return int(seed)
