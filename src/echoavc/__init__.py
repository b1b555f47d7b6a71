"""echoavc: aortic valve calcification screening in echocardiograms."""

from echoavc import runtime as _runtime

__version__ = "0.1.0"

_runtime.configure()
