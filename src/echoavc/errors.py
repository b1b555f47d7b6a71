"""The one exception type for errors a user can cause.

The CLI prints it as a single line, ``<file>: <reason>``, without a traceback
(``--debug`` shows the traceback); batches record it as one failure row and go on.
"""

from __future__ import annotations

from pathlib import Path


class EchoAVCError(Exception):
    """A problem with the user's input, named by file and reason."""

    def __init__(self, reason: str, path: str | Path | None = None):
        self.reason = reason
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    def at(self, path: str | Path) -> "EchoAVCError":
        """The same error (same kind), attached to ``path`` when it has none yet."""
        return self if self.path else type(self)(self.reason, path)


class NoConeError(EchoAVCError):
    """No ultrasound field (cone) in the frames: screening reports such a clip's frames as ``no_cone``
    instead of failing the file."""


class EchoAVCWarning(UserWarning):
    """Something the user should know that does not stop the work (training from scratch, no calibration).

    The CLI shows warnings of this category (and its subclasses) as one line each and hides the libraries'
    own: what is shown is chosen by category, never by the text of the message.
    """
