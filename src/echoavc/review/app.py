"""The review web app (FastAPI, server-side Jinja2 templates, a little JavaScript; every asset in the package).

Pages: ``/`` the exam list, ``/exam/{id}`` one exam. API (JSON in, JSON out, saved at once): ``POST
/api/exam/{id}`` decision and grade, ``POST /api/box`` a valve box, ``POST /api/view`` a wrong-view mark, ``POST
/api/undo``. Files: ``/files/{path}`` serves pictures inside RESULTS only; ``/static/{name}`` the package's own.

FastAPI reads the handlers' annotations (``Request``), so its names are imported at module level.

Safety: the server refuses to start on another address than the loopback without a token; with a token every
request must carry it (``?token=`` once, then a cookie, or the ``X-Review-Token`` header). On the loopback,
requests must name a loopback host (no DNS rebinding). POSTs must be JSON (a cross-site form cannot send that).
"""

from __future__ import annotations

import ipaddress
import secrets
from importlib.resources import files
from pathlib import Path

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from echoavc.errors import EchoAVCError
from echoavc.review.results import SERVED_SUFFIXES, Results, load_results, safe_file
from echoavc.review.store import ReviewStore
from echoavc.review.views import exam_page_context, list_context, short_path

__all__ = ["make_app", "is_loopback", "check_bind", "BANNER"]

BANNER = "Research use only \u2014 not for clinical diagnosis"
TOKEN_COOKIE = "echoavc_review_token"
STATIC = {"review.css": "text/css", "review.js": "text/javascript"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without a token (anyone on the network could read the
    results and change the answers)."""
    if not is_loopback(host) and not token:
        raise EchoAVCError(f"refusing to serve on {host} without --token: off the loopback address anyone who can "
                           "reach this machine could read and change the review (give --token, or use 127.0.0.1)")
    if token is not None and len(token) < 8:
        raise EchoAVCError("the token is too short (8 characters at least)")


def make_app(results: str | Path, reviewer: str = "reviewer", blinded: bool = False, token: str | None = None,
             host: str = "127.0.0.1"):
    """The app over one results folder; ``reviewer`` names who records the answers."""
    check_bind(host, token)
    res: Results = load_results(results)
    store = ReviewStore(res.folder)
    env = jinja2.Environment(loader=jinja2.PackageLoader("echoavc.review", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined)
    env.globals.update(banner=BANNER, reviewer=reviewer, blinded=blinded)
    env.filters["shortpath"] = short_path
    app = FastAPI(title="echoavc review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store, app.state.results = store, res
    loopback = is_loopback(host)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if loopback and request.url.hostname is not None and not is_loopback(request.url.hostname):
            return JSONResponse({"error": "this server answers loopback names only"}, status_code=403)
        if token is not None:
            given = (request.query_params.get("token") or request.headers.get("x-review-token")
                     or request.cookies.get(TOKEN_COOKIE) or "")
            if not secrets.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"error": "a valid token is needed"}, status_code=401)
            if request.query_params.get("token") and request.method == "GET":
                # move the token from the address bar into a cookie, and drop it from the URL
                resp = RedirectResponse(str(request.url.remove_query_params("token")), status_code=303)
                resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                return resp
        if request.method == "POST" and "application/json" not in request.headers.get("content-type", ""):
            return JSONResponse({"error": "JSON only"}, status_code=415)
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; "
                                                       "style-src 'self'; script-src 'self'")
        return response

    def page(name: str, **context) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context))

    def bad(exc: EchoAVCError | str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def exam_list():
        return page("list.html", **list_context(res, store.exams(), blinded))

    @app.get("/exam/{exam_id}", response_class=HTMLResponse)
    def exam_page(exam_id: str):
        if res.exam(exam_id) is None:
            return HTMLResponse("no such exam", status_code=404)
        return page("exam.html", **exam_page_context(res, exam_id, store.exams(), store.boxes(), store.views(),
                                                     blinded))

    @app.get("/files/{rel:path}")
    def result_file(rel: str):
        path = safe_file(res.folder, rel)
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(path.read_bytes(), media_type=SERVED_SUFFIXES[path.suffix.lower()],
                        headers={"Cache-Control": "private, max-age=300"})

    @app.get("/static/{name}")
    def static(name: str):
        if name not in STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(files("echoavc.review").joinpath("static", name).read_bytes(), media_type=STATIC[name])

    @app.post("/api/exam/{exam_id}")
    async def record_exam(exam_id: str, request: Request):
        exam = res.exam(exam_id)
        if exam is None:
            return bad("no such exam", 404)
        body = await _json(request)
        try:
            grade = body.get("grade")
            grade = None if grade in (None, "") else int(grade)
            value = store.record_exam(exam_id, str(body.get("decision")), grade, exam.get("decision", ""),
                                      reviewer, exam.get("grade"))
        except (EchoAVCError, ValueError, TypeError) as exc:
            return bad(exc)
        return {"exam_id": exam_id, **value}

    def kept_frame(sha: str, index) -> bool:
        # corrections only name frames predict --review-frames kept
        return sha in res.clips and any(f["frame_index"] == index for f in res.clips[sha]["frames"])

    @app.post("/api/box")
    async def record_box(request: Request):
        body = await _json(request)
        sha, index = str(body.get("source_sha256", "")), body.get("frame_index")
        if not kept_frame(sha, index):
            return bad("no such kept frame", 404)
        try:
            box = store.record_box(sha, int(index), body.get("box"), reviewer, res.standard_size)
        except EchoAVCError as exc:
            return bad(exc)
        return {"source_sha256": sha, "frame_index": index, "box": box}

    @app.post("/api/view")
    async def record_view(request: Request):
        body = await _json(request)
        sha, index = str(body.get("source_sha256", "")), body.get("frame_index")
        if not kept_frame(sha, index):
            return bad("no such kept frame", 404)
        try:
            store.record_view(sha, int(index), body.get("view"), reviewer)
        except EchoAVCError as exc:
            return bad(exc)
        return {"source_sha256": sha, "frame_index": index, "view": body.get("view")}

    @app.post("/api/undo")
    async def undo():
        return {"undone": store.undo(reviewer)}

    return app


async def _json(request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
