"""Lazy exports of a module (PEP 562): a name loads the submodule that defines it on first use.

Every CLI start imports each stage's ``cli`` module, and with it the stage's package; a package that imported
all its submodules up front made every command, ``echoavc --help`` included, pay for pandas and SciPy whether it
used them or not (about 1 s). A module lists its exports as ``{name: submodule}`` and assigns what :func:`lazy_exports`
returns to ``__getattr__`` and ``__dir__``.
"""

from __future__ import annotations

import importlib
from typing import Callable

__all__ = ["lazy_exports"]


def lazy_exports(namespace: dict, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """``(__getattr__, __dir__)`` for the module whose ``globals()`` is ``namespace``: ``exports`` maps each name
    to the submodule of the module's package that defines it; a loaded name is kept in ``namespace``."""
    module, package = namespace["__name__"], namespace["__package__"]

    def __getattr__(name: str):
        sub = exports.get(name)
        if sub is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{sub}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
