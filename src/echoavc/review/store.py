"""The reviewer's answers: one SQLite file beside the results (``RESULTS/review/review.sqlite``).

Every answer is saved at once, in one transaction (the write-ahead log keeps readers and the writer apart, and
an interrupted write leaves the previous state). Each change also goes into the ``audit`` table, which triggers
make append-only (an UPDATE or DELETE there aborts), and as one JSON line appended to ``review/audit.log``:
who, when, what, the value before and after. Undo is a new audit entry restoring the value before, never an
erasure.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

from echoavc.errors import EchoAVCError

__all__ = ["ReviewStore", "DB_FILE", "AUDIT_LOG", "DECISIONS"]

DB_FILE = "review/review.sqlite"
AUDIT_LOG = "review/audit.log"
DECISIONS = ("calcified", "not calcified")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exam_review (
  exam_id TEXT PRIMARY KEY, decision TEXT NOT NULL, grade INTEGER, model_decision TEXT, status TEXT NOT NULL,
  reviewer TEXT NOT NULL, time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS frame_box (
  source_sha256 TEXT NOT NULL, frame_index INTEGER NOT NULL, x1 REAL, y1 REAL, x2 REAL, y2 REAL,
  reviewer TEXT NOT NULL, time TEXT NOT NULL, PRIMARY KEY (source_sha256, frame_index));
CREATE TABLE IF NOT EXISTS frame_view (
  source_sha256 TEXT NOT NULL, frame_index INTEGER NOT NULL, view TEXT NOT NULL,
  reviewer TEXT NOT NULL, time TEXT NOT NULL, PRIMARY KEY (source_sha256, frame_index));
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, reviewer TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, before TEXT, after TEXT, undoes INTEGER);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
"""

