"""The review workstation: ``echoavc review serve`` (a local web app over a ``predict`` results folder, to confirm
or correct each exam, its valve boxes and views) and ``echoavc review export`` (the answers as training data).
docs/review.md. The web app's imports (FastAPI, uvicorn, Jinja2) load only when it is served."""

from echoavc.lazy import lazy_exports

# Lazy: every CLI start imports ``echoavc.review.cli``, which must not pay for OpenCV or the web app.
_EXPORTS = {**dict.fromkeys(["REVIEW_DIR", "load_clips", "write_review_frames", "write_review_meta"], "frames"),
            "ReviewStore": "store", "make_app": "app", "export_review": "export"}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
