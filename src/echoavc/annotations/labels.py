"""The exam-level labels file: one row per exam (exam, patient, calcified, grade).

The same schema the synthetic cohort writes (``labels.csv``). Labels belong to the
exam, not the patient: a patient's grade may progress between exams. The ids are
the ORIGINAL ones (StudyInstanceUID, PatientID) and are pseudonymised with the
user's key (kinds ``study`` and ``patient``) so they join the ingest manifest;
ids that are already pseudonyms are used as they are (``ids="auto"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from echoavc.annotations.boxes import Problem
from echoavc.dicom.deid import pseudonym
from echoavc.errors import EchoAVCError
from echoavc.settings import LabelColumns

_PSEUDO = re.compile(r"^[A-Z]-[A-Z2-7]{12}$")
_TRUE = {"1", "true", "yes", "y", "calcified", "avc", "positive", "pos"}
_FALSE = {"0", "false", "no", "n", "not calcified", "not_calcified", "normal", "negative", "neg"}


def parse_calcified(value) -> int | None:
    s = str(value).strip().lower()
    if s in ("", "nan", "none"):
        return None
    if s in _TRUE:
        return 1
    if s in _FALSE:
        return 0
    try:
        f = float(s)
    except ValueError:
        raise ValueError(f"calcified {value!r} is not yes/no or 1/0") from None
    if f in (0.0, 1.0):
        return int(f)
    raise ValueError(f"calcified {value!r} is not yes/no or 1/0")


def parse_grade(value) -> int | None:
    s = str(value).strip()
    if s.lower() in ("", "nan", "none"):
        return None
    try:
        f = float(s)
    except ValueError:
        raise ValueError(f"grade {value!r} is not a number") from None
    if f != int(f) or f < 0:
        raise ValueError(f"grade {value!r} is not a whole number >= 0")
    return int(f)


@dataclass
class ExamLabels:
    """Per pseudonymous exam: patient, calcified, grade; and the problems found reading them."""

    exams: dict[str, dict]
    problems: list[Problem]


def pick_column(df: pd.DataFrame, candidates: tuple[str, ...], what: str, path: Path, required: bool = True) -> str | None:
    for c in candidates:
        if c in df.columns:
            return c
    if required:
        raise EchoAVCError(f"no {what} column (looked for {', '.join(candidates)}; found {', '.join(df.columns)})",
                           path)
    return None


def read_label_table(path: Path) -> pd.DataFrame:
    """A labels file as text columns (any delimiter), headers stripped; one-line errors naming the file."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, sep=None, engine="python")
    except FileNotFoundError:
        raise EchoAVCError("no such labels file", path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EchoAVCError(f"cannot read labels as CSV ({type(exc).__name__})", path) from None
    df.columns = [str(x).strip() for x in df.columns]
    return df


def read_labels(path: str | Path, secret: bytes | None = None, ids: str = "auto",
                columns: LabelColumns | None = None, known_exams: set[str] | None = None) -> ExamLabels:
    """Read the labels file and pseudonymise its ids. ``known_exams`` (the manifest's study ids) lets
    ``ids="auto"`` recognise ids that are already pseudonyms."""
    c = columns or LabelColumns()
    path = Path(path)
    df = read_label_table(path)
    exam_col = pick_column(df, c.exam, "exam", path)
    patient_col = pick_column(df, c.patient, "patient", path)
    cal_col = pick_column(df, c.calcified, "calcified", path, required=False)
    grade_col = pick_column(df, c.grade, "grade", path, required=False)
    if cal_col is None and grade_col is None:
        raise EchoAVCError("neither a calcified nor a grade column", path)
    if ids not in ("auto", "original", "pseudonymous"):
        raise EchoAVCError(f"ids must be auto, original or pseudonymous, not {ids!r}")
    values = [str(v).strip() for v in df[exam_col]]
    already = ids == "pseudonymous" or (
        ids == "auto" and values and all(_PSEUDO.match(v) for v in values if v)
        and (known_exams is None or any(v in known_exams for v in values)))
    if not already and secret is None:
        raise EchoAVCError("the labels file holds original ids: give the pseudonym key (--key) used at ingest", path)

    def pseud(kind: str, v: str) -> str:
        return v if already else pseudonym(secret, kind, v)

    exams: dict[str, dict] = {}
    problems: list[Problem] = []
    for i, row in enumerate(df.to_dict("records")):
        where = f"{path.name} row {i + 2}"
        exam, patient = str(row[exam_col]).strip(), str(row[patient_col]).strip()
        if not exam:
            problems.append(Problem("error", where, "no exam id"))
            continue
        try:
            cal = parse_calcified(row[cal_col]) if cal_col else None
            grade = parse_grade(row[grade_col]) if grade_col else None
        except ValueError as exc:
            problems.append(Problem("error", where, str(exc)))
            continue
        if cal is not None and grade is not None and cal != int(grade > 0):
            problems.append(Problem("error", f"exam {exam}", f"calcified={cal} contradicts grade={grade} ({where})"))
            continue
        if cal is None and grade is not None:
            cal = int(grade > 0)
        rec = {"patient_id": pseud("patient", patient) if patient else "", "calcified": cal, "grade": grade,
               "exam_original": exam, "row": i + 2}
        sid = pseud("study", exam)
        prev = exams.get(sid)
        if prev is None:
            exams[sid] = rec
            continue
        diffs = [f"{name} {prev[name]} in row {prev['row']} but {rec[name]} in row {i + 2}"
                 for name in ("calcified", "grade", "patient_id")
                 if prev[name] != rec[name] and prev[name] not in (None, "") and rec[name] not in (None, "")]
        if diffs:
            problems.append(Problem("error", f"exam {exam}", "labels contradict each other: " + "; ".join(diffs)))
            prev["conflict"] = True
    for sid, rec in exams.items():
        if rec.get("conflict"):
            rec["calcified"], rec["grade"] = None, None
    return ExamLabels(exams, problems)