#: action -> (table, key columns, value columns)
_TABLES = {
    "exam": ("exam_review", ("exam_id",), ("decision", "grade", "model_decision", "status")),
    "box": ("frame_box", ("source_sha256", "frame_index"), ("x1", "y1", "x2", "y2")),
    "view": ("frame_view", ("source_sha256", "frame_index"), ("view",)),
}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ReviewStore:
    """The answers of every reviewer of one results folder."""

    def __init__(self, results: str | Path):
        self.results = Path(results)
        self.path = self.results / DB_FILE
        self.log_path = self.results / AUDIT_LOG
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            # one connection, used under the lock: the server's worker threads share it
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise EchoAVCError(f"not a review database ({exc})", self.path) from None
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ reading

    def exams(self) -> dict[str, dict]:
        with self._lock:
            return {r["exam_id"]: dict(r) for r in self.db.execute("SELECT * FROM exam_review")}

    def boxes(self) -> dict[tuple[str, int], list[float]]:
        with self._lock:
            return {(r["source_sha256"], r["frame_index"]): [r["x1"], r["y1"], r["x2"], r["y2"]]
                    for r in self.db.execute("SELECT * FROM frame_box")}

    def views(self) -> dict[tuple[str, int], str]:
        with self._lock:
            return {(r["source_sha256"], r["frame_index"]): r["view"] for r in self.db.execute("SELECT * FROM frame_view")}

    def audit(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self.db.execute("SELECT * FROM audit ORDER BY id")]

    # ------------------------------------------------------------ writing

    def record_exam(self, exam_id: str, decision: str, grade: int | None, model_decision: str,
                    reviewer: str, model_grade: int | None = None) -> dict:
        """The reviewer's decision (and grade) for an exam; ``status`` is ``confirmed`` when it equals the
        model's, else ``corrected``."""
        if decision not in DECISIONS:
            raise EchoAVCError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        if grade is not None and grade not in (0, 1, 2, 3):
            raise EchoAVCError(f"grade must be 0-3, not {grade!r}")
        if grade is not None and (grade > 0) != (decision == "calcified"):
            raise EchoAVCError(f"grade {grade} contradicts the decision {decision!r}")
        same = decision == model_decision and (grade is None or model_grade is None or grade == model_grade)
        value = {"decision": decision, "grade": grade, "model_decision": model_decision,
                 "status": "confirmed" if same else "corrected"}
        self._set("exam", (exam_id,), value, reviewer)
        return value

    def record_box(self, sha: str, frame_index: int, box: list[float], reviewer: str, size: int) -> list[float]:
        """A box drawn or moved on a standard frame (standard pixels, clipped to the frame)."""
        try:
            x1, y1, x2, y2 = (float(v) for v in box)
        except (TypeError, ValueError):
            raise EchoAVCError(f"a box is four numbers, not {box!r}") from None
        x1, x2 = sorted((min(max(x1, 0.0), size), min(max(x2, 0.0), size)))
        y1, y2 = sorted((min(max(y1, 0.0), size), min(max(y2, 0.0), size)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            raise EchoAVCError("the box is empty (under 2 pixels wide or high)")
        value = {"x1": round(x1, 2), "y1": round(y1, 2), "x2": round(x2, 2), "y2": round(y2, 2)}
        self._set("box", (sha, int(frame_index)), value, reviewer)
        return list(value.values())

    def record_view(self, sha: str, frame_index: int, view: str | None, reviewer: str) -> None:
        """Mark a frame as another view than the aortic valve in short axis (``view=None`` clears the mark)."""
        if view is not None and (not view.strip() or view.strip().lower() in ("psax_av", "psax-av")):
            raise EchoAVCError(f"a wrong-view mark needs another view than psax_av, not {view!r}")
        self._set("view", (sha, int(frame_index)), None if view is None else {"view": view.strip().lower()},
                  reviewer)

    def undo(self, reviewer: str) -> dict | None:
        """Undo ``reviewer``'s latest change not undone yet (restoring the value before it); None when there is
        nothing to undo."""
        with self._lock:
            row = self.db.execute(
                "SELECT * FROM audit WHERE reviewer = ? AND action != 'undo' AND id NOT IN "
                "(SELECT undoes FROM audit WHERE undoes IS NOT NULL) ORDER BY id DESC LIMIT 1", (reviewer,)).fetchone()
        if row is None:
            return None
        kind = row["action"]
        keys = tuple(json.loads(row["target"]))
        before = json.loads(row["before"]) if row["before"] else None
        self._set(kind, keys, before, reviewer, undoes=row["id"])
        return {"undone": row["id"], "action": kind, "target": list(keys), "restored": before}

    def _set(self, kind: str, keys: tuple, value: dict | None, reviewer: str, undoes: int | None = None) -> None:
        table, key_cols, val_cols = _TABLES[kind]
        reviewer = (reviewer or "").strip() or "reviewer"
        now = _now()
        where = " AND ".join(f"{k} = ?" for k in key_cols)
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                old = self.db.execute(f"SELECT {', '.join(val_cols)} FROM {table} WHERE {where}", keys).fetchone()
                before = dict(zip(val_cols, old)) if old is not None else None
                if value is None:
                    self.db.execute(f"DELETE FROM {table} WHERE {where}", keys)
                else:
                    cols = key_cols + val_cols + ("reviewer", "time")
                    self.db.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES "
                                    f"({', '.join('?' * len(cols))})",
                                    keys + tuple(value[c] for c in val_cols) + (reviewer, now))
                entry = {"time": now, "reviewer": reviewer, "action": "undo" if undoes else kind,
                         "target": json.dumps(list(keys)), "before": json.dumps(before) if before else None,
                         "after": json.dumps(value) if value else None, "undoes": undoes}
                cur = self.db.execute("INSERT INTO audit (time, reviewer, action, target, before, after, undoes) "
                                      "VALUES (:time, :reviewer, :action, :target, :before, :after, :undoes)", entry)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            # the log file: opened for appending only, one line per change, flushed to disk
            line = json.dumps({"id": cur.lastrowid, **entry, "kind": kind}) + "\n"
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(line)
                log.flush()
                os.fsync(log.fileno())
