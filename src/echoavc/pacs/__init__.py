"""Screening straight from a PACS: Orthanc's REST API or any PACS over DIMSE, with results stored back.

- ``screen.py``: :func:`screen_study`, :func:`screen_studies`, :func:`find_studies` (fetch, screen with
  ``echoavc.predict``, SR + SC, upload) and :func:`screen_inputs` (what ``echoavc predict`` calls).
- ``orthanc.py``: the Orthanc REST calls (standard library HTTP) and credentials from env or file.
- ``dimse.py``: C-FIND, C-MOVE to a local Storage SCP, C-STORE (pynetdicom).
"""

from echoavc.pacs.screen import (StudyScreening, find_studies, is_pacs_url, parse_source, screen_inputs,
                                 screen_studies, screen_study)

__all__ = ["StudyScreening", "find_studies", "is_pacs_url", "parse_source", "screen_inputs", "screen_studies",
           "screen_study"]
