"""Screening straight from a PACS: Orthanc's REST API or any PACS over DIMSE, with results stored back.

- ``screen.py``: :func:`screen_study` (fetch, screen with ``echoavc.predict``, SR + SC, upload).
- ``orthanc.py``: the Orthanc REST calls (standard library HTTP) and credentials from env or file.
- ``dimse.py``: C-FIND, C-MOVE to a local Storage SCP, C-STORE (pynetdicom).
"""

from echoavc.pacs.screen import StudyScreening, is_pacs_url, parse_source, screen_study

__all__ = ["StudyScreening", "is_pacs_url", "parse_source", "screen_study"]
