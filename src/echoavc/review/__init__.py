"""The review workstation: ``echoavc review serve`` (a local web app over a ``predict`` results folder, to confirm
or correct each exam, its valve boxes and views) and ``echoavc review export`` (the answers as training data).
docs/review.md. The web app's imports (FastAPI, uvicorn, Jinja2) load only when it is served."""

from echoavc.review.frames import REVIEW_DIR, load_clips, write_review_frames, write_review_meta
from echoavc.review.store import ReviewStore

__all__ = ["REVIEW_DIR", "ReviewStore", "export_review", "load_clips", "make_app", "write_review_frames",
           "write_review_meta"]


def __getattr__(name):
    if name == "make_app":
        from echoavc.review.app import make_app

        return make_app
    if name == "export_review":
        from echoavc.review.export import export_review

        return export_review
    raise AttributeError(name)
