"""One home for settings, with the paper's values as defaults.

Each stage reads a frozen dataclass from here; the CLI options mirror the
fields, and ``dataclasses.replace`` gives typed overrides from Python.
Paper: Elvas et al. 2024 (shared/reference/elvas-2024-avc-echo-paper.md).


Laid out by stage: ``base`` (standard size, allowed values, ``from_dict``), ``data`` (cone to crops),
``models`` (classifier, detector, presets), ``screening`` (predict, listen). Every name is importable from
``echoavc.settings`` itself.
"""

from echoavc.settings.base import *  # noqa: F401,F403
from echoavc.settings.base import RENAMED_FIELDS, from_dict  # noqa: F401
from echoavc.settings.data import *  # noqa: F401,F403
from echoavc.settings.models import *  # noqa: F401,F403
from echoavc.settings.screening import *  # noqa: F401,F403
