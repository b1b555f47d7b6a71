"""The review server's safety and the answers' storage, over real HTTP on the loopback (no browser)."""

from __future__ import annotations

import http.client
import json
import os
import sqlite3

import pytest
from typer.testing import CliRunner

from echoavc.errors import EchoAVCError
from echoavc.review.app import make_app
from echoavc.review.serve import running_app
from echoavc.review.store import AUDIT_LOG, DB_FILE, ReviewStore

pytestmark = pytest.mark.slow


def _get(url: str, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers=headers or {})  # the path goes out as given: no client-side clean-up
    resp = conn.getresponse()
    resp.body = resp.read()
    return resp


def _post(url: str, path: str, body, headers: dict | None = None) -> tuple[int, dict]:
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


def test_no_file_outside_results_is_ever_served(results, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not for you")
    os.symlink(secret, results / "overlays" / "leak.png")  # a link inside RESULTS pointing out of it
    some_frame = next((results / "review" / "frames").rglob("*.jpg")).relative_to(results).as_posix()
    with running_app(make_app(results)) as url:
        assert _get(url, "/files/" + some_frame).status == 200  # a kept frame is served
        for path in ("/files/../../../../etc/passwd", "/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                     "/files/..%2f..%2f..%2fetc%2fpasswd", "/files//etc/passwd", "/files/%2Fetc%2Fpasswd",
                     "/files/overlays/leak.png", f"/files/../{results.name}/../secret.png",
                     "/files/results.json", "/files/" + DB_FILE, "/files/" + AUDIT_LOG, "/static/../app.py",
                     "/static/%2e%2e%2fapp.py", "/docs", "/redoc", "/openapi.json"):
            r = _get(url, path)
            assert r.status in (403, 404), (path, r.status)
            assert b"not for you" not in r.body and b"root:" not in r.body
        # DNS rebinding: a page of another site resolving to 127.0.0.1 is refused
        assert _get(url, "/", {"Host": "evil.example:80"}).status == 403


def test_every_page_says_research_use_only(results, reviewed_cohort):
    exam = reviewed_cohort.report.exams[0]["exam_id"]
    with running_app(make_app(results)) as url:
        for path in ("/", f"/exam/{exam}"):
            r = _get(url, path)
            assert r.status == 200 and "Research use only" in r.body.decode()
        assert _get(url, "/exam/no-such-exam").status == 404


def test_off_the_loopback_a_token_is_required(results):
    with pytest.raises(EchoAVCError, match="refusing to serve on 0.0.0.0 without --token"):
        make_app(results, host="0.0.0.0")
    from echoavc.cli import app

    res = CliRunner().invoke(app, ["review", "serve", str(results), "--host", "192.168.1.7", "--port", "1"])
    assert res.exit_code != 0 and "without --token" in res.output  # refused before binding anything
    token = "s3cret-token-1"
    with running_app(make_app(results, host="0.0.0.0", token=token)) as url:
        assert _get(url, "/").status == 401
        assert _get(url, "/?token=wrong-token").status == 401
        r = _get(url, "/?token=" + token)
        assert r.status == 303 and token in r.getheader("set-cookie") and "token" not in r.getheader("location")
        assert _get(url, "/", {"Cookie": f"echoavc_review_token={token}"}).status == 200
        assert _get(url, "/", {"X-Review-Token": token}).status == 200
        exam = json.loads((results / "results.json").read_text())["exams"][0]["exam_id"]
        assert _post(url, f"/api/exam/{exam}", {"decision": "calcified"})[0] == 401
        assert _post(url, f"/api/exam/{exam}", {"decision": "calcified"}, {"X-Review-Token": token})[0] == 200


def test_answers_are_saved_at_once_with_reviewer_and_time_and_the_audit_is_append_only(results, reviewed_cohort):
    exam = reviewed_cohort.report.exams[0]
    other = "calcified" if exam["decision"] != "calcified" else "not calcified"
    with running_app(make_app(results, reviewer="dr-x")) as url:
        status, body = _post(url, f"/api/exam/{exam['exam_id']}", {"decision": exam["decision"]})
        assert status == 200 and body["status"] == "confirmed"
        # visible at once to another connection (committed, not buffered)
        row = sqlite3.connect(results / DB_FILE).execute("SELECT decision, reviewer, time FROM exam_review").fetchone()
        assert row[0] == exam["decision"] and row[1] == "dr-x" and row[2].startswith("20")
        status, body = _post(url, f"/api/exam/{exam['exam_id']}", {"decision": other, "grade": 0 if other ==
                                                                   "not calcified" else 2})
        assert status == 200 and body["status"] == "corrected"
        assert _post(url, f"/api/exam/{exam['exam_id']}", {"decision": "calcified", "grade": 0})[0] == 400
        assert _post(url, f"/api/exam/{exam['exam_id']}", {"decision": "maybe"})[0] == 400
        conn = http.client.HTTPConnection(*url.split("//")[1].split(":"), timeout=10)
        conn.request("POST", f"/api/exam/{exam['exam_id']}", body="decision=calcified",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert conn.getresponse().status == 415  # a cross-site form cannot post answers
        assert _post(url, "/api/undo", {})[1]["undone"]["restored"]["decision"] == exam["decision"]
    store = ReviewStore(results)
    assert store.exams()[exam["exam_id"]]["decision"] == exam["decision"]
    audit = store.audit()
    assert [a["action"] for a in audit] == ["exam", "exam", "undo"] and audit[2]["undoes"] == audit[1]["id"]
    for sql in ("UPDATE audit SET reviewer = 'someone else'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store.db.execute(sql)
    log = (results / AUDIT_LOG).read_text().splitlines()
    assert [json.loads(x)["id"] for x in log] == [a["id"] for a in audit]
    before = (results / AUDIT_LOG).read_bytes()
    store.undo("dr-x")  # undoes the first answer: the log grows, nothing in it changes
    assert (results / AUDIT_LOG).read_bytes().startswith(before)
    assert len(store.audit()) == 4 and exam["exam_id"] not in store.exams()
    store.close()
